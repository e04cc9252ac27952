"""Train's live progress (stages.train.LiveProgress): the history and metrics rewritten while it runs,
each rewrite a prefix of the final history, and the final files the same bytes as without rewrites."""

import csv
import errno
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import stages.train
from bench import live_progress
from catsdogs.errors import ParamError
from catsdogs.pipeline.config import TrainParams
from stages.train import LiveProgress, train
from tests.test_train import PATHS, write_features


def rewrite_snapshots(monkeypatch, folder: Path) -> list[tuple[str, dict]]:
    """Make every rewrite of train's results also keep a copy of (history text, metrics) as written."""
    snapshots = []
    write_results = stages.train.write_results

    def keeping(frame, params, history, metrics):
        write_results(frame, params, history, metrics)
        snapshots.append((Path(history).read_text(), json.loads(Path(metrics).read_text())))

    monkeypatch.setattr(stages.train, "write_results", keeping)
    return snapshots


def test_rewrites_are_prefixes_of_the_final_history_and_change_no_final_byte(in_tmp, monkeypatch):
    write_features()
    params = TrainParams(lr=0.5, epochs=30)
    train(params, progress=False, live_interval=None, **PATHS)  # the final write only, as before live progress
    before = {name: Path(PATHS[name]).read_bytes() for name in ("model", "history", "metrics")}
    shutil.rmtree("out")
    snapshots = rewrite_snapshots(monkeypatch, in_tmp)
    train(params, progress=False, live_interval=0.0, **PATHS)  # a rewrite after every epoch
    assert {name: Path(PATHS[name]).read_bytes() for name in before} == before
    final_lines = before["history"].decode().splitlines()
    assert len(snapshots) == 31 + 1  # epochs 0 ... 30 while running, then the final write
    for epoch, (history, metrics) in enumerate(snapshots[:-1]):
        lines = history.splitlines()
        assert lines == final_lines[: epoch + 2]  # header and rows 0 ... epoch, as they end up
        last = next(csv.DictReader(lines[-1:], fieldnames=lines[0].split(",")))
        assert metrics == {
            "train_loss": pytest.approx(float(last["train_loss"]), rel=1e-7),
            "train_accuracy": pytest.approx(float(last["train_accuracy"])),
            "epoch": epoch,
        }


def test_a_rewrite_at_the_first_epoch_then_once_per_interval(in_tmp):
    ticks = iter([0.0, 1.0, 4.9, 5.0, 5.1, 9.9, 10.2, 30.0])  # the clock at each epoch
    live = LiveProgress(
        TrainParams(epochs=7), in_tmp / "h.csv", in_tmp / "m.json", interval=5.0, clock=lambda: next(ticks)
    )
    written = []
    for epoch in range(8):
        live(epoch, np.array([epoch, 1.0 / (epoch + 1), 1.0, 0.5, 0.5]))
        written.append(json.loads((in_tmp / "m.json").read_text())["epoch"])
    assert written == [0, 0, 0, 3, 3, 3, 6, 7]
    assert live.writes == 4
    assert not list(in_tmp.glob(".tmp-*"))  # every rewrite renamed into place


def test_early_stopping_shows_the_best_epoch_so_far(in_tmp):
    live = LiveProgress(TrainParams(epochs=9, early_stopping=5), in_tmp / "h.csv", in_tmp / "m.json", interval=0.0)
    for epoch, valid_loss in enumerate([0.9, 0.5, 0.7, 0.8]):
        live(epoch, np.array([epoch, 0.1 * (4 - epoch), valid_loss, 0.5, 0.5]))
    assert json.loads((in_tmp / "m.json").read_text())["epoch"] == 1  # kept so far: the lowest valid loss


def test_a_failed_run_leaves_no_progress_files_and_no_warning(in_tmp):
    write_features()
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ParamError, match="diverge"):
        warnings.simplefilter("always")
        train(TrainParams(lr=10.0, l2=1.0, epochs=300), progress=False, live_interval=0.0, **PATHS)
    assert not any(Path("out").glob("*"))
    assert [str(warning.message) for warning in caught] == []  # the overflow is the project's one line, no warning


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("failing", ["atomic_path", "save_json"])
def test_a_rewrite_that_fails_halfway_leaves_neither_file(in_tmp, monkeypatch, failing):
    """The first rewrite fails on a full disk at the history (atomic_path) or after it, at the metrics
    (save_json): remove() deletes what it wrote and does not stumble on the file it did not write."""
    live = LiveProgress(TrainParams(epochs=3), in_tmp / "h.csv", in_tmp / "m.json", interval=0.0)
    monkeypatch.setattr(stages.train, failing, no_space)
    with pytest.raises(OSError, match="No space left"):
        live(0, np.array([0, 0.5, 0.5, 0.5, 0.5]))
    assert (in_tmp / "h.csv").exists() == (failing == "save_json")
    live.remove()
    assert sorted(in_tmp.rglob("*")) == []


def test_bench_reports_the_cost_and_identical_files(in_tmp, monkeypatch):
    write_features()
    shutil.copy(Path(stages.train.__file__).parents[1] / "dvc.yaml", "dvc.yaml")
    Path("data/prepared").mkdir(parents=True)
    Path("data/features").mkdir(parents=True)
    shutil.copy("in/preprocessing.json", "data/prepared/preprocessing.json")
    for split in ("train", "valid"):
        shutil.copy(f"in/{split}.npz", f"data/features/{split}.npz")
    monkeypatch.setattr(live_progress, "CACHE_DIR", in_tmp / "cache")
    text = live_progress.run(rounds=1, params=TrainParams(lr=0.5, epochs=20))
    assert "bound: 1 rewrites" in text and "<= 2 %: " in text  # a tiny run: met or missed
    assert "the same bytes with and without the rewrites: True" in text
