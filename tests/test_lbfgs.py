"""train.optimizer lbfgs (catsdogs/neuron/lbfgs.py): its objective and gradient against the reference math
(catsdogs/neuron/reference.py), its parts (exact pixel products, Gram-Schmidt, Jacobi, two-loop recursion, line
search) against numpy.linalg and the textbook formulas, its optimum against scikit-learn's
LogisticRegression for the same C, its place in fit (history, stopping, early stopping, threads,
parameter checks), and the same bits under other OpenBLAS kernels and NumPy dispatch levels."""

import math
import os
import subprocess
import sys
import tracemalloc
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

import catsdogs.neuron.fast_passes
import catsdogs.neuron.fit
import catsdogs.neuron.lbfgs
import catsdogs.neuron.principal_directions
from catsdogs.errors import ParamError
from catsdogs.neuron.fast_passes import ShardedPass
from catsdogs.neuron.fit import fit
from catsdogs.neuron.lbfgs import LBFGS, Coordinates, ScaledObjective, Trial, line_search, next_step, two_loop
from catsdogs.neuron.portable import dot
from catsdogs.neuron.principal_directions import orthonormal_rows, pixel_product, principal_directions, symmetric_eigen
from catsdogs.neuron.reference import backprop, forward, loss_value, sigmoid
from catsdogs.pipeline.config import TrainParams
from tests.test_fit import split_toy, toy_problem


def lbfgs_params(**changes):
    return TrainParams(**{"optimizer": "lbfgs", "loss": "cross_entropy", "epochs": 500, **changes})


def pixel_toy(m, n, seed):
    """toy_problem's features rounded to pixel values / 255 (what the principal directions need)."""
    X, y = toy_problem(m=m, n=n, seed=seed)
    return np.rint(X * 255).astype(np.float32) / np.float32(255), y


def objective64(X, y, W, b, l2):
    """F = J + l2/2 |W|^2 in float64, J the mean cross-entropy of catsdogs/neuron/reference.py."""
    X, y, W = X.astype(np.float64), y.astype(np.float64), W.astype(np.float64)
    z = forward(X, W, float(b))
    return loss_value("cross_entropy", z, sigmoid(z), y) + l2 / 2 * W @ W


def small_rank(monkeypatch, rank=4):
    """A change of variables with `rank` principal directions, estimated from every row, on small data."""
    monkeypatch.setattr(catsdogs.neuron.principal_directions, "RANK", rank)
    monkeypatch.setattr(catsdogs.neuron.principal_directions, "OVERSAMPLE", 3)


def chain_rule_gradient(X, y, x, l2, coordinates):
    """dF/dx at x = (v, c) from the reference backprop, through W = P v and b = c - mu W (P = U diag(s - 1)
    U^T + I built here from U and s), in float64."""
    P = np.eye(X.shape[1]) + coordinates.U @ np.diag(coordinates.s - 1) @ coordinates.U.T
    W = P @ x[:-1]
    b = x[-1] - coordinates.mu @ W
    dW, db = backprop(X.astype(np.float64), y.astype(np.float64), W, b, "cross_entropy")
    return W, b, np.append(P @ (dW - coordinates.mu * db + l2 * W), db)  # dF/dv = P^T dF/dW, P symmetric


@pytest.mark.parametrize("inline_bytes", [0, 32 << 20])  # shards on the pool, and in this thread
def test_objective_and_gradient_equal_the_reference(monkeypatch, inline_bytes):
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "BLOCK_BYTES", 4 * 20 * 3)  # 3-row blocks
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "INLINE_BYTES", inline_bytes)
    small_rank(monkeypatch)
    X, y = pixel_toy(m=50, n=20, seed=4)
    y = y.astype(np.float32)
    x = np.append(np.random.default_rng(1).normal(scale=0.5, size=20), 0.3)  # (v, c)
    l2 = 0.07
    coordinates = Coordinates(X, l2, pixel_scale=255)
    assert coordinates.U.shape == (20, 4)  # the change of variables is not the identity here
    with ThreadPoolExecutor(2) as pool:
        objective = ScaledObjective(X, y, l2, ShardedPass(pool), coordinates)
        F, gradient = objective(x)
    W, b, reference = chain_rule_gradient(X, y, x, l2, coordinates)
    assert pytest.approx(objective64(X, y, W, b, l2), rel=1e-6) == F
    np.testing.assert_allclose(gradient, reference, rtol=1e-5, atol=1e-6 * np.abs(reference).max())
    np.testing.assert_allclose(objective.z, forward(X.astype(np.float64), W, b), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(objective.weights(x)[0], W, rtol=1e-6)
    assert objective.weights(x)[1] == pytest.approx(b, rel=1e-6)


def test_objective_gradient_equals_finite_differences(monkeypatch):
    small_rank(monkeypatch, rank=2)
    X, y = pixel_toy(m=40, n=8, seed=2)
    x = np.array([0.4, -0.3, 0.2, 0.1, -0.5, 0.25, -0.1, 0.3, 0.05])
    coordinates = Coordinates(X, 0.05, pixel_scale=255)
    assert coordinates.U.shape == (8, 2)
    objective = ScaledObjective(X, y.astype(np.float32), 0.05, ShardedPass(None), coordinates)
    gradient = objective(x)[1].copy()

    def F(point):  # float64, from the neuron's weights W = P v, b = c - mu W
        W, b, _ = chain_rule_gradient(X, y, point, 0.05, coordinates)
        return objective64(X, y, W, b, 0.05)

    step = 1e-6
    numeric = [(F(x + step * e) - F(x - step * e)) / (2 * step) for e in np.eye(len(x))]
    np.testing.assert_allclose(gradient, numeric, rtol=1e-4, atol=1e-6)


def test_objective_reads_x_once_per_new_point():
    """Asked again at the point it last evaluated (scipy's callback, then record_at), the objective returns
    the same values without another pass over X; at a new point it makes one."""
    X, y = toy_problem(m=30, n=6, seed=5)
    calls = []

    class CountingPass(ShardedPass):
        def __call__(self, *args, **kwargs):
            calls.append(1)
            return super().__call__(*args, **kwargs)

    objective = ScaledObjective(X, y.astype(np.float32), 0.1, CountingPass(None), Coordinates(X, 0.1))
    x = np.linspace(-0.5, 0.5, 7)
    F, gradient = objective(x)
    F_again, gradient_again = objective(x.copy())
    assert len(calls) == 1 and F_again == F and np.array_equal(gradient_again, gradient)
    objective(x + 0.1)
    assert len(calls) == 2 and objective(x)[0] == F and len(calls) == 3


@pytest.mark.parametrize("m, step", [(15, 1), (35, 3)])
def test_mean_row_is_taken_from_evenly_spaced_rows_in_float64(monkeypatch, m, step):
    """mu is the float64 mean of every step-th row, step = max(1, m // SAMPLE_ROWS)."""
    monkeypatch.setattr(catsdogs.neuron.lbfgs, "SAMPLE_ROWS", 10)
    X = toy_problem(m=m, n=20, seed=6)[0] * np.float32(1000)  # float32 sums would round at 1e-7 of 1000s
    mu = Coordinates(X, 0.1).mu
    assert mu.dtype == np.float64
    np.testing.assert_allclose(mu, np.mean(X[::step].astype(np.float64), axis=0), rtol=1e-13)


def test_principal_directions_are_the_top_eigenvectors_of_the_covariance(monkeypatch):
    small_rank(monkeypatch, rank=3)
    rng = np.random.default_rng(0)
    scales = np.array([5.0, 3.0, 2.0, 1.5] + [0.1] * 26)  # four strong directions in a random basis
    basis = np.linalg.qr(rng.normal(size=(30, 30)))[0]
    P = np.rint((rng.normal(size=(400, 30)) * scales) @ basis.T * 10 + 128).astype(np.int16)  # pixel values
    S = P.astype(np.float64) / 255
    U, s = principal_directions(P, 255, S.mean(axis=0), l2=0.01)
    lam, vectors = np.linalg.eigh(np.cov(S.T, bias=True))  # ascending
    lam, vectors = lam[::-1], vectors[:, ::-1]
    np.testing.assert_allclose(np.abs(U.T @ vectors[:, :3]), np.eye(3), atol=2e-3)  # same directions
    h = lam / 4 + 0.01
    np.testing.assert_allclose(s, np.sqrt(h[3] / h[:3]), rtol=2e-3)  # curvature scaled to the 4th's


def scale_matrix(U, s):
    """P = I + U diag(s - 1) U^T (n, n), the change of variables' matrix (the same for either sign of a u_i)."""
    return np.eye(U.shape[0]) + U @ np.diag(s - 1) @ U.T


@pytest.mark.parametrize("rows, low", [(60, 0), (200, 200)])
def test_principal_directions_equal_the_float64_recipe(monkeypatch, rows, low):
    """The documented recipe in plain float64 with numpy.linalg: k = min(RANK, min(r, n) - OVERSAMPLE - 1);
    V (n, k + OVERSAMPLE) uniform in [-1, 1) from default_rng(0), orthonormalised; POWER_STEPS times
    V = orth((S - mu)^T (S - mu) V); the SVD of (S - mu) V; u_i = V w_i, h_i = sigma_i^2 / r / 4 + l2,
    s_i = sqrt(h_k / h_i). Pixels without a gap in their spectrum (so that the result depends on every
    step, the start included), far from zero or not."""
    small_rank(monkeypatch, rank=5)
    P = np.random.default_rng(rows).integers(low, 256, size=(rows, 24)).astype(np.int16)
    S = P / 255
    mu = S.mean(axis=0)
    U, s = principal_directions(P, 255, mu, l2=0.02)
    k = min(5, min(S.shape) - 3 - 1)
    centred = S - mu
    V = np.linalg.qr((np.random.default_rng(0).random((k + 3, 24)) * 2 - 1).T)[0]
    for _ in range(catsdogs.neuron.principal_directions.POWER_STEPS):
        V = np.linalg.qr(centred.T @ (centred @ V))[0]
    _, singular, Wt = np.linalg.svd(centred @ V, full_matrices=False)
    h = singular**2 / rows / 4 + 0.02
    assert U.shape == (24, k) and s.shape == (k,) and U.dtype == s.dtype == np.float64
    np.testing.assert_allclose(s, np.sqrt(h[k] / h[:k]), rtol=1e-9)
    np.testing.assert_allclose(scale_matrix(U, s), scale_matrix((V @ Wt.T)[:, :k], s), atol=1e-8)


@pytest.mark.parametrize("rows, l2", [(14, 0.02), (13, 0.02), (4, 0.02), (100, 0.0)])
def test_principal_directions_none_when_too_few_rows_or_no_curvature(monkeypatch, rows, l2):
    """k = min(RANK, min(r, n) - OVERSAMPLE - 1) directions: one from 14 rows, none from 13 or fewer (the
    sketch needs k + OVERSAMPLE columns and one more singular value, h_k); none either from features that
    never vary (black photos) without l2, where h_k = 0 leaves no curvature to scale to."""
    monkeypatch.setattr(catsdogs.neuron.principal_directions, "OVERSAMPLE", 12)
    P = np.random.default_rng(3).integers(0, 256, size=(rows, 30)).astype(np.int16) * (rows != 100)
    U, s = principal_directions(P, 255, P.mean(axis=0) / 255, l2)
    k = 1 if rows == 14 else 0
    assert U.shape == (30, k) and s.shape == (k,) and np.all(np.isfinite(s))


def test_no_principal_directions_for_features_that_are_not_pixel_values(monkeypatch):
    """Without pixel_scale, or with features that are not pixel values / pixel_scale, only the centring."""
    small_rank(monkeypatch)
    X = toy_problem(m=50, n=20, seed=4)[0]
    assert Coordinates(X, 0.1).U.shape == Coordinates(X, 0.1, pixel_scale=255).U.shape == (20, 0)
    assert Coordinates(np.rint(X * 255) / np.float32(255), 0.1, pixel_scale=255).U.shape == (20, 4)


def test_principal_directions_do_not_depend_on_blas_threads_nor_copy_the_rows():
    """The same bits with 1 or 2 BLAS threads (its products are exact), and never a float64 copy of the
    rows (2,000 x 12,288 pixels: 197 MB in float64): blocks of them only."""
    P = np.random.default_rng(0).integers(0, 256, size=(1000, 8000)).astype(np.int16)
    mu = P.mean(axis=0) / 255
    results = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            tracemalloc.start()
            try:
                results.append(principal_directions(P, 255, mu, 0.01))
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        assert peak < P.size * 8 / 2
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("transposed", [False, True])
def test_pixel_product_is_the_exact_product_of_the_quantized_factor(monkeypatch, transposed):
    """P A^T (or P^T A^T) equals numpy's float64 product to 1e-10 relative, for pixels at their bound and
    factors of mixed magnitude; each row of A is rounded to integers times a power of two small enough
    that the result is exact: the float64 product of those integers, computed here in Python integers."""
    monkeypatch.setattr(catsdogs.neuron.principal_directions, "TRANSPOSED_COLUMNS", 7)  # several blocks
    rng = np.random.default_rng(5)
    P = rng.choice(np.array([-255, 255, 0, 17], dtype=np.int16), size=(30, 40))
    A = rng.normal(size=(3, 30 if transposed else 40)) * np.array([[1e-3], [1.0], [1e5]])
    result = pixel_product(P, A, transposed)
    dense = P.astype(np.float64).T if transposed else P.astype(np.float64)
    reference = dense @ A.T
    column_size = np.abs(reference).max(axis=0)
    np.testing.assert_allclose(result / column_size, reference / column_size, atol=1e-10)
    Q, e = catsdogs.neuron.principal_directions.quantized(A)
    exact = [[sum(int(p) * int(q) for p, q in zip(row, a)) for a in Q] for row in dense.astype(np.int64)]
    np.testing.assert_array_equal(result, np.ldexp(np.array(exact, dtype=np.float64), -e))


@pytest.mark.parametrize("size", [1, 2, 7, 12, 51])
def test_symmetric_eigen_equals_numpy_eigh(size):
    """Eigenvalues and eigenvectors (up to sign) of random symmetric matrices, one with a repeated
    eigenvalue (where only the eigenspace is defined), against numpy.linalg.eigh."""
    rng = np.random.default_rng(size)
    basis = np.linalg.qr(rng.normal(size=(size, size)))[0]
    values = rng.normal(size=size) * 10
    values[: size // 3] = values[0]  # repeated
    A = basis @ np.diag(values) @ basis.T
    A = (A + A.T) / 2
    found, vectors = symmetric_eigen(A)
    expected = np.linalg.eigvalsh(A)[::-1]
    np.testing.assert_allclose(found, expected, atol=1e-12 * np.abs(values).max())
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(size), atol=1e-13)
    np.testing.assert_allclose(A @ vectors, vectors * found, atol=1e-12 * np.abs(values).max())


def test_orthonormal_rows_span_what_numpy_qr_spans():
    """Orthonormal rows spanning the same nested subspaces as numpy's QR (same rows up to sign), even for
    badly conditioned rows; a zero row stays 0."""
    rng = np.random.default_rng(2)
    A = rng.normal(size=(6, 50)) * np.array([[1.0], [1e-6], [1.0], [1e3], [1e-9], [2.0]])
    A[2] += A[0]  # nearly dependent on the first
    Q = orthonormal_rows(A)
    reference = np.linalg.qr(A.T)[0].T
    np.testing.assert_allclose(np.abs(Q @ reference.T), np.eye(6), atol=1e-8)
    np.testing.assert_allclose(Q @ Q.T, np.eye(6), atol=1e-14)
    assert not orthonormal_rows(np.zeros((2, 5))).any()


def test_two_loop_equals_the_bfgs_update_of_the_inverse_hessian():
    """-H g with H from the BFGS recursion H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T over the pairs,
    oldest first, from H0 = (s.y / y.y) I of the newest (Nocedal & Wright, (7.19) and (7.20))."""
    rng = np.random.default_rng(4)
    n = 9
    A = rng.normal(size=(n, n))
    A = A @ A.T + np.eye(n)  # a positive definite Hessian: s.y > 0
    pairs = deque()
    for _ in range(4):
        s = rng.normal(size=n)
        pairs.append((s, A @ s, 1 / (s @ A @ s)))
    g = rng.normal(size=n)
    s_new, y_new, rho_new = pairs[-1]
    H = (s_new @ y_new) / (y_new @ y_new) * np.eye(n)
    for s, y, rho in pairs:
        H = (np.eye(n) - rho * np.outer(s, y)) @ H @ (np.eye(n) - rho * np.outer(y, s)) + rho * np.outer(s, s)
    np.testing.assert_allclose(two_loop(g, pairs), -H @ g, rtol=1e-10)
    np.testing.assert_array_equal(two_loop(g, deque()), -g)


def logistic_line(a, m_y):
    """F(x) = mean log(1 + e^(-m_y a x)) + x^2 / 20 along x (1,): convex, its gradient and the count of calls."""
    calls = []

    def F_of(x):
        calls.append(float(x[0]))
        z = -m_y * a * x[0]
        return float(np.mean(np.logaddexp(0, z)) + x[0] ** 2 / 20), np.array(
            [np.mean(-m_y * a / (1 + np.exp(-z))) + x[0] / 10]
        )

    return F_of, calls


@pytest.mark.parametrize("first_step", [1e-4, 1.0, 1e3])  # far too short (extrapolates), far too long
def test_line_search_satisfies_the_strong_wolfe_conditions(first_step):
    rng = np.random.default_rng(7)
    F_of, calls = logistic_line(rng.normal(size=50) + 0.5, rng.choice([-1.0, 1.0], size=50))
    x = np.array([0.0])
    F0, g0 = F_of(x)
    d = -g0
    start = Trial(0.0, F0, g0, float(g0 @ d))
    trial = line_search(F_of, x, start, d, first_step)
    F, g = F_of(x + trial.step * d)
    assert F == trial.F and F0 + catsdogs.neuron.lbfgs.ARMIJO * trial.step * start.slope >= F
    assert abs(g @ d) <= catsdogs.neuron.lbfgs.CURVATURE * abs(start.slope)
    assert len(calls) - 2 <= catsdogs.neuron.lbfgs.MAX_LINE_SEARCH
    if first_step == 1.0:
        assert len(calls) == 3  # a good first step is taken as it is: one evaluation


def test_line_search_gives_up_when_f_never_decreases():
    """F that the evaluations cannot see decrease (it rounds up along d): None after MAX_LINE_SEARCH tries."""
    calls = []

    def F_of(x):
        calls.append(1)
        return 1.0 + 1e-12, np.array([-1.0])

    assert line_search(F_of, np.zeros(1), Trial(0.0, 1.0, np.array([-1.0]), -1.0), np.ones(1), 1.0) is None
    assert 1 <= len(calls) <= catsdogs.neuron.lbfgs.MAX_LINE_SEARCH


RUN_LBFGS = """
import hashlib, numpy as np
from catsdogs.neuron.fit import fit
from catsdogs.pipeline.config import TrainParams
rng = np.random.default_rng(0)
pixels = rng.integers(0, 256, size=(300, 8, 8, 3)).repeat(4, axis=1).repeat(4, axis=2).reshape(300, -1)
pixels = np.clip(pixels + rng.integers(-20, 21, size=pixels.shape), 0, 255)
X = pixels.astype(np.float32) / np.float32(255)
y = (pixels[:, :1536].mean(axis=1) > pixels[:, 1536:].mean(axis=1)).astype(np.uint8)
params = TrainParams(optimizer="lbfgs", loss="cross_entropy", l2=0.001, epochs=15)
W, b, history = fit(X[:240], y[:240], X[240:], y[240:], params, progress=False, pixel_scale=255)
print(hashlib.md5(W.tobytes() + np.float32(b).tobytes() + history.to_csv().encode()).hexdigest())
"""


def test_same_bits_under_other_blas_kernels_and_numpy_dispatch():
    """The lbfgs run (principal directions included) on pixel features under OpenBLAS kernels this CPU can
    run and NumPy/glibc at their baseline: one md5 (scipy's L-BFGS-B and LAPACK gave one per kernel)."""
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    settings = [{"OPENBLAS_CORETYPE": "Prescott"}, {"OPENBLAS_CORETYPE": "Sandybridge"}]
    settings += [{"OPENBLAS_CORETYPE": "Haswell"}] if " avx2" in flags else []
    settings += [{"OPENBLAS_CORETYPE": "SkylakeX"}] if " avx512f" in flags else []
    settings += [
        {
            "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
            "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA",
        }
    ]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    md5s = {
        str(setting): subprocess.run(
            [sys.executable, "-c", RUN_LBFGS],
            env={**os.environ, **setting},
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout.strip()
        for setting in settings
    }
    assert len(set(md5s.values())) == 1, md5s


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_lbfgs_reaches_the_optimum_of_scikit_learn_for_the_same_C(C):
    X, y = toy_problem(m=700, n=60, seed=7)  # features in [0, 1), as the pipeline's
    X_train, y_train, X_valid, y_valid = X[:500], y[:500], X[500:], y[500:]
    l2 = 1 / (C * len(y_train))  # scikit-learn minimises C sum(log loss) + |W|^2 / 2 = C m F
    W, b, history = fit(X_train, y_train, X_valid, y_valid, lbfgs_params(l2=l2), progress=False)
    assert len(history) < 501  # stopped on the tolerance, not on train.epochs
    reference = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X_train.astype(np.float64), y_train)
    W_ref, b_ref = reference.coef_[0], reference.intercept_[0]
    F, F_ref = objective64(X_train, y_train, W, b, l2), objective64(X_train, y_train, W_ref, b_ref, l2)
    assert pytest.approx(F_ref, rel=1e-6) == F
    correct = np.sum((forward(X_valid, W, b) > 0) == y_valid)
    correct_ref = np.sum(reference.predict(X_valid) == y_valid)
    assert abs(int(correct) - int(correct_ref)) <= 2
    np.testing.assert_allclose(W, W_ref, atol=2e-3 * np.abs(W_ref).max())


def test_history_has_one_row_per_iteration_from_the_zero_weights():
    X, y, X_valid, y_valid = split_toy()
    W, b, history = fit(X, y, X_valid, y_valid, lbfgs_params(l2=0.01, epochs=3), progress=False)
    assert list(history.epoch) == [0, 1, 2, 3]  # stopped after train.epochs iterations
    assert history.train_loss.iloc[0] == pytest.approx(np.log(2))  # W = 0, b = 0: a = 1/2
    assert list(history.train_loss) == sorted(history.train_loss, reverse=True)  # each iteration lowers F
    row = history.iloc[-1]  # the last row is the returned weights'
    z, z_valid = forward(X, W, b), forward(X_valid, W, b)
    assert row.train_loss == pytest.approx(loss_value("cross_entropy", z, sigmoid(z), y), rel=1e-6)
    assert row.valid_loss == pytest.approx(loss_value("cross_entropy", z_valid, sigmoid(z_valid), y_valid), rel=1e-6)
    assert row.valid_accuracy == np.mean((z_valid > 0) == y_valid)


def max_gradient(X, y, W, b, l2):
    """max |dF/dx| at the neuron's (W, b), in the coordinates x = (v, c) L-BFGS moves (float64)."""
    coordinates = Coordinates(X, l2)
    P = np.eye(X.shape[1]) + coordinates.U @ np.diag(coordinates.s - 1) @ coordinates.U.T
    x = np.append(np.linalg.solve(P, W.astype(np.float64)), b + coordinates.mu @ W)  # (v, c) of W, b
    return np.abs(chain_rule_gradient(X, y, x, l2, coordinates)[2]).max()


def test_stops_when_the_gradient_is_within_the_tolerance():
    X, y, X_valid, y_valid = split_toy()
    params = lbfgs_params(l2=0.01, tolerance=1e-6)
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False)
    assert len(history) - 1 < params.epochs
    assert max_gradient(X, y, W, b, params.l2) < 1e-5


@pytest.mark.parametrize("tolerance", [1e-2, 1e-4])
def test_stops_at_the_first_iterate_within_the_tolerance(tolerance):
    """The last iterate's gradient is within train.tolerance and the one before is not (the same run cut
    one iteration short), without a warning."""
    X, y, X_valid, y_valid = split_toy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        W, b, history = fit(X, y, X_valid, y_valid, lbfgs_params(l2=0.01, tolerance=tolerance), progress=False)
        n = len(history) - 1
        W_before, b_before, _ = fit(
            X, y, X_valid, y_valid, lbfgs_params(l2=0.01, tolerance=tolerance, epochs=n - 1), progress=False
        )
    assert max_gradient(X, y, W, b, 0.01) <= tolerance < max_gradient(X, y, W_before, b_before, 0.01)


def test_early_stopping_keeps_the_iterate_of_the_best_validation_loss():
    X, y, X_valid, y_valid = split_toy(m=120, n=200, seed=3, m_train=60)  # n > m: overfits without l2
    params = lbfgs_params(early_stopping=3, l2=1e-4)
    W, b, history = fit(X, y, X_valid, y_valid, params, progress=False)
    best = int(history.valid_loss.idxmin())
    assert best > 0 and len(history) == best + 4  # stopped 3 iterations after the best one
    W_best, b_best, _ = fit(X, y, X_valid, y_valid, lbfgs_params(epochs=best, l2=1e-4), progress=False)
    np.testing.assert_array_equal(W, W_best)
    assert b == b_best


def test_result_does_not_depend_on_the_number_of_threads(monkeypatch):
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "BLOCK_BYTES", 4 * 20 * 2)
    monkeypatch.setattr(catsdogs.neuron.fast_passes, "INLINE_BYTES", 0)  # really use the thread pool on tiny data
    X, y, X_valid, y_valid = split_toy(m=90, m_train=70)
    runs = [fit(X, y, X_valid, y_valid, lbfgs_params(l2=0.01), progress=False, threads=t) for t in (1, 3)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] and runs[0][2].equals(runs[1][2])


def test_fit_picks_lbfgs():
    X, y, X_valid, _ = split_toy()
    assert isinstance(
        catsdogs.neuron.fit.solver_for(lbfgs_params(), X, y, X_valid, None, None), catsdogs.neuron.fit.LBFGS
    )


@pytest.mark.parametrize(
    "changes, got",
    [
        ({"loss": "mse"}, "train.loss = 'mse'"),
        ({"batch_size": 8}, "train.batch_size = 8"),
        ({"momentum": 0.9}, "train.momentum = 0.9"),
        ({"loss": "mse", "momentum": 0.5}, "train.loss = 'mse', train.momentum = 0.5"),
    ],
)
def test_lbfgs_needs_cross_entropy_at_full_batch_without_momentum(changes, got):
    with pytest.raises(
        ParamError,
        match="train.optimizer = 'lbfgs' needs train.loss = 'cross_entropy', "
        r"train.batch_size = 0 \(full batch\) and train.momentum = 0.0; got " + got,
    ):
        lbfgs_params(**changes)


# --------------------------------------------------------------------------- the line search's pieces by hand


def point(step, F=0.0, slope=0.0):
    return Trial(step, F, np.zeros(1), slope)


@pytest.mark.parametrize(
    "before, low, expected",
    [
        ((1, -4), (3, -3), 9.0),  # slopes' secant: zero at 3 + 3 * 2 / (-3 + 4) = 9, inside [3 + 2.2, 3 + 8]
        ((1, -2), (3, -2), 11.0),  # not curved upwards: 4 widths beyond low
        ((1, -1), (3, -0.95), 11.0),  # the secant's zero, 41, cut to 4 widths
        ((1, -10), (3, -1), 5.2),  # the secant's zero, 3 + 2 / 9, raised to 1.1 widths
    ],
)
def test_next_step_without_a_bracket_extrapolates_1_1_to_4_widths(before, low, expected):
    assert next_step(point(low[0], slope=low[1]), None, point(before[0], slope=before[1])) == pytest.approx(expected)


@pytest.mark.parametrize(
    "low, high, expected",
    [
        # F(t) = (t - 1.7)^2 from both ends: the cubic through them is F itself, its minimum 1.7
        ((1, 0.49, -1.4), (3, 1.69, 2.6), 1.7),
        # F(t) = (t - 1)^3 - 3 (t - 1): minimum at t = 2, the bracket from above (high before low)
        ((2.5, -1.125, 3.75), (1, 0, -3), 2.0),
        ((1, 0.0025, -0.1), (2, 0.9025, 1.9), 1.1),  # (t - 1.05)^2: its minimum within 10 % of low: 1.1
        ((1, 0.9025, -1.9), (2, 0.0025, 0.1), 1.9),  # (t - 1.95)^2, high past the minimum: 1.9
        ((1, 0, -2), (3, -2, -2), 2.0),  # d1 = -4 + 3 = -1, radicand 1 - 4 < 0: no minimum, bisect
        ((0, 0, -1), (1, -1, -4), 1 / 3),  # d1 = -2, radicand exactly 0: guess 1 - (-4 + 0 + 2) / -3
        ((0, 0, -1), (1, -1, -1), 0.5),  # d1 = 1, radicand 0 and denominator 0: bisect
        ((1, 0.49, -1.4), (3, np.inf, 2.6), 2.0),  # no F at high: bisect
    ],
)
def test_next_step_in_a_bracket_is_the_minimum_of_the_cubic_kept_from_the_ends(low, high, expected):
    assert next_step(point(*low), point(*high), point(0.0)) == pytest.approx(expected, rel=1e-12)


def scripted(first: float, values: dict):
    """F_of along d = [1] from x = [0] (so the step is x[0]): (F, slope) of `values` at a step listed
    there, values["else"] elsewhere; the steps evaluated, in order."""
    calls = []

    def F_of(x):
        calls.append(float(x[0]))
        F, slope = values.get(float(x[0]), values["else"])
        return F, np.array([slope])

    return F_of, calls


START = Trial(0.0, 1.0, np.array([-1.0]), -1.0)  # F = 1, slope -1 along d = [1]


def search(first, values):
    F_of, calls = scripted(first, values)
    return line_search(F_of, np.zeros(1), START, np.ones(1), first), calls


def test_a_first_step_on_both_wolfe_bounds_is_taken():
    """F exactly 1 + ARMIJO * 1 * -1 and a slope of exactly CURVATURE * -1: both conditions hold (<=)."""
    bound = START.F + catsdogs.neuron.lbfgs.ARMIJO * 1.0 * START.slope
    trial, calls = search(1.0, {"else": (bound, -catsdogs.neuron.lbfgs.CURVATURE)})
    assert (trial.step, trial.F, calls) == (1.0, bound, [1.0])


def test_a_trial_no_lower_than_the_best_so_far_closes_the_bracket():
    """Step 1 lowers F to 0.5 but is still steep (extrapolate to 5); step 5 has F = 0.5 again: the
    minimum lies between them, the next trial (F 0.4, flat) is there and is taken."""
    trial, calls = search(1.0, {1.0: (0.5, -0.95), 5.0: (0.5, 0.0), "else": (0.4, 0.0)})
    assert calls[:2] == [1.0, 5.0] and len(calls) == 3 and 1.4 <= calls[2] <= 4.6
    assert (trial.step, trial.F) == (calls[2], 0.4)


def test_a_trial_past_the_minimum_with_a_slope_below_one_closes_the_bracket():
    """Step 1 satisfies the first condition but its slope, +0.95, is past the minimum: the next trial
    is inside [0.1, 0.9], not beyond 1."""
    trial, calls = search(1.0, {1.0: (0.5, 0.95), "else": (0.4, 0.0)})
    assert len(calls) == 2 and 0.1 <= calls[1] <= 0.9 and trial.step == calls[1]


def test_when_the_tries_run_out_the_first_of_the_lowest_is_kept():
    """Every step lowers F to 0.5 with slope +0.95 (never flat enough): after MAX_LINE_SEARCH tries, the
    first of the equally low points, step 1."""
    trial, calls = search(1.0, {"else": (0.5, 0.95)})
    assert len(calls) == catsdogs.neuron.lbfgs.MAX_LINE_SEARCH and (trial.step, trial.F) == (1.0, 0.5)


def test_the_search_stops_when_the_bracket_is_a_point_relative_to_the_step():
    """Step 1e-3 lowers F but is steep; every other step is far too high: the bracket [1e-3, 5e-3] shrinks
    to a tenth each try (the cubic's minimum sits at the low end, kept 10 % away) until its width
    4e-3 * 10^-k is at most 1e-12 of the step: k = 13, 15 tries in all, then the step 1e-3."""
    trial, calls = search(1e-3, {1e-3: (0.5, -0.95), "else": (1e6, 1e7)})
    assert calls[1] == pytest.approx(5e-3) and len(calls) == 15 and (trial.step, trial.F) == (1e-3, 0.5)


@pytest.mark.parametrize("slope", [0.0, 1.0, np.nan])
def test_a_line_search_along_no_descent_direction_is_refused(slope):
    with pytest.raises(ValueError, match="d is no descent direction"):
        line_search(lambda x: (0.0, x), np.zeros(1), Trial(0.0, 1.0, np.zeros(1), slope), np.ones(1), 1.0)


# --------------------------------------------------------------------------- LBFGS.run, iteration by iteration


def traced(params, *, two_loop_direction=None, monkeypatch=None):
    """LBFGS.run on split_toy with its objective traced: ("eval", x, F, g) for every evaluation and
    ("record", epoch, x) for every history row, in order."""
    X, y, X_valid, _ = split_toy()
    if two_loop_direction is not None:
        monkeypatch.setattr(catsdogs.neuron.lbfgs, "two_loop", two_loop_direction)
    solver = LBFGS(X, y, X_valid, params, ShardedPass(None))
    objective, events = solver.objective, []

    class Traced:
        def __call__(self, x):
            F, g = objective(x)
            events.append(("eval", x.copy(), F, g.copy()))
            return F, g

        def weights(self, x):
            return objective.weights(x)

        @property
        def z(self):
            return objective.z

    solver.objective = Traced()
    solver.run(params.epochs, lambda epoch, *scores: events.append(("record", epoch, solver.x.copy())) and False)
    return events


def iterations(events):
    """[(x_k, F_k, g_k, first trial point of the line search from x_k or None)] for each recorded x_k."""
    result = []
    for i, event in enumerate(events):
        if event[0] != "record":
            continue
        x = event[2]
        F, g = next((e[2], e[3]) for e in events if e[0] == "eval" and np.array_equal(e[1], x))
        trial = next((e[1] for e in events[i + 1 :] if e[0] == "eval" and not np.array_equal(e[1], x)), None)
        result.append((x, F, g, trial))
    return result


def bfgs_direction(g, s, y):
    """-H g with H the BFGS update of (s.y / y.y) I by the pair (s, y), as a dense matrix (the textbook)."""
    rho, identity = 1 / (s @ y), np.eye(len(s))
    H = (identity - rho * np.outer(s, y)) @ ((s @ y) / (y @ y) * identity) @ (identity - rho * np.outer(y, s))
    return -(H + rho * np.outer(s, s)) @ g


def test_each_iteration_tries_first_the_step_of_the_textbook(monkeypatch):
    """With a memory of one pair: the first iteration tries x - g / |g| (a step of length 1 along -g),
    every later one x + d with d = -H g, H the BFGS update of (s.y / y.y) I by the newest pair only."""
    monkeypatch.setattr(catsdogs.neuron.lbfgs, "MEMORY", 1)
    rows = iterations(traced(lbfgs_params(l2=0.01, epochs=4, tolerance=1e-9)))
    assert len(rows) == 5
    x0, _, g0, trial0 = rows[0]
    np.testing.assert_allclose(trial0, x0 - g0 / np.linalg.norm(g0), rtol=1e-12)
    for (x_before, _, g_before, _), (x, _, g, trial) in zip(rows[1:-1], rows[2:-1]):
        s, y = x - x_before, g - g_before
        np.testing.assert_allclose(trial, x + bfgs_direction(g, s, y), rtol=1e-9, atol=1e-12)
    s, y = rows[1][0] - x0, rows[1][2] - g0
    np.testing.assert_allclose(rows[1][3], rows[1][0] + bfgs_direction(rows[1][2], s, y), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("direction", ["uphill", "flat"])
def test_a_direction_that_does_not_descend_is_replaced_by_minus_the_gradient(monkeypatch, direction):
    """two_loop made to return an ascent direction (slope 1e-6 |g|^2 > 0) or one orthogonal to g (slope
    exactly 0): run starts again from -g, so the first trial is x - g / |g|."""

    def bad(gradient, pairs):
        if direction == "uphill":
            return 1e-6 * gradient
        d = np.zeros_like(gradient)
        d[0], d[1] = gradient[1], -gradient[0]  # g0 g1 - g1 g0 = 0 exactly
        return d

    rows = iterations(traced(lbfgs_params(l2=0.01, epochs=1), two_loop_direction=bad, monkeypatch=monkeypatch))
    x0, _, g0, trial0 = rows[0]
    np.testing.assert_allclose(trial0, x0 - g0 / np.linalg.norm(g0), rtol=1e-12)
    assert len(rows) == 2


def test_a_gradient_exactly_at_the_tolerance_stops_the_run():
    """train.tolerance equal to the largest gradient component at W = 0: no iteration (<=)."""
    [(x0, _, g0, _)] = iterations(traced(lbfgs_params(l2=0.01, epochs=1)))[:1]
    rows = iterations(traced(lbfgs_params(l2=0.01, epochs=5, tolerance=float(np.abs(g0).max()))))
    assert len(rows) == 1 and rows[0][3] is None


def test_a_decrease_of_exactly_ftol_stops_the_run(monkeypatch):
    """FTOL set to the decrease of F in iteration k of a free run, the first decrease below every earlier
    one: the run stops right after iteration k (<=), although epochs allows more."""
    F = [row[1] for row in iterations(traced(lbfgs_params(l2=0.01, epochs=8, tolerance=1e-9)))]
    decreases = [before - after for before, after in zip(F, F[1:])]
    k = next(k for k in range(2, len(decreases) + 1) if decreases[k - 1] < min(decreases[: k - 1]))
    monkeypatch.setattr(catsdogs.neuron.lbfgs, "FTOL", decreases[k - 1])
    assert len(iterations(traced(lbfgs_params(l2=0.01, epochs=8, tolerance=1e-9)))) == k + 1


def test_lbfgs_passes_l2_and_pixel_scale_to_its_change_of_variables(monkeypatch):
    small_rank(monkeypatch)
    X, y = pixel_toy(60, 20, seed=1)
    solver = LBFGS(X[:40], y[:40], X[40:], lbfgs_params(l2=0.5), ShardedPass(None), pixel_scale=255.0)
    expected = Coordinates(X[:40], 0.5, 255.0)
    assert expected.s.size == 4 and solver.z_valid.dtype == np.float32
    np.testing.assert_array_equal(solver.objective.coordinates.s, expected.s)
    np.testing.assert_array_equal(solver.objective.coordinates.U, expected.U)


@pytest.mark.parametrize("margin", [1 - 1e-6, 1 + 1e-6])
def test_a_pair_is_kept_when_its_curvature_is_above_the_floor(monkeypatch, margin):
    """CURVATURE_FLOOR set just below / above the first pair's s.y / (|s| |y|): kept, the second iteration
    tries x + d of the BFGS update; dropped, it starts again with x - g / |g|."""
    rows = iterations(traced(lbfgs_params(l2=0.01, epochs=2, tolerance=1e-9)))
    (x0, _, g0, _), (x1, _, g1, _) = rows[:2]
    s, y = x1 - x0, g1 - g0
    monkeypatch.setattr(catsdogs.neuron.lbfgs, "CURVATURE_FLOOR", margin * (s @ y) / np.sqrt((s @ s) * (y @ y)))
    trial = iterations(traced(lbfgs_params(l2=0.01, epochs=2, tolerance=1e-9)))[1][3]
    expected = x1 + bfgs_direction(g1, s, y) if margin < 1 else x1 - g1 / np.linalg.norm(g1)
    np.testing.assert_allclose(trial, expected, rtol=1e-9, atol=1e-12)


def test_a_pair_exactly_at_the_curvature_floor_is_dropped(monkeypatch):
    """CURVATURE_FLOOR set so that floor * sqrt(s.s y.y) equals s.y to the last bit (computed with the
    same portable dot as run): the pair is not clearly positive (s.y > floor |s| |y| fails), so the
    second iteration starts again from -g."""
    rows = iterations(traced(lbfgs_params(l2=0.01, epochs=2, tolerance=1e-9)))
    (x0, _, g0, _), (x1, _, g1, _) = rows[:2]
    s, y = x1 - x0, g1 - g0
    norms = math.sqrt(dot(s, s) * dot(y, y))
    floor = dot(s, y) / norms
    assert floor * norms == dot(s, y)
    monkeypatch.setattr(catsdogs.neuron.lbfgs, "CURVATURE_FLOOR", floor)
    trial = iterations(traced(lbfgs_params(l2=0.01, epochs=2, tolerance=1e-9)))[1][3]
    np.testing.assert_allclose(trial, x1 - g1 / np.linalg.norm(g1), rtol=1e-9, atol=1e-12)
