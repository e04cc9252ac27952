"""Training: fit runs the epochs from W = 0, b = 0, records one history row per epoch, stops early.

How the weights move is a solver's business. fit picks one (solver_for):
    FullBatch  the plain path: one fused read of X per epoch gives z = X W + b for the history and the
               gradient X^T dz (catsdogs/neuron/fast_passes.py), then one optimizer step (catsdogs/neuron/optimizers.py);
    Dual       the fast path for far fewer training rows than features (uses_gram), see below;
    MiniBatch  train.batch_size > 0: one optimizer step per batch of rows, in a seeded random order;
    LBFGS      train.optimizer lbfgs: L-BFGS, one history row per iteration (catsdogs/neuron/lbfgs.py).
Each computes the math of catsdogs/neuron/reference.py; tests/test_fit.py checks each against reference.reference_fit
(tests/test_lbfgs.py: LBFGS against the reference gradient and scikit-learn's optimum).

A solver has three methods, all fit needs:
    run(epochs, record)                           calls record(k, z (m,), z_valid (m_valid,), a, a_valid)
                                                  with the scores and a = sigmoid(z) after k = 0, 1, ...
                                                  epochs (or iterations), and stops after `epochs` or
                                                  when record returns True
    state() -> tuple                              a copy of what it updates (early stopping keeps the best)
    weights(state) -> W (n,) float32, b float32   the neuron's weights of a state
The epoch-by-epoch solvers get run from EpochLoop, from two methods of their own:
    forward(last) -> z (m,), z_valid (m_valid,)  the scores at the current weights (last: no step follows),
                                                  two parts of one array `scores` (one sigmoid for both)
    step(a)                                       one epoch of updates, given a = sigmoid(z) (m,)
A new solver is a class with these and a branch in solver_for.

The dual: gradient descent (with or without momentum and L2) starts at W = 0 and every step adds X^T
times a vector, so W = X^T theta with theta (m,), z = X W + b = G theta + b with G = X X^T (m, m), and a
step on W with dJ/dW = X^T dz is the step on theta with dz. After one product G (and X_valid X^T), an
epoch reads G instead of X: m / n of the bytes. Same math as the primal; the rounding differs, within
float32 precision.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from catsdogs.errors import DataError, ParamError
from catsdogs.neuron.fast_passes import ShardedPass, forward_backward, pixel_gram, pixel_values, scores_by_columns
from catsdogs.neuron.history import EarlyStopping, History, show_progress
from catsdogs.neuron.lbfgs import LBFGS
from catsdogs.neuron.portable import vecmat
from catsdogs.neuron.recipe import divergence_message, make_optimizer, objective_of
from catsdogs.neuron.reference import sigmoid
from catsdogs.pipeline.processes import usable_cores

if TYPE_CHECKING:
    from catsdogs.pipeline.config import TrainParams

GRAM_MAX_RATIO = 0.25  # dual (Gram matrix) training when m <= this x n ...
GRAM_EPOCHS_PER_ROW = 8  # ... and epochs >= m / this: see uses_gram


Record = Callable[
    [int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], bool
]  # record(k, z, z_valid, a, a_valid) -> stop


class Solver(Protocol):
    def run(self, epochs: int, record: Record) -> None: ...
    def state(self) -> tuple: ...
    def weights(self, state: tuple) -> tuple[np.ndarray, np.float32]: ...


class EpochLoop:
    """run for a solver that moves the weights one epoch at a time: forward, record, step, in turn."""

    forward: Callable[[bool], tuple[np.ndarray, np.ndarray]]  # the subclass's (module docstring)
    scores: np.ndarray  # (m + m_valid,): z and z_valid, the two parts forward returns
    step: Callable[[np.ndarray], None]

    def run(self, epochs: int, record: Record) -> None:
        for epoch in range(epochs + 1):
            last = epoch == epochs
            z, z_valid = self.forward(last)
            a_all = sigmoid(self.scores)  # P(cat) of the training and the validation rows, in one pass
            a, a_valid = a_all[: len(z)], a_all[len(z) :]
            if record(epoch, z, z_valid, a, a_valid) or last:
                return
            self.step(a)


class FullBatch(EpochLoop):
    """The plain path: W (n,), b updated once per epoch with the gradient over all m rows."""

    def __init__(self, X, y, X_valid, params: TrainParams, passes: ShardedPass):
        self.X, self.y, self.X_valid, self.passes = X, y, X_valid, passes
        self.scores = np.empty(X.shape[0] + X_valid.shape[0], dtype=np.float32)
        self.z, self.z_valid = self.scores[: X.shape[0]], self.scores[X.shape[0] :]
        self.W, self.b = np.zeros(X.shape[1], dtype=np.float32), np.float32(0.0)
        self.objective = objective_of(params)
        self.optimizer = make_optimizer(params, self.objective)
        self.dz_of: Callable[..., np.ndarray] = partial(self.objective.dz, m=X.shape[0])  # dJ/dz of J over m rows
        self.grad = None

    def forward(self, last):
        # one read of X: z = X W + b and, when a step follows, (dJ/dW, dJ/db) = (X^T dz, sum dz)
        dz_of = None if last else self.dz_of
        self.grad = self.passes(self.X, self.y, self.W, self.b, self.z, dz_of, self.X_valid, self.z_valid)
        return self.z, self.z_valid

    def step(self, a):
        self.b = self.optimizer.step(self.W, self.b, *self.grad)

    def state(self):
        return self.W.copy(), self.b

    def weights(self, state):
        return state


class MiniBatch(FullBatch):
    """W (n,), b updated once per batch of batch_size rows, the rows in a new seeded order each epoch."""

    def __init__(self, X, y, X_valid, params: TrainParams, passes: ShardedPass):
        super().__init__(X, y, X_valid, params, passes)
        self.batch_size, self.rng = params.batch_size, np.random.default_rng(params.seed)
        self.dz_of = self.objective.dz  # J averages over each batch
        self.z_batch = np.empty(self.batch_size, dtype=np.float32)

    def forward(self, last):
        self.passes(self.X, self.y, self.W, self.b, self.z, None, self.X_valid, self.z_valid)  # z = X W + b
        return self.z, self.z_valid

    def step(self, a):
        order = self.rng.permutation(self.X.shape[0])
        for start in range(0, len(order), self.batch_size):
            rows = np.sort(order[start : start + self.batch_size])
            z = self.z_batch[: len(rows)]
            grad = forward_backward(self.X[rows], self.y[rows], self.W, self.b, z, partial(self.dz_of, m=len(rows)))
            self.b = self.optimizer.step(self.W, self.b, *grad)


class Dual(EpochLoop):
    """The fast path (module docstring): theta (m,), b updated once per epoch; W = X^T theta."""

    def __init__(self, X, y, G, G_valid_T, params: TrainParams, pool: ThreadPoolExecutor):
        self.X, self.y, self.pool = X, y, pool
        self.G, self.G_valid_T = G, G_valid_T  # X X^T (m, m), X X_valid^T (m, m_valid)
        self.scores = np.empty(X.shape[0] + G_valid_T.shape[1], dtype=np.float32)
        self.z, self.z_valid = self.scores[: X.shape[0]], self.scores[X.shape[0] :]
        self.theta, self.b = np.zeros(X.shape[0], dtype=np.float32), np.float32(0.0)
        self.objective = objective_of(params)
        self.optimizer = make_optimizer(params, self.objective)

    def forward(self, last):
        scores_by_columns(self.theta, self.G, self.b, self.z, self.pool)  # z = G theta + b = theta^T G + b
        scores_by_columns(self.theta, self.G_valid_T, self.b, self.z_valid, self.pool)  # X_valid X^T theta + b
        return self.z, self.z_valid

    def step(self, a):
        dz = self.objective.dz(a, self.y)  # over all m rows; dJ/dW = X^T dz: for theta the gradient is dz itself
        self.b = self.optimizer.step(self.theta, self.b, dz, dz.sum(dtype=np.float32))

    def state(self):
        return self.theta.copy(), self.b

    def weights(self, state):
        theta, b = state
        return vecmat(theta, self.X), b  # W = X^T theta


def uses_gram(params: TrainParams, shape: tuple[int, int]) -> bool:
    """Whether fit trains in the dual: plain or momentum full-batch gradient descent with at most
    GRAM_MAX_RATIO x n training rows, and enough epochs to repay the product X X^T (it costs about
    as much as m / 16 epochs in the primal: the dual needs at least m / 8). Depends on the parameters
    and the data shape only."""
    m, n = shape
    linear = params.optimizer == "gd" and params.batch_size in (0, m)
    return linear and m <= GRAM_MAX_RATIO * n and params.epochs * GRAM_EPOCHS_PER_ROW >= m


def step_name(params: TrainParams) -> str:
    """What one history row after the first stands for: an epoch, or an L-BFGS iteration."""
    return "iteration" if params.optimizer == "lbfgs" else "epoch"


def solver_for(params: TrainParams, X, y, X_valid, pool: ThreadPoolExecutor, pixel_scale: float | None) -> Solver:
    """The solver that trains with `params` on X (m, n), y (m,), scoring X_valid (m_valid, n) each epoch;
    the dual needs features made of pixel values divided by pixel_scale (fast_passes.pixel_gram)."""
    passes = ShardedPass(pool)
    if params.optimizer == "lbfgs":
        return LBFGS(X, y, X_valid, params, passes, pixel_scale)
    if pixel_scale and uses_gram(params, X.shape):  # fast path: far fewer rows than features, train in the dual
        P, P_valid = pixel_values(X, pixel_scale), pixel_values(X_valid, pixel_scale)
        if P is not None and P_valid is not None:
            G, G_valid_T = pixel_gram(P, None, pixel_scale), pixel_gram(P, P_valid, pixel_scale)
            return Dual(X, y, G, G_valid_T, params, pool)
    if params.batch_size in (0, X.shape[0]):
        return FullBatch(X, y, X_valid, params, passes)
    return MiniBatch(X, y, X_valid, params, passes)


def fit(
    X: np.ndarray,
    y: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    params: TrainParams,
    progress: bool = True,
    threads: int | None = None,
    on_epoch: Callable[[int, np.ndarray], None] | None = None,
    pixel_scale: float | None = None,
) -> tuple[np.ndarray, np.float32, pd.DataFrame]:
    """Train from W = 0, b = 0.

    Parameters: X (m, n) and X_valid (m_valid, n) float32; y (m,), y_valid (m_valid,) in {0, 1};
    threads: worker threads (default: all cores; the result does not depend on it); on_epoch(epoch,
    history_row) is called after each history row (e.g. to time the run); pixel_scale: the features are
    uint8 pixel values divided by it (images.to_features), which lets the dual compute X X^T exactly.
    Returns W (n,) float32, b float32 and the history: row k holds the losses and accuracies
    (threshold 0.5) after k epochs (with lbfgs: k iterations; its history ends where L-BFGS converged).
    With early stopping, the history ends at the stopping epoch and W, b are those of the epoch with
    the lowest validation loss.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    X_valid = np.ascontiguousarray(X_valid, dtype=np.float32)
    for split, labels in (("training", y), ("validation", y_valid)):
        if not np.isin(labels, (0, 1)).all():  # read from a file: a label 2 or 0.5 is no cat and no dog
            raise DataError(f"the {split} labels must be 0 (dog) or 1 (cat)")
    y = y.astype(np.float32)
    y_valid = y_valid.astype(np.float32)
    if X.shape[0] == 0 or X_valid.shape[0] == 0:  # no loss, no accuracy, no early stopping to compute
        raise DataError(
            f"{X.shape[0]} training and {X_valid.shape[0]} validation examples: train needs at least one of "
            "each (more images, or another resize_split.valid_fraction)"
        )
    if params.batch_size > X.shape[0]:
        raise ParamError(
            f"params.yaml: train.batch_size = {params.batch_size} is more than the {X.shape[0]} training examples"
        )
    objective = objective_of(params)
    bar = tqdm(total=params.epochs, desc="train", unit=step_name(params), disable=not progress, mininterval=0.5)
    with ThreadPoolExecutor(threads or usable_cores()) as pool:
        solver = solver_for(params, X, y, X_valid, pool, pixel_scale)
        history = History(objective, y, y_valid)
        stopping = EarlyStopping(params.early_stopping, solver.state())

        def record(epoch: int, z: np.ndarray, z_valid: np.ndarray, a: np.ndarray, a_valid: np.ndarray) -> bool:
            """Add the history row of `epoch` from the scores z, z_valid and a = sigmoid(z), a_valid;
            True: stop early."""
            if not (np.isfinite(z).all() and np.isfinite(z_valid).all()):  # NaN or inf W, b: diverged
                bar.close()
                raise ParamError(divergence_message(params, epoch))
            row = history.add(epoch, z, z_valid, a, a_valid)
            if on_epoch:
                on_epoch(epoch, np.array(row))
            show_progress(bar, epoch, row, progress)
            return stopping.should_stop(epoch, row[2], solver.state)

        solver.run(params.epochs, record)
    bar.close()
    W, b = solver.weights(stopping.best_state if params.early_stopping else solver.state())
    return W, np.float32(b), history.frame()
