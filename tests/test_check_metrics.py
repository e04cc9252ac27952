"""The regression gate's pure functions, against hand-worked cases (fast: no git, no dvc; these are the
tests `make mutation` runs against tools/check_metrics.py). The real command against real `git` and
`dvc`: tests/test_check_metrics_dvc.py."""
import pytest
import yaml

from tests.conftest import ROOT
from tools.check_metrics import (
    BETTER, INFO, NEW, NO_VALUE, REGRESSION, REMOVED, SAME, WITHIN,
    GateError, Rule, compare, format_table, judge, params_changes, parse_metrics, parse_rules, table_cells,
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
