"""catsdogs/pipeline/atomic_files.py: what the atomic writes leave behind and what the sweep of dead
writers' temporary files may remove (only those: never a link's target, never a live writer's file)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from catsdogs.pipeline import atomic_files
from catsdogs.pipeline.atomic_files import TEMP_NAME, atomic_path, save_json, sweep_temp, temp_sibling
from tests.test_damaged import dead_pid


@pytest.fixture(autouse=True)
def fresh_sweeps(monkeypatch):
    """Each test's folders are swept as in a new process."""
    monkeypatch.setattr(atomic_files, "_swept", set())


def test_the_written_file_is_readable_by_all_and_replaces_the_old_one(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    old_umask = os.umask(0o077)
    try:
        with atomic_path(target) as tmp:
            assert stat.S_IMODE(tmp.stat().st_mode) == 0o600  # mkstemp's, while it is written
            tmp.write_text("new")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.read_text() == "new" and sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_save_json_is_indented_by_2_with_a_final_newline(tmp_path):
    save_json(tmp_path / "m.json", {"b": [1, 2], "a": "é"})
    assert (tmp_path / "m.json").read_text() == json.dumps({"b": [1, 2], "a": "é"}, indent=2) + "\n"
    assert (tmp_path / "m.json").read_text().startswith('{\n  "b": [\n    1,')


@pytest.mark.parametrize("folder", [False, True])
def test_a_temporary_sibling_is_named_for_the_sweep_with_this_pid(tmp_path, folder):
    made = temp_sibling(tmp_path / "new" / "deeper" / "a.npz", folder=folder)  # parents made too
    assert made.parent == tmp_path / "new" / "deeper" and (made.is_dir() if folder else made.is_file())
    match = TEMP_NAME.fullmatch(made.name)
    assert match and match.group(1) == str(os.getpid()) and made.name.startswith(f".tmp-a.npz.{os.getpid()}.")


def test_the_sweep_removes_a_dead_writers_link_but_not_what_it_points_to(tmp_path):
    keep = tmp_path / "user"
    keep.mkdir()
    (keep / "photo.jpg").write_bytes(b"mine")
    folder = tmp_path / "out"
    folder.mkdir()
    dead = dead_pid()
    (folder / f".tmp-a.{dead}.abcdefgh").symlink_to(keep, target_is_directory=True)
    (folder / f".tmp-b.{dead}.abcdefgh").symlink_to(keep / "photo.jpg")
    sweep_temp(folder)
    assert list(folder.iterdir()) == []
    assert (keep / "photo.jpg").read_bytes() == b"mine"


def test_the_sweep_keeps_names_that_are_not_temporary_and_live_writers(tmp_path):
    dead = dead_pid()
    kept = [
        f".tmp-a.{os.getpid()}.abcdefgh",  # this process: alive
        ".tmp-a.abcdefg",  # 7 random characters
        f"x.tmp-a.{dead}.abcdefgh",
        f".tmp-a.{dead}.ABCDEFGH",
        "a.npz",
    ]
    gone = [f".tmp-a.{dead}.abcdefgh", ".tmp-a.abcdefgh", f".tmp-a.b.{dead}.a_c0e1g2", f".tmp-.{dead}.abcdefgh"]
    for name in kept + gone:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / f".tmp-d.{dead}.abcdefgh").mkdir()
    (tmp_path / f".tmp-d.{dead}.abcdefgh" / "half").write_bytes(b"")
    sweep_temp(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_a_missing_folder_or_a_file_is_not_swept_and_not_remembered(tmp_path):
    sweep_temp(tmp_path / "missing")
    (tmp_path / "file").write_bytes(b"")
    sweep_temp(tmp_path / "file")
    assert atomic_files._swept == set()
    (tmp_path / "missing").mkdir()
    stale = tmp_path / "missing" / f".tmp-a.{dead_pid()}.abcdefgh"
    stale.write_bytes(b"")
    sweep_temp(tmp_path / "missing")  # now a folder: swept the first time it is one
    assert not stale.exists() and atomic_files._swept == {(tmp_path / "missing").resolve()}


def test_alive_tells_a_running_process_from_a_gone_one(monkeypatch):
    assert atomic_files._alive(os.getpid()) is True
    assert atomic_files._alive(dead_pid()) is False

    def another_users(pid, signal):  # what os.kill raises for another user's process (not as root)
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(atomic_files.os, "kill", another_users)
    assert atomic_files._alive(12345) is True
