"""The article's single neuron, plainly: the math every faster path in catsdogs/neuron/ is tested against.

Notation (rows are examples; the article's notebook used the transpose, one column per image):
    X (m, n) features, y (m,) labels in {0, 1} (cat = 1), W (n,) weights, b scalar bias,
    z = X W + b (m,), a = sigmoid(z) (m,) = P(cat), J = the loss averaged over the m examples,
    F = J + l2/2 |W|^2 the objective every solver minimises (b is not penalised).

The map: equation -> reference function (here) -> fast path -> the test that pins them together.
    a = sigmoid(z) = 1 / (1 + e^-z)   sigmoid        portable.sigmoid (as is)     test_portable.py
    z = X W + b                       forward        fast_passes.forward_backward, test_passes.py
                                                     fast_passes.model_scores (evaluate, predict)
    J: 1/(2m) sum (a - y)^2, or       loss_value     (float64, as is)             test_neuron.py
       1/m sum log(1 + e^z) - y z
    dz = dJ/dz                        loss_gradient  (float32, as is)             test_neuron.py
    F, dF/dW = dJ/dW + l2 W           Objective      optimizers, lbfgs.ScaledObjective
                                                                                  test_optimizers.py, test_lbfgs.py
    dJ/dW = X^T dz, dJ/db = sum dz    backprop       fast_passes.ShardedPass      test_passes.py
    W -= lr dF/dW, b -= lr dJ/db,     reference_fit  fit.FullBatch, MiniBatch,    test_fit.py
       epochs times from W = 0, b = 0                Dual, LBFGS (lbfgs.py)       (test_lbfgs.py)
sigmoid and log(1 + e^z) are catsdogs/neuron/portable.py's, the same bits on every CPU
(docs/reproducibility.md); forward and backprop are the article's plain BLAS products (an oracle and the
benchmarks' baseline: their last bits depend on the CPU, which no output does).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from catsdogs.neuron.portable import dot, log1p_exp, sigmoid

LOSSES = ("mse", "cross_entropy")
GRADIENTS = ("exact", "notebook")


def forward(X: np.ndarray, W: np.ndarray, b: float | np.floating) -> np.ndarray:
    """z = X W + b (m,) for X (m, n), W (n,): the neuron's score; a = sigmoid(z) is P(cat)."""
    return X @ W + b


def predict(a: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Labels (m,) int64 from P(cat) a (m,): 1 (cat) where a > threshold, else 0 (dog)."""
    return (a > threshold).astype(np.int64)


def _check_names(loss: str, gradient: str = "exact") -> None:
    """ValueError unless `loss` is one of LOSSES and `gradient` one of GRADIENTS: a misspelt name
    (TrainParams checks params.yaml's, a direct caller's are checked here) never means another loss."""
    if loss not in LOSSES:
        raise ValueError(f"loss {loss!r}: not one of {', '.join(LOSSES)}")
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient {gradient!r}: not one of {', '.join(GRADIENTS)}")


def loss_value(loss: str, z: np.ndarray, a: np.ndarray, y: np.ndarray) -> float:
    """Mean loss J over the m examples, accumulated in float64; z, a, y (m,). A `loss` not in LOSSES
    is a ValueError."""
    _check_names(loss)
    z, a, y = (np.asarray(v, dtype=np.float64) for v in (z, a, y))
    if loss == "mse":
        return float(0.5 * np.mean((a - y) ** 2))  # J = 1/(2m) sum (a - y)^2
    # J = -1/m sum y log a + (1 - y) log(1 - a) = 1/m sum log(1 + e^z) - y z, stable for any z
    return float(np.mean(log1p_exp(z) - y * z))


def loss_gradient(loss: str, gradient: str, a: np.ndarray, y: np.ndarray, m: int | None = None) -> np.ndarray:
    """dJ/dz (k,) for k of the m examples J averages over (m = k by default): how J changes with each z.

    gradient "notebook" is the article notebook's backprop for mse, which applies the sigmoid a second
    time: dz = (a - y) s (1 - s) / m with s = sigmoid(a) instead of a. A `loss` not in LOSSES or a
    `gradient` not in GRADIENTS is a ValueError.
    """
    _check_names(loss, gradient)
    m = a.shape[0] if m is None else m
    if loss == "cross_entropy":
        return (a - y) / m  # sigmoid' = a (1 - a) cancels the log's 1 / (a (1 - a))
    s = sigmoid(a) if gradient == "notebook" else a  # notebook: sigmoid applied to A a second time
    return (a - y) * s * (1 - s) / m  # chain rule: (a - y) * sigmoid'(z), sigmoid'(z) = a (1 - a)


class Objective:
    """F(W, b) = J(W, b) + l2/2 |W|^2, the one objective every path minimises, in the shape of
    scikit-learn's LinearModelLoss: J and dJ/dz (loss_value, loss_gradient above) and the L2 term, written
    here once (b is not penalised). The reference loop, the optimizers, L-BFGS and fit's divergence
    check all take it."""

    def __init__(self, loss: str = "mse", gradient: str = "exact", l2: float = 0.0):
        self.loss, self.gradient, self.l2 = loss, gradient, l2

    def mean_loss(self, z: np.ndarray, a: np.ndarray, y: np.ndarray) -> float:
        """J: the mean loss over the rows of z, a, y (m,), without the L2 term."""
        return loss_value(self.loss, z, a, y)

    def dz(self, a: np.ndarray, y: np.ndarray, m: int | None = None) -> np.ndarray:
        """dJ/dz (k,) for k of the m rows J averages over (loss_gradient)."""
        return loss_gradient(self.loss, self.gradient, a, y, m)

    def penalty(self, W: np.ndarray) -> float:
        """The L2 term l2/2 |W|^2."""
        return self.l2 / 2 * dot(W, W)

    def penalty_gradient(self, W: np.ndarray) -> np.ndarray:
        """d/dW of l2/2 |W|^2 = l2 W; l2 is also the penalty's curvature (its Hessian is l2 I)."""
        return self.l2 * W

    def add_penalty_gradient(self, grad_W: np.ndarray, W: np.ndarray) -> None:
        """grad_W += l2 W in place: dJ/dW becomes dF/dW."""
        if self.l2:
            grad_W += self.penalty_gradient(W)

    def value(self, z: np.ndarray, a: np.ndarray, y: np.ndarray, W: np.ndarray) -> float:
        """F = J + l2/2 |W|^2."""
        return self.mean_loss(z, a, y) + self.penalty(W)


def backprop(
    X: np.ndarray, y: np.ndarray, W: np.ndarray, b: float, loss: str = "mse", gradient: str = "exact"
) -> tuple[np.ndarray, float]:
    """(dJ/dW (n,), dJ/db) of the loss J averaged over the m rows of X (m, n), at W (n,), b."""
    a = sigmoid(forward(X, W, b))
    dz = loss_gradient(loss, gradient, a, y)  # dJ/dz (m,)
    return X.T @ dz, dz.sum()  # dJ/dW = X^T dz, dJ/db = sum dz


def reference_fit(
    X: np.ndarray,
    y: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    lr: float,
    epochs: int,
    loss: str = "mse",
    gradient: str = "exact",
    l2: float = 0.0,
    on_epoch: Callable[[int, np.ndarray], None] | None = None,
) -> tuple[np.ndarray, float, np.ndarray]:
    """The article's loop in float64: full-batch gradient descent from W = 0, b = 0, minimising
    J + l2/2 |W|^2 (b is not penalised).

    X (m, n), X_valid (m_valid, n); y (m,), y_valid (m_valid,) in {0, 1}. Returns W (n,), b and the
    losses (epochs + 1, 2): J on the training and the validation rows after 0, 1, ..., epochs updates
    (without the L2 term). on_epoch(epoch, losses_row) is called after each row (e.g. to time it).
    A negative `epochs` is a ValueError.
    """
    if epochs < 0:
        raise ValueError(f"epochs = {epochs}: the number of updates cannot be negative")
    X, X_valid = np.asarray(X, dtype=np.float64), np.asarray(X_valid, dtype=np.float64)
    y, y_valid = np.asarray(y, dtype=np.float64), np.asarray(y_valid, dtype=np.float64)
    objective = Objective(loss, gradient, l2)
    W, b = np.zeros(X.shape[1]), 0.0
    losses = np.zeros((epochs + 1, 2))
    for epoch in range(epochs + 1):
        z, z_valid = forward(X, W, b), forward(X_valid, W, b)
        a = sigmoid(z)
        losses[epoch] = objective.mean_loss(z, a, y), objective.mean_loss(z_valid, sigmoid(z_valid), y_valid)
        if on_epoch:
            on_epoch(epoch, losses[epoch])
        if epoch == epochs:
            break
        dz = objective.dz(a, y)  # dJ/dz (m,)
        W = W - lr * (X.T @ dz + objective.penalty_gradient(W))  # dJ/dW = X^T dz, plus the L2 term's l2 W
        b = b - lr * dz.sum()  # dJ/db = sum dz
    return W, b, losses
