"""dvc.yaml is the one map of the pipeline's files: each stage's cmd names every file the stage reads or
writes, as `--option path` (stages/common.py: stage_parser). Code outside the stages (predict, tools/,
bench/) reads a path from there instead of repeating it:

    stage_path("train", "--history")  # Path("plots/train_history.csv")

The cmd is read as written: dvc.yaml's `${...}` templating is not resolved here.
"""
from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from stages.common import DataError

DVC_FILE = Path("dvc.yaml")


def stage_arguments(stage: str, dvc_file: Path = DVC_FILE) -> list[str]:
    """The words of `stage`'s cmd after `python -m stages.<module>`, e.g. ["--model", "models/weights.npz"]."""
    try:
        document = yaml.safe_load(Path(dvc_file).read_text())
    except FileNotFoundError:
        raise DataError(f"{dvc_file}: not found (run from the project root)") from None
    except yaml.YAMLError as err:
        raise DataError(f"{dvc_file}: not valid YAML: {err}") from None
    try:
        words = shlex.split(document["stages"][stage]["cmd"])
    except (KeyError, TypeError):
        raise DataError(f"{dvc_file}: no stage `{stage}` with a `cmd:`") from None
    if words[:2] != ["python", "-m"] or len(words) < 3:
        raise DataError(f"{dvc_file}: stage `{stage}`'s cmd does not start with `python -m MODULE`")
    return words[3:]


def stage_path(stage: str, option: str, dvc_file: Path = DVC_FILE) -> Path:
    """The path `stage`'s cmd in dvc_file gives `option`, e.g. stage_path("train", "--model")."""
    words = stage_arguments(stage, dvc_file)
    if option not in words[:-1]:
        raise DataError(f"{dvc_file}: stage `{stage}`'s cmd has no `{option} PATH`")
    return Path(words[words.index(option) + 1])
