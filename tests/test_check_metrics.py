"""The regression gate's pure functions, against hand-worked cases (fast: no git, no dvc; these are the
tests `make mutation` runs against tools/check_metrics.py). The real command against real `git` and
`dvc`: tests/test_check_metrics_dvc.py."""
import json
import math

import pytest
import yaml

from tests.conftest import ROOT
from tools.check_metrics import (
    BETTER, INFO, NEW, NO_VALUE, REGRESSION, REMOVED, SAME, WITHIN,
    GateError, Rule, compare, format_table, judge, load_rules, params_changes, parse_metrics, parse_rules, table_cells,
)

HIGHER, LOWER = Rule("higher", 0.0025), Rule("lower", 0.0001)




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


def committed(file):
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
    counts = committed("metrics/evaluate.json")
    tp, fp, tn, fn = (counts[k] for k in ("true_positives", "false_positives", "true_negatives", "false_negatives"))
    before = rates(tp, fp, tn, fn)[metric]
    return max(before - rates(tp - cats, fp + flips - cats, tn - flips + cats, fn + cats)[metric] for cats in range(flips + 1))


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
    counts = committed("metrics/evaluate.json")
    cats = counts["true_positives"] + counts["false_negatives"]
    assert gate_rules["metrics/evaluate.json"]["accuracy"].tolerance == pytest.approx(1 / counts["n_valid"])
    assert gate_rules["metrics/evaluate.json"]["recall"].tolerance == pytest.approx(1 / cats)


def test_roc_auc_may_lose_twenty_of_its_pairs(gate_rules):
    counts = committed("metrics/evaluate.json")
    pairs = (counts["true_positives"] + counts["false_negatives"]) * (counts["true_negatives"] + counts["false_positives"])
    assert gate_rules["metrics/evaluate.json"]["roc_auc"].tolerance * pairs == pytest.approx(AUC_PAIRS)


def test_train_accuracy_may_lose_two_training_images(gate_rules):
    n_train = committed("metrics/ingest.json")["usable"]["total"] - committed("metrics/evaluate.json")["n_valid"]
    assert gate_rules["metrics/train.json"]["train_accuracy"].tolerance == pytest.approx(2 / n_train)


@pytest.mark.parametrize("file, metric", [("metrics/evaluate.json", "mse_loss"), ("metrics/train.json", "train_loss")])
def test_mse_losses_may_move_ten_thousand_times_the_measured_drift(gate_rules, file, metric):
    assert gate_rules[file][metric].tolerance == pytest.approx(MEASURED_LOSS_DRIFT * LOSS_MARGIN)


def test_log_loss_gets_the_mse_margin_scaled_by_their_ratio(gate_rules):
    """The same relative margin as the MSE: the log loss is about 6 times the MSE (rounded down: 5)."""
    metrics = committed("metrics/evaluate.json")
    ratio = math.floor(metrics["log_loss"] / metrics["mse_loss"])
    expected = MEASURED_LOSS_DRIFT * LOSS_MARGIN * ratio
    assert gate_rules["metrics/evaluate.json"]["log_loss"].tolerance == pytest.approx(expected)
