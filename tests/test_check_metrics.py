"""The regression gate: unit tests of its pure functions, then the real command against real `git` and
`dvc` in a temporary repository (one per module, tiny params; every test leaves it as it found it)."""
import contextlib
import io
import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_pipeline_dvc import dvc, make_project, run, set_param
from tools.check_metrics import (
    BETTER, INFO, NEW, NO_VALUE, REGRESSION, REMOVED, SAME, WITHIN,
    GateError, Rule, compare, format_table, judge, main, params_changes, parse_metrics, parse_rules, table_cells,
)

TINY = {"ingest": {"n_per_class": 30}, "train": {"epochs": 60}}
HIGHER, LOWER = Rule("higher", 0.0025), Rule("lower", 0.0001)


# --------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize(
    "old, new, rule, verdict",
    [
        (0.715, 0.715, HIGHER, SAME),
        (0.715, 0.72, HIGHER, BETTER),
        (0.715, 0.7125, HIGHER, WITHIN),  # exactly one tolerance worse passes, despite float rounding
        (0.715, 0.7124, HIGHER, REGRESSION),
        (0.0986, 0.0985, LOWER, BETTER),
        (0.0986, 0.0987, LOWER, WITHIN),
        (0.0986, 0.09871, LOWER, REGRESSION),
        (155, 150, Rule("info"), INFO),
        (155, 155, Rule("info"), SAME),
        (None, 0.5, HIGHER, NEW),
        (0.5, None, HIGHER, NO_VALUE),
    ],
)
def test_judge(old, new, rule, verdict):
    assert judge(old, new, rule) == verdict


def test_compare_new_removed_and_unconfigured_metrics():
    rules = {"m.json": {"acc": HIGHER, "loss": LOWER}}
    old = {"m.json": {"acc": 0.7, "loss": 0.1, "gone": 1.0}}
    new = {"m.json": {"acc": 0.6, "loss": 0.1, "extra": 3.0}}
    rows = {row.metric: row for row in compare(old, new, rules)}
    assert {name: row.verdict for name, row in rows.items()} == {
        "acc": REGRESSION, "loss": SAME, "gone": REMOVED, "extra": NEW,
    }
    assert rows["acc"].change == pytest.approx(-0.1) and rows["acc"].failed
    assert not rows["extra"].failed and rows["gone"].failed
    assert compare(old, {"m.json": old["m.json"]}, rules)[0].verdict == SAME


def test_a_whole_metrics_file_missing_in_the_workspace_fails_every_metric():
    rows = compare({"m.json": {"acc": 0.7}}, {}, {"m.json": {"acc": HIGHER}})
    assert [(row.verdict, row.new) for row in rows] == [(REMOVED, None)]


def test_a_rule_for_a_metric_found_nowhere_is_an_error():
    with pytest.raises(GateError, match="no metric acuracy"):
        compare({"m.json": {"acc": 0.7}}, {"m.json": {"acc": 0.7}}, {"m.json": {"acuracy": HIGHER}})


@pytest.mark.parametrize(
    "document, message",
    [
        ([], "expected a mapping of metrics files"),
        ({"m.json": {"acc": {"direction": "up", "tolerance": 0.1}}}, "m.json: acc: expected {direction: higher | lower | info"),
        ({"m.json": {"acc": {"direction": "higher", "tolerance": -1}}}, "tolerance = -1, expected a number >= 0"),
        ({"m.json": {"acc": {"direction": "higher"}}}, "tolerance = None, expected a number >= 0"),
        ({"m.json": {"n": {"direction": "info", "tolerance": 1}}}, "takes no tolerance"),
        ({"m.json": {"acc": {"direction": "higher", "tolerance": 0, "scale": 2}}}, "unknown key scale"),
    ],
)
def test_bad_rules_are_named(document, message):
    with pytest.raises(GateError, match="gate.yaml: ") as error:
        parse_rules(document, "gate.yaml")
    assert message in str(error.value)


def test_the_committed_rules_cover_every_committed_metric():
    rules = parse_rules(yaml.safe_load((ROOT / "metrics_gate.yaml").read_text()))
    for file, file_rules in rules.items():
        assert set(file_rules) == set(parse_metrics((ROOT / file).read_text(), file)), file


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"accuracy": 0.7', "m.json: not valid JSON"),
        ("[0.7]", "m.json: expected a JSON object of metrics, got list"),
        ('{"accuracy": "high"}', "m.json: metric accuracy = 'high' is not a finite number"),
        ('{"a": {"b": true}}', "m.json: metric a.b = True is not a finite number"),
        ('{"accuracy": NaN}', "m.json: metric accuracy = nan is not a finite number"),
    ],
)
def test_malformed_metrics_are_named(text, message):
    with pytest.raises(GateError) as error:
        parse_metrics(text, "m.json")
    assert message in str(error.value)


def test_nested_metrics_get_dotted_names():
    assert parse_metrics('{"valid": {"acc": 0.5, "auc": null}, "n": 3}', "m.json") == {
        "valid.acc": 0.5, "valid.auc": None, "n": 3,
    }


def test_params_changes_and_table():
    old = {"train": {"lr": 0.003, "epochs": 10}, "gone": 1}
    new = {"train": {"lr": 0.01, "epochs": 10}, "added": "x"}
    assert params_changes(old, new) == [("train.lr", 0.003, 0.01), ("gone", 1, None), ("added", None, "x")]
    rows = compare({"m.json": {"acc": 0.715}}, {"m.json": {"acc": 0.7}}, {"m.json": {"acc": HIGHER}})
    lines = format_table(table_cells(rows)).splitlines()
    assert lines[0].split() == ["metric", "old", "new", "change", "rule", "verdict"]
    assert lines[2].split() == ["m.json:acc", "0.715", "0.7", "-0.015", "higher,", "tol", "0.0025", REGRESSION]


# --------------------------------------------------------------------------- real git and dvc


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
