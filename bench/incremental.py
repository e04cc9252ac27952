"""Benchmark 5: the cost of `dvc repro` when nothing changed, and after a change of train.lr.

Clones the project (its last commit, as a user gets it: `git clone`) into a scratch repository under
bench/.cache/, runs a first `dvc repro` (not timed as part of the result), then times:
`dvc repro` with nothing changed (must run no stage) and after train.lr 0.003 -> 0.01 (must rerun
only train and evaluate, not the image stages).

    python -m bench.incremental [--epochs 5000] [--n-per-class 1000]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import CACHE_DIR, ROOT, table, verdict

BIN = Path(sys.executable).parent


def sh(repo: Path, *args: str) -> tuple[float, str]:
    """Run a command in `repo`; return its wall time and output. Raises on failure."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    start = time.perf_counter()
    result = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.perf_counter() - start, result.stdout


def scratch_repo(epochs: int, n_per_class: int) -> Path:
    repo = CACHE_DIR / "incremental"
    shutil.rmtree(repo, ignore_errors=True)
    sh(ROOT, "git", "clone", "-q", str(ROOT), str(repo.resolve()))
    params = repo / "params.yaml"
    text = re.sub(r"^(  epochs: ).*$", rf"\g<1>{epochs}", params.read_text(), count=1, flags=re.M)
    params.write_text(re.sub(r"^(  n_per_class: ).*$", rf"\g<1>{n_per_class}", text, count=1, flags=re.M))
    sh(repo, "git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "--allow-empty", "-am", "p")
    return repo


def run(epochs: int = 5000, n_per_class: int = 1000) -> str:
    repo = scratch_repo(epochs, n_per_class)
    dvc = str(BIN / "dvc")
    first, _ = sh(repo, dvc, "repro")
    nothing, out_nothing = sh(repo, dvc, "repro")
    params = repo / "params.yaml"
    params.write_text(re.sub(r"^(  lr: )0\.003$", r"\g<1>0.01", params.read_text(), count=1, flags=re.M))
    after_lr, out_lr = sh(repo, dvc, "repro")
    ran_nothing = re.findall(r"Running stage '(\w+)'", out_nothing)
    ran_lr = re.findall(r"Running stage '(\w+)'", out_lr)
    shutil.rmtree(repo, ignore_errors=True)
    rows = [
        ["first `dvc repro` (all stages)", f"{first:.1f} s", "", ""],
        [
            "`dvc repro`, nothing changed",
            f"{nothing:.1f} s",
            ", ".join(ran_nothing) or "none",
            verdict(not ran_nothing),
        ],
        [
            "`dvc repro` after train.lr 0.003 -> 0.01",
            f"{after_lr:.1f} s",
            ", ".join(ran_lr),
            f"image stages not rerun: {verdict(ran_lr == ['train', 'evaluate'])}",
        ],
    ]
    return "\n".join(
        [
            f"### Incremental cost of `dvc repro` (embedded set, ingest.n_per_class = {n_per_class}, train.epochs = {epochs})",
            "",
            table(["what", "wall time", "stages run", "check"], rows),
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.incremental", description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5000, help="train.epochs in the copy (default: %(default)s)")
    parser.add_argument("--n-per-class", type=int, default=1000, help="ingest.n_per_class (default: %(default)s)")
    args = parser.parse_args(argv)
    print(run(args.epochs, args.n_per_class))


if __name__ == "__main__":
    main()
