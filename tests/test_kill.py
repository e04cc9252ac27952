"""kill -9 of a stage mid-work (issue 9): its worker processes die with it, and the next run removes
the temporary files and folders it left. Each stage runs as a real subprocess on real JPEGs; its
workers are found by scanning /proc for the stage's descendants."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catsdogs.pipeline.dvc_files import stage_arguments
from catsdogs.pipeline.processes import usable_cores
from tests.conftest import ROOT, write_params

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def slow_jpeg() -> bytes:
    """A 2500 x 2500 JPEG of smooth colours: small (a few hundred kB), about 50 ms to decode in full."""
    ramp = np.linspace(0, 255, 2500, dtype=np.float32)
    pixels = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], ramp[::-1, None]), axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "JPEG", quality=75)
    return buffer.getvalue()


def state(pid: int) -> str | None:
    """The process's state letter (R, S, Z, ...), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, their children, ...)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def command(stage: str) -> list[str]:
    """The stage's command line, with the paths the project's dvc.yaml gives it."""
    return [sys.executable, "-m", f"stages.{stage}", *stage_arguments(stage, ROOT / "dvc.yaml")]


def kill_mid_work(command: list[str], cwd: Path, ready) -> tuple[int, set[int]]:
    """Start `command`, wait until it has worker processes and `ready()` holds, kill -9 it; return its
    pid and its workers' pids."""
    stage = subprocess.Popen(
        command, cwd=cwd, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    while not (workers and ready()) and stage.poll() is None and time.monotonic() < deadline:
        workers = descendants(stage.pid)
        time.sleep(0.01)
    assert stage.poll() is None, f"the stage ended before it could be killed: {stage.stderr.read()!r}"
    assert workers, "no worker process seen"
    stage.send_signal(signal.SIGKILL)
    stage.wait()
    return stage.pid, workers


def assert_all_gone(pids: set[int], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(state(pid) not in (None, "Z") for pid in pids):
        time.sleep(0.05)
    assert [pid for pid in pids if state(pid) not in (None, "Z")] == []


needs_two_cores = pytest.mark.skipif(usable_cores() < 2, reason="one core: the stages start no worker")


@needs_two_cores
def test_kill_9_of_resize_split_leaves_no_worker_and_the_next_run_clears_its_leftovers(in_tmp):
    raw = in_tmp / "data/raw"
    raw.mkdir(parents=True)
    photo = slow_jpeg()
    for i in range(40):
        (raw / f"cat.{i}.jpg").write_bytes(photo)
        (raw / f"dog.{i}.jpg").write_bytes(photo)
    write_params(in_tmp / "params.yaml", resize_split={"draft": False, "jobs": 2})
    pid, workers = kill_mid_work(command("resize_split"), in_tmp, lambda: True)
    assert_all_gone(workers)

    prepared = in_tmp / "data/prepared"
    prepared.mkdir(parents=True, exist_ok=True)
    leftovers = [prepared / f".tmp-train.npz.{pid}.k1lled_9", prepared / ".tmp-valid.npz.0ldf0rm1"]  # (no pid: before)
    live = prepared / f".tmp-train.npz.{os.getpid()}.st1ll0n_"  # a writer that is still running
    for path in [*leftovers, live]:
        path.write_bytes(b"half-written")
    write_params(in_tmp / "params.yaml", resize_split={"draft": True, "jobs": 2})  # the quick way this time
    subprocess.run(
        command("resize_split"), cwd=in_tmp, check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=str(ROOT))
    )
    assert sorted(p.name for p in prepared.iterdir()) == sorted(
        ["train.npz", "valid.npz", "preprocessing.json", live.name]
    )


@needs_two_cores
def test_kill_9_of_ingest_on_a_real_source_leaves_no_worker_and_the_next_run_clears_its_folder(in_tmp):
    external = in_tmp / "data/external"
    external.mkdir(parents=True)
    photo = slow_jpeg()
    with zipfile.ZipFile(external / "train.zip", "w", zipfile.ZIP_STORED) as archive:
        for i in range(40):
            archive.writestr(f"train/cat.{i}.jpg", photo)
            archive.writestr(f"train/dog.{i}.jpg", photo)
    write_params(in_tmp / "params.yaml", ingest={"source": "data/external/train.zip", "jobs": 2})
    data = in_tmp / "data"
    staging = lambda: [p for p in data.iterdir() if p.name.startswith(".tmp-raw.")]  # noqa: E731
    pid, workers = kill_mid_work(command("ingest"), in_tmp, lambda: bool(staging()))
    assert_all_gone(workers)
    (left,) = staging()
    assert left.name.startswith(f".tmp-raw.{pid}.")  # the killed run's folder, named after it

    subprocess.run(
        command("ingest"), cwd=in_tmp, check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=str(ROOT))
    )
    assert staging() == []
    assert len(list((data / "raw").iterdir())) == 80
