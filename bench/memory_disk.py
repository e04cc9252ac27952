"""Benchmark 4: cache sizes on disk and peak memory (RSS) of each stage, on a generated Kaggle-layout set.

Runs resize_split, flatten_normalize, train (2 epochs: memory does not grow with epochs) and evaluate,
each as its own process with its command line from dvc.yaml, in a scratch project under bench/.cache/, on the
n-image set of bench/images.py (ingest is skipped: data/raw links to the generated images). Compares
the cache files with the article's float64 train.npz / valid.npz (8 bytes per value, X of m x 12,288).

    python -m bench.memory_disk [--images 25000]
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

from bench.common import CACHE_DIR, ROOT, table, verdict
from bench.images import kaggle_layout
from catsdogs.pipeline.dvc_files import stage_arguments

STAGES = ("resize_split", "flatten_normalize", "train", "evaluate")
TRAIN_TARGET = 1.5  # train's peak RSS within 1.5x its float32 training matrix
# VmHWM: peak RSS of this process image (getrusage's ru_maxrss would carry over the parent's peak
# across fork + exec on Linux)
CHILD = (
    "import sys; from catsdogs.pipeline.command_line import run_cli; from stages.{stage} import main; run_cli(main, {arguments!r}); "
    "print('peak_rss_kib', next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')), file=sys.stderr)"
)


def run_stage(project: Path, stage: str) -> int:
    """Run one stage in `project`, with the paths of its cmd in dvc.yaml; return its peak RSS in bytes."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = CHILD.format(stage=stage, arguments=stage_arguments(stage, ROOT / "dvc.yaml"))
    result = subprocess.run([sys.executable, "-c", child], cwd=project, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{stage} failed:\n{result.stderr[-2000:]}")
    return int(result.stderr.rsplit("peak_rss_kib", 1)[1].split()[0]) * 1024


def scratch_project(n_images: int) -> Path:
    """A project folder with params.yaml (train.epochs = 2) and data/raw linked to the generated images."""
    project = CACHE_DIR / f"memory-{n_images}"
    shutil.rmtree(project, ignore_errors=True)
    (project / "data").mkdir(parents=True)
    (project / "data/raw").symlink_to(kaggle_layout(n_images)[0].parent.resolve())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["epochs"] = 2
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def run(n_images: int = 25000) -> str:
    project = scratch_project(n_images)
    peaks = {stage: run_stage(project, stage) for stage in STAGES}
    sizes = {
        f"{kind}/{split}": (project / "data" / kind / f"{split}.npz").stat().st_size
        for kind in ("prepared", "features")
        for split in ("train", "valid")
    }
    import numpy as np

    from catsdogs.pipeline.npz_files import load_npz

    counts = {split: len(load_npz(project / f"data/prepared/{split}.npz", ("y",))["y"]) for split in ("train", "valid")}
    n_features = 64 * 64 * 3
    matrix = counts["train"] * n_features * np.dtype(np.float32).itemsize
    rows = []
    for split in ("train", "valid"):
        article = counts[split] * n_features * 8
        rows.append(
            [
                f"{split} ({counts[split]:,} images)",
                f"{article / 1e6:,.0f} MB",
                f"{sizes['prepared/' + split] / 1e6:,.0f} MB ({article / sizes['prepared/' + split]:.1f}x smaller)",
                f"{sizes['features/' + split] / 1e6:,.0f} MB ({article / sizes['features/' + split]:.1f}x smaller)",
            ]
        )
    memory_rows = [[stage, f"{peaks[stage] / 1e6:,.0f} MB", ""] for stage in STAGES]
    ratio = peaks["train"] / matrix
    memory_rows[2][2] = (
        f"{ratio:.2f}x its float32 matrix ({matrix / 1e6:,.0f} MB; target < {TRAIN_TARGET}x: {verdict(ratio < TRAIN_TARGET)})"
    )
    shutil.rmtree(project, ignore_errors=True)
    return "\n".join(
        [
            f"### Disk and memory at {n_images:,} images",
            "",
            table(["cache", "article's float64 .npz", "data/prepared (uint8)", "data/features (float32)"], rows),
            "",
            table(["stage", "peak RSS", "note"], memory_rows),
            "",
            "- The article's sizes are computed (m x 12,288 x 8 bytes); ours are the files the stages wrote. "
            "train ran 2 epochs (its memory does not depend on the number of epochs); it holds the train and "
            "validation matrices (1.25x the train matrix at an 80/20 split) plus NumPy/pandas.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_disk", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=25000, help="size of the generated set (default: %(default)s)")
    args = parser.parse_args(argv)
    print(run(args.images))


if __name__ == "__main__":
    main()
