"""Bounded process pools: how many workers, and an ordered map whose workers die with their parent."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

WINDOW = 4  # ordered_map: tasks in flight per worker process


def usable_cores() -> int:
    """Number of cores this process may run on (what `jobs: 0` means)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_count(jobs: int, tasks: int) -> int:
    """Processes to start for `tasks` tasks when `jobs` were asked for (0: one per usable core): never
    more than the usable cores nor the tasks, whatever `jobs` says, and at least one."""
    cores = usable_cores()
    return max(1, min(jobs or cores, cores, tasks))


def signal_when_parent_dies(signum: int) -> None:
    """On Linux, have the kernel send `signum` to this process when its parent dies, even by kill -9
    (prctl PR_SET_PDEATHSIG); elsewhere nothing."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signum)  # 1 = PR_SET_PDEATHSIG


def die_with_parent(parent: int) -> None:
    """Worker initializer: have the kernel kill this worker when its parent dies, even by kill -9
    (signal_when_parent_dies); exit at once if the parent is already gone."""
    signal_when_parent_dies(signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent handles it


def submit_blocking_ctrl_c(pool: ProcessPoolExecutor, function: Callable, item, spawns: bool):
    """pool.submit(function, item); when the submit may start a worker (`spawns`), with SIGINT blocked in
    this thread meanwhile: the worker inherits the blocked signal, so a Ctrl-C while it is still starting
    Python (before die_with_parent ignores SIGINT) cannot print a traceback from it; the signal waits and
    reaches this process once the submit is done."""
    if not spawns or not hasattr(signal, "pthread_sigmask"):
        return pool.submit(function, item)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return pool.submit(function, item)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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
    with ProcessPoolExecutor(workers, spawn, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append((item, submit_blocking_ctrl_c(pool, function, item, len(pending) < workers)))
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
