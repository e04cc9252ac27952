"""catsdogs/data/sources.py directly: what plan, kaggle_name, detect_layout and check_image say, word for
word, where the ingest tests only look at the outcome's reason."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catsdogs.data.readers import Entry
from catsdogs.data.sources import (
    LAYOUT_HELP,
    Outcome,
    check_image,
    detect_layout,
    jpeg_end,
    kaggle_name,
    keep_image_only,
    plan,
    png_end,
    unsafe_name,
)
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


# --------------------------------------------------------------------------- where an image file ends
# Hand-built JPEG marker streams (the oracle: the lengths written below), then Pillow's own files.
SOI, EOI = b"\xff\xd8", b"\xff\xd9"


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body


@pytest.mark.parametrize(
    "data, end",
    [
        (SOI + EOI + b"payload", 4),
        (SOI + b"\xff\xff\xff" + EOI, 7),  # fill bytes before a marker
        (SOI + b"\xff\xd0\xff\xd7\xff\x01" + EOI + EOI, 10),  # RST0, RST7, TEM: markers without a length
        (SOI + segment(0xE0, b"") + EOI, 8),  # a segment of length 2 (nothing but its length)
        (SOI + segment(0xE0, b"\xff\xd9" * 3) + EOI + b"\xff\xd9", 14),  # an EOI inside a segment is data
        # a scan: stuffed 0xFF00 and RST0 ... RST7 are entropy-coded data, the first other marker ends it
        (SOI + segment(0xDA, b"\x01") + b"\x12\xff\x00\xff\xd0\x34\xff\xd7\x56" + EOI + b"\xff\xd9", 18),
        (SOI + segment(0xDA, b"") + b"\xff\x00" + EOI, 10),  # a stuffed 0xFF00 right before the end
        (SOI + segment(0xDA, b"") + segment(0xC4, b"") + EOI, 12),  # a segment after the scan
    ],
)
def test_jpeg_end_follows_the_markers_to_the_eoi(data, end):
    assert jpeg_end(data) == end
    assert jpeg_end(memoryview(data).tobytes()[:end]) == end  # the image alone: its whole length


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        SOI,  # nothing after the start
        SOI + b"\x00" + EOI,  # no marker where one must be
        SOI + b"\xff\xff",  # fill bytes, then the end of the data
        SOI + b"\xff\xe0\x00\x00" + EOI,  # segment lengths 0 and 1 are impossible
        SOI + b"\xff\xe0\x00\x01" + EOI,
        SOI + b"\xff\xda\x00\x00" + EOI,  # ... also for a scan, whose data would follow
        SOI + b"\xff\xda\x00\x01" + EOI,
        SOI + segment(0xE0, b"ab")[:-1],  # a segment cut short
        SOI + segment(0xDA, b"") + b"\x12\x34",  # a scan without an end
        SOI + segment(0xDA, b"") + b"\x12\xff",  # a scan ending with a lone 0xFF
        SOI + segment(0xDA, b"") + b"\x12\xff\x00",  # ... or with a stuffed 0xFF00
        SOI + b"\xff\xd8" + EOI,  # a second SOI (0xD8, just past RST7) takes a length: here past the end
        SOI + segment(0xDA, b"") + b"\x12\xff\xd8" + EOI,  # ... also when it ends a scan
        b"\xff\xd9" + EOI,  # no SOI
    ],
)
def test_jpeg_end_is_none_without_a_whole_jpeg(data):
    assert jpeg_end(data) is None


def png_of(mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (5, 3), 7).save(buffer, "PNG")
    return buffer.getvalue()


def test_png_end_counts_the_chunks_to_the_iend():
    image = png_of()  # signature (8), IHDR (25), IDAT, IEND (12): Pillow's file is the image, nothing more
    assert image[-12:] == b"\x00\x00\x00\x00IEND\xaeB`\x82"
    assert png_end(image) == len(image) and png_end(image + b"<html>payload</html>") == len(image)
    chunks = image[:8] + struct.pack(">I", 3) + b"tEXt" + b"abc" + b"CRC!" + image[8:]  # one 15-byte chunk more
    assert png_end(chunks + b"IEND") == len(image) + 15
    for cut in (1, 4, 5, 12):  # the IEND chunk cut short, or missing
        assert png_end(image[:-cut]) is None
    assert png_end(b"\x89PNG\r\n\x1a\x0a") is None and png_end(b"\x89PNG\r\n\x1a\x0b" + image[8:]) is None
    assert png_end(b"\x89png\r\n\x1a\n" + image[8:]) is None and png_end(image[:7]) is None


def write_jpeg_with_payload(path: Path) -> bytes:
    image = jpeg(1)
    path.write_bytes(image + b"\xff\xd9<html>payload</html>")
    return image


def test_keep_image_only_cuts_a_jpeg_or_a_png_after_its_end_byte_for_byte(tmp_path):
    image = write_jpeg_with_payload(tmp_path / "cat.1.jpg")
    keep_image_only(tmp_path / "cat.1.jpg")
    assert (tmp_path / "cat.1.jpg").read_bytes() == image
    (tmp_path / "dog.1.png").write_bytes(png_of() + b"PK\x03\x04")
    keep_image_only(tmp_path / "dog.1.png")
    assert (tmp_path / "dog.1.png").read_bytes() == png_of()


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA"])
def test_another_format_is_re_encoded_as_png_in_its_own_mode(tmp_path, mode):
    """TIFF holds each of these modes, and so does PNG: the pixels are kept as they are, mode and all."""
    pixels = np.random.default_rng(0).integers(0, 256, (4, 6, 4), dtype=np.uint8)
    original = Image.fromarray(pixels, "RGBA").convert(mode)
    original.save(tmp_path / "cat.1.jpg", "TIFF")
    keep_image_only(tmp_path / "cat.1.jpg")
    with Image.open(tmp_path / "cat.1.jpg") as image:
        assert image.format == "PNG" and image.mode == mode
        np.testing.assert_array_equal(np.asarray(image), np.asarray(original))
        if mode == "P":
            assert image.getpalette() == original.getpalette()


def test_a_mode_png_cannot_hold_is_re_encoded_as_rgb(tmp_path):
    """CMYK, and 32-bit integers (mode I: it decodes, but Pillow's PNG writer refuses it and made ingest
    stop on an OSError), are kept as RGB, as resize_split would convert them."""
    pixels = np.random.default_rng(1).integers(0, 256, (4, 6, 4), dtype=np.uint8)
    Image.fromarray(pixels, "CMYK").save(tmp_path / "cat.1.jpg", "TIFF")
    integers = np.arange(-100, 380, 20, dtype=np.int32).reshape(4, 6)
    Image.fromarray(integers, "I").save(tmp_path / "cat.2.jpg", "TIFF")
    # CMYK -> RGB: each channel (255 - c)(255 - k) / 255, rounded; I -> RGB: the value clipped to 0 ... 255
    c, m, y, k = (pixels[..., i].astype(float) for i in range(4))
    cmyk = np.stack([np.floor((255 - v) * (255 - k) / 255 + 0.5) for v in (c, m, y)], axis=-1)
    clipped = np.repeat(np.clip(integers, 0, 255)[..., None], 3, axis=-1)
    for name, expected in (("cat.1.jpg", cmyk), ("cat.2.jpg", clipped)):
        keep_image_only(tmp_path / name)
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(image), expected)
