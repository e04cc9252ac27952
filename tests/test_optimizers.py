"""The optimizers against independent float64 oracles: finite differences of the penalised loss
J + l2/2 |W|^2 (catsdogs/neuron/reference.py's J), and plain float64 loops of the update rules over several steps."""

import numpy as np
import pytest

from catsdogs.neuron.optimizers import ADAM_BETAS, ADAM_EPS, Adam, GradientDescent
from catsdogs.neuron.recipe import make_optimizer
from catsdogs.neuron.reference import Objective, backprop, forward, loss_value, sigmoid
from catsdogs.pipeline.config import TrainParams


def problem(m=30, n=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((m, n))
    y = (rng.random(m) < 0.5).astype(np.float64)
    return X, y, rng.normal(0, 0.5, n), 0.2


def penalised_gradient(X, y, W, b, loss, l2, h=1e-6):
    """d/d(W, b) of J(W, b) + l2/2 |W|^2 by central finite differences, in float64."""

    def objective(theta):
        z = forward(X, theta[:-1], theta[-1])
        return loss_value(loss, z, sigmoid(z), y) + l2 / 2 * np.sum(theta[:-1] ** 2)

    theta = np.append(W, b)
    steps = np.eye(len(theta)) * h
    return np.array([(objective(theta + e) - objective(theta - e)) / (2 * h) for e in steps])


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_gd_step_follows_the_finite_difference_gradient_of_the_penalised_loss(loss, l2):
    X, y, W0, b0 = problem()
    lr = 0.7
    dW, db = backprop(X, y, W0, b0, loss)
    W = W0.astype(np.float32)
    b = GradientDescent(lr, objective=Objective(l2=l2)).step(W, np.float32(b0), dW.astype(np.float32), np.float32(db))
    expected = np.append(W0, b0) - lr * penalised_gradient(X, y, W0, b0, loss, l2)
    np.testing.assert_allclose(np.append(W, b), expected, rtol=0, atol=2e-6)
    if l2:  # and the penalty's part is l2 W, not 2 l2 W: W moves by lr l2 W beyond the unpenalised step
        np.testing.assert_allclose(W0 - lr * dW - W, lr * l2 * W0, rtol=1e-4, atol=1e-7)


def test_make_optimizer_passes_l2_on():
    for optimizer in ("gd", "adam"):
        opt = make_optimizer(TrainParams(lr=0.1, l2=0.25, optimizer=optimizer))
        assert opt.objective.l2 == np.float32(0.25) and float(opt.lr) == pytest.approx(0.1)


def gradients(n, steps, seed=1):
    return [(g[:-1], g[-1]) for g in np.random.default_rng(seed).normal(0, 0.3, (steps, n + 1))]


@pytest.mark.parametrize("l2", [0.0, 0.2])
def test_adam_matches_a_float64_loop_over_several_steps(l2):
    n, lr = 5, 0.05
    W0 = np.random.default_rng(2).normal(0, 1, n)
    W, b = W0.astype(np.float32), np.float32(0.4)
    opt = Adam(lr, objective=Objective(l2=l2))
    theta, m, v = np.append(W0, 0.4), np.zeros(n + 1), np.zeros(n + 1)  # the oracle's state, float64
    beta1, beta2 = ADAM_BETAS
    for t, (gW, gb) in enumerate(gradients(n, 6), start=1):
        b = opt.step(W, b, gW.astype(np.float32), np.float32(gb))
        g = np.append(gW + l2 * theta[:-1], gb)  # b is not penalised
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS)
        np.testing.assert_allclose(np.append(W, b), theta, rtol=1e-5, atol=1e-6, err_msg=f"step {t}")


@pytest.mark.parametrize("momentum, l2", [(0.0, 0.1), (0.9, 0.0), (0.5, 0.3)])
def test_gradient_descent_matches_a_float64_loop_over_several_steps(momentum, l2):
    n, lr = 4, 0.3
    W0 = np.random.default_rng(3).normal(0, 1, n)
    W, b = W0.astype(np.float32), np.float32(-0.2)
    opt = GradientDescent(lr, momentum, Objective(l2=l2))
    theta, velocity = np.append(W0, -0.2), np.zeros(n + 1)
    for t, (gW, gb) in enumerate(gradients(n, 5), start=1):
        b = opt.step(W, b, gW.astype(np.float32), np.float32(gb))
        velocity = momentum * velocity + np.append(gW + l2 * theta[:-1], gb)
        theta = theta - lr * velocity
        np.testing.assert_allclose(np.append(W, b), theta, rtol=1e-5, atol=1e-6, err_msg=f"step {t}")


def test_make_optimizer_builds_the_named_optimizer():
    adam = make_optimizer(TrainParams(lr=0.1, optimizer="adam"))
    gd = make_optimizer(TrainParams(lr=0.1, momentum=0.9))
    assert type(adam) is Adam and type(gd) is GradientDescent and gd.momentum == np.float32(0.9)


def test_defaults_are_plain_steps_without_l2():
    W, grad = np.array([1.0, -2.0], np.float32), np.array([0.5, 0.25], np.float32)
    gd_W, gd = W.copy(), GradientDescent(0.1)
    for _ in range(2):  # no momentum: the same gradient twice moves W by 2 lr g
        b = gd.step(gd_W, np.float32(0), grad.copy(), np.float32(0))
    np.testing.assert_allclose(gd_W, W - 2 * 0.1 * grad, rtol=1e-6)
    adam_W = W.copy()
    Adam(0.1).step(adam_W, b, grad.copy(), np.float32(0))
    np.testing.assert_allclose(adam_W, W - 0.1 * np.sign(grad), rtol=1e-5)  # no l2: step 1 is lr sign(g)


def test_adam_eps_is_added_to_the_root_of_the_second_moment():
    # a gradient as small as eps: the update is rate m / (sqrt(v) + eps) (Kingma & Ba's eps-hat form)
    beta1, beta2 = ADAM_BETAS
    g = 1e-8
    W = np.zeros(1, np.float32)
    Adam(1.0).step(W, np.float32(0), np.array([g], np.float32), np.float32(0))
    rate = np.sqrt(1 - beta2) / (1 - beta1)
    expected = -rate * (1 - beta1) * g / (np.sqrt(1 - beta2) * g + ADAM_EPS)
    assert W[0] == pytest.approx(expected, rel=1e-5) and W[0] < 0


def test_optimizer_state_is_float32_like_the_weights():
    adam, gd = Adam(0.1), GradientDescent(0.1, momentum=0.5)
    for opt in (adam, gd):
        opt.step(np.zeros(3, np.float32), np.float32(0), np.ones(3, np.float32), np.float32(1))
    assert adam.first.dtype == adam.second.dtype == gd.velocity.dtype == np.float32
