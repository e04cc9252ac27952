"""Drawing the animal of a synthetic photo (catsdogs/data/synthetic.py): a cat or a dog, in overlapping styles.

The class cues (coat colour, figure size, ears, head and snout shape, eyes) are all probabilistic and
shared by both classes with different frequencies; see the tables below.
"""

from __future__ import annotations

import numpy as np
from PIL import ImageDraw

from catsdogs.data.labels import LABELS
from catsdogs.data.synthetic_scene import jitter, rgb

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

# Relative figure size (fraction of the image short side) ranges.
_CAT_SCALE = (0.30, 0.56)
_DOG_SCALE = (0.40, 0.72)

_EYES = np.array(
    [(110, 170, 60), (200, 170, 40), (90, 150, 190), (150, 100, 40), (40, 30, 20)],
    dtype=np.float64,
)
_CAT_EYE_W = np.array([0.35, 0.35, 0.15, 0.10, 0.05])
_DOG_EYE_W = np.array([0.03, 0.05, 0.07, 0.40, 0.45])


def draw_animal(rng: np.random.Generator, draw: ImageDraw.ImageDraw, label: int, w: int, h: int) -> None:
    """Draw a cat (label 1) or a dog (label 0) on ``draw`` (canvas ``w`` x ``h``)."""
    is_cat = label == LABELS["cat"]
    coat_w = _CAT_COAT_W if is_cat else _DOG_COAT_W
    coat = jitter(rng, _COATS[rng.choice(len(_COATS), p=coat_w / coat_w.sum())], 28)
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
    tail = [
        (bx + tail_dir * bw * 0.8, by + bh * 0.6),
        (bx + tail_dir * bw * (1.4 if is_cat else 1.1), by - bh * (0.6 if is_cat else 0.1)),
    ]
    draw.line(tail, fill=rgb(coat), width=max(1, int(size * (0.06 if is_cat else 0.09))))
    draw.ellipse([bx - bw, by - bh, bx + bw, by + bh], fill=rgb(coat))
    if rng.random() < 0.5:  # lighter chest
        draw.ellipse([bx - bw * 0.45, by - bh * 0.8, bx + bw * 0.45, by + bh * 0.2], fill=rgb(light))

    # Ears: pointy triangles (cat) vs floppy drooping lobes (dog).
    for side in (-1, 1):
        if is_cat:
            base_in = hx + side * head_w * 0.15
            base_out = hx + side * head_w * 0.95
            base_y = hy - head_h * 0.45
            tip = (hx + side * head_w * rng.uniform(0.6, 0.85), hy - head_h * rng.uniform(1.35, 1.7))
            draw.polygon([(base_in, base_y - head_h * 0.3), (base_out, base_y), tip], fill=rgb(coat))
            inner = [
                (base_in + side * head_w * 0.15, base_y - head_h * 0.25),
                (base_out - side * head_w * 0.12, base_y - head_h * 0.05),
                (tip[0], tip[1] + head_h * 0.3),
            ]
            draw.polygon(inner, fill=(225, 160, 165))
        else:
            ex = hx + side * head_w * 0.9
            ear_w = head_w * rng.uniform(0.28, 0.42)
            ear_h = head_h * rng.uniform(0.8, 1.2)
            top = hy - head_h * 0.75
            draw.ellipse(
                [ex - ear_w, top, ex + ear_w, top + ear_h * 1.6], fill=rgb(dark if rng.random() < 0.7 else coat)
            )

    # Head.
    draw.ellipse([hx - head_w, hy - head_h, hx + head_w, hy + head_h], fill=rgb(coat))
    if is_cat and rng.random() < 0.5:  # tabby stripes on the forehead
        for k in (-1, 0, 1):
            x = hx + k * head_w * 0.25
            draw.line(
                [(x, hy - head_h * 0.9), (x, hy - head_h * 0.45)], fill=rgb(dark), width=max(1, int(head_w * 0.08))
            )

    # Muzzle: small (cat) vs long lighter snout (dog).
    if is_cat:
        mw, mh, my = head_w * 0.35, head_h * 0.25, hy + head_h * 0.35
    else:
        mw, mh, my = head_w * 0.5, head_h * 0.5, hy + head_h * 0.5
    draw.ellipse([hx - mw, my - mh, hx + mw, my + mh], fill=rgb(light if rng.random() < 0.7 else coat))

    # Eyes.
    eye_w = _CAT_EYE_W if is_cat else _DOG_EYE_W
    eye = rgb(jitter(rng, _EYES[rng.choice(len(_EYES), p=eye_w / eye_w.sum())], 20))
    er = head_w * (0.17 if is_cat else 0.12)
    ey = hy - head_h * (0.05 if is_cat else 0.15)
    for side in (-1, 1):
        ex = hx + side * head_w * 0.42
        draw.ellipse(
            [ex - er, ey - er * (0.75 if is_cat else 1.0), ex + er, ey + er * (0.75 if is_cat else 1.0)], fill=eye
        )
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
                draw.line(
                    [(hx + side * mw * 0.6, my), (hx + side * head_w * 1.4, my + (dy - 0.04) * head_h * 2)],
                    fill=wc,
                    width=1,
                )
    if not is_cat and rng.random() < 0.35:
        draw.ellipse([hx - mw * 0.3, my + mh * 0.5, hx + mw * 0.3, my + mh * 1.3], fill=(220, 100, 120))
