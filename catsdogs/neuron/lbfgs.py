"""L-BFGS for the cross-entropy neuron at full batch (train.optimizer: lbfgs), each evaluation of the
objective and its gradient one fused float32 pass over X (catsdogs/neuron/fast_passes.py), every other
product one of catsdogs/neuron/portable.py's: the same bits on every x86-64 CPU (no BLAS kernel, LAPACK or
scipy decides them).

It minimises F(W, b) = J(W, b) + l2/2 |W|^2 with J the mean cross-entropy of catsdogs/neuron/reference.py. F is convex
(strictly, with l2 > 0), so there is one optimum, the one scikit-learn's LogisticRegression(C) finds for
l2 = 1 / (C m): tests/test_lbfgs.py checks both.

Conditioning. L-BFGS does not move (W, b) but x = (v, c), with W = P v and b = c - mu W (Coordinates):
a change of variables, so the same model and the same optimum, chosen to make F round rather than a
long, narrow valley, where L-BFGS needs many iterations (on the 25,000-image features: 46 without it, 12
with it, to the same optimum).
- Centering: z = X W + b = (X - mu) W + c, mu (n,) the mean row. Pixel features in [0, 1] have a mean row
  far from zero; uncentred, the bias and the weights along mu fight each other.
- Principal directions: near W = 0 the Hessian of F is about (X - mu)^T (X - mu) / (4 m) + l2 I (the
  sigmoid's slope is at most 1/4). Neighbouring pixels are correlated, so a few directions u_i of the
  features carry most of their variance lambda_i and F is far steeper along them. P = I + U diag(s - 1) U^T
  with U (n, k) the top k = RANK of them and s_i = sqrt(h_k / h_i), h_i = lambda_i / 4 + l2, makes the
  curvature along each u_i that of the (k+1)-th. U and lambda are estimated from SAMPLE_ROWS evenly
  spaced rows (catsdogs/neuron/principal_directions.py: exact integer products, the same bits on every
  CPU). Features that are not pixel values (fit without pixel_scale) get no rotation: only the centring.
Neither costs a pass: (X - mu) W + c = X W + (c - mu W), and dF/dv = P (X^T dz - mu sum(dz) + l2 W),
dF/dc = sum(dz) with dz = dJ/dz (P is symmetric), so each evaluation is the pass of catsdogs/neuron/fast_passes.py at
W = P v, b = c - mu W, and X is never changed or copied.

The iteration (LBFGS.run, after Nocedal & Wright, Numerical Optimization, 2nd ed.): the direction
d = -H g by the two-loop recursion over the last MEMORY pairs (s, y) of steps and gradient changes, H's
scale s.y / y.y of the newest pair (Algorithm 7.4); a pair is kept only when s.y > CURVATURE_FLOOR |s| |y|
(clearly positive: H stays positive definite despite the float32 passes' rounding). The step along d
(line_search) satisfies the strong Wolfe conditions: F decreases by at least ARMIJO of the slope's
promise and |slope| shrinks to CURVATURE of its start (Algorithms 3.5 and 3.6, cubic interpolation);
the first try is 1 (1 / |g| on the first iteration, as scipy's L-BFGS-B), at most MAX_LINE_SEARCH
evaluations. Stopping (scipy's L-BFGS-B's rules): no component of the gradient in x = (v, c) is larger
than train.tolerance; or F decreased by at most FTOL in an iteration (scipy's FTOL relative to
max(|F|, 1), which is 1 here: F <= ln 2; the float32 passes cannot resolve less); or the line search finds no lower F (the same); or train.epochs iterations. The
history has one row per iteration: row k holds the losses and accuracies after k iterations. With early
stopping, the run ends train.early_stopping iterations after the lowest validation loss and keeps that
iterate's weights.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from catsdogs.neuron.fast_passes import ShardedPass, pixel_values
from catsdogs.neuron.portable import dot, matvec, vecmat
from catsdogs.neuron.principal_directions import principal_directions
from catsdogs.neuron.reference import Objective, sigmoid

if TYPE_CHECKING:
    from catsdogs.pipeline.config import TrainParams

MEMORY = 50  # pairs (s, y) of L-BFGS's inverse-Hessian estimate (scipy's maxcor)
FTOL = 1e-9  # decrease of F (< 1) at or below which an iteration counts as no progress (float32 passes)
MAX_LINE_SEARCH = 20  # evaluations per line search (scipy's maxls)
ARMIJO, CURVATURE = 1e-4, 0.9  # the strong Wolfe conditions' c1 and c2 (Nocedal & Wright's for quasi-Newton)
CURVATURE_FLOOR = 1e-8  # a pair (s, y) is kept when s.y > CURVATURE_FLOOR |s| |y|
SAMPLE_ROWS = 2000  # training rows the principal directions (and the mean row mu) are estimated from


class Coordinates:
    """The change of variables (module docstring): x = (v, c) (n + 1,) float64 -> W = P v, b = c - mu W.
    pixel_scale: the features are pixel values divided by it (else no principal directions)."""

    def __init__(self, X: np.ndarray, l2: float, pixel_scale: float | None = None):
        sample = X[:: max(1, X.shape[0] // SAMPLE_ROWS)]  # evenly spaced rows (a view)
        self.mu = sample.mean(axis=0, dtype=np.float64)  # (n,); any mu gives the same optimum
        pixels = pixel_values(sample, pixel_scale) if pixel_scale else None
        self.U, self.s = np.zeros((X.shape[1], 0)), np.zeros(0)
        if pixel_scale and pixels is not None:
            self.U, self.s = principal_directions(pixels, pixel_scale, self.mu, l2)

    def scale(self, v: np.ndarray) -> np.ndarray:
        """P v (n,) = v + U diag(s - 1) U^T v; P is symmetric, so this also maps dF/dW to dF/dv."""
        return v + matvec(self.U, (self.s - 1) * vecmat(v, self.U))

    def weights(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """W = P v (n,) float64 and b = c - mu W of x = (v, c)."""
        W = self.scale(x[:-1])
        return W, x[-1] - dot(self.mu, W)


class ScaledObjective:
    """F and its gradient at x = (v, c) (n + 1,) float64 (Coordinates), by one pass over X (m, n) float32.

    __call__(x) -> (F, dF/dx (n + 1,) float64). The last evaluation's scores z = X W + b (m,) are kept
    (`z`, at `x`): the history reads them instead of a second pass."""

    def __init__(self, X, y, l2: float, passes: ShardedPass, coordinates: Coordinates):
        self.X, self.y, self.passes, self.coordinates = X, y, passes, coordinates
        self.objective = Objective("cross_entropy", "exact", l2)
        self.dz_of = partial(self.objective.dz, m=X.shape[0])  # dJ/dz = (a - y) / m
        self.z = np.empty(X.shape[0], dtype=np.float32)
        self.x: np.ndarray | None = None  # where z was computed
        self.value: tuple[float, np.ndarray] | None = None

    def weights(self, x: np.ndarray) -> tuple[np.ndarray, np.float32]:
        """The neuron's W (n,) float32 and b float32 at x = (v, c)."""
        W, b = self.coordinates.weights(x)
        return W.astype(np.float32), np.float32(b)

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        if self.x is not None and np.array_equal(x, self.x):
            return self.value  # type: ignore[return-value]
        W64, _ = self.coordinates.weights(x)
        W, b = self.weights(x)
        grad_W, grad_b = self.passes(self.X, self.y, W, b, self.z, self.dz_of)  # type: ignore[misc]  # X^T dz, sum dz: one read of X
        F = self.objective.value(self.z, sigmoid(self.z), self.y, W64)  # J + l2/2 |W|^2
        gradient = np.empty_like(x)
        dF_dW = grad_W - self.coordinates.mu * grad_b + self.objective.penalty_gradient(W64)
        gradient[:-1] = self.coordinates.scale(dF_dW)  # P dF/dW
        gradient[-1] = grad_b  # dF/dc = sum dz
        self.x, self.value = x.copy(), (F, gradient)
        return self.value


class Trial(NamedTuple):
    """A point x + step d of a line search: F there, its gradient, and the slope dF/dstep = gradient . d."""

    step: float
    F: float
    gradient: np.ndarray
    slope: float


def two_loop(gradient: np.ndarray, pairs: deque) -> np.ndarray:
    """The L-BFGS direction -H g (Nocedal & Wright, Algorithm 7.4) from the pairs (s, y, 1 / s.y), oldest
    first, with H0 = (s.y / y.y) I of the newest pair; -g without pairs."""
    q = gradient.copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        alphas.append(rho * dot(s, q))
        q -= alphas[-1] * y
    if pairs:
        s, y, rho = pairs[-1]
        q *= 1 / (rho * dot(y, y))
    for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
        q += (alpha - rho * dot(y, q)) * s
    return -q


def next_step(low: Trial, high: Trial | None, before: Trial) -> float:
    """The next step of the line search: with a bracket [low, high] (the minimum of F along d lies between),
    the minimum of the cubic through both ends' F and slopes, kept 10 % of the bracket away from its ends
    (bisection when the cubic has none); without, beyond low by 1.1 to 4 times low - before (the slopes'
    secant: where a quadratic through them would have its minimum), as Moré & Thuente extrapolate."""
    if high is None:
        width = low.step - before.step
        guess = low.step + 4 * width
        if low.slope > before.slope:  # curved upwards: the secant's zero lies beyond low
            guess = low.step - low.slope * width / (low.slope - before.slope)
        return min(max(guess, low.step + 1.1 * width), low.step + 4 * width)
    width = high.step - low.step
    middle = low.step + width / 2
    if not math.isfinite(high.F):
        return middle
    d1 = low.slope + high.slope - 3 * (low.F - high.F) / (low.step - high.step)
    radicand = d1 * d1 - low.slope * high.slope
    if radicand < 0:
        return middle
    d2 = math.copysign(math.sqrt(radicand), width)
    denominator = high.slope - low.slope + 2 * d2
    guess = high.step - width * (high.slope + d2 - d1) / denominator if denominator else middle
    if not math.isfinite(guess):
        return middle
    lo, hi = sorted((low.step + width / 10, high.step - width / 10))
    return min(max(guess, lo), hi)


def line_search(F_of: Callable, x: np.ndarray, start: Trial, d: np.ndarray, step: float) -> Trial | None:
    """A step along the descent direction d from x that satisfies the strong Wolfe conditions
    F(x + step d) <= F + ARMIJO step slope and |slope there| <= CURVATURE |slope| (Nocedal & Wright,
    Algorithms 3.5 and 3.6), trying `step` first; at most MAX_LINE_SEARCH evaluations of F_of(point) ->
    (F, gradient). When they run out: the lowest point that satisfies the first condition, None if none.
    A start slope that is not negative (d no descent direction, or NaN) is a ValueError."""
    if not start.slope < 0:
        raise ValueError(f"line search along a slope of {start.slope}: d is no descent direction")
    low, high, before, best = start, None, start, None
    for _ in range(MAX_LINE_SEARCH):
        F, gradient = F_of(x + step * d)
        trial = Trial(step, F, gradient, dot(gradient, d))
        if not start.F + ARMIJO * step * start.slope >= F or (low is not start and F >= low.F):
            high = trial  # too far: the minimum is before it (F convex along d)
        else:
            if abs(trial.slope) <= -CURVATURE * start.slope:
                return trial
            best = trial if best is None or F < best.F else best
            if trial.slope > 0:
                high = trial  # past the minimum
            else:
                before, low = low, trial
        step = next_step(low, high, before)
        if high is not None and abs(high.step - low.step) <= 1e-12 * max(high.step, low.step):
            break  # the bracket is a point: F cannot be resolved any finer
    return best


class LBFGS:
    """train.optimizer lbfgs (module docstring): run(epochs, record) runs L-BFGS and records every
    iterate; state() is the last recorded one."""

    def __init__(self, X, y, X_valid, params: TrainParams, passes: ShardedPass, pixel_scale: float | None = None):
        self.X_valid, self.passes, self.tolerance = X_valid, passes, params.tolerance
        self.objective = ScaledObjective(X, y, params.l2, passes, Coordinates(X, params.l2, pixel_scale))
        self.z_valid = np.empty(X_valid.shape[0], dtype=np.float32)
        self.x = np.zeros(X.shape[1] + 1)  # (v, c) = 0: W = 0, b = 0 as in every recipe

    def record_at(self, x: np.ndarray, epoch: int, record: Callable) -> bool:
        """Score x on both sets (the training scores from its evaluation) and record it as row `epoch`."""
        self.objective(x)  # no pass when x was the last point evaluated (after a line search, almost always)
        W, b = self.objective.weights(x)
        self.passes(None, None, W, b, None, None, self.X_valid, self.z_valid)  # z_valid = X_valid W + b
        self.x = x.copy()
        z = self.objective.z
        return record(epoch, z, self.z_valid, sigmoid(z), sigmoid(self.z_valid))

    def run(self, epochs: int, record: Callable[..., bool]) -> None:
        if self.record_at(self.x, 0, record):
            return
        x = self.x
        F, gradient = self.objective(x)
        pairs: deque = deque(maxlen=MEMORY)  # (s, y, 1 / s.y), oldest first
        for iteration in range(1, epochs + 1):
            if np.abs(gradient).max() <= self.tolerance:
                return
            d = two_loop(gradient, pairs)
            slope = dot(gradient, d)
            if not slope < 0:  # rounding made H g no descent direction: start again from -g
                pairs.clear()
                d, slope = -gradient, -dot(gradient, gradient)
            step = 1.0 if pairs else 1 / math.sqrt(-slope)  # d = -g: first try |step d| = 1, as scipy
            trial = line_search(self.objective, x, Trial(0.0, F, gradient, slope), d, step)
            if trial is None:
                return  # no lower F along d: the float32 passes cannot resolve a better point
            x_new = x + trial.step * d
            s, y = x_new - x, trial.gradient - gradient
            sy = dot(s, y)
            if sy > CURVATURE_FLOOR * math.sqrt(dot(s, s) * dot(y, y)):
                pairs.append((s, y, 1 / sy))
            F_before, (x, F, gradient) = F, (x_new, trial.F, trial.gradient)
            if self.record_at(x, iteration, record):
                return
            # scipy's rule, F_before - F <= FTOL max(|F_before|, |F|, 1), whose max is 1 here: F starts at
            # ln 2 < 1 (W = 0, b = 0), only decreases (the line search's first condition) and is >= 0
            if F_before - F <= FTOL:
                return

    def state(self):
        return (self.x.copy(),)

    def weights(self, state):
        return self.objective.weights(state[0])
