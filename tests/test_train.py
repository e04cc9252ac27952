import hashlib

import numpy as np
import pytest

from stages.common import load_npz, save_npz
from stages.images import Preprocessing
from stages.params import ParamError
import stages.train
from bench.epoch import plain_fit
from stages.train import TrainParams, fit, loss_gradient, loss_value, sigmoid, train
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
        save_npz(f"data/features/{split}.npz", X=X[rows], y=y[rows])
    Preprocessing(image_size=2, draft=True, pixel_scale=255.0).save("preprocessing.json")
    digests = []
    for _ in range(2):
        train(TrainParams(lr=0.5, epochs=50), "preprocessing.json", progress=False)
        digests.append(hashlib.sha256(open("models/weights.npz", "rb").read()).hexdigest())
    assert digests[0] == digests[1]
    weights = load_npz("models/weights.npz", ("image_size", "draft", "pixel_scale"))
    assert Preprocessing.from_mapping(weights, "weights") == Preprocessing(2, True, 255.0)  # stored unchanged
    assert open("plots/train_history.csv").readline().strip() == "epoch,train_loss,valid_loss,train_accuracy,valid_accuracy"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"lr": -0.1}, r"train.lr = -0.1 is out of range, expected a number > 0"),
        ({"loss": "hinge"}, r"train.loss = 'hinge' is not allowed, expected one of: mse, cross_entropy"),
        ({"epochs": 0}, r"train.epochs = 0 is out of range"),
        ({"gradient": "notebook", "loss": "cross_entropy"}, r"train.gradient = 'notebook' is only defined"),
        ({"lr": "0.1"}, r"train.lr = '0.1' is text"),
        ({"lr": 1.0e300}, r"train.lr = 1e\+300 is out of range, expected a number > 0 and <= 1000000.0"),
        ({"optimizer": "sgd"}, r"train.optimizer = 'sgd' is not allowed, expected one of: gd, adam"),
        ({"momentum": 1.0}, r"train.momentum = 1.0 is out of range, expected a number >= 0 and < 1"),
        ({"optimizer": "adam", "momentum": 0.9}, r"train.momentum = 0.9 is only used by train.optimizer = 'gd'"),
        ({"batch_size": -1}, r"train.batch_size = -1 is out of range, expected an integer >= 0"),
        ({"batch_size": 1.5}, r"train.batch_size = 1.5 is not allowed, expected an integer"),
        ({"l2": -0.1}, r"train.l2 = -0.1 is out of range, expected a number >= 0"),
        ({"early_stopping": -2}, r"train.early_stopping = -2 is out of range"),
        ({"seed": "x"}, r"train.seed = 'x' is text"),
    ],
)
def test_read_params_rejects_bad_values(tmp_path, changes, message):
    with pytest.raises(ParamError, match=message):
        TrainParams.read(write_params(tmp_path / "params.yaml", train=changes))


def split_toy(m=60, n=20, seed=0, m_train=40):
    X, y = toy_problem(m, n, seed)
    return X[:m_train], y[:m_train], X[m_train:], y[m_train:]


@pytest.mark.parametrize("block_bytes", [4 * 20 * 3, 4 << 20])  # 3-row blocks, and one block per shard
def test_fused_fit_agrees_with_the_articles_plain_loop(monkeypatch, block_bytes):
    monkeypatch.setattr(stages.train, "BLOCK_BYTES", block_bytes)
    X, y, X_valid, y_valid = split_toy()
    W, b, history = fit(X, y, X_valid, y_valid, TrainParams(lr=0.5, epochs=40), progress=False)
    W_plain, b_plain, losses, _ = plain_fit(
        X.T.astype(np.float64), y[None, :], X_valid.T.astype(np.float64), y_valid[None, :], 0.5, 40
    )
    np.testing.assert_allclose(W, W_plain[:, 0], rtol=1e-5, atol=1e-6)
    assert b == pytest.approx(b_plain, rel=1e-5, abs=1e-7)
    np.testing.assert_allclose(history[["train_loss", "valid_loss"]].to_numpy(), losses, rtol=1e-6)


def test_fit_does_not_depend_on_the_number_of_threads(monkeypatch):
    monkeypatch.setattr(stages.train, "BLOCK_BYTES", 4 * 20 * 2)
    monkeypatch.setattr(stages.train, "INLINE_BYTES", 0)  # really use the thread pool on tiny data
    X, y, X_valid, y_valid = split_toy(m=90, m_train=70)
    runs = [fit(X, y, X_valid, y_valid, TrainParams(lr=1.0, epochs=20), progress=False, threads=t) for t in (1, 3)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert runs[0][2].equals(runs[1][2])


def test_adam_first_step_is_lr_times_the_sign_of_the_gradient():
    X = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]], dtype=np.float32)
    y = np.array([1, 0], dtype=np.uint8)
    W, b, _ = fit(X, y, X, y, TrainParams(lr=0.01, epochs=1, optimizer="adam"), progress=False)
    # at W = 0: dz = [-0.0625, 0.0625], dJ/dW = X^T dz = [-0.0625, 0.0625, 0], dJ/db = 0: Adam moves by -lr sign(g)
    np.testing.assert_allclose(W, [0.01, -0.01, 0.0], atol=1e-6)
    assert b == pytest.approx(0.0, abs=1e-9)


def test_momentum_accumulates_the_gradients():
    X = np.array([[1.0]], dtype=np.float32)
    y = np.array([1], dtype=np.uint8)
    W, b, _ = fit(X, y, X, y, TrainParams(lr=1.0, epochs=2, momentum=0.5), progress=False)
    # cross-check by hand, MSE with one example: g = (a - 1) a (1 - a) for W and b alike, z = W + b
    a0 = 0.5
    g0 = (a0 - 1) * a0 * (1 - a0)
    v0 = g0
    w1 = -v0  # W and b both -v0
    a1 = 1 / (1 + np.exp(-2 * w1))
    v1 = 0.5 * v0 + (a1 - 1) * a1 * (1 - a1)
    assert W[0] == pytest.approx(w1 - v1, rel=1e-6) and b == pytest.approx(w1 - v1, rel=1e-6)


@pytest.mark.parametrize(
    "changes",
    [
        {"optimizer": "adam", "lr": 0.05, "loss": "cross_entropy"},
        {"momentum": 0.9, "lr": 1.0},
        {"batch_size": 8, "lr": 1.0, "loss": "cross_entropy"},
        {"batch_size": 8, "optimizer": "adam", "lr": 0.02, "l2": 0.001},
    ],
)
def test_faster_recipes_learn(changes):
    X, y, X_valid, y_valid = split_toy()
    params = TrainParams(**{"lr": 1.0, "epochs": 60, **changes})
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False)
    assert history.train_loss.iloc[-1] < 0.5 * history.train_loss.iloc[0]
    assert history.train_accuracy.iloc[-1] > 0.85


def test_minibatch_order_follows_the_seed():
    X, y, X_valid, y_valid = split_toy()
    runs = [fit(X, y, X_valid, y_valid, TrainParams(lr=1.0, epochs=3, batch_size=7, seed=s), progress=False)[0] for s in (1, 1, 2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_l2_shrinks_the_weights():
    X, y, X_valid, y_valid = split_toy()
    plain = fit(X, y, X_valid, y_valid, TrainParams(lr=1.0, epochs=50), progress=False)[0]
    shrunk = fit(X, y, X_valid, y_valid, TrainParams(lr=1.0, epochs=50, l2=0.1), progress=False)[0]
    assert np.linalg.norm(shrunk) < 0.8 * np.linalg.norm(plain)


def test_early_stopping_keeps_the_weights_of_the_best_validation_loss():
    X, y, X_valid, y_valid = split_toy(m=120, n=200, seed=3, m_train=60)  # n > m: overfits after a while
    params = TrainParams(lr=0.05, epochs=400, loss="cross_entropy", optimizer="adam", early_stopping=5)
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False)
    best = int(history.valid_loss.idxmin())
    assert best > 0  # the kept weights are trained ones, not the zeros of epoch 0
    assert len(history) == best + 6 < 401  # stopped 5 epochs after the best one
    W_best, b_best, _ = fit(X, y, X_valid, y_valid, TrainParams(**{**params.__dict__, "epochs": best, "early_stopping": 0}), progress=False)
    np.testing.assert_array_equal(W, W_best)
    assert b == b_best


def test_batch_size_larger_than_the_training_set_is_an_error():
    X, y, X_valid, y_valid = split_toy()
    with pytest.raises(ParamError, match=r"train.batch_size = 41 is more than the 40 training examples"):
        fit(X, y, X_valid, y_valid, TrainParams(lr=1.0, epochs=1, batch_size=41), progress=False)


def wide_problem():
    """Fewer examples than a quarter of the features: fit trains in the dual (Gram matrix)."""
    X, y = toy_problem(m=40, n=200, seed=5)
    return X[:30], y[:30], X[30:], y[30:]


def test_dual_fit_agrees_with_the_articles_plain_loop():
    X, y, X_valid, y_valid = wide_problem()
    params = TrainParams(lr=0.05, epochs=60)
    assert stages.train.uses_gram(params, X.shape)
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False)
    W_plain, b_plain, losses, _ = plain_fit(
        X.T.astype(np.float64), y[None, :], X_valid.T.astype(np.float64), y_valid[None, :], 0.05, 60
    )
    np.testing.assert_allclose(W, W_plain[:, 0], rtol=1e-5, atol=1e-7)
    assert b == pytest.approx(b_plain, rel=1e-5, abs=1e-8)
    np.testing.assert_allclose(history[["train_loss", "valid_loss"]].to_numpy(), losses, rtol=1e-6)


@pytest.mark.parametrize("changes", [{"momentum": 0.9, "l2": 0.01}, {"loss": "cross_entropy", "early_stopping": 3}])
def test_dual_and_primal_agree(monkeypatch, changes):
    X, y, X_valid, y_valid = wide_problem()
    params = TrainParams(**{"lr": 0.05, "epochs": 80, **changes})
    W_dual, b_dual, h_dual = fit(X, y, X_valid, y_valid, params, progress=False)
    monkeypatch.setattr(stages.train, "GRAM_MAX_RATIO", 0.0)
    assert not stages.train.uses_gram(params, X.shape)
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False)
    scale = np.abs(W).max()  # float32 precision of the vector as a whole (momentum amplifies rounding 10x)
    np.testing.assert_allclose(W_dual, W, rtol=1e-5, atol=1e-5 * scale)
    assert b_dual == pytest.approx(b, rel=1e-5, abs=1e-5 * float(scale))
    assert len(h_dual) == len(history)
    np.testing.assert_allclose(h_dual.to_numpy(), history.to_numpy(), rtol=1e-5)


def test_dual_does_not_depend_on_the_number_of_threads(monkeypatch):
    monkeypatch.setattr(stages.train, "INLINE_BYTES", 0)  # really use the thread pool on tiny data
    X, y, X_valid, y_valid = wide_problem()
    runs = [fit(X, y, X_valid, y_valid, TrainParams(lr=0.05, epochs=20), progress=False, threads=t) for t in (1, 3)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


@pytest.mark.parametrize(
    "changes, shape, dual",
    [
        ({}, (1600, 12288), True),
        ({"epochs": 199}, (1600, 12288), False),  # too short to repay X X^T
        ({"epochs": 200}, (1600, 12288), True),
        ({}, (20000, 12288), False),
        ({"momentum": 0.9, "l2": 0.1}, (1600, 12288), True),
        ({"optimizer": "adam"}, (1600, 12288), False),
        ({"batch_size": 64}, (1600, 12288), False),
        ({"batch_size": 1600}, (1600, 12288), True),
    ],
)
def test_when_fit_uses_the_dual(changes, shape, dual):
    assert stages.train.uses_gram(TrainParams(**{"lr": 0.1, "epochs": 5000, **changes}), shape) == dual
