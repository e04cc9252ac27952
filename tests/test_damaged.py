"""Damaged .npz files (issue 9): every way a file can be broken gives one DataError naming it and how to
get it back; never a traceback, never numpy's "pickled data" message. Also: the temporary files of
killed writers (common.temp_sibling)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from catsdogs.errors import DataError
from catsdogs.pipeline.atomic_files import atomic_path, sweep_temp, temp_sibling
from catsdogs.pipeline.dvc_files import restore_hint
from catsdogs.pipeline.npz_files import load_npz, save_npz
from tests.conftest import ROOT

KEYS = ("X", "y")


def good(path):
    save_npz(path, X=np.arange(24, dtype=np.float32).reshape(4, 6), y=np.array([1, 0, 1, 1], np.uint8))
    return path.read_bytes()


def npy(array_bytes_header: dict, data: bytes) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, array_bytes_header)
    return buffer.getvalue() + data


def zip_of(members: dict[str, bytes], method=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1 :]


def object_array() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return zip_of({"X.npy": buffer.getvalue(), "y.npy": buffer.getvalue()})


DAMAGES = {
    "truncated": lambda b: b[: len(b) // 2],
    "empty": lambda b: b"",
    "garbage": lambda b: b"<html>502 Bad Gateway</html>\n" * 20,
    "random bytes": lambda b: np.random.default_rng(0).integers(0, 256, len(b), dtype=np.uint8).tobytes(),
    "a flipped bit in the data": lambda b: flip(b, b.index(b"\x00\x00\x80?") + 2),
    "a flipped bit in a header": lambda b: flip(b, b.index(b"'shape'") + 3),
    "Python objects (a pickle)": lambda b: object_array(),
    "an .npy whose header promises more data": lambda b: zip_of(
        {
            "X.npy": npy({"descr": "<f4", "fortran_order": False, "shape": (10**9,)}, b"\0" * 16),
            "y.npy": npy({"descr": "|u1", "fortran_order": False, "shape": (2,)}, b"\0\1"),
        }
    ),
    "extra bytes after an array": lambda b: zip_of(
        {
            "X.npy": npy({"descr": "|u1", "fortran_order": False, "shape": (2,)}, b"\0\1\2"),
            "y.npy": npy({"descr": "|u1", "fortran_order": False, "shape": (2,)}, b"\0\1"),
        }
    ),
    "a member that is no .npy": lambda b: zip_of({"X.npy": b"hello", "y.npy": b"world"}),
    "another compression": lambda b: zip_of({"X.npy": b"hello", "y.npy": b"world"}, zipfile.ZIP_BZIP2),
    "a zip of something else": lambda b: zip_of({"readme.txt": b"hello"}),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_npz_is_one_clear_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "train.npz"
    path.write_bytes(DAMAGES[damage](good(path)))
    with pytest.raises(DataError) as err:
        load_npz(path, KEYS)
    message = str(err.value)
    assert message.startswith((f"{path}: damaged (", f"{path}: missing arrays")) and "\n" not in message
    assert "pickle" not in message.lower() and "README: Damaged files" in message


def test_a_good_file_still_loads_and_a_missing_one_says_so(tmp_path):
    good(tmp_path / "a.npz")
    assert load_npz(tmp_path / "a.npz", KEYS)["y"].tolist() == [1, 0, 1, 1]
    with pytest.raises(DataError, match=r"b.npz: not found \(run the earlier stages: `dvc repro`\)"):
        load_npz(tmp_path / "b.npz", KEYS)


def test_the_hint_for_a_pipeline_output_names_its_cache_file_and_the_rebuild(in_tmp):
    (in_tmp / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  flatten_normalize:\n    cmd: x\n    outs:\n"
        "    - path: data/features/train.npz\n      hash: md5\n      md5: 0123456789abcdef0123456789abcdef\n"
    )
    assert restore_hint("data/features/train.npz") == (
        "it is an output of stage flatten_normalize: drop DVC's cached copy and rebuild it: "
        'rm -f "$(dvc cache dir)/files/md5/01/23456789abcdef0123456789abcdef" && dvc repro'
    )
    assert "README: Damaged files" in restore_hint("elsewhere.npz")
    (in_tmp / "dvc.lock").write_text(": not yaml [")
    assert "README: Damaged files" in restore_hint("data/features/train.npz")


def test_predict_with_a_damaged_weights_file_says_so_in_one_line(tmp_path):
    Image.new("RGB", (20, 20), (255, 0, 0)).save(tmp_path / "red.jpg")
    (tmp_path / "weights.npz").write_bytes(b"PK\x03\x04 not really a zip")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "catsdogs.predict",
            str(tmp_path / "red.jpg"),
            "--weights",
            str(tmp_path / "weights.npz"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'weights.npz'}: damaged (" in result.stderr


# --------------------------------------------------------------------------- temporary files


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporary_files_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    dead = dead_pid()
    stale = [
        folder / f".tmp-a.npz.{dead}.abcd_123",
        folder / ".tmp-b.json.q1w2e3r4",
        folder / f".tmp-raw.{dead}.zzzzzzzz",
    ]
    stale[0].write_bytes(b"half")
    stale[1].write_bytes(b"half, written before pids were in the names")
    stale[2].mkdir()
    (stale[2] / "cat.1.jpg").write_bytes(b"half")
    live = folder / f".tmp-a.npz.{os.getppid()}.abcd_123"  # pytest's parent: alive
    unrelated = [folder / ".tmp-notes", folder / "a.npz", folder / ".tmp-x.12.too_long_random"]
    for path in [live, *unrelated]:
        path.write_bytes(b"keep")
    with atomic_path(folder / "a.npz") as tmp:
        assert tmp.name.startswith(f".tmp-a.npz.{os.getpid()}.")
        tmp.write_bytes(b"new")
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in [live, *unrelated])
    assert (folder / "a.npz").read_bytes() == b"new"


def test_a_folder_is_swept_once_per_process(tmp_path):
    first = temp_sibling(tmp_path / "x", folder=True)
    stale = tmp_path / f".tmp-y.{dead_pid()}.abcdefgh"
    stale.write_bytes(b"")
    sweep_temp(tmp_path)  # already swept by temp_sibling: left for the next process
    assert stale.exists() and first.is_dir()
    result = subprocess.run(
        [sys.executable, "-c", f"from catsdogs.pipeline.atomic_files import sweep_temp; sweep_temp({str(tmp_path)!r})"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and not stale.exists() and first.is_dir()  # this process is alive
