"""evaluate's PNGs, for reports and `dvc plots show`: the loss curves, W as an image, the ROC curve, the
confusion matrix and the mistakes gallery.

Reproducible bytes: a fixed size and DPI, and no date or software name in the PNG (savefig's metadata), so
the same inputs give the same file and DVC's hash of it does not change when nothing else did.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from catsdogs.pipeline.atomic_files import atomic_path

DPI = 80


def save_figure(figure: plt.Figure, path: Path | str) -> None:
    """Write `figure` as a PNG, atomically, without a timestamp or software name; close it."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(figure)


def plot_losses(history: pd.DataFrame, path: Path | str) -> None:
    """Train and validation loss per epoch (left) and accuracy (right), from train's history."""
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "valid"):
        loss_axes.plot(history.epoch, history[f"{split}_loss"], label=split)
        accuracy_axes.plot(history.epoch, history[f"{split}_accuracy"], label=split)
    loss_axes.set(title="loss", xlabel="epoch")
    accuracy_axes.set(title="accuracy", xlabel="epoch")
    loss_axes.legend()
    figure.tight_layout()
    save_figure(figure, path)


def plot_weights(W: np.ndarray, image_size: int, path: Path | str) -> None:
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
    save_figure(figure, path)


def plot_roc(fpr: np.ndarray, tpr: np.ndarray, roc_auc: float | None, path: Path | str) -> None:
    """The ROC curve (k,) points, with the chance diagonal and the area under it in the title."""
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot(fpr, tpr, label="the neuron")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="false positive rate (dogs called cat)",
        ylabel="true positive rate (cats called cat)",
        title=f"ROC curve (validation), AUC {roc_auc}",
    )
    axes.legend(loc="lower right")
    figure.tight_layout()
    save_figure(figure, path)


def plot_confusion(metrics: dict, threshold: float, path: Path | str) -> None:
    """The 2 x 2 confusion matrix of the metrics' counts: rows the actual class, columns the predicted."""
    counts = np.array(
        [
            [metrics["true_positives"], metrics["false_negatives"]],
            [metrics["false_positives"], metrics["true_negatives"]],
        ]
    )
    figure, axes = plt.subplots(figsize=(5, 4.5))
    axes.imshow(counts, cmap="Blues", vmin=0)
    for (row, column), count in np.ndenumerate(counts):
        dark = count > counts.max() / 2
        axes.text(column, row, str(count), ha="center", va="center", fontsize=16, color="white" if dark else "black")
    axes.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["cat", "dog"],
        yticklabels=["cat", "dog"],
        xlabel="predicted",
        ylabel="actual",
        title=f"Confusion matrix (validation, threshold {threshold:g})",
    )
    figure.tight_layout()
    save_figure(figure, path)


def plot_mistakes(
    false_cats: list[tuple], false_dogs: list[tuple], totals: tuple[int, int], columns: int, path: Path | str
) -> None:
    """The mistakes gallery: a row of false cats (dogs called cat), a row of false dogs (cats called dog),
    each a list of at most `columns` (image uint8 (s, s, 3), file name, P(cat)), the most confident mistake
    first; `totals`: how many of each the validation set has."""
    figure = plt.figure(figsize=(1.5 * columns, 4.4))
    grid = figure.subplots(
        2,
        columns,
        squeeze=False,
        gridspec_kw=dict(left=0.01, right=0.99, top=0.8, bottom=0.02, wspace=0.1, hspace=0.75),
    )  # fixed: no layout search
    rows = (("false cats: dogs called cat", false_cats), ("false dogs: cats called dog", false_dogs))
    for axes_row, (title, mistakes), total, top in zip(grid, rows, totals, (0.97, 0.47)):
        for axes in axes_row:
            axes.axis("off")
        for axes, (image, name, p_cat) in zip(axes_row, mistakes):
            axes.imshow(image, interpolation="nearest")
            axes.set_title(f"{name}\nP(cat) {p_cat:.3f}", fontsize=8)
        shown = f"the {len(mistakes)} most confident of {total}" if total else "none"
        figure.text(0.01, top, f"{title}: {shown}", fontsize=11, fontweight="bold", va="top")
    save_figure(figure, path)
