"""The learning-rate sweep: its pure helpers, then the real command on DVC's queue in a temporary
repository with tiny params (two learning rates)."""

import json
import sys

from tests.test_check_metrics_dvc import project  # noqa: F401  (the module's temporary repository)
from tests.test_pipeline_dvc import dvc, run, stages_run
from tools.sweep import error_line, experiment_name, finished_runs, lr_text, queue_commands

IMAGE_STAGES = ["ingest", "resize_split", "flatten_normalize"]


def stages_of(repo, name):
    """(stages run, image stages skipped as unchanged) from the experiment's own log."""
    log = dvc(repo, "queue", "logs", name).stdout
    return stages_run(log), [stage for stage in IMAGE_STAGES if f"Stage '{stage}' didn't change, skipping" in log]


def test_learning_rates_are_written_without_exponent():
    assert [lr_text(lr) for lr in (0.003, 1e-5, 0.1, 2.0)] == ["0.003", "0.00001", "0.1", "2"]
    assert experiment_name(1e-4) == "lr-0.0001"


def test_queue_commands():
    assert queue_commands([0.01], ["train.epochs=3"]) == [
        ["exp", "run", "--queue", "-S", "train.lr=0.01", "-S", "train.epochs=3", "--name", "lr-0.01"]
    ]


def test_finished_runs_leaves_out_failed_and_missing_ones():
    show = [
        {"rev": "workspace", "experiments": None},
        {
            "rev": "abc",
            "experiments": [
                {"executor": None, "revs": [{"rev": "111", "name": "lr-0.1", "error": None}]},
                {"executor": {"state": "failed"}, "revs": [{"rev": "222", "name": "lr-1", "error": None}]},
            ],
        },
    ]
    assert finished_runs(show, ["lr-0.1"]) == {"lr-0.1": "111"}
    assert finished_runs(show, ["lr-1", "lr-0.1", "lr-2"]) == {"lr-0.1": "111"}


def test_error_line_is_the_stage_error_else_dvc_error():
    log = "Running stage 'ingest':\ningest: error: data/external/a.zip: gone\nERROR: failed to reproduce 'ingest'\n"
    assert error_line(log) == "ingest: error: data/external/a.zip: gone"
    assert error_line("x\nERROR: failed\x1b[0m to reproduce\n") == "ERROR: failed?[0m to reproduce"
    assert error_line("") == "see its log"


def test_sweep_runs_the_queue_and_draws_the_runs(project):  # noqa: F811
    result = run(
        project, sys.executable, "-m", "tools.sweep", "--lr", "0.3", "0.001", "-S", "train.epochs=20", "--out", "sweep"
    )
    printed = [line.split("[")[1].split("]")[0] for line in result.stdout.splitlines() if "[lr-" in line]
    assert sorted(printed) == ["lr-0.001", "lr-0.3"]
    shown = json.loads(dvc(project, "exp", "show", "--json").stdout)
    runs = {rev["name"]: rev["data"] for exp in shown[1]["experiments"] for rev in exp["revs"]}
    for name, lr in (("lr-0.3", 0.3), ("lr-0.001", 0.001)):
        train = runs[name]["params"]["params.yaml"]["data"]["train"]
        assert (train["lr"], train["epochs"]) == (lr, 20)
    accuracy = [runs[name]["metrics"]["metrics/evaluate.json"]["data"]["accuracy"] for name in printed]
    assert accuracy == sorted(accuracy, reverse=True)  # `dvc exp show` sorted by validation accuracy
    assert (project / "sweep/exp_show.txt").read_text() in result.stdout
    assert (project / "sweep/loss_curves.png").read_bytes().startswith(b"\x89PNG")
    page = (project / "sweep/dvc_plots/index.html").read_text()
    assert '"rev": "lr-0.3"' in page and '"rev": "lr-0.001"' in page
    assert run(project, "git", "status", "--porcelain", "--untracked-files=no").stdout == ""  # workspace untouched
    for name in ("lr-0.3", "lr-0.001"):  # the image stages come from the cache, never recomputed
        assert stages_of(project, name) == (["train", "evaluate"], IMAGE_STAGES)

    # Running the sweep again replaces the experiment of the same name (DVC refuses a second lr-0.3).
    run(project, sys.executable, "-m", "tools.sweep", "--lr", "0.3", "-S", "train.epochs=10", "--out", "sweep")
    shown = json.loads(dvc(project, "exp", "show", "--json").stdout)
    runs = {rev["name"]: rev["data"] for exp in shown[1]["experiments"] for rev in exp["revs"]}
    assert sorted(runs) == ["lr-0.001", "lr-0.3"]
    assert runs["lr-0.3"]["params"]["params.yaml"]["data"]["train"]["epochs"] == 10
    assert stages_of(project, "lr-0.3") == (["train", "evaluate"], IMAGE_STAGES)
