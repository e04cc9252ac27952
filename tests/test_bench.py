"""Smoke tests of the benchmark scripts (bench/): each runs on tiny inputs so that it cannot rot.
They check that the scripts run and report, not the speed (the benchmarks themselves do that)."""

import numpy as np
import pytest

from bench import decode, epoch, full_size, incremental, memory_disk, run_all, stage_decode, time_to_accuracy
from bench.archive import ARCHIVE_ENV
from bench.images import kaggle_layout
from catsdogs.pipeline.config import TrainParams


def test_kaggle_layout_is_the_embedded_set_and_reuses_bigger_sets(in_tmp):
    from catsdogs.data.synthetic import write_synthetic_dataset

    small = kaggle_layout(4)
    assert [p.name for p in small] == ["cat.0.jpg", "cat.1.jpg", "dog.0.jpg", "dog.1.jpg"]
    embedded = write_synthetic_dataset(in_tmp / "embedded", 2, seed=0, progress=False)
    assert [p.read_bytes() for p in small] == [p.read_bytes() for p in embedded]
    linked = kaggle_layout(2)  # a smaller set takes the files of the bigger one
    assert linked[0].stat().st_ino == small[0].stat().st_ino


@pytest.mark.parametrize("small_set", [5000, 2])  # 4 images as a small set (rounds) and as a large one (slices)
def test_decode_bench(in_tmp, monkeypatch, small_set):
    monkeypatch.setattr(decode, "SMALL_SET", small_set)
    monkeypatch.setattr(decode, "SLICES", 2)
    text = decode.run((4,), repeats=1)
    assert "straightforward" in text and "output identical to jobs=1: True" in text and "draft vs full decode" in text
    assert ("draft=false, jobs=1" in text) == (small_set == 5000)


def test_epoch_bench():
    text = epoch.run(rows=40, valid_rows=8, repeats=2)
    assert "plain float64 loop" in text and "bound:" in text


def test_time_to_accuracy_bench(in_tmp, monkeypatch):
    monkeypatch.setattr(time_to_accuracy, "ARTICLE", TrainParams(lr=0.003, epochs=30))
    monkeypatch.setattr(time_to_accuracy, "RECIPE", TrainParams(lr=0.02, epochs=10, momentum=0.9, early_stopping=3))
    text = time_to_accuracy.run((10,))
    assert "article recipe" in text and "ours: lr=0.02, epochs=10, momentum=0.9, early_stopping=3" in text


def test_sklearn_part_of_time_to_accuracy():
    rng = np.random.default_rng(0)
    data = {"X": rng.random((20, 5), dtype=np.float32), "y": np.arange(20) % 2}
    result = time_to_accuracy.sklearn_fit(data, data, 1.0)
    assert 0 <= result["accuracy"] <= 1 and result["seconds"] > 0


def test_memory_disk_bench(in_tmp):
    text = memory_disk.run(8)
    assert "peak RSS" in text and "| train |" in text and "x its float32 matrix" in text and "x smaller" in text


def test_incremental_bench(in_tmp):
    text = incremental.run(epochs=2, n_per_class=4)
    assert "none | met" in text and "train, evaluate | image stages not rerun: met" in text


def test_run_all_writes_results(in_tmp, monkeypatch):
    monkeypatch.setattr(run_all, "QUICK", {"decode": lambda: "### A", "epoch": lambda: "### B"})
    run_all.main(["--quick", "--only", "epoch", "--out", "results.md"])
    text = (in_tmp / "results.md").read_text()
    assert "### B" in text and "### A" not in text and "Machine at the start" in text and "--quick" in text


@pytest.mark.parametrize("args", [["--quick"], ["--only", "epoch"]])
def test_quick_or_partial_run_leaves_the_committed_results_alone(in_tmp, monkeypatch, args):
    monkeypatch.setattr(run_all, "QUICK", {"decode": lambda: "### A", "epoch": lambda: "### B"})
    monkeypatch.setattr(run_all, "FULL", {"decode": lambda: "### A", "epoch": lambda: "### B"})
    (in_tmp / "bench").mkdir()
    (in_tmp / "bench/RESULTS.md").write_text("the record")
    run_all.main(args)
    assert (in_tmp / "bench/RESULTS.md").read_text() == "the record"
    assert "### B" in (in_tmp / "bench/.cache/RESULTS-partial.md").read_text()
    run_all.main([])  # the full set writes the record
    assert "### A" in (in_tmp / "bench/RESULTS.md").read_text()


def test_make_kaggle_archive_writes_the_kaggle_layout(in_tmp):
    import zipfile

    from bench.make_kaggle_archive import main
    from catsdogs.data.synthetic import photo_jpeg

    main([str(in_tmp / "train.zip"), "--n-per-class", "2", "--jobs", "1"])
    with zipfile.ZipFile(in_tmp / "train.zip") as archive:
        assert sorted(archive.namelist()) == [
            "train/cat.0.jpg",
            "train/cat.1.jpg",
            "train/dog.0.jpg",
            "train/dog.1.jpg",
        ]
        assert archive.read("train/dog.1.jpg") == photo_jpeg(0, 1, 0)  # the one encoder of synthetic photos


@pytest.fixture
def tiny_archive(in_tmp, monkeypatch):
    """bench/archive.py's project built from a 24-photo Kaggle-layout archive."""
    from bench.make_kaggle_archive import main

    main([str(in_tmp / "tiny.zip"), "--n-per-class", "12", "--jobs", "1"])
    monkeypatch.setenv(ARCHIVE_ENV, str(in_tmp / "tiny.zip"))
    return in_tmp


def test_full_size_bench(tiny_archive, monkeypatch):
    monkeypatch.setattr(full_size, "ARTICLE", TrainParams(lr=0.003, epochs=20))
    recipes = {
        "momentum": TrainParams(lr=0.02, epochs=5, momentum=0.9),
        "adam": TrainParams(lr=0.001, epochs=5, loss="cross_entropy", optimizer="adam"),
        "lbfgs": TrainParams(epochs=50, loss="cross_entropy", optimizer="lbfgs"),
    }
    monkeypatch.setattr(full_size, "RECIPES", recipes)
    text = full_size.run(rounds=1)
    assert "article recipe" in text and "lbfgs: epochs=50, loss=cross_entropy, optimizer=lbfgs, l2 = 1 / (C m)" in text
    assert "scikit-learn LogisticRegression(C=0.003)" in text and "lbfgs / scikit-learn, medians:" in text
    optimum = tiny_archive / f"bench/.cache/archive-{(tiny_archive / 'tiny.zip').stat().st_size}/optimum-C0.003.npz"
    assert optimum.exists()


def test_stage_decode_bench(tiny_archive):
    text = stage_decode.run(rounds=1)
    assert "plain Pillow loop" in text and "jobs: 1" in text and "jobs: 0" in text
    assert "Output bytes the same for jobs 1 and 0: True; the same as the archive project's caches: True" in text
