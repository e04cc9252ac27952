"""L-BFGS for the cross-entropy neuron at full batch (train.optimizer: lbfgs): scipy's L-BFGS-B, each
evaluation of the objective and its gradient one fused float32 pass over X (catsdogs/neuron/fast_passes.py).

It minimises F(W, b) = J(W, b) + l2/2 |W|^2 with J the mean cross-entropy of catsdogs/neuron/reference.py. F is convex
(strictly, with l2 > 0), so there is one optimum, the one scikit-learn's LogisticRegression(C) finds for
l2 = 1 / (C m): tests/test_lbfgs.py checks both.

Conditioning. L-BFGS does not move (W, b) but x = (v, c), with W = P v and b = c - mu W (Coordinates):
a change of variables, so the same model and the same optimum, chosen to make F round rather than a
long, narrow valley, where L-BFGS needs many iterations (on the 25,000-image features: 46 without it, 12
with it, to the same optimum).
- Centering: z = X W + b = (X - mu) W + c, mu (n,) the mean row. Pixel features in [0, 1] have a mean row
  far from zero; uncentred, the bias and the weights along mu fight each other.
- Principal directions: near W = 0 the Hessian of F is about (X - mu)^T (X - mu) / (4 m) + l2 I (the
  sigmoid's slope is at most 1/4). Neighbouring pixels are correlated, so a few directions u_i of the
  features carry most of their variance lambda_i and F is far steeper along them. P = I + U diag(s - 1) U^T
  with U (n, k) the top k = RANK of them and s_i = sqrt(h_k / h_i), h_i = lambda_i / 4 + l2, makes the
  curvature along each u_i that of the (k+1)-th. U and lambda are estimated from SAMPLE_ROWS evenly
  spaced rows (a randomized subspace iteration, a few products with a 2,000 x n matrix).
Neither costs a pass: (X - mu) W + c = X W + (c - mu W), and dF/dv = P (X^T dz - mu sum(dz) + l2 W),
dF/dc = sum(dz) with dz = dJ/dz (P is symmetric), so each evaluation is the pass of catsdogs/neuron/fast_passes.py at
W = P v, b = c - mu W, and X is never changed or copied.

Stopping (scipy's tests): no component of the gradient in x = (v, c) is larger than train.tolerance;
or F decreased by less than FTOL of itself in an iteration (the float32 passes cannot resolve less); or
the line search finds no lower F (the same); or train.epochs iterations. The history has one row per
iteration: row k holds the losses and accuracies after k iterations. With early stopping, the run ends
train.early_stopping iterations after the lowest validation loss and keeps that iterate's weights.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from catsdogs.neuron.fast_passes import BLAS_THREADS, ShardedPass
from catsdogs.neuron.reference import Objective, sigmoid

if TYPE_CHECKING:
    from catsdogs.pipeline.config import TrainParams

MEMORY = 50  # pairs (s, y) of L-BFGS's inverse-Hessian estimate (scipy's maxcor)
FTOL = 1e-9  # relative decrease of F below which an iteration counts as no progress (float32 passes)
MAX_LINE_SEARCH = 20  # evaluations per line search (scipy's maxls)
RANK = 40  # principal directions of the features rescaled by the change of variables (Coordinates)
SAMPLE_ROWS = 2000  # training rows they (and the mean row mu) are estimated from
OVERSAMPLE, POWER_STEPS = 10, 2  # the randomized subspace iteration: extra directions, steps


def principal_directions(S: np.ndarray, mu: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """U (n, k) orthonormal and s (k,) of the change of variables (module docstring) from the rows S (r, n)
    centred on mu (n,): randomized subspace iteration (Halko, Martinsson & Tropp 2011) for the top k + 1
    principal directions, with k = RANK or fewer for a small S. Seeded and one-threaded: deterministic."""
    k = min(RANK, min(S.shape) - OVERSAMPLE - 1)
    h = None
    if k > 0:
        mu = mu.astype(np.float32)
        V = np.random.default_rng(0).standard_normal((S.shape[1], k + OVERSAMPLE)).astype(np.float32)
        with BLAS_THREADS.limit(limits=1, user_api="blas"):
            for _ in range(POWER_STEPS):
                B = S @ V - mu @ V  # (S - mu) V
                V = np.linalg.qr(S.T @ B - np.outer(mu, B.sum(axis=0)))[0]  # orthonormal basis of (S - mu)^T B
            _, singular, Vt = np.linalg.svd(S @ V - mu @ V, full_matrices=False)
        h = singular.astype(np.float64) ** 2 / S.shape[0] / 4 + l2  # curvature of F along each direction
    if h is None or h[k] <= 0:  # nothing to estimate from, or no curvature left to scale to
        return np.zeros((S.shape[1], 0)), np.zeros(0)
    return (V @ Vt.T)[:, :k].astype(np.float64), np.sqrt(h[k] / h[:k])


class Coordinates:
    """The change of variables (module docstring): x = (v, c) (n + 1,) float64 -> W = P v, b = c - mu W."""

    def __init__(self, X: np.ndarray, l2: float):
        sample = X[:: max(1, X.shape[0] // SAMPLE_ROWS)]  # evenly spaced rows (a view)
        self.mu = sample.mean(axis=0, dtype=np.float64)  # (n,); any mu gives the same optimum
        self.U, self.s = principal_directions(sample, self.mu, l2)

    def scale(self, v: np.ndarray) -> np.ndarray:
        """P v (n,) = v + U diag(s - 1) U^T v; P is symmetric, so this also maps dF/dW to dF/dv."""
        return v + self.U @ ((self.s - 1) * (self.U.T @ v))

    def weights(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """W = P v (n,) float64 and b = c - mu W of x = (v, c)."""
        W = self.scale(x[:-1])
        return W, x[-1] - np.dot(self.mu, W)


class ScaledObjective:
    """F and its gradient at x = (v, c) (n + 1,) float64 (Coordinates), by one pass over X (m, n) float32.

    __call__(x) -> (F, dF/dx (n + 1,) float64). The last evaluation's scores z = X W + b (m,) are kept
    (`z`, at `x`): the history reads them instead of a second pass."""

    def __init__(self, X, y, l2: float, passes: ShardedPass, coordinates: Coordinates):
        self.X, self.y, self.passes, self.coordinates = X, y, passes, coordinates
        self.objective = Objective("cross_entropy", "exact", l2)
        self.dz_of = partial(self.objective.dz, m=X.shape[0])  # dJ/dz = (a - y) / m
        self.z = np.empty(X.shape[0], dtype=np.float32)
        self.x: np.ndarray | None = None  # where z was computed
        self.value: tuple[float, np.ndarray] | None = None

    def weights(self, x: np.ndarray) -> tuple[np.ndarray, np.float32]:
        """The neuron's W (n,) float32 and b float32 at x = (v, c)."""
        W, b = self.coordinates.weights(x)
        return W.astype(np.float32), np.float32(b)

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        if self.x is not None and np.array_equal(x, self.x):
            return self.value  # type: ignore[return-value]
        W64, _ = self.coordinates.weights(x)
        W, b = self.weights(x)
        grad_W, grad_b = self.passes(self.X, self.y, W, b, self.z, self.dz_of)  # type: ignore[misc]  # X^T dz, sum dz: one read of X
        F = self.objective.value(self.z, sigmoid(self.z), self.y, W64)  # J + l2/2 |W|^2
        gradient = np.empty_like(x)
        dF_dW = grad_W - self.coordinates.mu * grad_b + self.objective.penalty_gradient(W64)
        gradient[:-1] = self.coordinates.scale(dF_dW)  # P dF/dW
        gradient[-1] = grad_b  # dF/dc = sum dz
        self.x, self.value = x.copy(), (F, gradient)
        return self.value


class LBFGS:
    """train.optimizer lbfgs (module docstring): run(epochs, record) drives scipy's L-BFGS-B and records
    every iterate; state() is the last recorded one."""

    def __init__(self, X, y, X_valid, params: TrainParams, passes: ShardedPass):
        self.X_valid, self.passes, self.tolerance = X_valid, passes, params.tolerance
        self.objective = ScaledObjective(X, y, params.l2, passes, Coordinates(X, params.l2))
        self.z_valid = np.empty(X_valid.shape[0], dtype=np.float32)
        self.x = np.zeros(X.shape[1] + 1)  # (v, c) = 0: W = 0, b = 0 as in every recipe

    def record_at(self, x: np.ndarray, epoch: int, record: Callable) -> bool:
        """Score x on both sets (the training scores from its evaluation) and record it as row `epoch`."""
        self.objective(x)  # no pass when x was the last point evaluated (always, after a line search)
        W, b = self.objective.weights(x)
        self.passes(None, None, W, b, None, None, self.X_valid, self.z_valid)  # z_valid = X_valid W + b
        self.x = x.copy()
        return record(epoch, self.objective.z, self.z_valid)

    def run(self, epochs: int, record: Callable[[int, np.ndarray, np.ndarray], bool]) -> None:
        from scipy.optimize import minimize  # here: only lbfgs runs pay for importing scipy (about 1 s)

        if self.record_at(self.x, 0, record):
            return
        iterations = iter(range(1, epochs + 1))

        def callback(intermediate_result) -> None:
            if self.record_at(intermediate_result.x, next(iterations), record):
                raise StopIteration  # early stopping: scipy ends the run

        minimize(
            self.objective,
            self.x,
            jac=True,
            method="L-BFGS-B",
            callback=callback,
            options={
                "maxiter": epochs,
                "gtol": self.tolerance,
                "ftol": FTOL,
                "maxcor": MEMORY,
                "maxls": MAX_LINE_SEARCH,
            },
        )

    def state(self):
        return (self.x.copy(),)

    def weights(self, state):
        return self.objective.weights(state[0])
