"""The command line of every stage: its parser (one option per file, the parameters in --help) and run_cli."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from catsdogs import STARTED_BY
from catsdogs.errors import DataError, ParamError, escape
from catsdogs.pipeline.params import PARAMS_FILE, describe
from catsdogs.pipeline.processes import signal_when_parent_dies


def stage_parser(
    stage: str, description: str, *, params: type | None = None, paths: Mapping[str, str] | None = None
) -> argparse.ArgumentParser:
    """Command line of `python -m stages.<stage>`: the description; for a stage with `params` (its class
    declared with catsdogs.pipeline.params), --params to read another file than params.yaml and the list of its
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


def stop_with_parent(interval: float = WATCH_INTERVAL) -> None:
    """Make this process end (SIGTERM, then Terminated in the main thread) within `interval` seconds once
    the process that started it is gone, kill -9 included: `dvc repro`, or `dvc` behind the shell it ran
    the stage's cmd in (a shell parent outlives a killed dvc, so its own parent is watched too). The
    kernel sends the SIGTERM at once when the parent dies (prctl PR_SET_PDEATHSIG, Linux); a daemon
    thread checks both generations every `interval` seconds for the rest. An orphan stage would
    otherwise write its outputs over the workspace later and keep DVC's lock busy. A stage whose parent
    is init (pid 1) from the start is such an orphan too: it ends at once."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    parent = STARTED_BY  # noted when the package was first imported
    signal_when_parent_dies(signal.SIGTERM)
    grandparent = _parent_of(parent) if _command_name(parent) in SHELLS else None
    if os.getppid() != parent or parent == 1:  # it died during the imports, or before Python started
        raise Terminated

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent or (grandparent is not None and _parent_of(parent) != grandparent):
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="stop_with_parent", daemon=True).start()


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
    }.get(err.errno or 0, "check that file or folder, then rerun")
    return f"{where}{cause}; {hint}"


def run_cli(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Run a stage's main() (or predict's) with one line on stderr and a documented exit status for
    every way it can fail (EXIT_STATUS_HELP): a ParamError or DataError (EXIT_INPUT), an OSError or a
    worker process that died (EXIT_SYSTEM), Ctrl-C or SIGTERM (EXIT_SIGINT, EXIT_SIGTERM). The stage
    dies with the process that started it (stop_with_parent). Temporary files are removed by the
    `finally` blocks on the way out (atomic_path, ingest's staging folder)."""
    prog = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "stage"
    status, line = 0, ""
    try:
        stop_with_parent()
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
