"""Learning-rate sweep on DVC's experiment queue, in one command (`make sweep`).

First `dvc repro flatten_normalize`: the image stages (ingest, resize_split, flatten_normalize) up to
date in the workspace and DVC's cache, so that every run finds them unchanged and only train and
evaluate run. For each learning rate: `dvc exp run --queue -S train.lr=LR --name lr-LR` (an earlier
experiment lr-LR of HEAD is removed first); then DVC's own queue workers run them, --jobs at a time
(`dvc exp run --run-all --jobs N`; default 1, so that runs do not compete for the cores; the results
do not depend on it); then
  - `dvc exp show`, sorted by validation accuracy, printed and saved to OUT/exp_show.txt;
  - `dvc plots diff lr-... -o OUT/dvc_plots`: every plot of dvc.yaml with the finished runs overlaid
    (open OUT/dvc_plots/index.html);
  - OUT/loss_curves.png: the finished runs' training and validation loss curves on one matplotlib chart;
  - for each run that failed, one line: its error (the last error line of its log) and the command
    that shows its whole log, `dvc queue logs lr-LR`; the sweep then exits with status 1.
Experiments stay in the repository: `dvc exp apply lr-0.01` puts one in the workspace,
`dvc exp remove lr-0.01` deletes it. Queued experiments start from HEAD plus the workspace's changes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from catsdogs.pipeline.dvc_files import stage_path
from tools.loss_curves import plot_loss_curves, read_history

DEFAULT_LRS = (0.001, 0.003, 0.01, 0.03)
SORT_BY = "metrics/evaluate.json:accuracy"
# Columns of `dvc exp show --only-changed` that say nothing about a learning rate (regexes matched
# at the start of the name): bookkeeping, confusion counts, and the hashes of deps and outs (paths).
DROP_COLUMNS = "Created|State|Executor|true_.*|false_.*|n_valid|.*/.*"
# The last stage before train: `dvc repro` of it brings every stage a learning rate does not change up
# to date (and into DVC's cache), once, before the queue copies the workspace for each run.
FEATURES_STAGE = "flatten_normalize"


def lr_text(lr: float) -> str:
    """0.001 -> "0.001", never "1e-03": experiment names and -S values as a person writes them."""
    return np.format_float_positional(lr, trim="-")


def experiment_name(lr: float) -> str:
    return f"lr-{lr_text(lr)}"


def queue_commands(lrs: Sequence[float], overrides: Sequence[str]) -> list[list[str]]:
    """The `dvc exp run --queue` arguments, one experiment per learning rate. Without --force, which
    would rerun every stage, the image stages included, in every run."""
    extra = [arg for override in overrides for arg in ("-S", override)]
    return [
        ["exp", "run", "--queue", "-S", f"train.lr={lr_text(lr)}", *extra, "--name", experiment_name(lr)] for lr in lrs
    ]


def finished_runs(exp_show: list[dict[str, Any]], names: Sequence[str]) -> dict[str, str]:
    """{name: commit} of the experiments `names` that finished, from `dvc exp show --json` (a failed
    or still queued one is left out), in the order of `names`."""
    found = {}
    for baseline in exp_show:
        for experiment in baseline.get("experiments") or []:
            executor = experiment.get("executor")
            if executor is not None and executor.get("state") != "success":
                continue
            for rev in experiment.get("revs", []):
                if rev.get("name") in names and not rev.get("error"):
                    found[rev["name"]] = rev["rev"]
    return {name: found[name] for name in names if name in found}


def error_line(log: str) -> str:
    """The line of a run's log that says why it failed: the last `STAGE: error: ...` line of a stage,
    else DVC's last `ERROR: ...` line, else "see its log"; as one printable line."""
    lines = [line.strip() for line in log.splitlines()]
    stage = [line for line in lines if re.match(r"\w+: error: ", line)]
    dvc_errors = [line for line in lines if line.startswith("ERROR: ")]
    line = (stage or dvc_errors or ["see its log"])[-1]
    return "".join(char if char.isprintable() else "?" for char in line)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"jobs {text!r}: expected a whole number >= 1")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"learning rate {text!r}: expected a number > 0")
    return value


def _run(*args: str, capture: bool = False, check: bool = True) -> str:
    """Run a command with the current interpreter's bin/ first on PATH: the queue's workers call
    `python -m stages...` from dvc.yaml and must get this venv's python."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1", COLUMNS="200")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(args, env=env, text=True, capture_output=capture)
    if check and result.returncode != 0:
        detail = f":\n{result.stdout}{result.stderr}" if capture else ""
        raise RuntimeError(f"`{' '.join(args)}` failed with exit status {result.returncode}{detail}")
    return (result.stdout + (result.stderr if not check else "")) if capture else ""


def dvc(*args: str, capture: bool = False) -> str:
    return _run(sys.executable, "-m", "dvc", *args, capture=capture)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sweep",
        description=(
            "Learning-rate sweep with DVC's queue: the image stages brought up to date once "
            "(`dvc repro flatten_normalize`), then one experiment `lr-LR` per rate (replacing an earlier one "
            "of that name), run by DVC's queue workers (--jobs at a time), only train and evaluate running; then "
            "`dvc exp show` sorted by validation accuracy (also OUT/exp_show.txt), `dvc plots diff` of the "
            "finished runs (OUT/dvc_plots/index.html) and their loss curves on one chart (OUT/loss_curves.png); "
            "a failed run is named with its error and `dvc queue logs NAME` (exit status 1). Run from the "
            "project root."
        ),
    )
    parser.add_argument(
        "--lr",
        type=positive_float,
        nargs="+",
        default=list(DEFAULT_LRS),
        metavar="LR",
        help=f"learning rates (default: {' '.join(map(lr_text, DEFAULT_LRS))})",
    )
    parser.add_argument(
        "-S",
        "--set-param",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another params.yaml override for every run, as `dvc exp run -S` takes it (repeatable)",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=positive_int,
        default=1,
        help="experiments run at the same time by DVC's queue workers (default 1; the results do not depend on it)",
    )
    parser.add_argument("--out", type=Path, default=Path("sweep"), help="output folder (default: sweep)")
    args = parser.parse_args(argv)
    names = [experiment_name(lr) for lr in args.lr]
    try:
        # Rerunning the sweep replaces its experiments: DVC refuses to queue a name HEAD already has.
        existing = dvc("exp", "list", "--name-only", capture=True).split()
        earlier = [name for name in names if name in existing]
        if earlier:
            dvc("exp", "remove", *earlier)
        dvc("repro", FEATURES_STAGE)
        for command in queue_commands(args.lr, args.overrides):
            dvc(*command)
        dvc("exp", "run", "--run-all", "--jobs", str(args.jobs))
        table = dvc(
            "exp",
            "show",
            "--no-pager",
            "--only-changed",
            "--drop",
            DROP_COLUMNS,
            "--sort-by",
            SORT_BY,
            "--sort-order",
            "desc",
            capture=True,
        )
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "exp_show.txt").write_text(table)
        print(table)
        finished = finished_runs(json.loads(dvc("exp", "show", "--json", capture=True)), names)
        failed = [name for name in names if name not in finished]
        for name in failed:
            log = _run(sys.executable, "-m", "dvc", "queue", "logs", name, capture=True, check=False)
            print(
                f"sweep: error: experiment {name} failed: {error_line(log)} (its log: `dvc queue logs {name}`)",
                file=sys.stderr,
            )
        if finished:
            dvc("plots", "diff", *finished, "-o", str(args.out / "dvc_plots"))
            history_file = stage_path("train", "--history")
            histories = {
                name: read_history(
                    _run("git", "show", f"{rev}:./{history_file}", capture=True), f"{name}:{history_file}"
                )
                for name, rev in finished.items()
            }
    except (RuntimeError, ValueError) as err:
        print(f"sweep: error: {err}", file=sys.stderr)
        return 1
    if finished:
        plot_loss_curves(histories, args.out / "loss_curves.png", "Loss curves by learning rate (dashed: validation)")
        print(f"Loss curves: {args.out / 'loss_curves.png'}; all plots: {args.out / 'dvc_plots' / 'index.html'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
