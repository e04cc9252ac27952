"""Photo sets for the benchmarks, generated once and kept in bench/.cache/ (gitignored).

`kaggle_layout(n_images)`: a folder of n_images JPEGs named like Kaggle's Dogs vs. Cats train.zip
(cat.N.jpg / dog.N.jpg, half each), drawn by the project's synthetic generator (catsdogs.data.synthetic:
mostly 300-500 px on the long side, ~1 % under 64 px, ~1 % near 1000 px, JPEG quality 90). With
n_images = 2000 and seed 0 it is exactly the embedded default set of `dvc repro`.

    python -m bench.images 25000     # prints the folder
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.common import CACHE_DIR
from catsdogs.data.images import kaggle_file_name
from catsdogs.data.synthetic import CAT, DOG, photo_jpeg
from catsdogs.pipeline.atomic_files import atomic_path
from catsdogs.pipeline.processes import usable_cores

CHUNK = 100


def _write(folder: Path, label: int, indices: range, seed: int) -> None:
    """Write the images `indices` of class `label`, hard-linking any that a bigger cached set already has."""
    others = [other for other in folder.parent.glob(f"kaggle-*-seed{seed}") if other != folder]
    for index in indices:
        path = folder / kaggle_file_name(label, index)
        same = [other / path.name for other in others if (other / path.name).exists()]
        if same and not path.exists():
            os.link(same[0], path)
        if not path.exists():
            with atomic_path(path) as tmp:
                tmp.write_bytes(photo_jpeg(label, index, seed))


def kaggle_layout(n_images: int, seed: int = 0, cache: Path = CACHE_DIR) -> list[Path]:
    """The n_images JPEG paths (sorted) of a Kaggle-layout set, generated on first use (all cores)."""
    folder = Path(cache) / f"kaggle-{n_images}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    per_class = n_images // 2
    tasks = [
        (label, range(lo, min(lo + CHUNK, per_class))) for label in (CAT, DOG) for lo in range(0, per_class, CHUNK)
    ]
    with ProcessPoolExecutor(usable_cores()) as pool:
        list(pool.map(_write, [folder] * len(tasks), *zip(*tasks), [seed] * len(tasks)))
    return sorted(folder.glob("*.jpg"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.images", description=__doc__.split("\n\n")[0])
    parser.add_argument("n_images", type=int, help="number of images (even)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default: %(default)s)")
    args = parser.parse_args(argv)
    paths = kaggle_layout(args.n_images, args.seed)
    print(f"{len(paths)} images in {paths[0].parent}")


if __name__ == "__main__":
    main()
