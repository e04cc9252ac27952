"""Fast passes over the float32 training matrix: the math of catsdogs/neuron/reference.py, at memory speed.

forward_backward reads X once, in row blocks small enough to stay in the CPU cache (BLOCK_BYTES): the
forward product z = X_b W of a block and its share of the gradient X_b^T dz are computed while the block
is in cache, instead of two full passes over X. ShardedPass cuts the rows into SHARDS fixed ranges and
runs them on a thread pool (NumPy's einsum releases the GIL); shard gradients are added in shard order,
so the result does not depend on the number of cores. The products are catsdogs/neuron/portable.py's,
whose bits do not depend on the CPU (no BLAS in a pass). pixel_gram computes X X^T for the dual
(catsdogs/neuron/fit.py), exactly, from the pixel values the features were made of, with BLAS on every
core. tests/test_passes.py checks each against reference.backprop.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import ThreadpoolController

from catsdogs.neuron.portable import integer_gram, matvec, vecmat
from catsdogs.neuron.reference import sigmoid
from catsdogs.pipeline.processes import usable_cores

BLOCK_BYTES = 1 << 22  # 4 MiB of float32 rows per block: stays in L2/L3 between the two products
SHARDS = 4  # fixed row ranges per pass; the thread count only decides how many run at once
INLINE_BYTES = 32 << 20  # passes over less than this run the shards in the calling thread (same result)
BLAS_THREADS = ThreadpoolController()  # lets pixel_gram's BLAS use every usable core

Gradient = tuple[np.ndarray, np.float32]  # (dJ/dW (n,), dJ/db)
DzRule = Callable[[np.ndarray, np.ndarray], np.ndarray]  # dz_of(a (k,), y (k,)) -> dJ/dz (k,)


def block_rows(n_features: int) -> int:
    """Rows per cache-sized block of a float32 matrix with n_features columns (depends on n only; no
    columns: as one)."""
    return max(1, BLOCK_BYTES // (4 * max(n_features, 1)))


def forward_backward(
    X: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.float32, z: np.ndarray, dz_of: DzRule | None
) -> Gradient | None:
    """One read of X (k, n) in cache-sized row blocks: fill z (k,) = X W + b; if dz_of is given, also
    return the gradient (X^T dz (n,), sum dz) with dz = dz_of(a, y) for each block while it is in cache.
    """
    rows = block_rows(X.shape[1])
    grad_W = np.zeros(X.shape[1], dtype=np.float32) if dz_of else None
    grad_b = np.float32(0.0)
    part = np.empty(X.shape[1], dtype=np.float32)
    for start in range(0, X.shape[0], rows):
        X_block, z_block = X[start : start + rows], z[start : start + rows]
        matvec(X_block, W, out=z_block)  # z = X W + b
        z_block += b
        if dz_of is None:
            continue
        dz = dz_of(sigmoid(z_block), y[start : start + rows])
        vecmat(dz, X_block, out=part)  # this block's rows of dJ/dW = X^T dz
        grad_W += part  # type: ignore[operator]
        grad_b += dz.sum(dtype=np.float32)  # dJ/db = sum dz
    return (grad_W, grad_b) if dz_of else None  # type: ignore[return-value]


def model_scores(X: np.ndarray, W: np.ndarray, b: np.floating | float) -> np.ndarray:
    """z = X W + b (k,) float32 for features X (k, n) and the model's W (n,), b: the scores evaluate and
    predict write, with portable.matvec (reference.forward's BLAS product differs by CPU in the last bits)."""
    return matvec(X, np.asarray(W, dtype=X.dtype)) + np.float32(b)


def scores_by_columns(v: np.ndarray, M: np.ndarray, b: np.float32, out: np.ndarray, pool: ThreadPoolExecutor) -> None:
    """out (k,) = v M + b for v (m,), M (m, k) float32: each column's sum runs down the rows in order, so
    the column ranges may run on the pool (SHARDS of them, for M of INLINE_BYTES or more) with the same
    result. The dual's scores: G theta = theta^T G for the symmetric G = X X^T (portable.vecmat, an
    accumulation across rows, runs faster than a row-by-row dot product on NumPy's baseline SIMD)."""

    def columns(lo: int, hi: int) -> None:
        vecmat(v, M[:, lo:hi], out=out[lo:hi])
        out[lo:hi] += b

    if M.nbytes < INLINE_BYTES:
        columns(0, M.shape[1])
    else:
        edges = np.linspace(0, M.shape[1], SHARDS + 1).astype(int)
        list(pool.map(columns, edges[:-1], edges[1:]))


def pixel_values(X: np.ndarray, pixel_scale: float) -> np.ndarray | None:
    """The integers P (k, n) int16 in [-255, 255] with X = float32(P) / float32(pixel_scale) exactly, as
    images.to_features makes features from pixel values; None when X (k, n) float32 is not of that form."""
    scale = np.float32(pixel_scale)
    P = np.empty(X.shape, dtype=np.int16)
    for start in range(0, X.shape[0], block_rows(X.shape[1])):
        X_block = X[start : start + block_rows(X.shape[1])]
        values = np.rint(X_block * scale)
        if not (np.array_equal(values / scale, X_block) and np.abs(values).max(initial=0) <= 255):
            return None
        P[start : start + len(values)] = values
    return P


def pixel_gram(P_A: np.ndarray, P_B: np.ndarray | None, pixel_scale: float) -> np.ndarray:
    """A B^T (k, m) float32 for the features A = P_A / pixel_scale (k, n) and B = P_B / pixel_scale (m, n),
    P their pixel values (pixel_values; P_B None: A A^T): the integer product, exact
    (portable.integer_gram), divided by pixel_scale^2 and rounded once. BLAS may use every core: exact
    sums do not depend on how it splits them."""
    with BLAS_THREADS.limit(limits=usable_cores(), user_api="blas"):
        product = integer_gram(P_A, P_B)
    return (product / (float(pixel_scale) ** 2)).astype(np.float32)


class ShardedPass:
    """forward_backward over SHARDS fixed row ranges on a thread pool; shard gradients summed in order."""

    def __init__(self, pool: ThreadPoolExecutor):
        self.pool = pool

    def __call__(self, X, y, W, b, z, dz_of=None, X_valid=None, z_valid=None) -> Gradient | None:
        """Fill z = X W + b (and z_valid = X_valid W + b, when given); return the gradient of the rows
        of X if dz_of is given, else None."""
        jobs = []
        for X_part, y_part, z_part, rule in ((X, y, z, dz_of), (X_valid, None, z_valid, None)):
            if X_part is None:
                continue
            edges = np.linspace(0, X_part.shape[0], SHARDS + 1).astype(int)
            for lo, hi in zip(edges[:-1], edges[1:]):
                y_shard = None if y_part is None else y_part[lo:hi]
                jobs.append((rule, (X_part[lo:hi], y_shard, W, b, z_part[lo:hi], rule)))
        if sum(job[0].nbytes for _, job in jobs) < INLINE_BYTES:  # too small to gain from threads
            results = [(rule, forward_backward(*job)) for rule, job in jobs]  # type: ignore[arg-type]
        else:
            futures = [(rule, self.pool.submit(forward_backward, *job)) for rule, job in jobs]  # type: ignore[arg-type]
            results = [(rule, future.result()) for rule, future in futures]  # every shard, valid ones too
        grads = [result for rule, result in results if rule is not None]
        if dz_of is None:
            return None
        grad_W, grad_b = grads[0]  # type: ignore[misc]
        for more_W, more_b in grads[1:]:  # type: ignore[misc]
            grad_W += more_W
            grad_b += more_b
        return grad_W, grad_b
