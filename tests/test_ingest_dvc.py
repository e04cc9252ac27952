"""End to end with real data: the real `dvc` CLI in a temporary git repository, on a zip archive and
a folder holding every case of issue 3, dropped in data/external/ as a user would."""

import csv
import json
import zipfile

from tests.ingest_cases import BLUE, MAX_PIXELS, expected, jpeg, write_folder, write_zip
from tests.test_pipeline_dvc import STAGES, dvc, make_project, set_param, stages_run

REAL = {"ingest": {"source": "data/external/train.zip", "max_pixels": MAX_PIXELS}, "train": {"epochs": 20}}


def skipped_reasons(repo):
    with open(repo / "metrics/ingest_skipped.csv", newline="") as handle:
        return {row["entry"]: row["reason"] for row in csv.DictReader(handle)}


def test_dvc_repro_on_real_archives(tmp_path):
    (tmp_path / "project").mkdir()
    repo = make_project(tmp_path / "project", REAL)
    archive = repo / "data/external/train.zip"
    traps = write_zip(archive, "kaggle")

    first = dvc(repo, "repro")
    assert stages_run(first.stdout) == list(STAGES)
    assert "ingest: 10 usable images (6 cats, 4 dogs), 15 skipped" in first.stdout
    kept, skipped = expected("kaggle")
    assert sorted(p.name for p in (repo / "data/raw").iterdir()) == sorted(kept)
    assert skipped_reasons(repo) == {**skipped, **traps}
    counts = json.loads((repo / "metrics/ingest.json").read_text())
    assert counts == {"usable": {"cat": 6, "dog": 4, "total": 10}, "skipped": 15}
    assert not (repo / "data/evil").exists() and not (repo.parent / "evil").exists()
    assert "ingest.json" in dvc(repo, "metrics", "show").stdout

    assert stages_run(dvc(repo, "repro").stdout) == []  # same archive: nothing to do

    with zipfile.ZipFile(archive, "a") as handle:  # the user replaces the archive with a larger one
        handle.writestr("train/dog.50.jpg", jpeg(BLUE))
    third = dvc(repo, "repro")
    assert stages_run(third.stdout)[:2] == ["ingest", "resize_split"]
    assert "(6 cats, 5 dogs)" in third.stdout

    write_folder(repo / "data/external/PetImages", "microsoft", outside=tmp_path / "outside")
    set_param(repo, "ingest", "source", "data/external/PetImages")
    fourth = dvc(repo, "repro")
    assert stages_run(fourth.stdout)[:1] == ["ingest"]
    assert "(microsoft layout)" in fourth.stdout
    assert stages_run(dvc(repo, "repro").stdout) == []

    set_param(repo, "ingest", "source", "data/external/photos.zip")
    with zipfile.ZipFile(repo / "data/external/photos.zip", "w") as handle:
        handle.writestr("pics/a.jpg", jpeg())
    before = {p.name: p.read_bytes() for p in (repo / "data/raw").iterdir()}
    failed = dvc(repo, "repro", check=False)
    assert failed.returncode != 0
    assert "no cat/dog image names found" in failed.stderr and "accepted layouts" in failed.stderr
    # DVC removed the stage's outputs before running it (README: what a failed ingest leaves) ...
    assert not (repo / "data/raw").exists()
    # ... and the last good ones, those dvc.lock records, come back from DVC's cache
    dvc(repo, "checkout", "data/raw")
    assert {p.name: p.read_bytes() for p in (repo / "data/raw").iterdir()} == before
