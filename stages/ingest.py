"""Stage 1, ingest: put the raw photo set in data/raw/, in the Kaggle layout (cat.N.jpg, dog.N.jpg).

With `ingest.source: synthetic` (the default) it generates the embedded synthetic photo set, so the
pipeline runs with no download.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from stages.common import PARAMS_FILE, check_choice, check_number, load_section, run_cli
from stages.synthetic import write_synthetic_dataset

RAW_DIR = Path("data/raw")
SOURCES = ("synthetic",)


@dataclass(frozen=True)
class IngestParams:
    source: str
    n_per_class: int
    seed: int


def read_params(path: Path = PARAMS_FILE) -> IngestParams:
    """Checked `ingest` group of params.yaml."""
    group = load_section("ingest", ("source", "n_per_class", "seed"), path)
    return IngestParams(
        source=check_choice("ingest.source", group["source"], SOURCES),
        n_per_class=check_number("ingest.n_per_class", group["n_per_class"], integer=True, low=1),
        seed=check_number("ingest.seed", group["seed"], integer=True, low=0),
    )


def ingest(params: IngestParams, out_dir: Path = RAW_DIR, progress: bool = True) -> list[Path]:
    """Fill `out_dir` with the photo set; return the image paths, sorted.

    Builds the set in a temporary sibling folder and swaps it in at the end, so an interrupted run
    never leaves a partial `out_dir` behind.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{out_dir.name}.", dir=out_dir.parent))
    try:
        write_synthetic_dataset(staging, params.n_per_class, params.seed, progress=progress)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(out_dir.iterdir())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stages.ingest",
        description="Write the raw cat/dog photo set (Kaggle layout: cat.N.jpg, dog.N.jpg) to data/raw/. "
        "Parameters: the `ingest` group of params.yaml.",
    )
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="parameters file (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=RAW_DIR, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    params = read_params(args.params)
    paths = ingest(params, args.out)
    cats = sum(path.name.startswith("cat.") for path in paths)
    print(f"ingest: {len(paths)} images ({cats} cats, {len(paths) - cats} dogs) in {args.out}/")


if __name__ == "__main__":
    run_cli(main)
