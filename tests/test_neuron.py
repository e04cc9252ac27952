"""The reference math (stages/neuron.py) against independent oracles: hand computation, finite differences."""
import numpy as np
import pytest

from stages.neuron import backprop, forward, loss_gradient, loss_value, predict, reference_fit, sigmoid


def test_sigmoid_is_stable_for_large_inputs():
    z = np.array([-1000.0, -20.0, 0.0, 20.0, 1000.0])
    a = sigmoid(z)
    assert np.all(np.isfinite(a)) and a[2] == 0.5 and a[0] == 0.0 and a[-1] == 1.0
    np.testing.assert_allclose(sigmoid(np.array([1.5])), 1 / (1 + np.exp(-1.5)))


def test_forward_and_predict_by_hand():
    X = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 0.0]])
    z = forward(X, np.array([0.5, -1.0]), 0.25)
    np.testing.assert_allclose(z, [-1.25, 1.25, 1.75])
    np.testing.assert_array_equal(predict(np.array([0.2, 0.5, 0.7])), [0, 0, 1])  # a > 0.5 is a cat
    np.testing.assert_array_equal(predict(np.array([0.2, 0.5, 0.7]), threshold=0.1), [1, 1, 1])


def test_zero_weights_give_the_articles_starting_loss():
    y = np.array([0, 1, 1, 0], dtype=np.float32)
    z = np.zeros(4)
    assert loss_value("mse", z, sigmoid(z), y) == pytest.approx(0.125)  # 1/(2m) sum 0.5^2
    assert loss_value("cross_entropy", z, sigmoid(z), y) == pytest.approx(np.log(2))


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_exact_gradient_matches_finite_differences(loss):
    rng = np.random.default_rng(1)
    z = rng.normal(size=7)
    y = rng.integers(0, 2, size=7).astype(np.float64)
    analytic = loss_gradient(loss, "exact", sigmoid(z), y)
    eps = 1e-6
    for i in range(7):
        up, down = z.copy(), z.copy()
        up[i] += eps
        down[i] -= eps
        numeric = (loss_value(loss, up, sigmoid(up), y) - loss_value(loss, down, sigmoid(down), y)) / (2 * eps)
        assert analytic[i] == pytest.approx(numeric, rel=1e-5, abs=1e-10)


def test_notebook_gradient_applies_the_sigmoid_twice():
    a = np.array([0.2, 0.7])
    y = np.array([1.0, 0.0])
    s = 1 / (1 + np.exp(-a))
    np.testing.assert_allclose(loss_gradient("mse", "notebook", a, y), (a - y) * s * (1 - s) / 2)
    assert not np.allclose(loss_gradient("mse", "notebook", a, y), loss_gradient("mse", "exact", a, y))


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_backprop_matches_finite_differences_of_the_loss(loss):
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(9, 4)), rng.integers(0, 2, size=9).astype(np.float64)
    W, b = rng.normal(size=4), 0.3

    def J(W, b):
        z = X @ W + b
        return loss_value(loss, z, sigmoid(z), y)

    dW, db = backprop(X, y, W, b, loss)
    eps = 1e-6
    for i in range(4):
        step = np.eye(4)[i] * eps
        assert dW[i] == pytest.approx((J(W + step, b) - J(W - step, b)) / (2 * eps), rel=1e-6, abs=1e-10)
    assert db == pytest.approx((J(W, b + eps) - J(W, b - eps)) / (2 * eps), rel=1e-6, abs=1e-10)


def test_reference_fit_two_steps_by_hand():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([1.0, 0.0])
    W, b, losses = reference_fit(X, y, X, y, lr=1.0, epochs=2, l2=0.5)
    # step 1 at W = 0: a = 0.5, dz = (a - y) a (1 - a) / 2 = [-1/16, 1/16]; W = -(X^T dz) = [1/16, -1/16], b = 0
    w1 = 1 / 16
    # step 2: z = [w1, -w1], a = [s, 1 - s] with s = sigmoid(w1); dz = [(s - 1) s (1 - s), (1 - s) (1 - s) s] / 2
    s = 1 / (1 + np.exp(-w1))
    dz = np.array([(s - 1) * s * (1 - s), (1 - s) * (1 - s) * s]) / 2
    W2 = np.array([w1, -w1]) - (dz + 0.5 * np.array([w1, -w1]))  # L2 adds l2 W to dJ/dW
    np.testing.assert_allclose(W, W2, rtol=1e-12)
    assert b == pytest.approx(-dz.sum(), rel=1e-12)
    assert losses.shape == (3, 2) and losses[0, 0] == pytest.approx(0.125)
    assert losses[1, 0] == pytest.approx(((s - 1) ** 2 + (1 - s) ** 2) / 4, rel=1e-12)  # J after step 1 (no L2 term)
