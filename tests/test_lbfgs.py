"""train.optimizer lbfgs (stages/lbfgs.py): its objective and gradient against the reference math
(stages/neuron.py), its optimum against scikit-learn's LogisticRegression for the same C, and its place
in fit (history, stopping, early stopping, threads, parameter checks)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import stages.fit
import stages.lbfgs
import stages.passes
from stages.fit import fit
from stages.lbfgs import Coordinates, Objective, principal_directions
from stages.neuron import backprop, forward, loss_value, sigmoid
from stages.params import ParamError
from stages.passes import ShardedPass
from stages.train import TrainParams
from tests.test_fit import split_toy, toy_problem


def lbfgs_params(**changes):
    return TrainParams(**{"optimizer": "lbfgs", "loss": "cross_entropy", "epochs": 500, **changes})


def objective64(X, y, W, b, l2):
    """F = J + l2/2 |W|^2 in float64, J the mean cross-entropy of stages/neuron.py."""
    X, y, W = X.astype(np.float64), y.astype(np.float64), W.astype(np.float64)
    z = forward(X, W, float(b))
    return loss_value("cross_entropy", z, sigmoid(z), y) + l2 / 2 * W @ W


def small_rank(monkeypatch, rank=4):
    """A change of variables with `rank` principal directions, estimated from every row, on small data."""
    monkeypatch.setattr(stages.lbfgs, "RANK", rank)
    monkeypatch.setattr(stages.lbfgs, "OVERSAMPLE", 3)


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
    monkeypatch.setattr(stages.passes, "BLOCK_BYTES", 4 * 20 * 3)  # 3-row blocks
    monkeypatch.setattr(stages.passes, "INLINE_BYTES", inline_bytes)
    small_rank(monkeypatch)
    X, y = toy_problem(m=50, n=20, seed=4)
    y = y.astype(np.float32)
    x = np.append(np.random.default_rng(1).normal(scale=0.5, size=20), 0.3)  # (v, c)
    l2 = 0.07
    coordinates = Coordinates(X, l2)
    assert coordinates.U.shape == (20, 4)  # the change of variables is not the identity here
    with ThreadPoolExecutor(2) as pool:
        objective = Objective(X, y, l2, ShardedPass(pool), coordinates)
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
    objective = Objective(X, y.astype(np.float32), 0.05, ShardedPass(None), coordinates)
    gradient = objective(x)[1].copy()

    def F(point):  # float64, from the neuron's weights W = P v, b = c - mu W
        W, b, _ = chain_rule_gradient(X, y, point, 0.05, coordinates)
        return objective64(X, y, W, b, 0.05)

    step = 1e-6
    numeric = [(F(x + step * e) - F(x - step * e)) / (2 * step) for e in np.eye(len(x))]
    np.testing.assert_allclose(gradient, numeric, rtol=1e-4, atol=1e-6)


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


def test_stops_when_the_gradient_is_within_the_tolerance():
    X, y, X_valid, y_valid = split_toy()
    params = lbfgs_params(l2=0.01, tolerance=1e-6)
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False)
    assert len(history) - 1 < params.epochs
    coordinates = Coordinates(X, params.l2)
    P = np.eye(X.shape[1]) + coordinates.U @ np.diag(coordinates.s - 1) @ coordinates.U.T
    x = np.append(np.linalg.solve(P, W.astype(np.float64)), b + coordinates.mu @ W)  # (v, c) of W, b
    gradient = chain_rule_gradient(X, y, x, params.l2, coordinates)[2]  # in the coordinates L-BFGS moves
    assert np.abs(gradient).max() < 1e-5


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
    monkeypatch.setattr(stages.passes, "BLOCK_BYTES", 4 * 20 * 2)
    monkeypatch.setattr(stages.passes, "INLINE_BYTES", 0)  # really use the thread pool on tiny data
    X, y, X_valid, y_valid = split_toy(m=90, m_train=70)
    runs = [fit(X, y, X_valid, y_valid, lbfgs_params(l2=0.01), progress=False, threads=t) for t in (1, 3)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] and runs[0][2].equals(runs[1][2])


def test_fit_picks_lbfgs():
    X, y, X_valid, _ = split_toy()
    assert isinstance(stages.fit.solver_for(lbfgs_params(), X, y, X_valid, None), stages.fit.LBFGS)


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
