"""Stage 4, train: the article's single neuron, a = sigmoid(X W + b), trained by gradient descent.

The defaults are the article's recipe: W = 0, b = 0, mean squared error, full-batch gradient descent.
Faster recipes are parameters: cross-entropy, mini-batches, momentum or Adam, L2, early stopping.
The math is in stages/neuron.py, the optimizers in stages/optimizers.py, the training loop in
stages/fit.py and its fast passes in stages/passes.py. This script reads the training and validation
features and writes the weights (W, b, and the preprocessing a new photo needs), the per-epoch history
and the final training metrics. Every path is an argument: dvc.yaml's cmd names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from stages.common import atomic_path, load_npz, run_cli, save_json, stage_parser
from stages.fit import fit, kept_row, step_name
from stages.images import Preprocessing
from stages.model import save_model
from stages.neuron import GRADIENTS, LOSSES
from stages.optimizers import ADAM_BETAS, OPTIMIZERS
from stages.params import Choice, Number, ParamError, param, stage_params

PATHS = {  # the files train reads and writes: each one an option of its cmd in dvc.yaml
    "--preprocessing": "preprocessing record to read (.json written by resize_split), stored in the model",
    "--train-features": "training features to read (.npz written by flatten_normalize: X, y)",
    "--valid-features": "validation features to read (.npz: X, y), scored after every epoch",
    "--model": "weights to write (.npz: W, b, and the preprocessing a new photo needs)",
    "--history": "per-epoch history to write (.csv: epoch, train and validation loss and accuracy)",
    "--metrics": "training metrics of the kept epoch to write (.json)",
}


@stage_params("train")
class TrainParams:
    lr: float = param(0.003, Number(low=0, high=1e6, low_open=True), "learning rate (unused by lbfgs)")
    epochs: int = param(
        5000,
        Number(low=1, high=10_000_000, integer=True),
        "passes over the training set (lbfgs: at most this many iterations)",
    )
    loss: str = param("mse", Choice(LOSSES), "mse: 1/(2m) sum (a - y)^2; cross_entropy: log loss")
    gradient: str = param("exact", Choice(GRADIENTS), "exact dJ/dz, or the notebook's double sigmoid (loss mse only)")
    optimizer: str = param(
        "gd",
        Choice(OPTIMIZERS),
        "gd: gradient descent (with momentum if > 0); adam; lbfgs: L-BFGS (cross_entropy, full batch)",
    )
    momentum: float = param(0.0, Number(low=0, high=1, high_open=True), "heavy-ball momentum (gd only)")
    batch_size: int = param(0, Number(low=0, integer=True), "rows per update; 0 = full batch")
    l2: float = param(0.0, Number(low=0, high=1e6), "L2 penalty: minimise J + l2/2 |W|^2")
    early_stopping: int = param(
        0,
        Number(low=0, integer=True),
        "stop after this many epochs (lbfgs: iterations) without a lower validation loss; 0 = off",
    )
    seed: int = param(0, Number(low=0, integer=True), "seed of the mini-batch order")
    tolerance: float = param(
        1e-5,
        Number(low=0, high=1, low_open=True),
        "lbfgs: stop when every gradient component of J + l2/2 |W|^2 is at most this",
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


def train(
    params: TrainParams,
    *,
    preprocessing: Path,
    train_features: Path,
    valid_features: Path,
    model: Path,
    history: Path,
    metrics: Path,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the stage: read the features, fit, write weights, history and metrics (the keyword arguments
    are the files of PATHS). Returns the history."""
    record = Preprocessing.load(preprocessing)
    data = load_npz(train_features, ("X", "y"))
    valid = load_npz(valid_features, ("X", "y"))
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run overflows: fit() stops it in one line
        W, b, frame = fit(data["X"], data["y"], valid["X"], valid["y"], params, progress)
    save_model(model, W, b, record)
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
        "training metrics.",
        params=TrainParams,
        paths=PATHS,
    )
    args = vars(parser.parse_args(argv))
    params = TrainParams.read(args.pop("params"))
    history = train(params, **args)
    final = kept_row(history, params)
    print(
        f"train: {len(history) - 1} {step_name(params)}s, kept {step_name(params)} {int(final.epoch)}, train loss {final.train_loss:.6f} accuracy {final.train_accuracy:.4f}, "
        f"valid loss {final.valid_loss:.6f} accuracy {final.valid_accuracy:.4f}"
    )


if __name__ == "__main__":
    run_cli(main)
