"""dvc.yaml is the one map of the pipeline's files: each stage's cmd names every file the stage reads or
writes, as `--option path` (catsdogs/pipeline/command_line.py: stage_parser). Code outside the stages (predict, tools/,
bench/) reads a path from there instead of repeating it:

    stage_path("train", "--history")  # Path("plots/train_history.csv")

The cmd is read as written: dvc.yaml's `${...}` templating is not resolved here.

dvc.lock is the record of how each output was made: locked_params walks it back from a file to the
parameters of every stage it came from (predict asks it which photo set trained the model), and
restore_hint tells how to get a damaged output back.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path

import yaml

from catsdogs.errors import DataError

DVC_FILE = Path("dvc.yaml")
DVC_LOCK = Path("dvc.lock")


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


def locked_stages(lock_file: Path | str = DVC_LOCK) -> dict:
    """dvc.lock's `stages:` mapping (stage -> cmd, deps, params, outs), the one place dvc.lock is parsed.
    Raises OSError, yaml.YAMLError, KeyError or TypeError when it is missing or not dvc.lock-shaped."""
    return yaml.safe_load(Path(lock_file).read_text())["stages"]


def locked_params(path: Path | str, lock_file: Path | str = DVC_LOCK) -> dict | None:
    """The parameters dvc.lock records for every stage that made the file `path`, directly or through the
    data it was made from, e.g. {"ingest.source": "synthetic", "train.lr": 0.003, ...}.

    None when dvc.lock does not vouch for the file: dvc.lock is missing or unreadable, no stage records
    `path` as an output with the file's current md5, or along the way a stage's data dep has another md5
    than its producer's recorded output (a stage was rerun alone, e.g. `dvc repro -s`, on other data).
    Paths in dvc.lock are relative to its folder.
    """
    lock_file = Path(lock_file)
    try:
        stages = locked_stages(lock_file)
        outs = {
            (lock_file.parent / out["path"]).resolve(): (stage, out.get("md5"))
            for stage, record in stages.items()
            for out in record.get("outs", [])
        }
        found = outs.get(Path(path).resolve())
        if found is None or found[1] != hashlib.md5(Path(path).read_bytes()).hexdigest():
            return None
        params, todo, seen = {}, [found[0]], set()
        while todo:  # the stage that made `path`, then the stages that made its data deps, ...
            stage = todo.pop()
            seen.add(stage)
            for group in (stages[stage].get("params") or {}).values():
                params.update(group)
            for dep in stages[stage].get("deps", []):
                producer = outs.get((lock_file.parent / dep["path"]).resolve())
                if producer is None:
                    continue  # code, or an input no stage makes (data/external)
                if producer[1] != dep.get("md5"):
                    return None
                if producer[0] not in seen:
                    todo.append(producer[0])
        return params
    except (OSError, RuntimeError, yaml.YAMLError, KeyError, TypeError, AttributeError):  # RuntimeError: a link loop
        return None


def restore_hint(path: Path | str, lock_file: Path = DVC_LOCK) -> str:
    """How to get a good copy of `path` back. For an output recorded in dvc.lock, the copy DVC keeps in
    its cache may be the damaged one (DVC names cache files by their hash and never checks them again,
    so `dvc checkout` and even `dvc repro --force` bring the damage back): drop it, then rebuild."""
    path = Path(path)
    try:
        stages = locked_stages(lock_file)
        for stage, record in stages.items():
            for out in record.get("outs", []):
                md5 = str(out.get("md5", ""))
                # only a real md5 goes into the command the user is told to paste into a shell
                if Path(out["path"]).resolve() == path.resolve() and re.fullmatch("[0-9a-f]{32}", md5):
                    return (
                        f"it is an output of stage {stage}: drop DVC's cached copy and rebuild it: "
                        f'rm -f "$(dvc cache dir)/files/md5/{md5[:2]}/{md5[2:]}" && dvc repro'
                    )
    except (OSError, RuntimeError, yaml.YAMLError, KeyError, TypeError, AttributeError):  # RuntimeError: a link loop
        pass
    return "replace it with a good copy (README: Damaged files)"
