"""catsdogs.pipeline.params: each stage's parameters declared once; checks, messages, dvc.yaml keys follow from it."""

import dataclasses

import pytest
import yaml

from catsdogs.errors import ParamError
from catsdogs.pipeline.config import EvaluateParams, IngestParams, ResizeSplitParams, TrainParams
from catsdogs.pipeline.params import (
    Choice,
    Custom,
    Flag,
    Number,
    StageParams,
    describe,
    keys,
    load_section,
    param,
    stage_params,
    tracked_keys,
)
from tests.conftest import ROOT

STAGE_PARAMS = {
    "ingest": IngestParams,
    "resize_split": ResizeSplitParams,
    "train": TrainParams,
    "evaluate": EvaluateParams,
}


def test_number_accepts_values_in_range_and_normalises_integers():
    assert Number(low=0, low_open=True).check("train.lr", 0.003) == 0.003
    assert Number(low=0, low_open=True).check("train.lr", 1) == 1.0
    assert isinstance(Number(low=0, low_open=True).check("train.lr", 1), float)
    assert Number(low=1, integer=True).check("train.epochs", 10.0) == 10
    assert isinstance(Number(low=1, integer=True).check("train.epochs", 10.0), int)


@pytest.mark.parametrize(
    "value, rule, fragment",
    [
        (-0.1, Number(low=0, low_open=True), "-0.1 is out of range, expected a number > 0"),
        (0, Number(low=0, low_open=True), "out of range, expected a number > 0"),
        (1.5, Number(low=0, high=1, low_open=True, high_open=True), "expected a number > 0 and < 1"),
        (1, Number(low=0, high=1, high_open=True), "1.0 is out of range, expected a number >= 0 and < 1"),
        (2.5, Number(integer=True), "2.5 is not allowed, expected an integer"),
        (True, Number(), "True is not allowed, expected a number"),
        (None, Number(), "None is not allowed"),
        (float("nan"), Number(), "nan is not allowed"),
        (float("inf"), Number(low=0), "inf is not allowed"),
        ("fast", Number(), "'fast' is text, expected a number"),
        ("hinge", Choice(("mse", "cross_entropy")), "'hinge' is not allowed, expected one of: mse, cross_entropy"),
        ("yes", Flag(), "'yes' is not allowed, expected true or false"),
        (1, Flag(), "1 is not allowed, expected true or false"),
    ],
)
def test_rules_reject_with_key_value_and_what_is_allowed(value, rule, fragment):
    with pytest.raises(ParamError) as err:
        rule.check("group.key", value)
    assert str(err.value).startswith("params.yaml: group.key = ")
    assert fragment in str(err.value)


def test_load_section_reports_missing_and_unknown_keys(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 0.1\n  epochs: 3\n")
    assert load_section("train", ("lr", "epochs"), path) == {"lr": 0.1, "epochs": 3}
    with pytest.raises(ParamError, match=r"missing key train.loss"):
        load_section("train", ("lr", "epochs", "loss"), path)
    with pytest.raises(ParamError, match=r"unknown key train.epochs \(allowed keys: lr\)"):
        load_section("train", ("lr",), path)
    with pytest.raises(ParamError, match=r"missing group `evaluate:`"):
        load_section("evaluate", ("threshold",), path)
    with pytest.raises(ParamError, match="file not found"):
        load_section("train", ("lr",), tmp_path / "nope.yaml")
    path.write_text("train: [unclosed\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        load_section("train", ("lr",), path)


@pytest.mark.parametrize(
    "written, value",
    [
        ("1e-05", 1e-05),  # what `dvc exp run -S train.lr=0.00001` writes (YAML 1.2); PyYAML reads text
        ("1e-3", 0.001),
        ("1.0e6", 1e6),
        ("1E+2", 100.0),
        ("0.003", 0.003),
        ("3", 3.0),
    ],
)
def test_params_yaml_is_read_as_dvc_reads_it(tmp_path, written, value):
    text = (ROOT / "params.yaml").read_text()
    assert "  lr: 0.003\n" in text
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("  lr: 0.003\n", f"  lr: {written}\n"))
    assert TrainParams.read(path).lr == value


def test_yaml_1_1_booleans_are_not_booleans(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("  draft: true\n", "  draft: yes\n"))
    with pytest.raises(ParamError, match="resize_split.draft = 'yes' is not allowed, expected true or false"):
        ResizeSplitParams.read(path)


def test_a_bad_value_is_reported_in_the_file_actually_read(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text((ROOT / "params.yaml").read_text().replace("  lr: 0.003\n", "  lr: -1\n"))
    with pytest.raises(ParamError) as err:
        TrainParams.read(path)
    assert str(err.value) == f"{path}: train.lr = -1.0 is out of range, expected a number > 0 and <= 1000000.0"


@pytest.mark.parametrize("stage", STAGE_PARAMS)
def test_params_yaml_has_exactly_the_declared_keys_with_the_declared_defaults(stage):
    """The shipped params.yaml is the declared defaults: what a user reads there is what code assumes."""
    cls = STAGE_PARAMS[stage]
    assert cls.read(ROOT / "params.yaml") == cls()
    document = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert tuple(document[stage]) == keys(cls)


def test_every_group_of_params_yaml_belongs_to_a_stage():
    document = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(document) == set(STAGE_PARAMS)


@pytest.mark.parametrize("stage", STAGE_PARAMS)
def test_dvc_yaml_lists_exactly_the_tracked_keys(stage):
    """DVC reruns a stage when a listed key changes: every key the output depends on must be listed,
    and keys that do not change the output (worker counts) must not be."""
    definition = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    assert definition.get("params", []) == tracked_keys(STAGE_PARAMS[stage])


def test_objects_built_in_code_are_checked_too():
    with pytest.raises(ParamError, match="train.lr = -1.0 is out of range"):
        TrainParams(lr=-1)
    with pytest.raises(ParamError, match="train.gradient = 'notebook' is only defined for train.loss = 'mse'"):
        TrainParams(loss="cross_entropy", gradient="notebook")
    assert dataclasses.replace(TrainParams(), epochs=7.0).epochs == 7


@pytest.mark.parametrize("stage", STAGE_PARAMS)
def test_help_lists_every_parameter_with_what_is_allowed(stage):
    cls = STAGE_PARAMS[stage]
    text = describe(cls)
    for spec in dataclasses.fields(cls):
        assert f"  {spec.name}: " in text
        assert spec.metadata["allowed"].describe() in text


# --------------------------------------------------------------------------- the declaration mechanism
# On a stage declared inside the tests: the stages' own classes are declared at import time, before any
# test runs, so only a declaration made here exercises stage_params() and param() under test.


def declare_toy():
    """A stage with every kind of parameter, an untracked one and a check between fields."""

    @stage_params("toy")
    class ToyParams(StageParams):
        rate: float = param(default=0.5, allowed=Number(low=0, high=1), help="share of something")
        n: int = param(default=3, allowed=Number(low=1, integer=True), help="how many")
        mode: str = param(default="a", allowed=Choice(("a", "b")), help="which way")
        jobs: int = param(default=1, allowed=Number(low=1, integer=True), help="worker processes", tracked=False)

        def check_together(self):
            if self.mode == "b" and self.n > 5:
                raise ParamError(f"params.yaml: toy.n = {self.n} is only allowed up to 5 with toy.mode = 'b'")

    return ToyParams


def test_a_declared_stage_has_its_defaults_keys_and_tracked_keys():
    toy = declare_toy()
    assert toy.section == "toy"
    assert (toy().rate, toy().n, toy().mode, toy().jobs) == (0.5, 3, "a", 1)
    assert keys(toy) == ("rate", "n", "mode", "jobs")
    assert tracked_keys(toy) == ["toy.rate", "toy.n", "toy.mode"]


def test_building_a_declared_stage_checks_normalises_and_freezes():
    toy = declare_toy()
    built = toy(rate=1, n=4.0, mode="b")
    assert (built.rate, built.n) == (1.0, 4) and isinstance(built.rate, float) and isinstance(built.n, int)
    with pytest.raises(
        ParamError, match=r"^params.yaml: toy.rate = 1.5 is out of range, expected a number >= 0 and <= 1$"
    ):
        toy(rate=1.5)
    with pytest.raises(ParamError, match=r"^params.yaml: toy.mode = 'c' is not allowed, expected one of: a, b$"):
        toy(mode="c")
    with pytest.raises(ParamError, match="toy.n = 6 is only allowed up to 5 with toy.mode = 'b'"):
        toy(mode="b", n=6.0)
    assert toy(mode="a", n=6).n == 6
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.n = 5


def test_a_declared_stage_reads_its_group(tmp_path, monkeypatch):
    toy = declare_toy()
    (tmp_path / "params.yaml").write_text("other:\n  x: 1\ntoy:\n  rate: 0.25\n  n: 2.0\n  mode: b\n  jobs: 2\n")
    monkeypatch.chdir(tmp_path)
    assert toy.read() == toy(rate=0.25, n=2, mode="b", jobs=2)  # params.yaml of the current directory
    (tmp_path / "elsewhere.yaml").write_text("toy:\n  rate: 0.75\n  n: 1\n  mode: a\n  jobs: 1\n")
    assert toy.read(tmp_path / "elsewhere.yaml").rate == 0.75
    (tmp_path / "params.yaml").write_text("toy:\n  rate: 0.25\n  n: 9\n  mode: b\n  jobs: 2\n")
    with pytest.raises(ParamError, match="toy.n = 9 is only allowed up to 5"):
        toy.read()


def test_help_text_of_a_declared_stage():
    assert describe(declare_toy()) == "\n".join(
        [
            "parameters (the `toy` group of params.yaml):",
            "  rate: share of something (a number >= 0 and <= 1)",
            "  n: how many (an integer >= 1)",
            "  mode: which way (one of: a, b)",
            "  jobs: worker processes (an integer >= 1; not tracked by dvc.yaml)",
        ]
    )


@pytest.mark.parametrize(
    "rule, text",
    [
        (Number(), "a number"),
        (Number(low=0, high=1), "a number >= 0 and <= 1"),
        (Number(low=0, high=1, low_open=True, high_open=True), "a number > 0 and < 1"),
        (Number(high=10, integer=True), "an integer <= 10"),
        (Choice(("mse", "cross_entropy")), "one of: mse, cross_entropy"),
        (Flag(), "true or false"),
    ],
)
def test_what_is_allowed_reads_as_written(rule, text):
    assert rule.describe() == text


def test_a_custom_rule_gets_the_key_and_returns_its_result():
    seen = []

    def even(key, value):
        seen.append((key, value))
        if value % 2:
            raise ParamError(f"params.yaml: {key} = {value} is odd")
        return value // 2

    rule = Custom(even, "an even number")
    assert rule.check("g.k", 8) == 4 and seen == [("g.k", 8)]
    with pytest.raises(ParamError, match="g.k = 3 is odd"):
        rule.check("g.k", 3)
    assert rule.describe() == "an even number"


@pytest.mark.parametrize(
    "text, names, message",
    [
        ("toy:\n  a: 1\n", ("a", "b", "c"), "missing key toy.b, toy.c (group `toy` needs a, b, c)"),
        ("toy:\n  a: 1\n  b: 2\n  x: 3\n  y: 4\n", ("a", "b"), "unknown key toy.x, toy.y (allowed keys: a, b)"),
        ("other:\n  a: 1\n", ("a", "b"), "missing group `toy:` with keys a, b"),
        ("- toy\n- a\n", ("a", "b"), "missing group `toy:` with keys a, b"),
        ("", ("a",), "missing group `toy:` with keys a"),
        ("toy:\n  a: !custom 1\n", ("a",), "not valid YAML"),  # YAML 1.2 core schema only: no tags
    ],
)
def test_load_section_names_every_missing_or_unknown_key(tmp_path, text, names, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamError) as err:
        load_section("toy", names, path)
    assert str(err.value).startswith(f"{path}: {message}")
