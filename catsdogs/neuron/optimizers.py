"""Optimizers: turn the gradient of J into an update of the weights. They know nothing of the neuron.

    gd:   v = momentum v + g, W -= lr v (heavy ball); momentum 0 is the article's W -= lr g.
    adam: Adam (Kingma & Ba 2015) with beta1, beta2 = ADAM_BETAS and eps = ADAM_EPS.
    lbfgs is not a step rule of this kind: L-BFGS drives the whole run (catsdogs/neuron/lbfgs.py).
L2 adds l2 W to dJ/dW (minimising J + l2/2 |W|^2; b is not penalised): the objective's
add_penalty_gradient (catsdogs/neuron/reference.py: Objective), the one place the term is written.

step(W, b, grad_W, grad_b) updates W (k,) float32 in place and returns the new b; grad_W is dJ/dW (k,)
and may be overwritten. W is any parameter vector: in the dual (catsdogs/neuron/fit.py) it is theta (m,) and the
gradient dz; gd and L2 are linear in it, so they carry over.
"""

from __future__ import annotations

import numpy as np

from catsdogs.neuron.reference import Objective

OPTIMIZERS = ("gd", "adam", "lbfgs")
ADAM_BETAS = (0.9, 0.999)  # Kingma & Ba's defaults, with eps = 1e-8
ADAM_EPS = 1e-8


class GradientDescent:
    """W -= lr v, v = momentum v + g, for W and b as one vector (g = dJ/dW + l2 W, then dJ/db)."""

    def __init__(self, lr: float, momentum: float = 0.0, objective: Objective | None = None):
        self.lr, self.momentum = np.float32(lr), np.float32(momentum)
        self.objective = objective or Objective()  # its L2 term (none by default)
        self.velocity: np.ndarray | None = None  # v (k + 1,), from the first step with momentum

    def step(self, W: np.ndarray, b: np.float32, grad_W: np.ndarray, grad_b: np.float32) -> np.float32:
        self.objective.add_penalty_gradient(grad_W, W)
        if not self.momentum:  # the article: W -= lr dJ/dW, b -= lr dJ/db
            W -= self.lr * grad_W
            return np.float32(b - self.lr * grad_b)
        grad = np.append(grad_W, grad_b)
        if self.velocity is None:
            self.velocity = np.zeros(grad.shape, dtype=np.float32)
        self.velocity *= self.momentum  # v = momentum v + g
        self.velocity += grad
        update = self.lr * self.velocity
        W -= update[:-1]
        return np.float32(b - update[-1])


class Adam:
    """Adam: W -= lr m_hat / (sqrt(v_hat) + eps) with bias-corrected moving averages m of g and v of g^2."""

    def __init__(self, lr: float, objective: Objective | None = None):
        self.lr = lr
        self.objective = objective or Objective()  # its L2 term (none by default)
        self.decay = (1.0, 1.0)  # beta1^t, beta2^t after t steps, by multiplication: pow() differs by CPU
        self.first: np.ndarray | None = None  # m (k + 1,): moving average of g
        self.second: np.ndarray | None = None  # v (k + 1,): moving average of g^2

    def step(self, W: np.ndarray, b: np.float32, grad_W: np.ndarray, grad_b: np.float32) -> np.float32:
        self.objective.add_penalty_gradient(grad_W, W)
        grad = np.append(grad_W, grad_b)
        if self.first is None:
            self.first, self.second = np.zeros(grad.shape, dtype=np.float32), np.zeros(grad.shape, dtype=np.float32)
        beta1, beta2 = ADAM_BETAS
        self.decay = (self.decay[0] * beta1, self.decay[1] * beta2)
        self.first += np.float32(1 - beta1) * (grad - self.first)  # m = beta1 m + (1 - beta1) g
        self.second += np.float32(1 - beta2) * (grad * grad - self.second)  # v = beta2 v + (1 - beta2) g^2
        rate = self.lr * np.sqrt(1 - self.decay[1]) / (1 - self.decay[0])  # bias correction
        update = np.float32(rate) * self.first / (np.sqrt(self.second) + np.float32(ADAM_EPS))
        W -= update[:-1]
        return np.float32(b - update[-1])
