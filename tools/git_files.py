"""Files as they are at a git revision, read with git itself (no checkout, no DVC cache needed): the
regression gate reads the metrics, params and loss history committed at its base revision."""

from __future__ import annotations

import subprocess
from pathlib import Path


class RevisionError(ValueError):
    """An unknown revision, or a file git lists but cannot read."""


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True)


def resolve_revision(revision: str) -> str:
    """The commit id of `revision` (a branch, tag, sha, HEAD~1...), or a GateError naming it."""
    result = _git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}")
    if result.returncode != 0:
        raise RevisionError(
            f"unknown revision {revision!r}: git knows no commit by that name (try `git log --oneline`)"
        )
    return result.stdout.strip()


def read_at(commit: str | None, path: str) -> str | None:
    """The text of `path` (relative to the current directory) at `commit`, or in the workspace if
    `commit` is None; None if the file does not exist there."""
    if commit is None:
        file = Path(path)
        return file.read_text() if file.is_file() else None
    spec = f"{commit}:./{path}"
    if _git("cat-file", "-e", spec).returncode != 0:
        return None
    result = _git("show", spec)
    if result.returncode != 0:
        raise RevisionError(f"git show {spec} failed: {result.stderr.strip()}")
    return result.stdout
