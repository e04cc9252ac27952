"""Reading a zip archive from anywhere with bounded memory: no header is believed.

Python's zipfile trusts the archive: it inflates a whole compressed chunk in one call (bzip2 and LZMA
with no bound on the output), aborts the whole listing at the first name flagged UTF-8 that is not,
and cuts names at a NUL byte. Here:

- `list_zip` reads the central directory record by record and refuses (DataError) an archive whose
  directory holds more than MAX_ENTRIES entries or MAX_DIRECTORY_BYTES bytes, so a listing's memory is
  bounded. Names are kept whole: a name flagged UTF-8 keeps its undecodable bytes as lone surrogates
  (errors="surrogateescape"), others are read as cp437, as zipfile does. Entries that share or overlap
  another entry's data (how a small archive makes a huge one) are marked unreadable.
- `extract` copies one entry into a file in CHUNK pieces, counting the inflated bytes as they come and
  stopping one byte past min(its header's size, the cap): an entry that inflates to more than its
  header says, or ends early, or fails its CRC-32, is refused, and reading it never holds more than a
  few CHUNKs (plus the decompressor's state: 32 KiB for deflate, about 4 MiB for bzip2, for LZMA a
  dictionary of at most the entry's size).
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from catsdogs.errors import DataError

MAX_ENTRIES = 200_000  # Kaggle's train.zip has 25,000 entries, Microsoft's 25,002
MAX_DIRECTORY_BYTES = 64 * 2**20  # Kaggle's central directory: about 2 MB
CHUNK = 2**16
STORED, DEFLATED, BZIP2, LZMA = 0, 8, 12, 14
ENCRYPTED = 0x1 | 0x40  # traditional / strong encryption flag bits
UTF8_NAME = 0x800

_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # central directory file header
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header


@dataclass(frozen=True, slots=True)
class Member:
    """One entry of the central directory, as the archive states it (nothing here is trusted).

    `offset` is where its local header starts in the file, `end` where the next entry's local header
    (or the directory) starts; `problem` says why it cannot be read, when the directory alone shows it.
    """

    index: int
    name: str
    flags: int
    method: int
    crc: int
    compress_size: int
    file_size: int
    offset: int
    mode: int  # Unix mode bits (external attributes >> 16)
    end: int = 0
    problem: str = ""


class EntryError(Exception):
    """An entry that is not kept: `reason` is a skip reason of catsdogs.data.sources.REASONS."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _directory(handle: BinaryIO, size: int, path: Path) -> tuple[int, int, int]:
    """(start, length) of the central directory and the shift of every offset stated in the archive
    (bytes prepended to it, as zipfile allows), from the end records; DataError when there is none."""
    tail_length = min(size, _END.size + 0xFFFF)
    handle.seek(size - tail_length)
    tail = handle.read(tail_length)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _END.size:
        raise DataError(
            f"{path}: neither a folder nor a zip archive (no zip directory at its end: a partial download?)"
        )
    _, disk, start_disk, _, count, length, offset, _ = _END.unpack_from(tail, at)
    end = size - tail_length + at
    extra = 0
    if end >= _END64_LOCATOR.size:
        handle.seek(end - _END64_LOCATOR.size)
        locator = handle.read(_END64_LOCATOR.size)
        if locator[:4] == b"PK\x06\x07" and end >= _END64_LOCATOR.size + _END64.size:
            handle.seek(end - _END64_LOCATOR.size - _END64.size)
            record = handle.read(_END64.size)
            if record[:4] == b"PK\x06\x06":
                _, _, _, _, disk, start_disk, _, count, length, offset = _END64.unpack(record)
                extra = _END64_LOCATOR.size + _END64.size
    if disk or start_disk:
        raise DataError(f"{path}: one part of a split (multi-volume) zip archive; join the parts into one archive")
    if count > MAX_ENTRIES or length > MAX_DIRECTORY_BYTES:
        raise DataError(
            f"{path}: its directory lists {count} entries in {length} bytes, more than this reader accepts "
            f"({MAX_ENTRIES} entries, {MAX_DIRECTORY_BYTES} bytes); split the archive"
        )
    start = end - extra - length  # zipfile's rule: data prepended to the archive shifts every offset
    if start < 0 or offset > start:
        raise DataError(f"{path}: damaged zip archive (its directory does not end where its end record starts)")
    return start, length, start - offset


def _zip64(extra: bytes, sizes: list[int]) -> str:
    """Replace the 0xFFFFFFFF values of [file_size, compress_size, offset] with those of the zip64 extra
    field, in place; return a problem, or ""."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        body = extra[at + 4 : at + 4 + length]
        at += 4 + length
        if kind == 1:
            for i, value in enumerate(sizes):
                if value == 0xFFFFFFFF:
                    if len(body) < 8:
                        return "zip64 extra field too short"
                    sizes[i], body = struct.unpack_from("<Q", body)[0], body[8:]
    return ""


def list_zip(path: Path | str) -> list[Member]:
    """The central directory of the zip at `path`: every entry, folders included, in archive order.

    A DataError when the file is no zip, is damaged before its first entry, or lists too much.
    """
    path = Path(path)
    records: list[tuple] = []
    read = 0
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        start, length, shift = _directory(handle, size, path)
        handle.seek(start)
        while read < length:
            fixed = handle.read(_CENTRAL.size)
            if len(fixed) < _CENTRAL.size or fixed[:4] != b"PK\x01\x02" or len(records) >= MAX_ENTRIES:
                raise DataError(f"{path}: damaged zip directory at entry {len(records)} (byte {start + read})")
            (
                _,
                _,
                _,
                flags,
                method,
                _,
                _,
                crc,
                compress_size,
                file_size,
                name_length,
                extra_length,
                comment_length,
                _,
                _,
                attributes,
                offset,
            ) = _CENTRAL.unpack(fixed)
            raw = handle.read(name_length)
            extra = handle.read(extra_length)
            handle.seek(comment_length, 1)
            read += _CENTRAL.size + name_length + extra_length + comment_length
            sizes = [file_size, compress_size, offset]
            problem = _zip64(extra, sizes)
            name = raw.decode("utf-8", "surrogateescape") if flags & UTF8_NAME else raw.decode("cp437")
            records.append((name, flags, method, crc, sizes[1], sizes[0], sizes[2] + shift, attributes >> 16, problem))
    # Where each entry's data must end (the next local header, or the directory), and which entries
    # share or misplace their data: offsets, as stated, are checked against each other.
    offsets = sorted({record[6] for record in records} | {start})
    following = dict(zip(offsets, offsets[1:], strict=False))
    sharing = Counter(record[6] for record in records)
    members = []
    for index, (*fields, offset, mode, problem) in enumerate(records):
        if offset >= start:
            problem = problem or "local header offset outside the archive's data"
        elif sharing[offset] > 1:
            problem = problem or f"shares its data with {sharing[offset] - 1} other entries (overlapping entries)"
        members.append(Member(index, *fields, offset, mode, following.get(offset, start), problem))  # type: ignore[misc,call-arg]  # fields: name ... attributes
    return members


def _reader(handle: BinaryIO, size: int) -> Callable[[int], bytes]:
    """read(n) of at most `size` bytes in all from `handle`'s position."""
    left = size

    def read(n: int) -> bytes:
        nonlocal left
        data = handle.read(min(n, left))
        left -= len(data)
        return data

    return read


def _lzma(read: Callable[[int], bytes], limit: int) -> lzma.LZMADecompressor:
    """The decompressor of a zip LZMA entry, from its 4-byte header and 5 bytes of properties. The
    dictionary is capped at `limit` bytes: a match cannot reach back further than the output read."""
    header = read(4)  # the LZMA SDK's version (2 bytes), then the size of the properties: always 5
    if header[2:] != b"\x05\x00":
        raise lzma.LZMAError("bad LZMA properties")
    properties = read(5)
    if len(properties) != 5:
        raise lzma.LZMAError("bad LZMA properties")
    lc_lp_pb, dictionary = properties[0], struct.unpack("<L", properties[1:])[0]
    filters = [
        {
            "id": lzma.FILTER_LZMA1,
            "dict_size": max(4096, min(dictionary, limit)),
            "lc": lc_lp_pb % 9,
            "lp": lc_lp_pb // 9 % 5,
            "pb": lc_lp_pb // 45,
        }
    ]
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters)


def _inflate(method: int, read: Callable[[int], bytes], limit: int) -> Iterator[bytes]:
    """The entry's bytes in pieces of at most CHUNK, `limit` bytes at most in all; stops at the end of
    the compressed stream or of its input. Each step hands the decompressor at most CHUNK input bytes
    and asks for at most CHUNK output bytes, so no step holds more, whatever the ratio."""
    if method == STORED:
        while limit > 0 and (piece := read(min(CHUNK, limit))):
            limit -= len(piece)
            yield piece
        return
    if method == DEFLATED:
        inflater, data = zlib.decompressobj(-15), b""
        while limit > 0 and not inflater.eof:
            data = data or read(CHUNK)
            if not data:
                return
            piece = inflater.decompress(data, min(CHUNK, limit))
            data = inflater.unconsumed_tail
            limit -= len(piece)
            yield piece
        return
    decompressor = bz2.BZ2Decompressor() if method == BZIP2 else _lzma(read, limit)
    while limit > 0 and not decompressor.eof:
        data = read(CHUNK) if decompressor.needs_input else b""
        if decompressor.needs_input and not data:
            return
        piece = decompressor.decompress(data, min(CHUNK, limit))
        limit -= len(piece)
        yield piece


def extract(path: Path | str, member: Member, out: BinaryIO, cap: int) -> int:
    """Write `member`'s bytes to `out`; return their count. EntryError (too_large, unreadable_entry)
    when it cannot be read in full, is larger than `cap` by its header, or does not match its header
    (size, CRC-32): at most min(header size, cap) + 1 bytes are ever inflated."""
    if member.problem:
        raise EntryError("unreadable_entry", member.problem)
    if member.flags & ENCRYPTED:
        raise EntryError("unreadable_entry", "encrypted")
    if member.method not in (STORED, DEFLATED, BZIP2, LZMA):
        raise EntryError("unreadable_entry", f"compression method {member.method} is not supported")
    if member.file_size > cap:
        raise EntryError("too_large", f"{member.file_size} bytes by its header > {cap}")
    with open(path, "rb") as handle:
        handle.seek(member.offset)
        local = handle.read(_LOCAL.size)
        if len(local) < _LOCAL.size or local[:4] != b"PK\x03\x04":
            raise EntryError("unreadable_entry", "no local header where the directory says")
        data = member.offset + _LOCAL.size + sum(_LOCAL.unpack(local)[-2:])
        if data + member.compress_size > member.end:
            raise EntryError("unreadable_entry", "its data overlaps the next entry (overlapping entries)")
        handle.seek(data)
        pieces = _inflate(member.method, _reader(handle, member.compress_size), member.file_size + 1)
        written, crc = 0, 0
        while True:
            try:
                piece = next(pieces, None)
            except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as err:  # bz2: OSError
                raise EntryError("unreadable_entry", f"{type(err).__name__}: {err}") from None
            if piece is None:
                break
            written += len(piece)
            if written > member.file_size:
                raise EntryError(
                    "unreadable_entry", f"inflates to more than the {member.file_size} bytes its header says"
                )
            crc = zlib.crc32(piece, crc)
            out.write(piece)  # a write error (disk full) is not the entry's fault: it propagates
    if written < member.file_size:
        raise EntryError("unreadable_entry", f"ends after {written} of the {member.file_size} bytes its header says")
    if crc != member.crc:
        raise EntryError("unreadable_entry", "bad CRC-32")
    return written
