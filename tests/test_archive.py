"""catsdogs/data/archive.py directly: list_zip's and extract's limits on both sides, their messages word
for word, and the pieces they hand on; the archives come from Python's zipfile or tests/zip_forge.py."""

from __future__ import annotations

import io
import itertools
import lzma
import struct
import zipfile
import zlib

import numpy as np
import pytest

from catsdogs.data import archive
from catsdogs.data.archive import EntryError, extract, list_zip
from catsdogs.errors import DataError
from tests.zip_forge import Raw, forge, payload

DATA = bytes(range(256)) * 40  # 10240 bytes that compress a little


def write_zip(path, entries: dict[str, bytes], method=zipfile.ZIP_DEFLATED, **options) -> None:
    with zipfile.ZipFile(path, "w", method, **options) as handle:
        for name, data in entries.items():
            handle.writestr(name, data)


class Pieces(io.BytesIO):
    """An output that remembers the size of each write."""

    def __init__(self):
        super().__init__()
        self.sizes: list[int] = []

    def write(self, data) -> int:
        self.sizes.append(len(data))
        return super().write(data)


def test_a_directory_of_exactly_max_entries_is_listed_and_one_more_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_ENTRIES", 3)
    write_zip(tmp_path / "a.zip", {"a": b"1", "b": b"2", "c": b"3"})
    assert [m.name for m in list_zip(tmp_path / "a.zip")] == ["a", "b", "c"]
    write_zip(tmp_path / "b.zip", {"a": b"1", "b": b"2", "c": b"3", "d": b"4"})
    with pytest.raises(DataError) as refused:
        list_zip(tmp_path / "b.zip")
    length = 4 * (46 + 1)  # 4 records of 46 bytes and a 1-byte name
    assert str(refused.value) == (
        f"{tmp_path / 'b.zip'}: its directory lists 4 entries in {length} bytes, more than this reader accepts "
        f"(3 entries, {archive.MAX_DIRECTORY_BYTES} bytes); split the archive"
    )


def test_a_directory_of_exactly_max_directory_bytes_is_listed_and_one_byte_more_is_refused(tmp_path, monkeypatch):
    write_zip(tmp_path / "a.zip", {"a": b"1", "bb": b"2"})
    length = 2 * 46 + 3
    monkeypatch.setattr(archive, "MAX_DIRECTORY_BYTES", length)
    assert len(list_zip(tmp_path / "a.zip")) == 2
    monkeypatch.setattr(archive, "MAX_DIRECTORY_BYTES", length - 1)
    with pytest.raises(DataError, match=rf"lists 2 entries in {length} bytes, more than this reader accepts"):
        list_zip(tmp_path / "a.zip")


def test_a_directory_that_lists_more_records_than_its_count_stops_at_max_entries(tmp_path, monkeypatch):
    """The end record says 2 entries, its directory holds 3 records: counted while reading, too."""
    monkeypatch.setattr(archive, "MAX_ENTRIES", 2)
    blob = bytearray(forge([Raw(b"a", b"1"), Raw(b"b", b"2"), Raw(b"c", b"3")]))
    end = blob.rindex(b"PK\x05\x06")
    blob[end + 8 : end + 12] = struct.pack("<HH", 2, 2)
    (tmp_path / "a.zip").write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"a.zip: damaged zip directory at entry 2 \(byte \d+\)$"):
        list_zip(tmp_path / "a.zip")


@pytest.mark.parametrize(
    "blob, message",
    [
        (b"", "neither a folder nor a zip archive (no zip directory at its end: a partial download?)"),
        (b"PK\x05\x06" + bytes(17), "neither a folder nor a zip archive (no zip directory at its end"),  # 1 short
        (b"PK\x05\x06" + struct.pack("<4H2LH", 1, 0, 0, 0, 0, 0, 0), "one part of a split (multi-volume) zip"),
        (b"PK\x05\x06" + struct.pack("<4H2LH", 0, 1, 0, 0, 0, 0, 0), "one part of a split (multi-volume) zip"),
        (b"PK\x05\x06" + struct.pack("<4H2LH", 0, 0, 1, 1, 46, 0, 0), "damaged zip archive (its directory does"),
        (b"x" * 10 + b"PK\x05\x06" + struct.pack("<4H2LH", 0, 0, 0, 0, 0, 11, 0), "damaged zip archive"),
    ],
)
def test_end_records_that_cannot_be_read_are_one_clear_error(tmp_path, blob, message):
    (tmp_path / "a.zip").write_bytes(blob)
    with pytest.raises(DataError) as refused:
        list_zip(tmp_path / "a.zip")
    assert str(refused.value).startswith(f"{tmp_path / 'a.zip'}: {message}")


def test_an_empty_archive_lists_nothing_and_data_before_it_shifts_the_offsets(tmp_path):
    write_zip(tmp_path / "empty.zip", {})
    assert list_zip(tmp_path / "empty.zip") == []
    buffer = io.BytesIO()
    write_zip(buffer, {"a": DATA, "b": b"x"})
    (tmp_path / "plain.zip").write_bytes(buffer.getvalue())
    (tmp_path / "prefixed.zip").write_bytes(b"#!/bin/sh\nexit\n" + buffer.getvalue())
    plain, prefixed = list_zip(tmp_path / "plain.zip"), list_zip(tmp_path / "prefixed.zip")
    assert [m.offset + 15 for m in plain] == [m.offset for m in prefixed]
    assert [m.end + 15 for m in plain] == [m.end for m in prefixed]
    assert plain[0].end == plain[1].offset and plain[1].problem == ""


def test_members_hold_what_the_directory_states(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as handle:
        info = zipfile.ZipInfo("dir/é.txt")
        info.external_attr = 0o100640 << 16
        handle.writestr(info, DATA, compress_type=zipfile.ZIP_BZIP2)
        handle.writestr("b", b"", compress_type=zipfile.ZIP_STORED)
    with zipfile.ZipFile(tmp_path / "a.zip") as handle:
        infos = handle.infolist()
    first, second = list_zip(tmp_path / "a.zip")
    assert (first.index, first.name, first.method, first.crc) == (0, "dir/é.txt", 12, infos[0].CRC)
    assert (first.file_size, first.compress_size, first.offset) == (len(DATA), infos[0].compress_size, 0)
    assert first.flags & archive.UTF8_NAME and first.mode == 0o100640
    assert (second.index, second.name, second.method, second.file_size, second.offset) == (
        1,
        "b",
        0,
        0,
        infos[1].header_offset,
    )


def test_a_name_not_flagged_utf8_is_cp437_and_a_flagged_one_keeps_bad_bytes(tmp_path):
    (tmp_path / "a.zip").write_bytes(forge([Raw(b"caf\x82", b"1"), Raw(b"x\xff", b"2", flags=0x800)]))
    assert [m.name for m in list_zip(tmp_path / "a.zip")] == ["café", "x\udcff"]


def zip64_extra(*values: int, cut: int = 0) -> bytes:
    body = b"".join(struct.pack("<Q", v) for v in values)[: 8 * len(values) - cut]
    return struct.pack("<HH", 1, len(body)) + body


def test_zip64_sizes_and_offset_replace_the_0xffffffff_values():
    sizes = [0xFFFFFFFF, 5, 0xFFFFFFFF]
    assert archive._zip64(struct.pack("<HH", 9, 2) + b"ab" + zip64_extra(7, 9), sizes) == ""
    assert sizes == [7, 5, 9]  # another field (kind 9) skipped; the values in order
    sizes = [0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF]
    assert archive._zip64(zip64_extra(1, 2, 3), sizes) == "" and sizes == [1, 2, 3]
    sizes = [1, 2, 3]
    assert archive._zip64(zip64_extra(7), sizes) == "" and sizes == [1, 2, 3]  # nothing to replace


@pytest.mark.parametrize("cut", [1, 8])
def test_a_zip64_field_too_short_for_a_value_is_a_problem(cut):
    sizes = [0xFFFFFFFF, 0xFFFFFFFF, 0]
    assert archive._zip64(zip64_extra(7, 9, cut=cut), sizes) == "zip64 extra field too short"
    assert archive._zip64(struct.pack("<HH", 1, 0), [0xFFFFFFFF, 0, 0]) == "zip64 extra field too short"


def test_an_entry_whose_offset_is_past_the_data_is_unreadable(tmp_path):
    blob = bytearray(forge([Raw(b"a", b"1"), Raw(b"b", b"2")]))
    start = blob.index(b"PK\x01\x02")
    second = blob.index(b"PK\x01\x02", start + 1)
    blob[second + 42 : second + 46] = struct.pack("<L", start)  # at the directory itself
    (tmp_path / "a.zip").write_bytes(bytes(blob))
    first, bad = list_zip(tmp_path / "a.zip")
    assert first.problem == "" and first.end == start
    assert bad.problem == "local header offset outside the archive's data"
    with pytest.raises(EntryError) as refused:
        extract(tmp_path / "a.zip", bad, io.BytesIO(), 100)
    assert (refused.value.reason, refused.value.detail) == (
        "unreadable_entry",
        "local header offset outside the archive's data",
    )


def test_entries_sharing_data_say_how_many_others(tmp_path):
    (tmp_path / "a.zip").write_bytes(
        forge([Raw(b"a", DATA), Raw(b"b", DATA, same_data_as=0), Raw(b"c", same_data_as=0)])
    )
    members = list_zip(tmp_path / "a.zip")
    assert [m.problem for m in members] == ["shares its data with 2 other entries (overlapping entries)"] * 3


@pytest.mark.parametrize("method", [0, 8, 12, 14])
@pytest.mark.parametrize("chunk", [archive.CHUNK, 1000, 7])
def test_extract_writes_pieces_of_at_most_chunk_bytes_and_exactly_the_cap(tmp_path, monkeypatch, method, chunk):
    monkeypatch.setattr(archive, "CHUNK", chunk)
    write_zip(tmp_path / "a.zip", {"a": DATA}, method)
    [member] = list_zip(tmp_path / "a.zip")
    out = Pieces()
    assert extract(tmp_path / "a.zip", member, out, cap=len(DATA)) == len(DATA)
    assert out.getvalue() == DATA and max(out.sizes) <= chunk
    with pytest.raises(EntryError) as refused:
        extract(tmp_path / "a.zip", member, io.BytesIO(), cap=len(DATA) - 1)
    assert (refused.value.reason, refused.value.detail) == (
        "too_large",
        f"{len(DATA)} bytes by its header > {len(DATA) - 1}",
    )


@pytest.mark.parametrize("method", [0, 8, 12, 14])
def test_an_entry_that_inflates_one_byte_past_its_header_is_refused_and_exactly_its_header_is_kept(tmp_path, method):
    (tmp_path / "a.zip").write_bytes(
        forge([Raw(b"long", DATA + b"!", method, file_size=len(DATA)), Raw(b"exact", DATA, method)])
    )
    long, exact = list_zip(tmp_path / "a.zip")
    with pytest.raises(EntryError) as refused:
        extract(tmp_path / "a.zip", long, io.BytesIO(), cap=10**6)
    assert (refused.value.reason, refused.value.detail) == (
        "unreadable_entry",
        f"inflates to more than the {len(DATA)} bytes its header says",
    )
    out = io.BytesIO()
    assert extract(tmp_path / "a.zip", exact, out, cap=len(DATA)) == len(DATA) and out.getvalue() == DATA


@pytest.mark.parametrize("method", [0, 8, 12, 14])
def test_an_entry_ending_early_says_how_far_it_got(tmp_path, method):
    (tmp_path / "a.zip").write_bytes(forge([Raw(b"a", DATA, method, file_size=len(DATA) + 5)]))
    [member] = list_zip(tmp_path / "a.zip")
    with pytest.raises(EntryError) as refused:
        extract(tmp_path / "a.zip", member, io.BytesIO(), cap=10**6)
    assert refused.value.detail == f"ends after {len(DATA)} of the {len(DATA) + 5} bytes its header says"


@pytest.mark.parametrize("method", [8, 12, 14])
def test_damaged_compressed_data_is_unreadable_with_the_decoders_words(tmp_path, method):
    body = bytearray(b"\xff" * 64)
    (tmp_path / "a.zip").write_bytes(forge([Raw(b"a", DATA, method, body=bytes(body))]))
    [member] = list_zip(tmp_path / "a.zip")
    with pytest.raises(EntryError) as refused:
        extract(tmp_path / "a.zip", member, io.BytesIO(), cap=10**6)
    assert refused.value.reason == "unreadable_entry"
    assert refused.value.detail.split(":")[0] in ("error", "LZMAError", "OSError", "EOFError", "ValueError")


def test_a_local_header_missing_where_the_directory_says_is_unreadable(tmp_path):
    blob = bytearray(forge([Raw(b"a", DATA)]))
    blob[0:4] = b"XXXX"
    (tmp_path / "a.zip").write_bytes(bytes(blob))
    [member] = list_zip(tmp_path / "a.zip")
    with pytest.raises(EntryError) as refused:
        extract(tmp_path / "a.zip", member, io.BytesIO(), cap=10**6)
    assert (refused.value.reason, refused.value.detail) == (
        "unreadable_entry",
        "no local header where the directory says",
    )


def test_lzma_properties_shorter_than_5_bytes_are_refused(tmp_path):
    body = struct.pack("<BBH", 9, 4, 4) + b"\x5d\0\0\x10"  # 4 bytes of properties, not 5
    (tmp_path / "a.zip").write_bytes(forge([Raw(b"a", DATA, 14, body=body)]))
    [member] = list_zip(tmp_path / "a.zip")
    with pytest.raises(EntryError) as refused:
        extract(tmp_path / "a.zip", member, io.BytesIO(), cap=10**6)
    assert refused.value.detail == "LZMAError: bad LZMA properties"


def test_reader_reads_at_most_its_size_in_all():
    read = archive._reader(io.BytesIO(b"abcdefghij"), 7)
    assert [read(3), read(3), read(3), read(3)] == [b"abc", b"def", b"g", b""]


def with_zip64_end(blob: bytes) -> bytes:
    """The archive with a zip64 end record and locator before its end record, whose count, size and
    offset fields then say 0xFFFF / 0xFFFFFFFF (as a writer does past 65535 entries or 4 GiB)."""
    end = blob.rindex(b"PK\x05\x06")
    _, disk, start_disk, here, count, length, offset, comment = archive._END.unpack_from(blob, end)
    record = archive._END64.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, here, count, length, offset)
    locator = archive._END64_LOCATOR.pack(b"PK\x06\x07", 0, end, 1)
    small = archive._END.pack(b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return blob[:end] + record + locator + small


def test_a_zip64_end_record_gives_the_directory(tmp_path):
    buffer = io.BytesIO()
    write_zip(buffer, {"a": DATA, "b": b"x" * 10})
    (tmp_path / "a.zip").write_bytes(with_zip64_end(buffer.getvalue()))
    members = list_zip(tmp_path / "a.zip")
    assert [(m.name, m.file_size, m.problem) for m in members] == [("a", len(DATA), ""), ("b", 10, "")]
    out = io.BytesIO()
    assert extract(tmp_path / "a.zip", members[0], out, 10**6) == len(DATA) and out.getvalue() == DATA
    (tmp_path / "p.zip").write_bytes(b"#!/bin/sh\n" + with_zip64_end(buffer.getvalue()))  # prepended data too
    assert [m.offset for m in list_zip(tmp_path / "p.zip")] == [m.offset + 10 for m in members]


def test_a_zip64_locator_without_its_record_is_ignored_and_a_split_zip64_is_refused(tmp_path):
    buffer = io.BytesIO()
    write_zip(buffer, {"a": b"1"})
    blob = buffer.getvalue()
    end = blob.rindex(b"PK\x05\x06")
    locator = archive._END64_LOCATOR.pack(b"PK\x06\x07", 0, 0, 1)
    (tmp_path / "a.zip").write_bytes(blob[:end] + bytes(56) + locator + blob[end:])  # no record before it
    with pytest.raises(DataError, match="damaged zip"):  # the end record's own fields, 76 bytes off
        list_zip(tmp_path / "a.zip")
    split = bytearray(with_zip64_end(blob))
    at = split.index(b"PK\x06\x06")
    struct.pack_into("<L", split, at + 16, 1)  # the zip64 record's disk number
    (tmp_path / "b.zip").write_bytes(bytes(split))
    with pytest.raises(DataError, match="one part of a split"):
        list_zip(tmp_path / "b.zip")


def test_an_empty_zip64_archive_lists_nothing(tmp_path):
    buffer = io.BytesIO()
    write_zip(buffer, {})
    (tmp_path / "a.zip").write_bytes(with_zip64_end(buffer.getvalue()))  # the zip64 record at byte 0
    assert list_zip(tmp_path / "a.zip") == []


def test_two_entries_sharing_data_are_both_unreadable_and_comments_are_skipped(tmp_path):
    blob = forge([Raw(b"a", DATA), Raw(b"b", DATA, same_data_as=0), Raw(b"c", b"x")])
    (tmp_path / "a.zip").write_bytes(blob)
    assert [m.problem for m in list_zip(tmp_path / "a.zip")] == [
        "shares its data with 1 other entries (overlapping entries)"
    ] * 2 + [""]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as handle:
        for name in ("a", "b"):
            info = zipfile.ZipInfo(name)
            info.comment = b"an entry comment"
            handle.writestr(info, DATA)
    (tmp_path / "c.zip").write_bytes(buffer.getvalue())
    assert [(m.name, m.file_size, m.problem) for m in list_zip(tmp_path / "c.zip")] == [
        ("a", len(DATA), ""),
        ("b", len(DATA), ""),
    ]


def test_zip64_extra_fields_in_the_directory_give_the_sizes(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as handle, handle.open(zipfile.ZipInfo("a"), "w", force_zip64=True) as member:
        member.write(DATA)
    (tmp_path / "a.zip").write_bytes(buffer.getvalue())
    [member] = list_zip(tmp_path / "a.zip")
    assert (member.file_size, member.problem) == (len(DATA), "")
    out = io.BytesIO()
    assert extract(tmp_path / "a.zip", member, out, 10**6) == len(DATA) and out.getvalue() == DATA


# --------------------------------------------------------------------------- issue 20: each check on both sides


def test_the_last_end_record_signature_is_the_directory_not_one_inside_the_data(tmp_path):
    """A stored entry that holds an end record's bytes: the real one, after it, is the directory."""
    fake_end = b"PK\x05\x06" + bytes(18)
    write_zip(tmp_path / "a.zip", {"a": fake_end, "b": b"x"}, zipfile.ZIP_STORED)
    assert [(m.name, m.file_size) for m in list_zip(tmp_path / "a.zip")] == [("a", 22), ("b", 1)]


def test_a_truncated_end_record_after_other_bytes_is_no_zip(tmp_path):
    (tmp_path / "a.zip").write_bytes(b"x" * 10 + b"PK\x05\x06" + bytes(17))  # 21 of its 22 bytes
    with pytest.raises(DataError) as refused:
        list_zip(tmp_path / "a.zip")
    assert str(refused.value) == (
        f"{tmp_path / 'a.zip'}: neither a folder nor a zip archive (no zip directory at its end: a partial download?)"
    )


def test_a_zip64_locator_with_no_room_for_its_record_is_ignored(tmp_path):
    """The locator (20 bytes) at byte 0, just before an empty end record: the zip64 record (56 bytes)
    would start before the file, so the end record's own fields count."""
    locator = archive._END64_LOCATOR.pack(b"PK\x06\x07", 0, 0, 1)
    (tmp_path / "a.zip").write_bytes(locator + archive._END.pack(b"PK\x05\x06", 0, 0, 0, 0, 0, 0, 0))
    assert list_zip(tmp_path / "a.zip") == []


def test_an_end_record_after_the_longest_comment_is_found(tmp_path):
    """The end record is 22 bytes and its comment at most 65535: it starts exactly 65557 bytes from the end."""
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as handle:
        handle.writestr("a", DATA)
        handle.comment = b"c" * 0xFFFF
    assert (tmp_path / "a.zip").read_bytes()[-65557:-65553] == b"PK\x05\x06"
    assert [(m.name, m.file_size) for m in list_zip(tmp_path / "a.zip")] == [("a", len(DATA))]


def test_a_damaged_directory_names_the_byte_of_the_bad_record(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_ENTRIES", 2)
    blob = bytearray(forge([Raw(b"a", b"1"), Raw(b"b", b"2"), Raw(b"c", b"3")]))
    end = blob.rindex(b"PK\x05\x06")
    blob[end + 8 : end + 12] = struct.pack("<HH", 2, 2)
    third = blob.index(b"PK\x01\x02", blob.index(b"PK\x01\x02", blob.index(b"PK\x01\x02") + 1) + 1)
    (tmp_path / "a.zip").write_bytes(bytes(blob))
    with pytest.raises(DataError) as refused:
        list_zip(tmp_path / "a.zip")
    assert str(refused.value) == f"{tmp_path / 'a.zip'}: damaged zip directory at entry 2 (byte {third})"


def test_extra_fields_in_the_directory_are_skipped_and_a_zip64_one_read(tmp_path):
    """Directory records with an extra field (8 bytes of another kind) are read to their end; one whose
    sizes say 0xFFFFFFFF takes them from its zip64 field (kind 1)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as handle:
        for name in ("a", "b"):
            info = zipfile.ZipInfo(name)
            info.extra = struct.pack("<HH", 0xCAFE, 8) + b"abcdefgh"
            handle.writestr(info, DATA)
    blob = bytearray(buffer.getvalue())
    (tmp_path / "a.zip").write_bytes(bytes(blob))
    assert [(m.name, m.file_size, m.problem) for m in list_zip(tmp_path / "a.zip")] == [
        ("a", len(DATA), ""),
        ("b", len(DATA), ""),
    ]
    record = blob.index(b"PK\x01\x02")  # entry a's directory record: its file size 0xFFFFFFFF, in kind 1
    struct.pack_into("<L", blob, record + 24, 0xFFFFFFFF)
    field = blob.index(b"\xfe\xca", record)
    blob[field : field + 12] = struct.pack("<HHQ", 1, 8, len(DATA))
    (tmp_path / "b.zip").write_bytes(bytes(blob))
    first, second = list_zip(tmp_path / "b.zip")
    assert (first.file_size, first.problem, second.name) == (len(DATA), "", "b")
    out = io.BytesIO()
    assert extract(tmp_path / "b.zip", first, out, 10**6) == len(DATA) and out.getvalue() == DATA


def test_zip64_fields_are_found_after_fields_of_any_length():
    other = struct.pack("<HH", 9, 0) + struct.pack("<HH", 9, 8) + b"abcd" + struct.pack("<HH", 9, 0x100)
    sizes = [0xFFFFFFFF, 5, 6]
    assert archive._zip64(other + zip64_extra(7), sizes) == "" and sizes == [7, 5, 6]


def test_a_zip64_field_one_byte_short_is_a_problem_even_when_another_field_follows():
    sizes = [0xFFFFFFFF, 0, 0]
    assert archive._zip64(zip64_extra(7, cut=1) + struct.pack("<HH", 9, 0), sizes) == "zip64 extra field too short"


def test_zip64_values_and_lengths_are_unsigned():
    sizes = [0xFFFFFFFF, 0, 0]
    assert archive._zip64(zip64_extra(2**63), sizes) == "" and sizes == [2**63, 0, 0]
    sizes = [1, 2, 3]  # a field whose length (0x9000) runs past the end: nothing more to read
    assert archive._zip64(struct.pack("<HH", 9, 0x9000) + b"ab", sizes) == "" and sizes == [1, 2, 3]


@pytest.mark.parametrize("method", [0, 8, 12, 14])
@pytest.mark.parametrize("limit", [1, 1000, 1001, len(DATA) + 5])
def test_inflate_gives_exactly_the_first_limit_bytes_in_pieces_of_at_most_chunk(monkeypatch, method, limit):
    monkeypatch.setattr(archive, "CHUNK", 7)
    body = payload(method, DATA)
    pieces = list(
        itertools.islice(archive._inflate(method, archive._reader(io.BytesIO(body), len(body)), limit), 10**5)
    )
    assert len(pieces) < 10**5 and max(map(len, pieces)) <= 7
    assert b"".join(pieces) == DATA[:limit]


def test_inflate_hands_lzma_input_only_when_it_asks_for_it(monkeypatch):
    """1 MiB of zeros: the first CHUNK of input holds far more than 1000 bytes of output, so reading 1000
    bytes reads the 4-byte header, 5 bytes of properties and one CHUNK, not the whole entry."""
    monkeypatch.setattr(archive, "CHUNK", 64)
    body = payload(14, bytes(2**20))
    source = io.BytesIO(body)
    assert b"".join(archive._inflate(14, archive._reader(source, len(body)), 1000)) == bytes(1000)
    assert source.tell() == 4 + 5 + 64 < len(body)


def lzma_entry(data: bytes, lc: int = 3, lp: int = 0, pb: int = 2, dictionary: int = 1 << 16) -> bytes:
    """A zip LZMA entry's bytes: header (version 9.4, 5 bytes of properties), properties, raw LZMA1."""
    stream = lzma.compress(
        data,
        format=lzma.FORMAT_RAW,
        filters=[{"id": lzma.FILTER_LZMA1, "dict_size": 1 << 16, "lc": lc, "lp": lp, "pb": pb}],
    )
    return struct.pack("<BBH", 9, 4, 5) + struct.pack("<BL", (pb * 5 + lp) * 9 + lc, dictionary) + stream


@pytest.mark.parametrize("lc, lp, pb", [(3, 0, 2), (0, 0, 1), (0, 1, 0), (4, 0, 0), (1, 2, 4)])
def test_lzma_properties_are_read_as_lc_lp_pb(tmp_path, lc, lp, pb):
    (tmp_path / "a.zip").write_bytes(forge([Raw(b"a", DATA, 14, body=lzma_entry(DATA, lc, lp, pb))]))
    [member] = list_zip(tmp_path / "a.zip")
    out = io.BytesIO()
    assert extract(tmp_path / "a.zip", member, out, 10**6) == len(DATA) and out.getvalue() == DATA


def test_an_lzma_match_reaches_back_as_far_as_its_stated_dictionary_and_no_further(tmp_path):
    """Random bytes repeated 4097 bytes later: a stated dictionary of 2^31 (above 2^31: unsigned) decodes
    it, one of 4096 (liblzma's smallest) does not; 4097 bytes is within the entry's size, the cap."""
    noise = np.random.default_rng(0).integers(0, 256, 4097, dtype=np.uint8).tobytes()
    data = noise + noise[:200]
    (tmp_path / "a.zip").write_bytes(
        forge(
            [
                Raw(b"a", data, 14, body=lzma_entry(data, dictionary=2**31)),
                Raw(b"b", data, 14, body=lzma_entry(data, dictionary=4096)),
            ]
        )
    )
    wide, narrow = list_zip(tmp_path / "a.zip")
    out = io.BytesIO()
    assert extract(tmp_path / "a.zip", wide, out, 10**6) == len(data) and out.getvalue() == data
    with pytest.raises(EntryError) as refused:
        extract(tmp_path / "a.zip", narrow, io.BytesIO(), 10**6)
    assert (refused.value.reason, refused.value.detail) == ("unreadable_entry", "LZMAError: Corrupt input data")


@pytest.mark.parametrize(
    "body",
    [
        b"\x09\x04",  # a header cut short
        struct.pack("<BBH", 9, 4, 0x0105) + bytes(300),  # properties of 261 bytes: not LZMA1's 5
        struct.pack("<BBH", 9, 4, 5) + b"\x5d\0\0",  # 3 of the 5 bytes of properties
    ],
)
def test_lzma_headers_that_do_not_give_5_bytes_of_properties_are_refused(tmp_path, body):
    (tmp_path / "a.zip").write_bytes(forge([Raw(b"a", DATA, 14, body=body)]))
    [member] = list_zip(tmp_path / "a.zip")
    with pytest.raises(EntryError) as refused:
        extract(tmp_path / "a.zip", member, io.BytesIO(), cap=10**6)
    assert (refused.value.reason, refused.value.detail) == ("unreadable_entry", "LZMAError: bad LZMA properties")


@pytest.mark.parametrize(
    "entry, detail",
    [
        (Raw(b"a", DATA, flags=0x1), "encrypted"),
        (Raw(b"a", DATA, crc=zlib.crc32(DATA) ^ 1), "bad CRC-32"),
        (Raw(b"a", DATA, 0, compress_size=len(DATA) + 1), "its data overlaps the next entry (overlapping entries)"),
    ],
)
def test_entries_refused_by_extract_say_why_word_for_word(tmp_path, entry, detail):
    (tmp_path / "a.zip").write_bytes(forge([entry, Raw(b"b", b"x")]))
    first, _ = list_zip(tmp_path / "a.zip")
    with pytest.raises(EntryError) as refused:
        extract(tmp_path / "a.zip", first, io.BytesIO(), cap=10**6)
    assert (refused.value.reason, refused.value.detail) == ("unreadable_entry", detail)


def test_extract_reads_one_byte_past_the_header_size_and_no_more(tmp_path, monkeypatch):
    """A stored entry with 10 bytes more than its header says: file_size + 1 bytes are read, which is
    enough to refuse it."""
    (tmp_path / "a.zip").write_bytes(forge([Raw(b"a", DATA + bytes(10), 0, file_size=len(DATA))]))
    [member] = list_zip(tmp_path / "a.zip")
    read_in_all = []
    real_reader = archive._reader

    def counting_reader(handle, size):
        read = real_reader(handle, size)

        def counted(n):
            data = read(n)
            read_in_all.append(len(data))
            return data

        return counted

    monkeypatch.setattr(archive, "_reader", counting_reader)
    with pytest.raises(EntryError, match="inflates to more than"):
        extract(tmp_path / "a.zip", member, io.BytesIO(), cap=10**6)
    assert sum(read_in_all) == len(DATA) + 1


def test_an_end_record_further_from_the_end_than_the_longest_comment_allows_is_not_found(tmp_path):
    """22 + 65535 bytes is as far as an end record can be; one byte further (65536 bytes of junk after an
    empty end record) it is not looked for, as zipfile does not: no zip."""
    (tmp_path / "a.zip").write_bytes(archive._END.pack(b"PK\x05\x06", 0, 0, 0, 0, 0, 0, 0) + b"x" * 65536)
    with pytest.raises(DataError, match="neither a folder nor a zip archive"):
        list_zip(tmp_path / "a.zip")
    (tmp_path / "b.zip").write_bytes(archive._END.pack(b"PK\x05\x06", 0, 0, 0, 0, 0, 0, 0) + b"x" * 65535)
    assert list_zip(tmp_path / "b.zip") == []
