"""Real-data sources for the ingest tests: tiny images covering every case of issue 3, written as a zip
archive or as a folder, in the Kaggle or the Microsoft layout.

Each case is (file number, class, content bytes, expected outcome): the outcome is the skip reason, or
KEEP with the RGB colour(s) resize_split must read from the kept file.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

KEEP = "keep"
RED, BLUE = (200, 30, 30), (30, 40, 200)
SIZE = (16, 8)  # width, height of the test photos: tiny, so decoding is instant


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def jpeg(color=RED, size=SIZE, mode="RGB", **options) -> bytes:
    return _encode(Image.new("RGB", size, color).convert(mode), "JPEG", quality=95, **options)


def without_jfif(data: bytes) -> bytes:
    """The JPEG `data` without its APP0 JFIF segment: an Exif-only JPEG, as many cameras write."""
    assert data[2:4] == b"\xff\xe0"
    length = struct.unpack(">H", data[4:6])[0]
    return data[:2] + data[4 + length :]


def exif_rotated() -> bytes:
    """A 16x8 JPEG, red left half and blue right half, with EXIF orientation 6 (rotate 90 degrees
    clockwise to display): displayed, it is 8x16 with red on top and blue at the bottom."""
    image = Image.new("RGB", SIZE, BLUE)
    image.paste(RED, (0, 0, SIZE[0] // 2, SIZE[1]))
    exif = Image.Exif()
    exif[0x0112] = 6
    return without_jfif(_encode(image, "JPEG", quality=95, exif=exif.tobytes()))


def png_header_bomb(width=30000, height=30000) -> bytes:
    """A 100-byte grayscale PNG whose header claims width x height pixels (beyond Pillow's own bound)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + width // 8) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def extraneous_bytes() -> bytes:
    """A JPEG with junk before its end marker: libjpeg warns "N extraneous bytes before marker 0xd9"."""
    data = jpeg(BLUE)
    return data[:-2] + b"\x00\x17\x2a" + data[-2:]


def broken_png() -> bytes:
    """A PNG whose compressed pixel data is garbled: zlib fails while decoding."""
    data = _encode(Image.new("RGB", SIZE, RED), "PNG")
    start = data.index(b"IDAT") + 6
    return data[:start] + b"\x00" * 4 + data[start + 4 :]


@dataclass(frozen=True)
class Case:
    number: str
    cls: str  # "cat" or "dog"
    data: bytes
    outcome: str  # KEEP or a skip reason
    colors: tuple = ()  # KEEP: expected RGB (one colour, or top and bottom halves)


def image_cases() -> list[Case]:
    """Every content case of the issue, one file each."""
    rgba = Image.new("RGBA", SIZE, (*BLUE, 90))
    palette = Image.new("RGB", SIZE, RED).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    return [
        Case("0", "cat", jpeg(RED), KEEP, (RED,)),
        Case("0", "dog", jpeg(BLUE), KEEP, (BLUE,)),
        Case("1", "cat", jpeg((120, 120, 120), mode="L"), KEEP, ((120, 120, 120),)),
        Case("2", "cat", jpeg(RED, mode="CMYK"), KEEP, (RED,)),
        Case("1", "dog", _encode(rgba, "PNG"), KEEP, (BLUE,)),
        Case("2", "dog", _encode(palette, "GIF"), KEEP, (RED,)),
        Case("3", "cat", _encode(Image.new("RGB", SIZE, BLUE), "BMP"), KEEP, (BLUE,)),
        Case("3", "dog", extraneous_bytes(), KEEP, (BLUE,)),
        Case("4", "cat", exif_rotated(), KEEP, (RED, BLUE)),
        Case("5", "cat", without_jfif(jpeg(RED)), KEEP, (RED,)),
        Case("6", "cat", b"", "empty"),
        Case("4", "dog", jpeg(BLUE)[:-200], "truncated"),
        Case("5", "dog", b"<html>404 Not Found</html>\n", "not_an_image"),
        Case("6", "dog", png_header_bomb(), "too_many_pixels"),
        Case("7", "dog", jpeg(RED, size=(300, 200)), "too_many_pixels"),  # above the tests' max_pixels
        Case("8", "dog", broken_png(), "corrupt"),
    ]


MAX_PIXELS = 10_000  # the tests' ingest.max_pixels: 300 x 200 is a bomb, 16 x 8 is not


def image_name(layout: str, case: Case) -> str:
    if layout == "kaggle":
        return f"train/{case.cls}.{case.number}.jpg"
    return f"PetImages/{case.cls.capitalize()}/{case.number}.jpg"


def junk_entries(layout: str) -> dict[str, tuple[bytes, str]]:
    """Files that are skipped from their name alone: entry name -> (content, reason)."""
    folder = "train" if layout == "kaggle" else "PetImages/Cat"
    first = image_name(layout, image_cases()[0])
    return {
        f"{folder}/Thumbs.db": (b"\xd0\xcf\x11\xe0 not an image", "system_file"),
        f"__MACOSX/{folder}/._{Path(first).name}": (b"\x00\x05\x16\x07 AppleDouble", "macos_metadata"),
        f"{folder}/._{Path(first).name}": (b"\x00\x05\x16\x07 AppleDouble", "macos_metadata"),
        f"{folder}/notes.txt": (b"hello", "no_label"),
        # two names that give the same Kaggle name cat.20.jpg (case, extension): neither is kept
        **duplicate_pair(layout),
    }


def duplicate_pair(layout: str) -> dict[str, tuple[bytes, str]]:
    """Two entries whose names differ only in case and extension, hence give the same Kaggle name
    (cat.20.jpg), with different content: both are skipped."""
    if layout == "kaggle":
        names = ("train/cat.20.jpg", "train/CAT.20.JPEG")
    else:
        names = ("PetImages/Cat/20.jpg", "PetImages/CAT/20.jpeg")
    return {names[0]: (jpeg(RED), "duplicate"), names[1]: (jpeg(BLUE), "duplicate")}


def expected(layout: str) -> tuple[dict[str, Case], dict[str, str]]:
    """(Kaggle name -> case kept, entry name -> skip reason) for the entries of `write_zip` /
    `write_folder` that both share."""
    kept, skipped = {}, {}
    for case in image_cases():
        if case.outcome == KEEP:
            kept[f"{case.cls}.{case.number}.jpg"] = case
        else:
            skipped[image_name(layout, case)] = case.outcome
    skipped.update({name: reason for name, (_, reason) in junk_entries(layout).items()})
    return kept, skipped


def write_zip(path: Path, layout: str) -> dict[str, str]:
    """Write every case to a zip at `path`, plus zip-only traps; return those traps' entry -> reason."""
    traps = {
        "../evil/cat.90.jpg": "unsafe_path",
        "/tmp/evil/dog.90.jpg": "unsafe_path",
        image_name(layout, Case("91", "cat", b"", "")): "link_not_followed",
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for case in image_cases():
            archive.writestr(image_name(layout, case), case.data)
        for name, (data, _) in junk_entries(layout).items():
            archive.writestr(name, data)
        archive.writestr("../evil/cat.90.jpg", jpeg(RED))
        archive.writestr("/tmp/evil/dog.90.jpg", jpeg(BLUE))
        link = zipfile.ZipInfo(image_name(layout, Case("91", "cat", b"", "")))
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "../../../../etc/passwd")
    return traps


def write_folder(root: Path, layout: str, outside: Path) -> dict[str, str]:
    """Write every case as files under `root`, plus links out of it to `outside` (a folder holding a
    valid cat photo); return those links' entry -> reason."""
    for case in image_cases():
        (root / image_name(layout, case)).parent.mkdir(parents=True, exist_ok=True)
        (root / image_name(layout, case)).write_bytes(case.data)
    for name, (data, _) in junk_entries(layout).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.jpg").write_bytes(jpeg(RED))
    link_file = image_name(layout, Case("92", "cat", b"", ""))
    link_folder = str(Path(link_file).parent / "more")
    os.symlink(outside / "secret.jpg", root / link_file)
    os.symlink(outside, root / link_folder)
    return {link_file: "link_not_followed", link_folder: "link_not_followed"}
