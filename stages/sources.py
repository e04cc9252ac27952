"""Reading a real cats-and-dogs source (a zip archive or a folder) safely, one file at a time.

Accepted layouts, detected from the file names (the label always comes from the name, cat = 1, dog = 0):

- kaggle:    Kaggle's Dogs vs Cats `train.zip` or its extracted folder: `[train/]cat.N.jpg`, `dog.N.jpg`.
- microsoft: Microsoft's `kagglecatsanddogs_*.zip` or its extracted folder: `[PetImages/]Cat/N.jpg`,
             `Dog/N.jpg`.

Every file gets one outcome: kept under its Kaggle name (`cat.N.jpg`, `dog.N.jpg`), or skipped with one
of the reasons in REASONS. Nothing here writes a file, and no path is ever built from an archive entry's
name: a zip entry is only read through the archive, and a folder is only read below its own real path.
"""
from __future__ import annotations

import io
import os
import posixpath
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from PIL import Image, ImageOps, UnidentifiedImageError

from stages.common import LABELS, DataError
from stages.images import KAGGLE_NAME, kaggle_file_name

# Skip reasons, in the order they are checked; metrics/ingest.json counts each of them.
REASONS = {
    "unsafe_path": "absolute path or `..` in an archive entry name",
    "link_not_followed": "symbolic link pointing outside the source, to a folder, or inside a zip",
    "macos_metadata": "`__MACOSX/` folder or `._name` AppleDouble file made by macOS",
    "system_file": "Thumbs.db, .DS_Store or desktop.ini",
    "no_label": "name without a cat/dog label in the detected layout",
    "duplicate": "a second file with the same cat/dog name",
    "not_a_file": "not a regular file (device, pipe, socket)",
    "unreadable_entry": "archive entry that cannot be read (bad CRC, encrypted, unsupported compression)",
    "empty": "zero-byte file",
    "too_large": "file larger than MAX_FILE_BYTES",
    "not_an_image": "content that is no image format Pillow knows",
    "too_many_pixels": "width x height above ingest.max_pixels (decompression bomb)",
    "truncated": "image data ends early",
    "corrupt": "image that fails to decode for another reason",
}
# Bound on the bytes of one file, checked before reading it (Kaggle's largest photo is about 0.5 MB).
MAX_FILE_BYTES = 64 * 2**20
SYSTEM_FILES = {"thumbs.db", ".ds_store", "desktop.ini"}

LAYOUTS = {
    # Kaggle: the class is in the file name, e.g. train/cat.12.jpg.
    "kaggle": re.compile(rf"(?:^|/){KAGGLE_NAME.pattern}$", re.IGNORECASE),
    # Microsoft: the class is the folder, e.g. PetImages/Cat/12.jpg.
    "microsoft": re.compile(r"(?:^|/)(cat|dog)/(\d+)\.jpe?g$", re.IGNORECASE),
}
LAYOUT_HELP = (
    "accepted layouts: Kaggle's train.zip or its folder (train/cat.N.jpg, train/dog.N.jpg), or "
    "Microsoft's kagglecatsanddogs_*.zip or its folder (PetImages/Cat/N.jpg, PetImages/Dog/N.jpg)"
)


@dataclass(frozen=True)
class Entry:
    """One file of the source: its path inside the source (`/`-separated), its size in bytes, and
    `problem`, a skip reason already known from the listing (unsafe name, link, not a regular file)."""

    name: str
    size: int
    problem: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Outcome:
    """A skipped entry: its path inside the source, the reason (a key of REASONS) and details."""

    entry: str
    reason: str
    detail: str = ""


# --------------------------------------------------------------------------- names (pure)


def unsafe_name(name: str) -> bool:
    """True for an archive entry name that would escape the extraction folder: absolute (`/x`, `C:/x`)
    or with a `..` component. `name` uses `/` separators."""
    return name.startswith("/") or bool(re.match(r"^[A-Za-z]:", name)) or ".." in name.split("/")


def name_problem(name: str) -> str | None:
    """Skip reason known from an entry's name alone (before any layout is known), or None."""
    if unsafe_name(name):
        return "unsafe_path"
    base = posixpath.basename(name)
    if "__MACOSX" in name.split("/") or base.startswith("._"):
        return "macos_metadata"
    if base.lower() in SYSTEM_FILES:
        return "system_file"
    return None


def kaggle_name(layout: str, name: str) -> str | None:
    """The Kaggle name (`cat.N.jpg` / `dog.N.jpg`) of an entry in `layout`, or None when its name
    carries no label: ("kaggle", "train/Cat.7.JPG") -> "cat.7.jpg", ("microsoft", "PetImages/Dog/7.jpg")
    -> "dog.7.jpg"."""
    match = LAYOUTS[layout].search(name)
    return kaggle_file_name(LABELS[match.group(1).lower()], match.group(2)) if match else None


def detect_layout(names: Iterable[str]) -> str:
    """The layout whose pattern matches the names; a DataError listing the accepted layouts when
    none or both match."""
    names = list(names)
    counts = {layout: sum(kaggle_name(layout, n) is not None for n in names) for layout in LAYOUTS}
    found = [layout for layout, count in counts.items() if count]
    if len(found) == 1:
        return found[0]
    sample = ", ".join(names[:5]) or "no files"
    if not found:
        hint = " (a zip inside the source? extract the inner train.zip first)" if any(
            n.lower().endswith(".zip") for n in names) else ""
        raise DataError(f"no cat/dog image names found{hint}; {LAYOUT_HELP}. First files seen: {sample}")
    raise DataError(
        f"both layouts found ({counts['kaggle']} Kaggle-style and {counts['microsoft']} Microsoft-style "
        f"names): point ingest.source at one of them; {LAYOUT_HELP}"
    )


def plan(entries: Sequence[Entry]) -> tuple[str, list[Outcome], list[tuple[Entry, str]]]:
    """Detect the layout and decide every outcome that needs no reading.

    Returns the layout, the entries skipped from their name alone (as Outcomes), and the
    (entry, Kaggle name) pairs that must be read and decoded. Entries are visited in name order, so
    which of two duplicates is kept never depends on the listing order.
    """
    entries = sorted(entries, key=lambda e: e.name)
    early = {e.name: e.problem or name_problem(e.name) for e in entries}
    layout = detect_layout(e.name for e in entries if early[e.name] is None)
    skipped: list[Outcome] = []
    to_check: list[tuple[Entry, str]] = []
    taken: set[str] = set()
    for entry in entries:
        out = kaggle_name(layout, entry.name)
        if early[entry.name]:
            reason = early[entry.name]
            skipped.append(Outcome(entry.name, reason=reason, detail=entry.detail or REASONS[reason]))
        elif out is None:
            skipped.append(Outcome(entry.name, reason="no_label", detail=f"not a {layout}-layout cat/dog name"))
        elif out in taken:
            skipped.append(Outcome(entry.name, reason="duplicate", detail=f"{out} already taken"))
        else:
            taken.add(out)
            to_check.append((entry, out))
    return layout, skipped, to_check


# --------------------------------------------------------------------------- content (pure)


def check_image(data: bytes, max_pixels: int) -> tuple[str, str] | None:
    """None when `data` is an image that decodes completely, else (reason, detail).

    Decodes every pixel (not just the header), applies the EXIF orientation and converts to RGB, as
    resize_split will. A file whose width x height exceeds `max_pixels` is refused from its header,
    before any pixel is decoded. Warnings (e.g. libjpeg's "extraneous bytes before marker") are
    tolerated: the pixels are there.
    """
    if not data:
        return "empty", "0 bytes"
    try:
        with Image.open(io.BytesIO(data)) as image:
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
    except Exception as err:  # noqa: BLE001 - Pillow's decoders raise many types on malformed input
        reason = "truncated" if "truncated" in str(err).lower() else "corrupt"
        return reason, f"{type(err).__name__}: {err}"
    return None


# --------------------------------------------------------------------------- sources (I/O)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class FolderSource:
    """An extracted folder. Symbolic links are followed only to files below the folder's real path."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def entries(self) -> list[Entry]:
        found = []
        for folder, dirnames, filenames in os.walk(self.root, followlinks=False):
            base = Path(folder)
            for name in sorted(dirnames):
                if (base / name).is_symlink():  # os.walk does not descend into it
                    found.append(self._entry(base / name, link_to_folder=True))
            found.extend(self._entry(base / name) for name in filenames)
        return found

    def _entry(self, path: Path, link_to_folder: bool = False) -> Entry:
        name = path.relative_to(self.root).as_posix()
        if path.is_symlink():
            target = path.resolve()
            if not _inside(target, self.root):
                return Entry(name, 0, "link_not_followed", f"points outside the source, to {target}")
            if link_to_folder:
                return Entry(name, 0, "link_not_followed", "link to a folder")
        try:
            info = path.stat()
        except OSError as err:
            return Entry(name, 0, "link_not_followed", f"broken link: {err.strerror}")
        if not stat.S_ISREG(info.st_mode):
            return Entry(name, 0, "not_a_file", "not a regular file")
        return Entry(name, info.st_size)

    def read(self, entry: Entry) -> bytes:
        return (self.root / entry.name).read_bytes()

    def close(self) -> None:
        pass


class ZipSource:
    """A zip archive, read entry by entry without extracting anything."""

    def __init__(self, path: Path):
        try:
            self.archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as err:
            raise DataError(f"{path}: not a readable zip archive ({err})") from None
        self.infos = {}

    def entries(self) -> list[Entry]:
        found = []
        for info in self.archive.infolist():
            if info.is_dir():
                continue
            name = info.filename.replace("\\", "/")
            self.infos[name] = info
            if stat.S_ISLNK(info.external_attr >> 16):
                found.append(Entry(name, info.file_size, "link_not_followed", "symbolic link inside a zip"))
            else:
                found.append(Entry(name, info.file_size))
        return found

    def read(self, entry: Entry) -> bytes:
        return self.archive.read(self.infos[entry.name])

    def close(self) -> None:
        self.archive.close()


def open_source(path: Path) -> FolderSource | ZipSource:
    """The source at `path`: a folder, or a zip archive; a DataError for anything else."""
    path = Path(path)
    if path.is_dir():
        return FolderSource(path)
    if not path.exists():
        raise DataError(f"{path}: not found (put the archive or its extracted folder there)")
    if zipfile.is_zipfile(path):
        return ZipSource(path)
    raise DataError(f"{path}: neither a folder nor a zip archive; {LAYOUT_HELP}")


def read_checked(source: FolderSource | ZipSource, entry: Entry) -> tuple[bytes | None, tuple[str, str] | None]:
    """The entry's bytes, or None and (reason, detail) when it is empty, too large or unreadable.
    The size is checked before reading, so a zip entry that inflates to gigabytes is never read."""
    if entry.size == 0:
        return None, ("empty", "0 bytes")
    if entry.size > MAX_FILE_BYTES:
        return None, ("too_large", f"{entry.size} bytes > {MAX_FILE_BYTES}")
    try:
        return source.read(entry), None
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError) as err:
        return None, ("unreadable_entry", f"{type(err).__name__}: {err}")
