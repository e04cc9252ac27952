"""Stage 4, train: the article's single neuron, a = sigmoid(X W + b), trained by gradient descent.

The defaults are the article's recipe: W = 0, b = 0, mean squared error, full-batch gradient descent.
Faster recipes are parameters: cross-entropy, mini-batches, momentum or Adam, L2, early stopping.
The math is in stages/neuron.py, the optimizers in stages/optimizers.py, the training loop in
stages/fit.py and its fast passes in stages/passes.py. This script reads the training and validation
features and writes the weights (W, b, and the preprocessing a new photo needs), the per-epoch history
and the final training metrics. Every path is an argument: dvc.yaml's cmd names them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from stages.common import (
    PARAMS_FILE,
    ParamError,
    atomic_path,
    check_choice,
    check_number,
    load_npz,
    load_section,
    run_cli,
    stage_parser,
    save_json,
    save_npz,
)
from stages.fit import fit, kept_row
from stages.flatten_normalize import PIXEL_SCALE
from stages.neuron import GRADIENTS, LOSSES
from stages.optimizers import ADAM_BETAS, OPTIMIZERS

PATHS = {  # the files train reads and writes: each one an option of its cmd in dvc.yaml
    "--train-features": "training features to read (.npz written by flatten_normalize: X, y, image_size, draft)",
    "--valid-features": "validation features to read (.npz: X, y), scored after every epoch",
    "--model": "weights to write (.npz: W, b, and the preprocessing a new photo needs)",
    "--history": "per-epoch history to write (.csv: epoch, train and validation loss and accuracy)",
    "--metrics": "training metrics of the kept epoch to write (.json)",
}
PARAM_KEYS = (
    "lr", "epochs", "loss", "gradient", "optimizer", "momentum", "batch_size", "l2", "early_stopping", "seed"
)


@dataclass(frozen=True)
class TrainParams:
    lr: float
    epochs: int
    loss: str = "mse"
    gradient: str = "exact"
    optimizer: str = "gd"
    momentum: float = 0.0
    batch_size: int = 0
    l2: float = 0.0
    early_stopping: int = 0
    seed: int = 0


def read_params(path: Path = PARAMS_FILE) -> TrainParams:
    """Checked `train` group of params.yaml."""
    group = load_section("train", PARAM_KEYS, path)
    params = TrainParams(
        lr=float(check_number("train.lr", group["lr"], low=0, low_open=True)),
        epochs=check_number("train.epochs", group["epochs"], integer=True, low=1, high=10_000_000),
        loss=check_choice("train.loss", group["loss"], LOSSES),
        gradient=check_choice("train.gradient", group["gradient"], GRADIENTS),
        optimizer=check_choice("train.optimizer", group["optimizer"], OPTIMIZERS),
        momentum=float(check_number("train.momentum", group["momentum"], low=0, high=1, high_open=True)),
        batch_size=check_number("train.batch_size", group["batch_size"], integer=True, low=0),
        l2=float(check_number("train.l2", group["l2"], low=0)),
        early_stopping=check_number("train.early_stopping", group["early_stopping"], integer=True, low=0),
        seed=check_number("train.seed", group["seed"], integer=True, low=0),
    )
    if params.gradient == "notebook" and params.loss != "mse":
        raise ParamError(
            f"params.yaml: train.gradient = 'notebook' is only defined for train.loss = 'mse' "
            f"(got train.loss = {params.loss!r}); use train.gradient = 'exact'"
        )
    if params.optimizer == "adam" and params.momentum != 0:
        raise ParamError(
            f"params.yaml: train.momentum = {params.momentum!r} is only used by train.optimizer = 'gd' "
            f"(Adam has its own, beta1 = {ADAM_BETAS[0]}); set train.momentum to 0.0"
        )
    return params


def train(
    params: TrainParams,
    *,
    train_features: Path,
    valid_features: Path,
    model: Path,
    history: Path,
    metrics: Path,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the stage: read the features, fit, write weights, history and metrics (the keyword arguments
    are the files of PATHS). Returns the history."""
    data = load_npz(train_features, ("X", "y", "image_size", "draft"))
    valid = load_npz(valid_features, ("X", "y"))
    W, b, frame = fit(data["X"], data["y"], valid["X"], valid["y"], params, progress)
    save_npz(
        model, W=W, b=b, image_size=data["image_size"], draft=data["draft"], pixel_scale=np.float32(PIXEL_SCALE)
    )
    with atomic_path(history) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.8g")
    kept = kept_row(frame, params)
    save_json(
        metrics,
        {
            "train_loss": round(float(kept.train_loss), 8),
            "train_accuracy": round(float(kept.train_accuracy), 6),
            "epoch": int(kept.epoch),
        },
    )
    return frame


def main(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(
        "train",
        "Train the single neuron on the training features (gradient descent, full-batch by default), "
        "scoring the validation features every epoch. Writes the weights, the per-epoch history and the "
        "training metrics. Parameters: the `train` group of params.yaml.",
        PATHS,
    )
    args = vars(parser.parse_args(argv))
    params = read_params(args.pop("params"))
    history = train(params, **args)
    final = kept_row(history, params)
    print(
        f"train: {len(history) - 1} epochs, kept epoch {int(final.epoch)}, train loss {final.train_loss:.6f} accuracy {final.train_accuracy:.4f}, "
        f"valid loss {final.valid_loss:.6f} accuracy {final.valid_accuracy:.4f}"
    )


if __name__ == "__main__":
    run_cli(main)
