"""Write a Kaggle-layout `train.zip` (entries train/cat.N.jpg, train/dog.N.jpg) of synthetic photos.

A stand-in for Kaggle's 25,000-image Dogs vs Cats archive, to measure the image stages at full scale:

    .venv/bin/python -m bench.make_kaggle_archive data/external/train.zip            # 12,500 per class
    .venv/bin/python -m bench.make_kaggle_archive /tmp/small.zip --n-per-class 100

The photos are catsdogs/data/synthetic.py's (same size distribution as Kaggle's: mostly 300-500 px on the long
side, 1 % under 64 px, 1 % near 1000 px), JPEG quality 90, deflated like Kaggle's zip. The archive is
a pure function of the arguments (fixed entry timestamps), and is written one image at a time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import zipfile
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from tqdm import tqdm

from catsdogs.data.images import kaggle_file_name
from catsdogs.data.synthetic import CAT, DOG, photo_jpeg
from catsdogs.pipeline.atomic_files import atomic_path


def photo_bytes(job: tuple[int, int, int, int]) -> bytes:
    """JPEG bytes of the synthetic photo `(label, index, seed, quality)`."""
    return photo_jpeg(*job)


def write_archive(path: Path, n_per_class: int, seed: int, quality: int, jobs: int, progress: bool = True) -> int:
    """Write the archive (cats then dogs, by index); return its size in bytes."""
    work = [(label, i, seed, quality) for label in (CAT, DOG) for i in range(n_per_class)]
    # spawned, not forked, workers: a fork of a process with threads (BLAS's, a test runner's) can copy a
    # lock held by another thread and hang; one job runs here, without a pool
    workers = multiprocessing.get_context("spawn").Pool(jobs) if jobs > 1 else nullcontext()
    with workers as pool, atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        results = pool.imap(photo_bytes, work, chunksize=16) if pool else map(photo_bytes, work)
        for (label, i, _, _), data in tqdm(zip(work, results), total=len(work), unit="img", disable=not progress):
            info = zipfile.ZipInfo(f"train/{kaggle_file_name(label, i)}", date_time=(2013, 9, 25, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path.stat().st_size


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.make_kaggle_archive",
        description="Write a Kaggle-layout train.zip (train/cat.N.jpg, train/dog.N.jpg) of synthetic photos.",
    )
    parser.add_argument("out", type=Path, help="the zip to write, e.g. data/external/train.zip")
    parser.add_argument("--n-per-class", type=int, default=12500, help="images per class (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default: %(default)s)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=2, help="generator processes (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.n_per_class < 1 or args.seed < 0 or not 1 <= args.quality <= 95 or args.jobs < 1:
        parser.error("need --n-per-class >= 1, --seed >= 0, 1 <= --quality <= 95, --jobs >= 1")
    size = write_archive(args.out, args.n_per_class, args.seed, args.quality, args.jobs)
    print(f"{args.out}: {2 * args.n_per_class} images, {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
