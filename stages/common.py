"""What every stage shares: atomic and reproducible file writes, bounded process pools, the CLI wrapper.

Label convention of the whole project (the article's): cat = 1, dog = 0.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import zipfile
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from stages.params import PARAMS_FILE, ParamError, describe

LABELS = {"cat": 1, "dog": 0}
CLASS_NAMES = ("dog", "cat")  # CLASS_NAMES[label]


class DataError(ValueError):
    """Input data a stage cannot use (e.g. no usable image of one class)."""


# --------------------------------------------------------------------------- processes


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


def stage_parser(
    stage: str, description: str, *, params: type | None = None, paths: Mapping[str, str] | None = None
) -> argparse.ArgumentParser:
    """Command line of `python -m stages.<stage>`: the description; for a stage with `params` (its class
    declared with stages.params), --params to read another file than params.yaml and the list of its
    parameters after the options; one required `--name PATH` option per file the stage reads or writes
    (`paths`: option -> help), so that the stage's cmd in dvc.yaml names every one of its files and the
    code has no default path."""
    parser = argparse.ArgumentParser(
        prog=f"python -m stages.{stage}",
        description=description,
        epilog=describe(params) if params else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if params:
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
