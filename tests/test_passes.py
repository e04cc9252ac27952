"""The fast float32 passes (catsdogs/neuron/fast_passes.py) against the reference math (catsdogs/neuron/reference.py) on random data."""

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pytest

import catsdogs.neuron.fast_passes
from catsdogs.neuron.fast_passes import ShardedPass, forward_backward, pixel_gram, pixel_values, scores_by_columns
from catsdogs.neuron.reference import backprop, forward, loss_gradient

RULES = [("mse", "exact"), ("mse", "notebook"), ("cross_entropy", "exact")]


def random_problem(m=37, n=24, seed=0):
    """float32 X (m, n) in [0, 1), labels y (m,), weights W (n,) and b of a realistic size."""
    rng = np.random.default_rng(seed)
    X = rng.random((m, n), dtype=np.float32)
    y = rng.integers(0, 2, m).astype(np.float32)
    W = rng.normal(scale=0.3, size=n).astype(np.float32)
    return X, y, W, np.float32(-0.2)


def assert_gradient_equal(grad, reference):
    """Equal to float32 precision: relative to the size of the reference vector as a whole."""
    (grad_W, grad_b), (ref_W, ref_b) = grad, reference
    assert grad_W.dtype == np.float32
    np.testing.assert_allclose(grad_W, ref_W, rtol=1e-5, atol=1e-6 * np.abs(ref_W).max())
    assert grad_b == pytest.approx(ref_b, rel=1e-5, abs=1e-6 * np.abs(ref_W).max())


@pytest.mark.parametrize("loss, rule", RULES)
@pytest.mark.parametrize("block_bytes", [4 * 24, 4 * 24 * 5, 4 << 20])  # 1-row, 5-row blocks, one block
def test_blocked_forward_backward_equals_backprop(monkeypatch, loss, rule, block_bytes):
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "BLOCK_BYTES", block_bytes)
    X, y, W, b = random_problem()
    z = np.empty(len(y), dtype=np.float32)
    grad = forward_backward(X, y, W, b, z, partial(loss_gradient, loss, rule, m=len(y)))
    X64 = X.astype(np.float64)
    np.testing.assert_allclose(z, forward(X64, W.astype(np.float64), float(b)), rtol=1e-6, atol=1e-6)
    assert_gradient_equal(grad, backprop(X64, y.astype(np.float64), W.astype(np.float64), float(b), loss, rule))


@pytest.mark.parametrize("inline_bytes", [0, 32 << 20])  # shards on the thread pool, and in this thread
@pytest.mark.parametrize("threads", [1, 3])
def test_sharded_pass_equals_backprop_and_scores_the_validation_rows(monkeypatch, inline_bytes, threads):
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "BLOCK_BYTES", 4 * 24 * 2)
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "INLINE_BYTES", inline_bytes)
    X, y, W, b = random_problem()
    X_valid = random_problem(m=11, seed=1)[0]
    z, z_valid = np.empty(len(y), dtype=np.float32), np.empty(11, dtype=np.float32)
    with ThreadPoolExecutor(threads) as pool:
        grad = ShardedPass(pool)(X, y, W, b, z, partial(loss_gradient, "mse", "exact", m=len(y)), X_valid, z_valid)
        assert ShardedPass(pool)(X, y, W, b, z) is None  # no rule: scores only
    W64 = W.astype(np.float64)
    np.testing.assert_allclose(z_valid, forward(X_valid.astype(np.float64), W64, float(b)), rtol=1e-6, atol=1e-6)
    assert_gradient_equal(grad, backprop(X.astype(np.float64), y.astype(np.float64), W64, float(b)))


def test_sharded_pass_does_not_depend_on_the_number_of_threads(monkeypatch):
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "BLOCK_BYTES", 4 * 24 * 2)
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "INLINE_BYTES", 0)  # really use the thread pool on tiny data
    X, y, W, b = random_problem(m=90)
    grads = []
    for threads in (1, 3):
        with ThreadPoolExecutor(threads) as pool:
            z = np.empty(90, np.float32)
            grads.append(ShardedPass(pool)(X, y, W, b, z, partial(loss_gradient, "mse", "exact")))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    assert grads[0][1] == grads[1][1]


def pixel_problem(m, n=24, seed=0, low=0):
    """Features as images.to_features makes them: integer pixel values in [low, 255] / 255, float32."""
    P = np.random.default_rng(seed).integers(low, 256, (m, n))
    return P.astype(np.float32) / np.float32(255), P


def test_pixel_gram_is_a_times_b_transposed_from_the_exact_integer_product():
    (A, P_A), (B, P_B) = pixel_problem(13), pixel_problem(7, seed=2, low=-255)
    G = pixel_gram(pixel_values(A, 255.0), pixel_values(B, 255.0), 255.0)
    assert G.shape == (13, 7) and G.dtype == np.float32
    exact = [[sum(int(a) * int(b) for a, b in zip(row_a, row_b)) for row_b in P_B] for row_a in P_A]  # Python ints
    np.testing.assert_array_equal(G, (np.array(exact, dtype=np.float64) / 255**2).astype(np.float32))
    product = A.astype(np.float64) @ B.T.astype(np.float64)  # of the float32 features: within their rounding
    np.testing.assert_allclose(G, product, rtol=1e-6, atol=1e-6 * np.abs(product).max())


def test_pixel_gram_of_one_matrix_is_its_symmetric_product():
    A, P = pixel_problem(9, n=3000, low=-255)
    G = pixel_gram(pixel_values(A, 255.0), None, 255.0)
    exact = [[sum(int(a) * int(b) for a, b in zip(row_a, row_b)) for row_b in P] for row_a in P]
    np.testing.assert_array_equal(G, (np.array(exact, dtype=np.float64) / 255**2).astype(np.float32))
    np.testing.assert_array_equal(G, G.T)


@pytest.mark.parametrize(
    "change", [lambda X: X + np.float32(1e-3), lambda X: X * 2, lambda X: -X * 2, lambda X: np.nan * X]
)
def test_pixel_values_refuse_features_that_are_not_pixel_values(change):
    A, _ = pixel_problem(5, low=1)
    assert pixel_values(change(A), 255.0) is None


def test_pixel_values_are_the_integers_the_features_were_made_of():
    A, P = pixel_problem(9, low=-255)
    values = pixel_values(A, 255.0)
    assert values.dtype == np.int16
    np.testing.assert_array_equal(values, P)
    assert pixel_values(np.float32([[0.5]]), 2.0).tolist() == [[1]]  # any scale, not only 255


@pytest.mark.parametrize("threads", [1, 2])
def test_scores_by_columns_are_v_m_plus_b_the_same_bits_inline_or_on_the_pool(monkeypatch, threads):
    rng = np.random.default_rng(3)
    v, M = rng.standard_normal(50).astype(np.float32), rng.standard_normal((50, 37)).astype(np.float32)
    results = []
    for inline_bytes in (1 << 40, 0):  # one call, then SHARDS column ranges on the pool
        monkeypatch.setattr(catsdogs.neuron.fast_passes, "INLINE_BYTES", inline_bytes)
        out = np.full(37, np.nan, np.float32)
        with ThreadPoolExecutor(threads) as pool:
            scores_by_columns(v, M, np.float32(0.25), out, pool)
        results.append(out)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], v.astype(np.float64) @ M.astype(np.float64) + 0.25, rtol=1e-5, atol=1e-5)


def test_block_rows_is_the_most_whole_float32_rows_in_block_bytes_and_at_least_one(monkeypatch):
    # 4 MiB / (12,288 features x 4 bytes) = 85.3 rows: 85 whole rows fit
    assert catsdogs.neuron.fast_passes.block_rows(12288) == 85
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "BLOCK_BYTES", 100)
    assert [catsdogs.neuron.fast_passes.block_rows(n) for n in (0, 1, 5, 24, 25, 26, 1000)] == [
        25,
        25,
        5,
        1,
        1,
        1,
        1,
    ]  # 100 // (4 n), >= 1; no columns as one


def test_forward_backward_without_a_rule_scores_only():
    X, y, W, b = random_problem()
    z = np.empty(len(y), dtype=np.float32)
    assert forward_backward(X, y, W, b, z, None) is None
    np.testing.assert_allclose(z, forward(X.astype(np.float64), W.astype(np.float64), float(b)), rtol=1e-6, atol=1e-6)


def spy_on_forward_backward(monkeypatch):
    """Record, for each call of forward_backward (passes through to it): the rows of its parent matrix
    it got (first row, row count) and the thread it ran on."""
    calls = []
    real = catsdogs.neuron.fast_passes.forward_backward

    def spy(X_part, *rest):
        calls.append({"rows": X_part, "thread": threading.get_ident()})
        return real(X_part, *rest)

    monkeypatch.setattr(catsdogs.neuron.fast_passes, "forward_backward", spy)
    return calls


def row_ranges(parent, parts):
    """(first row, row count) of each row slice of `parent` in `parts`, which must share its memory."""
    start = parent.__array_interface__["data"][0]
    return [((part.__array_interface__["data"][0] - start) // parent.strides[0], part.shape[0]) for part in parts]


def test_sharded_pass_cuts_the_rows_into_shards_fixed_ranges_in_order(monkeypatch):
    # 37 rows in SHARDS = 4 ranges cut at linspace(0, 37, 5) = 0, 9.25, 18.5, 27.75, 37 (rounded down);
    # 11 validation rows at 0, 2.75, 5.5, 8.25, 11. The ranges fix the order of the float32 sums.
    assert catsdogs.neuron.fast_passes.SHARDS == 4
    calls = spy_on_forward_backward(monkeypatch)
    X, y, W, b = random_problem()
    X_valid = random_problem(m=11, seed=1)[0]
    z, z_valid = np.empty(37, np.float32), np.empty(11, np.float32)
    with ThreadPoolExecutor(2) as pool:
        ShardedPass(pool)(X, y, W, b, z, partial(loss_gradient, "mse", "exact", m=37), X_valid, z_valid)
    parts = [call["rows"] for call in calls]
    assert row_ranges(X, parts[:4]) == [(0, 9), (9, 9), (18, 9), (27, 10)]
    assert row_ranges(X_valid, parts[4:]) == [(0, 2), (2, 3), (5, 3), (8, 3)]


def test_sharded_pass_without_training_rows_scores_the_validation_rows():
    # catsdogs/neuron/lbfgs.py scores the validation rows alone: X, y and z are None
    X_valid, _, W, b = random_problem(m=11, seed=1)
    z_valid = np.empty(11, dtype=np.float32)
    with ThreadPoolExecutor(2) as pool:
        assert ShardedPass(pool)(None, None, W, b, None, None, X_valid, z_valid) is None
    expected = forward(X_valid.astype(np.float64), W.astype(np.float64), float(b))
    np.testing.assert_allclose(z_valid, expected, rtol=1e-6, atol=1e-6)


def test_sharded_pass_runs_on_the_pool_from_inline_bytes_on(monkeypatch):
    # a pass of fewer than INLINE_BYTES bytes of X runs in the calling thread; from INLINE_BYTES on, on
    # the pool (no BLAS in a pass: einsum releases the GIL, the shards run on every core)
    calls = spy_on_forward_backward(monkeypatch)
    X, y, W, b = random_problem()
    z = np.empty(37, np.float32)
    with ThreadPoolExecutor(2) as pool:
        for inline_bytes in (X.nbytes + 1, X.nbytes):
            monkeypatch.setattr(catsdogs.neuron.fast_passes, "INLINE_BYTES", inline_bytes)
            ShardedPass(pool)(X, y, W, b, z, partial(loss_gradient, "mse", "exact", m=37))
    inline, pooled = calls[:4], calls[4:]
    assert len(pooled) == 4
    assert {call["thread"] for call in inline} == {threading.get_ident()}
    assert threading.get_ident() not in {call["thread"] for call in pooled}


def test_the_gradient_is_float32_arithmetic_dz_times_x_added_row_after_row():
    # no wider accumulator anywhere (a float64 one would round differently on some elements): with
    # dz = y (a rule that ignores a), dJ/dW_j = ((y_0 X_0j + y_1 X_1j) + y_2 X_2j) + ... in float32
    X, y, W, b = random_problem(m=9, n=40, seed=4)
    y = np.random.default_rng(5).standard_normal(9).astype(np.float32)
    grad_W, grad_b = forward_backward(X, y, W, b, np.empty(9, np.float32), lambda a, y: y)
    expected = [np.float32(0)] * 40
    for i in range(9):
        expected = [e + y[i] * X[i, j] for j, e in enumerate(expected)]  # numpy float32 scalars
    assert grad_W.dtype == np.float32 and grad_W.tolist() == [float(e) for e in expected]
    assert grad_b == sum(y[1:], start=y[0])


def test_model_scores_are_float32_x_w_plus_b_whatever_the_dtype_of_w():
    X, _, W, _ = random_problem(m=6, n=50)
    z = catsdogs.neuron.fast_passes.model_scores(X, W.astype(np.float64), 10.0)
    assert z.dtype == np.float32
    np.testing.assert_array_equal(z, catsdogs.neuron.fast_passes.model_scores(X, W, np.float32(10)))
    np.testing.assert_allclose(z, X.astype(np.float64) @ W.astype(np.float64) + 10.0, rtol=1e-6)


def test_pixel_values_of_a_tall_matrix_are_exact_in_every_block():
    # 4,096 rows of 512 features: block_rows(512) = 2,048, so two blocks, and more rows than columns.
    # Unseeded: a result left unwritten must not be found by chance in memory freed by an earlier run of
    # this test (mutmut forks its test processes from one that ran it)
    A, P = pixel_problem(4096, n=512, seed=None)
    np.testing.assert_array_equal(pixel_values(A, 255.0), P)


def test_pixel_values_of_no_features_and_the_largest_pixel_value():
    assert pixel_values(np.zeros((3, 0), np.float32), 255.0).shape == (3, 0)
    assert pixel_values(np.float32([[255, -255]]) / np.float32(255), 255.0).tolist() == [[255, -255]]
    assert pixel_values(np.float32([[256]]) / np.float32(255), 255.0) is None  # beyond a pixel value


def test_pixel_gram_lets_blas_use_every_usable_core_inside_a_one_thread_limit(monkeypatch):
    # the stages limit BLAS to one thread (blas_threads.use_one_blas_thread); the exact Gram product may
    # use every core, as its sums do not depend on how BLAS splits them
    # (NumPy's BLAS, the one BLAS_THREADS knows: scipy's, loaded later by lbfgs, is another library)
    from threadpoolctl import threadpool_limits

    seen = []
    real = catsdogs.neuron.fast_passes.integer_gram
    numpy_blas = catsdogs.neuron.fast_passes.BLAS_THREADS

    def spy(*args):
        seen.append({lib["num_threads"] for lib in numpy_blas.info() if lib["user_api"] == "blas"})
        return real(*args)

    monkeypatch.setattr(catsdogs.neuron.fast_passes, "integer_gram", spy)
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "usable_cores", lambda: 3)
    _, P = pixel_problem(4)
    with threadpool_limits(limits=1, user_api="blas"):
        pixel_gram(P, None, 255.0)
    assert seen == [{3}]


def test_scores_by_columns_splits_from_inline_bytes_on_into_shards_column_ranges(monkeypatch):
    # 37 columns in SHARDS = 4 ranges cut at linspace(0, 37, 5) = 0, 9.25, 18.5, 27.75, 37 (rounded down)
    v, M = np.ones(3, np.float32), np.ones((3, 37), np.float32)
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "INLINE_BYTES", M.nbytes)  # exactly: on the pool
    ranges = []

    class Pool:
        def map(self, function, lows, highs):
            ranges.extend(zip(lows.tolist(), highs.tolist()))
            return [function(lo, hi) for lo, hi in zip(lows, highs)]

    out = np.zeros(37, np.float32)
    scores_by_columns(v, M, np.float32(1), out, Pool())
    assert ranges == [(0, 9), (9, 18), (18, 27), (27, 37)] and out.tolist() == [4.0] * 37
