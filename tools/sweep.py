"""Learning-rate sweep on DVC's experiment queue, in one command (`make sweep`).

First `dvc repro flatten_normalize`: the image stages (ingest, resize_split, flatten_normalize) up to
date in the workspace and DVC's cache, so that every run finds them unchanged and only train and
evaluate run. For each learning rate: `dvc exp run --queue -S train.lr=LR --name lr-LR` (an earlier
experiment lr-LR of HEAD is removed first); then the queue runs one experiment at a time
(`dvc exp run --run-all -j 1`, so that runs do not compete for the cores); then
  - `dvc exp show`, sorted by validation accuracy, printed and saved to OUT/exp_show.txt;
  - `dvc plots diff lr-... -o OUT/dvc_plots`: every plot of dvc.yaml with the runs overlaid
    (open OUT/dvc_plots/index.html);
  - OUT/loss_curves.png: the runs' training and validation loss curves on one matplotlib chart.
Experiments stay in the repository: `dvc exp apply lr-0.01` puts one in the workspace,
`dvc exp remove lr-0.01` deletes it. Queued experiments start from HEAD plus the workspace's changes.
"""

from __future__ import annotations

import argparse
import json
import os
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


def experiment_revs(exp_show: list[dict[str, Any]], names: Sequence[str]) -> dict[str, str]:
    """{name: commit} of the finished experiments `names`, from `dvc exp show --json`.

    A name that did not finish (failed, or still queued) is a RuntimeError naming it.
    """
    found = {}
    for baseline in exp_show:
        for experiment in baseline.get("experiments") or []:
            executor = experiment.get("executor")
            if executor is not None and executor.get("state") != "success":
                continue
            for rev in experiment.get("revs", []):
                if rev.get("name") in names and not rev.get("error"):
                    found[rev["name"]] = rev["rev"]
    missing = [name for name in names if name not in found]
    if missing:
        raise RuntimeError(
            f"experiment(s) {', '.join(missing)} did not finish: see `dvc queue status` and `dvc queue logs NAME`"
        )
    return {name: found[name] for name in names}


def positive_float(text: str) -> float:
    value = float(text)
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"learning rate {text!r}: expected a number > 0")
    return value


def _run(*args: str, capture: bool = False) -> str:
    """Run a command with the current interpreter's bin/ first on PATH: the queue's workers call
    `python -m stages...` from dvc.yaml and must get this venv's python."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1", COLUMNS="200")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(args, env=env, text=True, capture_output=capture)
    if result.returncode != 0:
        detail = f":\n{result.stdout}{result.stderr}" if capture else ""
        raise RuntimeError(f"`{' '.join(args)}` failed with exit status {result.returncode}{detail}")
    return result.stdout if capture else ""


def dvc(*args: str, capture: bool = False) -> str:
    return _run(sys.executable, "-m", "dvc", *args, capture=capture)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sweep",
        description=(
            "Learning-rate sweep with DVC's queue: the image stages brought up to date once "
            "(`dvc repro flatten_normalize`), then one experiment `lr-LR` per rate (replacing an earlier one "
            "of that name), run one at a time, only train and evaluate running; then `dvc exp show` sorted by validation accuracy (also OUT/exp_show.txt), "
            "`dvc plots diff` of the runs (OUT/dvc_plots/index.html) and their loss curves on one "
            "chart (OUT/loss_curves.png). Run from the project root."
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
        dvc("exp", "run", "--run-all", "--jobs", "1")
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
        dvc("plots", "diff", *names, "-o", str(args.out / "dvc_plots"))
        revs = experiment_revs(json.loads(dvc("exp", "show", "--json", capture=True)), names)
        history_file = stage_path("train", "--history")
        histories = {
            name: read_history(_run("git", "show", f"{rev}:./{history_file}", capture=True), f"{name}:{history_file}")
            for name, rev in revs.items()
        }
    except (RuntimeError, ValueError) as err:
        print(f"sweep: error: {err}", file=sys.stderr)
        return 1
    plot_loss_curves(histories, args.out / "loss_curves.png", "Loss curves by learning rate (dashed: validation)")
    print(f"Loss curves: {args.out / 'loss_curves.png'}; all plots: {args.out / 'dvc_plots' / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
