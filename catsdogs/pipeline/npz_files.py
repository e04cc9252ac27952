""".npz files: written byte-for-byte reproducibly, read with every size checked before it is believed."""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from catsdogs.errors import DataError, open_regular
from catsdogs.pipeline.atomic_files import atomic_path
from catsdogs.pipeline.dvc_files import restore_hint

IO_BLOCK = 1 << 24  # bytes per read of an .npz member


def save_npz(path: Path | str, **arrays: np.ndarray | np.generic) -> None:
    """Write `arrays` to an uncompressed .npz, atomically and byte-for-byte reproducibly.

    numpy.savez stamps each member with the current time; here every member gets a fixed
    timestamp so that the same arrays always give the same file (and the same DVC hash). The bytes
    are those of numpy.savez, written from the array's own memory (copied only if not contiguous).
    """
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            array = np.asanyarray(array)
            header, layout = io.BytesIO(), np.lib.format.header_data_from_array_1_0(array)
            np.lib.format.write_array_header_1_0(header, layout)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.file_size = len(header.getvalue()) + array.nbytes  # known up front: zip or zip64 headers
            data = np.ascontiguousarray(array.T if layout["fortran_order"] else array)  # as write_array orders it
            with archive.open(info, "w") as member:
                member.write(header.getvalue())
                member.write(data.reshape(-1).view(np.uint8))  # type: ignore[call-overload]


def _read_array(member: BinaryIO, size: int) -> np.ndarray:
    """The array of one .npy member of `size` bytes, read only once its header agrees with that size;
    ValueError when it does not, or when it holds Python objects."""
    version = np.lib.format.read_magic(member)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"unsupported .npy version {version}")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(member)
    if dtype.hasobject:
        raise ValueError("holds Python objects, not numbers or text")
    count = math.prod(shape)
    if count * dtype.itemsize != size - member.tell():
        raise ValueError(
            f"its header announces {count * dtype.itemsize} bytes of data, it holds {size - member.tell()}"
        )
    flat = np.empty(count, dtype)
    view = memoryview(flat.view(np.uint8))  # type: ignore[arg-type]
    done = 0
    while done < len(view):
        got = member.readinto(view[done : done + IO_BLOCK])  # type: ignore[attr-defined]  # all at once: zipfile reads into a copy
        if not got:
            raise ValueError("ends early")
        done += got  # zipfile checks the CRC-32 as it hands the member's last byte (it hands none beyond)
    return flat.reshape(shape[::-1]).transpose() if fortran else flat.reshape(shape)


def load_npz(path: Path | str, keys: Sequence[str], max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Read `keys` from an .npz written by `save_npz`. A missing file, missing arrays or a damaged
    file (truncated, not a zip, bad CRC, an array whose header does not match its data, Python
    objects, a member of more than `max_bytes` once inflated: refused before anything is allocated)
    is a DataError naming the file and how to get it back (restore_hint); so is a path that is no
    regular file (a FIFO would block)."""
    try:
        handle = open_regular(path)
        try:
            archive = zipfile.ZipFile(handle)
        except zipfile.BadZipFile:
            handle.close()
            raise ValueError("not a zip archive, as an .npz is: truncated or overwritten?") from None
        except BaseException:
            handle.close()
            raise
        with handle, archive:
            sizes = {info.filename: info.file_size for info in archive.infolist()}
            file_bytes = os.fstat(handle.fileno()).st_size
            for info in archive.infolist():  # the sizes are believed only if the file can hold them
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise ValueError(f"{info.filename}: compression method {info.compress_type}, not stored or deflate")
                ratio = 1 if info.compress_type == zipfile.ZIP_STORED else 1032  # deflate's largest
                if info.file_size > ratio * info.compress_size or info.compress_size > file_bytes:
                    raise ValueError(f"{info.filename}: sizes in its zip header that the file cannot hold")
                if max_bytes is not None and info.file_size > max_bytes:
                    raise ValueError(f"{info.filename}: {info.file_size} bytes, more than the {max_bytes} it may hold")
            missing = [key for key in keys if f"{key}.npy" not in sizes]
            if missing:
                has = [name.removesuffix(".npy") for name in sizes]
                raise DataError(f"{path}: missing arrays {missing} (has {has}); {restore_hint(path)}")
            arrays = {}
            for key in keys:
                with archive.open(f"{key}.npy") as member:
                    try:
                        arrays[key] = _read_array(member, sizes[f"{key}.npy"])  # type: ignore[arg-type]
                    except ValueError as err:
                        raise ValueError(f"{key}: {err}") from None
            return arrays
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run the earlier stages: `dvc repro`)") from None
    except (DataError, PermissionError):  # PermissionError: the machine's (run_cli's one line), not damage
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as err:
        raise DataError(f"{path}: damaged ({err}); {restore_hint(path)}") from None
