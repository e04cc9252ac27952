"""Arithmetic that gives the same bits on every x86-64 CPU: what the neuron's outputs are computed with.

A float sum depends on its order, and the usual fast paths choose their order by CPU: OpenBLAS picks a
kernel per CPU (Haswell, SkylakeX, Sandybridge, ... each adds in its own order), NumPy's exp, log,
log1p, expm1 and tanh pick an AVX-512, AVX2 or SSE implementation, and glibc's exp picks an FMA variant.
The weights after 5,000 epochs then differ in the last bits from one machine to the next, and so do
dvc.lock's hashes. What this module uses instead, and why each is the same everywhere:

    matvec, vecmat, dot   np.einsum without `optimize`: NumPy's own loops, compiled once for the wheel's
                          baseline (x86-64-v2) and never dispatched by CPU; its order depends on the
                          shapes only (tested: any alignment, any NPY_DISABLE_CPU_FEATURES).
    integer_gram          A B^T of integer-valued matrices, exact (float32 chunks whose sums are integers
                          of at most 2^24, added in float64), so BLAS's order cannot change it.
    exp, log1p_exp,       + - * / and ldexp only (IEEE 754 rounds each to the nearest, on every CPU),
    sigmoid               with NumPy's pairwise add.reduce for sums.

What they cost (docs/reproducibility.md): reading X from RAM costs the same (memory is the limit); on
data in the CPU's cache einsum's baseline SSE loops run at about half the speed of BLAS's AVX2/AVX-512
kernels (einsum releases the GIL: passes still run on every core); the exact Gram product is float32
chunks of 1,024 columns added in float64.

What stays platform-dependent (another architecture's NumPy wheel, e.g. ARM64 with FMA in its
baseline): docs/reproducibility.md.
"""

from __future__ import annotations

import numpy as np

LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two (fdlibm): k * LN2_HI is exact for |k| < 2^11
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e00
# e^r = 1 + 2r / (R(r^2) - r) on |r| <= ln2 / 2, R from these (fdlibm's e_exp.c): error below 2^-59
EXP_P = (
    1.66666666666666019037e-01,
    -2.77777777770155933842e-03,
    6.61375632143793436117e-05,
    -1.65339022054652515390e-06,
    4.13813679705723846039e-08,
)
EXP_MAX, EXP_MIN = 709.8, -745.2  # e^x overflows float64 above, is 0 below
LOG_TERMS = 12  # odd terms of 2 atanh(s) for |s| <= 0.1716: the 13th is below 2^-60
SQRT_HALF = 0.70710678118654757
FLOAT32_INTEGERS = float(1 << 24)  # float32 holds every integer of at most this magnitude
SMALL_INTEGER_COLUMNS = 256  # integer_gram takes float32 when this many columns' products stay exact


def matvec(A: np.ndarray, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """A x (k,) for A (k, n) and x (n,) of one dtype: each row's sum in an order set by n alone."""
    return np.einsum("ij,j->i", A, x, out=out)


def vecmat(v: np.ndarray, A: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """v A = A^T v (n,) for v (k,) and A (k, n) of one dtype: rows added one after another, in order."""
    return np.einsum("i,ij->j", v, A, out=out)


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """The inner product of two vectors (n,) of one dtype, as a Python float."""
    return float(np.einsum("i,i->", a, b))


def integer_gram(A: np.ndarray, B: np.ndarray | None = None, columns: int = 2048) -> np.ndarray:
    """A B^T (k, m) float64, exact, for integer-valued A (k, n) and B (m, n) whose products sum to less
    than 2^53 (e.g. pixels 0..255: n < 2^37); B None: A A^T, which BLAS computes as a symmetric product
    (half the work). Exact sums do not depend on the order BLAS adds in.

    Small integers (pixel values) take float32 BLAS, twice as fast as float64: shifted by the middle c of
    their range (P = Q + c, |Q| <= q), every sum of up to 2^24 / q^2 products of Q's is an integer of
    at most 2^24, which float32 holds exactly, so the float32 product of that many columns is exact in
    any order; the chunks are added in float64 and the shift put back: P_A P_B^T = Q_A Q_B^T +
    c (s_A 1^T + 1 s_B^T) + c^2 n, s the row sums of Q. Other integers: float64 chunks of `columns`.
    Either way the copies stay small: (k + m) x columns x 8 bytes at most."""
    others = A if B is None else B
    out = np.zeros((A.shape[0], others.shape[0]))
    if out.size == 0 or A.shape[1] == 0:
        return out
    operands = (A,) if B is None else (A, B)
    low, high = min(float(M.min()) for M in operands), max(float(M.max()) for M in operands)
    center = np.floor((low + high) / 2)
    widest = max(high - center, center - low, 1.0)
    exact_columns = int(FLOAT32_INTEGERS // (widest * widest))  # products of Q's summing to <= 2^24
    small = exact_columns >= SMALL_INTEGER_COLUMNS
    dtype, shift = (np.float32, center) if small else (np.float64, 0.0)
    step = min(columns, exact_columns) if small else columns
    sums_A, sums_B = np.zeros(A.shape[0]), np.zeros(others.shape[0])
    for start in range(0, A.shape[1], step):
        part = slice(start, start + step)
        chunk_A = np.subtract(A[:, part], shift, dtype=dtype)
        chunk_B = chunk_A if B is None else np.subtract(B[:, part], shift, dtype=dtype)
        out += chunk_A @ chunk_B.T  # A A^T: BLAS's syrk
        if shift:
            sums_A += chunk_A.sum(axis=1)  # exact: integers of at most exact_columns x widest <= 2^24
            sums_B += chunk_B.sum(axis=1)
        del chunk_A, chunk_B  # before the next chunk is made: one copy at a time
    if shift:
        out += shift * (sums_A[:, None] + sums_B[None, :]) + shift * shift * A.shape[1]
    return out


def _polynomial(x: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """sum c_i x^i by Horner's rule, highest power first (coefficients in rising order)."""
    result = np.full_like(x, coefficients[-1])
    for c in coefficients[-2::-1]:
        result *= x
        result += c
    return result


_EXP_COEFFICIENTS = np.array(EXP_P)
_ATANH_COEFFICIENTS = 1.0 / np.arange(1.0, 2 * LOG_TERMS, 2)  # 1, 1/3, 1/5, ...: atanh(s) / s in s^2


def exp(x: np.ndarray) -> np.ndarray:
    """e^x (float64), within 1 unit in the last place: x = k ln2 + r, e^x = 2^k e^r, e^r by fdlibm's
    rational form (EXP_P). inf for x > EXP_MAX, 0 for x < EXP_MIN, NaN for NaN."""
    x = np.clip(np.asarray(x, dtype=np.float64), EXP_MIN, EXP_MAX)  # NaN stays NaN
    k = np.rint(x * INV_LN2)
    hi, lo = x - k * LN2_HI, k * LN2_LO  # r = hi - lo, |r| <= ln2/2, exact to ~2^-60
    r = hi - lo
    t = r * r
    c = r - t * _polynomial(t, _EXP_COEFFICIENTS)
    e_r = 1 - ((lo - (r * c) / (2 - c)) - hi)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN: any k (the cast warns), e_r NaN
        return np.ldexp(e_r, k.astype(np.int32))


def log(x: np.ndarray) -> np.ndarray:
    """ln x (float64) for x > 0, within 2 units in the last place: x = f 2^e with f in [sqrt(1/2),
    sqrt 2), ln f = 2 atanh(s), s = (f - 1) / (f + 1). -inf at 0, NaN below 0 or for NaN, inf at inf."""
    x = np.asarray(x, dtype=np.float64)
    f, e = np.frexp(x)
    low = f < SQRT_HALF
    f = np.where(low, 2 * f, f)
    e = (e - low).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (f - 1) / (f + 1)
        result = (e * LN2_HI) + ((2 * s) * _polynomial(s * s, _ATANH_COEFFICIENTS) + e * LN2_LO)
        result = np.where(x > 0, result, np.where(x == 0, -np.inf, np.nan))
    return np.where(np.isinf(x) & (x > 0), np.inf, result)


def log1p_exp(z: np.ndarray) -> np.ndarray:
    """ln(1 + e^z) (float64) for any z without overflow: max(z, 0) + ln(1 + u), u = e^-|z| in (0, 1];
    ln(1 + u) from w = 1 + u rounded, corrected by (u - (w - 1)) / w (Goldberg's log1p)."""
    z = np.asarray(z, dtype=np.float64)
    u = exp(-np.abs(z))
    w = 1 + u
    return np.maximum(z, 0) + (log(w) + (u - (w - 1)) / w)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z) in z's float dtype (float64 for other input); 0 and 1 at -inf and inf, 0 below
    z = -709 (e^-z overflows; the true value is below 1e-308)."""
    z = np.asarray(z)
    dtype = z.dtype if z.dtype in (np.float32, np.float64) else np.float64
    with np.errstate(over="ignore"):
        return (1 / (1 + exp(-z))).astype(dtype, copy=False)
