"""catsdogs/data/sources.py directly: what plan, kaggle_name, detect_layout and check_image say, word for
word, where the ingest tests only look at the outcome's reason."""

from __future__ import annotations

import struct
import zlib

import pytest

from catsdogs.data.readers import Entry
from catsdogs.data.sources import LAYOUT_HELP, Outcome, check_image, detect_layout, kaggle_name, plan, unsafe_name
from catsdogs.errors import DataError
from tests.ingest_cases import MAX_PIXELS, jpeg


def test_a_microsoft_name_whose_kaggle_name_is_too_long_is_a_bad_name_and_255_bytes_are_kept():
    """PetImages/Cat/<digits>.jpg fits a folder (a component of 252 bytes) but cat.<digits>.jpg needs 4
    bytes more: 247 digits make a Kaggle name of 255 bytes, 248 one of 256."""
    fits, too_long = "PetImages/Cat/" + "1" * 247 + ".jpg", "PetImages/Cat/" + "2" * 248 + ".jpg"
    entries = [Entry("PetImages/Dog/1.jpg", 0), Entry(fits, 1), Entry(too_long, 2)]
    layout, skipped, to_check = plan(entries)
    assert layout == "microsoft"
    assert skipped == [Outcome(too_long, "bad_name", "its Kaggle name is longer than 255 bytes", 2)]
    assert to_check == [(entries[1], "cat." + "1" * 247 + ".jpg"), (entries[0], "dog.1.jpg")]


@pytest.mark.parametrize(
    "layout, name, out",
    [
        ("kaggle", "a/b/train/cat.1.jpg", "cat.1.jpg"),  # the label is in the last component only
        ("microsoft", "data/2017/PetImages/Cat/7.jpg", "cat.7.jpg"),  # and in the last two
        ("microsoft", "Dog/7.jpg", "dog.7.jpg"),
        ("microsoft", "a\\b\\Dog\\8.jpg", "dog.8.jpg"),
    ],
)
def test_kaggle_name_reads_the_last_components_of_a_deep_name(layout, name, out):
    assert kaggle_name(layout, name) == out


def test_a_windows_drive_of_either_case_is_unsafe():
    assert unsafe_name("c:/cat.1.jpg") and unsafe_name("C:\\cat.1.jpg") and unsafe_name("z:cat.1.jpg")
    assert not unsafe_name("cc:/cat.1.jpg") and not unsafe_name("1:/cat.1.jpg")


def test_skipped_outcomes_sort_by_name_then_by_position_in_the_archive():
    outcomes = [Outcome("b", "x", index=0), Outcome("a", "x", index=3), Outcome("a", "x"), Outcome("a", "x", index=0)]
    assert [(o.entry, o.index) for o in sorted(outcomes, key=Outcome.key)] == [
        ("a", None),  # a folder's entry (no position) before the archive's entry 0
        ("a", 0),
        ("a", 3),
        ("b", 0),
    ]


def test_no_cat_or_dog_name_lists_the_first_five_files_seen():
    names = [f"f{i}.txt" for i in range(7)]
    with pytest.raises(DataError) as refused:
        detect_layout(names)
    assert str(refused.value) == (
        f"no cat/dog image names found; {LAYOUT_HELP}. First files seen: f0.txt, f1.txt, f2.txt, f3.txt, f4.txt"
    )
    with pytest.raises(DataError) as empty:
        detect_layout([])
    assert str(empty.value) == f"no cat/dog image names found; {LAYOUT_HELP}. First files seen: no files"


def test_a_zip_inside_the_source_is_named_as_the_likely_cause():
    with pytest.raises(DataError) as refused:
        detect_layout(["kaggle/train.ZIP", "readme.txt"])
    assert str(refused.value) == (
        "no cat/dog image names found (a zip inside the source? extract the inner train.zip first); "
        f"{LAYOUT_HELP}. First files seen: kaggle/train.ZIP, readme.txt"
    )


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """A PNG stating width x height (RGB, 8 bits) with 13 bytes of pixel data."""
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 13)) + chunk(b"IEND", b"")


def test_check_image_details(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"not an image at all")
    assert check_image(path, MAX_PIXELS) == ("not_an_image", "Pillow cannot identify the format")
    path.write_bytes(png_header(30_000, 30_000))  # Pillow itself refuses above 2 x its bound, at open
    reason, detail = check_image(path, MAX_PIXELS)
    assert reason == "too_many_pixels" and "900000000 pixels" in detail and "exceeds limit" in detail
    path.write_bytes(jpeg()[:-200])
    reason, detail = check_image(path, MAX_PIXELS)
    assert reason == "truncated" and detail.startswith("OSError: ")
