"""What every stage shares: checked parameters, atomic and reproducible file writes, the CLI wrapper.

Label convention of the whole project (the article's): cat = 1, dog = 0.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import zipfile
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import yaml

PARAMS_FILE = Path("params.yaml")
LABELS = {"cat": 1, "dog": 0}
CLASS_NAMES = ("dog", "cat")  # CLASS_NAMES[label]


class ParamError(ValueError):
    """A value in params.yaml that a stage cannot use; the message names the key and what is allowed."""


class DataError(ValueError):
    """Input data a stage cannot use (e.g. no usable image of one class)."""


# --------------------------------------------------------------------------- parameters


def load_section(section: str, keys: Sequence[str], path: Path = PARAMS_FILE) -> dict[str, Any]:
    """Return params.yaml's `section` as a dict, after checking that it has exactly `keys`."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ParamError(f"{path}: file not found (run from the project root)") from None
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ParamError(f"{path}: not valid YAML: {err}") from None
    group = document.get(section) if isinstance(document, dict) else None
    if not isinstance(group, dict):
        raise ParamError(f"{path}: missing group `{section}:` with keys {', '.join(keys)}")
    missing = [key for key in keys if key not in group]
    if missing:
        raise ParamError(
            f"{path}: missing key {', '.join(f'{section}.{k}' for k in missing)} "
            f"(group `{section}` needs {', '.join(keys)})"
        )
    unknown = [key for key in group if key not in keys]
    if unknown:
        raise ParamError(
            f"{path}: unknown key {', '.join(f'{section}.{k}' for k in unknown)} "
            f"(allowed keys: {', '.join(keys)})"
        )
    return dict(group)


def _describe_range(low, high, low_open, high_open) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return " and ".join(parts)


def check_number(
    key: str,
    value: Any,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float | int:
    """Return `value` if it is a finite number (an int if `integer`) in the range, else raise ParamError.

    `key` is the dotted name shown to the user, e.g. "train.lr".
    """
    kind = "an integer" if integer else "a number"
    bounds = _describe_range(low, high, low_open, high_open)
    allowed = f"{kind}{' ' + bounds if bounds else ''}"
    if isinstance(value, str):
        hint = ""
        try:
            float(value)
            hint = (
                " (YAML read it as text: PyYAML needs a dot in the mantissa, e.g. 1.0e-3, or write 0.001)"
            )
        except ValueError:
            pass
        raise ParamError(f"params.yaml: {key} = {value!r} is text, expected {allowed}{hint}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(f"params.yaml: {key} = {value!r} is not allowed, expected {allowed}")
    if integer and not isinstance(value, int):
        if float(value).is_integer():
            value = int(value)
        else:
            raise ParamError(f"params.yaml: {key} = {value!r} is not allowed, expected {allowed}")
    if not math.isfinite(value):
        raise ParamError(f"params.yaml: {key} = {value!r} is not allowed, expected {allowed}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise ParamError(f"params.yaml: {key} = {value!r} is out of range, expected {allowed}")
    return value


def check_choice(key: str, value: Any, choices: Sequence[str]) -> str:
    """Return `value` if it is one of `choices`, else raise ParamError listing them."""
    if value not in choices:
        raise ParamError(
            f"params.yaml: {key} = {value!r} is not allowed, expected one of: {', '.join(choices)}"
        )
    return value


def usable_cores() -> int:
    """Number of cores this process may run on (what `jobs: 0` means)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# --------------------------------------------------------------------------- files


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it to `path` in one step.

    A stage killed mid-write leaves only a `.tmp-*` file, never a half-written `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def save_npz(path: Path | str, **arrays: np.ndarray) -> None:
    """Write `arrays` to an uncompressed .npz, atomically and byte-for-byte reproducibly.

    numpy.savez stamps each member with the current time; here every member gets a fixed
    timestamp so that the same arrays always give the same file (and the same DVC hash).
    Each array is streamed into the file (no copy of it in memory); the bytes are those of
    ZipFile.writestr, which needs the size up front to choose between zip and zip64 headers.
    """
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            array = np.asanyarray(array)
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.file_size = len(header.getvalue()) + array.nbytes
            with archive.open(info, "w") as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def load_npz(path: Path | str, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Read `keys` from an .npz written by `save_npz`; a missing file or key is a DataError."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing} (has {archive.files})")
            return {key: archive[key] for key in keys}
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run the earlier stages: `dvc repro`)") from None


def save_json(path: Path | str, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def ordered_map(function: Callable, items: Iterable, jobs: int, window: int = 64) -> Iterator[tuple]:
    """Yield `(item, function(item))` for each item, in order, computed on `jobs` processes with at most
    `window` items in flight, so memory stays bounded however many items there are. `jobs == 1` runs
    in this process."""
    if jobs == 1:
        for item in items:
            yield item, function(item)
        return
    with ProcessPoolExecutor(jobs) as pool:
        pending: deque = deque()
        for item in items:
            pending.append((item, pool.submit(function, item)))
            if len(pending) >= window:
                item, future = pending.popleft()
                yield item, future.result()
        while pending:
            item, future = pending.popleft()
            yield item, future.result()


# --------------------------------------------------------------------------- command line


def stage_parser(stage: str, description: str, paths: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """Command line of `python -m stages.<stage>`: the description, --params to read another file, and
    one required `--name PATH` option per file the stage reads or writes (`paths`: option -> help), so
    that the stage's cmd in dvc.yaml names every one of its files."""
    parser = argparse.ArgumentParser(prog=f"python -m stages.{stage}", description=description)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="parameters file (default: %(default)s)")
    for option, text in (paths or {}).items():
        parser.add_argument(option, type=Path, required=True, metavar="PATH", help=text)
    return parser


def run_cli(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Run a stage's main(); a ParamError or DataError ends it with the message and exit status 2."""
    try:
        main(argv)
    except (ParamError, DataError) as err:
        prog = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "stage"
        print(f"{prog}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
