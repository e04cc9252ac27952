"""catsdogs.pipeline.params: each stage's parameters declared once; checks, messages, dvc.yaml keys follow from it."""

import dataclasses
import os
import signal

import pytest
import yaml
from ruamel.yaml.error import MarkedYAMLError, StreamMark, YAMLError

from catsdogs.errors import ParamError
from catsdogs.pipeline import params
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
    shown,
    stage_params,
    tracked_keys,
    yaml_error_line,
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


# --------------------------------------------------------------------------- a file that is no parameters file
# Each refusal word for word (tests/test_attacks.py drives the same cases through the stages' command lines).


def test_a_folder_and_bad_bytes_are_refused_word_for_word(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(ParamError) as err:
        load_section("toy", ("a",), tmp_path / "folder")
    assert str(err.value) == f"{tmp_path / 'folder'}: cannot be read as the parameters file (Is a directory)"
    (tmp_path / "bytes.yaml").write_bytes(b"toy:\n  a: caf\xe9\n")
    with pytest.raises(ParamError) as err:
        load_section("toy", ("a",), tmp_path / "bytes.yaml")
    assert (
        str(err.value) == f"{tmp_path / 'bytes.yaml'}: not UTF-8 text (byte 0xe9 at offset 13)"
    )  # 5 + 5 + 3 bytes before it


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    """Opened without O_NONBLOCK, a FIFO with no writer blocks the open for ever: SIGALRM ends the test."""
    os.mkfifo(tmp_path / "fifo")

    def timeout(signum, frame):
        raise TimeoutError("the open of a FIFO blocked")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(10)
    try:
        with pytest.raises(ParamError) as err:
            load_section("toy", ("a",), tmp_path / "fifo")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert str(err.value) == f"{tmp_path / 'fifo'}: cannot be read as the parameters file (not a regular file)"


def test_a_file_of_exactly_max_params_bytes_is_read_and_one_byte_more_is_refused(tmp_path, monkeypatch):
    """At most MAX_PARAMS_BYTES + 1 bytes are read, in one read: enough to tell the file is too large."""
    monkeypatch.setattr(params, "MAX_PARAMS_BYTES", 20)
    reads = []
    real_open = open

    class Recorded:
        def __init__(self, *args, **kwargs):
            self.handle = real_open(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def fileno(self):
            return self.handle.fileno()

        def read(self, size=-1):
            reads.append(size)
            return self.handle.read(size)

    monkeypatch.setattr(params, "open", Recorded, raising=False)
    path = tmp_path / "p.yaml"
    path.write_text("toy:\n  a: 1234567890")  # 5 + 5 + 10 = 20 bytes: the last digit is the 20th
    assert load_section("toy", ("a",), path) == {"a": 1234567890} and reads == [21]
    path.write_text("toy:\n  a: 12345678901")  # 21 bytes
    with pytest.raises(ParamError) as err:
        load_section("toy", ("a",), path)
    assert str(err.value) == f"{path}: cannot be read as the parameters file (larger than 20 bytes)"
    assert reads == [21, 21]


def test_a_yaml_syntax_error_is_one_line_with_its_line_and_column(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("toy:\n  a: 1\n  b: [1,\n")  # the flow sequence is never closed: found at the end
    with pytest.raises(ParamError) as err:
        load_section("toy", ("a", "b"), path)
    assert str(err.value).startswith(f"{path}: not valid YAML: ")
    assert str(err.value).endswith(" (line 4, column 1)") and "\n" not in str(err.value)
    path.write_text("[" * 5000)
    with pytest.raises(ParamError) as err:
        load_section("toy", ("a",), path)
    assert str(err.value) == f"{path}: not valid YAML: nested too deep"


def test_yaml_error_line_says_what_and_where_from_any_error():
    """The problem (or else the context, or else the error's type), its white space squeezed, and the
    1-based line and column of a 0-based mark."""
    mark = StreamMark("p.yaml", 10, 2, 4)
    assert yaml_error_line(MarkedYAMLError("ctx", None, "a  bad\n  token", mark)) == "a bad token (line 3, column 5)"
    assert (
        yaml_error_line(MarkedYAMLError(context="while  parsing", problem_mark=mark))
        == "while parsing (line 3, column 5)"
    )
    assert yaml_error_line(MarkedYAMLError(problem="only a problem")) == "only a problem"
    assert yaml_error_line(YAMLError("plain")) == "YAMLError"


@pytest.mark.parametrize("length", [59, 60, 61, 100])
def test_shown_cuts_a_long_repr_to_60_characters(length):
    text = "x" * (length - 2)  # its repr has the two quotes
    expected = repr(text) if length <= 60 else repr(text)[:57] + "..."
    assert shown(text) == expected and len(shown(text)) == min(length, 60)
    assert shown(text, limit=10) == repr(text)[:7] + "..."


def test_a_number_too_large_for_a_float_is_out_of_range_and_shown_cut():
    with pytest.raises(ParamError) as err:
        Number(low=0).check("g.seed", 10**400)
    assert str(err.value) == f"params.yaml: g.seed = {'1' + '0' * 56}... is out of range, expected a number >= 0"


def test_a_message_that_does_not_name_params_yaml_is_kept_as_is_when_reading_another_file(tmp_path):
    def refuse(key, value):
        raise ParamError(f"{key}: refused by its own rule")

    @stage_params("toy")
    class ToyParams(StageParams):
        a: int = param(default=1, allowed=Custom(refuse, "nothing"), help="a value")

    (tmp_path / "other.yaml").write_text("toy:\n  a: 2\n")
    with pytest.raises(ParamError) as err:
        ToyParams.read(tmp_path / "other.yaml")
    assert str(err.value) == "toy.a: refused by its own rule"
