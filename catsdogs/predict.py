"""Classify your own photos with the trained neuron: "is my own photo a cat?".

Prepares each photo exactly as the pipeline prepared the training photos (images.Preprocessing: the
image size, draft decoding and pixel scale stored in the model file), then P(cat) = sigmoid(x W + b),
and calls it a cat above evaluate.threshold of params.yaml (the threshold of the validation metrics;
--threshold overrides it). Not a DVC stage: run it after `dvc repro`, from the project root:

    python -m catsdogs.predict my_cat.jpg other.png

The model file is, unless --weights names another, the --model file of the train stage's cmd in dvc.yaml.
A photo of more than images.MAX_PIXELS pixels, or one that is not a readable image, is reported and
skipped; the others are still classified (exit status 1 if any was skipped). Each output line is
`name<TAB>P(cat)=p<TAB>label`, the name escaped (common.escape: control characters such as a tab, a
newline or ESC as \\uNNNN, a backslash doubled) so that no file name can forge a line or drive the
terminal. A path that is no regular file (FIFO, device) is refused at once. Exit status: 0 all
classified, 1 some photo skipped, 2 bad input (model file, params), 3 a file system error, 130 Ctrl-C.

Which photos trained the model is read from dvc.lock (pipeline.locked_params: the ingest.source of the
run that made this very model file); predict says so on stderr when they were the embedded synthetic
set, or when dvc.lock does not record the model file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from catsdogs.data.images import Preprocessing
from catsdogs.data.labels import CLASS_NAMES
from catsdogs.errors import ParamError, check_regular, escape
from catsdogs.neuron.fast_passes import model_scores
from catsdogs.neuron.reference import sigmoid
from catsdogs.pipeline.command_line import EXIT_STATUS_HELP, run_cli
from catsdogs.pipeline.config import EvaluateParams
from catsdogs.pipeline.dvc_files import DVC_LOCK, locked_params, stage_path
from catsdogs.pipeline.params import PARAMS_FILE
from catsdogs.pipeline.weights_file import load_model


def predict_proba(paths: Sequence[Path], W: np.ndarray, b: np.floating, preprocessing: Preprocessing) -> np.ndarray:
    """P(cat) = sigmoid(x W + b) (k,) of k image files, prepared by `preprocessing`."""
    return sigmoid(model_scores(preprocessing.features(paths), W, b).astype(np.float64))


def probability(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def default_threshold(params_file: Path = PARAMS_FILE) -> float:
    """evaluate.threshold of params.yaml; a ParamError that also points at --threshold when it cannot be read."""
    try:
        return EvaluateParams.read(params_file).threshold
    except ParamError as err:
        raise ParamError(f"{err}; or give --threshold") from None


def data_note(model: Path, lock_file: Path = DVC_LOCK) -> str | None:
    """What to tell about the photos that trained `model`, from dvc.lock; None when they were real photos."""
    params = locked_params(model, lock_file)
    if params is None:
        return f"predict: note: {lock_file} does not record how {model} was made, so which photos trained it is unknown"
    if params.get("ingest.source") == "synthetic":
        return (
            f"predict: note: {model} was trained on the embedded synthetic set (ingest.source: synthetic "
            f"in {lock_file}), drawn animals rather than photos: P(cat) of a real photo means little. "
            "README, Real data: train it on Kaggle's photos"
        )
    return None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m catsdogs.predict",
        description="Print P(cat) and the label (cat if P(cat) > threshold) for each image file.",
        epilog="One line per file, tab-separated, its name escaped (a control character as \\uNNNN, a "
        f"backslash doubled). {EXIT_STATUS_HELP} 1: some image was skipped (its line on stderr), the others "
        "classified.",
    )
    parser.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG, ...)")
    parser.add_argument(
        "--weights", type=Path, help="model file (default: the --model file of train's cmd in dvc.yaml)"
    )
    parser.add_argument(
        "--threshold",
        type=probability,
        help="P(cat) above which to say cat, 0 < t < 1 (default: evaluate.threshold of params.yaml)",
    )
    args = parser.parse_args(argv)
    threshold = args.threshold if args.threshold is not None else default_threshold()
    path = args.weights or stage_path("train", "--model")
    model = load_model(path)
    note = data_note(path)
    if note:
        print(note, file=sys.stderr)
    failed = 0
    for image in args.images:
        name = escape(str(image))  # one line per photo whatever its name holds (tab, newline, ESC)
        try:
            check_regular(image)  # a FIFO or a device would block or never end
            (p_cat,) = predict_proba([image], *model)
            if not np.isfinite(p_cat):
                raise ValueError(f"P(cat) = {p_cat} is not a finite number; the model file {path} is unusable")
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            print(f"{name}\terror: {escape(str(err))}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}\tP(cat)={p_cat:.4f}\t{CLASS_NAMES[int(p_cat > threshold)]}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    with threadpool_limits(limits=1, user_api="blas"):  # one BLAS thread, as the stages (catsdogs/blas_threads.py)
        run_cli(main)
