"""train.optimizer lbfgs (catsdogs/neuron/lbfgs.py): its objective and gradient against the reference math
(catsdogs/neuron/reference.py), its parts (exact pixel products, Gram-Schmidt, Jacobi, two-loop recursion, line
search) against numpy.linalg and the textbook formulas, its optimum against scikit-learn's
LogisticRegression for the same C, its place in fit (history, stopping, early stopping, threads,
parameter checks), and the same bits under other OpenBLAS kernels and NumPy dispatch levels."""

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
from catsdogs.neuron.lbfgs import Coordinates, ScaledObjective, Trial, line_search, two_loop
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
