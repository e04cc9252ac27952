"""Loss curves of several runs on one chart (the gate's report and the learning-rate sweep)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from catsdogs.pipeline.atomic_files import atomic_path

HISTORY_COLUMNS = ("epoch", "train_loss", "valid_loss")


def read_history(text: str, source: str) -> pd.DataFrame:
    """Parse a train_history.csv; `source` (e.g. "HEAD:plots/train_history.csv") names it in errors.

    Returns a frame with at least the columns epoch, train_loss, valid_loss (one row per epoch).
    """
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{source}: not a readable CSV ({err})") from None
    missing = [column for column in HISTORY_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing columns {', '.join(missing)} (has {', '.join(frame.columns)})")
    return frame


def plot_loss_curves(histories: Mapping[str, pd.DataFrame], path: Path | str, title: str) -> None:
    """Draw each run's training loss (solid) and validation loss (dashed) in one colour per run."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for index, (label, frame) in enumerate(histories.items()):
        colour = f"C{index % 10}"
        axes.plot(frame["epoch"], frame["train_loss"], color=colour, linewidth=1, label=f"{label} train")
        axes.plot(
            frame["epoch"], frame["valid_loss"], color=colour, linewidth=1, linestyle="--", label=f"{label} valid"
        )
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
