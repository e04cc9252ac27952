"""The training loop (catsdogs/neuron/fit.py): each solver against the reference math (catsdogs/neuron/reference.py) on random
data, to float32 precision, and the loop's own behaviour (history, early stopping, seeds, threads)."""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import catsdogs.neuron.fast_passes
import catsdogs.neuron.fit
import catsdogs.neuron.history
import catsdogs.neuron.lbfgs
import catsdogs.neuron.recipe
from catsdogs.errors import DataError, ParamError
from catsdogs.neuron.fit import fit
from catsdogs.neuron.reference import backprop, forward, loss_value, predict, reference_fit, sigmoid
from catsdogs.pipeline.config import TrainParams


def toy_problem(m=60, n=20, seed=0):
    """Linearly separable-ish data: y = 1 where a fixed direction of x is positive (plus noise)."""
    rng = np.random.default_rng(seed)
    X = rng.random((m, n), dtype=np.float32)
    y = ((X - 0.5) @ rng.normal(size=n) + 0.1 * rng.normal(size=m) > 0).astype(np.uint8)
    return X, y


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_fit_learns_and_records_every_epoch(loss):
    X, y = toy_problem()
    W, b, history = fit(
        X[:40],
        y[:40],
        X[40:],
        y[40:],
        TrainParams(lr=2.0, epochs=300, loss=loss),
        progress=False,
        pixel_scale=PIXEL_SCALE,
    )
    assert W.shape == (20,) and W.dtype == np.float32
    assert list(history.epoch) == list(range(301))
    assert history.train_loss.iloc[-1] < 0.5 * history.train_loss.iloc[0]
    assert history.train_accuracy.iloc[-1] > 0.85


def test_one_step_of_gradient_descent_by_hand():
    X = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    y = np.array([1, 0], dtype=np.uint8)
    W, b, _ = fit(X, y, X, y, TrainParams(lr=1.0, epochs=1), progress=False, pixel_scale=PIXEL_SCALE)
    # at W = 0: a = 0.5, dz = (a - y) a (1 - a) / m = [-0.0625, 0.0625]; W = -lr X^T dz; b = -lr sum dz
    np.testing.assert_allclose(W, [0.0625, -0.0625])
    assert b == 0.0


def split_toy(m=60, n=20, seed=0, m_train=40):
    X, y = toy_problem(m, n, seed)
    return X[:m_train], y[:m_train], X[m_train:], y[m_train:]


def assert_equals_reference(result, reference):
    """fit's W, b and history losses (float32) equal the float64 reference's, to float32 precision."""
    (W, b, history), (W_ref, b_ref, losses) = result, reference
    scale = np.abs(W_ref).max()
    np.testing.assert_allclose(W, W_ref, rtol=1e-5, atol=1e-6 * scale)
    assert b == pytest.approx(b_ref, rel=1e-5, abs=1e-6 * scale)
    np.testing.assert_allclose(history[["train_loss", "valid_loss"]].to_numpy(), losses, rtol=1e-6)


RECIPES = [{}, {"loss": "cross_entropy"}, {"gradient": "notebook"}, {"l2": 0.05}]


def reference(X, y, X_valid, y_valid, params):
    return reference_fit(X, y, X_valid, y_valid, params.lr, params.epochs, params.loss, params.gradient, params.l2)


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("block_bytes", [4 * 20 * 3, 4 << 20])  # 3-row blocks, and one block per shard
def test_full_batch_fit_equals_the_reference_loop(monkeypatch, recipe, block_bytes):
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "BLOCK_BYTES", block_bytes)
    X, y, X_valid, y_valid = split_toy()
    params = TrainParams(lr=0.5, epochs=40, **recipe)
    assert isinstance(
        catsdogs.neuron.fit.solver_for(params, X, y, X_valid, None, PIXEL_SCALE), catsdogs.neuron.fit.FullBatch
    )
    result = fit(X, y, X_valid, y_valid, params, progress=False, pixel_scale=PIXEL_SCALE)
    assert_equals_reference(result, reference(X, y, X_valid, y_valid, params))


def reference_minibatch_fit(X, y, params):
    """Mini-batch gradient descent in float64 on neuron.backprop: each epoch the rows in the order of
    default_rng(seed).permutation, one step per batch_size of them (the last batch may be smaller)."""
    X, y = X.astype(np.float64), y.astype(np.float64)
    W, b = np.zeros(X.shape[1]), 0.0
    rng = np.random.default_rng(params.seed)
    for _ in range(params.epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), params.batch_size):
            rows = order[start : start + params.batch_size]
            dW, db = backprop(X[rows], y[rows], W, b, params.loss, params.gradient)
            W, b = W - params.lr * (dW + params.l2 * W), b - params.lr * db
    return W, b


@pytest.mark.parametrize("recipe", RECIPES)
def test_minibatch_fit_equals_the_reference_loop(recipe):
    X, y, X_valid, y_valid = split_toy()
    params = TrainParams(lr=0.5, epochs=6, batch_size=7, seed=3, **recipe)  # 40 rows: 5 batches of 7, one of 5
    assert isinstance(
        catsdogs.neuron.fit.solver_for(params, X, y, X_valid, None, PIXEL_SCALE), catsdogs.neuron.fit.MiniBatch
    )
    W, b, _ = fit(X, y, X_valid, y_valid, params, progress=False, pixel_scale=PIXEL_SCALE)
    W_ref, b_ref = reference_minibatch_fit(X, y, params)
    scale = np.abs(W_ref).max()
    np.testing.assert_allclose(W, W_ref, rtol=1e-5, atol=1e-6 * scale)
    assert b == pytest.approx(b_ref, rel=1e-5, abs=1e-6 * scale)


def test_fit_does_not_depend_on_the_number_of_threads(monkeypatch):
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "BLOCK_BYTES", 4 * 20 * 2)
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "INLINE_BYTES", 0)  # really use the thread pool on tiny data
    X, y, X_valid, y_valid = split_toy(m=90, m_train=70)
    runs = [fit(X, y, X_valid, y_valid, TrainParams(lr=1.0, epochs=20), progress=False, threads=t) for t in (1, 3)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert runs[0][2].equals(runs[1][2])


def test_adam_first_step_is_lr_times_the_sign_of_the_gradient():
    X = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]], dtype=np.float32)
    y = np.array([1, 0], dtype=np.uint8)
    W, b, _ = fit(X, y, X, y, TrainParams(lr=0.01, epochs=1, optimizer="adam"), progress=False, pixel_scale=PIXEL_SCALE)
    # at W = 0: dz = [-0.0625, 0.0625], dJ/dW = X^T dz = [-0.0625, 0.0625, 0], dJ/db = 0: Adam moves by -lr sign(g)
    np.testing.assert_allclose(W, [0.01, -0.01, 0.0], atol=1e-6)
    assert b == pytest.approx(0.0, abs=1e-9)


def test_momentum_accumulates_the_gradients():
    X = np.array([[1.0]], dtype=np.float32)
    y = np.array([1], dtype=np.uint8)
    W, b, _ = fit(X, y, X, y, TrainParams(lr=1.0, epochs=2, momentum=0.5), progress=False, pixel_scale=PIXEL_SCALE)
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
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False, pixel_scale=PIXEL_SCALE)
    assert history.train_loss.iloc[-1] < 0.5 * history.train_loss.iloc[0]
    assert history.train_accuracy.iloc[-1] > 0.85


def test_minibatch_order_follows_the_seed():
    X, y, X_valid, y_valid = split_toy()
    runs = [
        fit(
            X,
            y,
            X_valid,
            y_valid,
            TrainParams(lr=1.0, epochs=3, batch_size=7, seed=s),
            progress=False,
            pixel_scale=PIXEL_SCALE,
        )[0]
        for s in (1, 1, 2)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_l2_shrinks_the_weights():
    X, y, X_valid, y_valid = split_toy()
    plain = fit(X, y, X_valid, y_valid, TrainParams(lr=1.0, epochs=50), progress=False, pixel_scale=PIXEL_SCALE)[0]
    shrunk = fit(
        X, y, X_valid, y_valid, TrainParams(lr=1.0, epochs=50, l2=0.1), progress=False, pixel_scale=PIXEL_SCALE
    )[0]
    assert np.linalg.norm(shrunk) < 0.8 * np.linalg.norm(plain)


def test_early_stopping_keeps_the_weights_of_the_best_validation_loss():
    X, y, X_valid, y_valid = split_toy(m=120, n=200, seed=3, m_train=60)  # n > m: overfits after a while
    params = TrainParams(lr=0.05, epochs=400, loss="cross_entropy", optimizer="adam", early_stopping=5)
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False, pixel_scale=PIXEL_SCALE)
    best = int(history.valid_loss.idxmin())
    assert best > 0  # the kept weights are trained ones, not the zeros of epoch 0
    assert len(history) == best + 6 < 401  # stopped 5 epochs after the best one
    W_best, b_best, _ = fit(
        X, y, X_valid, y_valid, TrainParams(**{**params.__dict__, "epochs": best, "early_stopping": 0}), progress=False
    )
    np.testing.assert_array_equal(W, W_best)
    assert b == b_best


def test_batch_size_larger_than_the_training_set_is_an_error():
    X, y, X_valid, y_valid = split_toy()
    with pytest.raises(ParamError, match=r"train.batch_size = 41 is more than the 40 training examples"):
        fit(
            X,
            y,
            X_valid,
            y_valid,
            TrainParams(lr=1.0, epochs=1, batch_size=41),
            progress=False,
            pixel_scale=PIXEL_SCALE,
        )


PIXEL_SCALE = 255.0  # features made of pixel values, as the pipeline's: the dual computes X X^T from them


def pixel_features(X):
    """X in [0, 1) rounded to pixel values / 255, in float32, as images.to_features makes them."""
    return np.rint(X * np.float32(PIXEL_SCALE)).astype(np.float32) / np.float32(PIXEL_SCALE)


def wide_problem():
    """Fewer examples than a quarter of the features: fit trains in the dual (Gram matrix)."""
    X, y = toy_problem(m=40, n=200, seed=5)
    X = pixel_features(X)
    return X[:30], y[:30], X[30:], y[30:]


@pytest.mark.parametrize("recipe", RECIPES)
def test_dual_fit_equals_the_reference_loop(recipe):
    X, y, X_valid, y_valid = wide_problem()
    params = TrainParams(lr=0.05, epochs=60, **recipe)
    assert catsdogs.neuron.fit.uses_gram(params, X.shape)
    result = fit(X, y, X_valid, y_valid, params, progress=False, pixel_scale=PIXEL_SCALE)
    assert_equals_reference(result, reference(X, y, X_valid, y_valid, params))


@pytest.mark.parametrize("changes", [{"momentum": 0.9, "l2": 0.01}, {"loss": "cross_entropy", "early_stopping": 3}])
def test_dual_and_primal_agree(monkeypatch, changes):
    X, y, X_valid, y_valid = wide_problem()
    params = TrainParams(**{"lr": 0.05, "epochs": 80, **changes})
    W_dual, b_dual, h_dual = fit(X, y, X_valid, y_valid, params, progress=False, pixel_scale=PIXEL_SCALE)
    monkeypatch.setattr(catsdogs.neuron.fit, "GRAM_MAX_RATIO", 0.0)
    assert not catsdogs.neuron.fit.uses_gram(params, X.shape)
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False, pixel_scale=PIXEL_SCALE)
    scale = np.abs(W).max()  # float32 precision of the vector as a whole (momentum amplifies rounding 10x)
    np.testing.assert_allclose(W_dual, W, rtol=1e-5, atol=1e-5 * scale)
    assert b_dual == pytest.approx(b, rel=1e-5, abs=1e-5 * float(scale))
    assert len(h_dual) == len(history)
    np.testing.assert_allclose(h_dual.to_numpy(), history.to_numpy(), rtol=1e-5)


def test_dual_does_not_depend_on_the_number_of_threads(monkeypatch):
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "INLINE_BYTES", 0)  # really use the thread pool on tiny data
    X, y, X_valid, y_valid = wide_problem()
    runs = [
        fit(X, y, X_valid, y_valid, TrainParams(lr=0.05, epochs=20), progress=False, threads=t, pixel_scale=PIXEL_SCALE)
        for t in (1, 3)
    ]
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
    assert catsdogs.neuron.fit.uses_gram(TrainParams(**{"lr": 0.1, "epochs": 5000, **changes}), shape) == dual


@pytest.mark.parametrize("shape, lr, epochs", [((200, 5), 1.0, 2000), ((40, 200), 0.5, 3000)], ids=["primal", "dual"])
def test_cross_entropy_with_l2_reaches_scikit_learns_optimum(shape, lr, epochs):
    # fit minimises J + l2/2 |W|^2 with J the mean cross-entropy; scikit-learn's LogisticRegression
    # minimises 1/2 |W|^2 + C sum(cross-entropy), b unpenalised: the same optimum for C = 1 / (l2 m)
    linear_model = pytest.importorskip("sklearn.linear_model")
    m, n = shape
    X, y = toy_problem(m, n, seed=4)
    # centred pixel values (-128 ... 127) / 255: b decoupled from W, so gradient descent converges in few epochs
    X = (np.rint(X * np.float32(PIXEL_SCALE)) - 128).astype(np.float32) / np.float32(PIXEL_SCALE)
    l2 = 0.1
    params = TrainParams(lr=lr, epochs=epochs, loss="cross_entropy", l2=l2)
    with ThreadPoolExecutor(1) as pool:  # both solvers are tested
        solver = type(catsdogs.neuron.fit.solver_for(params, X, y, X, pool, PIXEL_SCALE)).__name__
    assert solver == ("Dual" if n > m else "FullBatch")
    W, b, _ = fit(X, y, X, y, params, progress=False, pixel_scale=PIXEL_SCALE)
    oracle = linear_model.LogisticRegression(C=1 / (l2 * m), tol=1e-12, max_iter=100_000).fit(X.astype(np.float64), y)
    np.testing.assert_allclose(W, oracle.coef_[0], rtol=0, atol=2e-5)
    assert b == pytest.approx(oracle.intercept_[0], abs=2e-5)
    assert np.abs(oracle.coef_[0]).max() > 0.05  # the optimum is not W = 0: a wrong l2 moves it


def first_overflowing_epoch(X, y, X_valid, y_valid, params):
    """The oracle: the first epoch at which the article's float64 loop (neuron.reference_fit) has a score
    z = X W + b beyond float32's range, on the training or validation rows."""
    limit = np.finfo(np.float32).max
    for epochs in range(1, params.epochs + 1):
        W, b, _ = reference_fit(X, y, X_valid, y_valid, params.lr, epochs, params.loss, params.gradient, params.l2)
        if max(np.abs(X @ W + b).max(), np.abs(X_valid @ W + b).max()) > limit:
            return epochs
    raise AssertionError("the reference did not diverge")


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")  # expected here
@pytest.mark.parametrize(
    "problem, changes",
    [(split_toy, {}), (wide_problem, {}), (split_toy, {"batch_size": 16}), (split_toy, {"momentum": 0.5})],
    ids=["primal", "dual", "mini-batch", "momentum"],
)
def test_a_diverging_run_stops_at_the_epoch_its_scores_overflow(request, problem, changes):
    """lr x l2 = 10 > 2: the L2 term multiplies W by about (1 - 10) each step, so |W| grows ~9x per
    epoch and the scores leave float32's range within a few dozen epochs."""
    X, y, X_valid, y_valid = problem()
    params = TrainParams(lr=10.0, l2=1.0, epochs=300, **changes)
    with ThreadPoolExecutor(1) as pool:
        solver = type(catsdogs.neuron.fit.solver_for(params, X, y, X_valid, pool, PIXEL_SCALE)).__name__
    assert solver == {"dual": "Dual", "mini-batch": "MiniBatch"}.get(request.node.callspec.id, "FullBatch")
    with pytest.raises(ParamError) as error:
        fit(X, y, X_valid, y_valid, params, progress=False, pixel_scale=PIXEL_SCALE)
    epoch = int(re.search(r"after (\d+) of 300 epochs", str(error.value)).group(1))
    if not changes:  # the reference is plain gradient descent
        assert abs(epoch - first_overflowing_epoch(X, y, X_valid, y_valid, params)) <= 1
    bound = "3 = 2 (1 + train.momentum)" if changes.get("momentum") else "2"
    assert str(error.value).startswith("params.yaml: train.lr = 10 made the training diverge")
    hint = f"only stable for train.lr x train.l2 < {bound}, here 10 x 1 = 10: lower train.lr or train.l2"
    assert hint in str(error.value)


def test_divergence_without_the_l2_instability_says_to_lower_the_rate():
    message = catsdogs.neuron.recipe.divergence_message(TrainParams(lr=1.5, l2=1.0, epochs=9), 7)
    assert message.endswith(
        "after 7 of 9 epochs the scores z = X W + b are no longer finite numbers (they "
        "overflowed float32, the losses with them); lower train.lr (now 1.5)"
    )


def test_divergence_at_exactly_the_l2_bound_names_lr_times_l2():
    # lr x l2 = 0.5 x 4 = 2: the bound 2 itself is already unstable (|1 - lr l2| = 1 is not < 1)
    message = catsdogs.neuron.recipe.divergence_message(TrainParams(lr=0.5, l2=4.0, epochs=9), 7)
    assert message.endswith("only stable for train.lr x train.l2 < 2, here 0.5 x 4 = 2: lower train.lr or train.l2")


def test_fit_converts_its_inputs_to_float32():
    X, y, X_valid, y_valid = split_toy()
    params = TrainParams(lr=0.5, epochs=5)
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False, pixel_scale=PIXEL_SCALE)
    W64, b64, history64 = fit(
        X.astype(np.float64),
        y.astype(np.int64),
        X_valid.astype(np.float64),
        y_valid.astype(bool),
        params,
        progress=False,
    )
    np.testing.assert_array_equal(W, W64)
    assert b == b64 and history.equals(history64)


def test_a_batch_of_every_training_example_is_full_batch_gradient_descent():
    X, y, X_valid, y_valid = split_toy()  # 40 rows, 20 features
    params = TrainParams(lr=0.5, epochs=5, batch_size=40)
    assert isinstance(
        catsdogs.neuron.fit.solver_for(params, X, y, X_valid, None, PIXEL_SCALE), catsdogs.neuron.fit.FullBatch
    )
    full = fit(X, y, X_valid, y_valid, TrainParams(lr=0.5, epochs=5), progress=False, pixel_scale=PIXEL_SCALE)
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False, pixel_scale=PIXEL_SCALE)
    np.testing.assert_array_equal(W, full[0])
    assert b == full[1] and history.equals(full[2])
    fit(
        X, y, X_valid, y_valid, TrainParams(lr=0.5, epochs=1, batch_size=30), progress=False, pixel_scale=PIXEL_SCALE
    )  # more than n: fine


class CountingPool(ThreadPoolExecutor):
    """A real thread pool that records the number of worker threads it was asked for."""

    sizes: list = []

    def __init__(self, max_workers=None):
        CountingPool.sizes.append(max_workers)
        super().__init__(max_workers)


def test_fit_runs_the_number_of_threads_asked_for_or_one_per_usable_core(monkeypatch):
    monkeypatch.setattr(catsdogs.neuron.fit, "ThreadPoolExecutor", CountingPool)
    monkeypatch.setattr(CountingPool, "sizes", [])
    X, y, X_valid, y_valid = split_toy()
    for threads in (3, None):
        fit(X, y, X_valid, y_valid, TrainParams(lr=0.5, epochs=1), progress=False, threads=threads)
    assert CountingPool.sizes == [3, catsdogs.neuron.fit.usable_cores()]


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_scores_overflowing_on_the_validation_rows_alone_stop_the_run():
    X, y, X_valid, y_valid = split_toy()
    W1 = reference_fit(X, y, X_valid, y_valid, 100.0, 1)[0]  # the weights after one epoch at lr 100
    assert np.abs(W1).sum() > 4  # so a row of 1e38 with their signs scores more than 4e38: beyond float32
    X_valid[0] = np.float32(1e38) * np.sign(W1)  # the training rows, in [0, 1), score far below
    with pytest.raises(ParamError, match=r"after 1 of 1 epochs the scores z = X W \+ b are no longer finite"):
        fit(X, y, X_valid, y_valid, TrainParams(lr=100.0, epochs=1), progress=False, pixel_scale=PIXEL_SCALE)


def solver_params():
    """Parameters for each solver, on split_toy (40 x 20) or wide_problem (30 x 200)."""
    return [
        ("FullBatch", split_toy, TrainParams(lr=0.5, epochs=7)),
        ("MiniBatch", split_toy, TrainParams(lr=0.5, epochs=3, batch_size=16)),
        ("Dual", wide_problem, TrainParams(lr=0.05, epochs=60)),
        ("LBFGS", split_toy, TrainParams(optimizer="lbfgs", loss="cross_entropy", epochs=5, l2=0.01)),
    ]


@pytest.mark.parametrize("solver, problem, params", solver_params(), ids=[case[0] for case in solver_params()])
def test_the_last_history_row_scores_the_returned_weights(solver, problem, params):
    # the oracle: losses and accuracies of W, b recomputed in float64 from the data (neuron.py's math)
    X, y, X_valid, y_valid = problem()
    with ThreadPoolExecutor(1) as pool:
        assert type(catsdogs.neuron.fit.solver_for(params, X, y, X_valid, pool, PIXEL_SCALE)).__name__ == solver
    seen = []
    W, b, history = fit(
        X,
        y,
        X_valid,
        y_valid,
        params,
        progress=False,
        pixel_scale=PIXEL_SCALE,
        on_epoch=lambda *args: seen.append(args),
    )
    last = history.iloc[-1]
    for rows, labels, loss, accuracy in (
        (X, y, "train_loss", "train_accuracy"),
        (X_valid, y_valid, "valid_loss", "valid_accuracy"),
    ):
        z = forward(rows.astype(np.float64), W.astype(np.float64), float(b))
        assert last[loss] == pytest.approx(loss_value(params.loss, z, sigmoid(z), labels), rel=1e-5)
        assert last[accuracy] == np.mean(predict(sigmoid(z)) == labels)
        assert last[accuracy] != 0.5  # so a wrong comparison (1 - accuracy) shows
    assert history.epoch.dtype.kind == "i"
    # on_epoch(epoch, row) after each row
    assert [epoch for epoch, _ in seen] == list(history.epoch)
    np.testing.assert_array_equal(np.array([row for _, row in seen]), history.to_numpy(dtype=np.float64))


def test_early_stopping_counts_its_patience_from_the_first_of_equal_validation_losses():
    # lr 1e-30: W, b move by ~1e-31, every score rounds to sigmoid(0) = 0.5, every epoch has the same
    # validation loss: none is lower than epoch 0's, so the run stops after early_stopping more epochs
    X, y, X_valid, y_valid = split_toy()
    W, b, history = fit(
        X,
        y,
        X_valid,
        y_valid,
        TrainParams(lr=1e-30, epochs=50, early_stopping=3),
        progress=False,
        pixel_scale=PIXEL_SCALE,
    )
    assert history.valid_loss.nunique() == 1
    assert list(history.epoch) == [0, 1, 2, 3]


def test_kept_row_is_the_last_row_or_with_early_stopping_the_best_validation_loss():
    history = catsdogs.neuron.fit.pd.DataFrame(
        {"epoch": [0, 1, 2, 3], "train_loss": [4.0, 3.0, 2.0, 1.0], "valid_loss": [4.0, 2.0, 3.0, 2.5]}
    )
    assert catsdogs.neuron.history.kept_row(history, TrainParams(epochs=3)).epoch == 3
    assert catsdogs.neuron.history.kept_row(history, TrainParams(epochs=3, early_stopping=2)).epoch == 1


def test_the_dual_is_used_up_to_a_quarter_as_many_rows_as_features():
    params = TrainParams(lr=0.1, epochs=5000)
    assert catsdogs.neuron.fit.uses_gram(params, (3072, 12288)) and not catsdogs.neuron.fit.uses_gram(
        params, (3073, 12288)
    )


def test_the_last_epoch_computes_no_gradient():
    # the scores after the last epoch are recorded but no step follows: the pass computes z only
    X, y, X_valid, y_valid = split_toy()
    rules = []
    with ThreadPoolExecutor(1) as pool:
        passes = catsdogs.neuron.fit.ShardedPass(pool)

        def spy(*args):
            rules.append(args[5])
            return passes(*args)

        solver = catsdogs.neuron.fit.FullBatch(X, y.astype(np.float32), X_valid, TrainParams(lr=0.5, epochs=3), spy)
        solver.run(3, lambda epoch, z, z_valid, a, a_valid: False)
    assert [rule is None for rule in rules] == [False, False, False, True]


@pytest.fixture
def own_tqdm_lock(monkeypatch):
    """tqdm draws under a lock of this test only, without its monitor thread: its default lock is shared
    with forked processes (mutmut runs each mutant in one) and a monitor thread holding it at a fork
    leaves it taken in the child."""
    import tqdm.std

    monkeypatch.setattr(tqdm.std.tqdm, "_lock", threading.RLock(), raising=False)
    monkeypatch.setattr(tqdm.std.tqdm, "monitor_interval", 0)


def bar_frames(text):
    """The successive states of a tqdm bar written to a stream (redrawn after each carriage return)."""
    return [frame for frame in text.replace("\n", "\r").split("\r") if frame.strip()]


@pytest.mark.parametrize(
    "params, step",
    [
        (TrainParams(lr=0.5, epochs=150), "epoch"),
        (TrainParams(loss="cross_entropy", optimizer="lbfgs", epochs=150), "iteration"),
    ],
)
def test_fit_shows_a_progress_bar_by_default_with_the_latest_losses(own_tqdm_lock, capsys, params, step):
    X, y, X_valid, y_valid = split_toy()
    W, b, history = fit(X, y, X_valid, y_valid, params)
    last = bar_frames(capsys.readouterr().err)[-1]
    steps = len(history) - 1  # lbfgs may stop before `epochs`
    assert last.startswith("train: ") and f"| {steps}/150 [" in last
    assert re.search(rf"[\d?]{step}/s|s/{step}[,\]]", last)  # the rate, counted in epochs (iterations)
    row = history.iloc[-1]  # the losses shown are those of the last epoch (iteration)
    assert last.endswith(f", train_loss={row.train_loss:.6f}, valid_loss={row.valid_loss:.6f}]")
    fit(X, y, X_valid, y_valid, TrainParams(lr=0.5, epochs=3), progress=False, pixel_scale=PIXEL_SCALE)
    assert capsys.readouterr().err == ""


def test_the_progress_bar_redraws_at_most_twice_a_second(own_tqdm_lock, monkeypatch, capsys):
    # a fake clock for tqdm: each epoch takes 1/8 s, so the bar moves every 4 epochs. It starts at the
    # real time, in whole seconds (start + k/8 is exact), so that a monitor thread another test started
    # (it compares the real time with the bar's last draw) sees no stalled bar to redraw.
    import tqdm.std

    start = float(int(time.time()))
    clock = [start]
    monkeypatch.setattr(tqdm.std, "time", lambda: clock[0])
    X, y, X_valid, y_valid = split_toy()

    def tick(epoch, row):
        clock[0] = start + epoch / 8

    fit(X, y, X_valid, y_valid, TrainParams(lr=0.5, epochs=40), on_epoch=tick)
    shown = {int(re.search(r"(\d+)/40", frame).group(1)) for frame in bar_frames(capsys.readouterr().err)}
    assert shown == set(range(0, 41, 4))


@pytest.mark.parametrize("optimizer, batch_size", [("gd", 0), ("gd", 8), ("adam", 0), ("lbfgs", 0)])
@pytest.mark.parametrize("train_rows, valid_rows", [(40, 0), (0, 20)])
def test_an_empty_training_or_validation_set_is_refused_before_any_epoch(optimizer, batch_size, train_rows, valid_rows):
    """No loss, accuracy or best epoch exists for zero rows: refused with what to change, for every solver."""
    X, y = toy_problem()
    loss = "cross_entropy" if optimizer == "lbfgs" else "mse"
    params = TrainParams(epochs=3, optimizer=optimizer, loss=loss, batch_size=min(batch_size, train_rows))
    train, valid = slice(0, train_rows), slice(40, 40 + valid_rows)
    with pytest.raises(DataError) as refused:
        fit(X[train], y[train], X[valid], y[valid], params, progress=False, pixel_scale=PIXEL_SCALE)
    assert str(refused.value) == (
        f"{train_rows} training and {valid_rows} validation examples: train needs at least one of each "
        "(more images, or another resize_split.valid_fraction)"
    )


def test_one_validation_row_is_enough():
    X, y = toy_problem()
    _, _, history = fit(
        X[:40], y[:40], X[40:41], y[40:41], TrainParams(epochs=3), progress=False, pixel_scale=PIXEL_SCALE
    )
    assert list(history.epoch) == [0, 1, 2, 3]


@pytest.mark.parametrize("split", ["training", "validation"])
@pytest.mark.parametrize("bad", [2, 0.5, -1])
def test_labels_other_than_0_and_1_are_refused(split, bad):
    X, y = toy_problem()
    y = y.astype(np.float64)
    y[0 if split == "training" else 45] = bad
    with pytest.raises(DataError, match=rf"^the {split} labels must be 0 \(dog\) or 1 \(cat\)$"):
        fit(X[:40], y[:40], X[40:], y[40:], TrainParams(epochs=1), progress=False, pixel_scale=PIXEL_SCALE)


@pytest.mark.parametrize(
    "params",
    [TrainParams(lr=0.05, epochs=60), TrainParams(lr=0.5, epochs=20, batch_size=7, seed=1)],
    ids=["dual", "mini"],
)
def test_with_the_training_set_as_validation_set_every_row_has_equal_train_and_valid_columns(params):
    # one array in both roles: whatever fit does to the training rows (float32 labels, scores, losses,
    # accuracies) it must do to the validation rows, to the last bit
    X, y, _, _ = wide_problem()
    _, _, history = fit(X, y, X, y, params, progress=False, pixel_scale=PIXEL_SCALE)
    assert history.train_loss.tolist() == history.valid_loss.tolist()
    assert history.train_accuracy.tolist() == history.valid_accuracy.tolist()


def test_fit_hands_pixel_scale_on_to_the_dual_and_to_lbfgs(monkeypatch):
    # with pixel features the dual computes the exact pixel Gram product and lbfgs the principal directions
    # of the pixels (catsdogs/neuron/principal_directions.py); without pixel_scale neither does
    calls = []
    real_gram, real_directions = catsdogs.neuron.fit.pixel_gram, catsdogs.neuron.lbfgs.principal_directions
    monkeypatch.setattr(catsdogs.neuron.fit, "pixel_gram", lambda *a: calls.append("gram") or real_gram(*a))
    monkeypatch.setattr(
        catsdogs.neuron.lbfgs, "principal_directions", lambda *a: calls.append("directions") or real_directions(*a)
    )
    X, y, X_valid, y_valid = wide_problem()
    for params in (
        TrainParams(lr=0.05, epochs=60),
        TrainParams(epochs=5, optimizer="lbfgs", loss="cross_entropy", l2=0.1),
    ):
        for scale in (PIXEL_SCALE, None):
            fit(X, y, X_valid, y_valid, params, progress=False, pixel_scale=scale)
    assert calls == ["gram", "gram", "directions"]


def test_pixel_training_rows_with_other_validation_rows_train_in_the_primal():
    # the dual needs both X X^T and X_valid X^T from pixel values: validation features of another kind
    # (here pixel values + 0.001) leave training in the primal, with the same result as without pixel_scale
    X, y, X_valid, y_valid = wide_problem()
    X_valid = X_valid + np.float32(1e-3)
    params = TrainParams(lr=0.05, epochs=60)
    with ThreadPoolExecutor(1) as pool:
        solver = catsdogs.neuron.fit.solver_for(params, X, y, X_valid, pool, PIXEL_SCALE)
    assert isinstance(solver, catsdogs.neuron.fit.FullBatch)
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False, pixel_scale=PIXEL_SCALE)
    assert_equals_reference((W, b, history), reference(X, y, X_valid, y_valid, params))


def test_a_batch_that_spans_several_blocks_averages_over_the_batch(monkeypatch):
    # 2-row blocks, batches of 7: dJ/dz of each block must still divide by the batch's 7 rows
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "BLOCK_BYTES", 4 * 20 * 2)
    X, y, X_valid, y_valid = split_toy()
    params = TrainParams(lr=0.5, epochs=6, batch_size=7, seed=3)
    W, b, _ = fit(X, y, X_valid, y_valid, params, progress=False, pixel_scale=PIXEL_SCALE)
    W_ref, b_ref = reference_minibatch_fit(X, y, params)
    np.testing.assert_allclose(W, W_ref, rtol=1e-5, atol=1e-6 * np.abs(W_ref).max())
    assert b == pytest.approx(b_ref, rel=1e-5)
