"""Zip archives written byte by byte for the hostile-archive tests: any name bytes and flags, headers
that state whatever a test wants (sizes, CRC-32), directory records that share one entry's data.

The compressed bytes come from Python's zipfile (an independent writer), so only the headers lie.
"""

from __future__ import annotations

import bz2
import io
import struct
import zipfile
import zlib
from dataclasses import dataclass

LOCAL = struct.Struct("<4s5H3L2H")
CENTRAL = struct.Struct("<4s6H3L5H2L")
END = struct.Struct("<4s4H2LH")


@dataclass(frozen=True)
class Raw:
    """One entry: its name bytes, its content, and what its headers state (None: the truth)."""

    name: bytes
    data: bytes = b""
    method: int = zipfile.ZIP_DEFLATED
    flags: int = 0
    file_size: int | None = None
    compress_size: int | None = None
    crc: int | None = None
    stated_method: int | None = None
    body: bytes | None = None  # the compressed bytes, when `data` is not given (a bomb built in pieces)
    mode: int = 0o100644
    same_data_as: int | None = None  # its directory record points at an earlier entry's local header


def payload(method: int, data: bytes) -> bytes:
    """`data` compressed as a zip entry of `method` (0, 8, 12 or 14), as zipfile writes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("x"), data, compress_type=method)
    info = zipfile.ZipFile(buffer).infolist()[0]
    start = info.header_offset + LOCAL.size + len("x")
    return buffer.getvalue()[start : start + info.compress_size]


def forge(entries: list[Raw], prefix: bytes = b"") -> bytes:
    """A zip archive of `entries`, in that order, after `prefix` (bytes before the archive)."""
    out = bytearray(prefix)
    records, offsets, stated = [], [], []
    for raw in entries:
        if raw.same_data_as is not None:  # the same local header, sizes and CRC-32 under another name
            offsets.append(offsets[raw.same_data_as])
            stated.append(stated[raw.same_data_as])
        else:
            body = payload(raw.method, raw.data) if raw.body is None else raw.body
            crc = zlib.crc32(raw.data) if raw.crc is None else raw.crc
            usize = len(raw.data) if raw.file_size is None else raw.file_size
            csize = len(body) if raw.compress_size is None else raw.compress_size
            method = raw.method if raw.stated_method is None else raw.stated_method
            stated.append((raw.flags, method, 0, 0x21, crc, csize, usize))
            offsets.append(len(out) - len(prefix))
            out += LOCAL.pack(b"PK\x03\x04", 20, *stated[-1], len(raw.name), 0) + raw.name + body
        records.append(
            CENTRAL.pack(
                b"PK\x01\x02", 3 << 8 | 20, 20, *stated[-1], len(raw.name), 0, 0, 0, 0, raw.mode << 16, offsets[-1]
            )
            + raw.name
        )
    start = len(out) - len(prefix)
    directory = b"".join(records)
    out += directory + END.pack(b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory), start, 0)
    return bytes(out)


def zeros(method: int, size: int) -> tuple[bytes, int]:
    """(compressed bytes, CRC-32) of `size` zero bytes, compressed piece by piece (deflate or bzip2)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15) if method == zipfile.ZIP_DEFLATED else bz2.BZ2Compressor(9)
    piece, parts, crc = bytes(2**20), [], 0
    for start in range(0, size, len(piece)):
        block = piece[: min(len(piece), size - start)]
        parts.append(compressor.compress(block))
        crc = zlib.crc32(block, crc)
    return b"".join(parts) + compressor.flush(), crc
