"""Whether a stage runs in a copy of the project that DVC made for a queued or temporary experiment
(`dvc exp run --queue` / `--temp`, `dvc queue start`), and what to tell a user whose file is not there.

Such a copy holds only what git and DVC track: a file that is git-ignored and not added to DVC (a real
archive dropped in data/external/) is missing from it. DVC sets DVC_EXP_NAME for every experiment and
points DVC_ROOT at the project, which is not the copy's folder, where the stage runs.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

GUIDE = "docs/real-data-in-experiments.md"


def in_temporary_copy() -> bool:
    """True when this process runs in a queued or temporary experiment's copy of the project."""
    root = os.environ.get("DVC_ROOT")
    if not (os.environ.get("DVC_EXP_NAME") and root):
        return False
    return Path(root).resolve() != Path.cwd().resolve()


def untracked_message(shown: str) -> str:
    """The one line for a file `shown` (already escaped to one printable line) that a queued or
    temporary experiment's copy lacks: what to run in the project, then run the experiment again."""
    path = shlex.quote(shown)
    return (
        f"{shown}: not in this queued or temporary experiment, which runs in a copy of the project holding "
        f"only what git and DVC track; in the project run `dvc add {path}`, commit {shlex.quote(shown + '.dvc')} "
        f"and .gitignore, then queue the experiment again (or `dvc import` it: {GUIDE})"
    )
