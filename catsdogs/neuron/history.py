"""What fit records while a solver runs: the history rows, early stopping, the progress bar, and the
history row of the weights fit returns (kept_row)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm import tqdm

from catsdogs.neuron.reference import Objective, predict

if TYPE_CHECKING:
    from catsdogs.pipeline.config import TrainParams

HISTORY_COLUMNS = ("epoch", "train_loss", "valid_loss", "train_accuracy", "valid_accuracy")


class History:
    """The history, one row per epoch: the losses J (the objective's, without L2) and the accuracies
    (threshold 0.5) on the training and the validation rows, from their scores z."""

    def __init__(self, objective: Objective, y: np.ndarray, y_valid: np.ndarray):
        self.objective, self.y, self.y_valid = objective, y, y_valid
        self.rows: list[tuple] = []

    def add(self, epoch: int, z: np.ndarray, z_valid: np.ndarray, a: np.ndarray, a_valid: np.ndarray) -> tuple:
        """The row of `epoch` from the scores z (m,), z_valid (m_valid,) and a = sigmoid(z), a_valid."""
        self.rows.append(
            (
                epoch,
                self.objective.mean_loss(z, a, self.y),
                self.objective.mean_loss(z_valid, a_valid, self.y_valid),
                np.mean(predict(a) == self.y),
                np.mean(predict(a_valid) == self.y_valid),
            )
        )
        return self.rows[-1]

    def frame(self) -> pd.DataFrame:
        return history_frame(self.rows)


def history_frame(rows: list) -> pd.DataFrame:
    """The history as a table (columns HISTORY_COLUMNS, epoch an int) from its rows (tuples or arrays)."""
    return pd.DataFrame(np.array(rows, dtype=np.float64), columns=HISTORY_COLUMNS).astype({"epoch": int})


class EarlyStopping:
    """Stop after `patience` epochs without a lower validation loss (0: never), keeping the best state."""

    def __init__(self, patience: int, state: tuple):
        self.patience = patience
        self.best_loss, self.best_epoch, self.best_state = np.inf, 0, state

    def should_stop(self, epoch: int, valid_loss: float, state: Callable[[], tuple]) -> bool:
        if not self.patience:
            return False
        if valid_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.best_state = valid_loss, epoch, state()
            return False
        return epoch - self.best_epoch >= self.patience


def show_progress(bar: tqdm, epoch: int, row: tuple, progress: bool) -> None:
    """Advance the progress bar past `epoch`, showing the row's losses (formatted only for a bar shown)."""
    if epoch:
        bar.update()
    if progress:  # formatting the losses every epoch costs ~5 us: only for a bar that is shown
        bar.set_postfix(train_loss=f"{row[1]:.6f}", valid_loss=f"{row[2]:.6f}", refresh=False)


def kept_row(history: pd.DataFrame, params: TrainParams) -> pd.Series:
    """The history row of the weights fit returned: the last, or with early stopping the best validation loss."""
    return history.loc[history.valid_loss.idxmin()] if params.early_stopping else history.iloc[-1]  # type: ignore[call-overload]
