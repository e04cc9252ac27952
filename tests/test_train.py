import hashlib

import numpy as np
import pytest

from stages.common import ParamError, save_npz
from stages.train import TrainParams, fit, loss_gradient, loss_value, read_params, sigmoid, train
from tests.conftest import write_params


def toy_problem(m=60, n=20, seed=0):
    """Linearly separable-ish data: y = 1 where a fixed direction of x is positive (plus noise)."""
    rng = np.random.default_rng(seed)
    X = rng.random((m, n), dtype=np.float32)
    y = ((X - 0.5) @ rng.normal(size=n) + 0.1 * rng.normal(size=m) > 0).astype(np.uint8)
    return X, y


def test_sigmoid_is_stable_for_large_inputs():
    z = np.array([-1000.0, -20.0, 0.0, 20.0, 1000.0])
    a = sigmoid(z)
    assert np.all(np.isfinite(a)) and a[2] == 0.5 and a[0] == 0.0 and a[-1] == 1.0
    np.testing.assert_allclose(sigmoid(np.array([1.5])), 1 / (1 + np.exp(-1.5)))


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
def test_fit_learns_and_records_every_epoch(loss):
    X, y = toy_problem()
    W, b, history = fit(X[:40], y[:40], X[40:], y[40:], TrainParams(lr=2.0, epochs=300, loss=loss), progress=False)
    assert W.shape == (20,) and W.dtype == np.float32
    assert list(history.epoch) == list(range(301))
    assert history.train_loss.iloc[-1] < 0.5 * history.train_loss.iloc[0]
    assert history.train_accuracy.iloc[-1] > 0.85


def test_one_step_of_gradient_descent_by_hand():
    X = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    y = np.array([1, 0], dtype=np.uint8)
    W, b, _ = fit(X, y, X, y, TrainParams(lr=1.0, epochs=1), progress=False)
    # at W = 0: a = 0.5, dz = (a - y) a (1 - a) / m = [-0.0625, 0.0625]; W = -lr X^T dz; b = -lr sum dz
    np.testing.assert_allclose(W, [0.0625, -0.0625])
    assert b == 0.0


def test_train_stage_writes_bit_identical_weights(in_tmp):
    X, y = toy_problem()
    for split, rows in (("train", slice(0, 40)), ("valid", slice(40, None))):
        save_npz(f"data/features/{split}.npz", X=X[rows], y=y[rows], image_size=np.int64(2))
    digests = []
    for _ in range(2):
        train(TrainParams(lr=0.5, epochs=50), progress=False)
        digests.append(hashlib.sha256(open("models/weights.npz", "rb").read()).hexdigest())
    assert digests[0] == digests[1]
    assert open("plots/train_history.csv").readline().strip() == "epoch,train_loss,valid_loss,train_accuracy,valid_accuracy"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"lr": -0.1}, r"train.lr = -0.1 is out of range, expected a number > 0"),
        ({"loss": "hinge"}, r"train.loss = 'hinge' is not allowed, expected one of: mse, cross_entropy"),
        ({"epochs": 0}, r"train.epochs = 0 is out of range"),
        ({"gradient": "notebook", "loss": "cross_entropy"}, r"train.gradient = 'notebook' is only defined"),
        ({"lr": "1e-3"}, r"train.lr = '1e-3' is text"),
    ],
)
def test_read_params_rejects_bad_values(tmp_path, changes, message):
    with pytest.raises(ParamError, match=message):
        read_params(write_params(tmp_path / "params.yaml", train=changes))


def test_read_params_reads_yaml_1e_minus_3_as_text(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 1e-3\n  epochs: 10\n  loss: mse\n  gradient: exact\n")
    with pytest.raises(ParamError, match=r"1.0e-3"):
        read_params(path)
    path.write_text("train:\n  lr: 1.0e-3\n  epochs: 10\n  loss: mse\n  gradient: exact\n")
    assert read_params(path).lr == 0.001
