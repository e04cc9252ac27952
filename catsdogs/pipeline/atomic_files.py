"""Atomic file writes: a temporary sibling renamed in one step, and the sweep of those left by killed runs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# A temporary file or folder: `.tmp-<target name>.<pid of its writer>.<8 random characters>`; files
# written before the pid was part of the name lack it.
TEMP_NAME = re.compile(r"\.tmp-.+?\.(?:([0-9]+)\.)?[a-z0-9_]{8}")
_swept: set[Path] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_temp(folder: Path) -> None:
    """Remove from `folder` the temporary files and folders of writers that are gone (killed runs);
    a live writer's (its pid is a running process) stays. Once per folder and process."""
    folder = Path(folder).resolve()
    if folder in _swept or not folder.is_dir():
        return
    _swept.add(folder)
    for path in folder.iterdir():
        match = TEMP_NAME.fullmatch(path.name)
        if match and not (match.group(1) and _alive(int(match.group(1)))):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def temp_sibling(path: Path | str, folder: bool = False) -> Path:
    """Create an empty temporary file (or folder) next to `path`, to be renamed to `path` when done.
    Its name carries this process's pid, so that the next run removes it if this one is killed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_temp(path.parent)
    prefix = f".tmp-{path.name}.{os.getpid()}."
    if folder:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    descriptor, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.close(descriptor)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it to `path` in one step.

    A stage killed mid-write leaves only a `.tmp-*` file, never a half-written `path`; the next
    write into that folder removes it (temp_sibling).
    """
    path = Path(path)
    tmp_path = temp_sibling(path)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def save_json(path: Path | str, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
