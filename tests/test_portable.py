"""catsdogs/neuron/portable.py against independent oracles: Python's math (correctly rounded or nearly) and
exact integer arithmetic; and its promise, the same bits whatever the memory alignment or thread count
(other CPUs: tests/test_reproducible.py)."""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catsdogs.neuron import portable

FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)


def ulps(got: float, want: float) -> float:
    """|got - want| in units in the last place of want."""
    return abs(got - want) / math.ulp(want) if want else abs(got) / math.ulp(0.0)


@settings(max_examples=400, deadline=None)
@given(st.floats(min_value=-708, max_value=709, allow_nan=False))
def test_exp_is_within_two_ulps_of_math_exp(x):
    assert ulps(float(portable.exp(np.float64(x))), math.exp(x)) <= 2


def test_exp_at_the_edges_of_float64():
    x = np.array([-np.inf, -800.0, -745.2, 0.0, -0.0, 709.78, 709.79, 710.0, np.inf, np.nan])
    got = portable.exp(x)
    assert got[0] == 0 and got[1] == 0 and got[2] == 0  # below EXP_MIN: 0 (math.exp(-745.2) is 0 too)
    assert got[3] == 1 and got[4] == 1
    assert ulps(float(got[5]), math.exp(709.78)) <= 2  # the largest below float64's maximum
    with pytest.raises(OverflowError):
        math.exp(709.79)
    assert got[6] == np.inf and got[7] == np.inf and got[8] == np.inf and np.isnan(got[9])
    assert ulps(float(portable.exp(np.float64(-740.0))), math.exp(-740.0)) <= 1  # subnormal results


@settings(max_examples=400, deadline=None)
@given(st.floats(min_value=5e-324, max_value=1.7e308, allow_nan=False))
def test_log_is_within_two_ulps_of_math_log(x):
    want = math.log(x)
    assert ulps(float(portable.log(np.float64(x))), want) <= 2 or abs(want) < 1e-300


def test_log_near_one_and_at_the_edges():
    for x in (1.0, 1 + 2**-52, 1 - 2**-53, 0.7071067811865476, 1.4142135623730951, 2.0, 0.5):
        want = math.log(x)
        got = float(portable.log(np.float64(x)))
        assert got == want or abs(got - want) <= 2 * math.ulp(want)
    got = portable.log(np.array([0.0, -0.0, -1.0, np.inf, np.nan]))
    assert got[0] == -np.inf and got[1] == -np.inf and np.isnan(got[2]) and got[3] == np.inf and np.isnan(got[4])


@settings(max_examples=400, deadline=None)
@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_log1p_exp_is_the_softplus_without_overflow(z):
    # oracle: math.log1p(math.exp(-|z|)) + max(z, 0), each correctly rounded or nearly
    want = max(z, 0.0) + math.log1p(math.exp(-abs(z)))
    got = float(portable.log1p_exp(np.float64(z)))
    assert got == pytest.approx(want, rel=4 * 2**-52, abs=4 * 2**-1074)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-800, max_value=800, allow_nan=False))
def test_sigmoid_is_one_over_one_plus_e_to_the_minus_z(z):
    # below z = -709, e^-z overflows and the sigmoid is 0 (the true value is below 1e-308)
    want = 1 / (1 + math.exp(-z)) if z > -709 else 0.0
    assert float(portable.sigmoid(np.float64(z))) == pytest.approx(want, rel=4 * 2**-52, abs=1e-307)


def test_sigmoid_keeps_float32_and_reaches_0_and_1():
    z = np.array([-np.inf, -200, 0, 200, np.inf], dtype=np.float32)
    a = portable.sigmoid(z)
    assert a.dtype == np.float32 and a.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert portable.sigmoid(np.arange(3)).dtype == np.float64  # integers: float64


def product_operands(k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (k, n), x (n,), v (k,): random float32 in [0, 1)."""
    rng = np.random.default_rng(seed)
    return rng.random((k, n), dtype=np.float32), rng.random(n, dtype=np.float32), rng.random(k, dtype=np.float32)


def test_matvec_vecmat_dot_are_the_products():
    A, x, v = product_operands(37, 301, seed=0)
    A64 = A.astype(np.float64)
    np.testing.assert_allclose(portable.matvec(A, x), A64 @ x.astype(np.float64), rtol=2e-6)
    np.testing.assert_allclose(portable.vecmat(v, A), v.astype(np.float64) @ A64, rtol=2e-6)
    assert portable.dot(x, x) == pytest.approx(float(x.astype(np.float64) @ x.astype(np.float64)), rel=2e-6)
    out = np.empty(37, dtype=np.float32)
    assert portable.matvec(A, x, out=out) is out and out.dtype == np.float32


def aligned_copy(array: np.ndarray, offset: int) -> np.ndarray:
    """array's values in memory starting `offset` elements past an allocation's start (other alignment)."""
    buffer = np.empty(array.size + 16, dtype=array.dtype)
    view = buffer[offset : offset + array.size].reshape(array.shape)
    view[...] = array
    return view


def test_products_are_the_same_bits_at_any_alignment_and_from_any_thread():
    A, x, v = product_operands(33, 1001, seed=1)
    results = set()
    for offset in range(5):
        Ao, xo, vo = aligned_copy(A, offset), aligned_copy(x, offset), aligned_copy(v, offset)
        results.add((portable.matvec(Ao, xo).tobytes(), portable.vecmat(vo, Ao).tobytes()))
    with ThreadPoolExecutor(2) as pool:
        results.update(pool.map(lambda _: (portable.matvec(A, x).tobytes(), portable.vecmat(v, A).tobytes()), range(4)))
    assert len(results) == 1


@pytest.mark.parametrize("columns", [1, 7, 2048])
def test_integer_gram_is_exact(columns):
    rng = np.random.default_rng(2)
    A, B = rng.integers(-255, 256, (6, 20)), rng.integers(-255, 256, (4, 20))
    exact = [[sum(int(a) * int(b) for a, b in zip(row_a, row_b)) for row_b in B] for row_a in A]  # Python ints
    got = portable.integer_gram(A.astype(np.int16), B.astype(np.uint8 if B.min() >= 0 else np.int16), columns)
    assert got.dtype == np.float64 and got.tolist() == exact


@pytest.mark.parametrize("low, high", [(0, 255), (-255, 255), (255, 255), (0, 0), (-(2**20), 2**20)])
def test_integer_gram_is_exact_at_the_ends_of_its_float32_and_float64_ranges(low, high):
    # the ends of the range make the largest sums: 0..255 shifts to -127..128 (1,024 columns a chunk, sums of
    # exactly 2^24), -255..255 to 258 columns; 2^20 is too wide for float32 (float64 chunks)
    rng = np.random.default_rng(3)
    A = rng.choice([low, high], (5, 3000)).astype(np.int64)
    B = np.vstack([np.full(3000, low), np.full(3000, high), rng.integers(low, high + 1, 3000)]).astype(np.int64)
    assert portable.integer_gram(A, B).tolist() == (A @ B.T).tolist()  # NumPy's int64 product: no BLAS
    assert portable.integer_gram(A).tolist() == (A @ A.T).tolist()


def test_integer_gram_of_no_rows_or_no_columns_is_zeros():
    assert portable.integer_gram(np.zeros((0, 4), dtype=np.uint8)).shape == (0, 0)
    assert portable.integer_gram(np.ones((2, 0)), np.ones((3, 0))).tolist() == [[0.0] * 3] * 2


def test_integer_gram_is_exact_beyond_float32s_integers():
    # 12,288 products of 255 x 255 add up to 799,014,400, above 2^24 (where float32 stops holding every integer)
    A = np.full((2, 12288), 255, dtype=np.uint8)
    assert portable.integer_gram(A, A)[0, 0] == 12288 * 255 * 255 > 2**24
