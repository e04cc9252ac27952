"""Benchmark 1: decode and resize JPEGs to 64 x 64 RGB, images per second.

Baseline: the straightforward way, in one process: Image.open, convert("RGB"), bilinear resize to
64 x 64. Ours: stages.resize_split.decode_all (JPEG draft decoding, `jobs` processes), with 1 process
and with all cores; also without draft, to show where the gain comes from. Same files for all: the
embedded default set (2,000 images) and a generated 25,000-image Kaggle-layout set (bench/images.py).
Also reports how much draft decoding changes the pixels, against the full decode.

    python -m bench.decode [--sizes 2000 25000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import table, verdict
from bench.images import kaggle_layout
from catsdogs.pipeline.processes import usable_cores
from stages.resize_split import decode_all

SIZE = 64
SLICES = 5  # large sets: rounds over this many slices
SMALL_SET = 5000  # images; larger sets get one pass in slices


def straightforward(paths: Sequence[Path]) -> np.ndarray:
    """The baseline: X (m, 64, 64, 3) uint8, full decode, one process."""
    X = np.zeros((len(paths), SIZE, SIZE, 3), dtype=np.uint8)
    for row, path in enumerate(paths):
        with Image.open(path) as image:
            X[row] = np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR))
    return X


def pixel_difference(full: np.ndarray, draft: np.ndarray) -> str:
    """How far draft-decoded pixels are from fully decoded ones (uint8 levels, all channels)."""
    diff = np.abs(full.astype(np.int16) - draft.astype(np.int16))
    per_image = diff.reshape(len(diff), -1).mean(axis=1)
    return (
        f"mean {diff.mean():.2f} levels (per image: median {np.median(per_image):.2f}, worst {per_image.max():.2f}), "
        f"99th percentile {np.percentile(diff, 99):.0f}, max {diff.max()}; "
        f"{(diff > 8).mean() * 100:.2f} % of values differ by more than 8 of 255"
    )


def run_one(n_images: int, repeats: int, with_full: bool) -> tuple[list[list[str]], str]:
    paths = kaggle_layout(n_images)
    for path in paths:  # warm the page cache: measure decoding, not the disk
        path.read_bytes()
    cores = usable_cores()
    methods = {
        "baseline": straightforward,
        "draft1": lambda part: decode_all(part, SIZE, False, draft=True, jobs=1)[0],
        "draftN": lambda part: decode_all(part, SIZE, False, draft=True, jobs=0)[0],
    }
    if with_full:  # resize_split without draft: where the gain comes from
        methods["full1"] = lambda part: decode_all(part, SIZE, False, draft=False, jobs=1)[0]
    # methods take turns on each round, so that a change of load on the shared machine hits them all:
    # small sets, `repeats` rounds over the whole set (median); large sets, SLICES rounds over slices (sum)
    rounds = [paths] * repeats if with_full else [list(part) for part in np.array_split(np.array(paths), SLICES)]
    times: dict[str, list[float]] = {name: [] for name in methods}
    decoded: dict[str, list[np.ndarray]] = {name: [] for name in methods}
    for part in rounds:
        for name, method in methods.items():
            start = time.perf_counter()
            decoded[name].append(method(part))
            times[name].append(time.perf_counter() - start)
    seconds = {name: statistics.median(t) if with_full else sum(t) for name, t in times.items()}
    outputs = {name: out[-1] if with_full else np.concatenate(out) for name, out in decoded.items()}
    rate = {key: n_images / value for key, value in seconds.items()}
    per_core = rate["draft1"] / rate["baseline"]
    scaling = rate["draftN"] / rate["draft1"]
    same = np.array_equal(outputs["draft1"], outputs["draftN"])
    rows = [[f"{n_images:,}", "straightforward, full decode, 1 process", f"{rate['baseline']:.0f}", "1.00x", ""]]
    if with_full:
        rows.append(
            [
                f"{n_images:,}",
                "resize_split draft=false, jobs=1",
                f"{rate['full1']:.0f}",
                f"{rate['full1'] / rate['baseline']:.2f}x",
                "",
            ]
        )
    rows += [
        [
            f"{n_images:,}",
            "resize_split draft=true, jobs=1",
            f"{rate['draft1']:.0f}",
            f"{per_core:.2f}x",
            f"per core >= 2x: {verdict(per_core >= 2)}",
        ],
        [
            f"{n_images:,}",
            f"resize_split draft=true, jobs=0 ({cores} cores)",
            f"{rate['draftN']:.0f}",
            f"{rate['draftN'] / rate['baseline']:.2f}x",
            f"scaling {scaling:.2f}x on {cores} cores "
            f"(near-linear >= {0.8 * cores:.1f}x: {verdict(scaling >= 0.8 * cores)}); output identical to jobs=1: {same}",
        ],
    ]
    note = f"{n_images:,} images, draft vs full decode: {pixel_difference(outputs['baseline'], outputs['draft1'])}."
    return rows, note


def run(sizes: Sequence[int] = (2000, 25000), repeats: int = 3) -> str:
    rows, notes = [], []
    for n_images in sizes:
        small = n_images <= SMALL_SET
        more_rows, note = run_one(n_images, repeats if small else 1, with_full=small)
        rows += more_rows
        notes.append(note)
    return "\n".join(
        [
            "### Decode and resize to 64 x 64 RGB (images per second, page cache warm)",
            "",
            table(["images", "method", "images/s", "vs baseline", "target"], rows),
            "",
            *[f"- {note}" for note in notes],
            f"- Sets up to 5,000 images: median of {repeats} rounds; larger sets: one pass in {SLICES} slices, the methods "
            "taking turns on each slice (without the draft=false row).",
            "- The pixel difference compares with the straightforward full decode (the synthetic JPEGs carry no "
            "EXIF orientation, so that is also resize_split's draft=false output).",
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 25000], help="set sizes (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per method, small sets (default: %(default)s)")
    args = parser.parse_args(argv)
    print(run(args.sizes, args.repeats))


if __name__ == "__main__":
    main()
