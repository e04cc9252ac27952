"""Reading a real cats-and-dogs source (a zip archive or a folder) safely, one file at a time.

Accepted layouts, detected from the file names (the label always comes from the name, cat = 1, dog = 0):

- kaggle:    Kaggle's Dogs vs Cats `train.zip` or its extracted folder: `[train/]cat.N.jpg`, `dog.N.jpg`.
- microsoft: Microsoft's `kagglecatsanddogs_*.zip` or its extracted folder: `[PetImages/]Cat/N.jpg`,
             `Dog/N.jpg`.

Every file gets one outcome: kept under its Kaggle name (`cat.N.jpg`, `dog.N.jpg`), or skipped with one
of the reasons in REASONS; no name and no content stops the reading. This module decides from names
(`plan`) and decodes (`check_image`); catsdogs/data/readers.py reads the files, catsdogs/data/archive.py zip archives.
"""

from __future__ import annotations

import io
import mmap
import os
import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from catsdogs.data.images import KAGGLE_NAME, kaggle_file_name, open_image
from catsdogs.data.labels import LABELS
from catsdogs.data.readers import Entry
from catsdogs.errors import DataError

# Skip reasons, in the order they are checked; metrics/ingest_skipped.csv gives each skipped file's.
REASONS = {
    "bad_name": "name not valid UTF-8, with a control character, or too long for a file system",
    "unsafe_path": "absolute path or `..` in an archive entry name",
    "link_not_followed": "symbolic link pointing outside the source, to a folder, or inside a zip",
    "macos_metadata": "`__MACOSX/` folder or `._name` AppleDouble file made by macOS",
    "system_file": "Thumbs.db, .DS_Store or desktop.ini",
    "no_label": "name without a cat/dog label in the detected layout",
    "duplicate": "one of several files with the same cat/dog name: none of them is kept",
    "not_a_file": "not a regular file (device, pipe, socket)",
    "unreadable_folder": "folder that cannot be listed (no permission, name too long): its files are not read",
    "unreadable_entry": "zip entry not readable as its header states (bad CRC, size, encrypted, ...), "
    "or file the system will not open or look at (a path too long, ...)",
    "empty": "zero-byte file",
    "too_large": "file larger than MAX_FILE_BYTES",
    "not_an_image": "content that is no image format Pillow knows",
    "too_many_pixels": "width x height above ingest.max_pixels (decompression bomb)",
    "truncated": "image data ends early",
    "corrupt": "image that fails to decode for another reason",
}
# Bound on the bytes of one file, counted while it is copied (Kaggle's largest photo is about 0.5 MB).
MAX_FILE_BYTES = 64 * 2**20
NAME_MAX, PATH_MAX = 255, 4096  # Linux: bytes of one path component, of a whole path with its NUL
SURROGATE = re.compile("[\ud800-\udfff]")  # how an undecodable byte of a name is kept
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode's category Cc
SYSTEM_FILES = {"thumbs.db", ".ds_store", "desktop.ini"}

LAYOUTS = {
    # Kaggle: the class is in the file name, e.g. train/cat.12.jpg (matched against the last component).
    "kaggle": re.compile(KAGGLE_NAME.pattern, re.IGNORECASE | re.ASCII),
    # Microsoft: the class is the folder, e.g. PetImages/Cat/12.jpg (against the last two components).
    "microsoft": re.compile(r"(cat|dog)/(\d+)\.jpe?g", re.IGNORECASE | re.ASCII),
}
LAYOUT_HELP = (
    "accepted layouts: Kaggle's train.zip or its folder (train/cat.N.jpg, train/dog.N.jpg), or "
    "Microsoft's kagglecatsanddogs_*.zip or its folder (PetImages/Cat/N.jpg, PetImages/Dog/N.jpg)"
)


@dataclass(frozen=True)
class Outcome:
    """A skipped entry: its name, the reason (a key of REASONS), details, and its position in a zip
    archive (which tells apart entries with the same name)."""

    entry: str
    reason: str
    detail: str = ""
    index: int | None = None

    def key(self) -> tuple:
        """Sort key: by name, then by position in the archive."""
        return self.entry, -1 if self.index is None else self.index


# --------------------------------------------------------------------------- names (pure)


def as_path(name: str) -> str:
    """The entry name with `\\` read as a separator, as Windows tools write them: `a\\b` -> `a/b`."""
    return name.replace("\\", "/")


def unsafe_name(name: str) -> bool:
    """True for an archive entry name that would escape the extraction folder: absolute (`/x`, `C:/x`,
    `\\\\server\\x`) or with a `..` component."""
    path = as_path(name)
    return path.startswith("/") or bool(re.match(r"^[A-Za-z]:", path)) or ".." in path.split("/")


def bad_name(name: str) -> str | None:
    """Why `name` is no usable file name, or None: not valid UTF-8 (kept as lone surrogates), a control
    character, longer than NAME_MAX bytes in a component or PATH_MAX - 1 in all."""
    if SURROGATE.search(name):
        return "not valid UTF-8"
    if CONTROL.search(name):
        return "holds a control character"
    if len(name.encode()) >= PATH_MAX:
        return f"longer than {PATH_MAX - 1} bytes"
    if any(len(part.encode()) > NAME_MAX for part in as_path(name).split("/")):
        return f"a component is longer than {NAME_MAX} bytes"
    return None


def name_problem(name: str) -> tuple[str, str] | None:
    """(reason, detail) known from an entry's name alone (before any layout is known), or None."""
    if detail := bad_name(name):
        return "bad_name", detail
    if unsafe_name(name):
        return "unsafe_path", REASONS["unsafe_path"]
    path = as_path(name)
    base = posixpath.basename(path)
    if "__MACOSX" in path.split("/") or base.startswith("._"):
        return "macos_metadata", REASONS["macos_metadata"]
    if base.lower() in SYSTEM_FILES:
        return "system_file", REASONS["system_file"]
    return None


def kaggle_name(layout: str, name: str) -> str | None:
    """The Kaggle name (`cat.N.jpg` / `dog.N.jpg`) of an entry in `layout`, or None when its name
    carries no label: ("kaggle", "train/Cat.7.JPG") -> "cat.7.jpg", ("microsoft", "PetImages/Dog/7.jpg")
    -> "dog.7.jpg"."""
    tail = as_path(name).rsplit("/", 2)[-1 if layout == "kaggle" else -2 :]
    match = LAYOUTS[layout].fullmatch("/".join(tail))
    return kaggle_file_name(LABELS[match.group(1).lower()], match.group(2)) if match else None


def detect_layout(names: Iterable[str]) -> str:
    """The layout whose pattern matches the most names (the others' names are then skipped as
    no_label, so one odd name cannot stop ingest); a DataError listing the accepted layouts when
    no name matches, or both layouts match as many names."""
    names = list(names)
    counts = {layout: sum(kaggle_name(layout, n) is not None for n in names) for layout in LAYOUTS}
    (best, most), (_, second) = sorted(counts.items(), key=lambda item: -item[1])
    if most > second:
        return best
    sample = ", ".join(names[:5]) or "no files"
    if not most:
        hint = (
            " (a zip inside the source? extract the inner train.zip first)"
            if any(n.lower().endswith(".zip") for n in names)
            else ""
        )
        raise DataError(f"no cat/dog image names found{hint}; {LAYOUT_HELP}. First files seen: {sample}")
    raise DataError(
        f"both layouts found, as often ({counts['kaggle']} Kaggle-style and {counts['microsoft']} Microsoft-style "
        f"names): point ingest.source at one of them; {LAYOUT_HELP}"
    )


def plan(entries: Sequence[Entry]) -> tuple[str, list[Outcome], list[tuple[Entry, str]]]:
    """Detect the layout and decide every outcome that needs no reading.

    Returns the layout, the entries skipped from their name alone (as Outcomes, sorted by `key`), and
    the (entry, Kaggle name) pairs that must be read and decoded, sorted by Kaggle name. Entries whose
    names give the same Kaggle name (`cat.1.jpg`, `train/CAT.1.JPEG`, or the same name twice) are all
    skipped as duplicates: which copy is right cannot be told, and the outcome of each entry never
    depends on the order of the listing.
    """
    early = [(e.problem, e.detail) if e.problem else name_problem(e.name) for e in entries]
    layout = detect_layout(e.name for e, problem in zip(entries, early, strict=True) if problem is None)
    skipped: list[Outcome] = []
    claims: dict[str, list[Entry]] = defaultdict(list)
    for entry, problem in zip(entries, early, strict=True):
        out = None if problem else kaggle_name(layout, entry.name)
        if problem:
            skipped.append(Outcome(entry.name, *problem, index=entry.index))
        elif out is None:
            skipped.append(Outcome(entry.name, "no_label", f"not a {layout}-layout cat/dog name", entry.index))
        elif len(out) > NAME_MAX:
            skipped.append(
                Outcome(entry.name, "bad_name", f"its Kaggle name is longer than {NAME_MAX} bytes", entry.index)
            )
        else:
            claims[out].append(entry)
    to_check = []
    for out, claimants in sorted(claims.items()):
        if len(claimants) == 1:
            to_check.append((claimants[0], out))
        else:
            skipped.extend(
                Outcome(e.name, "duplicate", f"{len(claimants)} entries are {out}; none is kept", e.index)
                for e in claimants
            )
    return layout, sorted(skipped, key=Outcome.key), to_check


# --------------------------------------------------------------------------- content


def check_image(path: Path | str, max_pixels: int) -> tuple[str, str] | None:
    """None when the file at `path` is an image that decodes completely, else (reason, detail).

    Decodes every pixel (not just the header), applies the EXIF orientation and converts to RGB, as
    resize_split will. A file whose width x height exceeds `max_pixels` is refused from its header,
    before any pixel is decoded, so decoding takes at most about 12 bytes per allowed pixel (measured:
    a progressive CMYK JPEG, 8 bytes of DCT coefficients and 4 of pixels; RGBA 8). Warnings (e.g. libjpeg's "extraneous bytes before marker") are
    tolerated: the pixels are there.
    """
    try:
        with open_image(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                return "too_many_pixels", f"{width}x{height} = {width * height} pixels > {max_pixels}"
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            if image.mode != "RGB":
                image.convert("RGB")
    except UnidentifiedImageError:
        return "not_an_image", "Pillow cannot identify the format"
    except Image.DecompressionBombError as err:
        return "too_many_pixels", str(err)
    except Exception as err:
        reason = "truncated" if "truncated" in str(err).lower() else "corrupt"
        return reason, f"{type(err).__name__}: {err}"
    return None


# --------------------------------------------------------------------------- what is kept of a file


def jpeg_end(data: bytes | mmap.mmap) -> int | None:
    """The length of the JPEG at the start of `data`, up to and including its EOI marker (segments are
    skipped by their lengths, entropy-coded data up to the next marker that is neither a stuffed 0xFF00
    nor a restart marker); None when `data` is no JPEG or its end cannot be found."""
    if data[:2] != b"\xff\xd8":
        return None
    at, size = 2, len(data)
    while True:
        if at >= size or data[at] != 0xFF:
            return None
        while at < size and data[at] == 0xFF:  # fill bytes before a marker
            at += 1
        if at >= size:
            return None
        marker = data[at]
        at += 1
        if marker == 0xD9:  # EOI
            return at
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            continue
        length = int.from_bytes(data[at : at + 2], "big")
        if length < 2:  # a segment's length counts its own 2 bytes (one that runs past the end: None below)
            return None
        at += length
        if marker == 0xDA:  # SOS: the scan's entropy-coded data follows
            while True:
                at = data.find(b"\xff", at)
                if at < 0 or at + 1 >= size:
                    return None
                if data[at + 1] == 0 or 0xD0 <= data[at + 1] <= 0xD7:
                    at += 2
                    continue
                break


def png_end(data: bytes | mmap.mmap) -> int | None:
    """The length of the PNG at the start of `data`, up to and including its IEND chunk; None when
    `data` is no PNG or has no IEND."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    at = 8
    while at + 8 <= len(data):
        length, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8]
        at += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            return at if at <= len(data) else None
    return None


def keep_image_only(path: Path) -> None:
    """Rewrite the decodable image file at `path` so that it holds the image and nothing else (the rule for
    data/raw: no bytes after the image, so no payload is kept): a JPEG or a PNG is cut after its end
    marker (EOI, IEND), byte for byte as it was up to there; any other format, or one whose end cannot
    be found, is re-encoded as PNG from its decoded pixels (lossless: the EXIF orientation applied, the
    mode kept where PNG has it, else RGB, which is what resize_split would convert it to: 32-bit integers,
    mode I, which Pillow's PNG writer refuses, are clipped to 0 ... 255 there as here)."""
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        end = jpeg_end(data) or png_end(data)
        size = len(data)
    if end is not None:
        if end < size:
            os.truncate(path, end)
        return
    with Image.open(path) as image:
        image.load()
        upright = ImageOps.exif_transpose(image)
    if upright.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):  # the modes Pillow writes to PNG (not I)
        upright = upright.convert("RGB")
    buffer = io.BytesIO()
    upright.save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
