"""End to end: `dvc exp show` shows a running queued experiment's progress (train's rewrites of
metrics/train.json), in a temporary git repository; its evaluate metrics are the parent's until
evaluate runs. The run is killed once seen (bounded: at most DEADLINE seconds of polling)."""

import json
import os
import subprocess
import time
from subprocess import DEVNULL

from tests.test_check_metrics_dvc import TINY
from tests.test_pipeline_dvc import BIN, dvc, make_project, run

EPOCHS = 2_000_000  # far more than the run lasts here: it is killed once its progress was seen
DEADLINE = 120.0
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")


def running_rows(repo):
    """[(train metrics, evaluate metrics)] of the experiments `dvc exp show --json` says are running."""
    result = dvc(repo, "exp", "show", "--json", check=False)
    if result.returncode:  # DVC's own race: shown while the run's copy is being made ("... .dvc does not exist")
        return []
    shown = json.loads(result.stdout)
    rows = []
    for experiment in shown[1].get("experiments") or []:
        if (experiment.get("executor") or {}).get("state") == "running":
            metrics = experiment["revs"][0]["data"].get("metrics") or {}
            rows.append(
                tuple((metrics.get(name) or {}).get("data") for name in ("metrics/train.json", "metrics/evaluate.json"))
            )
    return rows


def test_exp_show_shows_the_epochs_of_a_running_experiment(tmp_path):
    repo = make_project(tmp_path, TINY)
    dvc(repo, "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "first run")
    parent_evaluate = json.loads((repo / "metrics/evaluate.json").read_text())
    dvc(repo, "exp", "run", "--queue", "-S", f"train.epochs={EPOCHS}", "--name", "long")
    seen = []
    try:
        # The worker it starts keeps the pipes of capture_output open: its output goes nowhere.
        subprocess.run(
            [str(BIN / "dvc"), "queue", "start"], cwd=repo, env=ENV, stdout=DEVNULL, stderr=DEVNULL, check=True
        )
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and len({row[0]["epoch"] for row in seen}) < 2:
            seen += [row for row in running_rows(repo) if row[0] and 0 < row[0]["epoch"] < EPOCHS]
            time.sleep(1)
    finally:
        dvc(repo, "queue", "kill", "long", check=False)
        dvc(repo, "queue", "stop", "--kill", check=False)
    epochs = [train["epoch"] for train, _ in seen]
    assert len(set(epochs)) >= 2 and epochs == sorted(epochs), epochs  # two rewrites seen, moving forward
    assert all(set(train) == {"train_loss", "train_accuracy", "epoch"} for train, _ in seen)
    assert all(evaluate == parent_evaluate for _, evaluate in seen)  # not the run's own until evaluate ran
