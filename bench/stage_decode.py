"""Benchmark 7: the resize_split stage as a whole against a plain Pillow loop, at the real data set's size.

The photos: data/raw of bench/archive.py's project (the 25,000-photo archive after ingest). Baseline: a
plain loop in this process over the photos' bytes, already in memory: Image.open, full decode,
convert("RGB"), bilinear resize to 64 x 64, np.asarray. Ours: `python -m stages.resize_split` with the
paths of its cmd in dvc.yaml, as its own process (start, imports, listing, reading the files, decoding,
the split, writing both .npz caches and the preprocessing record), with `jobs: 1` and `jobs: 0` (all
cores), in a scratch project whose data/raw links to the photos. The page cache is warmed first (every
photo read once), as the baseline's bytes are in memory. The methods take turns, ROUNDS rounds; medians.

Wall time is what the goals are about (>= 2x per core, >= 3.6x on 2 cores); on a shared machine it also
measures the other sessions, so CPU time (user + system, the stage's worker processes included) is
reported beside it: the per-core ratio of CPU times is the one that load does not move much. The
stage's outputs must be the same bytes for both `jobs` and the same as the archive project's own.

    python -m bench.stage_decode [--rounds 3] [--images N]   # N: the first N photos only (quick look)
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from bench.archive import archive_project
from bench.common import CACHE_DIR, ROOT, table, verdict
from catsdogs.pipeline.dvc_files import stage_arguments, stage_path
from catsdogs.pipeline.processes import usable_cores

SIZE = 64
OUTPUTS = ("--train-images", "--valid-images", "--preprocessing")


def plain_loop(blobs: Sequence[bytes]) -> np.ndarray:
    """The baseline: X (m, 64, 64, 3) uint8 from the photos' bytes, full decode, one process."""
    X = np.zeros((len(blobs), SIZE, SIZE, 3), dtype=np.uint8)
    for row, blob in enumerate(blobs):
        with Image.open(io.BytesIO(blob)) as image:
            X[row] = np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR))
    return X


def scratch_project(photos: Sequence[Path]) -> Path:
    """A project folder whose data/raw holds links to `photos`, with params files for jobs 1 and 0."""
    project = CACHE_DIR / f"stage-decode-{len(photos)}"
    raw = project / "data/raw"
    if not raw.exists():
        raw.mkdir(parents=True)
        for photo in photos:
            (raw / photo.name).symlink_to(photo.resolve())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for jobs in (1, 0):
        params["resize_split"]["jobs"] = jobs
        (project / f"jobs{jobs}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def run_stage(project: Path, jobs: int) -> tuple[float, float, list[bytes]]:
    """Wall and CPU seconds (this child and its workers) of one resize_split run; its output files' bytes."""
    arguments = stage_arguments("resize_split", ROOT / "dvc.yaml")
    command = [sys.executable, "-m", "stages.resize_split", "--params", f"jobs{jobs}.yaml", *arguments]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        command, cwd=project, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        raise RuntimeError(f"resize_split failed:\n{result.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    files = [stage_path("resize_split", option, ROOT / "dvc.yaml") for option in OUTPUTS]
    return wall, cpu, [(project / path).read_bytes() for path in files]


def run(rounds: int = 3, images: int | None = None) -> str:
    source = archive_project()
    photos = sorted((source / "data/raw").iterdir())
    photos = photos if images is None else photos[:: max(1, len(photos) // images)][:images]
    project = scratch_project(photos)
    blobs = [photo.read_bytes() for photo in photos]  # the baseline's input; also warms the page cache
    wall: dict[str, list[float]] = {name: [] for name in ("baseline", "jobs1", "jobs0")}
    cpu: dict[str, list[float]] = {name: [] for name in wall}
    outputs = {}
    for _ in range(rounds):
        for photo in photos:  # warm: the stage reads files, the baseline has them in memory
            photo.read_bytes()
        start, start_cpu = time.perf_counter(), time.process_time()
        plain_loop(blobs)
        wall["baseline"].append(time.perf_counter() - start)
        cpu["baseline"].append(time.process_time() - start_cpu)
        for jobs in (1, 0):
            seconds, cpu_seconds, outputs[jobs] = run_stage(project, jobs)
            wall[f"jobs{jobs}"].append(seconds)
            cpu[f"jobs{jobs}"].append(cpu_seconds)
    same_jobs = outputs[1] == outputs[0]
    reference = (
        [(source / stage_path("resize_split", o, ROOT / "dvc.yaml")).read_bytes() for o in OUTPUTS]
        if images is None
        else None
    )
    same_reference = (
        "" if reference is None else f"; the same as the archive project's caches: {outputs[1] == reference}"
    )
    medians = {name: statistics.median(times) for name, times in wall.items()}
    cpu_medians = {name: statistics.median(times) for name, times in cpu.items()}
    per_core, on_all = medians["baseline"] / medians["jobs1"], medians["baseline"] / medians["jobs0"]
    cores = usable_cores()
    rows = [
        [
            "plain Pillow loop, full decode, bytes in memory, 1 process",
            f"{medians['baseline']:.1f} s",
            f"{cpu_medians['baseline']:.1f} s",
            "1.00x",
            "1.00x",
            "",
        ],
        [
            "python -m stages.resize_split, jobs: 1",
            f"{medians['jobs1']:.1f} s",
            f"{cpu_medians['jobs1']:.1f} s",
            f"{per_core:.2f}x",
            f"{cpu_medians['baseline'] / cpu_medians['jobs1']:.2f}x",
            f"per core >= 2x: {verdict(per_core >= 2)}",
        ],
        [
            f"python -m stages.resize_split, jobs: 0 ({cores} cores)",
            f"{medians['jobs0']:.1f} s",
            f"{cpu_medians['jobs0']:.1f} s",
            f"{on_all:.2f}x",
            f"{cpu_medians['baseline'] / cpu_medians['jobs0']:.2f}x",
            f"on {cores} cores >= {1.8 * cores:.1f}x: {verdict(on_all >= 1.8 * cores)}",
        ],
    ]
    return "\n".join(
        [
            f"### resize_split as a whole process vs a plain Pillow loop, {len(photos):,} photos",
            "",
            table(["method", "wall (median)", "CPU (median)", "vs baseline, wall", "vs baseline, CPU", "target"], rows),
            "",
            "- Wall times per round: "
            + "; ".join(f"{name} " + " / ".join(f"{t:.1f}" for t in times) for name, times in wall.items())
            + ".",
            f"- Output bytes the same for jobs 1 and 0: {same_jobs}{same_reference}.",
            f"- Machine load at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min).",
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stage_decode", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three methods (default: %(default)s)")
    parser.add_argument("--images", type=int, default=None, help="use only this many of the photos (default: all)")
    args = parser.parse_args(argv)
    print(run(args.rounds, args.images))


if __name__ == "__main__":
    main()
