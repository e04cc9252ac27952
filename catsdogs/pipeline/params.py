"""Each stage's parameters, declared once: name, allowed values, default and meaning.

A stage declares its group of params.yaml as a frozen dataclass whose fields are `param(...)`s:

    @stage_params("train")
    class TrainParams(StageParams):
        lr: float = param(default=0.003, allowed=Number(low=0, low_open=True), help="learning rate of the update")

From that one declaration follow: the checks (run whenever the object is built, from params.yaml or in
code), the error messages (key, value, what is allowed), the stage's `--help` listing, and the keys
dvc.yaml must list for the stage (`tracked_keys`; a test compares them).

params.yaml is read as DVC reads and writes it: ruamel.yaml, YAML 1.2, so `lr: 1e-05` (what
`dvc exp run -S train.lr=0.00001` writes) is the number 1e-05.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar, dataclass_transform

from ruamel.yaml import YAML, YAMLError

from catsdogs.errors import ParamError

PARAMS_FILE = Path("params.yaml")
P = TypeVar("P", bound="StageParams")


# --------------------------------------------------------------------------- allowed values


@dataclass(frozen=True)
class Number:
    """A finite number (an int if `integer`) between `low` and `high`, each bound open or closed."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high}")
        return " ".join(["an integer" if self.integer else "a number", " and ".join(bounds)]).strip()

    def check(self, key: str, value: Any, source: str = "params.yaml") -> float | int:
        """`value`, normalised (an int if `integer`, else a float); else a ParamError naming `source: key`,
        the value and what is allowed. Also checks plain function arguments (source: the function)."""
        expected = f"expected {self.describe()}"
        if isinstance(value, str):
            raise ParamError(f"{source}: {key} = {value!r} is text, {expected}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ParamError(f"{source}: {key} = {value!r} is not allowed, {expected}")
        if self.integer:
            if not float(value).is_integer():
                raise ParamError(f"{source}: {key} = {value!r} is not allowed, {expected}")
            value = int(value)
        else:
            value = float(value)
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            raise ParamError(f"{source}: {key} = {value!r} is out of range, {expected}")
        return value


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of strings."""

    options: tuple[str, ...]

    def describe(self) -> str:
        return "one of: " + ", ".join(self.options)

    def check(self, key: str, value: Any) -> str:
        if value not in self.options:
            raise ParamError(f"params.yaml: {key} = {value!r} is not allowed, expected {self.describe()}")
        return value


@dataclass(frozen=True)
class Flag:
    """true or false (YAML booleans; not 0/1, not "yes")."""

    def describe(self) -> str:
        return "true or false"

    def check(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ParamError(f"params.yaml: {key} = {value!r} is not allowed, expected {self.describe()}")
        return value


@dataclass(frozen=True)
class Custom:
    """Checked by `function(key, value) -> value`, which raises ParamError; `text` says what is allowed."""

    function: Callable[[str, Any], Any]
    text: str

    def describe(self) -> str:
        return self.text

    def check(self, key: str, value: Any) -> Any:
        return self.function(key, value)


# --------------------------------------------------------------------------- declaring a group


def param(default: Any, allowed: Number | Choice | Flag | Custom, help: str, tracked: bool = True) -> Any:
    """One parameter of a stage. `tracked: False` when the stage's outputs do not depend on it (e.g. a
    number of worker processes), so dvc.yaml does not list it and changing it reruns nothing."""
    return field(default=default, metadata={"allowed": allowed, "help": help, "tracked": tracked})


class StageParams:
    """Base of every stage's parameter class: `section` is its group of params.yaml (set by
    stage_params), `read` builds it from that group."""

    section: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # set by stage_params' dataclass()

    @classmethod
    def read(cls, path: Path | str = PARAMS_FILE) -> Self:
        """The group `section` of the file at `path`, checked (ParamError when it cannot be used, naming
        `path`, the file actually read)."""
        values = load_section(cls.section, keys(cls), path)
        try:
            return cls(**values)
        except ParamError as err:
            prefix = f"{PARAMS_FILE}: "
            if Path(path) == PARAMS_FILE or not str(err).startswith(prefix):
                raise
            raise ParamError(f"{path}: {str(err).removeprefix(prefix)}") from None


@dataclass_transform(frozen_default=True, field_specifiers=(param,))
def stage_params(section: str) -> Callable[[type[P]], type[P]]:
    """Class decorator: make `cls` (a StageParams) a frozen dataclass of params.yaml's group `section`,
    whose fields are checked (and normalised: 10.0 -> 10 for an integer) when an instance is built. A
    method `check_together(self)` on the class, if any, then checks constraints between fields."""

    def decorate(cls: type[P]) -> type[P]:
        def __post_init__(self: P) -> None:
            for spec in dataclasses.fields(self):
                value = spec.metadata["allowed"].check(f"{section}.{spec.name}", getattr(self, spec.name))
                object.__setattr__(self, spec.name, value)
            if hasattr(self, "check_together"):
                self.check_together()

        setattr(cls, "__post_init__", __post_init__)  # noqa: B010  (before dataclass(), whose __init__ calls it)
        cls.section = section
        return dataclass(frozen=True)(cls)

    return decorate


def keys(cls: type[StageParams]) -> tuple[str, ...]:
    """The keys of a stage's group, in declaration order."""
    return tuple(spec.name for spec in dataclasses.fields(cls))


def tracked_keys(cls: type[StageParams]) -> list[str]:
    """The dotted keys dvc.yaml must list under the stage's `params:`."""
    return [f"{cls.section}.{spec.name}" for spec in dataclasses.fields(cls) if spec.metadata["tracked"]]


def describe(cls: type[StageParams]) -> str:
    """The group's parameters for a --help text: key, meaning, allowed values."""
    lines = [f"parameters (the `{cls.section}` group of params.yaml):"]
    for spec in dataclasses.fields(cls):
        untracked = "; not tracked by dvc.yaml" if not spec.metadata["tracked"] else ""
        lines.append(f"  {spec.name}: {spec.metadata['help']} ({spec.metadata['allowed'].describe()}{untracked})")
    return "\n".join(lines)


# --------------------------------------------------------------------------- reading params.yaml


def load_section(section: str, names: Sequence[str], path: Path | str = PARAMS_FILE) -> dict[str, Any]:
    """params.yaml's group `section` as a dict, after checking that it has exactly the keys `names`.

    Parsed with ruamel.yaml's YAML 1.2 rules, as DVC parses it (`1e-05` is a number, `yes` is text)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParamError(f"{path}: file not found (run from the project root)") from None
    try:
        document = YAML(typ="safe").load(text) or {}
    except YAMLError as err:
        raise ParamError(f"{path}: not valid YAML: {err}") from None
    group = document.get(section) if isinstance(document, dict) else None
    if not isinstance(group, dict):
        raise ParamError(f"{path}: missing group `{section}:` with keys {', '.join(names)}")
    missing = [name for name in names if name not in group]
    if missing:
        raise ParamError(
            f"{path}: missing key {', '.join(f'{section}.{k}' for k in missing)} "
            f"(group `{section}` needs {', '.join(names)})"
        )
    unknown = [name for name in group if name not in names]
    if unknown:
        raise ParamError(
            f"{path}: unknown key {', '.join(f'{section}.{k}' for k in map(str, unknown))} "
            f"(allowed keys: {', '.join(names)})"
        )
    return dict(group)
