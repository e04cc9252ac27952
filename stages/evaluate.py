"""Stage 5, evaluate: validation metrics of the trained neuron, and the plots `dvc plots show` draws.

Reads the weights, the validation features and train's history; writes the metrics (stages/metrics.py
computes them), the ROC curve (fpr, tpr), the confusion plot data (actual, predicted per validation
image), the loss curves (train vs validation) and W reshaped to the image it looks at. Every path is
an argument: dvc.yaml's cmd names them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from stages.common import (  # noqa: E402
    CLASS_NAMES,
    atomic_path,
    load_npz,
    run_cli,
    stage_parser,
    save_json,
)
from stages.metrics import classification_metrics, roc_curve  # noqa: E402
from stages.model import load_model  # noqa: E402
from stages.neuron import forward, predict, sigmoid  # noqa: E402
from stages.params import Number, param, stage_params  # noqa: E402

PATHS = {  # the files evaluate reads and writes: each one an option of its cmd in dvc.yaml
    "--model": "trained weights to read (.npz written by train: W, b, image_size)",
    "--valid-features": "validation features to read (.npz: X, y)",
    "--history": "train's per-epoch history to read (.csv), drawn as the loss curves",
    "--metrics": "validation metrics to write (.json)",
    "--roc": "ROC curve to write (.csv: fpr, tpr)",
    "--confusion": "confusion plot data to write (.csv: actual, predicted, one row per validation image)",
    "--loss-plot": "train and validation loss and accuracy per epoch to write (.png)",
    "--weights-plot": "W reshaped to the image it looks at, to write (.png)",
}


@stage_params("evaluate")
class EvaluateParams:
    threshold: float = param(
        0.5, Number(low=0, high=1, low_open=True, high_open=True), "P(cat) above which an image is called a cat"
    )


def plot_losses(history: pd.DataFrame, path: Path) -> None:
    """Train and validation loss per epoch (left) and accuracy (right), as a PNG."""
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "valid"):
        loss_axes.plot(history.epoch, history[f"{split}_loss"], label=split)
        accuracy_axes.plot(history.epoch, history[f"{split}_accuracy"], label=split)
    loss_axes.set(title="loss", xlabel="epoch")
    accuracy_axes.set(title="accuracy", xlabel="epoch")
    loss_axes.legend()
    figure.tight_layout()
    _save_figure(figure, path)


def plot_weights(W: np.ndarray, image_size: int, path: Path) -> None:
    """W (n,) shown as the image the neuron responds to: per-channel RGB (left), summed (right)."""
    image = W.reshape(image_size, image_size, 3)
    spread = np.abs(image).max() or 1.0
    figure, (rgb_axes, sum_axes) = plt.subplots(1, 2, figsize=(8, 4))
    rgb_axes.imshow(0.5 + 0.5 * image / spread)  # 0 weight = grey; brighter channel = more "cat"
    rgb_axes.set_title("W as RGB (grey = 0)")
    summed = image.sum(axis=2)
    limit = np.abs(summed).max() or 1.0
    shown = sum_axes.imshow(summed, cmap="coolwarm", vmin=-limit, vmax=limit)
    sum_axes.set_title("W summed over RGB (red: cat, blue: dog)")
    figure.colorbar(shown, ax=sum_axes, fraction=0.046)
    for axes in (rgb_axes, sum_axes):
        axes.axis("off")
    figure.tight_layout()
    _save_figure(figure, path)


def _save_figure(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=80, metadata={"Software": None})
    plt.close(figure)


def evaluate(
    params: EvaluateParams,
    *,
    model: Path,
    valid_features: Path,
    history: Path,
    metrics: Path,
    roc: Path,
    confusion: Path,
    loss_plot: Path,
    weights_plot: Path,
) -> dict:
    """Run the stage: read weights, validation features and history; write metrics and plot files
    (the keyword arguments are the files of PATHS). Returns the metrics."""
    weights = load_model(model)
    valid = load_npz(valid_features, ("X", "y"))
    z = forward(valid["X"], weights.W, weights.b).astype(np.float64)
    scores = classification_metrics(valid["y"], z, params.threshold)
    save_json(metrics, scores)

    a = sigmoid(z)
    fpr, tpr = roc_curve(valid["y"], z)
    with atomic_path(roc) as tmp:
        pd.DataFrame({"fpr": fpr, "tpr": tpr}).to_csv(tmp, index=False, float_format="%.6g")
    names = np.array(CLASS_NAMES)
    pairs = {"actual": names[valid["y"].astype(int)], "predicted": names[predict(a, params.threshold)]}
    with atomic_path(confusion) as tmp:
        pd.DataFrame(pairs).to_csv(tmp, index=False)
    plot_losses(pd.read_csv(history), loss_plot)
    plot_weights(weights.W, weights.preprocessing.image_size, weights_plot)
    return scores


def main(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(
        "evaluate",
        "Score the trained weights on the validation features: metrics (JSON) and the plots dvc.yaml "
        "shows (ROC, confusion matrix, loss curves, weights image).",
        params=EvaluateParams,
        paths=PATHS,
    )
    args = vars(parser.parse_args(argv))
    params = EvaluateParams.read(args.pop("params"))
    metrics = evaluate(params, **args)
    print(
        f"evaluate: accuracy {metrics['accuracy']:.4f}, F1 {metrics['f1']:.4f}, ROC AUC {metrics['roc_auc']}, "
        f"on {metrics['n_valid']} validation images"
    )


if __name__ == "__main__":
    run_cli(main)
