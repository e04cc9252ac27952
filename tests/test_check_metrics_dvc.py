"""The regression gate, the real command against real `git` and `dvc` in a temporary repository (one
per module, tiny params; every test leaves it as it found it). Its pure functions:
tests/test_check_metrics.py."""
import contextlib
import io
import json
import subprocess
import sys

import pytest

from tests.test_pipeline_dvc import dvc, make_project, run, set_param
from tools.check_metrics import BETTER, NEW, REGRESSION, REMOVED, SAME, WITHIN, main

TINY = {"ingest": {"n_per_class": 30}, "train": {"epochs": 60}}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A temporary git repository with the pipeline, the tools and the gate rules, after a first
    `dvc repro` on tiny params, committed."""
    repo = make_project(tmp_path_factory.mktemp("gate"), TINY)
    dvc(repo, "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "first run")
    return repo


@pytest.fixture
def clean(project, monkeypatch):
    """The project as committed, as the current directory; tests that rerun stages restore the
    DVC outputs themselves (`restored`)."""
    monkeypatch.chdir(project)
    yield project
    run(project, "git", "reset", "-q", "--hard")
    run(project, "git", "clean", "-qfdx", "reports")


@pytest.fixture
def restored(clean):
    yield clean
    run(clean, "git", "reset", "-q", "--hard")
    dvc(clean, "checkout", "--force")


def gate(repo, *args):
    """Run the gate's main() in `repo` (the current directory): a CompletedProcess-like result."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return subprocess.CompletedProcess(args, status, out.getvalue(), err.getvalue())


def edit_metrics(repo, file="metrics/evaluate.json", **changes):
    """Change metrics in the workspace file as a stage would have written them; None removes one."""
    path = repo / file
    metrics = json.loads(path.read_text())
    for name, value in changes.items():
        if value is None:
            del metrics[name]
        else:
            metrics[name] = value
    path.write_text(json.dumps(metrics, indent=2))
    return metrics


def committed(repo, file="metrics/evaluate.json"):
    return json.loads(run(repo, "git", "show", f"HEAD:{file}").stdout)


def verdicts(output):
    """{metric: verdict} from the gate's printed table."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("metrics/"):
            metric = line.split()[0].split(":", 1)[1]
            rows[metric] = line.split("  ")[-1].strip()
    return rows


def test_identical_metrics_pass(clean):
    result = gate(clean)
    assert result.returncode == 0, result.stderr
    assert "PASS: no metric worse than its tolerance against HEAD" in result.stdout
    assert set(verdicts(result.stdout).values()) == {SAME}


def test_within_tolerance_passes(clean):
    old = committed(clean)
    edit_metrics(clean, accuracy=old["accuracy"] - 0.0025, mse_loss=old["mse_loss"] + 0.0001)
    result = gate(clean)
    assert result.returncode == 0, result.stdout
    assert verdicts(result.stdout)["accuracy"] == WITHIN and verdicts(result.stdout)["mse_loss"] == WITHIN


@pytest.mark.parametrize(
    "metric, delta",
    [("accuracy", -0.005), ("roc_auc", -0.01), ("mse_loss", +0.001), ("log_loss", +0.01)],
)
def test_beyond_tolerance_the_wrong_way_fails(clean, metric, delta):
    old = committed(clean)
    edit_metrics(clean, **{metric: old[metric] + delta})
    result = gate(clean)
    assert result.returncode == 1
    assert verdicts(result.stdout)[metric] == REGRESSION
    assert f"FAIL: 1 metric(s) worse than allowed against HEAD: {metric} (REGRESSION)" in result.stdout


def test_beyond_tolerance_the_right_way_passes(clean):
    old = committed(clean)
    edit_metrics(clean, accuracy=old["accuracy"] + 0.05, mse_loss=old["mse_loss"] - 0.01)
    result = gate(clean)
    assert result.returncode == 0
    assert verdicts(result.stdout)["accuracy"] == BETTER and verdicts(result.stdout)["mse_loss"] == BETTER


def test_new_metric_passes_and_removed_metric_fails(clean):
    edit_metrics(clean, balanced_accuracy=0.5)
    result = gate(clean)
    assert result.returncode == 0 and verdicts(result.stdout)["balanced_accuracy"] == NEW
    edit_metrics(clean, roc_auc=None)
    result = gate(clean)
    assert result.returncode == 1 and verdicts(result.stdout)["roc_auc"] == REMOVED


def test_missing_metrics_file_fails(clean):
    (clean / "metrics/train.json").unlink()
    result = gate(clean)
    assert result.returncode == 1
    assert verdicts(result.stdout)["train_loss"] == REMOVED


def test_malformed_metrics_file_fails_clearly(clean):
    (clean / "metrics/evaluate.json").write_text('{"accuracy": 0.7,')
    result = gate(clean)
    assert result.returncode == 2 and result.stdout == ""
    assert "check_metrics: error: workspace:metrics/evaluate.json: not valid JSON" in result.stderr


def test_malformed_metrics_at_the_base_revision_fails_clearly(clean):
    (clean / "metrics/train.json").write_text('{"train_loss": "low"}')
    run(clean, "git", "commit", "-qam", "broken metrics")
    result = gate(clean, "--base", "HEAD")
    run(clean, "git", "reset", "-q", "--hard", "HEAD~1")
    assert result.returncode == 2
    assert "HEAD:metrics/train.json: metric train_loss = 'low' is not a finite number" in result.stderr


@pytest.mark.parametrize("revision", ["no-such-branch", "0123456789abcdef0123456789abcdef01234567", "HEAD~5"])
def test_unknown_revision_fails_clearly(clean, revision):
    result = gate(clean, "--base", revision)
    assert result.returncode == 2
    assert f"check_metrics: error: unknown revision '{revision}'" in result.stderr


def test_a_worse_learning_rate_fails_with_a_report(restored):
    """A real run with a far too large learning rate (the sigmoid saturates, the losses rise far past
    their tolerances), then the real command line: exit status 1, the table, and the report with the
    params diff and the loss curves."""
    set_param(restored, "train", "lr", "50.0")
    dvc(restored, "repro")
    result = run(restored, sys.executable, "-m", "tools.check_metrics", "--report", "reports", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert verdicts(result.stdout)["mse_loss"] == REGRESSION
    report = (restored / "reports/metrics_report.md").read_text()
    assert report.startswith("## Metrics gate: FAIL")
    assert "| train.lr | 0.003 | 50.0 |" in report
    assert "| metrics/evaluate.json:mse_loss |" in report
    assert (restored / "reports/loss_curves.png").read_bytes().startswith(b"\x89PNG")


def test_on_a_branch_compare_with_main(restored):
    """Committing a worse model on a branch: against HEAD it passes, against main it fails."""
    run(restored, "git", "checkout", "-qb", "worse")
    set_param(restored, "train", "lr", "50.0")
    dvc(restored, "repro")
    run(restored, "git", "commit", "-qam", "worse learning rate")
    try:
        assert gate(restored).returncode == 0
        against_main = gate(restored, "--base", "main")
        assert against_main.returncode == 1 and verdicts(against_main.stdout)["mse_loss"] == REGRESSION
    finally:
        run(restored, "git", "checkout", "-qf", "main")
        run(restored, "git", "branch", "-qD", "worse")
