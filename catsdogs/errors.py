"""The two errors a stage ends with one clear line and exit status 2 (catsdogs.pipeline.command_line.run_cli),
how outside text is shown in a message or a printed line (escape), and the refusal of a path that is no
regular file (a FIFO, a device or a socket would block a reader or never end)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


class ParamError(ValueError):
    """A value in params.yaml that a stage cannot use; the message names the key and what is allowed."""


class DataError(ValueError):
    """Input data a stage cannot use (e.g. no usable image of one class)."""


def escape(text: str) -> str:
    r"""`text` as one printable line that maps back to it: `\\` for a backslash, `\xNN` for a byte
    that was not UTF-8 (kept as a lone surrogate), `\uNNNN` / `\UNNNNNNNN` for any other character
    that is not printable (NUL, tab, newline, ...). Printable text is left as it is."""
    out = []
    for char in text:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable():
            out.append(char)
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out)


FILE_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def _refuse_irregular(path: Path | str, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = FILE_KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise DataError(f"{escape(str(path))}: {kind}, not a regular file; give the path of a file")


def check_regular(path: Path | str) -> None:
    """DataError unless `path` is a regular file (after links): a FIFO, device or socket would block a
    reader or never end, so it is refused before anything opens it. OSError when it cannot be stat()ed."""
    _refuse_irregular(path, os.stat(path).st_mode)


def open_regular(path: Path | str) -> BinaryIO:
    """`path` opened for binary reading, once it is known to be a regular file (opened without blocking,
    then checked with fstat: no race with a FIFO put in its place); DataError otherwise."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        _refuse_irregular(path, os.fstat(descriptor).st_mode)
        os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    return open(descriptor, "rb")


def read_regular(path: Path | str, max_bytes: int) -> str:
    """The UTF-8 text of the regular file `path`, at most `max_bytes` long (DataError beyond, or for a
    FIFO, device or folder; UnicodeDecodeError for bytes that are not UTF-8; OSError as open raises)."""
    with open_regular(path) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DataError(f"{escape(str(path))}: larger than {max_bytes} bytes; is it the right file?")
    return data.decode()
