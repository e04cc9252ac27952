"""catsdogs/data/readers.py: FolderSource and ZipSource directly, at their limits, on both sides of each:
where a followed link may point, the size cap (exactly at it, one byte over), the number of entries."""

from __future__ import annotations

import io
import os
import sys
import zipfile

import pytest

from catsdogs.data import readers
from catsdogs.data.archive import EntryError
from catsdogs.data.readers import Entry, FolderSource, ZipSource, open_source
from catsdogs.errors import DataError
from tests.test_archive import Pieces

DATA = bytes(range(256)) * 40  # 10240 bytes, more than one CHUNK when CHUNK is made small below


def outcomes(source) -> dict[str, str | None]:
    return {entry.name: entry.problem for entry in source.entries()}


def test_a_link_into_a_sibling_folder_whose_name_starts_the_same_is_not_followed(tmp_path):
    """src2 starts with "src": a string-prefix test of the link's target would take src2/secret.jpg."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src2").mkdir()
    (tmp_path / "src2/secret.jpg").write_bytes(b"secret")
    (tmp_path / "src/cat.0.jpg").write_bytes(b"cat")
    (tmp_path / "src/cat.1.jpg").symlink_to(tmp_path / "src2/secret.jpg")
    (tmp_path / "src/cat.2.jpg").symlink_to("../src2/secret.jpg")  # relative, the same target
    (tmp_path / "src/cat.3.jpg").symlink_to(tmp_path / "src/cat.0.jpg")  # inside: followed
    source = FolderSource(tmp_path / "src")
    assert outcomes(source) == {
        "cat.0.jpg": None,
        "cat.1.jpg": "link_not_followed",
        "cat.2.jpg": "link_not_followed",
        "cat.3.jpg": None,
    }
    details = {entry.name: entry.detail for entry in source.entries()}
    assert details["cat.1.jpg"] == f"points outside the source, to {tmp_path / 'src2/secret.jpg'}"


def test_links_to_the_parent_a_folder_inside_and_nowhere(tmp_path):
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / "sub/dog.0.jpg").write_bytes(b"dog")
    (root / "up.jpg").symlink_to(tmp_path)  # the source's parent: outside
    (root / "self").symlink_to(root)  # the source itself, a folder: inside, but a folder
    (root / "sub_link").symlink_to(root / "sub")
    (root / "broken.jpg").symlink_to(root / "missing.jpg")
    found = {entry.name: (entry.problem, entry.detail) for entry in FolderSource(root).entries()}
    assert found["sub/dog.0.jpg"] == (None, "")
    assert found["self"] == ("link_not_followed", "link to a folder")
    assert found["sub_link"] == ("link_not_followed", "link to a folder")
    assert found["up.jpg"][0] == "link_not_followed" and found["up.jpg"][1].startswith("points outside")
    assert found["broken.jpg"] == ("link_not_followed", "broken link: No such file or directory")
    assert len(found) == 5


def test_a_pipe_in_the_listing_is_not_a_file(tmp_path):
    os.mkfifo(tmp_path / "cat.0.jpg")
    [entry] = FolderSource(tmp_path).entries()
    assert (entry.name, entry.problem, entry.detail) == ("cat.0.jpg", "not_a_file", "not a regular file")


@pytest.mark.parametrize("chunk", [readers.CHUNK, 1000])
def test_a_folder_file_of_exactly_the_cap_is_copied_and_one_byte_more_is_too_large(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(readers, "CHUNK", chunk)
    (tmp_path / "cat.0.jpg").write_bytes(DATA)
    source = FolderSource(tmp_path)
    out = Pieces()
    assert source.copy(Entry("cat.0.jpg"), out, cap=len(DATA)) == len(DATA)
    assert out.getvalue() == DATA and max(out.sizes) <= chunk  # never the whole file at once
    with pytest.raises(EntryError) as refused:
        source.copy(Entry("cat.0.jpg"), io.BytesIO(), cap=len(DATA) - 1)
    assert (refused.value.reason, refused.value.detail) == ("too_large", f"more than {len(DATA) - 1} bytes")


def test_a_zip_entry_of_exactly_the_cap_is_copied_and_one_byte_more_is_too_large(tmp_path):
    path = tmp_path / "train.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train/cat.0.jpg", DATA)
    source = ZipSource(path)
    [entry] = source.entries()
    out = io.BytesIO()
    assert source.copy(entry, out, cap=len(DATA)) == len(DATA) and out.getvalue() == DATA
    with pytest.raises(EntryError) as refused:
        source.copy(entry, io.BytesIO(), cap=len(DATA) - 1)
    assert refused.value.reason == "too_large"


def test_an_empty_file_is_copied_as_zero_bytes(tmp_path):
    (tmp_path / "cat.0.jpg").write_bytes(b"")
    out = io.BytesIO()
    assert FolderSource(tmp_path).copy(Entry("cat.0.jpg"), out, cap=0) == 0 and out.getvalue() == b""


def test_a_file_gone_or_turned_into_a_pipe_since_the_listing_is_an_entry_error(tmp_path):
    os.mkfifo(tmp_path / "cat.0.jpg")
    with pytest.raises(EntryError) as refused:
        FolderSource(tmp_path).copy(Entry("cat.0.jpg"), io.BytesIO(), cap=10)
    assert (refused.value.reason, refused.value.detail) == ("not_a_file", "not a regular file")
    with pytest.raises(EntryError) as gone:
        FolderSource(tmp_path).copy(Entry("dog.0.jpg"), io.BytesIO(), cap=10)
    assert (gone.value.reason, gone.value.detail) == (
        "unreadable_entry",
        "FileNotFoundError: No such file or directory",
    )


def test_a_folder_of_exactly_max_entries_is_listed_and_one_more_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_ENTRIES", 3)
    for name in ("a", "b", "c"):
        (tmp_path / name).write_bytes(b"x")
    assert sorted(outcomes(FolderSource(tmp_path))) == ["a", "b", "c"]
    (tmp_path / "d").write_bytes(b"x")
    with pytest.raises(DataError, match=rf"^{tmp_path}: more than 3 files; split the source$"):
        FolderSource(tmp_path).entries()


def test_zip_folders_are_not_entries_and_zip_links_are_not_followed(tmp_path):
    path = tmp_path / "train.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("train/", b"")
        archive.writestr("train/cat.0.jpg", b"cat")
        link = zipfile.ZipInfo("train/cat.1.jpg")
        link.external_attr = (0o120777 << 16) | 0x20
        archive.writestr(link, "cat.0.jpg")
    entries = ZipSource(path).entries()
    assert [(e.name, e.index, e.problem, e.detail) for e in entries] == [
        ("train/cat.0.jpg", 1, None, ""),
        ("train/cat.1.jpg", 2, "link_not_followed", "symbolic link inside a zip"),
    ]
    assert entries[0].member is not None and entries[0].member.name == "train/cat.0.jpg"


def test_open_source_tells_a_folder_a_file_and_nothing_apart(tmp_path):
    assert isinstance(open_source(tmp_path), FolderSource)
    assert FolderSource(tmp_path / ".").root == tmp_path.resolve()
    (tmp_path / "a.zip").write_bytes(b"")
    assert isinstance(open_source(tmp_path / "a.zip"), ZipSource)
    with pytest.raises(DataError, match=r"missing: not found \(put the archive or its extracted folder there\)$"):
        open_source(tmp_path / "missing")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(DataError, match=r"pipe: neither a folder nor a zip archive$"):
        open_source(tmp_path / "pipe")


# --------------------------------------------------------------------------- issue 20: what a listing cannot follow


def test_links_that_lead_nowhere_or_in_a_loop_and_a_file_gone_meanwhile(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    (root / "dangling.jpg").symlink_to(tmp_path / "missing.jpg")  # outside, and missing: broken first
    (root / "loop.jpg").symlink_to(root / "loop.jpg")
    source = FolderSource(root)
    found = {entry.name: (entry.problem, entry.detail) for entry in source.entries()}
    loop = (
        "link loop" if sys.version_info < (3, 13) else "Too many levels of symbolic links"
    )  # RuntimeError before 3.13
    assert found == {
        "dangling.jpg": ("link_not_followed", "broken link: No such file or directory"),
        "loop.jpg": ("link_not_followed", f"broken link: {loop}"),
    }
    # a file listed, then removed before its stat (made to happen: the entry of a name that is gone)
    assert source._entry(root / "gone.jpg") == Entry(
        "gone.jpg", problem="link_not_followed", detail="broken link: No such file or directory"
    )


def deep_folder(root, levels: int) -> int:
    """Make `levels` nested folders of 250-character names below `root` (by descriptor: their paths pass
    the system's 4096-byte limit); return a descriptor of the deepest."""
    descriptor = os.open(root, os.O_RDONLY)
    for _ in range(levels):
        os.mkdir("d" * 250, dir_fd=descriptor)
        inner = os.open("d" * 250, os.O_RDONLY, dir_fd=descriptor)
        os.close(descriptor)
        descriptor = inner
    return descriptor


def test_a_folder_or_file_whose_path_is_too_long_is_reported_and_the_rest_listed(tmp_path):
    """Paths the system refuses (more than 4096 bytes): the folder is an unreadable_folder entry, the file
    an unreadable_entry one, each with the system's reason, and the folders after them are still listed."""
    root = tmp_path / "src"
    (root / "a").mkdir(parents=True)
    (root / "a/cat.0.jpg").write_bytes(b"cat")
    levels = (4095 - len(str(root))) // 251  # the deepest folder's path: under 4096 bytes, by less than 251
    descriptor = deep_folder(root, levels)
    os.mkdir("e" * 250, dir_fd=descriptor)  # its path is too long to be listed
    os.close(os.open("c" * 250, os.O_WRONLY | os.O_CREAT, dir_fd=descriptor))  # too long to be looked at
    os.close(descriptor)
    deep = "/".join(["d" * 250] * levels)
    found = {entry.name: (entry.problem, entry.detail) for entry in FolderSource(root).entries()}
    assert found == {
        "a/cat.0.jpg": (None, ""),
        f"{deep}/{'c' * 250}": ("unreadable_entry", "OSError: File name too long"),
        f"{deep}/{'e' * 250}/": ("unreadable_folder", "OSError: File name too long"),
    }


def test_a_broken_link_to_outside_and_a_link_loop_are_broken_links(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    (root / "gone.jpg").symlink_to(tmp_path / "missing.jpg")  # would point outside, if it pointed anywhere
    (root / "loop.jpg").symlink_to(root / "loop.jpg")
    found = {entry.name: (entry.problem, entry.detail) for entry in FolderSource(root).entries()}
    loop = "link loop" if sys.version_info < (3, 13) else "Too many levels of symbolic links"  # RuntimeError before
    assert found == {
        "gone.jpg": ("link_not_followed", "broken link: No such file or directory"),
        "loop.jpg": ("link_not_followed", f"broken link: {loop}"),
    }
