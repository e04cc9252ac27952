"""Memory: how much the pipeline's arrays need, how much this process may still use, and the up-front check
that stops resize_split before it starts work that could not finish.

What the image arrays need (pipeline_bytes): m images of size x size x 3 values are m x size^2 x 3 bytes as
uint8 images and 4 times that as float32 features. flatten_normalize holds a split's images and features
at once, train both splits' features (plus, in the dual, an m x m matrix, smaller than the features), so
no stage needs more than m x size^2 x 3 x (1 + 4) bytes of arrays.

What is left (available_memory): the smallest of the kernel's estimate of the memory available for new
work (/proc/meminfo MemAvailable: free memory plus the page cache it can reclaim) and, for each cgroup
above this process that caps memory (v2 memory.max, v1 memory.limit_in_bytes: a container's limit), the
limit less the group's working set (usage less its inactive file pages, which the kernel reclaims first:
what `docker stats` and the kubelet count).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from catsdogs.errors import ParamError

BYTES_PER_VALUE = 1 + 4  # a uint8 image value and its float32 feature
UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a number near 2^63


def pipeline_bytes(m: int, size: int) -> int:
    """Bytes of the largest arrays a stage holds for m images of size x size: m x size^2 x 3 x (1 + 4)."""
    return m * size * size * 3 * BYTES_PER_VALUE


def largest_size(m: int, available: int) -> int:
    """The largest image side s with pipeline_bytes(m, s) <= available (0 if not even 1 fits)."""
    return math.isqrt(available // (3 * BYTES_PER_VALUE * max(m, 1)))


def check_pipeline_fits(m: int, size: int, available: int | None, source: Path | str) -> None:
    """ParamError naming resize_split.size when m images of `source` at size x size need more than
    `available` bytes (None: unknown, no check)."""
    need = pipeline_bytes(m, size)
    if available is None or need <= available:
        return
    gib = 1 << 30
    raise ParamError(
        f"params.yaml: resize_split.size = {size} needs about {need / gib:.1f} GiB of memory for the {m} images of "
        f"{source} (m x size^2 x 3 bytes of uint8 images plus 4 times that of float32 features, held at once "
        f"by flatten_normalize and train), more than the {available / gib:.1f} GiB available now; the largest "
        f"size that fits is {largest_size(m, available)} (the article uses 64)"
    )


def available_memory(root: Path = Path("/")) -> int | None:
    """Bytes of memory this process can still use (module docstring); None where /proc/meminfo is
    missing (not Linux). `root` is the file system root to read /proc and /sys under (tests)."""
    try:
        meminfo = (root / "proc/meminfo").read_text()
    except OSError:
        return None
    found = re.search(r"^MemAvailable:\s+(\d+) kB$", meminfo, re.M)
    limits = [int(found.group(1)) * 1024] if found else []
    limits += [limit - used for limit, used in _cgroup_limits(root)]
    return max(0, min(limits)) if limits else None


def _cgroup_limits(root: Path) -> list[tuple[int, int]]:
    """(limit, working set) in bytes of each cgroup from this process's up to the hierarchy's root that
    has a memory limit (cgroup v2, or v1's memory controller mounted at /sys/fs/cgroup/memory)."""
    found = []
    for line in _read(root / "proc/self/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            mount, files = root / "sys/fs/cgroup", ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            mount, files = (
                root / "sys/fs/cgroup/memory",
                ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
            )
        else:
            continue
        folder = mount / path.strip("/")
        for level in (folder, *folder.parents):  # a parent's limit caps its children too
            limit = _number(level / files[0])
            if limit is not None and limit < UNLIMITED:
                inactive = re.search(rf"^{files[2]} (\d+)$", _read(level / "memory.stat"), re.M)
                found.append((limit, (_number(level / files[1]) or 0) - (int(inactive.group(1)) if inactive else 0)))
            if level == mount:
                break
    return found


def _read(path: Path) -> str:
    """The text of a file; "" when it is missing or unreadable."""
    try:
        return path.read_text()
    except OSError:
        return ""


def _number(path: Path) -> int | None:
    """The integer in a cgroup file; None when the file is missing or says `max` (no limit)."""
    text = _read(path).strip()
    return int(text) if text.isdigit() else None
