"""Deterministic synthetic "cats vs dogs" photo generator.

Stand-in for the Kaggle *Dogs vs. Cats* training set when the real data is not
available (offline runs, CI, tests). It writes crude but photo-like JPEG files
in the Kaggle layout, ``cat.0.jpg ... cat.{n-1}.jpg`` and
``dog.0.jpg ... dog.{n-1}.jpg``; the label convention of the project is
cat = 1, dog = 0.

Design
------
* Every image is a pure function of ``(label, index, seed)``: its random
  numbers come from ``np.random.default_rng([seed, label, index])``, so an
  image does not depend on which other images are generated or in what order,
  and no global random state is touched.
* Image size is drawn from the same distribution for both classes (mostly a
  long side of 300-500 px, landscape and portrait, ~1 % tiny images under
  64 px, ~1 % large ones near 1000 px), so size is no giveaway of the class.
* The scene is painted at a reduced working resolution with numpy and
  ``PIL.ImageDraw`` (background gradient and texture, clutter, the animal,
  lighting / white-balance changes, sensor noise) and then upscaled to the
  final size with bilinear interpolation, which doubles as lens blur. This
  keeps generation at a few milliseconds per image, JPEG encoding included.
* Difficulty is calibrated so that a logistic regression on 64x64 raw pixels
  reaches roughly 70-80 % validation accuracy: the class cues (scene type,
  coat colour, head / ear / snout shape, figure size) are all probabilistic
  and overlapping, and position, scale, lighting and colour cast vary
  independently of the class. See the ``_CAT_*`` / ``_DOG_*`` tables here
  and in catsdogs/data/synthetic_animal.py; the scene is painted by
  catsdogs/data/synthetic_scene.py.
  Measured by the calibration done when this generator was written, on
  ``n_per_class=1000`` (64x64 bilinear full decode, /255, its own stratified
  80/20 split, seeds 0 and 1; the pipeline's own split and draft decoding
  give 71.5 % for the article's recipe, see README): logistic regression with cross-entropy and Adam
  (lr 1e-3, L2 0.01, 200 full-batch epochs) 73.5 % / 74.0 % validation
  accuracy; the article's recipe (zeros, MSE, exact gradient, lr 0.003,
  5000 epochs) 73.75 % / 73.75 %; mean colour alone (3 features) 60.3 % /
  58.5 %. With the scene cue removed the animal alone still gives ~70 %.

The public API is :func:`synthetic_photo` (pure, returns a PIL image),
:func:`photo_jpeg` (its JPEG bytes) and :func:`write_synthetic_dataset` (I/O:
writes the JPEG files atomically).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from catsdogs.data.images import kaggle_file_name
from catsdogs.data.labels import LABELS
from catsdogs.data.synthetic_animal import draw_animal
from catsdogs.data.synthetic_scene import background, camera, clutter, sample_size
from catsdogs.pipeline.atomic_files import atomic_path
from catsdogs.pipeline.params import Number

__all__ = ["synthetic_photo", "photo_jpeg", "write_synthetic_dataset", "CAT", "DOG"]

CAT = LABELS["cat"]
"""Label of the cat class (the positive class)."""
DOG = LABELS["dog"]
"""Label of the dog class."""

# Scene types: 0 indoor (wall + floor), 1 outdoor (sky / foliage + grass),
# 2 close-up fabric (blanket, sofa, bed).
_CAT_SCENE_W = np.array([0.50, 0.15, 0.35])
_DOG_SCENE_W = np.array([0.25, 0.60, 0.15])


# --------------------------------------------------------------------------
# Argument validation (the same rules as params.yaml's values)
# --------------------------------------------------------------------------
NON_NEGATIVE = Number(low=0, integer=True)
POSITIVE = Number(low=1, integer=True)
JPEG_QUALITY = Number(low=1, high=95, integer=True)


def _check_label(label: object) -> int:
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) or int(label) not in (CAT, DOG):
        raise ValueError(f"label must be 1 (cat) or 0 (dog), got {label!r}")
    return int(label)


def synthetic_photo(label: int, index: int, seed: int) -> Image.Image:
    """Generate one synthetic RGB "photo" of a cat or a dog.

    Parameters
    ----------
    label : int
        1 for a cat, 0 for a dog (the project's label convention).
    index : int
        Non-negative image number within its class (``cat.<index>.jpg``).
    seed : int
        Non-negative dataset seed.

    Returns
    -------
    PIL.Image.Image
        Mode ``"RGB"`` image of size ``(width, height)``; as a numpy array it
        has shape ``(height, width, 3)`` and dtype uint8. Sizes follow a
        class-independent distribution: mostly a long side of 300-500 px
        (landscape or portrait), about 1 % under 64 px on both sides and
        about 1 % with a long side of 900-1050 px.

    Notes
    -----
    Pure and deterministic: all randomness comes from
    ``np.random.default_rng([seed, label, index])``, so the same
    ``(label, index, seed)`` always gives the same pixels, independently of
    any other image generated before or after.

    Raises
    ------
    ValueError
        If ``label`` is not 0/1 or ``index`` / ``seed`` is not a non-negative int.
    """
    label = _check_label(label)
    index = int(NON_NEGATIVE.check("index", index, "synthetic_photo"))
    seed = int(NON_NEGATIVE.check("seed", seed, "synthetic_photo"))
    rng = np.random.default_rng([seed, label, index])

    width, height = sample_size(rng)
    # Paint at a reduced working resolution; upscaling later acts as blur.
    blur = rng.uniform(1.3, 2.6)
    w = max(8, int(round(width / blur)))
    h = max(8, int(round(height / blur)))

    scene_w = _CAT_SCENE_W if label == CAT else _DOG_SCENE_W
    scene = int(rng.choice(3, p=scene_w / scene_w.sum()))
    img = background(rng, scene, w, h)
    draw = ImageDraw.Draw(img)
    clutter(rng, draw, w, h)
    draw_animal(rng, draw, label, w, h)
    small = camera(rng, img)
    return small.resize((width, height), Image.Resampling.BILINEAR)


# --------------------------------------------------------------------------
# I/O
# --------------------------------------------------------------------------
def photo_jpeg(label: int, index: int, seed: int, quality: int = 90) -> bytes:
    """JPEG bytes of ``synthetic_photo(label, index, seed)``: baseline, 4:2:0 subsampling, no
    optimisation, so the bytes are reproducible for a given Pillow. The one encoder of synthetic
    photos (the dataset here, and the benchmarks' sets and archives)."""
    quality = int(JPEG_QUALITY.check("jpeg_quality", quality, "photo_jpeg"))
    buf = io.BytesIO()
    synthetic_photo(label, index, seed).save(
        buf, format="JPEG", quality=quality, optimize=False, progressive=False, subsampling=2
    )
    return buf.getvalue()


def write_synthetic_dataset(
    out_dir: Path,
    n_per_class: int,
    seed: int,
    jpeg_quality: int = 90,
    progress: bool = True,
) -> list[Path]:
    """Write ``cat.N.jpg`` / ``dog.N.jpg`` for N in ``range(n_per_class)`` into ``out_dir``.

    Parameters
    ----------
    out_dir : pathlib.Path
        Target directory; created (with parents) if missing. Existing files
        with the same names are replaced atomically; other files are left alone.
    n_per_class : int
        Number of images per class (positive); ``2 * n_per_class`` files are written.
    seed : int
        Non-negative dataset seed; see :func:`synthetic_photo`.
    jpeg_quality : int, default 90
        JPEG quality, 1..95 (baseline, 4:2:0 subsampling, no optimisation).
    progress : bool, default True
        Show a tqdm progress bar (``desc="ingest: synthetic"``).

    Returns
    -------
    list of pathlib.Path
        The ``2 * n_per_class`` paths written, sorted.

    Raises
    ------
    ValueError
        If an argument is out of range (before anything is written).
    """
    n_per_class = int(POSITIVE.check("n_per_class", n_per_class, "write_synthetic_dataset"))
    seed = int(NON_NEGATIVE.check("seed", seed, "write_synthetic_dataset"))
    jpeg_quality = int(JPEG_QUALITY.check("jpeg_quality", jpeg_quality, "write_synthetic_dataset"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    jobs = [(label, i) for label in (CAT, DOG) for i in range(n_per_class)]
    written: list[Path] = []
    for label, i in tqdm(jobs, desc="ingest: synthetic", unit="img", disable=not progress):
        path = out_dir / kaggle_file_name(label, i)
        with atomic_path(path) as tmp:
            tmp.write_bytes(photo_jpeg(label, i, seed, jpeg_quality))
        written.append(path)
    return sorted(written)
