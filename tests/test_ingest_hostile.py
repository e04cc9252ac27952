"""Hostile archives (issue 9): headers that lie, entries that share data, duplicated names, names no file
system takes; the skip report; the number of worker processes. Archives are forged byte by byte
(tests/zip_forge.py) or written by zipfile, the independent oracle of what a valid archive holds."""

from __future__ import annotations

import csv
import io
import os
import random
import re
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catsdogs.data import sources
from catsdogs.data.archive import MAX_ENTRIES, EntryError, extract, list_zip
from catsdogs.data.sources import REASONS, kaggle_name
from catsdogs.errors import DataError
from catsdogs.pipeline.processes import ordered_map, usable_cores, worker_count
from stages.ingest import escape, ingest_source, spreadsheet_safe, write_report
from tests.ingest_cases import BLUE, MAX_PIXELS, RED, jpeg
from tests.zip_forge import Raw, forge

FEW = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CAT, DOG = jpeg(RED), jpeg(BLUE)
ANCHORS = [Raw(b"train/cat.0.jpg", CAT), Raw(b"train/dog.0.jpg", DOG)]  # so that a layout is found


def run(tmp_path: Path, entries: list[Raw], jobs: int = 1, prefix: bytes = b""):
    """Ingest a forged archive of `entries`; return the report and the output folder."""
    archive, out = tmp_path / "source.zip", tmp_path / "out"
    archive.write_bytes(forge(entries, prefix))
    out.mkdir()
    return ingest_source(archive, out, MAX_PIXELS, jobs, progress=False), out


def outcome(report, index: int) -> str:
    return next(o.reason for o in report.skipped if o.index == index)


# --------------------------------------------------------------------------- the reader against zipfile


@FEW
@given(
    st.lists(st.tuples(st.sampled_from([0, 8, 12, 14]), st.binary(max_size=3000)), min_size=1, max_size=6),
    st.binary(max_size=40),
    st.booleans(),
)
def test_reader_gives_the_bytes_zipfile_gives(tmp_path, files, prefix, zip64):
    path = tmp_path / "a.zip"
    with open(path, "wb") as handle:
        handle.write(prefix)  # bytes before the archive, as in a self-extracting one
        with zipfile.ZipFile(handle, "w") as archive:
            for i, (method, data) in enumerate(files):
                info = zipfile.ZipInfo(f"f{i}")
                info.compress_type = method
                with archive.open(info, "w", force_zip64=zip64) as member:
                    member.write(data)
    members = list_zip(path)
    with zipfile.ZipFile(path) as archive:
        assert [m.name for m in members] == archive.namelist()
        for member, info in zip(members, archive.infolist(), strict=True):
            out = io.BytesIO()
            assert extract(path, member, out, 10**6) == info.file_size
            assert out.getvalue() == archive.read(info)


def test_reader_handles_every_compression_method(tmp_path):
    data = bytes(range(256)) * 40
    for method in (0, 8, 12, 14):
        path = tmp_path / f"{method}.zip"
        with zipfile.ZipFile(path, "w", compression=method) as archive:
            archive.writestr("x", data)
        out = io.BytesIO()
        extract(path, list_zip(path)[0], out, 10**6)
        assert out.getvalue() == data, method


# --------------------------------------------------------------------------- headers that lie


@pytest.mark.parametrize("method", [8, 12, 14], ids=["deflate", "bzip2", "lzma"])
def test_an_entry_inflating_past_its_header_is_stopped_there(tmp_path, method):
    bomb = b"\0" * 20_000_000
    report, out = run(tmp_path, ANCHORS + [Raw(b"train/cat.1.jpg", bomb, method, file_size=1000)])
    (skip,) = [o for o in report.skipped if o.index == 2]
    assert skip.reason == "unreadable_entry" and "inflates to more than the 1000 bytes" in skip.detail
    assert sorted(p.name for p in out.iterdir()) == report.kept == ["cat.0.jpg", "dog.0.jpg"]


@pytest.mark.parametrize(
    "lie, reason, detail",
    [
        (dict(file_size=len(CAT) + 10), "unreadable_entry", "ends after"),
        (dict(crc=12345), "unreadable_entry", "bad CRC-32"),
        (dict(file_size=2**32 - 2), "too_large", "by its header"),
        (dict(compress_size=10**6), "unreadable_entry", "overlaps the next entry"),
        (dict(flags=1), "unreadable_entry", "encrypted"),
        (dict(stated_method=99), "unreadable_entry", "compression method 99"),
    ],
)
def test_headers_that_do_not_match_the_data_are_refused(tmp_path, lie, reason, detail):
    entry = Raw(b"train/cat.1.jpg", CAT, **{"method": 8, **lie})
    report, _ = run(tmp_path, ANCHORS + [entry, Raw(b"train/dog.1.jpg", DOG)])
    (skip,) = [o for o in report.skipped if o.index == 2]
    assert (skip.reason, detail in skip.detail) == (reason, True), skip
    assert report.kept == ["cat.0.jpg", "dog.0.jpg", "dog.1.jpg"]


def test_entries_sharing_their_data_are_refused(tmp_path):
    """The overlapping-entries zip bomb: many directory records, one compressed blob."""
    bomb = Raw(b"train/cat.1.jpg", b"\0" * 5_000_000)
    shared = [Raw(f"train/cat.{i}.jpg".encode(), b"\0" * 5_000_000, same_data_as=2) for i in range(2, 50)]
    report, _ = run(tmp_path, ANCHORS + [bomb] + shared)
    assert {outcome(report, i) for i in range(2, 50)} == {"unreadable_entry"}
    assert report.kept == ["cat.0.jpg", "dog.0.jpg"]


def test_a_directory_larger_than_the_bound_is_refused_before_reading_it(tmp_path, monkeypatch):
    monkeypatch.setattr("catsdogs.data.archive.MAX_ENTRIES", 3)
    (tmp_path / "a.zip").write_bytes(forge(ANCHORS * 2))
    with pytest.raises(DataError, match="lists 4 entries .* more than this reader accepts"):
        list_zip(tmp_path / "a.zip")
    assert MAX_ENTRIES >= 8 * 25_000


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[: len(b) // 2], "neither a folder nor a zip archive"),
        (lambda b: b[:-30] + b"\0" * 30, "neither a folder nor a zip archive"),
        (lambda b: b.replace(b"PK\x01\x02", b"PK\x09\x09"), "damaged zip directory at entry 0"),
    ],
)
def test_a_damaged_directory_is_one_clear_error(tmp_path, damage, message):
    (tmp_path / "a.zip").write_bytes(damage(forge(ANCHORS)))
    with pytest.raises(DataError, match=message):
        list_zip(tmp_path / "a.zip")


# --------------------------------------------------------------------------- duplicates


def test_every_copy_of_a_duplicated_name_is_skipped_and_the_report_tells_them_apart(tmp_path):
    twins = [Raw(b"train/cat.1.jpg", CAT), Raw(b"train/cat.1.jpg", DOG)]  # a dog photo hiding as cat.1
    variants = [Raw(b"train/cat.2.jpg", CAT), Raw(b"train/CAT.2.JPG", DOG), Raw(b"Train/cat.2.jpeg", DOG)]
    report, out = run(tmp_path, ANCHORS + twins + variants)
    assert report.kept == sorted(p.name for p in out.iterdir()) == ["cat.0.jpg", "dog.0.jpg"]
    dupes = [(o.entry, o.index) for o in report.skipped if o.reason == "duplicate"]
    assert dupes == [
        ("Train/cat.2.jpeg", 6),
        ("train/CAT.2.JPG", 5),
        ("train/cat.1.jpg", 2),
        ("train/cat.1.jpg", 3),
        ("train/cat.2.jpg", 4),
    ]
    write_report(report, tmp_path / "counts.json", tmp_path / "skipped.csv")
    with open(tmp_path / "skipped.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["entry"], r["index"], r["reason"]) for r in rows][2:4] == [
        ("train/cat.1.jpg", "2", "duplicate"),
        ("train/cat.1.jpg", "3", "duplicate"),
    ]


LABELLED = st.builds(
    lambda cls, n, upper, ext, folder: f"{folder}{cls.upper() if upper else cls}.{n}.{ext}".encode(),
    st.sampled_from(["cat", "dog"]),
    st.integers(0, 3),
    st.booleans(),
    st.sampled_from(["jpg", "jpeg", "JPG"]),
    st.sampled_from(["", "train/", "a/b/", "x\\"]),
)
CONTENT = st.sampled_from([CAT, DOG, b"", b"<html>", CAT[:-100]])
ENTRY = st.builds(
    Raw,
    LABELLED | st.binary(max_size=30).map(lambda b: b"junk/" + b + b".bin"),
    CONTENT,
    st.sampled_from([0, 8, 12]),
    st.sampled_from([0, 0x800]),
)


@FEW
@given(st.lists(ENTRY, max_size=12), st.randoms(use_true_random=False))
def test_any_archive_each_entry_once_the_kept_bytes_exactly_and_no_order_dependence(tmp_path_factory, entries, rng):
    entries = ANCHORS + entries
    runs = []
    for attempt, order in enumerate((entries, rng.sample(entries, len(entries)))):
        folder = tmp_path_factory.mktemp(f"run{attempt}")
        report, out = run(folder, order)
        # each entry exactly once: kept under one Kaggle name, or skipped once with a known reason
        assert len(report.kept) + len(report.skipped) == len(order)
        assert len({o.index for o in report.skipped}) == len(report.skipped)
        assert {o.reason for o in report.skipped} <= set(REASONS)
        assert sorted(p.name for p in out.iterdir()) == report.kept
        for name in report.kept:  # data/raw holds exactly the one entry that gives this name
            (claimant,) = [e for e in order if kaggle_name("kaggle", e.name.decode("utf-8", "replace")) == name]
            assert (out / name).read_bytes() == claimant.data
        runs.append(
            (
                report.kept,
                sorted((o.entry, o.reason) for o in report.skipped),
                {name: (out / name).read_bytes() for name in report.kept},
            )
        )
    assert runs[0] == runs[1]


# --------------------------------------------------------------------------- names


NAMES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=80).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.builds(
        lambda part, depth: (part + b"/") * depth + b"cat.7.jpg",
        st.sampled_from([b"a", b"..", b"x" * 256, b"\\", b"\0", b"\n", b"\xff", b"C:", b"\xe2\x80\xae"]),
        st.integers(1, 200),
    ),  # a zip name holds at most 65,535 bytes
)


def unescape(cell: str) -> str:
    """The report's name back from its cell (the inverse of spreadsheet_safe and escape)."""

    def one(match: re.Match) -> str:
        code = match.group(1)
        if code == "\\":
            return "\\"
        return chr((0xDC00 if code[0] == "x" else 0) + int(code[1:], 16))

    cell = cell[1:] if cell.startswith("'") else cell
    return re.sub(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})", one, cell)


@FEW
@given(NAMES, st.sampled_from([0, 0x800]), st.sampled_from([CAT, b""]))
def test_any_name_is_kept_or_skipped_with_a_reason_and_reported_exactly(tmp_path_factory, name, flags, data):
    folder = tmp_path_factory.mktemp("names")
    report, out = run(folder, ANCHORS + [Raw(name, data, flags=flags)])
    decoded = name.decode("utf-8", "surrogateescape") if flags else name.decode("cp437")
    if name.endswith(b"/"):  # a folder entry: not a file
        assert len(report.kept) + len(report.skipped) == 2
        return
    assert len(report.kept) + len(report.skipped) == 3
    (skip,) = [o for o in report.skipped if o.index == 2] or [None]
    assert skip is None or (skip.entry == decoded and skip.reason in REASONS)
    write_report(report, folder / "counts.json", folder / "skipped.csv")
    with open(folder / "skipped.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [unescape(row["entry"]) for row in rows] == [o.entry for o in report.skipped]
    assert not any(row["entry"].startswith(tuple("=+-@\t\r")) or "\n" in row["entry"] for row in rows)


@pytest.mark.parametrize(
    "name, reason",
    [
        (b"train/cat.1\xff.jpg", "bad_name"),  # flagged UTF-8, but not
        (b"train/cat.1.jpg\0.exe", "bad_name"),  # zipfile would cut it at the NUL and read cat.1.jpg
        (b"train/\x1b[31m/cat.1.jpg", "bad_name"),
        (b"train/" + b"x" * 256 + b"/cat.1.jpg", "bad_name"),
        (b"a/" * 2100 + b"cat.1.jpg", "bad_name"),
        (b"train/cat." + b"1" * 250 + b".jpg", "bad_name"),  # fits the folder, not as cat.<number>.jpg
        (b"..\\..\\cat.1.jpg", "unsafe_path"),
        (b"\\\\server\\share\\cat.1.jpg", "unsafe_path"),
    ],
)
def test_names_no_file_system_takes_are_skipped(tmp_path, name, reason):
    report, _ = run(tmp_path, ANCHORS + [Raw(name, CAT, flags=0x800)])
    assert outcome(report, 2) == reason


def test_folder_names_that_are_not_utf8_or_hold_control_characters_are_skipped(tmp_path):
    root = tmp_path / "train"
    root.mkdir()
    for name, data in [(b"cat.0.jpg", CAT), (b"dog.0.jpg", DOG), (b"cat.1\xff.jpg", CAT), (b"cat.2.jpg\n", CAT)]:
        with open(os.path.join(os.fsencode(root), name), "wb") as handle:
            handle.write(data)
    (root / "line\nbreak").mkdir()
    (root / "line\nbreak/cat.3.jpg").write_bytes(CAT)
    out = tmp_path / "out"
    out.mkdir()
    report = ingest_source(root, out, MAX_PIXELS, 1, progress=False)
    assert report.kept == ["cat.0.jpg", "dog.0.jpg"]
    assert [(o.entry, o.reason) for o in report.skipped] == [
        ("cat.1\udcff.jpg", "bad_name"),
        ("cat.2.jpg\n", "bad_name"),
        ("line\nbreak/cat.3.jpg", "bad_name"),
    ]
    write_report(report, tmp_path / "c.json", tmp_path / "s.csv")
    assert (tmp_path / "s.csv").read_text().splitlines()[1:] == [
        r"cat.1\xff.jpg,,bad_name,not valid UTF-8",
        r"cat.2.jpg\u000a,,bad_name,holds a control character",
        r"line\u000abreak/cat.3.jpg,,bad_name,holds a control character",
    ]


# --------------------------------------------------------------------------- the report in a spreadsheet


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x","y")', "+1+2", "-3", "@SUM(A1)", "\tx", "\rx", "'q", "a\\b"])
def test_report_cells_never_start_a_formula_and_give_the_name_back(name):
    cell = spreadsheet_safe(escape(name))
    assert not cell.startswith(tuple("=+-@\t\r")) and unescape(cell) == name


@FEW
@given(st.text() | st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")))
def test_escape_is_printable_and_reversible(text):
    cell = spreadsheet_safe(escape(text))
    assert cell.isprintable() and unescape(cell) == text


# --------------------------------------------------------------------------- worker processes


def test_worker_count_never_exceeds_the_cores_nor_the_tasks():
    cores = usable_cores()
    assert worker_count(0, 10**6) == cores
    assert worker_count(100_000, 10**6) == cores
    assert worker_count(100_000, 3) == min(3, cores)
    assert worker_count(5, 0) == 1 and worker_count(1, 100) == 1


def _pid(_):
    return os.getpid()


def test_a_huge_jobs_value_starts_no_more_processes_than_cores():
    pids = {pid for _, pid in ordered_map(_pid, list(range(64)), jobs=100_000)}
    assert 1 <= len(pids) <= usable_cores()


def test_the_file_cap_holds_for_zip_headers_and_counted_folder_files(tmp_path, monkeypatch):
    big = jpeg(RED, size=(200, 200))
    cap = len(big) - 1
    monkeypatch.setattr(sources, "MAX_FILE_BYTES", cap)
    for method in (0, 8):
        (tmp_path / "a.zip").write_bytes(forge([Raw(b"a", big, method)]))
        with pytest.raises(EntryError, match="bytes by its header"):
            extract(tmp_path / "a.zip", list_zip(tmp_path / "a.zip")[0], io.BytesIO(), cap)
    root = tmp_path / "train"
    root.mkdir()
    (root / "cat.0.jpg").write_bytes(CAT)
    (root / "dog.0.jpg").write_bytes(DOG)
    (root / "cat.1.jpg").write_bytes(big)
    (tmp_path / "out").mkdir()
    report = ingest_source(root, tmp_path / "out", 10**6, 1, progress=False)
    assert [(o.entry, o.reason) for o in report.skipped] == [("cat.1.jpg", "too_large")]
    assert not (tmp_path / "out/cat.1.jpg").exists()


def test_random_damage_to_an_archive_is_a_report_or_one_clear_error(tmp_path):
    """Flip bytes anywhere in a valid archive: ingest ends with a report or a DataError, nothing else."""
    good = forge(ANCHORS + [Raw(b"train/cat.1.jpg", CAT, 12), Raw(b"train/dog.1.jpg", DOG, 0)])
    rng = random.Random(9)
    for trial in range(150):
        data = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        (tmp_path / "source.zip").write_bytes(bytes(data))
        out = tmp_path / f"out{trial}"
        out.mkdir()
        try:
            report = ingest_source(tmp_path / "source.zip", out, MAX_PIXELS, 1, progress=False)
        except DataError:
            continue
        assert sorted(p.name for p in out.iterdir()) == report.kept
