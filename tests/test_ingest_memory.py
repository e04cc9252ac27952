"""Ingest's peak memory does not depend on what an archive holds (issue 9): measured in fresh
processes (tests/measure_ingest.py) on the hostile archive against a two-photo baseline.

The hostile archive: deflate and bzip2 entries whose headers say 1,000 bytes and which inflate to
64 MiB, a header claiming 4 GiB, six honest 48 MiB entries, 40 entries sharing one entry's data, and a
2000 x 2000 RGBA PNG (the largest image, kept). Reading any of the big entries into memory would add
at least 48 MiB; decoding the PNG may add 8 bytes a pixel (4-byte RGBA and its RGB copy): 32 MB.
"""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.measure_ingest import PNG_SIDE, benign_entries, hostile_entries
from tests.zip_forge import forge

MIB = 2**20
SLACK_KB = 8 * 1024  # allocator and interpreter noise between two runs
DECODE_KB = 8 * PNG_SIDE**2 // 1024


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    folder = tmp_path_factory.mktemp("memory")
    (folder / "hostile.zip").write_bytes(forge(hostile_entries(64 * MIB)))
    (folder / "benign.zip").write_bytes(forge(benign_entries()))
    return folder


def measure(archive, out, jobs: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "tests.measure_ingest", "measure", str(archive), str(out), "--jobs", str(jobs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize("jobs", [1, 2])
def test_peak_memory_does_not_grow_with_what_entries_inflate_to(archives, tmp_path, jobs):
    base = measure(archives / "benign.zip", tmp_path / "benign", jobs)
    hostile = measure(archives / "hostile.zip", tmp_path / "hostile", jobs)
    assert hostile["kept"] == 3  # two photos and the PNG
    assert hostile["skipped"] == {"unreadable_entry": 43, "too_large": 1, "not_an_image": 6}
    if jobs == 1:  # everything happens in the one process
        assert hostile["main"] - base["main"] <= DECODE_KB + SLACK_KB, (base, hostile)
    else:  # the main process only lists; each worker copies and decodes one entry at a time
        assert hostile["main"] - base["main"] <= SLACK_KB, (base, hostile)
        assert hostile["workers"] - base["workers"] <= DECODE_KB + SLACK_KB, (base, hostile)
