"""stages/train.py's outputs checked against each other and against hand-written expectations: the
summary line against the history file, the history's number format, the metrics' rounding."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from catsdogs.data.images import Preprocessing
from catsdogs.neuron.fit import fit
from catsdogs.pipeline.config import TrainParams
from catsdogs.pipeline.npz_files import load_npz, save_npz
from stages.train import main, train
from tests.conftest import write_params
from tests.test_train import PATHS, write_features

ARGUMENTS = [word for key, path in PATHS.items() for word in (f"--{key.replace('_', '-')}", path)]


def rows() -> list[dict[str, str]]:
    with open(PATHS["history"], newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_summary_line_is_the_last_history_row(in_tmp, capsys):
    write_features()
    write_params(in_tmp / "p.yaml", train={"epochs": 4, "lr": 0.5})
    main(["--params", "p.yaml", *ARGUMENTS])
    last = rows()[-1]
    assert capsys.readouterr().out == (
        f"train: 4 epochs, kept epoch 4, train loss {float(last['train_loss']):.6f} accuracy "
        f"{float(last['train_accuracy']):.4f}, valid loss {float(last['valid_loss']):.6f} accuracy "
        f"{float(last['valid_accuracy']):.4f}\n"
    )


def test_the_history_has_8_significant_digits_and_the_metrics_are_its_kept_row_rounded(in_tmp):
    write_features()
    write_params(in_tmp / "p.yaml", train={"epochs": 3, "lr": 0.5, "batch_size": 8})
    main(["--params", "p.yaml", *ARGUMENTS])
    history = rows()
    assert [row["epoch"] for row in history] == ["0", "1", "2", "3"]
    for row in history:
        for key in ("train_loss", "valid_loss"):
            digits = re.sub(r"^0\.0*|\.|e.*$", "", row[key])
            assert len(digits) <= 8, row[key]
    assert any(len(re.sub(r"^0\.0*|\.", "", row["train_loss"])) == 8 for row in history)  # not fewer
    metrics = json.loads(Path(PATHS["metrics"]).read_text())
    assert metrics == {
        "train_loss": round(float(history[-1]["train_loss"]), 8),
        "train_accuracy": round(float(history[-1]["train_accuracy"]), 6),
        "epoch": 3,
    }
    assert Path(PATHS["metrics"]).read_text().startswith('{\n  "train_loss": ')


def test_help_names_the_stage_and_says_what_it_does(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: python -m stages.train ")
    assert (
        "Train the single neuron on the training features (gradient descent, full-batch by default), scoring the "
        "validation features every epoch. Writes the weights, the per-epoch history and the training metrics."
    ) in text


def test_the_progress_bar_is_shown_by_default_and_not_when_asked(in_tmp, capsys):
    write_features()
    params = TrainParams(epochs=3, lr=0.5)
    train(params, **PATHS)
    assert "train: 100%" in capsys.readouterr().err
    train(params, progress=False, **PATHS)
    assert capsys.readouterr().err == ""


def test_pixel_features_train_with_the_records_pixel_scale(in_tmp):
    """8 rows of 4 x 4 x 3 pixel features: fewer rows than a quarter of the features, so fit may take
    the dual, which needs the pixel scale to compute X X^T exactly; the weights are those of the run
    with the record's pixel scale (bit for bit), which differ from the run without it in their last bits."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (12, 48))
    X, y = (pixels / np.float32(255)).astype(np.float32), (pixels[:, 0] > 127).astype(np.uint8)
    save_npz("in/train.npz", X=X[:8], y=y[:8])
    save_npz("in/valid.npz", X=X[8:], y=y[8:])
    Preprocessing(image_size=4, draft=True, pixel_scale=255.0).save("in/preprocessing.json")
    params = TrainParams(epochs=30, lr=0.5)
    train(params, progress=False, **PATHS)
    W = load_npz(PATHS["model"], ("W",))["W"]
    with_scale = fit(X[:8], y[:8], X[8:], y[8:], params, progress=False, pixel_scale=255.0)[0]
    without = fit(X[:8], y[:8], X[8:], y[8:], params, progress=False, pixel_scale=None)[0]
    assert not np.array_equal(with_scale, without)  # else this test could not tell them apart
    np.testing.assert_array_equal(W, with_scale)


def test_accuracies_keep_6_decimals_and_tiny_losses_their_exponent(in_tmp):
    """7 training rows: accuracies like 6/7 = 0.857142857... are kept to 6 decimals in the metrics; a
    cross-entropy near 1e-6 is written as 1e-06-style numbers (lower-case e, as Python writes them)."""
    rng = np.random.default_rng(0)
    X = rng.random((12, 12), dtype=np.float32)
    y = (X[:, 0] > 0.5).astype(np.uint8)
    y[0] = 1 - y[0]  # one row the neuron gets wrong for a while: accuracy 6/7
    save_npz("in/train.npz", X=X[:7], y=y[:7])
    save_npz("in/valid.npz", X=X[7:], y=y[7:])
    Preprocessing(image_size=2, draft=True, pixel_scale=255.0).save("in/preprocessing.json")
    train(TrainParams(epochs=1, lr=0.5), progress=False, **PATHS)
    accuracy = float(rows()[-1]["train_accuracy"])
    assert json.loads(Path(PATHS["metrics"]).read_text())["train_accuracy"] == round(accuracy, 6)
    assert round(accuracy, 6) != round(accuracy, 7)
    y[0] = 1 - y[0]
    save_npz("in/train.npz", X=X[:7] * 4 - 2, y=y[:7])  # separable: the loss falls below 1e-4
    train(TrainParams(epochs=300, lr=50, loss="cross_entropy"), progress=False, **PATHS)
    text = Path(PATHS["history"]).read_text()
    assert re.search(r",\d\.\d*e-\d\d,", text) and "E" not in text
