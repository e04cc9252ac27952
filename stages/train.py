"""Stage 4, train: the article's single neuron, a = sigmoid(X W + b), trained by gradient descent.

Notation (rows are examples): X (m, n) float32 features, y (m,) labels in {0, 1}, W (n,), b scalar,
z = X W + b (m,), a = sigmoid(z) (m,). The article's notebook used the transpose (X of shape (n, m)).

The defaults are the article's recipe: W = 0, b = 0, mean squared error, full-batch gradient descent.
Faster recipes are parameters: cross-entropy, mini-batches, momentum or Adam, L2, early stopping.

Speed: an epoch reads the float32 training matrix once. Its rows are processed in blocks small enough
to stay in the CPU cache (BLOCK_BYTES): the forward product z = X_b W of a block and its share of the
gradient X_b^T dz are computed while the block is in cache, instead of two full passes over X. The
rows are cut into SHARDS fixed ranges, run on a thread pool (NumPy's BLAS releases the GIL); shard
gradients are added in shard order, so the result does not depend on the number of cores.

When there are far fewer training images than features (m <= GRAM_MAX_RATIO n, e.g. the default
1,600 x 12,288), the run is long enough (uses_gram) and the update is linear in the gradient
(gradient descent, with or without momentum and L2; not Adam, not mini-batches), fit trains in the dual: W starts at 0 and every step adds X^T
times a vector, so W = X^T theta with theta (m,), z = (X X^T) theta + b and dJ/dtheta = dz. After one
matrix product G = X X^T (m, m) (and X_valid X^T), an epoch reads G instead of X: m / n of the bytes.
Same math as the primal loop; the rounding differs, within float32 precision.

Writes models/weights.npz (W, b, and the preprocessing a new photo needs), the per-epoch history
plots/train_history.csv and the final training metrics metrics/train.json.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from stages.common import (
    atomic_path,
    load_npz,
    run_cli,
    stage_parser,
    save_json,
    save_npz,
    usable_cores,
)
from stages.params import Choice, Number, ParamError, param, stage_params
from stages.images import Preprocessing

FEATURES_DIR = Path("data/features")
WEIGHTS_FILE = Path("models/weights.npz")
HISTORY_FILE = Path("plots/train_history.csv")
METRICS_FILE = Path("metrics/train.json")
LOSSES = ("mse", "cross_entropy")
GRADIENTS = ("exact", "notebook")
OPTIMIZERS = ("gd", "adam")
HISTORY_COLUMNS = ("epoch", "train_loss", "valid_loss", "train_accuracy", "valid_accuracy")
BLOCK_BYTES = 1 << 22  # 4 MiB of float32 rows per block: stays in L2/L3 between the two products
SHARDS = 4  # fixed row ranges per pass; the thread count only decides how many run at once
INLINE_BYTES = 32 << 20  # passes over less than this run the shards in the calling thread (same result)
GRAM_MAX_RATIO = 0.25  # dual (Gram matrix) training when m <= this x n ...
GRAM_EPOCHS_PER_ROW = 8  # ... and epochs >= m / this: see uses_gram
ADAM_BETAS = (0.9, 0.999)  # Kingma & Ba's defaults, with eps = 1e-8
ADAM_EPS = 1e-8


@stage_params("train")
class TrainParams:
    lr: float = param(0.003, Number(low=0, high=1e6, low_open=True), "learning rate")
    epochs: int = param(5000, Number(low=1, high=10_000_000, integer=True), "passes over the training set")
    loss: str = param("mse", Choice(LOSSES), "mse: 1/(2m) sum (a - y)^2; cross_entropy: log loss")
    gradient: str = param(
        "exact", Choice(GRADIENTS), "exact dJ/dz, or the notebook's double sigmoid (loss mse only)"
    )
    optimizer: str = param("gd", Choice(OPTIMIZERS), "gd: gradient descent (with momentum if > 0); adam")
    momentum: float = param(0.0, Number(low=0, high=1, high_open=True), "heavy-ball momentum (gd only)")
    batch_size: int = param(0, Number(low=0, integer=True), "rows per update; 0 = full batch")
    l2: float = param(0.0, Number(low=0, high=1e6), "L2 penalty: minimise J + l2/2 |W|^2")
    early_stopping: int = param(
        0, Number(low=0, integer=True), "stop after this many epochs without a lower validation loss; 0 = off"
    )
    seed: int = param(0, Number(low=0, integer=True), "seed of the mini-batch order")

    def check_together(self) -> None:
        if self.gradient == "notebook" and self.loss != "mse":
            raise ParamError(
                f"params.yaml: train.gradient = 'notebook' is only defined for train.loss = 'mse' "
                f"(got train.loss = {self.loss!r}); use train.gradient = 'exact'"
            )
        if self.optimizer == "adam" and self.momentum != 0:
            raise ParamError(
                f"params.yaml: train.momentum = {self.momentum!r} is only used by train.optimizer = 'gd' "
                f"(Adam has its own, beta1 = {ADAM_BETAS[0]}); set train.momentum to 0.0"
            )


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), written as exp(-log(1 + exp(-z))) so that no exp overflows."""
    return np.exp(-np.logaddexp(0, -z))


def loss_value(loss: str, z: np.ndarray, a: np.ndarray, y: np.ndarray) -> float:
    """Mean loss J over the m examples, accumulated in float64."""
    z, a, y = (np.asarray(v, dtype=np.float64) for v in (z, a, y))
    if loss == "mse":
        return float(0.5 * np.mean((a - y) ** 2))  # J = 1/(2m) sum (a - y)^2
    # J = -1/m sum y log a + (1 - y) log(1 - a) = 1/m sum log(1 + e^z) - y z, stable for any z
    return float(np.mean(np.logaddexp(0, z) - y * z))


def loss_gradient(loss: str, gradient: str, a: np.ndarray, y: np.ndarray, m: int | None = None) -> np.ndarray:
    """dJ/dz (k,) for k of the m examples J averages over (m = k by default): how J changes with each z."""
    m = a.shape[0] if m is None else m
    if loss == "cross_entropy":
        return (a - y) / m  # sigmoid' = a (1 - a) cancels the log's 1 / (a (1 - a))
    s = sigmoid(a) if gradient == "notebook" else a  # notebook: sigmoid applied to A a second time
    return (a - y) * s * (1 - s) / m  # chain rule: (a - y) * sigmoid'(z), sigmoid'(z) = a (1 - a)


def block_rows(n_features: int) -> int:
    """Rows per cache-sized block of a float32 matrix with n_features columns (depends on n only)."""
    return max(1, BLOCK_BYTES // (4 * n_features))


def forward_backward(
    X: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.float32, z: np.ndarray, dz_of: Callable | None
) -> tuple[np.ndarray, np.float32] | None:
    """One read of X (k, n) in cache-sized row blocks: fill z (k,) = X W + b; if dz_of is given, also
    return the gradient (X^T dz (n,), sum dz) with dz = dz_of(a, y) for each block while it is in cache.
    """
    rows = block_rows(X.shape[1])
    grad_W = np.zeros(X.shape[1], dtype=np.float32) if dz_of else None
    grad_b = np.float32(0.0)
    part = np.empty(X.shape[1], dtype=np.float32)
    for start in range(0, X.shape[0], rows):
        X_block, z_block = X[start : start + rows], z[start : start + rows]
        np.dot(X_block, W, out=z_block)  # z = X W + b
        z_block += b
        if dz_of is None:
            continue
        dz = dz_of(sigmoid(z_block), y[start : start + rows])
        np.dot(dz, X_block, out=part)  # this block's rows of dJ/dW = X^T dz
        grad_W += part
        grad_b += dz.sum(dtype=np.float32)  # dJ/db = sum dz
    return (grad_W, grad_b) if dz_of else None


def uses_gram(params: TrainParams, shape: tuple[int, int]) -> bool:
    """Whether fit trains in the dual: plain or momentum full-batch gradient descent with at most
    GRAM_MAX_RATIO x n training rows, and enough epochs to repay the product X X^T (it costs about
    as much as m / 16 epochs in the primal: the dual needs at least m / 8). Depends on the parameters
    and the data shape only."""
    m, n = shape
    linear = params.optimizer == "gd" and params.batch_size in (0, m)
    return linear and m <= GRAM_MAX_RATIO * n and params.epochs * GRAM_EPOCHS_PER_ROW >= m


def gram(A: np.ndarray, B: np.ndarray, pool: ThreadPoolExecutor) -> np.ndarray:
    """A B^T (k, m) for A (k, n) and B (m, n), its SHARDS row ranges computed on the pool."""
    out = np.empty((A.shape[0], B.shape[0]), dtype=np.float32)
    edges = np.linspace(0, A.shape[0], SHARDS + 1).astype(int)
    list(pool.map(lambda lo, hi: np.dot(A[lo:hi], B.T, out=out[lo:hi]), edges[:-1], edges[1:]))
    return out


class _ShardedPass:
    """forward_backward over SHARDS fixed row ranges on a thread pool; shard gradients summed in order."""

    def __init__(self, pool: ThreadPoolExecutor):
        self.pool = pool

    def __call__(self, X, y, W, b, z, dz_of=None, X_valid=None, z_valid=None):
        """Fill z (and z_valid = X_valid W + b, when given); return the gradient or None."""
        jobs = []
        for X_part, y_part, z_part, rule in ((X, y, z, dz_of), (X_valid, None, z_valid, None)):
            if X_part is None:
                continue
            edges = np.linspace(0, X_part.shape[0], SHARDS + 1).astype(int)
            for lo, hi in zip(edges[:-1], edges[1:]):
                y_shard = None if y_part is None else y_part[lo:hi]
                jobs.append((rule, (X_part[lo:hi], y_shard, W, b, z_part[lo:hi], rule)))
        if sum(job[0].nbytes for _, job in jobs) < INLINE_BYTES:  # too small to gain from threads
            results = [(rule, forward_backward(*job)) for rule, job in jobs]
        else:
            futures = [(rule, self.pool.submit(forward_backward, *job)) for rule, job in jobs]
            results = [(rule, future.result()) for rule, future in futures]  # every shard, valid ones too
        grads = [result for rule, result in results if rule is not None]
        if dz_of is None:
            return None
        grad_W, grad_b = grads[0]
        for more_W, more_b in grads[1:]:
            grad_W += more_W
            grad_b += more_b
        return grad_W, grad_b


class Optimizer:
    """Turns the gradient of J into the update of the weights W (in place) and b.

    gd:   v = momentum v + g, W -= lr v (plain gradient descent when momentum = 0).
    adam: Adam (Kingma & Ba 2015) with beta1, beta2 = ADAM_BETAS and eps = ADAM_EPS.
    L2 adds l2 W to dJ/dW (J + l2/2 |W|^2; b is not penalised).
    In the dual, W is theta (m,) and the gradient dz: gd and L2 are linear, so they carry over.
    """

    def __init__(self, params: "TrainParams", n_weights: int):
        self.params = params
        self.lr = np.float32(params.lr)
        self.steps = 0
        shape = n_weights + 1  # W and b together
        self.first = np.zeros(shape, dtype=np.float32)
        self.second = np.zeros(shape, dtype=np.float32) if params.optimizer == "adam" else None

    def step(self, W: np.ndarray, b: np.float32, grad_W: np.ndarray, grad_b: np.float32) -> np.float32:
        params = self.params
        if params.l2:
            grad_W += np.float32(params.l2) * W
        if params.optimizer == "gd" and params.momentum == 0:
            W -= self.lr * grad_W
            return np.float32(b - self.lr * grad_b)
        grad = np.append(grad_W, grad_b)
        self.steps += 1
        if params.optimizer == "gd":
            self.first *= np.float32(params.momentum)
            self.first += grad
            update = self.lr * self.first
        else:
            beta1, beta2 = ADAM_BETAS
            self.first += np.float32(1 - beta1) * (grad - self.first)  # m = beta1 m + (1 - beta1) g
            self.second += np.float32(1 - beta2) * (grad * grad - self.second)  # v = beta2 v + (1 - beta2) g^2
            rate = params.lr * np.sqrt(1 - beta2**self.steps) / (1 - beta1**self.steps)  # bias correction
            update = np.float32(rate) * self.first / (np.sqrt(self.second) + np.float32(ADAM_EPS))
        W -= update[:-1]
        return np.float32(b - update[-1])


def fit(
    X: np.ndarray,
    y: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    params: TrainParams,
    progress: bool = True,
    threads: int | None = None,
    on_epoch: Callable[[int, np.ndarray], None] | None = None,
) -> tuple[np.ndarray, np.float32, pd.DataFrame]:
    """Train from W = 0, b = 0.

    Parameters: X (m, n) and X_valid (m_valid, n) float32; y (m,), y_valid (m_valid,) in {0, 1};
    threads: worker threads (default: all cores; the result does not depend on it); on_epoch(epoch,
    history_row) is called after each history row (e.g. to time the run).
    Returns W (n,) float32, b float32 and the history: row k holds the losses and accuracies
    (threshold 0.5) after k epochs. With early stopping, the history ends at the stopping epoch and
    W, b are those of the epoch with the lowest validation loss.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    X_valid = np.ascontiguousarray(X_valid, dtype=np.float32)
    y = y.astype(np.float32)
    y_valid = y_valid.astype(np.float32)
    m = X.shape[0]
    if params.batch_size > m:
        raise ParamError(f"params.yaml: train.batch_size = {params.batch_size} is more than the {m} training examples")
    full_batch = params.batch_size in (0, m)

    def dz_of_for(total: int) -> Callable:
        return lambda a, y_block: loss_gradient(params.loss, params.gradient, a, y_block, total)

    b = np.float32(0.0)
    rng = np.random.default_rng(params.seed)
    z, z_valid = np.empty(m, dtype=np.float32), np.empty(X_valid.shape[0], dtype=np.float32)
    history = np.zeros((params.epochs + 1, len(HISTORY_COLUMNS)))
    bar = tqdm(total=params.epochs, desc="train", unit="epoch", disable=not progress, mininterval=0.5)
    with ThreadPoolExecutor(threads or usable_cores()) as pool:
        sharded = _ShardedPass(pool)
        dual = uses_gram(params, X.shape)
        # primal: theta = W (n,), rows A = X; dual: W = X^T theta, theta (m,), A = X X^T, A_valid = X_valid X^T
        A, A_valid = (gram(X, X, pool), gram(X_valid, X, pool)) if dual else (X, X_valid)
        theta = np.zeros(A.shape[1], dtype=np.float32)
        best = (np.inf, 0, theta.copy(), b)  # (valid loss, epoch, theta, b)
        optimizer = Optimizer(params, A.shape[1])
        for epoch in range(params.epochs + 1):
            last = epoch == params.epochs
            # full batch (primal): this epoch's gradient comes with the forward pass the history needs
            rule = dz_of_for(m) if full_batch and not dual and not last else None
            grad = sharded(A, y, theta, b, z, rule, A_valid, z_valid)  # z = A theta + b = X W + b
            a, a_valid = sigmoid(z), sigmoid(z_valid)
            history[epoch] = (
                epoch,
                loss_value(params.loss, z, a, y),
                loss_value(params.loss, z_valid, a_valid, y_valid),
                np.mean((a > 0.5) == y),
                np.mean((a_valid > 0.5) == y_valid),
            )
            if on_epoch:
                on_epoch(epoch, history[epoch])
            if params.early_stopping:
                if history[epoch, 2] < best[0]:
                    best = (history[epoch, 2], epoch, theta.copy(), b)
                elif epoch - best[1] >= params.early_stopping:
                    break
            if last:
                break
            if dual:  # dJ/dW = X^T dz: in terms of theta the gradient is dz itself
                dz = dz_of_for(m)(a, y)
                grad = (dz, dz.sum(dtype=np.float32))
            if full_batch:
                b = optimizer.step(theta, b, *grad)
            else:
                b = _minibatch_epoch(X, y, theta, b, optimizer, rng, params.batch_size, dz_of_for)
            bar.update()
            if epoch % 100 == 0:
                bar.set_postfix(train_loss=f"{history[epoch, 1]:.6f}", valid_loss=f"{history[epoch, 2]:.6f}")
    bar.close()
    if params.early_stopping:
        history = history[: epoch + 1]
        _, _, theta, b = best
    W = np.dot(theta, X) if dual else theta
    frame = pd.DataFrame(history, columns=HISTORY_COLUMNS).astype({"epoch": int})
    return W, np.float32(b), frame


def _minibatch_epoch(X, y, W, b, optimizer: Optimizer, rng: np.random.Generator, batch_size: int, dz_of_for):
    """One pass over the rows in a random order, one update per batch of batch_size rows; returns b."""
    order = rng.permutation(X.shape[0])
    z = np.empty(batch_size, dtype=np.float32)
    for start in range(0, len(order), batch_size):
        rows = np.sort(order[start : start + batch_size])
        X_batch = X[rows]
        b = optimizer.step(W, b, *forward_backward(X_batch, y[rows], W, b, z[: len(rows)], dz_of_for(len(rows))))
    return b


def train(
    params: TrainParams, preprocessing_file: Path, features_dir: Path = FEATURES_DIR, progress: bool = True
) -> pd.DataFrame:
    """Run the stage: read the features, fit, write weights (with the preprocessing record of
    `preprocessing_file`, unchanged), history and metrics. Returns the history."""
    preprocessing = Preprocessing.load(preprocessing_file)
    data = load_npz(Path(features_dir) / "train.npz", ("X", "y"))
    valid = load_npz(Path(features_dir) / "valid.npz", ("X", "y"))
    W, b, history = fit(data["X"], data["y"], valid["X"], valid["y"], params, progress)
    save_npz(WEIGHTS_FILE, W=W, b=b, **preprocessing.arrays())
    with atomic_path(HISTORY_FILE) as tmp:
        history.to_csv(tmp, index=False, float_format="%.8g")
    kept = kept_row(history, params)
    save_json(
        METRICS_FILE,
        {
            "train_loss": round(float(kept.train_loss), 8),
            "train_accuracy": round(float(kept.train_accuracy), 6),
            "epoch": int(kept.epoch),
        },
    )
    return history


def kept_row(history: pd.DataFrame, params: TrainParams) -> pd.Series:
    """The history row of the weights fit returned: the last, or with early stopping the best validation loss."""
    return history.loc[history.valid_loss.idxmin()] if params.early_stopping else history.iloc[-1]


def main(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(
        "train",
        "Train the single neuron on data/features/train.npz (gradient descent, full-batch by "
        "default), tracking data/features/valid.npz every epoch. Writes models/weights.npz, plots/train_history.csv "
        "and metrics/train.json.",
        {
            "--preprocessing": "preprocessing record .json (in)",
        },
        params=TrainParams,
    )
    args = parser.parse_args(argv)
    params = TrainParams.read(args.params)
    history = train(params, args.preprocessing)
    final = kept_row(history, params)
    print(
        f"train: {len(history) - 1} epochs, kept epoch {int(final.epoch)}, train loss {final.train_loss:.6f} accuracy {final.train_accuracy:.4f}, "
        f"valid loss {final.valid_loss:.6f} accuracy {final.valid_accuracy:.4f}"
    )


if __name__ == "__main__":
    run_cli(main)
