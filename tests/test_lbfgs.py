"""train.optimizer lbfgs (catsdogs/neuron/lbfgs.py): its objective and gradient against the reference math
(catsdogs/neuron/reference.py), its optimum against scikit-learn's LogisticRegression for the same C, and its place
in fit (history, stopping, early stopping, threads, parameter checks)."""

import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

import catsdogs.neuron.fast_passes
import catsdogs.neuron.fit
import catsdogs.neuron.lbfgs
from catsdogs.errors import ParamError
from catsdogs.neuron.fast_passes import ShardedPass
from catsdogs.neuron.fit import fit
from catsdogs.neuron.lbfgs import Coordinates, ScaledObjective, principal_directions
from catsdogs.neuron.reference import backprop, forward, loss_value, sigmoid
from catsdogs.pipeline.config import TrainParams
from tests.conftest import numpy_blas_threads
from tests.test_fit import split_toy, toy_problem


def lbfgs_params(**changes):
    return TrainParams(**{"optimizer": "lbfgs", "loss": "cross_entropy", "epochs": 500, **changes})


def objective64(X, y, W, b, l2):
    """F = J + l2/2 |W|^2 in float64, J the mean cross-entropy of catsdogs/neuron/reference.py."""
    X, y, W = X.astype(np.float64), y.astype(np.float64), W.astype(np.float64)
    z = forward(X, W, float(b))
    return loss_value("cross_entropy", z, sigmoid(z), y) + l2 / 2 * W @ W


def small_rank(monkeypatch, rank=4):
    """A change of variables with `rank` principal directions, estimated from every row, on small data."""
    monkeypatch.setattr(catsdogs.neuron.lbfgs, "RANK", rank)
    monkeypatch.setattr(catsdogs.neuron.lbfgs, "OVERSAMPLE", 3)


def chain_rule_gradient(X, y, x, l2, coordinates):
    """dF/dx at x = (v, c) from the reference backprop, through W = P v and b = c - mu W (P = U diag(s - 1)
    U^T + I built here from U and s), in float64."""
    P = np.eye(X.shape[1]) + coordinates.U @ np.diag(coordinates.s - 1) @ coordinates.U.T
    W = P @ x[:-1]
    b = x[-1] - coordinates.mu @ W
    dW, db = backprop(X.astype(np.float64), y.astype(np.float64), W, b, "cross_entropy")
    return W, b, np.append(P @ (dW - coordinates.mu * db + l2 * W), db)  # dF/dv = P^T dF/dW, P symmetric


@pytest.mark.parametrize("inline_bytes", [0, 32 << 20])  # shards on the pool, and in this thread
def test_objective_and_gradient_equal_the_reference(monkeypatch, inline_bytes):
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "BLOCK_BYTES", 4 * 20 * 3)  # 3-row blocks
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "INLINE_BYTES", inline_bytes)
    small_rank(monkeypatch)
    X, y = toy_problem(m=50, n=20, seed=4)
    y = y.astype(np.float32)
    x = np.append(np.random.default_rng(1).normal(scale=0.5, size=20), 0.3)  # (v, c)
    l2 = 0.07
    coordinates = Coordinates(X, l2)
    assert coordinates.U.shape == (20, 4)  # the change of variables is not the identity here
    with ThreadPoolExecutor(2) as pool:
        objective = ScaledObjective(X, y, l2, ShardedPass(pool), coordinates)
        F, gradient = objective(x)
    W, b, reference = chain_rule_gradient(X, y, x, l2, coordinates)
    assert pytest.approx(objective64(X, y, W, b, l2), rel=1e-6) == F
    np.testing.assert_allclose(gradient, reference, rtol=1e-5, atol=1e-6 * np.abs(reference).max())
    np.testing.assert_allclose(objective.z, forward(X.astype(np.float64), W, b), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(objective.weights(x)[0], W, rtol=1e-6)
    assert objective.weights(x)[1] == pytest.approx(b, rel=1e-6)


def test_objective_gradient_equals_finite_differences(monkeypatch):
    small_rank(monkeypatch, rank=2)
    X, y = toy_problem(m=40, n=8, seed=2)
    x = np.array([0.4, -0.3, 0.2, 0.1, -0.5, 0.25, -0.1, 0.3, 0.05])
    coordinates = Coordinates(X, 0.05)
    objective = ScaledObjective(X, y.astype(np.float32), 0.05, ShardedPass(None), coordinates)
    gradient = objective(x)[1].copy()

    def F(point):  # float64, from the neuron's weights W = P v, b = c - mu W
        W, b, _ = chain_rule_gradient(X, y, point, 0.05, coordinates)
        return objective64(X, y, W, b, 0.05)

    step = 1e-6
    numeric = [(F(x + step * e) - F(x - step * e)) / (2 * step) for e in np.eye(len(x))]
    np.testing.assert_allclose(gradient, numeric, rtol=1e-4, atol=1e-6)


def test_objective_reads_x_once_per_new_point():
    """Asked again at the point it last evaluated (scipy's callback, then record_at), the objective returns
    the same values without another pass over X; at a new point it makes one."""
    X, y = toy_problem(m=30, n=6, seed=5)
    calls = []

    class CountingPass(ShardedPass):
        def __call__(self, *args, **kwargs):
            calls.append(1)
            return super().__call__(*args, **kwargs)

    objective = ScaledObjective(X, y.astype(np.float32), 0.1, CountingPass(None), Coordinates(X, 0.1))
    x = np.linspace(-0.5, 0.5, 7)
    F, gradient = objective(x)
    F_again, gradient_again = objective(x.copy())
    assert len(calls) == 1 and F_again == F and np.array_equal(gradient_again, gradient)
    objective(x + 0.1)
    assert len(calls) == 2 and objective(x)[0] == F and len(calls) == 3


@pytest.mark.parametrize("m, step", [(15, 1), (35, 3)])
def test_mean_row_is_taken_from_evenly_spaced_rows_in_float64(monkeypatch, m, step):
    """mu is the float64 mean of every step-th row, step = max(1, m // SAMPLE_ROWS)."""
    monkeypatch.setattr(catsdogs.neuron.lbfgs, "SAMPLE_ROWS", 10)
    X = toy_problem(m=m, n=20, seed=6)[0] * np.float32(1000)  # float32 sums would round at 1e-7 of 1000s
    mu = Coordinates(X, 0.1).mu
    assert mu.dtype == np.float64
    np.testing.assert_allclose(mu, np.mean(X[::step].astype(np.float64), axis=0), rtol=1e-13)


def test_principal_directions_are_the_top_eigenvectors_of_the_covariance(monkeypatch):
    small_rank(monkeypatch, rank=3)
    rng = np.random.default_rng(0)
    scales = np.array([5.0, 3.0, 2.0, 1.5] + [0.1] * 26)  # four strong directions in a random basis
    basis = np.linalg.qr(rng.normal(size=(30, 30)))[0]
    S = ((rng.normal(size=(400, 30)) * scales) @ basis.T + 0.5).astype(np.float32)
    mu = S.mean(axis=0, dtype=np.float64)
    U, s = principal_directions(S, mu, l2=0.01)
    lam, vectors = np.linalg.eigh(np.cov(S.T.astype(np.float64), bias=True))  # ascending
    lam, vectors = lam[::-1], vectors[:, ::-1]
    np.testing.assert_allclose(np.abs(U.T @ vectors[:, :3]), np.eye(3), atol=2e-3)  # same directions
    h = lam / 4 + 0.01
    np.testing.assert_allclose(s, np.sqrt(h[3] / h[:3]), rtol=2e-3)  # curvature scaled to the 4th's


def scale_matrix(U, s):
    """P = I + U diag(s - 1) U^T (n, n), the change of variables' matrix (the same for either sign of a u_i)."""
    return np.eye(U.shape[0]) + U @ np.diag(s - 1) @ U.T


@pytest.mark.parametrize("rows, offset", [(60, 0.5), (200, 30.0)])
def test_principal_directions_equal_the_float64_recipe(monkeypatch, rows, offset):
    """The documented recipe in plain float64: k = min(RANK, min(r, n) - OVERSAMPLE - 1); V (n, k + OVERSAMPLE)
    standard normal from default_rng(0); POWER_STEPS times V = orth((S - mu)^T (S - mu) V); the SVD of
    (S - mu) V; u_i = V w_i, h_i = sigma_i^2 / r / 4 + l2, s_i = sqrt(h_k / h_i). Features without a gap
    in their spectrum (so that the result depends on every step, the start included), far from zero or not."""
    small_rank(monkeypatch, rank=5)
    rng = np.random.default_rng(rows)
    S = (rng.random((rows, 24)) + offset).astype(np.float32)
    mu = S.mean(axis=0, dtype=np.float64)
    U, s = principal_directions(S, mu, l2=0.02)
    k = min(5, min(S.shape) - 3 - 1)
    centred = S.astype(np.float64) - mu
    V = np.random.default_rng(0).standard_normal((24, k + 3))
    for _ in range(catsdogs.neuron.lbfgs.POWER_STEPS):
        V = np.linalg.qr(centred.T @ (centred @ V))[0]
    _, singular, Wt = np.linalg.svd(centred @ V, full_matrices=False)
    h = singular**2 / rows / 4 + 0.02
    assert U.shape == (24, k) and s.shape == (k,) and U.dtype == s.dtype == np.float64
    np.testing.assert_allclose(s, np.sqrt(h[k] / h[:k]), rtol=1e-4)
    np.testing.assert_allclose(scale_matrix(U, s), scale_matrix((V @ Wt.T)[:, :k], s), atol=1e-4)


@pytest.mark.parametrize("rows, l2", [(14, 0.02), (13, 0.02), (4, 0.02), (100, 0.0)])
def test_principal_directions_none_when_too_few_rows_or_no_curvature(monkeypatch, rows, l2):
    """k = min(RANK, min(r, n) - OVERSAMPLE - 1) directions: one from 14 rows, none from 13 or fewer (the
    sketch needs k + OVERSAMPLE columns and one more singular value, h_k); none either from features that
    never vary (black photos) without l2, where h_k = 0 leaves no curvature to scale to."""
    monkeypatch.setattr(catsdogs.neuron.lbfgs, "OVERSAMPLE", 12)
    S = np.random.default_rng(3).random((rows, 30), dtype=np.float32) * (rows != 100)
    U, s = principal_directions(S, S.mean(axis=0, dtype=np.float64), l2)
    k = 1 if rows == 14 else 0
    assert U.shape == (30, k) and s.shape == (k,) and np.all(np.isfinite(s))


def test_principal_directions_run_one_blas_thread_and_never_copy_the_rows(monkeypatch):
    """Deterministic whatever the machine (one BLAS thread, however many the caller allows), and products
    in float32 with S, never a float64 copy of it (2,000 x 12,288 rows: 98 MB in float32)."""
    S = np.random.default_rng(0).random((1000, 4000), dtype=np.float32)
    mu = S.mean(axis=0, dtype=np.float64)
    threads = []
    qr = np.linalg.qr

    def qr_noting_threads(*args, **kwargs):
        threads.extend(numpy_blas_threads())
        return qr(*args, **kwargs)

    monkeypatch.setattr(np.linalg, "qr", qr_noting_threads)
    with threadpool_limits(limits=2, user_api="blas"):
        tracemalloc.start()
        try:
            principal_directions(S, mu, 0.01)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert threads and set(threads) == {1}
    assert peak < S.nbytes


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_lbfgs_reaches_the_optimum_of_scikit_learn_for_the_same_C(C):
    X, y = toy_problem(m=700, n=60, seed=7)  # features in [0, 1), as the pipeline's
    X_train, y_train, X_valid, y_valid = X[:500], y[:500], X[500:], y[500:]
    l2 = 1 / (C * len(y_train))  # scikit-learn minimises C sum(log loss) + |W|^2 / 2 = C m F
    W, b, history = fit(X_train, y_train, X_valid, y_valid, lbfgs_params(l2=l2), progress=False)
    assert len(history) < 501  # stopped on the tolerance, not on train.epochs
    reference = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X_train.astype(np.float64), y_train)
    W_ref, b_ref = reference.coef_[0], reference.intercept_[0]
    F, F_ref = objective64(X_train, y_train, W, b, l2), objective64(X_train, y_train, W_ref, b_ref, l2)
    assert pytest.approx(F_ref, rel=1e-6) == F
    correct = np.sum((forward(X_valid, W, b) > 0) == y_valid)
    correct_ref = np.sum(reference.predict(X_valid) == y_valid)
    assert abs(int(correct) - int(correct_ref)) <= 2
    np.testing.assert_allclose(W, W_ref, atol=2e-3 * np.abs(W_ref).max())


def test_history_has_one_row_per_iteration_from_the_zero_weights():
    X, y, X_valid, y_valid = split_toy()
    W, b, history = fit(X, y, X_valid, y_valid, lbfgs_params(l2=0.01, epochs=3), progress=False)
    assert list(history.epoch) == [0, 1, 2, 3]  # stopped after train.epochs iterations
    assert history.train_loss.iloc[0] == pytest.approx(np.log(2))  # W = 0, b = 0: a = 1/2
    assert list(history.train_loss) == sorted(history.train_loss, reverse=True)  # each iteration lowers F
    row = history.iloc[-1]  # the last row is the returned weights'
    z, z_valid = forward(X, W, b), forward(X_valid, W, b)
    assert row.train_loss == pytest.approx(loss_value("cross_entropy", z, sigmoid(z), y), rel=1e-6)
    assert row.valid_loss == pytest.approx(loss_value("cross_entropy", z_valid, sigmoid(z_valid), y_valid), rel=1e-6)
    assert row.valid_accuracy == np.mean((z_valid > 0) == y_valid)


def max_gradient(X, y, W, b, l2):
    """max |dF/dx| at the neuron's (W, b), in the coordinates x = (v, c) L-BFGS moves (float64)."""
    coordinates = Coordinates(X, l2)
    P = np.eye(X.shape[1]) + coordinates.U @ np.diag(coordinates.s - 1) @ coordinates.U.T
    x = np.append(np.linalg.solve(P, W.astype(np.float64)), b + coordinates.mu @ W)  # (v, c) of W, b
    return np.abs(chain_rule_gradient(X, y, x, l2, coordinates)[2]).max()


def test_stops_when_the_gradient_is_within_the_tolerance():
    X, y, X_valid, y_valid = split_toy()
    params = lbfgs_params(l2=0.01, tolerance=1e-6)
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False)
    assert len(history) - 1 < params.epochs
    assert max_gradient(X, y, W, b, params.l2) < 1e-5


@pytest.mark.parametrize("tolerance", [1e-2, 1e-4])
def test_stops_at_the_first_iterate_within_the_tolerance(tolerance):
    """The last iterate's gradient is within train.tolerance and the one before is not (the same run cut
    one iteration short); scipy takes every option given (an unknown one would warn and be ignored)."""
    X, y, X_valid, y_valid = split_toy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        W, b, history = fit(X, y, X_valid, y_valid, lbfgs_params(l2=0.01, tolerance=tolerance), progress=False)
        n = len(history) - 1
        W_before, b_before, _ = fit(
            X, y, X_valid, y_valid, lbfgs_params(l2=0.01, tolerance=tolerance, epochs=n - 1), progress=False
        )
    assert max_gradient(X, y, W, b, 0.01) <= tolerance < max_gradient(X, y, W_before, b_before, 0.01)


def test_early_stopping_keeps_the_iterate_of_the_best_validation_loss():
    X, y, X_valid, y_valid = split_toy(m=120, n=200, seed=3, m_train=60)  # n > m: overfits without l2
    params = lbfgs_params(early_stopping=3, l2=1e-4)
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False)
    best = int(history.valid_loss.idxmin())
    assert best > 0 and len(history) == best + 4  # stopped 3 iterations after the best one
    W_best, b_best, _ = fit(X, y, X_valid, y_valid, lbfgs_params(epochs=best, l2=1e-4), progress=False)
    np.testing.assert_array_equal(W, W_best)
    assert b == b_best


def test_result_does_not_depend_on_the_number_of_threads(monkeypatch):
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "BLOCK_BYTES", 4 * 20 * 2)
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "INLINE_BYTES", 0)  # really use the thread pool on tiny data
    X, y, X_valid, y_valid = split_toy(m=90, m_train=70)
    runs = [fit(X, y, X_valid, y_valid, lbfgs_params(l2=0.01), progress=False, threads=t) for t in (1, 3)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] and runs[0][2].equals(runs[1][2])


def test_fit_picks_lbfgs():
    X, y, X_valid, _ = split_toy()
    assert isinstance(catsdogs.neuron.fit.solver_for(lbfgs_params(), X, y, X_valid, None), catsdogs.neuron.fit.LBFGS)


@pytest.mark.parametrize(
    "changes, got",
    [
        ({"loss": "mse"}, "train.loss = 'mse'"),
        ({"batch_size": 8}, "train.batch_size = 8"),
        ({"momentum": 0.9}, "train.momentum = 0.9"),
        ({"loss": "mse", "momentum": 0.5}, "train.loss = 'mse', train.momentum = 0.5"),
    ],
)
def test_lbfgs_needs_cross_entropy_at_full_batch_without_momentum(changes, got):
    with pytest.raises(
        ParamError,
        match="train.optimizer = 'lbfgs' needs train.loss = 'cross_entropy', "
        r"train.batch_size = 0 \(full batch\) and train.momentum = 0.0; got " + got,
    ):
        lbfgs_params(**changes)
