"""What every stage shares: atomic and reproducible file writes, bounded process pools, the CLI wrapper.
Label convention of the whole project (the article's): cat = 1, dog = 0."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import io
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
import time
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import yaml

from stages import STARTED_BY
from stages.params import PARAMS_FILE, ParamError, describe

LABELS = {"cat": 1, "dog": 0}
CLASS_NAMES = ("dog", "cat")  # CLASS_NAMES[label]
WINDOW = 4  # ordered_map: tasks in flight per worker process
IO_BLOCK = 1 << 24  # bytes per read of an .npz member


class DataError(ValueError):
    """Input data a stage cannot use (e.g. no usable image of one class)."""


# --------------------------------------------------------------------------- processes


def usable_cores() -> int:
    """Number of cores this process may run on (what `jobs: 0` means)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# --------------------------------------------------------------------------- files


# A temporary file or folder: `.tmp-<target name>.<pid of its writer>.<8 random characters>`; files
# written before the pid was part of the name lack it.
TEMP_NAME = re.compile(r"\.tmp-.+?\.(?:([0-9]+)\.)?[a-z0-9_]{8}")
_swept: set[Path] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_temp(folder: Path) -> None:
    """Remove from `folder` the temporary files and folders of writers that are gone (killed runs);
    a live writer's (its pid is a running process) stays. Once per folder and process."""
    folder = Path(folder).resolve()
    if folder in _swept or not folder.is_dir():
        return
    _swept.add(folder)
    for path in folder.iterdir():
        match = TEMP_NAME.fullmatch(path.name)
        if match and not (match.group(1) and _alive(int(match.group(1)))):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def temp_sibling(path: Path | str, folder: bool = False) -> Path:
    """Create an empty temporary file (or folder) next to `path`, to be renamed to `path` when done.
    Its name carries this process's pid, so that the next run removes it if this one is killed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_temp(path.parent)
    prefix = f".tmp-{path.name}.{os.getpid()}."
    if folder:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    descriptor, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.close(descriptor)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it to `path` in one step.

    A stage killed mid-write leaves only a `.tmp-*` file, never a half-written `path`; the next
    write into that folder removes it (temp_sibling).
    """
    path = Path(path)
    tmp_path = temp_sibling(path)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


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


def save_npz(path: Path | str, **arrays: np.ndarray) -> None:
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
                member.write(data.reshape(-1).view(np.uint8))


def restore_hint(path: Path | str, lock_file: Path = Path("dvc.lock")) -> str:
    """How to get a good copy of `path` back. For an output recorded in dvc.lock, the copy DVC keeps in
    its cache may be the damaged one (DVC names cache files by their hash and never checks them again,
    so `dvc checkout` and even `dvc repro --force` bring the damage back): drop it, then rebuild."""
    path = Path(path)
    try:
        stages = yaml.safe_load(lock_file.read_text())["stages"]
        for stage, record in stages.items():
            for out in record.get("outs", []):
                if Path(out["path"]).resolve() == path.resolve() and "md5" in out:
                    md5 = out["md5"]
                    return (
                        f"it is an output of stage {stage}: drop DVC's cached copy and rebuild it: "
                        f'rm -f "$(dvc cache dir)/files/md5/{md5[:2]}/{md5[2:]}" && dvc repro'
                    )
    except (OSError, RuntimeError, yaml.YAMLError, KeyError, TypeError, AttributeError):  # RuntimeError: a link loop
        pass
    return "replace it with a good copy (README: Damaged files)"


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
    view = memoryview(flat.view(np.uint8))
    done = 0
    while done < len(view):
        got = member.readinto(view[done : done + IO_BLOCK])  # all at once: zipfile reads into a copy
        if not got:
            raise ValueError("ends early")
        done += got
    if member.read(1):  # also makes zipfile check the CRC-32 (at the member's end)
        raise ValueError("extra bytes after the array")
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
            for info in archive.infolist():  # the sizes are believed only if the file can hold them
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise ValueError(f"{info.filename}: compression method {info.compress_type}, not stored or deflate")
                ratio = 1 if info.compress_type == zipfile.ZIP_STORED else 1032  # deflate's largest
                if (
                    info.file_size > ratio * info.compress_size
                    or info.compress_size > os.fstat(handle.fileno()).st_size
                ):
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
                        arrays[key] = _read_array(member, sizes[f"{key}.npy"])
                    except ValueError as err:
                        raise ValueError(f"{key}: {err}") from None
            return arrays
    except FileNotFoundError:
        raise DataError(f"{path}: not found (run the earlier stages: `dvc repro`)") from None
    except (DataError, PermissionError):  # PermissionError: the machine's (run_cli's one line), not damage
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as err:
        raise DataError(f"{path}: damaged ({err}); {restore_hint(path)}") from None


def save_json(path: Path | str, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def worker_count(jobs: int, tasks: int) -> int:
    """Processes to start for `tasks` tasks when `jobs` were asked for (0: one per usable core): never
    more than the usable cores nor the tasks, whatever `jobs` says, and at least one."""
    cores = usable_cores()
    return max(1, min(jobs or cores, cores, tasks))


def _die_with_parent(parent: int) -> None:
    """Worker initializer: on Linux, have the kernel kill this worker when its parent dies, even by
    kill -9 (prctl PR_SET_PDEATHSIG); exit at once if the parent is already gone."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent handles it


def ordered_map(function: Callable, items: Sequence, jobs: int) -> Iterator[tuple]:
    """Yield `(item, function(item))` for each item, in order, computed by `worker_count(jobs, len(items))`
        processes (in this process when that is 1). At most WINDOW tasks per worker are in flight, so memory
        holds at most 4 x workers items and results besides what each worker holds, however many items there
        are. The workers die with this process (kill -9 included, on Linux), ignore Ctrl-C (this process
    handles it) and are killed when this one stops early (an error, a dead worker, Ctrl-C, SIGTERM), before
    the caller's clean-up runs; a worker that died makes future.result() raise BrokenProcessPool."""
    workers = worker_count(jobs, len(items))
    if workers == 1:
        for item in items:
            yield item, function(item)
        return
    window = WINDOW * workers
    spawn = multiprocessing.get_context("spawn")  # fresh processes: none inherits this one's memory
    with ProcessPoolExecutor(workers, spawn, initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append((item, pool.submit(function, item)))
                if len(pending) >= window:
                    item, future = pending.popleft()
                    yield item, future.result()
            while pending:
                item, future = pending.popleft()
                yield item, future.result()
        except BaseException:  # an error, a dead worker, Ctrl-C: no worker goes on writing after the caller cleaned up
            for child in multiprocessing.active_children():
                child.kill()
            raise


# --------------------------------------------------------------------------- command line


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


def stage_parser(
    stage: str, description: str, *, params: type | None = None, paths: Mapping[str, str] | None = None
) -> argparse.ArgumentParser:
    """Command line of `python -m stages.<stage>`: the description; for a stage with `params` (its class
    declared with stages.params), --params to read another file than params.yaml and the list of its
    parameters after the options; one required `--name PATH` option per file the stage reads or writes
    (`paths`: option -> help), so that the stage's cmd in dvc.yaml names every one of its files and the
    code has no default path."""
    parser = argparse.ArgumentParser(
        prog=f"python -m stages.{stage}",
        description=description,
        epilog=describe(params) if params else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if params:
        parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="parameters file (default: %(default)s)")
    for option, text in (paths or {}).items():
        parser.add_argument(option, type=Path, required=True, metavar="PATH", help=text)
    return parser


# Exit statuses of every stage and of predict (each ends with one line on stderr, never a traceback):
EXIT_INPUT = 2  # bad input: a params value, a missing or damaged file, a file of the wrong kind
EXIT_SYSTEM = 3  # the machine: a file system error (no space, read-only, permission, ...), a dead worker
EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # Ctrl-C; SIGTERM, or the process that started the stage died
EXIT_STATUS_HELP = (
    f"exit status: 0 done; {EXIT_INPUT} bad input (params.yaml, a missing, damaged or non-regular file); "
    f"{EXIT_SYSTEM} a file system error (no space, read-only, permission, too many open files) or a dead "
    f"worker process; {EXIT_SIGINT} Ctrl-C; {EXIT_SIGTERM} SIGTERM or the process that started it (dvc) "
    "died. Outputs are replaced only when complete: a failed run leaves the old ones and no temporary file."
)
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "busybox"}
WATCH_INTERVAL = 0.5  # seconds between two looks at the parent processes


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM (also sent when the process that started this one dies), so
    that every `finally` removes its temporary files before the stage ends."""


def _parent_of(pid: int) -> int | None:
    """The parent pid of process `pid` (Linux /proc), None when it is gone or /proc is unreadable."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        return int(stat_line[stat_line.rindex(")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


def die_with_parent(interval: float = WATCH_INTERVAL) -> None:
    """Make this process end (SIGTERM, then Terminated in the main thread) within `interval` seconds once
    the process that started it is gone, kill -9 included: `dvc repro`, or `dvc` behind the shell it ran
    the stage's cmd in (a shell parent outlives a killed dvc, so its own parent is watched too). The
    kernel sends the SIGTERM at once when the parent dies (prctl PR_SET_PDEATHSIG, Linux); a daemon
    thread checks both generations every `interval` seconds for the rest. An orphan stage would
    otherwise write its outputs over the workspace later and keep DVC's lock busy. A stage whose parent
    is init (pid 1) from the start is such an orphan too: it ends at once."""
    import threading

    signal.signal(signal.SIGTERM, _on_sigterm)
    parent = STARTED_BY  # noted when the package was first imported
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    grandparent = _parent_of(parent) if _command_name(parent) in SHELLS else None
    if os.getppid() != parent or parent == 1:  # it died during the imports, or before Python started
        raise Terminated

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent or (grandparent is not None and _parent_of(parent) != grandparent):
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="die_with_parent", daemon=True).start()


def os_error_line(err: OSError) -> str:
    """One line for an OSError: what failed, on which file, and what to do about it."""
    names = [escape(str(name)) for name in (err.filename, err.filename2) if name is not None]
    where = f"{' -> '.join(names)}: " if names else ""
    cause = err.strerror or type(err).__name__
    hint = {
        errno.ENOSPC: "free space on that file system (df -h), then rerun",
        errno.EDQUOT: "free space within your disk quota, then rerun",
        errno.EROFS: "the file system is read-only: remount it read-write or write elsewhere, then rerun",
        errno.EACCES: "no permission: fix the rights of that file or folder (ls -l), then rerun",
        errno.EPERM: "not permitted: fix the rights of that file or folder (ls -l), then rerun",
        errno.EMFILE: "too many open files: raise the limit (ulimit -n), then rerun",
        errno.ENFILE: "too many open files on the system: close some programs, then rerun",
        errno.ENOMEM: "out of memory: lower the jobs parameter or close other programs, then rerun",
        errno.EIO: "input/output error: the disk may be failing (dmesg)",
    }.get(err.errno, "check that file or folder, then rerun")
    return f"{where}{cause}; {hint}"


def run_cli(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Run a stage's main() (or predict's) with one line on stderr and a documented exit status for
    every way it can fail (EXIT_STATUS_HELP): a ParamError or DataError (EXIT_INPUT), an OSError or a
    worker process that died (EXIT_SYSTEM), Ctrl-C or SIGTERM (EXIT_SIGINT, EXIT_SIGTERM). The stage
    dies with the process that started it (die_with_parent). Temporary files are removed by the
    `finally` blocks on the way out (atomic_path, ingest's staging folder)."""
    prog = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "stage"
    status, line = 0, ""
    try:
        die_with_parent()
        main(argv)
    except (ParamError, DataError) as err:
        status, line = EXIT_INPUT, str(err)
    except BrokenProcessPool:
        status = EXIT_SYSTEM
        line = "a worker process died (killed, or out of memory: see dmesg); rerun, or lower the jobs parameter"
    except OSError as err:
        status, line = EXIT_SYSTEM, os_error_line(err)
    except MemoryError:
        status, line = EXIT_SYSTEM, "out of memory; lower the jobs parameter or close other programs, then rerun"
    except KeyboardInterrupt:
        status, line = EXIT_SIGINT, "interrupted (Ctrl-C); outputs left as they were"
    except Terminated:
        status, line = (
            EXIT_SIGTERM,
            "terminated (SIGTERM, or the process that started it died); outputs left as they were",
        )
    if status:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the one line is written whole
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with contextlib.suppress(OSError):
            print(f"{prog}: error: {line}", file=sys.stderr, flush=True)
        raise SystemExit(status) from None
