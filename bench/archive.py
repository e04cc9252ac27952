"""The 25,000-image Kaggle-layout archive, run through the pipeline's own image stages once (cached).

The archive is bench/make_kaggle_archive.py's train.zip (12,500 photos per class). It is looked for at
$BENCH_ARCHIVE, else at bench/.cache/train.zip, and written there (about 8 minutes on 2 cores) when
neither exists. `archive_project()` is a scratch project under bench/.cache/ whose params.yaml is the
default with `ingest.source: data/external/train.zip` (a link to the archive); ingest, resize_split and
flatten_normalize run there once, each as its own process with the paths of its cmd in dvc.yaml, and
their outputs are kept for the benchmarks that use them (bench/full_size.py, bench/stage_decode.py).

    python -m bench.archive        # builds what is missing, prints the project folder
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from bench.common import CACHE_DIR, ROOT
from catsdogs.pipeline.dvc_files import stage_arguments

ARCHIVE_ENV = "BENCH_ARCHIVE"
N_PER_CLASS = 12_500
STAGES = ("ingest", "resize_split", "flatten_normalize")


def archive_path() -> Path:
    """The archive: $BENCH_ARCHIVE if set, else bench/.cache/train.zip (written when missing)."""
    if os.environ.get(ARCHIVE_ENV):
        path = Path(os.environ[ARCHIVE_ENV])
        if not path.is_file():
            raise FileNotFoundError(f"${ARCHIVE_ENV} = {path}: no such file")
        return path
    path = CACHE_DIR / "train.zip"
    if not path.exists():
        subprocess.run(
            [sys.executable, "-m", "bench.make_kaggle_archive", str(path), "--n-per-class", str(N_PER_CLASS)],
            cwd=ROOT,
            check=True,
        )
    return path


def run_stage(project: Path, stage: str, extra: Sequence[str] = ()) -> None:
    """Run `python -m stages.<stage>` in `project` with its cmd's arguments from dvc.yaml."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", f"stages.{stage}", *stage_arguments(stage, ROOT / "dvc.yaml"), *extra]
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{stage} failed:\n{result.stderr[-2000:]}")


def archive_project() -> Path:
    """The scratch project with data/raw, data/prepared and data/features of the archive (built once)."""
    archive = archive_path().resolve()
    project = (CACHE_DIR / f"archive-{archive.stat().st_size}").resolve()  # another archive, another project
    if (project / "data/features/valid.npz").exists():
        return project
    (project / "data/external").mkdir(parents=True, exist_ok=True)
    link = project / "data/external/train.zip"
    link.unlink(missing_ok=True)
    try:  # a hard link (no copy), or a copy: ingest refuses a symbolic link out of data/external
        os.link(archive, link)
    except OSError:
        shutil.copyfile(archive, link)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ingest"]["source"] = "data/external/train.zip"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in STAGES:
        run_stage(project, stage)
    return project


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.archive", description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    print(archive_project())


if __name__ == "__main__":
    main()
