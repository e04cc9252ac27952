"""catsdogs/pipeline/dvc_files.py on hand-written dvc.yaml and dvc.lock files: the paths read from a
stage's cmd, the parameters walked back from a file, and the restore hint, whose md5 (read from dvc.lock,
outside input) is put into a shell command only when it is one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from catsdogs.errors import DataError
from catsdogs.pipeline.dvc_files import locked_params, restore_hint, stage_arguments, stage_path

MD5 = "0123456789abcdef0123456789abcdef"


def lock(md5: str) -> str:
    return f"schema: '2.0'\nstages:\n  train:\n    cmd: x\n    outs:\n    - path: models/w.npz\n      md5: '{md5}'\n"


@pytest.mark.parametrize(
    "md5",
    [
        '"; rm -rf ~; echo "',
        "$(touch pwned)",
        MD5[:-1],  # 31 characters
        MD5 + "0",  # 33
        MD5.upper(),
        MD5[:-1] + "\n",
    ],
)
def test_an_md5_that_is_not_one_never_reaches_the_shell_command(in_tmp, md5):
    Path("dvc.lock").write_text(lock(md5.replace("'", "''")) if "\n" not in md5 else lock(MD5[:-1] + "\\n"))
    assert restore_hint("models/w.npz") == "replace it with a good copy (README: Damaged files)"


def test_a_real_md5_gives_the_cache_path_and_the_rebuild(in_tmp):
    Path("dvc.lock").write_text(lock(MD5))
    assert restore_hint("models/w.npz") == (
        "it is an output of stage train: drop DVC's cached copy and rebuild it: "
        f'rm -f "$(dvc cache dir)/files/md5/01/{MD5[2:]}" && dvc repro'
    )
    assert restore_hint(Path("models/../models/w.npz")).startswith("it is an output of stage train")
    assert restore_hint("models/other.npz") == "replace it with a good copy (README: Damaged files)"
    Path("dvc.lock").write_text("schema: '2.0'\nstages:\n  train:\n    outs:\n    - path: models/w.npz\n")  # no md5
    assert restore_hint("models/w.npz") == "replace it with a good copy (README: Damaged files)"


DVC_YAML = """stages:
  train:
    cmd: python -m stages.train --params params.yaml --model "models/my weights.npz" --history h.csv
  odd:
    cmd: bash run.sh --model x
  short:
    cmd: python -m
"""


def test_stage_paths_are_read_from_the_cmd_with_shell_quoting(in_tmp):
    Path("dvc.yaml").write_text(DVC_YAML)
    assert stage_arguments("train") == [
        "--params",
        "params.yaml",
        "--model",
        "models/my weights.npz",
        "--history",
        "h.csv",
    ]
    assert stage_path("train", "--model") == Path("models/my weights.npz")
    assert stage_path("train", "--params") == Path("params.yaml")
    with pytest.raises(DataError, match=r"^dvc.yaml: stage `train`'s cmd has no `--history-plot PATH`$"):
        stage_path("train", "--history-plot")
    with pytest.raises(DataError, match=r"^dvc.yaml: stage `train`'s cmd has no `h.csv PATH`$"):
        stage_path("train", "h.csv")  # the last word has no path after it
    for stage in ("odd", "short"):
        with pytest.raises(
            DataError, match=rf"^dvc.yaml: stage `{stage}`'s cmd does not start with `python -m MODULE`$"
        ):
            stage_arguments(stage)
    with pytest.raises(DataError, match=r"^dvc.yaml: no stage `evaluate` with a `cmd:`$"):
        stage_arguments("evaluate")


@pytest.mark.parametrize(
    "text, message",
    [
        (None, r"^x.yaml: not found \(run from the project root\)$"),
        (": [", r"^x.yaml: not valid YAML: "),
        ("[]", "no stage"),
    ],
)
def test_a_missing_or_broken_dvc_yaml_is_one_clear_error(in_tmp, text, message):
    if text is not None:
        Path("x.yaml").write_text(text)
    with pytest.raises(DataError, match=message):
        stage_arguments("train", Path("x.yaml"))


def md5_of(path: str) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def test_locked_params_follow_the_data_back_and_stop_at_a_mismatch(in_tmp):
    for name, text in (("raw", "r"), ("feat", "f"), ("w", "w"), ("code.py", "c")):
        Path(name).write_text(text)
    Path("sub").mkdir()
    stages = f"""schema: '2.0'
stages:
  ingest:
    cmd: a
    params:
      params.yaml:
        ingest.source: synthetic
    outs:
    - path: raw
      md5: {md5_of("raw")}
  features:
    cmd: b
    deps:
    - path: raw
      md5: {md5_of("raw")}
    - path: code.py
      md5: {md5_of("code.py")}
    params:
      params.yaml:
        size: 64
    outs:
    - path: feat
      md5: {md5_of("feat")}
  train:
    cmd: c
    deps:
    - path: feat
      md5: {md5_of("feat")}
    - path: raw
      md5: {md5_of("raw")}
    params:
      params.yaml:
        train.lr: 0.003
      other.yaml:
        epochs: 5
    outs:
    - path: w
      md5: {md5_of("w")}
"""
    Path("dvc.lock").write_text(stages)
    assert locked_params("w") == {"ingest.source": "synthetic", "size": 64, "train.lr": 0.003, "epochs": 5}
    assert locked_params("feat") == {"ingest.source": "synthetic", "size": 64}
    assert locked_params("code.py") is None and locked_params("missing") is None
    Path("w").write_text("changed since")
    assert locked_params("w") is None
    Path("w").write_text("w")
    Path("dvc.lock").write_text(
        stages.replace(f"- path: feat\n      md5: {md5_of('feat')}\n  ", "- path: feat\n      md5: 0\n  ", 1)
    )
    assert locked_params("w") is None  # train ran on other features than those recorded
    Path("sub/dvc.lock").write_text(stages.replace("path: ", "path: ../"))
    Path("dvc.lock").unlink()
    assert locked_params("w", "sub/dvc.lock") == {
        "ingest.source": "synthetic",
        "size": 64,
        "train.lr": 0.003,
        "epochs": 5,
    }
    assert locked_params("w") is None  # no dvc.lock
    Path("dvc.lock").write_text("stages: [1, 2]")
    assert locked_params("w") is None


def test_a_stage_without_words_after_its_module_and_another_dvc_file(in_tmp):
    Path("other.yaml").write_text(
        "stages:\n  bare:\n    cmd: python -m stages.bare\n  t:\n    cmd: python -m s --model m.npz\n"
    )
    assert stage_arguments("bare", Path("other.yaml")) == []
    assert stage_path("t", "--model", Path("other.yaml")) == Path("m.npz")


def test_stages_without_outs_a_cycle_and_code_deps_first_are_walked_through(in_tmp):
    """dvc.lock is outside input: a stage without outs, deps that no stage makes listed first, and even a
    cycle (DVC never writes one) end the walk with the parameters of every stage met once."""
    for name in ("a", "b", "code.py"):
        Path(name).write_text(name)
    lock = f"""stages:
  check:
    cmd: x
    deps:
    - path: a
      md5: {md5_of("a")}
  make_a:
    cmd: y
    deps:
    - path: code.py
      md5: {md5_of("code.py")}
    - path: b
      md5: {md5_of("b")}
    params:
      params.yaml:
        p: 1
    outs:
    - path: a
      md5: {md5_of("a")}
  make_b:
    cmd: z
    deps:
    - path: a
      md5: {md5_of("a")}
    params:
      params.yaml:
        q: 2
    outs:
    - path: b
      md5: {md5_of("b")}
"""
    Path("dvc.lock").write_text(lock)
    assert locked_params("a") == {"p": 1, "q": 2}
    assert restore_hint("b") == (
        "it is an output of stage make_b: drop DVC's cached copy and rebuild it: "
        f'rm -f "$(dvc cache dir)/files/md5/{md5_of("b")[:2]}/{md5_of("b")[2:]}" && dvc repro'
    )
