"""Classify your own photos with the trained neuron: "is my own photo a cat?".

Prepares each photo exactly as the pipeline prepared the training photos (images.Preprocessing: the
image size, draft decoding and pixel scale stored in the model file), then P(cat) = sigmoid(x W + b).
Not a DVC stage: run it after `dvc repro`, from the project root:

    python -m stages.predict my_cat.jpg other.png

The model file is, unless --weights names another, the --model file of the train stage's cmd in dvc.yaml.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from stages.common import CLASS_NAMES, run_cli
from stages.images import Preprocessing
from stages.model import load_model
from stages.neuron import sigmoid
from stages.pipeline import stage_path


def predict_proba(paths: Sequence[Path], W: np.ndarray, b: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """P(cat) = sigmoid(x W + b) (k,) of k image files, prepared by `preprocessing`."""
    return sigmoid((preprocessing.features(paths) @ W + b).astype(np.float64))


def probability(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stages.predict",
        description="Print P(cat) and the label (cat if P(cat) > threshold) for each image file.",
    )
    parser.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG, ...)")
    parser.add_argument(
        "--weights", type=Path, help="model file (default: the --model file of train's cmd in dvc.yaml)"
    )
    parser.add_argument(
        "--threshold", type=probability, default=0.5, help="P(cat) above which to say cat, 0 < t < 1 (default: 0.5)"
    )
    args = parser.parse_args(argv)
    model = load_model(args.weights or stage_path("train", "--model"))
    failed = 0
    for path in args.images:
        try:
            (p_cat,) = predict_proba([path], *model)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            print(f"{path}\terror: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}\tP(cat)={p_cat:.4f}\t{CLASS_NAMES[int(p_cat > args.threshold)]}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    run_cli(main)
