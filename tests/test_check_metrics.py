"""The regression gate: its pure functions against hand-worked cases, the committed rules against their
rationale, then the command (main) on metrics files in a real temporary git repository. Fast (no dvc):
these are the tests `make mutation` runs against tools/check_metrics.py. The gate after real `dvc repro`
runs: tests/test_check_metrics_dvc.py."""

import contextlib
import io
import json
import math
import shutil
import subprocess

import pytest
import yaml

from catsdogs.pipeline.dvc_files import stage_path
from tests.conftest import ROOT, help_text
from tools.check_metrics import (
    GateError,
    compare,
    judge,
    load_params,
    load_rules,
    main,
    params_changes,
    parse_metrics,
    parse_rules,
)
from tools.gate_report import format_table, markdown_text, report_markdown, summary, table_cells
from tools.gate_verdicts import BETTER, INFO, NEW, NO_VALUE, REGRESSION, REMOVED, SAME, WITHIN, Row, Rule
from tools.loss_curves import plot_loss_curves

HIGHER, LOWER = Rule("higher", 0.0025), Rule("lower", 0.0001)


@pytest.mark.parametrize(
    "old, new, rule, verdict",
    [
        (0.715, 0.715, HIGHER, SAME),
        (0.715, 0.72, HIGHER, BETTER),
        (0.715, 0.7125, HIGHER, WITHIN),  # exactly one tolerance worse passes, despite float rounding
        (0.715, 0.7124, HIGHER, REGRESSION),
        (1e-9, 0.0, Rule("higher", 0.0), WITHIN),  # worse by exactly tolerance + SLACK still passes
        (0.0, 1.1e-9, Rule("lower", 0.0), REGRESSION),
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
        "acc": REGRESSION,
        "loss": SAME,
        "gone": REMOVED,
        "extra": NEW,
    }
    assert rows["acc"].change == pytest.approx(-0.1) and rows["acc"].failed
    assert not rows["extra"].failed and rows["gone"].failed
    assert compare(old, {"m.json": old["m.json"]}, rules)[0].verdict == SAME


def test_a_metric_without_a_rule_is_shown_as_info():
    rows = compare({"m.json": {"acc": 0.7, "n": 155}}, {"m.json": {"acc": 0.7, "n": 150}}, {"m.json": {"acc": HIGHER}})
    assert [(row.metric, row.rule, row.verdict) for row in rows] == [("acc", HIGHER, SAME), ("n", Rule("info"), INFO)]


def test_a_metrics_file_new_in_the_workspace_passes():
    rows = compare({}, {"m.json": {"acc": 0.7}}, {"m.json": {"acc": HIGHER}})
    assert [(row.old, row.new, row.verdict, row.failed) for row in rows] == [(None, 0.7, NEW, False)]


def test_a_whole_metrics_file_missing_in_the_workspace_fails_every_metric():
    rows = compare({"m.json": {"acc": 0.7}}, {}, {"m.json": {"acc": HIGHER}})
    assert [(row.verdict, row.new) for row in rows] == [(REMOVED, None)]


def test_a_rule_for_a_metric_found_nowhere_is_an_error():
    with pytest.raises(GateError, match="metrics_gate.yaml: m.json: no metric acuracy, los at the base revision"):
        compare({"m.json": {"acc": 0.7}}, {"m.json": {"acc": 0.7}}, {"m.json": {"acuracy": HIGHER, "los": LOWER}})


def test_rules_are_read_as_written():
    document = {
        "m.json": {"acc": {"direction": "higher", "tolerance": 0.01}, "n": {"direction": "info"}},
        "t.json": {"loss": {"direction": "lower", "tolerance": 0}},
    }
    assert parse_rules(document) == {
        "m.json": {"acc": Rule("higher", 0.01), "n": Rule("info", 0.0)},
        "t.json": {"loss": Rule("lower", 0.0)},
    }


@pytest.mark.parametrize(
    "document, message",
    [
        ([], "expected a mapping of metrics files"),
        ({}, "expected a mapping of metrics files to their metrics, got {}"),
        (["m.json"], "expected a mapping of metrics files to their metrics, got ['m.json']"),
        ({"m.json": {}}, "m.json: expected a mapping of metric names to rules, got {}"),
        ({"m.json": ["acc"]}, "m.json: expected a mapping of metric names to rules, got ['acc']"),
        (
            {"m.json": {"acc": {"direction": "up", "tolerance": 0.1}}},
            "m.json: acc: expected {direction: higher | lower | info",
        ),
        ({"m.json": {"acc": {"direction": "higher", "tolerance": -1}}}, "tolerance = -1, expected a number >= 0"),
        ({"m.json": {"acc": {"direction": "higher"}}}, "tolerance = None, expected a number >= 0"),
        ({"m.json": {"n": {"direction": "info", "tolerance": 1}}}, "takes no tolerance"),
        (
            {"m.json": {"acc": {"direction": "higher", "tolerance": 0, "shift": 1, "scale": 2}}},
            "unknown key scale, shift (allowed",
        ),
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
        "valid.acc": 0.5,
        "valid.auc": None,
        "n": 3,
    }


def test_params_changes():
    old = {"train": {"lr": 0.003, "epochs": 10}, "gone": 1}
    new = {"train": {"lr": 0.01, "epochs": 10}, "added": "x"}
    assert params_changes(old, new) == [("train.lr", 0.003, 0.01), ("gone", 1, None), ("added", None, "x")]


TABLE_ROWS = [
    Row("m.json", "acc", 0.715, 0.7, HIGHER, REGRESSION),
    Row("m.json", "n", 155, 150, Rule("info"), INFO),
    Row("m.json", "auc", None, 0.5, HIGHER, NEW),
]


def test_the_table_aligns_numbers_right_and_text_left():
    assert format_table(table_cells(TABLE_ROWS)) == "\n".join(
        [
            "metric        old  new  change  rule                verdict",
            "----------  -----  ---  ------  ------------------  ----------",
            "m.json:acc  0.715  0.7  -0.015  higher, tol 0.0025  REGRESSION",
            "m.json:n      155  150      -5  info                info",
            "m.json:auc      -  0.5       -  higher, tol 0.0025  new",
        ]
    )


def test_markdown_text_escapes_html_quotes_markdown_and_links_word_for_word():
    """Each special character by hand: HTML's five as entities (quotes too: a value may land in an
    attribute), Markdown's behind a backslash (the backslash, doubled by common.escape, twice), `_` only
    at a word's edge, `://` broken up."""
    assert markdown_text("""a|b <i>&"q" 'r' #1 *x* [l](u) ~s~ `c` \\ _e_ mse_loss http://x""") == (
        r"a\|b &lt;i&gt;&amp;&quot;q&quot; &#x27;r&#x27; \#1 \*x\* \[l\](u) \~s\~ \`c\` \\\\ \_e\_ mse_loss http:\/\/x"
    )


def test_the_report_for_a_pull_request():
    params = [("train.lr", 0.003, 0.01), ("train.l2", None, 0.1)]
    assert report_markdown(TABLE_ROWS, "main", params, "loss_curves.png") == "\n".join(
        [
            "## Metrics gate: FAIL",
            "",
            "FAIL: 1 metric(s) worse than allowed against main: acc (REGRESSION)",
            "",
            "| metric | old | new | change | rule | verdict |",
            "|---|---|---|---|---|---|",
            "| m.json:acc | 0.715 | 0.7 | -0.015 | higher, tol 0.0025 | REGRESSION |",
            "| m.json:n | 155 | 150 | -5 | info | info |",
            "| m.json:auc | - | 0.5 | - | higher, tol 0.0025 | new |",
            "",
            "### Params changed since main",
            "",
            "| param | old | new |",
            "|---|---|---|",
            "| train.lr | 0.003 | 0.01 |",
            "| train.l2 | - | 0.1 |",
            "",
            "### Loss curves",
            "",
            "![loss curves, main and workspace](loss_curves.png)",
            "",
        ]
    )
    passing = report_markdown(TABLE_ROWS[1:], "HEAD", [], None)
    assert passing.startswith("## Metrics gate: PASS\n\nPASS: no metric worse than its tolerance against HEAD\n")
    assert passing.endswith(
        "### Params changed since HEAD\n\nNo parameter changed.\n\n### Loss curves\n\nNo loss history to draw.\n"
    )


# --------------------------------------------------------------------------- the committed rules
# Every judged metric's rule in metrics_gate.yaml, each expected value derived from what the metric
# means and from the measurements the rules rest on (README "Regression gate"), not copied from the file.

# Which way is better follows from what a metric measures: its value for a perfect model and for the
# worst possible one; the good direction points from the worst to the perfect.
PERFECT_AND_WORST = {
    "metrics/evaluate.json": {
        "accuracy": (1, 0),  # share of validation images classified right
        "precision": (1, 0),  # share of images called cat that are cats
        "recall": (1, 0),  # share of the cats called cat
        "f1": (1, 0),  # harmonic mean of precision and recall
        "roc_auc": (1, 0),  # share of (cat, dog) pairs where the cat gets the higher P(cat)
        "log_loss": (0, math.inf),  # mean -log P(true class)
        "mse_loss": (0, 1),  # mean (P(cat) - y)^2, both in [0, 1]
    },
    "metrics/train.json": {
        "train_loss": (0, 1),  # the training objective, MSE as above
        "train_accuracy": (1, 0),
    },
}
# Shown, never judged: confusion counts are neither better nor worse alone (more true positives can come
# with more false positives; the judged rates combine them), n_valid is the data's size, epoch the one kept.
NOT_JUDGED = {
    "metrics/evaluate.json": {"true_positives", "false_positives", "true_negatives", "false_negatives", "n_valid"},
    "metrics/train.json": {"epoch"},
}
# Measured: training in another summation order (another BLAS kernel, a blocked implementation) moved no
# loss of the 5,000-epoch history by more than 1e-8 (README "Regression gate"); losses get 10,000 times that.
MEASURED_LOSS_DRIFT, LOSS_MARGIN = 1e-8, 10_000
# Documented: ROC AUC may lose 20 of its (cat, dog) pairs (metrics_gate.yaml's header).
AUC_PAIRS = 20


def shipped(file):
    """A metrics file as committed in the project."""
    return json.loads((ROOT / file).read_text())


def rates(tp, fp, tn, fn):
    """Accuracy, precision, recall and F1 from confusion counts (textbook definitions)."""
    return {
        "accuracy": (tp + tn) / (tp + fp + tn + fn),
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
    }


def largest_drop(metric, flips):
    """How much `metric` of the committed confusion counts drops, at worst, when `flips` validation
    images that were right cross the threshold (any mix of cats and dogs)."""
    counts = shipped("metrics/evaluate.json")
    tp, fp, tn, fn = (counts[k] for k in ("true_positives", "false_positives", "true_negatives", "false_negatives"))
    before = rates(tp, fp, tn, fn)[metric]
    return max(
        before - rates(tp - cats, fp + flips - cats, tn - flips + cats, fn + cats)[metric] for cats in range(flips + 1)
    )


@pytest.fixture(scope="module")
def gate_rules():
    return load_rules(ROOT / "metrics_gate.yaml")


@pytest.mark.parametrize("file, metric", [(f, m) for f, metrics in PERFECT_AND_WORST.items() for m in metrics])
def test_each_judged_metric_is_better_towards_its_perfect_value(gate_rules, file, metric):
    perfect, worst = PERFECT_AND_WORST[file][metric]
    assert gate_rules[file][metric].direction == ("higher" if perfect > worst else "lower")


def test_counts_sizes_and_the_kept_epoch_are_shown_not_judged(gate_rules):
    for file, metrics in NOT_JUDGED.items():
        assert {m for m, rule in gate_rules[file].items() if rule.direction == "info"} == metrics
        assert set(gate_rules[file]) == metrics | set(PERFECT_AND_WORST[file])


@pytest.mark.parametrize("metric", ["accuracy", "precision", "recall", "f1"])
def test_a_classification_rate_may_lose_one_validation_image_not_two(gate_rules, metric):
    """One image that was right crossing the 0.5 threshold passes (run-to-run noise could do that);
    two of them, in the worst mix of cats and dogs, fail."""
    tolerance = gate_rules["metrics/evaluate.json"][metric].tolerance
    assert largest_drop(metric, 1) <= tolerance + 1e-9 < largest_drop(metric, 2)


def test_accuracy_and_recall_tolerances_are_exactly_one_image(gate_rules):
    counts = shipped("metrics/evaluate.json")
    cats = counts["true_positives"] + counts["false_negatives"]
    assert gate_rules["metrics/evaluate.json"]["accuracy"].tolerance == pytest.approx(1 / counts["n_valid"])
    assert gate_rules["metrics/evaluate.json"]["recall"].tolerance == pytest.approx(1 / cats)


def test_roc_auc_may_lose_twenty_of_its_pairs(gate_rules):
    counts = shipped("metrics/evaluate.json")
    pairs = (counts["true_positives"] + counts["false_negatives"]) * (
        counts["true_negatives"] + counts["false_positives"]
    )
    assert gate_rules["metrics/evaluate.json"]["roc_auc"].tolerance * pairs == pytest.approx(AUC_PAIRS)


def test_train_accuracy_may_lose_two_training_images(gate_rules):
    n_train = shipped("metrics/ingest.json")["usable"]["total"] - shipped("metrics/evaluate.json")["n_valid"]
    assert gate_rules["metrics/train.json"]["train_accuracy"].tolerance == pytest.approx(2 / n_train)


@pytest.mark.parametrize("file, metric", [("metrics/evaluate.json", "mse_loss"), ("metrics/train.json", "train_loss")])
def test_mse_losses_may_move_ten_thousand_times_the_measured_drift(gate_rules, file, metric):
    assert gate_rules[file][metric].tolerance == pytest.approx(MEASURED_LOSS_DRIFT * LOSS_MARGIN)


def test_log_loss_gets_the_mse_margin_scaled_by_their_ratio(gate_rules):
    """The same relative margin as the MSE: the log loss is about 6 times the MSE (rounded down: 5)."""
    metrics = shipped("metrics/evaluate.json")
    ratio = math.floor(metrics["log_loss"] / metrics["mse_loss"])
    expected = MEASURED_LOSS_DRIFT * LOSS_MARGIN * ratio
    assert gate_rules["metrics/evaluate.json"]["log_loss"].tolerance == pytest.approx(expected)


# --------------------------------------------------------------------------- the command, on a real git repository

HISTORY_FILE = stage_path("train", "--history", ROOT / "dvc.yaml")  # where the gate looks for it
HISTORY = "epoch,train_loss,valid_loss\n0,0.125,0.125\n1,0.12,0.121\n2,0.115,0.118\n"


def git(repo, *args):
    return subprocess.run(
        ["git", "-c", "user.name=gate test", "-c", "user.email=gate@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository (the current directory) with the project's committed metrics files, gate rules,
    params.yaml and dvc.yaml (which names the loss history's file), and a short loss history, committed.
    No dvc: the gate reads files and git only."""
    for name in ("metrics/evaluate.json", "metrics/train.json", "metrics_gate.yaml", "params.yaml", "dvc.yaml"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / HISTORY_FILE).parent.mkdir()
    (tmp_path / HISTORY_FILE).write_text(HISTORY)
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "metrics")
    monkeypatch.chdir(tmp_path)
    return tmp_path


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


def verdicts(output):
    """{metric: verdict} from the gate's printed table."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("metrics/"):
            metric = line.split()[0].split(":", 1)[1]
            rows[metric] = line.split("  ")[-1].strip()
    return rows


def test_identical_metrics_pass(repo):
    result = gate(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        f"Workspace metrics against HEAD ({head[:7]}), rules from metrics_gate.yaml:\n\nmetric "
    )
    assert result.stdout.endswith("\nPASS: no metric worse than its tolerance against HEAD\n")
    assert set(verdicts(result.stdout).values()) == {SAME}
    assert len(verdicts(result.stdout)) == len(shipped("metrics/evaluate.json")) + len(shipped("metrics/train.json"))


def test_within_tolerance_passes(repo):
    old = shipped("metrics/evaluate.json")
    edit_metrics(repo, accuracy=old["accuracy"] - 0.0025, mse_loss=old["mse_loss"] + 0.0001)
    result = gate(repo)
    assert result.returncode == 0, result.stdout
    assert verdicts(result.stdout)["accuracy"] == WITHIN and verdicts(result.stdout)["mse_loss"] == WITHIN


@pytest.mark.parametrize(
    "file, metric, delta",
    [
        ("metrics/evaluate.json", "accuracy", -0.005),
        ("metrics/evaluate.json", "roc_auc", -0.01),
        ("metrics/evaluate.json", "mse_loss", +0.001),
        ("metrics/evaluate.json", "log_loss", +0.01),
        ("metrics/train.json", "train_loss", +0.001),
    ],
)
def test_beyond_tolerance_the_wrong_way_fails(repo, file, metric, delta):
    edit_metrics(repo, file, **{metric: shipped(file)[metric] + delta})
    result = gate(repo)
    assert result.returncode == 1
    assert verdicts(result.stdout)[metric] == REGRESSION
    assert result.stdout.endswith(f"\nFAIL: 1 metric(s) worse than allowed against HEAD: {metric} (REGRESSION)\n")


def test_beyond_tolerance_the_right_way_passes(repo):
    old = shipped("metrics/evaluate.json")
    edit_metrics(repo, accuracy=old["accuracy"] + 0.05, mse_loss=old["mse_loss"] - 0.01)
    result = gate(repo)
    assert result.returncode == 0
    assert verdicts(result.stdout)["accuracy"] == BETTER and verdicts(result.stdout)["mse_loss"] == BETTER


def test_new_metric_passes_and_removed_metric_fails(repo):
    edit_metrics(repo, balanced_accuracy=0.5)
    result = gate(repo)
    assert result.returncode == 0 and verdicts(result.stdout)["balanced_accuracy"] == NEW
    edit_metrics(repo, roc_auc=None)
    result = gate(repo)
    assert result.returncode == 1 and verdicts(result.stdout)["roc_auc"] == REMOVED


def test_missing_metrics_file_fails(repo):
    (repo / "metrics/train.json").unlink()
    result = gate(repo)
    assert result.returncode == 1
    assert verdicts(result.stdout)["train_loss"] == REMOVED


def test_a_metrics_file_absent_at_the_base_is_new(repo):
    git(repo, "rm", "-q", "--cached", "metrics/train.json")
    git(repo, "commit", "-qm", "no train metrics yet")
    result = gate(repo)
    assert result.returncode == 0, result.stdout
    assert {metric: verdicts(result.stdout)[metric] for metric in shipped("metrics/train.json")} == {
        metric: NEW for metric in shipped("metrics/train.json")
    }


def test_an_older_base_revision_is_read_from_git(repo):
    """Against HEAD~1 the gate judges the metrics of that commit, not HEAD's or the workspace's."""
    old = shipped("metrics/evaluate.json")
    edit_metrics(repo, accuracy=old["accuracy"] - 0.1)
    git(repo, "commit", "-qam", "worse model")
    assert gate(repo).returncode == 0
    result = gate(repo, "--base", "HEAD~1")
    assert result.returncode == 1 and verdicts(result.stdout)["accuracy"] == REGRESSION
    assert "against HEAD~1: accuracy (REGRESSION)" in result.stdout


def test_malformed_metrics_file_fails_clearly(repo):
    (repo / "metrics/evaluate.json").write_text('{"accuracy": 0.7,')
    result = gate(repo)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("check_metrics: error: workspace:metrics/evaluate.json: not valid JSON")


def test_malformed_metrics_at_the_base_revision_fails_clearly(repo):
    (repo / "metrics/train.json").write_text('{"train_loss": "low"}')
    git(repo, "commit", "-qam", "broken metrics")
    result = gate(repo, "--base", "HEAD")
    assert result.returncode == 2
    assert "HEAD:metrics/train.json: metric train_loss = 'low' is not a finite number" in result.stderr


@pytest.mark.parametrize("revision", ["no-such-branch", "0123456789abcdef0123456789abcdef01234567", "HEAD~5", "--all"])
def test_unknown_revision_fails_clearly(repo, revision):
    result = gate(repo, f"--base={revision}")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"check_metrics: error: unknown revision '{revision}': git knows no commit by that name (try `git log --oneline`)\n"
    )


@pytest.mark.parametrize(
    "config, message",
    [
        (None, "nope.yaml: file not found (run from the project root)"),
        ("metrics/evaluate.json: [unclosed\n", "nope.yaml: not valid YAML"),
        (
            "metrics/evaluate.json: {accuracy: {direction: up}}\n",
            "nope.yaml: metrics/evaluate.json: accuracy: expected",
        ),
        ("metrics/evaluate.json: !rules {}\n", "nope.yaml: not valid YAML"),  # YAML 1.2 core schema only: no tags
    ],
)
def test_a_bad_config_fails_clearly(repo, config, message):
    if config is not None:
        (repo / "nope.yaml").write_text(config)
    result = gate(repo, "--config", "nope.yaml")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"check_metrics: error: {message}")


def test_a_worse_model_fails_with_a_report(repo):
    """--report writes the Markdown report (verdict, table, params diff) and the loss curves of the base
    and the workspace."""
    old = shipped("metrics/evaluate.json")
    edit_metrics(repo, mse_loss=old["mse_loss"] + 0.01)
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("  lr: 0.003\n", "  lr: 0.01\n"))
    (repo / HISTORY_FILE).write_text(HISTORY.replace("0.115,0.118", "0.2,0.25"))
    result = gate(repo, "--report", "reports")
    assert result.returncode == 1
    assert result.stdout.endswith("\nReport: reports/metrics_report.md\n")
    report = (repo / "reports/metrics_report.md").read_text()
    assert report.startswith(
        "## Metrics gate: FAIL\n\nFAIL: 1 metric(s) worse than allowed against HEAD: mse_loss (REGRESSION)\n"
    )
    assert "| metrics/evaluate.json:mse_loss | 0.098597 | 0.108597 | +0.01 | lower, tol 0.0001 | REGRESSION |" in report
    assert (
        "### Params changed since HEAD\n\n| param | old | new |\n|---|---|---|\n| train.lr | 0.003 | 0.01 |\n\n"
        in report
    )
    assert report.endswith("![loss curves, HEAD and workspace](loss_curves.png)\n")
    assert (repo / "reports/loss_curves.png").read_bytes().startswith(b"\x89PNG")


def test_a_report_without_loss_histories_says_so(repo):
    (repo / HISTORY_FILE).unlink()
    git(repo, "commit", "-qam", "no history")
    result = gate(repo, "--report", "out/reports")
    assert result.returncode == 0
    report = (repo / "out/reports/metrics_report.md").read_text()
    assert report.endswith("No parameter changed.\n\n### Loss curves\n\nNo loss history to draw.\n")
    assert not (repo / "out/reports/loss_curves.png").exists()


def test_an_unreadable_params_file_fails_the_report_clearly(repo):
    (repo / "params.yaml").write_text("train: [unclosed\n")
    result = gate(repo, "--report", "reports")
    assert result.returncode == 2
    assert result.stderr.startswith("check_metrics: error: workspace:params.yaml: not valid YAML")


def test_the_summary_names_every_failing_metric():
    rows = compare(
        {"m.json": {"acc": 0.7, "auc": 0.8, "loss": 0.1}},
        {"m.json": {"acc": 0.6, "loss": 0.1}},
        {"m.json": {"acc": HIGHER, "auc": HIGHER, "loss": LOWER}},
    )
    assert summary(rows, "main") == "FAIL: 2 metric(s) worse than allowed against main: acc (REGRESSION), auc (REMOVED)"


def test_the_report_draws_the_base_and_the_workspace_histories(repo, monkeypatch):
    """The chart gets the base's history (from git) and the workspace's, each under its label (a spy on
    the real plotting function, which still draws the PNG)."""
    drawn = []

    def spy(histories, path, title):
        drawn.append(({label: frame["train_loss"].tolist() for label, frame in histories.items()}, title))
        plot_loss_curves(histories, path, title)

    monkeypatch.setattr("tools.check_metrics.plot_loss_curves", spy)
    (repo / HISTORY_FILE).write_text(HISTORY.replace("0.115,0.118", "0.2,0.25"))
    (repo / "reports").mkdir()  # an existing report directory is reused
    assert gate(repo, "--base", "HEAD", "--report", "reports").returncode == 0
    assert drawn == [
        ({"HEAD": [0.125, 0.12, 0.115], "workspace": [0.125, 0.12, 0.2]}, "Loss curves: HEAD and workspace")
    ]
    assert (repo / "reports/loss_curves.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("where", ["HEAD", "workspace"])
def test_a_malformed_history_or_params_file_is_named_with_its_revision(repo, where):
    for name, text, message in [
        (
            str(HISTORY_FILE),
            "epoch,loss\n0,0.1\n",
            f"{where}:plots/train_history.csv: missing columns train_loss, valid_loss",
        ),
        ("params.yaml", "train: [unclosed\n", f"{where}:params.yaml: not valid YAML"),
        ("params.yaml", "train:\n  lr: !custom 0.1\n", f"{where}:params.yaml: not valid YAML"),
    ]:
        original = (repo / name).read_text()
        (repo / name).write_text(text)
        if where == "HEAD":
            git(repo, "commit", "-qam", "broken")
            (repo / name).write_text(original)
        result = gate(repo, "--report", "reports")
        assert result.returncode == 2 and result.stderr.startswith(f"check_metrics: error: {message}"), result.stderr
        (repo / name).write_text(original)
        if where == "HEAD":
            git(repo, "commit", "-qam", "fixed")


def test_params_yaml_missing_or_empty_on_one_side_lists_every_param(repo):
    git(repo, "rm", "-q", "--cached", "params.yaml")
    git(repo, "commit", "-qm", "no params yet")
    assert gate(repo, "--report", "reports").returncode == 0
    assert "| train.lr | - | 0.003 |" in (repo / "reports/metrics_report.md").read_text()
    (repo / "params.yaml").write_text("")
    git(repo, "add", "params.yaml")
    git(repo, "commit", "-qm", "empty params")
    (repo / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    assert gate(repo, "--report", "reports").returncode == 0
    assert "| train.lr | - | 0.003 |" in (repo / "reports/metrics_report.md").read_text()


def test_a_file_git_lists_but_cannot_read_at_the_base_is_an_error(repo):
    """A truncated object: `git cat-file -e` finds it, `git show` fails (git 2.39 says nothing on stderr);
    the gate names the file and the revision."""
    blob = git(repo, "rev-parse", "HEAD:metrics/train.json").strip()
    path = repo / ".git/objects" / blob[:2] / blob[2:]
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-6])
    head = git(repo, "rev-parse", "HEAD").strip()
    result = gate(repo)
    assert result.returncode == 2
    assert result.stderr.startswith(f"check_metrics: error: git show {head}:./metrics/train.json failed: ")


def test_help_says_what_the_exit_statuses_and_options_mean(capsys):
    """The exit statuses the tests above observe and the options they use, as --help states them
    (argparse rewraps the lines)."""
    text = help_text(main, capsys)
    assert text.startswith("usage: check_metrics [-h] [--base BASE] [--config CONFIG] [--report DIR] ")
    assert (
        "Compare the workspace metrics with those committed at a base revision, metric by metric, under the "
        "direction and tolerance in metrics_gate.yaml. Prints a table (old, new, change, verdict). "
        "Exit 0: no regression; 1: a metric worse than its tolerance, or one that disappeared (a new metric "
        "passes); 2: unknown revision, malformed metrics file or config; 3: a file system error writing the report. Run from the project root."
    ) in text
    assert "--base BASE revision to compare with (default: HEAD; on a branch: main)" in text
    assert "--config CONFIG gate rules (default: metrics_gate.yaml)" in text
    assert (
        "--report DIR also write DIR/metrics_report.md (metrics diff, params diff, loss curves) and DIR/loss_curves.png"
    ) in text


# --------------------------------------------------------------------------- issue 20: each refusal word for word


def test_gate_rules_that_cannot_be_read_say_why_word_for_word(tmp_path):
    def refusal(path):
        with pytest.raises(GateError) as refused:
            load_rules(path)
        return str(refused.value)

    path = tmp_path / "gate.yaml"
    path.write_bytes(b"m.json: \xff\n")
    assert refusal(path) == f"{path}: not UTF-8 text"
    path.write_text("m.json: [\n")  # the flow sequence never closed: found at the start of line 2
    assert refusal(path).startswith(f"{path}: not valid YAML (") and refusal(path).endswith(" (line 2, column 1))")
    path.write_text("[" * 5000)
    assert refusal(path) == f"{path}: cannot be read (nested too deep)"
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    assert (
        refusal(tmp_path / "loop.yaml")
        == f"{tmp_path / 'loop.yaml'}: cannot be read (Too many levels of symbolic links)"
    )


def test_a_params_file_that_cannot_be_parsed_is_a_gate_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("train: [\n")
    with pytest.raises(GateError) as refused:
        load_params(None, "workspace")
    assert str(refused.value).startswith("workspace:params.yaml: not valid YAML (")
    assert str(refused.value).endswith(" (line 2, column 1))")
    (tmp_path / "params.yaml").write_text("[" * 5000)
    with pytest.raises(GateError) as refused:
        load_params(None, "workspace")
    assert str(refused.value) == "workspace:params.yaml: nested too deep"


def test_a_metrics_file_nested_too_deep_is_a_gate_error():
    with pytest.raises(GateError) as refused:
        parse_metrics("[" * 100_000, "workspace:m.json")
    assert str(refused.value) == "workspace:m.json: nested too deep to be a metrics file"


@pytest.mark.parametrize(
    "document, message",
    [
        ({1: {"a": {"direction": "info"}}}, "key 1 is not text"),
        ({"m.json": {"a": {"direction": "info"}, 2.5: {"direction": "info"}}}, "key 2.5 is not text"),
        ({"m.json": ["a", 1]}, "m.json: expected a mapping of metric names to rules, got ['a', 1]"),
    ],
)
def test_rules_name_the_key_that_is_not_text_word_for_word(document, message):
    with pytest.raises(GateError) as refused:
        parse_rules(document, "gate.yaml")
    suffix = "; metrics files and metric names are text" if "is not text" in message else ""
    assert str(refused.value) == f"gate.yaml: {message}{suffix}"


def test_the_config_path_is_shown_as_a_path(repo):
    result = gate(repo, "--config", "./metrics_gate.yaml")
    assert result.returncode == 0 and "rules from metrics_gate.yaml:" in result.stdout


def test_a_report_that_cannot_be_written_is_exit_3_with_one_line(repo):
    (repo / "taken").write_text("a file where the report's folder would go")
    result = gate(repo, "--report", "taken/report")
    assert result.returncode == 3 and result.stdout == ""
    assert (
        result.stderr == "check_metrics: error: taken/report: Not a directory; check that file or folder, then rerun\n"
    )
