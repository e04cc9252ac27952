"""The two kinds of real source behind one interface: a folder (FolderSource) and a zip archive
(ZipSource). `entries()` lists every file with its name exactly as the source gives it; `copy(entry,
out, cap)` writes one file's bytes to `out`, counting them (at most `cap`), or raises EntryError with a
skip reason. Nothing is ever written but `out`, and no path is built from an archive entry's name.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from catsdogs.data.archive import CHUNK, MAX_ENTRIES, EntryError, Member, extract, list_zip
from catsdogs.errors import DataError


@dataclass(frozen=True)
class Entry:
    """One file of the source: its name inside the source, exactly as the source gives it; its position
    in a zip archive (`index`, None in a folder) and the archive's record of it (`member`); and
    `problem`, a skip reason already known from the listing (link, not a regular file)."""

    name: str
    index: int | None = None
    problem: str | None = None
    detail: str = ""
    member: Member | None = None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class FolderSource:
    """An extracted folder. Symbolic links are followed only to files below the folder's real path."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def entries(self) -> list[Entry]:
        """Every file below the folder, depth first without recursion (a folder 1,900 levels deep is
        listed like any other); a folder that cannot be listed (no permission, a name too long) is an
        Entry with the problem `unreadable_folder` and the system's reason, never left out silently."""
        found = []
        pending = [self.root]
        while pending:
            folder = pending.pop()
            try:
                with os.scandir(folder) as listing:
                    items = sorted(listing, key=lambda item: item.name)
            except OSError as err:
                name = f"{folder.relative_to(self.root).as_posix()}/"
                found.append(Entry(name, problem="unreadable_folder", detail=f"{type(err).__name__}: {err.strerror}"))
                continue
            for item in items:
                path = Path(item.path)
                if item.is_dir(follow_symlinks=False):
                    pending.append(path)
                elif item.is_symlink() and path.is_dir():  # not followed
                    found.append(self._entry(path, link_to_folder=True))
                else:
                    found.append(self._entry(path))
            if len(found) > MAX_ENTRIES:
                raise DataError(f"{self.root}: more than {MAX_ENTRIES} files; split the source")
        return found

    def _entry(self, path: Path, link_to_folder: bool = False) -> Entry:
        name = path.relative_to(self.root).as_posix()
        try:
            is_link = path.is_symlink()
        except OSError as err:  # a path longer than the system takes (deep below the source), ...
            return Entry(name, problem="unreadable_entry", detail=f"{type(err).__name__}: {err.strerror}")
        if is_link:
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError) as err:  # RuntimeError: a link loop (Python < 3.13)
                reason = getattr(err, "strerror", None) or "link loop"
                return Entry(name, problem="link_not_followed", detail=f"broken link: {reason}")
            if not _inside(target, self.root):
                return Entry(name, problem="link_not_followed", detail=f"points outside the source, to {target}")
            if link_to_folder:
                return Entry(name, problem="link_not_followed", detail="link to a folder")
        try:
            info = path.stat()
        except OSError as err:
            return Entry(name, problem="link_not_followed", detail=f"broken link: {err.strerror}")
        if not stat.S_ISREG(info.st_mode):
            return Entry(name, problem="not_a_file", detail="not a regular file")
        return Entry(name)

    def copy(self, entry: Entry, out: BinaryIO, cap: int) -> int:
        """Copy the file to `out` in CHUNK pieces; return its size. EntryError when it is larger than
        `cap` (counted, not taken from the file system), or cannot be opened, or is no regular file."""
        try:  # O_NONBLOCK: a file turned into a pipe since the listing must not block the open
            descriptor = os.open(self.root / entry.name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError as err:
            raise EntryError("unreadable_entry", f"{type(err).__name__}: {err.strerror}") from None
        with open(descriptor, "rb", buffering=0) as handle:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise EntryError("not_a_file", "not a regular file")
            written = 0
            while piece := handle.read(CHUNK):
                written += len(piece)
                if written > cap:
                    raise EntryError("too_large", f"more than {cap} bytes")
                out.write(piece)
        return written


class ZipSource:
    """A zip archive, read entry by entry without extracting anything (catsdogs/data/archive.py)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def entries(self) -> list[Entry]:
        found = []
        for member in list_zip(self.path):
            if member.name.endswith("/"):  # a folder
                continue
            if stat.S_ISLNK(member.mode):
                found.append(Entry(member.name, member.index, "link_not_followed", "symbolic link inside a zip"))
            else:
                found.append(Entry(member.name, member.index, member=member))
        return found

    def copy(self, entry: Entry, out: BinaryIO, cap: int) -> int:
        assert entry.member is not None  # list() gave every readable entry its member
        return extract(self.path, entry.member, out, cap)  # its size; EntryError as archive.extract


def open_source(path: Path) -> FolderSource | ZipSource:
    """The source at `path`: a folder, or a zip archive; a DataError for anything else."""
    path = Path(path)
    if path.is_dir():
        return FolderSource(path)
    if not path.exists():
        raise DataError(f"{path}: not found (put the archive or its extracted folder there)")
    if not path.is_file():
        raise DataError(f"{path}: neither a folder nor a zip archive")
    return ZipSource(path)
