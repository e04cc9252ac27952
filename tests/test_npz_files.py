"""catsdogs/pipeline/npz_files.py: every array shape and order round trips, .npy version 2.0 is read,
each refusal says what is wrong word for word, and the zip headers' sizes are believed exactly up to
what the file can hold (stored: 1 byte per byte; deflate: 1032 per byte) and not one byte more."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest

from catsdogs.errors import DataError
from catsdogs.pipeline.npz_files import load_npz, save_npz
from tests.test_damaged import zip_of

HINT = "replace it with a good copy (README: Damaged files)"


@pytest.mark.parametrize(
    "array",
    [
        np.float32(-0.25),  # a 0-d array: b of the weights file
        np.arange(6, dtype=np.float64).reshape(2, 3),
        np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
        np.asfortranarray(np.arange(24, dtype=np.uint8).reshape(2, 3, 4)),
        np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2],  # not contiguous
        np.array(["cat.1.jpg", "dog.22.jpg"]),
        np.zeros((0, 5), np.float32),
    ],
)
def test_every_array_round_trips_with_its_shape_order_and_dtype(tmp_path, array):
    save_npz(tmp_path / "a.npz", a=array)
    back = load_npz(tmp_path / "a.npz", ["a"])["a"]
    assert back.dtype == np.asarray(array).dtype and back.shape == np.shape(array)
    np.testing.assert_array_equal(back, array)
    with np.load(tmp_path / "a.npz") as numpy_reads:  # and numpy reads the same
        np.testing.assert_array_equal(numpy_reads["a"], array)


def test_the_members_are_stored_with_a_fixed_date_and_mode(tmp_path):
    save_npz(tmp_path / "a.npz", a=np.arange(3))
    [info] = zipfile.ZipFile(tmp_path / "a.npz").infolist()
    assert (info.filename, info.compress_type, info.date_time, info.external_attr >> 16) == (
        "a.npy",
        zipfile.ZIP_STORED,
        (1980, 1, 1, 0, 0, 0),
        0o644,
    )


def npy(array: np.ndarray, version=(1, 0)) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version)
    return buffer.getvalue()


def refusal(tmp_path, blob: bytes, keys=("a",)) -> str:
    (tmp_path / "a.npz").write_bytes(blob)
    with pytest.raises(DataError) as refused:
        load_npz(tmp_path / "a.npz", keys)
    return str(refused.value).removeprefix(f"{tmp_path / 'a.npz'}: ")


def test_npy_version_2_is_read_and_3_is_refused(tmp_path):
    (tmp_path / "a.npz").write_bytes(zip_of({"a.npy": npy(np.arange(5.0), (2, 0))}))
    assert load_npz(tmp_path / "a.npz", ["a"])["a"].tolist() == [0, 1, 2, 3, 4]
    assert refusal(tmp_path, zip_of({"a.npy": npy(np.arange(5.0), (3, 0))})) == (
        f"damaged (a: unsupported .npy version (3, 0)); {HINT}"
    )


def test_each_damage_is_named_word_for_word(tmp_path):
    objects = io.BytesIO()
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert refusal(tmp_path, zip_of({"a.npy": objects.getvalue()})) == (
        f"damaged (a: holds Python objects, not numbers or text); {HINT}"
    )
    header = npy(np.zeros(4, np.float32))[:-16]
    assert refusal(tmp_path, zip_of({"a.npy": header + bytes(20)})) == (
        f"damaged (a: its header announces 16 bytes of data, it holds 20); {HINT}"
    )
    assert refusal(tmp_path, zip_of({"a.npy": header + bytes(12)})) == (
        f"damaged (a: its header announces 16 bytes of data, it holds 12); {HINT}"
    )
    assert refusal(tmp_path, b"<html>502</html>") == (
        f"damaged (not a zip archive, as an .npz is: truncated or overwritten?); {HINT}"
    )
    assert refusal(tmp_path, zip_of({"a.npy": b"x"}, zipfile.ZIP_BZIP2)) == (
        f"damaged (a.npy: compression method 12, not stored or deflate); {HINT}"
    )
    assert refusal(tmp_path, zip_of({"b.npy": npy(np.zeros(1)), "c.txt": b""}), keys=("a", "b")) == (
        f"missing arrays ['a'] (has ['b', 'c.txt']); {HINT}"
    )


def with_sizes(blob: bytes, file_size: int | None = None, compress_size: int | None = None) -> bytes:
    """The archive with its one member's sizes in the central directory replaced."""
    blob = bytearray(blob)
    at = blob.index(b"PK\x01\x02")
    old_compress, old_file = struct.unpack_from("<LL", blob, at + 20)
    struct.pack_into("<LL", blob, at + 20, compress_size or old_compress, file_size or old_file)
    return bytes(blob)


def test_stored_sizes_are_believed_up_to_one_byte_per_byte(tmp_path):
    blob = zip_of({"a.npy": npy(np.zeros(100, np.uint8))})
    compress = zipfile.ZipFile(io.BytesIO(blob)).infolist()[0].compress_size
    (tmp_path / "a.npz").write_bytes(with_sizes(blob, file_size=compress))  # the true size: read
    assert load_npz(tmp_path / "a.npz", ["a"])["a"].tolist() == [0] * 100
    assert refusal(tmp_path, with_sizes(blob, file_size=compress + 1)) == (
        f"damaged (a.npy: sizes in its zip header that the file cannot hold); {HINT}"
    )


def test_deflated_sizes_are_believed_up_to_1032_bytes_per_byte(tmp_path):
    blob = zip_of({"a.npy": npy(np.zeros(100, np.uint8))}, zipfile.ZIP_DEFLATED)
    compress = zipfile.ZipFile(io.BytesIO(blob)).infolist()[0].compress_size
    assert "sizes in its zip header" not in refusal(tmp_path, with_sizes(blob, file_size=1032 * compress))
    assert refusal(tmp_path, with_sizes(blob, file_size=1032 * compress + 1)) == (
        f"damaged (a.npy: sizes in its zip header that the file cannot hold); {HINT}"
    )


def test_a_compressed_size_beyond_the_file_is_refused_even_when_the_ratio_fits(tmp_path):
    blob = zip_of({"a.npy": npy(np.zeros(100, np.uint8))})
    message = refusal(tmp_path, with_sizes(blob, file_size=10**6, compress_size=10**6))
    assert message == f"damaged (a.npy: sizes in its zip header that the file cannot hold); {HINT}"


def test_a_member_of_exactly_max_bytes_is_read_and_one_byte_more_refused(tmp_path):
    save_npz(tmp_path / "a.npz", a=np.zeros(100, np.uint8))  # 128 bytes of .npy header + 100
    assert load_npz(tmp_path / "a.npz", ["a"], max_bytes=228)["a"].tolist() == [0] * 100
    with pytest.raises(DataError) as refused:
        load_npz(tmp_path / "a.npz", ["a"], max_bytes=227)
    assert (
        str(refused.value) == f"{tmp_path / 'a.npz'}: damaged (a.npy: 228 bytes, more than the 227 it may hold); {HINT}"
    )


def test_a_deflated_member_whose_data_ends_before_its_stated_size_is_refused(tmp_path):
    """A deflate stream that ends 10 bytes early, its CRC-32 that of the bytes it holds, its zip header
    saying the full size: zipfile reads the short data without an error, the reader sees it end early."""
    whole = npy(np.zeros(100, np.uint8))
    blob = with_sizes(zip_of({"a.npy": whole[:-10]}, zipfile.ZIP_DEFLATED), file_size=len(whole))
    assert refusal(tmp_path, blob) == f"damaged (a: ends early); {HINT}"
