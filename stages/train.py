"""Stage 4, train: the article's single neuron, a = sigmoid(X W + b), trained by gradient descent.

The defaults are the article's recipe: W = 0, b = 0, mean squared error, full-batch gradient descent.
Faster recipes are parameters: cross-entropy, mini-batches, momentum or Adam, L2, early stopping.
The math is in catsdogs/neuron/reference.py, the optimizers in catsdogs/neuron/optimizers.py, the training loop in
catsdogs/neuron/fit.py and its fast passes in catsdogs/neuron/fast_passes.py. This script reads the training and validation
features and writes the weights (W, b, and the preprocessing a new photo needs), the per-epoch history
and the final training metrics. Every path is an argument: dvc.yaml's cmd names them.

While it runs, train rewrites the history and the metrics with the epochs done so far (LiveProgress:
at the first epoch, then every LIVE_INTERVAL seconds, each file atomically), so that `dvc exp show`,
`dvc plots show` and VS Code show a running experiment's epoch, losses and accuracies. The training
does not see these writes; the files written at the end are the same bytes as without them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from catsdogs.data.images import Preprocessing
from catsdogs.neuron.fit import fit, step_name
from catsdogs.neuron.history import history_frame, kept_row
from catsdogs.pipeline.atomic_files import atomic_path, save_json
from catsdogs.pipeline.command_line import run_cli, stage_parser
from catsdogs.pipeline.config import TrainParams
from catsdogs.pipeline.npz_files import load_npz
from catsdogs.pipeline.weights_file import save_model

PATHS = {  # the files train reads and writes: each one an option of its cmd in dvc.yaml
    "--preprocessing": "preprocessing record to read (.json written by resize_split), stored in the model",
    "--train-features": "training features to read (.npz written by flatten_normalize: X, y)",
    "--valid-features": "validation features to read (.npz: X, y), scored after every epoch",
    "--model": "weights to write (.npz: W, b, and the preprocessing a new photo needs)",
    "--history": "per-epoch history to write (.csv: epoch, train and validation loss and accuracy)",
    "--metrics": "training metrics of the kept epoch to write (.json)",
}

LIVE_INTERVAL = 5.0  # seconds between two progress rewrites of the history and the metrics


def write_results(frame: pd.DataFrame, params: TrainParams, history: Path, metrics: Path) -> None:
    """Write the history `frame` (.csv) and the training metrics of its kept row (.json), each atomically."""
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


class LiveProgress:
    """fit's on_epoch: keeps the history rows and rewrites the history and the metrics files with them
    (write_results) at the first epoch, then at the first epoch at least `interval` seconds after the
    last rewrite. A look at the clock per epoch; a rewrite of 5,000 rows takes about 20 ms
    (bench/live_progress.py)."""

    def __init__(
        self,
        params: TrainParams,
        history: Path,
        metrics: Path,
        interval: float = LIVE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.params, self.history, self.metrics = params, Path(history), Path(metrics)
        self.interval, self.clock = interval, clock
        self.rows: list[np.ndarray] = []
        self.due = -np.inf
        self.writes = 0

    def __call__(self, epoch: int, row: np.ndarray) -> None:
        self.rows.append(row)
        now = self.clock()
        if now >= self.due:
            self.writes += 1  # counted first: remove() also deletes what a rewrite failing halfway wrote
            write_results(history_frame(self.rows), self.params, self.history, self.metrics)
            self.due = now + self.interval

    def remove(self) -> None:
        """Delete the files this run wrote so far (a run that failed leaves no history or metrics)."""
        if self.writes:
            self.history.unlink(missing_ok=True)
            self.metrics.unlink(missing_ok=True)


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
    live_interval: float | None = LIVE_INTERVAL,
) -> pd.DataFrame:
    """Run the stage: read the features, fit, write weights, history and metrics (the keyword arguments
    are the files of PATHS), the last two also while it runs, every `live_interval` seconds (None:
    only at the end). Returns the history."""
    record = Preprocessing.load(preprocessing)
    data = load_npz(train_features, ("X", "y"))
    valid = load_npz(valid_features, ("X", "y"))
    live = None if live_interval is None else LiveProgress(params, history, metrics, live_interval)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run overflows: fit() stops it in one line
            W, b, frame = fit(
                data["X"],
                data["y"],
                valid["X"],
                valid["y"],
                params,
                progress,
                on_epoch=live,
                pixel_scale=record.pixel_scale,
            )
    except BaseException:
        if live:
            live.remove()
        raise
    save_model(model, W, b, record)
    write_results(frame, params, history, metrics)
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
