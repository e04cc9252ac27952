"""What train's parameters make of the neuron: its objective, its optimizer, and what to change when a
run diverges."""

from __future__ import annotations

from typing import TYPE_CHECKING

from catsdogs.neuron.optimizers import Adam, GradientDescent
from catsdogs.neuron.reference import Objective

if TYPE_CHECKING:
    from catsdogs.pipeline.config import TrainParams


def objective_of(params: TrainParams) -> Objective:
    """The objective train.loss, train.gradient and train.l2 name: J + l2/2 |W|^2."""
    return Objective(params.loss, params.gradient, params.l2)


def make_optimizer(params: TrainParams, objective: Objective | None = None) -> GradientDescent | Adam:
    """The optimizer train.optimizer names, with train.lr, train.momentum and the objective's L2 term."""
    objective = objective or objective_of(params)
    if params.optimizer == "adam":
        return Adam(params.lr, objective)
    return GradientDescent(params.lr, params.momentum, objective)


def divergence_message(params: TrainParams, epoch: int) -> str:
    """What to change when the scores are no longer finite after `epoch` updates. With L2, each
    gradient-descent step also subtracts lr l2 W from W: with heavy-ball momentum m that linear map is
    stable only for lr l2 < 2 (1 + m) (m = 0: |1 - lr l2| < 1); past it |W| grows geometrically to inf."""
    hint = f"lower train.lr (now {params.lr:g})"
    bound = 2 * (1 + params.momentum)
    curvature = objective_of(params).l2  # of the L2 term: its Hessian is l2 I
    if params.optimizer == "gd" and params.lr * curvature >= bound:
        hint = (
            f"gradient descent with L2 is only stable for train.lr x train.l2 < {bound:g}"
            f"{' = 2 (1 + train.momentum)' if params.momentum else ''}, here {params.lr:g} x {params.l2:g} = "
            f"{params.lr * params.l2:g}: lower train.lr or train.l2"
        )
    return (
        f"params.yaml: train.lr = {params.lr:g} made the training diverge: after {epoch} of {params.epochs} "
        f"epochs the scores z = X W + b are no longer finite numbers (they overflowed float32, the losses "
        f"with them); {hint}"
    )
