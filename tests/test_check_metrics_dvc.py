"""The regression gate on a real pipeline: real `dvc repro` runs in a temporary git repository (one per
module, tiny params; every test leaves it as it found it), then the gate. The gate's logic, on metrics
files in a plain git repository: tests/test_check_metrics.py."""

import sys

import pytest

from tests.test_check_metrics import gate, verdicts
from tests.test_pipeline_dvc import dvc, make_project, run, set_param
from tools.gate_verdicts import REGRESSION

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
