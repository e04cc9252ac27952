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
    field is missing, the record is malformed, W does not fit the image size, or a weight is not finite."""
    fields = tuple(field.name for field in dataclasses.fields(Preprocessing))
    arrays = load_npz(path, ("W", "b", *fields))
    preprocessing = Preprocessing.from_mapping(arrays, str(path))
    W, b = arrays["W"], arrays["b"]
    n = preprocessing.image_size**2 * 3
    if W.shape != (n,) or b.shape != ():
        raise DataError(
            f"{path}: W of shape {W.shape} and b of shape {b.shape}; the image size "
            f"{preprocessing.image_size} needs W of shape ({n},) and one b"
        )
    check_finite(W, b, str(path))
    return Model(W, b[()], preprocessing)  # type: ignore[arg-type]
