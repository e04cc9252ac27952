"""The model file (models/weights.npz): the neuron's weights W (n,) float32 and b, and the preprocessing
record (images.Preprocessing) a new photo needs. train writes it; evaluate and predict read it.

Weights that are not finite numbers (a run that diverged, a hand-made file) are refused both ways: no
stage writes them, and no stage scores with them (NaN scores would give NaN metrics and meaningless
labels while exiting 0).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

import numpy as np

from catsdogs.data.images import Preprocessing
from catsdogs.errors import DataError
from catsdogs.pipeline.npz_files import load_npz, save_npz

NPY_HEADER_BYTES = 4096  # an .npy member's header, at most (numpy writes 128 bytes)
MAX_SCORE = 1e30  # bound on |x W + b| a model may reach: float32 (max 3.4e38) stays finite


class Model(NamedTuple):
    W: np.ndarray  # (n,) float32, n = image_size * image_size * 3
    b: np.floating  # float32 as train writes it
    preprocessing: Preprocessing


def check_finite(W: np.ndarray, b: np.floating | np.ndarray, source: str) -> None:
    """DataError naming `source` when W (n,) or b holds a NaN or an infinity."""
    bad = int(np.count_nonzero(~np.isfinite(W))) + int(not np.isfinite(b))
    if bad:
        raise DataError(
            f"{source}: {bad} of the {W.size + 1} weights (W and b) are not finite numbers (NaN or infinity): "
            "the training diverged; retrain with a lower train.lr (`dvc repro`)"
        )


def save_model(path: Path | str, W: np.ndarray, b: np.floating, preprocessing: Preprocessing) -> None:
    """Write W (n,), b and the preprocessing record to `path` (.npz, atomic, reproducible)."""
    check_finite(W, b, str(path))
    save_npz(path, W=W, b=b, **preprocessing.arrays())


def load_model(path: Path | str) -> Model:
    """W (n,), b and the preprocessing record of a model file written by save_model; a DataError when a
    field is missing, the record is malformed or out of range (images.Preprocessing.from_mapping), W or b
    is not float32 numbers, W does not fit the image size, a weight is not finite, or the weights are so
    large that a score x W + b could overflow. The record is read and checked first, and W is read only
    if the file says it holds no more than the W of that image size: memory is bounded before
    allocating (a 747 KB file saying image_size 8000 made predict allocate 1.7 GB)."""
    fields = tuple(field.name for field in dataclasses.fields(Preprocessing))
    preprocessing = Preprocessing.from_mapping(load_npz(path, fields), str(path))
    n = preprocessing.image_size**2 * 3
    arrays = load_npz(path, ("W", "b"), max_bytes=4 * n + NPY_HEADER_BYTES)
    W, b = arrays["W"], arrays["b"]
    if W.shape != (n,) or b.shape != ():
        raise DataError(
            f"{path}: W of shape {W.shape} and b of shape {b.shape}; the image size "
            f"{preprocessing.image_size} needs W of shape ({n},) and one b"
        )
    if W.dtype != np.float32 or b.dtype != np.float32:
        raise DataError(f"{path}: W of type {W.dtype} and b of type {b.dtype}; expected float32 numbers")
    check_finite(W, b, str(path))
    # The largest |x W + b| a photo can give (every feature is at most 255 / pixel_scale): finite in float32.
    bound = float(np.abs(W, dtype=np.float64).sum()) * 255 / preprocessing.pixel_scale + abs(float(b))
    if not bound < MAX_SCORE:
        raise DataError(
            f"{path}: weights so large that x W + b could reach {bound:.3g} and overflow "
            f"(at most {MAX_SCORE:.0e} allowed); retrain it (`dvc repro`)"
        )
    return Model(W, b[()], preprocessing)  # type: ignore[arg-type]
