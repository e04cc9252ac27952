"""Stage 3, flatten_normalize: uint8 images (m, size, size, 3) -> float32 features (m, size*size*3) in [0, 1].

Writes data/features/{train,valid}.npz with X (m, n_features) float32, y (m,) uint8, names (m,),
image_size, the side the images were resized to, and draft (both are what predict needs to prepare a
new photo the same way).
Rows are examples (the article's notebook used the transpose, one column per image).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np

from stages.common import load_npz, run_cli, save_npz

PREPARED_DIR = Path("data/prepared")
FEATURES_DIR = Path("data/features")
PIXEL_SCALE = 255.0  # the article divides by 255


def to_features(images: np.ndarray, scale: float = PIXEL_SCALE) -> np.ndarray:
    """uint8 images (m, size, size, 3) -> float32 (m, size*size*3), each pixel value divided by
    `scale` (255, as in the article; predict passes the value stored with the weights).

    Flattening is row-major (row, column, channel), the order the article's reshape used.
    """
    images = np.asarray(images)
    X = images.reshape(images.shape[0], -1).astype(np.float32)
    X /= np.float32(scale)  # in place: one float32 matrix in memory, not two
    return X


def flatten_normalize(in_dir: Path = PREPARED_DIR, out_dir: Path = FEATURES_DIR) -> dict[str, tuple[int, int]]:
    """Run the stage on train and valid; return the feature matrix shape of each split."""
    shapes = {}
    for split in ("train", "valid"):
        data = load_npz(Path(in_dir) / f"{split}.npz", ("X", "y", "names", "draft"))
        X = to_features(data["X"])
        save_npz(
            Path(out_dir) / f"{split}.npz",
            X=X,
            y=data["y"],
            names=data["names"],
            image_size=np.int64(data["X"].shape[1]),
            draft=data["draft"],
        )
        shapes[split] = X.shape
    return shapes


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stages.flatten_normalize",
        description="Flatten data/prepared/{train,valid}.npz to one row of size*size*3 features per image, "
        "scaled to [0, 1] (divided by 255), into data/features/{train,valid}.npz (float32). No parameters.",
    )
    parser.parse_args(argv)
    shapes = flatten_normalize()
    print("flatten_normalize: " + ", ".join(f"{split} {shape[0]} x {shape[1]}" for split, shape in shapes.items()))


if __name__ == "__main__":
    run_cli(main)
