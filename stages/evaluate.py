"""Stage 5, evaluate: validation metrics of the trained neuron, and the plots `dvc plots show` draws.

Reads the model file (weights and preprocessing record), the validation features and train's history;
writes the metrics (catsdogs/evaluation/metrics.py computes them), the ROC curve (fpr, tpr) and the confusion plot data
(actual, predicted per validation image) for DVC's charts, and PNGs for reports (catsdogs/evaluation/figures.py draws
them): the loss curves, W reshaped to the image it looks at, the ROC curve, the confusion matrix, and the
mistakes gallery (the validation images the neuron got most confidently wrong, as the neuron saw them).
Every path is an argument: dvc.yaml's cmd names them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from catsdogs.data.labels import CLASS_NAMES
from catsdogs.errors import DataError, escape, read_regular
from catsdogs.evaluation.figures import plot_confusion, plot_losses, plot_mistakes, plot_roc, plot_weights
from catsdogs.evaluation.metrics import classification_metrics, most_confident_mistakes, roc_curve
from catsdogs.neuron.fast_passes import model_scores
from catsdogs.neuron.reference import predict, sigmoid
from catsdogs.pipeline.atomic_files import atomic_path, save_json
from catsdogs.pipeline.command_line import run_cli, stage_parser
from catsdogs.pipeline.config import EvaluateParams
from catsdogs.pipeline.dvc_files import restore_hint
from catsdogs.pipeline.npz_files import load_npz
from catsdogs.pipeline.weights_file import load_model

MISTAKES_SHOWN = 8  # images per row of the mistakes gallery

PATHS = {  # the files evaluate reads and writes: each one an option of its cmd in dvc.yaml
    "--model": "trained weights to read (.npz written by train: W, b and the preprocessing record)",
    "--valid-features": "validation features to read (.npz: X, y, names)",
    "--history": "train's per-epoch history to read (.csv), drawn as the loss curves",
    "--metrics": "validation metrics to write (.json)",
    "--roc": "ROC curve to write (.csv: fpr, tpr)",
    "--confusion": "confusion plot data to write (.csv: actual, predicted, one row per validation image)",
    "--loss-plot": "train and validation loss and accuracy per epoch to write (.png)",
    "--weights-plot": "W reshaped to the image it looks at, to write (.png)",
    "--roc-plot": "ROC curve to write (.png)",
    "--confusion-plot": "confusion matrix to write (.png)",
    "--mistakes-plot": f"the {MISTAKES_SHOWN} most confident false cats and false dogs to write (.png)",
}


HISTORY_COLUMNS = ("epoch", "train_loss", "valid_loss", "train_accuracy", "valid_accuracy")
MAX_HISTORY_BYTES = 1 << 26  # train's history: about 60 bytes an epoch


def read_history(path: Path) -> pd.DataFrame:
    """train's per-epoch history (a regular file of at most MAX_HISTORY_BYTES, with HISTORY_COLUMNS of
    finite numbers); a DataError naming the file and what is wrong (empty, a missing column, text)."""
    try:
        frame = pd.read_csv(io.StringIO(read_regular(path, MAX_HISTORY_BYTES)))
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run the earlier stages: `dvc repro`)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({escape(str(err))}); {restore_hint(path)}") from None
    # a missing column comes back all NaN, text as NaN; true/false cells stay booleans (no numbers)
    numbers = frame.reindex(columns=list(HISTORY_COLUMNS)).apply(pd.to_numeric, errors="coerce")
    numeric = all(dtype.kind in "iuf" for dtype in numbers.dtypes)
    if frame.empty or not numeric or not np.isfinite(numbers.to_numpy(dtype=np.float64)).all():
        has = ", ".join(escape(str(column))[:40] for column in frame.columns[:10])
        raise DataError(
            f"{path}: expected rows of finite numbers in columns {', '.join(HISTORY_COLUMNS)} "
            f"(has {len(frame)} rows, columns {has}); {restore_hint(path)}"
        )
    return numbers


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
    roc_plot: Path,
    confusion_plot: Path,
    mistakes_plot: Path,
) -> dict:
    """Run the stage: read weights, validation features and history; write metrics and plot files
    (the keyword arguments are the files of PATHS). Returns the metrics."""
    weights = load_model(model)
    losses = read_history(history)  # before any output is written: a bad history leaves them all as they were
    valid = load_npz(valid_features, ("X", "y", "names"))
    z = model_scores(valid["X"], weights.W, weights.b).astype(np.float64)
    if not np.isfinite(z).all():  # finite but huge weights: float32 scores overflow, metrics would be NaN
        raise DataError(
            f"{model}: the scores z = X W + b of {np.count_nonzero(~np.isfinite(z))} validation images "
            "overflow float32: the weights are too large; retrain with a lower train.lr (`dvc repro`)"
        )
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

    plot_losses(losses, loss_plot)
    plot_weights(weights.W, weights.preprocessing.image_size, weights_plot)
    plot_roc(fpr, tpr, scores["roc_auc"], roc_plot)
    plot_confusion(scores, params.threshold, confusion_plot)
    rows = most_confident_mistakes(valid["y"], z, params.threshold, MISTAKES_SHOWN)
    images = [weights.preprocessing.images(valid["X"][kind]) for kind in rows]  # as the neuron saw them
    galleries = [list(zip(shown, valid["names"][kind], a[kind])) for shown, kind in zip(images, rows)]
    totals = (int(scores["false_positives"] or 0), int(scores["false_negatives"] or 0))
    false_cats, false_dogs = galleries
    plot_mistakes(false_cats, false_dogs, totals, MISTAKES_SHOWN, mistakes_plot)
    return scores


def main(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(
        "evaluate",
        "Score the trained weights on the validation features: metrics (JSON), the plot data dvc.yaml "
        "charts (ROC, confusion matrix) and PNGs (loss curves, weights image, ROC, confusion matrix, "
        "mistakes gallery).",
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
