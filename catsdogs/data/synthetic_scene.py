"""Painting the scene of a synthetic photo (catsdogs/data/synthetic.py): its size, background, clutter and camera.

Nothing here depends on the class: every function draws from the generator `rng` it is given, so a
photo is a pure function of its seed (see synthetic.synthetic_photo).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops, ImageDraw

# --------------------------------------------------------------------------
# Size distribution (identical for both classes)
# --------------------------------------------------------------------------
_P_TINY = 0.01  # long side 32..63 px (both sides under 64)
_P_LARGE = 0.01  # long side 900..1050 px
_P_LONG_500 = 0.6  # of the normal images: long side exactly 500 (Kaggle-like)
_P_PORTRAIT = 0.3
_P_SQUARE = 0.05

# --------------------------------------------------------------------------
# Scene colours (RGB); the scene type itself is drawn per class in synthetic.py
# --------------------------------------------------------------------------
_WALLS = np.array(
    [
        (225, 215, 195),
        (240, 238, 232),
        (160, 170, 185),
        (150, 110, 75),
        (200, 190, 160),
        (120, 125, 120),
        (210, 180, 170),
        (90, 80, 70),
    ],
    dtype=np.float64,
)
_FLOORS = np.array(
    [(140, 100, 65), (180, 150, 110), (90, 85, 80), (200, 195, 185), (110, 60, 50), (60, 70, 90), (160, 160, 150)],
    dtype=np.float64,
)
_SKIES = np.array(
    [(150, 190, 230), (200, 215, 230), (70, 110, 60), (110, 140, 80), (180, 180, 175), (120, 150, 190)],
    dtype=np.float64,
)
_GROUNDS = np.array(
    [(80, 130, 50), (110, 150, 60), (60, 100, 45), (150, 130, 90), (130, 125, 115), (95, 120, 70)],
    dtype=np.float64,
)
_FABRICS = np.array(
    [
        (170, 40, 45),
        (60, 80, 150),
        (200, 200, 205),
        (120, 100, 80),
        (90, 130, 110),
        (210, 170, 120),
        (70, 60, 75),
        (230, 225, 215),
    ],
    dtype=np.float64,
)


def sample_size(rng: np.random.Generator) -> tuple[int, int]:
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


def jitter(rng: np.random.Generator, base: np.ndarray, amount: float) -> np.ndarray:
    """Return ``base`` (shape ``(3,)``) plus uniform jitter, clipped to [0, 255]."""
    return np.clip(base + rng.uniform(-amount, amount, 3), 0, 255)


def rgb(c: np.ndarray) -> tuple[int, int, int]:
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
    img = Image.fromarray(small, mode="F").resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)[:, :, None]


def background(rng: np.random.Generator, scene: int, w: int, h: int) -> Image.Image:
    """Paint the background of a ``w`` x ``h`` canvas; returns an RGB image.

    The smooth parts are computed as float arrays of shape ``(h / 4, w / 4, 3)``
    and upscaled (cheap, and backgrounds are out of focus anyway).
    """
    ch, cw = max(2, -(-h // 4)), max(2, -(-w // 4))
    if scene == 0:  # indoor: wall gradient above a floor
        wall = jitter(rng, _WALLS[rng.integers(len(_WALLS))], 30)
        floor = jitter(rng, _FLOORS[rng.integers(len(_FLOORS))], 30)
        horizon = int(ch * rng.uniform(0.45, 0.85))
        bg = _vertical_gradient(ch, cw, wall * rng.uniform(0.8, 1.1), wall * rng.uniform(0.7, 1.0))
        bg[horizon:] = _vertical_gradient(ch - horizon, cw, floor * 0.9, floor * 1.05)
        bg += _low_freq_field(rng, ch, cw, 3, 18)
    elif scene == 1:  # outdoor: sky / foliage above grass / path
        sky = jitter(rng, _SKIES[rng.integers(len(_SKIES))], 25)
        ground = jitter(rng, _GROUNDS[rng.integers(len(_GROUNDS))], 25)
        horizon = int(ch * rng.uniform(0.25, 0.7))
        bg = _vertical_gradient(ch, cw, sky * 1.05, sky * 0.9)
        bg[horizon:] = _vertical_gradient(ch - horizon, cw, ground * 0.9, ground * 1.1)
        bg += _low_freq_field(rng, ch, cw, 8, 30)
    else:  # close-up fabric: one colour with folds
        fab = jitter(rng, _FABRICS[rng.integers(len(_FABRICS))], 30)
        bg = _vertical_gradient(ch, cw, fab * rng.uniform(0.8, 1.1), fab * rng.uniform(0.8, 1.1))
        bg += _low_freq_field(rng, ch, cw, 5, 35)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), mode="RGB").resize((w, h), Image.Resampling.BILINEAR)
    if scene == 2 and rng.random() < 0.4:  # striped fabric
        period = rng.uniform(5, 16)
        shade = rgb(np.asarray(fab) * rng.uniform(0.55, 0.85))
        draw = ImageDraw.Draw(img)
        lw = max(1, int(period * 0.35))
        for x in np.arange(rng.uniform(0, period), w, period):
            draw.line([(float(x), 0), (float(x), h)], fill=shade, width=lw)
    return img


def camera(rng: np.random.Generator, img: Image.Image) -> Image.Image:
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


def clutter(rng: np.random.Generator, draw: ImageDraw.ImageDraw, w: int, h: int) -> None:
    """Random furniture / plants / toys: class-independent distractors."""
    for _ in range(int(rng.integers(0, 3))):
        x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
        x1, y1 = x0 + rng.uniform(0.05, 0.35) * w, y0 + rng.uniform(0.05, 0.35) * h
        col = rgb(rng.uniform(20, 240, 3))
        if rng.random() < 0.5:
            draw.rectangle([x0, y0, x1, y1], fill=col)
        else:
            draw.ellipse([x0, y0, x1, y1], fill=col)
