import hashlib

import numpy as np
import pytest

from catsdogs.pipeline.atomic_files import atomic_path
from catsdogs.pipeline.npz_files import load_npz, save_npz


def test_atomic_path_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_save_npz_is_byte_reproducible_and_round_trips(tmp_path):
    arrays = dict(X=np.arange(12, dtype=np.float32).reshape(3, 4), y=np.array([1, 0, 1], np.uint8))
    save_npz(tmp_path / "a.npz", **arrays)
    save_npz(tmp_path / "b.npz", **arrays)
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.npz", "b.npz")]
    assert digest[0] == digest[1]
    loaded = load_npz(tmp_path / "a.npz", ("X", "y"))
    np.testing.assert_array_equal(loaded["X"], arrays["X"])
    assert loaded["y"].dtype == np.uint8


def test_save_npz_writes_the_bytes_of_write_array_through_zipfile_writestr(tmp_path):
    """Any layout: C and Fortran order, a strided view, text, a scalar, no rows."""
    import io
    import zipfile

    arrays = {
        "X": np.arange(600, dtype=np.float32).reshape(20, 30),
        "names": np.array(["cat.1.jpg", "dog.2.jpg"]),
        "fortran": np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4)),
        "strided": np.arange(40, dtype=np.uint8).reshape(4, 10)[:, ::3],
        "scalar": np.float32(0.25),
        "empty": np.zeros((0, 7), dtype=np.float32),
    }
    save_npz(tmp_path / "streamed.npz", **arrays)
    with zipfile.ZipFile(tmp_path / "reference.npz", "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())
    assert (tmp_path / "streamed.npz").read_bytes() == (tmp_path / "reference.npz").read_bytes()


def test_load_npz_reads_a_member_larger_than_one_read_block(tmp_path, monkeypatch):
    monkeypatch.setattr("catsdogs.pipeline.npz_files.IO_BLOCK", 1000)
    X = np.random.default_rng(0).random((37, 51)).astype(np.float32)  # 7,548 bytes: 8 blocks
    save_npz(tmp_path / "a.npz", X=X)
    np.testing.assert_array_equal(load_npz(tmp_path / "a.npz", ("X",))["X"], X)
