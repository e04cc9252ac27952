"""Stage 5, evaluate: validation metrics of the trained neuron, and the plots `dvc plots show` draws.

Writes metrics/evaluate.json, plots/roc.csv (fpr, tpr), plots/confusion.csv (actual, predicted per
validation image), plots/loss.png (train vs validation loss) and plots/weights.png (W reshaped to the
image it looks at).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from stages.common import (  # noqa: E402
    CLASS_NAMES,
    PARAMS_FILE,
    atomic_path,
    check_number,
    load_npz,
    load_section,
    run_cli,
    stage_parser,
    save_json,
)
from stages.flatten_normalize import FEATURES_DIR  # noqa: E402
from stages.neuron import loss_value, sigmoid  # noqa: E402
from stages.train import HISTORY_FILE, WEIGHTS_FILE  # noqa: E402

METRICS_FILE = Path("metrics/evaluate.json")
PLOTS_DIR = Path("plots")


@dataclass(frozen=True)
class EvaluateParams:
    threshold: float = 0.5


def read_params(path: Path = PARAMS_FILE) -> EvaluateParams:
    """Checked `evaluate` group of params.yaml."""
    group = load_section("evaluate", ("threshold",), path)
    return EvaluateParams(
        threshold=float(
            check_number("evaluate.threshold", group["threshold"], low=0, high=1, low_open=True, high_open=True)
        )
    )


def roc_curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates (k,) as the threshold sweeps down through the distinct scores.

    Starts at (0, 0) and ends at (1, 1); tied scores make one diagonal step. Needs both classes in y.
    """
    order = np.argsort(-scores, kind="stable")
    ranked_scores, ranked_y = scores[order], y[order].astype(np.int64)
    last_of_tie = np.r_[np.flatnonzero(np.diff(ranked_scores)), len(scores) - 1]
    true_pos = np.cumsum(ranked_y)[last_of_tie]
    false_pos = last_of_tie + 1 - true_pos
    return np.r_[0.0, false_pos / false_pos[-1]], np.r_[0.0, true_pos / true_pos[-1]]


def classification_metrics(y: np.ndarray, z: np.ndarray, threshold: float = 0.5) -> dict[str, float | int | None]:
    """Metrics of scores z = X W + b (m,) against labels y (m,) in {0, 1}; cat (1) is the positive class."""
    y = np.asarray(y).astype(np.int64)
    a = sigmoid(np.asarray(z, dtype=np.float64))
    predicted = (a > threshold).astype(np.int64)
    tp = int(np.sum((predicted == 1) & (y == 1)))
    fp = int(np.sum((predicted == 1) & (y == 0)))
    tn = int(np.sum((predicted == 0) & (y == 0)))
    fn = int(np.sum((predicted == 0) & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    both_classes = 0 < y.sum() < len(y)
    # AUC = area under the ROC curve = P(score of a random cat > score of a random dog), ties count 1/2
    # ranked by z, not a = sigmoid(z): a rounds to exactly 1.0 for z > ~37 and would create false ties
    roc_auc = float(np.trapezoid(*roc_curve(y, np.asarray(z, dtype=np.float64))[::-1])) if both_classes else None
    metrics = {
        "accuracy": (tp + tn) / len(y),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc,
        "log_loss": loss_value("cross_entropy", z, a, y),
        "mse_loss": loss_value("mse", z, a, y),
    }
    metrics = {key: None if value is None else round(float(value), 6) for key, value in metrics.items()}
    metrics.update(true_positives=tp, false_positives=fp, true_negatives=tn, false_negatives=fn, n_valid=len(y))
    return metrics


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


def evaluate(params: EvaluateParams, features_dir: Path = FEATURES_DIR, plots_dir: Path = PLOTS_DIR) -> dict:
    """Run the stage: write metrics and plot files; return the metrics."""
    weights = load_npz(WEIGHTS_FILE, ("W", "b", "image_size"))
    valid = load_npz(Path(features_dir) / "valid.npz", ("X", "y"))
    z = (valid["X"] @ weights["W"] + weights["b"]).astype(np.float64)
    metrics = classification_metrics(valid["y"], z, params.threshold)
    save_json(METRICS_FILE, metrics)

    plots_dir = Path(plots_dir)
    a = sigmoid(z)
    fpr, tpr = roc_curve(valid["y"], z)
    with atomic_path(plots_dir / "roc.csv") as tmp:
        pd.DataFrame({"fpr": fpr, "tpr": tpr}).to_csv(tmp, index=False, float_format="%.6g")
    names = np.array(CLASS_NAMES)
    confusion = {"actual": names[valid["y"].astype(int)], "predicted": names[(a > params.threshold).astype(int)]}
    with atomic_path(plots_dir / "confusion.csv") as tmp:
        pd.DataFrame(confusion).to_csv(tmp, index=False)
    plot_losses(pd.read_csv(HISTORY_FILE), plots_dir / "loss.png")
    plot_weights(weights["W"], int(weights["image_size"]), plots_dir / "weights.png")
    return metrics


def main(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(
        "evaluate",
        "Score models/weights.npz on data/features/valid.npz: metrics/evaluate.json and the plots "
        "in plots/ (ROC, confusion matrix, loss curves, weights image). Parameters: the `evaluate` group.",
    )
    args = parser.parse_args(argv)
    params = read_params(args.params)
    metrics = evaluate(params)
    print(
        f"evaluate: accuracy {metrics['accuracy']:.4f}, F1 {metrics['f1']:.4f}, ROC AUC {metrics['roc_auc']}, "
        f"on {metrics['n_valid']} validation images"
    )


if __name__ == "__main__":
    run_cli(main)
