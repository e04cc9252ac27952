"""Every stage's parameters, declared once: one class per group of params.yaml (catsdogs.pipeline.params
says how a declaration works). The stages, predict, tools/ and bench/ import them from here;
tests/test_params.py checks each against params.yaml and dvc.yaml."""

from __future__ import annotations

from PIL import Image

from catsdogs.data.images import MAX_IMAGE_SIZE
from catsdogs.errors import ParamError
from catsdogs.neuron.optimizers import ADAM_BETAS, OPTIMIZERS
from catsdogs.neuron.reference import GRADIENTS, LOSSES
from catsdogs.pipeline.params import Choice, Custom, Flag, Number, StageParams, param, stage_params

SYNTHETIC = "synthetic"


def is_text(key: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise ParamError(f"params.yaml: {key} = {value!r} is not allowed, expected `{SYNTHETIC}` or a path")
    return value


@stage_params("ingest")
class IngestParams(StageParams):
    source: str = param(
        default=SYNTHETIC,
        allowed=Custom(is_text, f"`{SYNTHETIC}` or a path under the --external folder"),
        help="where the photos come from",
    )
    n_per_class: int = param(
        default=1000, allowed=Number(low=1, high=1_000_000, integer=True), help="synthetic images per class"
    )
    seed: int = param(default=0, allowed=Number(low=0, integer=True), help="seed of the synthetic set")
    # resize_split opens the kept files with Pillow's default bound: stay within it.
    max_pixels: int = param(
        default=25_000_000,
        allowed=Number(low=1, high=Image.MAX_IMAGE_PIXELS, integer=True),
        help="real sources: pixel cap per image",
    )
    jobs: int = param(
        default=0,
        allowed=Number(low=0, integer=True),
        help="real sources: decoding processes; 0 = all cores",
        tracked=False,
    )


# Kaggle's photos are at most about 500 px on the long side (a few reach 1,050): a larger square only
# interpolates pixels they do not have. Memory is bounded separately (catsdogs/data/memory.py), from the image count.
MAX_SIZE = MAX_IMAGE_SIZE  # catsdogs/data/images.py: the bound every reader of a preprocessing record checks


@stage_params("resize_split")
class ResizeSplitParams(StageParams):
    size: int = param(
        default=64,
        allowed=Number(low=1, high=MAX_SIZE, integer=True),
        help="side of the square images, in pixels (the article: 64)",
    )
    valid_fraction: float = param(
        default=0.2,
        allowed=Number(low=0, high=1, low_open=True, high_open=True),
        help="fraction of each class held out for validation",
    )
    seed: int = param(default=42, allowed=Number(low=0, integer=True), help="seed of the split")
    draft: bool = param(
        default=True, allowed=Flag(), help="let libjpeg decode at 1/2, 1/4 or 1/8 scale before the resize"
    )
    jobs: int = param(
        default=0,
        allowed=Number(low=0, high=1024, integer=True),
        help="worker processes decoding images; 0 = all cores",
        tracked=False,
    )


@stage_params("train")
class TrainParams(StageParams):
    lr: float = param(
        default=0.003, allowed=Number(low=0, high=1e6, low_open=True), help="learning rate (unused by lbfgs)"
    )
    epochs: int = param(
        default=5000,
        allowed=Number(low=1, high=10_000_000, integer=True),
        help="passes over the training set (lbfgs: at most this many iterations)",
    )
    loss: str = param(default="mse", allowed=Choice(LOSSES), help="mse: 1/(2m) sum (a - y)^2; cross_entropy: log loss")
    gradient: str = param(
        default="exact", allowed=Choice(GRADIENTS), help="exact dJ/dz, or the notebook's double sigmoid (loss mse only)"
    )
    optimizer: str = param(
        default="gd",
        allowed=Choice(OPTIMIZERS),
        help="gd: gradient descent (with momentum if > 0); adam; lbfgs: L-BFGS (cross_entropy, full batch)",
    )
    momentum: float = param(
        default=0.0, allowed=Number(low=0, high=1, high_open=True), help="heavy-ball momentum (gd only)"
    )
    batch_size: int = param(default=0, allowed=Number(low=0, integer=True), help="rows per update; 0 = full batch")
    l2: float = param(default=0.0, allowed=Number(low=0, high=1e6), help="L2 penalty: minimise J + l2/2 |W|^2")
    early_stopping: int = param(
        default=0,
        allowed=Number(low=0, integer=True),
        help="stop after this many epochs (lbfgs: iterations) without a lower validation loss; 0 = off",
    )
    seed: int = param(default=0, allowed=Number(low=0, integer=True), help="seed of the mini-batch order")
    tolerance: float = param(
        default=1e-5,
        allowed=Number(low=0, high=1, low_open=True),
        help="lbfgs: stop when every gradient component of J + l2/2 |W|^2 is at most this",
    )

    def check_together(self) -> None:
        if self.gradient == "notebook" and self.loss != "mse":
            raise ParamError(
                f"params.yaml: train.gradient = 'notebook' is only defined for train.loss = 'mse' "
                f"(got train.loss = {self.loss!r}); use train.gradient = 'exact'"
            )
        if self.optimizer == "adam" and self.momentum != 0:
            raise ParamError(
                f"params.yaml: train.momentum = {self.momentum!r} is only used by train.optimizer = 'gd' "
                f"(Adam has its own, beta1 = {ADAM_BETAS[0]}); set train.momentum to 0.0"
            )
        if self.optimizer == "lbfgs":
            needs = {"loss": "cross_entropy", "batch_size": 0, "momentum": 0.0}
            wrong = [
                f"train.{key} = {getattr(self, key)!r}" for key, value in needs.items() if getattr(self, key) != value
            ]
            if wrong:
                raise ParamError(
                    f"params.yaml: train.optimizer = 'lbfgs' needs train.loss = 'cross_entropy', train.batch_size = 0 "
                    f"(full batch) and train.momentum = 0.0; got {', '.join(wrong)}"
                )


@stage_params("evaluate")
class EvaluateParams(StageParams):
    threshold: float = param(
        default=0.5,
        allowed=Number(low=0, high=1, low_open=True, high_open=True),
        help="P(cat) above which an image is called a cat",
    )
