"""catsdogs/pipeline/processes.py in this process: the cores, the kernel's parent-death signal that the
workers set, and the serial path of ordered_map (its worker pool: tests/test_ingest.py, test_kill.py)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from catsdogs.pipeline import processes
from catsdogs.pipeline.processes import die_with_parent, ordered_map, usable_cores

PR_SET_PDEATHSIG, PR_GET_PDEATHSIG = 1, 2


def test_usable_cores_are_the_cores_this_process_may_run_on(monkeypatch):
    assert usable_cores() == len(os.sched_getaffinity(0)) >= 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)  # a taskset of 1 core
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert usable_cores() == 1


@pytest.mark.parametrize("cpu_count, cores", [(8, 8), (None, 1)])
def test_without_an_affinity_mask_the_cpu_count_or_one(monkeypatch, cpu_count, cores):
    """macOS and Windows have no sched_getaffinity; os.cpu_count() may not know (None)."""
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cpu_count)
    assert usable_cores() == cores


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_worker_asks_the_kernel_for_sigkill_when_its_parent_dies_and_exits_if_it_is_gone():
    libc = ctypes.CDLL(None, use_errno=True)
    got = ctypes.c_int(-1)
    try:
        die_with_parent(os.getppid())  # the right parent: the process goes on
        assert libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(got)) == 0
        assert got.value == signal.SIGKILL
    finally:
        libc.prctl(PR_SET_PDEATHSIG, 0)  # this test process is no worker
    # A worker whose parent is gone exits at once with status 1 (in a forked child: it ends that process;
    # here too, not in a test of its own, so that mutation testing runs it for die_with_parent's mutants).
    child = os.fork()
    if child == 0:
        try:
            die_with_parent(-1)  # no process has the id -1: not this worker's parent
        finally:
            os._exit(99)  # never reached when die_with_parent exits; never back into pytest
    _, status = os.waitpid(child, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1


def test_one_job_maps_in_this_process_in_order(monkeypatch):
    def pool(*args, **kwargs):
        raise AssertionError("no pool for one job")

    monkeypatch.setattr(processes, "ProcessPoolExecutor", pool)
    seen = []
    results = ordered_map(lambda item: seen.append(item) or item * 2, [3, 1, 2], jobs=1)
    assert next(results) == (3, 6) and seen == [3]  # lazily, one item at a time
    assert list(results) == [(1, 2), (2, 4)]
    assert list(ordered_map(abs, [], jobs=0)) == []


def test_the_pool_keeps_4_tasks_per_worker_in_flight_and_yields_in_order(monkeypatch):
    """The pool's bookkeeping with threads standing in for the spawned processes (the real pool:
    tests/test_ingest.py): 2 workers, so at most 8 tasks submitted and not yet yielded."""
    made, submitted, blocked = [], [], []

    class Threads(ThreadPoolExecutor):
        def __init__(self, workers, context, initializer, initargs):
            made.append((workers, context.get_start_method(), initializer, initargs))
            super().__init__(workers)

        def submit(self, function, item):
            submitted.append(item)
            blocked.append(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))
            return super().submit(function, item)

    monkeypatch.setattr(processes, "ProcessPoolExecutor", Threads)
    monkeypatch.setattr(processes, "usable_cores", lambda: 2)
    results = ordered_map(abs, list(range(0, -20, -1)), jobs=0)
    first = next(results)
    assert first == (0, 0) and len(submitted) == 8  # the window filled before the first result is taken
    rest = list(results)
    assert [first, *rest] == [(-i, i) for i in range(20)] and len(submitted) == 20
    assert made == [(2, "spawn", die_with_parent, (os.getpid(),))]
    # the pool starts a worker on each of its first 2 submits: Ctrl-C blocked during those 2 only
    assert blocked == [True, True] + [False] * 18


class RecordingPool:
    """A pool whose submit records whether SIGINT is blocked in this thread while it runs."""

    def __init__(self, fails: bool = False):
        self.fails, self.blocked = fails, []

    def submit(self, function, item):
        self.blocked.append(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))
        if self.fails:
            raise RuntimeError("cannot start a worker")
        return function(item)


@pytest.mark.parametrize("spawns", [True, False])
@pytest.mark.parametrize("fails", [False, True])
def test_ctrl_c_is_blocked_only_while_a_submit_may_start_a_worker(spawns, fails):
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    pool = RecordingPool(fails)
    if fails:
        with pytest.raises(RuntimeError, match="cannot start a worker"):
            processes.submit_blocking_ctrl_c(pool, abs, -3, spawns)
    else:
        assert processes.submit_blocking_ctrl_c(pool, abs, -3, spawns) == 3
    assert pool.blocked == [spawns]
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the mask is back as it was
