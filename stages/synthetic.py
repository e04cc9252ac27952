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
  independently of the class. See ``_CAT_*`` / ``_DOG_*`` tables below.
  Measured by the calibration done when this generator was written, on
  ``n_per_class=1000`` (64x64 bilinear full decode, /255, its own stratified
  80/20 split, seeds 0 and 1; the pipeline's own split and draft decoding
  give 71.5 % for the article's recipe, see README): logistic regression with cross-entropy and Adam
  (lr 1e-3, L2 0.01, 200 full-batch epochs) 73.5 % / 74.0 % validation
  accuracy; the article's recipe (zeros, MSE, exact gradient, lr 0.003,
  5000 epochs) 73.75 % / 73.75 %; mean colour alone (3 features) 60.3 % /
  58.5 %. With the scene cue removed the animal alone still gives ~70 %.

The public API is :func:`synthetic_photo` (pure, returns a PIL image) and
:func:`write_synthetic_dataset` (I/O: writes the JPEG files atomically).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw
from tqdm import tqdm

from stages.common import CLASS_NAMES, LABELS, atomic_path

__all__ = ["synthetic_photo", "write_synthetic_dataset", "CAT", "DOG"]

CAT = LABELS["cat"]
"""Label of the cat class (the positive class)."""
DOG = LABELS["dog"]
"""Label of the dog class."""

# --------------------------------------------------------------------------
# Size distribution (identical for both classes)
# --------------------------------------------------------------------------
_P_TINY = 0.01  # long side 32..63 px (both sides under 64)
_P_LARGE = 0.01  # long side 900..1050 px
_P_LONG_500 = 0.6  # of the normal images: long side exactly 500 (Kaggle-like)
_P_PORTRAIT = 0.3
_P_SQUARE = 0.05

# --------------------------------------------------------------------------
# Class-conditional appearance tables (overlapping on purpose)
# --------------------------------------------------------------------------
# Coat base colours (RGB) and per-class weights. Every colour is possible for
# both classes; only the frequencies differ.
_COATS = np.array(
    [
        (128, 128, 130),  # grey
        (205, 125, 60),  # ginger / orange
        (32, 30, 30),  # black
        (232, 230, 224),  # white
        (118, 92, 68),  # brown tabby
        (226, 205, 165),  # cream
        (212, 160, 85),  # golden
        (110, 70, 40),  # chocolate brown
        (185, 140, 95),  # tan
    ],
    dtype=np.float64,
)
_CAT_COAT_W = np.array([0.24, 0.18, 0.14, 0.08, 0.20, 0.06, 0.03, 0.03, 0.04])
_DOG_COAT_W = np.array([0.06, 0.04, 0.12, 0.10, 0.06, 0.10, 0.20, 0.16, 0.16])

# Scene types: 0 indoor (wall + floor), 1 outdoor (sky / foliage + grass),
# 2 close-up fabric (blanket, sofa, bed).
_CAT_SCENE_W = np.array([0.50, 0.15, 0.35])
_DOG_SCENE_W = np.array([0.25, 0.60, 0.15])

# Relative figure size (fraction of the image short side) ranges.
_CAT_SCALE = (0.30, 0.56)
_DOG_SCALE = (0.40, 0.72)

_WALLS = np.array(
    [(225, 215, 195), (240, 238, 232), (160, 170, 185), (150, 110, 75),
     (200, 190, 160), (120, 125, 120), (210, 180, 170), (90, 80, 70)],
    dtype=np.float64,
)
_FLOORS = np.array(
    [(140, 100, 65), (180, 150, 110), (90, 85, 80), (200, 195, 185),
     (110, 60, 50), (60, 70, 90), (160, 160, 150)],
    dtype=np.float64,
)
_SKIES = np.array(
    [(150, 190, 230), (200, 215, 230), (70, 110, 60), (110, 140, 80),
     (180, 180, 175), (120, 150, 190)],
    dtype=np.float64,
)
_GROUNDS = np.array(
    [(80, 130, 50), (110, 150, 60), (60, 100, 45), (150, 130, 90),
     (130, 125, 115), (95, 120, 70)],
    dtype=np.float64,
)
_FABRICS = np.array(
    [(170, 40, 45), (60, 80, 150), (200, 200, 205), (120, 100, 80),
     (90, 130, 110), (210, 170, 120), (70, 60, 75), (230, 225, 215)],
    dtype=np.float64,
)
_EYES = np.array(
    [(110, 170, 60), (200, 170, 40), (90, 150, 190), (150, 100, 40), (40, 30, 20)],
    dtype=np.float64,
)
_CAT_EYE_W = np.array([0.35, 0.35, 0.15, 0.10, 0.05])
_DOG_EYE_W = np.array([0.03, 0.05, 0.07, 0.40, 0.45])


# --------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------
def _check_int(name: str, value: object, low: int, high: int | None, allowed: str) -> int:
    """Return ``value`` as int if it is an int in ``[low, high]``, else raise ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be {allowed}, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def _check_label(label: object) -> int:
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) or int(label) not in (CAT, DOG):
        raise ValueError(f"label must be 1 (cat) or 0 (dog), got {label!r}")
    return int(label)


# --------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------
def _sample_size(rng: np.random.Generator) -> tuple[int, int]:
    """Draw an image size ``(width, height)`` from the class-independent distribution."""
    u = rng.random()
    if u < _P_TINY:
        long_side = int(rng.integers(32, 64))
    elif u < _P_TINY + _P_LARGE:
        long_side = int(rng.integers(900, 1051))
    elif rng.random() < _P_LONG_500:
        long_side = 500
    else:
        long_side = int(rng.integers(300, 500))
    v = rng.random()
    if v < _P_SQUARE:
        ratio = 1.0
    elif rng.random() < 0.5:
        ratio = 0.748  # the ubiquitous 500x374
    else:
        ratio = rng.uniform(0.55, 0.95)
    short_side = max(8, int(round(long_side * ratio)))
    if rng.random() < _P_PORTRAIT / (1.0 - _P_SQUARE) and ratio != 1.0:
        return short_side, long_side
    return long_side, short_side


def _jitter(rng: np.random.Generator, base: np.ndarray, amount: float) -> np.ndarray:
    """Return ``base`` (shape ``(3,)``) plus uniform jitter, clipped to [0, 255]."""
    return np.clip(base + rng.uniform(-amount, amount, 3), 0, 255)


def _rgb(c: np.ndarray) -> tuple[int, int, int]:
    return (int(c[0]), int(c[1]), int(c[2]))


def _vertical_gradient(h: int, w: int, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Float32 array of shape ``(h, w, 3)`` blending colour ``top`` into ``bottom`` (shape ``(3,)``)."""
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    col = (1.0 - t) * top.astype(np.float32) + t * bottom.astype(np.float32)
    return np.broadcast_to(col, (h, w, 3)).copy()


def _low_freq_field(rng: np.random.Generator, h: int, w: int, cells: int, amp: float) -> np.ndarray:
    """Smooth random field of shape ``(h, w, 1)``, values roughly in ``[-amp, amp]``."""
    gh = max(2, cells)
    gw = max(2, int(round(cells * w / max(h, 1))))
    small = rng.uniform(-amp, amp, (gh, gw)).astype(np.float32)
    img = Image.fromarray(small, mode="F").resize((w, h), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32)[:, :, None]


def _background(rng: np.random.Generator, scene: int, w: int, h: int) -> Image.Image:
    """Paint the background of a ``w`` x ``h`` canvas; returns an RGB image.

    The smooth parts are computed as float arrays of shape ``(h / 4, w / 4, 3)``
    and upscaled (cheap, and backgrounds are out of focus anyway).
    """
    ch, cw = max(2, -(-h // 4)), max(2, -(-w // 4))
    if scene == 0:  # indoor: wall gradient above a floor
        wall = _jitter(rng, _WALLS[rng.integers(len(_WALLS))], 30)
        floor = _jitter(rng, _FLOORS[rng.integers(len(_FLOORS))], 30)
        horizon = int(ch * rng.uniform(0.45, 0.85))
        bg = _vertical_gradient(ch, cw, wall * rng.uniform(0.8, 1.1), wall * rng.uniform(0.7, 1.0))
        bg[horizon:] = _vertical_gradient(ch - horizon, cw, floor * 0.9, floor * 1.05)
        bg += _low_freq_field(rng, ch, cw, 3, 18)
    elif scene == 1:  # outdoor: sky / foliage above grass / path
        sky = _jitter(rng, _SKIES[rng.integers(len(_SKIES))], 25)
        ground = _jitter(rng, _GROUNDS[rng.integers(len(_GROUNDS))], 25)
        horizon = int(ch * rng.uniform(0.25, 0.7))
        bg = _vertical_gradient(ch, cw, sky * 1.05, sky * 0.9)
        bg[horizon:] = _vertical_gradient(ch - horizon, cw, ground * 0.9, ground * 1.1)
        bg += _low_freq_field(rng, ch, cw, 8, 30)
    else:  # close-up fabric: one colour with folds
        fab = _jitter(rng, _FABRICS[rng.integers(len(_FABRICS))], 30)
        bg = _vertical_gradient(ch, cw, fab * rng.uniform(0.8, 1.1), fab * rng.uniform(0.8, 1.1))
        bg += _low_freq_field(rng, ch, cw, 5, 35)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), mode="RGB").resize((w, h), Image.BILINEAR)
    if scene == 2 and rng.random() < 0.4:  # striped fabric
        period = rng.uniform(5, 16)
        shade = _rgb(np.asarray(fab) * rng.uniform(0.55, 0.85))
        draw = ImageDraw.Draw(img)
        lw = max(1, int(period * 0.35))
        for x in np.arange(rng.uniform(0, period), w, period):
            draw.line([(float(x), 0), (float(x), h)], fill=shade, width=lw)
    return img


def _camera(rng: np.random.Generator, img: Image.Image) -> Image.Image:
    """Exposure, white balance and sensor noise, applied to an RGB image of size ``(w, h)``."""
    gain = rng.uniform(0.8, 1.15) * rng.uniform(0.9, 1.1, 3)
    offset = rng.uniform(-20, 20)
    ramp = np.arange(256, dtype=np.float64)
    lut = np.clip(np.round(ramp[None, :] * gain[:, None] + offset), 0, 255).astype(np.uint8)
    img = img.point(lut.reshape(-1).tolist())
    sigma = rng.uniform(2.0, 9.0)
    w, h = img.size
    noise = rng.standard_normal((h, w), dtype=np.float32) * np.float32(sigma) + np.float32(128.5)
    nimg = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8), mode="L")
    return ImageChops.add(img, Image.merge("RGB", (nimg, nimg, nimg)), 1.0, -128)


def _clutter(rng: np.random.Generator, draw: ImageDraw.ImageDraw, w: int, h: int) -> None:
    """Random furniture / plants / toys: class-independent distractors."""
    for _ in range(int(rng.integers(0, 3))):
        x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
        x1, y1 = x0 + rng.uniform(0.05, 0.35) * w, y0 + rng.uniform(0.05, 0.35) * h
        col = _rgb(rng.uniform(20, 240, 3))
        if rng.random() < 0.5:
            draw.rectangle([x0, y0, x1, y1], fill=col)
        else:
            draw.ellipse([x0, y0, x1, y1], fill=col)


def _draw_animal(rng: np.random.Generator, draw: ImageDraw.ImageDraw, label: int, w: int, h: int) -> None:
    """Draw a cat (label 1) or a dog (label 0) on ``draw`` (canvas ``w`` x ``h``)."""
    is_cat = label == CAT
    coat_w = _CAT_COAT_W if is_cat else _DOG_COAT_W
    coat = _jitter(rng, _COATS[rng.choice(len(_COATS), p=coat_w / coat_w.sum())], 28)
    dark = coat * rng.uniform(0.45, 0.7)
    light = np.clip(coat + (255 - coat) * rng.uniform(0.3, 0.6), 0, 255)

    s_lo, s_hi = _CAT_SCALE if is_cat else _DOG_SCALE
    size = rng.uniform(s_lo, s_hi) * min(w, h)  # head+body height unit
    cx = rng.uniform(0.32, 0.68) * w
    cy = rng.uniform(0.38, 0.62) * h

    head_r = size * (0.24 if is_cat else 0.27) * rng.uniform(0.85, 1.15)
    head_w = head_r * (1.0 if is_cat else rng.uniform(0.85, 1.0))
    head_h = head_r * (rng.uniform(0.88, 1.0) if is_cat else rng.uniform(1.05, 1.3))
    hx, hy = cx + rng.uniform(-0.1, 0.1) * size, cy - size * 0.2

    # Body (sitting / lying blob) and tail, behind the head.
    bw = size * rng.uniform(0.35, 0.6) * (0.9 if is_cat else 1.1)
    bh = size * rng.uniform(0.4, 0.65)
    by = hy + head_h * 0.6 + bh * 0.8
    bx = hx + rng.uniform(-0.25, 0.25) * size
    tail_dir = 1 if rng.random() < 0.5 else -1
    tail = [(bx + tail_dir * bw * 0.8, by + bh * 0.6),
            (bx + tail_dir * bw * (1.4 if is_cat else 1.1), by - bh * (0.6 if is_cat else 0.1))]
    draw.line(tail, fill=_rgb(coat), width=max(1, int(size * (0.06 if is_cat else 0.09))))
    draw.ellipse([bx - bw, by - bh, bx + bw, by + bh], fill=_rgb(coat))
    if rng.random() < 0.5:  # lighter chest
        draw.ellipse([bx - bw * 0.45, by - bh * 0.8, bx + bw * 0.45, by + bh * 0.2], fill=_rgb(light))

    # Ears: pointy triangles (cat) vs floppy drooping lobes (dog).
    for side in (-1, 1):
        if is_cat:
            base_in = hx + side * head_w * 0.15
            base_out = hx + side * head_w * 0.95
            base_y = hy - head_h * 0.45
            tip = (hx + side * head_w * rng.uniform(0.6, 0.85), hy - head_h * rng.uniform(1.35, 1.7))
            draw.polygon([(base_in, base_y - head_h * 0.3), (base_out, base_y), tip], fill=_rgb(coat))
            inner = [(base_in + side * head_w * 0.15, base_y - head_h * 0.25),
                     (base_out - side * head_w * 0.12, base_y - head_h * 0.05),
                     (tip[0], tip[1] + head_h * 0.3)]
            draw.polygon(inner, fill=(225, 160, 165))
        else:
            ex = hx + side * head_w * 0.9
            ear_w = head_w * rng.uniform(0.28, 0.42)
            ear_h = head_h * rng.uniform(0.8, 1.2)
            top = hy - head_h * 0.75
            draw.ellipse([ex - ear_w, top, ex + ear_w, top + ear_h * 1.6],
                         fill=_rgb(dark if rng.random() < 0.7 else coat))

    # Head.
    draw.ellipse([hx - head_w, hy - head_h, hx + head_w, hy + head_h], fill=_rgb(coat))
    if is_cat and rng.random() < 0.5:  # tabby stripes on the forehead
        for k in (-1, 0, 1):
            x = hx + k * head_w * 0.25
            draw.line([(x, hy - head_h * 0.9), (x, hy - head_h * 0.45)], fill=_rgb(dark),
                      width=max(1, int(head_w * 0.08)))

    # Muzzle: small (cat) vs long lighter snout (dog).
    if is_cat:
        mw, mh, my = head_w * 0.35, head_h * 0.25, hy + head_h * 0.35
    else:
        mw, mh, my = head_w * 0.5, head_h * 0.5, hy + head_h * 0.5
    draw.ellipse([hx - mw, my - mh, hx + mw, my + mh], fill=_rgb(light if rng.random() < 0.7 else coat))

    # Eyes.
    eye_w = _CAT_EYE_W if is_cat else _DOG_EYE_W
    eye = _rgb(_jitter(rng, _EYES[rng.choice(len(_EYES), p=eye_w / eye_w.sum())], 20))
    er = head_w * (0.17 if is_cat else 0.12)
    ey = hy - head_h * (0.05 if is_cat else 0.15)
    for side in (-1, 1):
        ex = hx + side * head_w * 0.42
        draw.ellipse([ex - er, ey - er * (0.75 if is_cat else 1.0), ex + er, ey + er * (0.75 if is_cat else 1.0)],
                     fill=eye)
        pw = er * (0.3 if is_cat else 0.6)
        draw.ellipse([ex - pw, ey - er * 0.7, ex + pw, ey + er * 0.7], fill=(10, 10, 10))

    # Nose (+ whiskers for cats, tongue for some dogs).
    nr = head_w * (0.09 if is_cat else 0.16)
    ny = my - mh * (0.4 if is_cat else 0.6)
    nose_col = (215, 130, 140) if (is_cat and rng.random() < 0.6) else (25, 20, 20)
    draw.polygon([(hx - nr, ny - nr * 0.6), (hx + nr, ny - nr * 0.6), (hx, ny + nr * 0.6)], fill=nose_col)
    if is_cat and rng.random() < 0.7:
        wc = (235, 235, 235) if coat.mean() < 150 else (60, 55, 50)
        for side in (-1, 1):
            for dy in (-0.08, 0.0, 0.08):
                draw.line([(hx + side * mw * 0.6, my), (hx + side * head_w * 1.4, my + (dy - 0.04) * head_h * 2)],
                          fill=wc, width=1)
    if not is_cat and rng.random() < 0.35:
        draw.ellipse([hx - mw * 0.3, my + mh * 0.5, hx + mw * 0.3, my + mh * 1.3], fill=(220, 100, 120))


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
    index = _check_int("index", index, 0, None, "a non-negative int")
    seed = _check_int("seed", seed, 0, None, "a non-negative int")
    rng = np.random.default_rng([seed, label, index])

    width, height = _sample_size(rng)
    # Paint at a reduced working resolution; upscaling later acts as blur.
    blur = rng.uniform(1.3, 2.6)
    w = max(8, int(round(width / blur)))
    h = max(8, int(round(height / blur)))

    scene_w = _CAT_SCENE_W if label == CAT else _DOG_SCENE_W
    scene = int(rng.choice(3, p=scene_w / scene_w.sum()))
    img = _background(rng, scene, w, h)
    draw = ImageDraw.Draw(img)
    _clutter(rng, draw, w, h)
    _draw_animal(rng, draw, label, w, h)
    small = _camera(rng, img)
    return small.resize((width, height), Image.BILINEAR)


# --------------------------------------------------------------------------
# I/O
# --------------------------------------------------------------------------
def _encode_jpeg(image: Image.Image, quality: int) -> bytes:
    """Encode with fixed settings so the bytes are reproducible for a given Pillow."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False, subsampling=2)
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
    n_per_class = _check_int("n_per_class", n_per_class, 1, None, "a positive int (>= 1)")
    seed = _check_int("seed", seed, 0, None, "a non-negative int (>= 0)")
    jpeg_quality = _check_int("jpeg_quality", jpeg_quality, 1, 95, "an int in 1..95")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    jobs = [(label, i) for label in (CAT, DOG) for i in range(n_per_class)]
    written: list[Path] = []
    for label, i in tqdm(jobs, desc="ingest: synthetic", unit="img", disable=not progress):
        path = out_dir / f"{CLASS_NAMES[label]}.{i}.jpg"
        with atomic_path(path) as tmp:
            tmp.write_bytes(_encode_jpeg(synthetic_photo(label, i, seed), jpeg_quality))
        written.append(path)
    return sorted(written)
