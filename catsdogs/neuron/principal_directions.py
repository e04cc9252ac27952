"""The principal directions of the pixel features, for L-BFGS's change of variables (catsdogs/neuron/lbfgs.py),
computed with the same bits on every CPU.

A subspace iteration (Halko, Martinsson & Tropp 2011, Algorithm 4.4) over r sampled rows S = P / pixel_scale,
P their integer pixel values. Its products with the rows are exact: they are taken with P and the other
factor rounded to integers (quantized), whose sums are exact in float64 in any order
(portable.integer_gram), so BLAS's order cannot change them. Orthonormalisation (orthonormal_rows,
modified Gram-Schmidt) and the small eigenproblem (symmetric_eigen, cyclic Jacobi) use portable.dot,
matvec, vecmat and + - * / sqrt only. tests/test_lbfgs.py checks each against numpy.linalg.
"""

from __future__ import annotations

import math

import numpy as np

from catsdogs.neuron.portable import dot, integer_gram, matvec, vecmat

RANK = 40  # principal directions of the features rescaled by the change of variables (Coordinates)
OVERSAMPLE, POWER_STEPS = 10, 2  # the subspace iteration: extra directions, steps
JACOBI_SWEEPS = 50  # at most, in symmetric_eigen (it converges quadratically: about 10 for 50 x 50)
PIXEL_MAX = 255  # |pixel value| bound (passes.pixel_values), for exact integer products
EXACT_BITS = 52  # quantized factors keep every partial sum of integer products below 2^53
TRANSPOSED_COLUMNS = 256  # rows of P per block in P^T A (an n x 256 float64 copy: 25 MB at n = 12,288)


def quantized(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A (l, p) float64 as integers Q (l, p) float64 and exponents e (l,): A ~ Q 2^-e row by row, e the
    largest that keeps PIXEL_MAX sum |Q| below 2^EXACT_BITS (+ PIXEL_MAX p / 2 from rounding): any sum of
    products of a row with pixel values is then an integer below 2^53, exact in float64 in any order."""
    e = EXACT_BITS - np.frexp(PIXEL_MAX * np.abs(A).sum(axis=1))[1]  # PIXEL_MAX |a|_1 < 2^(EXACT_BITS - e)
    return np.rint(np.ldexp(A, e[:, None])), e


def pixel_product(P: np.ndarray, A: np.ndarray, transposed: bool = False) -> np.ndarray:
    """P A^T (r, l) for pixel values P (r, n) and A (l, n) float64, or P^T A^T (n, l) for A (l, r): exact
    products with A quantized (relative error about 2^-40), so the same bits whatever BLAS's order."""
    Q, e = quantized(A)
    product = integer_gram(P.T, Q, TRANSPOSED_COLUMNS) if transposed else integer_gram(P, Q)
    return np.ldexp(product, -e)


def orthonormal_rows(A: np.ndarray) -> np.ndarray:
    """Orthonormal rows (l, n) spanning those of A (l, n) float64, in order: classical Gram-Schmidt, twice
    per row ("twice is enough"), with portable products. A row in the span of those before it may come
    out as any unit vector orthogonal to them (as a QR's), or 0 when nothing of it is left."""
    Q = np.array(A, dtype=np.float64)
    for i in range(len(Q)):
        for _ in range(2):
            if i:
                Q[i] -= vecmat(matvec(Q[:i], Q[i]), Q[:i])
        norm = math.sqrt(dot(Q[i], Q[i]))
        Q[i] = Q[i] / norm if norm > 0 else 0
    return Q


def symmetric_eigen(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (l,) in decreasing order and orthonormal eigenvectors (columns of (l, l)) of a symmetric
    A (l, l) float64: cyclic Jacobi (Golub & Van Loan 8.5), the l/2 disjoint rotations of each round of a
    round-robin ordering applied at once (Brent & Luk), until the off-diagonal part is below 1e-13 of A."""
    A = np.array(A, dtype=np.float64)
    size = len(A)
    V = np.eye(size)
    order = np.arange(size + size % 2)  # players of the round-robin; index size (odd size) sits out its round
    half = len(order) // 2
    for _ in range(JACOBI_SWEEPS):
        squares = A * A
        total = squares.sum()
        np.fill_diagonal(squares, 0)
        if squares.sum() <= 1e-26 * total:  # |off-diagonal| <= 1e-13 |A| (Frobenius norms)
            break
        for _ in range(len(order) - 1):
            p, q = order[:half], order[::-1][:half]
            p, q = p[(p < size) & (q < size)], q[(p < size) & (q < size)]
            c, s = _rotation(A[p, p], A[q, q], A[p, q])
            for M, rows in ((A, True), (A, False), (V, False)):  # A <- J^T A J, V <- V J
                if rows:
                    Mp, Mq = M[p].copy(), M[q].copy()
                    M[p], M[q] = c[:, None] * Mp - s[:, None] * Mq, s[:, None] * Mp + c[:, None] * Mq
                else:
                    Mp, Mq = M[:, p].copy(), M[:, q].copy()
                    M[:, p], M[:, q] = Mp * c - Mq * s, Mp * s + Mq * c
            order[1:] = np.roll(order[1:], 1)
    values = A.diagonal().copy()
    decreasing = np.argsort(-values, kind="stable")
    return values[decreasing], V[:, decreasing]


def _rotation(app: np.ndarray, aqq: np.ndarray, apq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin (k,) of the Jacobi rotations that zero A[p, q] (Golub & Van Loan's sym.schur2)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        tau = (aqq - app) / (2 * apq)
        t = np.where(tau >= 0, 1.0, -1.0) / (np.abs(tau) + np.sqrt(1 + tau * tau))
    t = np.where((apq == 0) | ~np.isfinite(t), 0.0, t)  # already diagonal, or tau too large: t ~ 0
    c = 1 / np.sqrt(1 + t * t)
    return c, t * c


def principal_directions(P: np.ndarray, pixel_scale: float, mu: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """U (n, k) orthonormal and s (k,) of the change of variables (module docstring) from the rows
    S = P / pixel_scale (r, n), P their pixel values, centred on mu (n,): subspace iteration (Halko,
    Martinsson & Tropp 2011, Algorithm 4.4) for the top k + 1 principal directions, with k = RANK or fewer
    for a small S, from a fixed uniform start; then the eigenvectors of (S - mu) V's Gram matrix."""
    r, n = P.shape
    k = min(RANK, min(r, n) - OVERSAMPLE - 1)
    if k <= 0:
        return np.zeros((n, 0)), np.zeros(0)
    scale = float(pixel_scale)

    def centred(V: np.ndarray) -> np.ndarray:  # ((S - mu) V^T)^T (l, r) for V (l, n)
        return pixel_product(P, V).T / scale - matvec(V, mu)[:, None]

    V = orthonormal_rows(np.random.default_rng(0).random((k + OVERSAMPLE, n)) * 2 - 1)
    for _ in range(POWER_STEPS):
        B = centred(V)
        V = orthonormal_rows(pixel_product(P, B, transposed=True).T / scale - np.multiply.outer(B.sum(axis=1), mu))
    B = centred(V)  # (S - mu) V = Y Sigma W^T: B B^T = W Sigma^2 W^T
    gram = np.stack([matvec(B, row) for row in B])
    singular2, W = symmetric_eigen((gram + gram.T) / 2)
    h = np.maximum(singular2, 0) / r / 4 + l2  # curvature of F along each direction
    if h[k] <= 0:  # no curvature left to scale to (features that never vary, without l2)
        return np.zeros((n, 0)), np.zeros(0)
    U = np.stack([vecmat(W[:, i], V) for i in range(k)], axis=1)
    return U, np.sqrt(h[k] / h[:k])
