"""L-BFGS for the cross-entropy neuron at full batch (train.optimizer: lbfgs): scipy's L-BFGS-B, each
evaluation of the objective and its gradient one fused float32 pass over X (stages/passes.py).

It minimises F(W, b) = J(W, b) + l2/2 |W|^2 with J the mean cross-entropy of stages/neuron.py. F is convex
(strictly, with l2 > 0), so there is one optimum, the one scikit-learn's LogisticRegression(C) finds for
l2 = 1 / (C m): tests/test_lbfgs.py checks both.

Centering. L-BFGS moves (W, c) with z = (X - mu) W + c, mu (n,) the mean training row; the neuron's bias
is b = c - mu W. Same model, same optimum; but pixel features in [0, 1] have a mean row far from zero,
and uncentered, the bias and the weights along mu fight each other (a long, narrow valley of F: many
more iterations). Centering costs nothing: (X - mu) W + c = X W + (c - mu W), and
dF/dW = (X - mu)^T dz + l2 W = X^T dz - mu sum(dz) + l2 W, dF/dc = sum(dz), with dz = dJ/dz, so each
evaluation is the pass of stages/passes.py at bias c - mu W, and X is never changed or copied.

Stopping (scipy's tests): the largest component of the gradient (W and c) is at most train.tolerance;
or F decreased by less than FTOL of itself in an iteration (the float32 passes cannot resolve
less); or the line search finds no lower F (the same, at float32 precision); or train.epochs iterations.
The history has one row per iteration: row k holds the losses and accuracies after k iterations.
"""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Callable

import numpy as np
from scipy.optimize import minimize

from stages.neuron import loss_gradient, loss_value, sigmoid
from stages.passes import ShardedPass

if TYPE_CHECKING:
    from stages.train import TrainParams

MEMORY = 50  # pairs (s, y) of L-BFGS's inverse-Hessian estimate (scipy's maxcor)
FTOL = 1e-9  # relative decrease of F below which an iteration counts as no progress (float32 passes)
MAX_LINE_SEARCH = 20  # evaluations per line search (scipy's maxls)


class Objective:
    """F(W, c) and its gradient at x = (W, c) (n + 1,) float64, by one pass over X (m, n) float32.

    __call__(x) -> (F, dF/dx (n + 1,) float64). The last evaluation's scores z = X W + b (m,) are kept
    (`z`, at `x`): the history reads them instead of a second pass."""

    def __init__(self, X, y, l2: float, passes: ShardedPass, mu: np.ndarray):
        self.X, self.y, self.l2, self.passes, self.mu = X, y, l2, passes, mu
        self.dz_of = partial(loss_gradient, "cross_entropy", "exact", m=X.shape[0])  # dJ/dz = (a - y) / m
        self.z = np.empty(X.shape[0], dtype=np.float32)
        self.x: np.ndarray | None = None  # where z was computed
        self.value: tuple[float, np.ndarray] | None = None

    def weights(self, x: np.ndarray) -> tuple[np.ndarray, np.float32]:
        """The neuron's W (n,) float32 and b = c - mu W of x = (W, c)."""
        return x[:-1].astype(np.float32), np.float32(x[-1] - np.dot(self.mu, x[:-1]))

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        if self.x is not None and np.array_equal(x, self.x):
            return self.value
        W, b = self.weights(x)
        grad_W, grad_b = self.passes(self.X, self.y, W, b, self.z, self.dz_of)  # X^T dz, sum dz: one read of X
        W64 = x[:-1]
        F = loss_value("cross_entropy", self.z, sigmoid(self.z), self.y) + self.l2 / 2 * np.dot(W64, W64)
        gradient = np.empty_like(x)
        gradient[:-1] = grad_W - self.mu * grad_b + self.l2 * W64  # (X - mu)^T dz + l2 W
        gradient[-1] = grad_b  # sum dz
        self.x, self.value = x.copy(), (F, gradient)
        return self.value


class LBFGS:
    """train.optimizer lbfgs (module docstring): run(epochs, record) drives scipy's L-BFGS-B and records
    every iterate; state() is the last recorded one."""

    def __init__(self, X, y, X_valid, params: TrainParams, passes: ShardedPass):
        self.X_valid, self.passes, self.tolerance = X_valid, passes, params.tolerance
        mu = np.dot(np.full(X.shape[0], 1 / X.shape[0], dtype=np.float32), X).astype(np.float64)  # mean row
        self.objective = Objective(X, y, params.l2, passes, mu)
        self.z_valid = np.empty(X_valid.shape[0], dtype=np.float32)
        self.x = np.zeros(X.shape[1] + 1)  # (W, c) = 0: W = 0, b = 0 as in every recipe
        self.message = ""

    def record_at(self, x: np.ndarray, epoch: int, record: Callable) -> bool:
        """Score x on both sets (the training scores from its evaluation) and record it as row `epoch`."""
        self.objective(x)  # no pass when x was the last point evaluated (always, after a line search)
        W, b = self.objective.weights(x)
        self.passes(None, None, W, b, None, None, self.X_valid, self.z_valid)  # z_valid = X_valid W + b
        self.x = x.copy()
        return record(epoch, self.objective.z, self.z_valid)

    def run(self, epochs: int, record: Callable[[int, np.ndarray, np.ndarray], bool]) -> None:
        if self.record_at(self.x, 0, record):
            return
        iterations = iter(range(1, epochs + 1))

        def callback(intermediate_result) -> None:
            if self.record_at(intermediate_result.x, next(iterations), record):
                raise StopIteration  # early stopping: scipy ends the run

        result = minimize(
            self.objective, self.x, jac=True, method="L-BFGS-B", callback=callback,
            options={"maxiter": epochs, "gtol": self.tolerance, "ftol": FTOL, "maxcor": MEMORY, "maxls": MAX_LINE_SEARCH},
        )
        self.message = result.message

    def state(self):
        return (self.x.copy(),)

    def weights(self, state):
        return self.objective.weights(state[0])
