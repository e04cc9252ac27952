"""The fast float32 passes (stages/passes.py) against the reference math (stages/neuron.py) on random data."""

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pytest

import stages.passes
from stages.neuron import backprop, forward, loss_gradient
from stages.passes import ShardedPass, forward_backward, gram

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
    monkeypatch.setattr(stages.passes, "BLOCK_BYTES", block_bytes)
    X, y, W, b = random_problem()
    z = np.empty(len(y), dtype=np.float32)
    grad = forward_backward(X, y, W, b, z, partial(loss_gradient, loss, rule, m=len(y)))
    X64 = X.astype(np.float64)
    np.testing.assert_allclose(z, forward(X64, W.astype(np.float64), float(b)), rtol=1e-6, atol=1e-6)
    assert_gradient_equal(grad, backprop(X64, y.astype(np.float64), W.astype(np.float64), float(b), loss, rule))


@pytest.mark.parametrize("inline_bytes", [0, 32 << 20])  # shards on the thread pool, and in this thread
@pytest.mark.parametrize("threads", [1, 3])
def test_sharded_pass_equals_backprop_and_scores_the_validation_rows(monkeypatch, inline_bytes, threads):
    monkeypatch.setattr(stages.passes, "BLOCK_BYTES", 4 * 24 * 2)
    monkeypatch.setattr(stages.passes, "INLINE_BYTES", inline_bytes)
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
    monkeypatch.setattr(stages.passes, "BLOCK_BYTES", 4 * 24 * 2)
    monkeypatch.setattr(stages.passes, "INLINE_BYTES", 0)  # really use the thread pool on tiny data
    X, y, W, b = random_problem(m=90)
    grads = []
    for threads in (1, 3):
        with ThreadPoolExecutor(threads) as pool:
            z = np.empty(90, np.float32)
            grads.append(ShardedPass(pool)(X, y, W, b, z, partial(loss_gradient, "mse", "exact")))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    assert grads[0][1] == grads[1][1]


def test_gram_is_a_times_b_transposed():
    A, B = random_problem(m=13)[0], random_problem(m=7, seed=2)[0]
    with ThreadPoolExecutor(2) as pool:
        G = gram(A, B, pool)
    assert G.shape == (13, 7) and G.dtype == np.float32
    np.testing.assert_allclose(G, A.astype(np.float64) @ B.T.astype(np.float64), rtol=1e-6)


@pytest.mark.parametrize("k, n", [(1, 3), (5, 40), (13, 6), (9, 9)])
def test_gram_fills_every_row_whatever_the_shape(k, n):
    # rows fewer than, not divisible by, or equal to SHARDS, k != n; the output memory is poisoned with NaN
    # first (np.empty tends to reuse it), so a row range gram forgets to compute shows
    rng = np.random.default_rng(k)
    A, B = rng.random((k, n), dtype=np.float32), rng.random((7, n), dtype=np.float32)
    for _ in range(3):
        poison = np.full((k, 7), np.nan, np.float32)
        del poison
        with ThreadPoolExecutor(2) as pool:
            G = gram(A, B, pool)
        np.testing.assert_allclose(G, A.astype(np.float64) @ B.T.astype(np.float64), rtol=1e-5)
