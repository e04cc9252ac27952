"""catsdogs/data/memory.py: the memory a process may still use, read from /proc and /sys laid out in a temporary
folder the way Linux lays them out (cgroup v1 and v2), and the pipeline's need."""

from pathlib import Path

import pytest

from catsdogs.data.memory import available_memory, check_pipeline_fits, largest_size, pipeline_bytes
from catsdogs.errors import ParamError

GIB = 1 << 30
MEMINFO = "MemTotal:       32000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n"


def machine(root, cgroup, files=None, meminfo=MEMINFO):
    """A fake root with /proc/meminfo, /proc/self/cgroup and the given files under /sys/fs/cgroup."""
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/meminfo").write_text(meminfo)
    (root / "proc/self/cgroup").write_text(cgroup)
    for path, text in (files or {}).items():
        (root / "sys/fs/cgroup" / path).parent.mkdir(parents=True, exist_ok=True)
        (root / "sys/fs/cgroup" / path).write_text(text)
    return root


def test_without_a_cgroup_limit_it_is_memavailable(tmp_path):
    v1_unlimited = {"memory/memory.limit_in_bytes": "9223372036854771712\n", "memory/memory.usage_in_bytes": "5\n"}
    root = machine(tmp_path, "4:memory:/\n1:cpu:/\n", v1_unlimited)
    assert available_memory(root) == 20000000 * 1024


def test_cgroup_v1_limit_of_the_process_group_and_of_its_parents(tmp_path):
    """v1: limit - (usage - total_inactive_file) at each level from the process's group up; the smallest wins."""
    files = {
        "memory/memory.limit_in_bytes": "9223372036854771712\n",
        "memory/jobs/memory.limit_in_bytes": f"{8 * GIB}\n",  # the parent's limit also caps the child
        "memory/jobs/memory.usage_in_bytes": f"{7 * GIB}\n",
        "memory/jobs/memory.stat": f"cache 1\ntotal_inactive_file {2 * GIB}\n",
        "memory/jobs/mine/memory.limit_in_bytes": f"{6 * GIB}\n",
        "memory/jobs/mine/memory.usage_in_bytes": f"{GIB}\n",
        "memory/jobs/mine/memory.stat": "total_inactive_file 0\n",
    }
    root = machine(tmp_path, "5:cpu,cpuacct:/jobs/mine\n4:memory:/jobs/mine\n", files)
    assert available_memory(root) == 3 * GIB  # the parent: 8 - (7 - 2) GiB, less than the group's 6 - 1


def test_cgroup_v2_limit(tmp_path):
    files = {
        "memory.max": "max\n",
        "box/memory.max": f"{4 * GIB}\n",
        "box/memory.current": f"{3 * GIB}\n",
        "box/memory.stat": f"anon 1\ninactive_file {GIB}\nactive_file 7\n",
    }
    assert available_memory(machine(tmp_path, "0::/box\n", files)) == 2 * GIB


def test_memavailable_can_be_the_smaller(tmp_path):
    files = {"memory.max": f"{64 * GIB}\n", "memory.current": "0\n"}
    assert available_memory(machine(tmp_path, "0::/\n", files, "MemAvailable: 1024 kB\n")) == 1 << 20


def test_a_group_over_its_limit_has_nothing_left(tmp_path):
    files = {"memory.max": f"{GIB}\n", "memory.current": f"{2 * GIB}\n"}
    assert available_memory(machine(tmp_path, "0::/\n", files)) == 0


def test_unknown_without_proc(tmp_path):
    assert available_memory(tmp_path) is None


def meminfo_available() -> int:
    """MemAvailable of this machine's /proc/meminfo, in bytes, read here without catsdogs' code."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemAvailable in /proc/meminfo")


def cgroup_limits() -> list[int]:
    """Every memory limit (bytes) set on this process's cgroup or a parent of it, v1 or v2."""
    limits = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, group = line.split(":", 2)
        if controllers == "":
            base, name = Path("/sys/fs/cgroup"), "memory.max"
        elif "memory" in controllers.split(","):
            base, name = Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"
        else:
            continue
        folder = base / group.lstrip("/")
        for level in (folder, *folder.parents):
            if level == base.parent:
                break
            try:
                text = (level / name).read_text().strip()
            except OSError:
                continue
            if text != "max" and int(text) < 1 << 60:
                limits.append(int(text))
    return limits


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="Linux only")
def test_this_machine_is_its_memavailable_or_less_under_a_cgroup_limit():
    """Read the same machine twice around the call: the result is positive, never above MemAvailable by
    more than what changed in between (64 MiB of slack besides), nor above a cgroup limit; without a
    limit it is MemAvailable."""
    before = meminfo_available()
    found = available_memory()
    after = meminfo_available()
    assert found is not None and found > 0
    assert found <= max(before, after) + abs(after - before) + (64 << 20)
    limits = cgroup_limits()
    if limits:  # what the group may still take is below its limit
        assert found <= min(limits)
    else:  # no limit: MemAvailable itself, in bytes (not kB)
        assert found >= min(before, after) - abs(after - before) - (64 << 20)


@pytest.mark.parametrize("m, size", [(2000, 64), (1, 1), (25_000, 512), (1600, 100)])
def test_pipeline_bytes_and_the_largest_size_that_fits(m, size):
    need = pipeline_bytes(m, size)
    assert need == m * size * size * 3 * 5  # a uint8 value and its float32 feature per pixel channel
    assert largest_size(m, need) == size and largest_size(m, need - 1) == size - 1


def test_without_memavailable_only_the_cgroup_counts_and_without_either_it_is_unknown(tmp_path):
    old_kernel = "MemTotal: 1000 kB\nMemFree: 10 kB\n"  # Linux before 3.14 has no MemAvailable
    assert available_memory(machine(tmp_path / "a", "0::/\n", {"memory.max": "max\n"}, old_kernel)) is None
    files = {"memory.max": f"{GIB}\n", "memory.current": "0\n"}
    assert available_memory(machine(tmp_path / "b", "0::/\n", files, old_kernel)) == GIB


def test_without_proc_self_cgroup_it_is_memavailable(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_text(MEMINFO)
    assert available_memory(tmp_path) == 20000000 * 1024


@pytest.mark.parametrize("limit, limited", [((1 << 60) - 1, True), (1 << 60, False)])
def test_a_limit_from_2_to_the_60_up_means_none(tmp_path, limit, limited):
    """cgroup v1 writes "no limit" as a number near 2^63: from 2^60 on a limit is taken as none."""
    files = {"memory.max": f"{limit}\n", "memory.current": "0\n"}
    meminfo = f"MemAvailable: {1 << 52} kB\n"  # 2^62 bytes: above both
    assert available_memory(machine(tmp_path, "0::/\n", files, meminfo)) == (limit if limited else 1 << 62)


def test_missing_usage_and_stat_files_count_as_nothing_used(tmp_path):
    assert available_memory(machine(tmp_path, "0::/box\n", {"box/memory.max": f"{GIB}\n"})) == GIB
    files = {"box/memory.max": f"{GIB}\n", "box/memory.current": "100\n", "box/memory.stat": "anon 5\n"}
    assert available_memory(machine(tmp_path / "2", "0::/box\n", files)) == GIB - 100


def test_group_names_with_a_colon_or_an_x_and_comounted_controllers(tmp_path):
    files = {"Xjobs:1/memory.max": f"{GIB}\n", "Xjobs:1/memory.current": "0\n"}
    assert available_memory(machine(tmp_path / "v2", "0::/Xjobs:1\n", files)) == GIB
    v1 = {"memory/mine/memory.limit_in_bytes": f"{2 * GIB}\n", "memory/mine/memory.usage_in_bytes": "0\n"}
    cgroup = "5:cpu,cpuacct:/other\n4:hugetlb,memory:/mine\n"
    assert available_memory(machine(tmp_path / "v1", cgroup, v1)) == 2 * GIB


@pytest.mark.parametrize("m, size", [(2000, 64), (25_000, 100)])
def test_the_pipeline_fits_in_exactly_its_bytes_and_not_one_byte_less(m, size):
    need = pipeline_bytes(m, size)
    check_pipeline_fits(m, size, need, "x.zip")
    check_pipeline_fits(m, size, None, "x.zip")  # unknown: no check
    with pytest.raises(ParamError) as refused:
        check_pipeline_fits(m, size, need - 1, "data/external/x.zip")
    gib = need / (1 << 30)
    assert str(refused.value) == (
        f"params.yaml: resize_split.size = {size} needs about {gib:.1f} GiB of memory for the {m} images of "
        "data/external/x.zip (m x size^2 x 3 bytes of uint8 images plus 4 times that of float32 features, held "
        f"at once by flatten_normalize and train), more than the {(need - 1) / (1 << 30):.1f} GiB available now; "
        f"the largest size that fits is {size - 1} (the article uses 64)"
    )
