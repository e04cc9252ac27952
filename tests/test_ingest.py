"""Tests for stages/ingest.py and catsdogs/data/sources.py: the synthetic default, and real sources (zip and
folder, Kaggle and Microsoft layouts) with every good, unusual and bad file of issue 3."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from catsdogs.data import sources
from catsdogs.data.images import load_image
from catsdogs.data.sources import check_image, detect_layout, kaggle_name, name_problem, unsafe_name
from catsdogs.data.synthetic import write_synthetic_dataset
from catsdogs.errors import DataError, ParamError
from catsdogs.pipeline.config import IngestParams
from catsdogs.pipeline.processes import ordered_map
from stages.ingest import check_source, check_source_resolved, ingest, ingest_source, main, write_report
from tests.conftest import black_png, write_params
from tests.ingest_cases import (
    MAX_PIXELS,
    expected,
    image_cases,
    image_name,
    jpeg,
    write_folder,
    write_zip,
)

LAYOUTS = ("kaggle", "microsoft")


def params(source="synthetic", **changes) -> IngestParams:
    values = dict(source=source, n_per_class=3, seed=0, max_pixels=MAX_PIXELS, jobs=1)
    return IngestParams(**{**values, **changes})


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# --------------------------------------------------------------------------- names and layouts (pure)


@pytest.mark.parametrize(
    "name, unsafe",
    [
        ("train/cat.1.jpg", False),
        ("../cat.1.jpg", True),
        ("train/../../x.jpg", True),
        ("/etc/cat.1.jpg", True),
        ("C:/Users/cat.1.jpg", True),
        ("train/..cat.1.jpg", False),
    ],
)
def test_unsafe_name(name, unsafe):
    assert unsafe_name(name) is unsafe


@pytest.mark.parametrize(
    "name, reason",
    [
        ("__MACOSX/train/cat.1.jpg", "macos_metadata"),
        ("train/._cat.1.jpg", "macos_metadata"),
        ("PetImages/Cat/Thumbs.db", "system_file"),
        ("train/.DS_Store", "system_file"),
        ("../train/cat.1.jpg", "unsafe_path"),
        ("train/cat.1.jpg", None),
    ],
)
def test_name_problem(name, reason):
    assert (name_problem(name) or (None,))[0] == reason


@pytest.mark.parametrize(
    "layout, name, out",
    [
        ("kaggle", "train/cat.12.jpg", "cat.12.jpg"),
        ("kaggle", "Dog.7.JPEG", "dog.7.jpg"),
        ("kaggle", "train/cat.x.jpg", None),
        ("kaggle", "PetImages/Cat/12.jpg", None),
        ("microsoft", "PetImages/Cat/12.jpg", "cat.12.jpg"),
        ("microsoft", "Dog/7.jpg", "dog.7.jpg"),
        ("microsoft", "PetImages/Cow/7.jpg", None),
        ("microsoft", "train/cat.12.jpg", None),
    ],
)
def test_kaggle_name_takes_the_label_from_the_name(layout, name, out):
    assert kaggle_name(layout, name) == out


def test_detect_layout():
    assert detect_layout(["train/cat.1.jpg", "train/Thumbs.db"]) == "kaggle"
    assert detect_layout(["PetImages/Dog/3.jpg", "readme.txt"]) == "microsoft"
    with pytest.raises(DataError, match="both layouts found, as often"):
        detect_layout(["train/cat.1.jpg", "PetImages/Dog/3.jpg"])
    # one odd name does not stop ingest: the layout of most names wins, the other names get no_label
    assert detect_layout(["train/cat.1.jpg", "train/dog.1.jpg", "PetImages/Dog/3.jpg"]) == "kaggle"
    with pytest.raises(DataError, match="accepted layouts: Kaggle's train.zip .* Microsoft's") as err:
        detect_layout(["photos/a.jpg", "photos/b.jpg"])
    assert "photos/a.jpg" in str(err.value)
    with pytest.raises(DataError, match="extract the inner train.zip"):
        detect_layout(["train.zip", "test1.zip", "sampleSubmission.csv"])


def test_ordered_map_keeps_the_order_whatever_the_jobs():
    items = list(range(50))  # more than the window of 4 tasks per worker
    assert list(ordered_map(abs, items, jobs=1)) == list(ordered_map(abs, items, jobs=2))
    assert [result for _, result in ordered_map(str, items, jobs=2)] == [str(i) for i in items]


# --------------------------------------------------------------------------- content (pure)


# (an empty file is found empty while it is copied: test_every_case_gets_its_outcome)
@pytest.mark.parametrize("case", [c for c in image_cases() if c.data], ids=lambda c: f"{c.cls}.{c.number}-{c.outcome}")
def test_check_image_outcome_of_every_case(case, tmp_path):
    (tmp_path / "image").write_bytes(case.data)
    verdict = sources.check_image(tmp_path / "image", MAX_PIXELS)
    assert (verdict[0] if verdict else "keep") == case.outcome


def test_check_image_pixel_bound_is_width_times_height(tmp_path):
    (tmp_path / "image").write_bytes(jpeg(size=(100, 50)))
    assert sources.check_image(tmp_path / "image", 5000) is None
    assert sources.check_image(tmp_path / "image", 4999)[0] == "too_many_pixels"


def test_check_image_refuses_an_image_pillow_only_warns_about_without_its_warning(tmp_path):
    """144 megapixels: Pillow warns (DecompressionBombWarning) below twice its bound; ingest's own outcome,
    too_many_pixels, is all that is reported, no raw warning on the terminal before it."""
    black_png(tmp_path / "image", 12_000, 12_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails here
        assert sources.check_image(tmp_path / "image", MAX_PIXELS)[0] == "too_many_pixels"


# --------------------------------------------------------------------------- params


@pytest.mark.parametrize("value", ["synthetic", "data/external/train.zip", "data/external/PetImages"])
def test_source_accepts_synthetic_or_a_path_under_the_external_folder(value):
    assert check_source(value, Path("data/external")) == value


@pytest.mark.parametrize(
    "value",
    [
        "kaggle",
        "data/external",
        "data/external/../../etc",
        "/tmp/train.zip",
        "",
        3,
        "data/train.zip",
        "data/externals/train.zip",
    ],
)
def test_source_refuses_anything_else(value):
    with pytest.raises(ParamError, match=r"ingest.source = .* expected `synthetic` or a path under data/external/"):
        check_source(value, Path("data/external"))


def test_the_external_folder_comes_from_the_command_line():
    assert check_source("drops/deep/train.zip", Path("drops/deep")) == "drops/deep/train.zip"
    with pytest.raises(ParamError, match=r"a path under drops/deep/ \(e.g. drops/deep/train.zip\)"):
        check_source("data/external/train.zip", Path("drops/deep"))


def test_read_params_checks_each_key(tmp_path):
    assert IngestParams.read(write_params(tmp_path / "p.yaml")).source == "synthetic"
    with pytest.raises(ParamError, match=r"ingest.max_pixels = 0 is out of range"):
        IngestParams.read(write_params(tmp_path / "p.yaml", ingest={"max_pixels": 0}))
    with pytest.raises(ParamError, match=r"ingest.jobs = -1 is out of range"):
        IngestParams.read(write_params(tmp_path / "p.yaml", ingest={"jobs": -1}))


# --------------------------------------------------------------------------- synthetic default


def test_synthetic_output_is_the_generator_output_byte_for_byte(tmp_path):
    report = ingest(params(), tmp_path / "raw", progress=False)
    write_synthetic_dataset(tmp_path / "direct", 3, 0, progress=False)
    assert digests(tmp_path / "raw") == digests(tmp_path / "direct")
    counts = report.counts()
    assert counts["usable"] == {"cat": 3, "dog": 3, "total": 6}
    assert counts["skipped"] == 0 and report.reasons() == {}
    assert not list(tmp_path.glob(".tmp-*"))


# --------------------------------------------------------------------------- real sources


def build(tmp_path: Path, kind: str, layout: str) -> tuple[Path, dict[str, str]]:
    """A source of every case at tmp_path/data/external/..., and its extra traps (entry -> reason)."""
    external = tmp_path / "data/external"
    external.mkdir(parents=True)
    if kind == "zip":
        return external / "source.zip", write_zip(external / "source.zip", layout)
    return external / "source", write_folder(external / "source", layout, outside=tmp_path / "outside")


@pytest.mark.parametrize("kind", ["zip", "folder"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_case_gets_its_outcome(tmp_path, kind, layout):
    source, traps = build(tmp_path, kind, layout)
    outside_before = tree(tmp_path)
    report = ingest(params(str(source)), tmp_path / "data/raw", progress=False)

    kept, skipped = expected(layout)
    skipped.update(traps)
    assert report.layout == layout
    assert {o.entry: o.reason for o in report.skipped} == skipped
    assert sorted(p.name for p in (tmp_path / "data/raw").iterdir()) == report.kept == sorted(kept)
    for name, case in kept.items():
        path = tmp_path / "data/raw" / name
        if case.data[:2] == b"\xff\xd8" or case.data[:4] == b"\x89PNG":  # JPEG, PNG: copied as they are
            assert path.read_bytes() == case.data
        else:  # re-encoded as PNG (sources.keep_image_only); the pixels are checked below
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = load_image(path, 4, draft=True).astype(int)
        # one colour, or (EXIF case) top and bottom colours once the orientation is applied
        for row, color in ((pixels[0], case.colors[0]), (pixels[-1], case.colors[-1])):
            assert np.abs(row - color).max() <= 12, (name, row[0], color)
    counts = report.counts()
    assert counts["usable"] == {"cat": 6, "dog": 4, "total": 10}
    assert counts["skipped"] == len(skipped)
    # nothing written anywhere but data/raw (no ../evil, no /tmp/evil from the zip entries)
    assert tree(tmp_path) - outside_before == {"data/raw"} | {f"data/raw/{name}" for name in kept}
    assert not Path("/tmp/evil/dog.90.jpg").exists()


def test_output_does_not_depend_on_jobs(tmp_path):
    source, _ = build(tmp_path, "zip", "kaggle")
    one = ingest(params(str(source), jobs=1), tmp_path / "one", progress=False)
    two = ingest(params(str(source), jobs=2), tmp_path / "two", progress=False)
    assert one == two
    assert digests(tmp_path / "one") == digests(tmp_path / "two")


def test_zip_entries_too_large_or_unreadable_are_skipped_without_reading(tmp_path, monkeypatch):
    source = tmp_path / "train.zip"
    good = jpeg((1, 2, 3))
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train/cat.0.jpg", jpeg())
        archive.writestr("train/dog.0.jpg", jpeg())
        archive.writestr("train/cat.1.jpg", b"\0" * 5_000_000)  # inflates 5 MB from a few KB
        archive.writestr(zipfile.ZipInfo("train/dog.1.jpg"), good, compress_type=zipfile.ZIP_STORED)
    blob = source.read_bytes()
    start = blob.index(good)
    source.write_bytes(blob[: start + 300] + b"\xff\x00" + blob[start + 302 :])  # CRC no longer matches
    monkeypatch.setattr(sources, "MAX_FILE_BYTES", 1_000_000)
    report = ingest(params(str(source)), tmp_path / "raw", progress=False)
    reasons = {o.entry: o.reason for o in report.skipped}
    assert reasons == {"train/cat.1.jpg": "too_large", "train/dog.1.jpg": "unreadable_entry"}
    assert report.kept == ["cat.0.jpg", "dog.0.jpg"]


def test_links_inside_the_source_are_followed(tmp_path):
    root = tmp_path / "train"
    root.mkdir()
    (root / "cat.0.jpg").write_bytes(jpeg())
    (root / "dog.0.jpg").write_bytes(jpeg())
    (root / "cat.1.jpg").symlink_to(root / "cat.0.jpg")
    report = ingest(params(str(root)), tmp_path / "raw", progress=False)
    assert report.kept == ["cat.0.jpg", "cat.1.jpg", "dog.0.jpg"] and report.skipped == []


def test_special_files_are_not_read(tmp_path):
    root = tmp_path / "train"
    root.mkdir()
    (root / "cat.0.jpg").write_bytes(jpeg())
    (root / "dog.0.jpg").write_bytes(jpeg())
    os.mkfifo(root / "dog.1.jpg")  # reading it would block forever
    report = ingest(params(str(root)), tmp_path / "raw", progress=False)
    assert [(o.entry, o.reason) for o in report.skipped] == [("dog.1.jpg", "not_a_file")]


def test_a_class_without_usable_image_is_an_error_and_keeps_the_old_output(tmp_path):
    source = tmp_path / "train.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("train/cat.0.jpg", jpeg())
        archive.writestr("train/dog.0.jpg", b"")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/cat.5.jpg").write_bytes(b"previous run")
    with pytest.raises(DataError, match=r"no usable dog image; 1 usable images .* 1 skipped \(1 empty\)"):
        ingest(params(str(source)), tmp_path / "raw", progress=False)
    assert tree(tmp_path / "raw") == {"cat.5.jpg"}
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize(
    "make, message",
    [(lambda path: None, "not found"), (lambda path: path.write_bytes(b"not a zip"), "neither a folder nor a zip")],
)
def test_source_that_is_no_zip_nor_folder_is_an_error(tmp_path, make, message):
    make(tmp_path / "train.zip")
    with pytest.raises(DataError, match=message):
        ingest(params(str(tmp_path / "train.zip")), tmp_path / "raw", progress=False)


def test_report_files(tmp_path):
    source, traps = build(tmp_path, "zip", "microsoft")
    report = ingest(params(str(source)), tmp_path / "raw", progress=False)
    write_report(report, tmp_path / "ingest.json", tmp_path / "skipped.csv")
    counts = json.loads((tmp_path / "ingest.json").read_text())
    assert counts == report.counts() == {"usable": {"cat": 6, "dog": 4, "total": 10}, "skipped": 15}
    assert report.reasons()["too_many_pixels"] == 2 and report.reasons()["unsafe_path"] == 2
    with open(tmp_path / "skipped.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["entry"] for row in rows] == [o.entry for o in report.skipped]
    assert [int(row["index"]) for row in rows] == [o.index for o in report.skipped]
    empty = next(row for row in rows if row["entry"] == image_name("microsoft", image_cases()[10]))
    assert empty["reason"] == "empty" and empty["detail"] == "0 bytes"
    assert report.summary(str(source)).startswith("10 usable images (6 cats, 4 dogs), 15 skipped (2 unsafe_path")


def test_main_prints_one_summary_line_and_shows_progress(in_tmp, capfd):
    source, _ = build(in_tmp, "zip", "kaggle")
    write_params(in_tmp / "params.yaml", ingest={"source": "data/external/source.zip", "max_pixels": MAX_PIXELS})
    main(
        [
            "--params",
            "params.yaml",
            "--external",
            "data/external",
            "--raw",
            "data/raw",
            "--metrics",
            "metrics/ingest.json",
            "--skipped",
            "metrics/ingest_skipped.csv",
        ]
    )
    out, err = capfd.readouterr()
    assert out.splitlines() == [
        "ingest: 10 usable images (6 cats, 4 dogs), 15 skipped (2 unsafe_path, 1 link_not_followed, "
        "2 macos_metadata, 1 system_file, 1 no_label, 2 duplicate, 1 empty, 1 not_an_image, 2 too_many_pixels, "
        "1 truncated, 1 corrupt) from data/external/source.zip (kaggle layout); skipped files listed in metrics/ingest_skipped.csv"
    ]
    assert "ingest: data/external/source.zip" in err and "16/16" in err  # the 16 files that needed decoding
    assert json.loads(Path("metrics/ingest.json").read_text())["usable"]["total"] == 10
    assert len(Path("metrics/ingest_skipped.csv").read_text().splitlines()) == 1 + 15


def test_main_checks_the_source_against_the_external_folder_before_any_work(in_tmp, capsys):
    write_params(in_tmp / "params.yaml", ingest={"source": "elsewhere/train.zip"})
    with pytest.raises(ParamError, match=r"ingest.source = 'elsewhere/train.zip' is not allowed"):
        main(["--external", "data/external", "--raw", "raw", "--metrics", "m.json", "--skipped", "s.csv"])
    assert sorted(p.name for p in in_tmp.iterdir()) == ["params.yaml"]
    with pytest.raises(SystemExit):
        main(["--raw", "raw"])  # every path is required: no default path in the code
    assert "required: --external, --metrics, --skipped" in capsys.readouterr().err


# --------------------------------------------------------------------------- issue 20: each check word for word


def test_a_windows_style_source_path_is_read_with_slashes():
    assert check_source("data\\external\\train.zip", Path("data/external")) == "data\\external\\train.zip"


def test_a_source_behind_a_link_out_of_the_external_folder_is_refused_word_for_word(tmp_path):
    external, elsewhere = tmp_path / "external", tmp_path / "elsewhere"
    (external / "photos").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "train.zip").write_bytes(b"zip")
    (external / "photos" / "train.zip").write_bytes(b"zip")
    (external / "out").symlink_to(elsewhere)
    assert check_source_resolved(str(external / "photos" / "train.zip"), external) is None
    assert check_source_resolved(str(external / "missing.zip"), external) is None  # open_source says it
    assert check_source_resolved(str(external / "out" / "missing.zip"), external) is None
    with pytest.raises(ParamError) as refused:
        check_source_resolved(str(external / "out" / "train.zip"), external)
    assert str(refused.value) == (
        f"params.yaml: ingest.source = {external}/out/train.zip leads through a link to {elsewhere}/train.zip, "
        f"outside {external}/; DVC only tracks what lies inside it: move or copy the source into {external}/ (no link)"
    )
    with pytest.raises(ParamError, match="leads through a link to"):  # no external folder: nothing is inside it
        check_source_resolved(str(elsewhere / "train.zip"), tmp_path / "missing")


def test_main_refuses_a_linked_source_and_names_an_untracked_one_in_an_experiment_copy(in_tmp, monkeypatch):
    (in_tmp / "data/external").mkdir(parents=True)
    (in_tmp / "elsewhere").mkdir()
    (in_tmp / "elsewhere/train.zip").write_bytes(b"zip")
    (in_tmp / "data/external/out").symlink_to(in_tmp / "elsewhere")
    arguments = ["--external", "data/external", "--raw", "raw", "--metrics", "m.json", "--skipped", "s.csv"]
    write_params(in_tmp / "params.yaml", ingest={"source": "data/external/out/train.zip", "jobs": 1})
    with pytest.raises(ParamError, match=r"^params.yaml: ingest.source = data/external/out/train.zip leads through"):
        main(arguments)
    write_params(in_tmp / "params.yaml", ingest={"source": "data/external/train.zip", "jobs": 1})
    with pytest.raises(DataError, match=r"^data/external/train.zip: not found"):  # outside an experiment copy
        main(arguments)
    monkeypatch.setattr("stages.ingest.in_temporary_copy", lambda: True)
    with pytest.raises(DataError, match=r"^data/external/train.zip: not in this queued or temporary experiment"):
        main(arguments)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["data", "elsewhere", "params.yaml"]


def two_photo_folder(folder: Path, labels=("cat", "dog")) -> Path:
    folder.mkdir()
    for i, label in enumerate(labels):
        (folder / f"{label}.{i}.jpg").write_bytes(jpeg())
    return folder


def test_ingest_shows_a_progress_bar_by_default_and_none_when_asked(tmp_path, capsys):
    source = two_photo_folder(tmp_path / "photos")
    ingest(params(str(source)), tmp_path / "raw")
    err = capsys.readouterr().err
    assert f"ingest: {source}: 100%" in err and "| 2/2 [" in err and "file/s]" in err
    ingest(params(), tmp_path / "raw")  # synthetic: 3 images per class
    err = capsys.readouterr().err
    assert "ingest: synthetic: 100%" in err and "| 6/6 [" in err and "img/s]" in err
    ingest(params(str(source)), tmp_path / "raw", progress=False)
    ingest(params(), tmp_path / "raw", progress=False)
    assert capsys.readouterr().err == ""


def test_ingest_replaces_a_previous_output_and_names_the_missing_class_word_for_word(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/cat.9.jpg").write_bytes(b"previous run")
    ingest(params(str(two_photo_folder(tmp_path / "photos"))), tmp_path / "raw", progress=False)
    assert tree(tmp_path / "raw") == {"cat.0.jpg", "dog.1.jpg"}
    dogs = two_photo_folder(tmp_path / "dogs", labels=("dog",))
    with pytest.raises(DataError) as refused:
        ingest(params(str(dogs)), tmp_path / "raw", progress=False)
    assert str(refused.value) == (
        f"{dogs}: no usable cat image; 1 usable images (0 cats, 1 dogs), 0 skipped from {dogs} (kaggle layout)"
    )


def test_a_skipped_copy_removed_meanwhile_does_not_fail_the_clean_up(tmp_path, monkeypatch):
    """The copy of a file found unusable is removed; if something else removed it first (made to happen
    here: the check deletes it), the entry is still skipped with its reason, and ingest goes on."""

    def check_and_lose(path, max_pixels):
        if path.name != "cat.0.jpg":
            return check_image(path, max_pixels)
        path.unlink()
        return ("corrupt", "removed meanwhile")

    monkeypatch.setattr("stages.ingest.check_image", check_and_lose)
    source = two_photo_folder(tmp_path / "photos", labels=("cat", "dog", "cat"))
    report = ingest(params(str(source)), tmp_path / "raw", progress=False)
    assert [(o.entry, o.reason, o.detail) for o in report.skipped] == [("cat.0.jpg", "corrupt", "removed meanwhile")]
    assert report.kept == ["cat.2.jpg", "dog.1.jpg"] and tree(tmp_path / "raw") == {"cat.2.jpg", "dog.1.jpg"}


def test_ingest_source_shows_its_progress_bar_by_default(tmp_path, capsys):
    source = two_photo_folder(tmp_path / "photos")
    (tmp_path / "out").mkdir()
    ingest_source(source, tmp_path / "out", MAX_PIXELS, jobs=1)
    assert f"ingest: {source}: 100%" in capsys.readouterr().err
