"""The reference math (catsdogs/neuron/reference.py) against independent oracles: hand computation, finite differences."""

import numpy as np
import pytest

from catsdogs.neuron.reference import (
    Objective,
    backprop,
    forward,
    loss_gradient,
    loss_value,
    predict,
    reference_fit,
    sigmoid,
)


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


def plain_loop(X, y, X_valid, y_valid, lr, epochs, loss, gradient, l2):
    """reference_fit's loop written out with the formulas themselves, in float64 (the oracle)."""
    s = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731

    def J(z, y):
        a = s(z)
        if loss == "mse":
            return np.sum((a - y) ** 2) / (2 * len(y))
        return -np.mean(y * np.log(a) + (1 - y) * np.log(1 - a))

    W, b, rows = np.zeros(X.shape[1]), 0.0, []
    for epoch in range(epochs + 1):
        z = X @ W + b
        rows.append((J(z, y), J(X_valid @ W + b, y_valid)))
        if epoch == epochs:
            break
        a = s(z)
        if loss == "cross_entropy":
            dz = (a - y) / len(y)
        else:
            d = s(a) if gradient == "notebook" else a
            dz = (a - y) * d * (1 - d) / len(y)
        W, b = W - lr * (X.T @ dz + l2 * W), b - lr * np.sum(dz)
    return W, b, np.array(rows)


@pytest.mark.parametrize(
    "loss, gradient, l2",
    [("mse", "exact", 0.0), ("mse", "notebook", 0.0), ("cross_entropy", "exact", 0.0), ("cross_entropy", "exact", 0.2)],
)
def test_reference_fit_equals_the_formulas_on_every_path(loss, gradient, l2):
    rng = np.random.default_rng(5)
    X, X_valid = rng.random((12, 4)).astype(np.float32), rng.random((7, 4)).astype(np.float32)
    y, y_valid = (rng.random(12) < 0.5).astype(np.uint8), (rng.random(7) < 0.5).astype(np.uint8)
    y[:2], y_valid[:2] = (0, 1), (1, 0)
    calls = []
    kwargs = {"l2": l2} if l2 else {}  # the default is no L2
    if gradient != "exact":
        kwargs["gradient"] = gradient
    W, b, losses = reference_fit(
        X, y, X_valid, y_valid, 3.0, 4, loss, on_epoch=lambda e, row: calls.append((e, *row)), **kwargs
    )
    Wo, bo, rows = plain_loop(*(v.astype(np.float64) for v in (X, y, X_valid, y_valid)), 3.0, 4, loss, gradient, l2)
    np.testing.assert_allclose(W, Wo, rtol=1e-12)
    assert b == pytest.approx(bo, rel=1e-12) and abs(bo) > 1e-3
    np.testing.assert_allclose(losses, rows, rtol=1e-12)
    np.testing.assert_allclose(np.array(calls), np.column_stack([np.arange(5), rows]), rtol=1e-12)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_backprop_takes_the_gradient_it_is_given(loss):
    rng = np.random.default_rng(6)
    X, y, W = rng.random((9, 3)), (rng.random(9) < 0.5).astype(np.float64), rng.normal(size=3)
    default, exact = backprop(X, y, W, 0.1), backprop(X, y, W, 0.1, "mse", "exact")
    np.testing.assert_array_equal(default[0], exact[0])
    if loss == "mse":  # the notebook's gradient differs from the exact one
        notebook = backprop(X, y, W, 0.1, "mse", "notebook")
        a = 1 / (1 + np.exp(-(X @ W + 0.1)))
        s = 1 / (1 + np.exp(-a))
        np.testing.assert_allclose(notebook[0], X.T @ ((a - y) * s * (1 - s) / 9), rtol=1e-12)


def test_loss_gradient_divides_by_the_m_it_is_given():
    a, y = np.array([0.9, 0.2]), np.array([1.0, 0.0])
    np.testing.assert_allclose(loss_gradient("cross_entropy", "exact", a, y, m=8), (a - y) / 8)
    np.testing.assert_allclose(loss_gradient("mse", "exact", a, y, m=8), (a - y) * a * (1 - a) / 8)


def test_loss_value_accumulates_float32_inputs_in_float64():
    rng = np.random.default_rng(7)
    z = rng.normal(0, 3, 1001).astype(np.float32)
    y = (rng.random(1001) < 0.5).astype(np.float32)
    a = sigmoid(z).astype(np.float32)
    z64, a64, y64 = z.astype(np.float64), a.astype(np.float64), y.astype(np.float64)
    # float64 sums: within a few units in the last place of the float64 oracle (float32 sums miss by ~1e-7)
    assert loss_value("cross_entropy", z, a, y) == pytest.approx(np.mean(np.logaddexp(0, z64) - y64 * z64), rel=1e-14)
    assert loss_value("mse", z, a, y) == 0.5 * np.mean((a64 - y64) ** 2)


def test_predict_returns_int64_labels():
    assert predict(np.array([0.2, 0.9])).dtype == np.int64


def test_a_negative_number_of_epochs_is_refused_and_zero_is_the_starting_point():
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([1, 0])
    with pytest.raises(ValueError, match=r"^epochs = -1: the number of updates cannot be negative$"):
        reference_fit(X, y, X, y, lr=0.1, epochs=-1)
    W, b, losses = reference_fit(X, y, X, y, lr=0.1, epochs=0)
    assert W.tolist() == [0.0, 0.0] and b == 0.0
    assert losses.tolist() == [[0.125, 0.125]]  # MSE of a = 1/2 against y in {0, 1}: (1/2)^2 / 2


def test_every_input_is_computed_in_float64_whatever_its_dtype():
    """float32 values given as longdouble (more than 64 bits) or int labels give the float64 run bit for
    bit: the loop converts its inputs, it does not compute in the inputs' own precision."""
    rng = np.random.default_rng(5)
    X = rng.random((12, 4)).astype(np.float32)
    y = (rng.random(12) > 0.5).astype(np.uint8)
    W, b, losses = reference_fit(X[:8], y[:8], X[8:], y[8:], lr=0.5, epochs=4)
    for dtype in (np.longdouble, np.float64):
        W2, b2, losses2 = reference_fit(
            X[:8].astype(dtype), y[:8].astype(dtype), X[8:].astype(dtype), y[8:].astype(dtype), lr=0.5, epochs=4
        )
        assert W2.dtype == np.float64 and np.asarray(b2).dtype == np.float64
        np.testing.assert_array_equal(W2, W)
        np.testing.assert_array_equal(losses2, losses)
        assert b2 == b


def test_the_objective_by_hand():
    """F = J + l2/2 |W|^2 and its pieces, each computed by hand: z = [0, ln 3] gives a = [1/2, 3/4]."""
    z, y, W = np.array([0.0, np.log(3.0)]), np.array([1.0, 0.0]), np.array([1.0, -2.0])
    a = np.array([0.5, 0.75])
    mse = Objective("mse", "exact", l2=0.5)
    assert mse.penalty(W) == 1.25  # 0.5 / 2 * (1 + 4)
    assert mse.value(z, a, y, W) == 0.5 * (0.25 + 0.5625) / 2 + 1.25
    cross_entropy = Objective("cross_entropy", "exact", l2=0.5)  # 1/2 (log 2 - 1 * 0 + log 4 - 0 * ln 3)
    assert cross_entropy.value(z, a, y, W) == pytest.approx(1.5 * np.log(2) + 1.25, rel=1e-15)
    # dz over 2 of m = 4 rows: (a - y) a (1 - a) / 4
    np.testing.assert_array_equal(mse.dz(a, y, 4), [-0.5 * 0.25 / 4, 0.75 * 0.1875 / 4])
    np.testing.assert_array_equal(mse.dz(a, y), [-0.5 * 0.25 / 2, 0.75 * 0.1875 / 2])  # m = 2 by default
    grad_W = np.array([1.0, 1.0])
    mse.add_penalty_gradient(grad_W, W)
    assert grad_W.tolist() == [1.5, 0.0]  # + l2 W
    default = Objective()  # mse, exact gradient, no L2 term
    assert default.value(z, a, y, W) == 0.5 * (0.25 + 0.5625) / 2
    np.testing.assert_array_equal(default.dz(a, y), [-0.5 * 0.25 / 2, 0.75 * 0.1875 / 2])
    default.add_penalty_gradient(grad_W, W)
    assert grad_W.tolist() == [1.5, 0.0]


@pytest.mark.parametrize("loss, gradient", [("MSE", "exact"), ("log", "exact"), (None, "exact"), ("mse", "Exact")])
def test_a_loss_or_gradient_name_not_known_is_refused(loss, gradient):
    """Not read as some other loss: "MSE" is not the cross-entropy, "Exact" not the exact gradient."""
    a, y = np.array([0.5]), np.array([1.0])
    with pytest.raises(
        ValueError, match=r"^(loss .*: not one of mse, cross_entropy|gradient 'Exact': not one of exact, notebook)$"
    ):
        loss_gradient(loss, gradient, a, y)
    if gradient == "exact":
        with pytest.raises(ValueError, match=rf"^loss {loss!r}: not one of mse, cross_entropy$"):
            loss_value(loss, np.zeros(1), a, y)
        with pytest.raises(ValueError, match=rf"^loss {loss!r}: not one of mse, cross_entropy$"):
            reference_fit(np.eye(1), y, np.eye(1), y, lr=0.1, epochs=1, loss=loss)


@pytest.mark.skipif(
    np.finfo(np.longdouble).nmant < 61, reason="long double holds 2^60 + 1 only where it is wider than float64"
)
def test_validation_rows_in_long_double_are_rounded_to_float64_first():
    """The row [2^60 + 1, 2^60] is [2^60, 2^60] in float64: after one step to W = [1, -1] (the step of
    test_reference_fit_two_steps_by_hand at lr 16), z = W x = 0 and the validation loss stays the starting
    1/8; in long double z would be 1."""
    X, y = np.eye(2), np.array([1.0, 0.0])
    X_valid = np.array([[2**60 + 1, 2**60]], dtype=np.longdouble)
    assert X_valid[0, 0] != X_valid[0, 1]
    W, b, losses = reference_fit(X, y, X_valid, np.array([1.0]), lr=16.0, epochs=1)
    assert W.tolist() == [1.0, -1.0] and b == 0.0
    assert losses[:, 1].tolist() == [0.125, 0.125]
