"""Classify your own photos with the trained neuron: "is my own photo a cat?".

Uses exactly the pipeline's preprocessing (resize_split.load_image, then flatten_normalize.to_features)
with the image size stored in the weights file. Not a DVC stage: run it after `dvc repro`:

    python -m stages.predict my_cat.jpg other.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from stages.common import CLASS_NAMES, load_npz, run_cli
from stages.flatten_normalize import to_features
from stages.neuron import sigmoid
from stages.pipeline import stage_path
from stages.resize_split import load_image


def predict_proba(paths: Sequence[Path], weights: dict[str, np.ndarray]) -> np.ndarray:
    """P(cat) (k,) for k image files, given the arrays of models/weights.npz (image_size, draft,
    pixel_scale, W, b)."""
    size = int(weights["image_size"])
    images = np.stack([load_image(path, size, bool(weights["draft"])) for path in paths])
    return sigmoid((to_features(images, float(weights["pixel_scale"])) @ weights["W"] + weights["b"]).astype(np.float64))


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
        "--weights", type=Path, help="trained weights (default: the --model file of train's cmd in dvc.yaml)"
    )
    parser.add_argument(
        "--threshold", type=probability, default=0.5, help="P(cat) above which to say cat, 0 < t < 1 (default: 0.5)"
    )
    args = parser.parse_args(argv)
    weights = load_npz(args.weights or stage_path("train", "--model"), ("W", "b", "image_size", "draft", "pixel_scale"))
    failed = 0
    for path in args.images:
        try:
            (p_cat,) = predict_proba([path], weights)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            print(f"{path}\terror: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}\tP(cat)={p_cat:.4f}\t{CLASS_NAMES[int(p_cat > args.threshold)]}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    run_cli(main)
