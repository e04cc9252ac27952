import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stages.common import run_cli, save_npz
from stages.images import Preprocessing
from stages.model import save_model
from stages.evaluate import EvaluateParams, evaluate, main
from stages.metrics import classification_metrics, roc_curve
from tests.conftest import write_params


def pairwise_auc(y, scores):
    """P(score of a random positive > score of a random negative), ties counted 1/2."""
    pos, neg = scores[y == 1], scores[y == 0]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


def test_roc_auc_equals_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    z = np.round(rng.normal(size=200) + y, 1)  # rounding makes ties
    metrics = classification_metrics(y, z)
    assert metrics["roc_auc"] == pytest.approx(pairwise_auc(y, z), abs=1e-6)
    fpr, tpr = roc_curve(y, z)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_metrics_of_a_hand_checked_example():
    y = np.array([1, 1, 1, 0, 0])
    z = np.array([2.0, 1.0, -1.0, 0.5, -3.0])  # predicted cat: 1, 1, 0, 1, 0
    m = classification_metrics(y, z)
    assert (m["true_positives"], m["false_positives"], m["true_negatives"], m["false_negatives"]) == (2, 1, 1, 1)
    assert m["accuracy"] == 0.6 and m["precision"] == pytest.approx(2 / 3, abs=1e-6)
    assert m["recall"] == pytest.approx(2 / 3, abs=1e-6) and m["f1"] == pytest.approx(2 / 3, abs=1e-6)
    a = 1 / (1 + np.exp(-z))
    assert m["mse_loss"] == pytest.approx(np.mean((a - y) ** 2) / 2, abs=1e-6)
    assert m["log_loss"] == pytest.approx(-np.mean(y * np.log(a) + (1 - y) * np.log(1 - a)), abs=1e-6)
    assert m["roc_auc"] == pytest.approx(pairwise_auc(y, z), abs=1e-6)


def test_single_class_has_no_auc():
    assert classification_metrics(np.array([1, 1]), np.array([0.3, -0.2]))["roc_auc"] is None


def test_evaluate_stage_writes_metrics_and_plot_files(in_tmp):
    size = 4
    rng = np.random.default_rng(0)
    X = rng.random((30, size * size * 3), dtype=np.float32)
    y = (X[:, 0] > 0.5).astype(np.uint8)
    save_npz("in/valid.npz", X=X, y=y)
    W = np.zeros(size * size * 3, np.float32)
    W[0] = 10.0
    save_model("in/w.npz", W, np.float32(-5.0), Preprocessing(size, True))
    pd.DataFrame({"epoch": [0, 1], "train_loss": [0.125, 0.1], "valid_loss": [0.125, 0.11],
                  "train_accuracy": [0.5, 0.6], "valid_accuracy": [0.5, 0.55]}).to_csv("in/h.csv", index=False)
    metrics = evaluate(
        EvaluateParams(0.5), model="in/w.npz", valid_features="in/valid.npz", history="in/h.csv", metrics="out/m.json",
        roc="out/roc.csv", confusion="out/c.csv", loss_plot="out/loss.png", weights_plot="out/w.png",
    )
    assert metrics["accuracy"] == 1.0 and metrics["roc_auc"] == 1.0
    assert json.loads(open("out/m.json").read()) == metrics
    confusion = pd.read_csv("out/c.csv")
    assert len(confusion) == 30 and set(confusion.actual) == {"cat", "dog"}
    assert list(pd.read_csv("out/roc.csv").columns) == ["fpr", "tpr"]
    for png in ("out/loss.png", "out/w.png"):
        assert Image.open(png).size[0] > 100


def test_evaluate_refuses_weights_that_are_not_finite(in_tmp, capsys):
    """A model file with NaN weights (written by hand: train refuses to) would give NaN metrics; the stage
    stops with exit status 2 before writing any."""
    save_npz("w.npz", W=np.full(12, np.nan, np.float32), b=np.float32(0), **Preprocessing(2, True).arrays())
    save_npz("valid.npz", X=np.zeros((4, 12), np.float32), y=np.array([0, 1, 0, 1], np.uint8))
    write_params(in_tmp / "params.yaml")
    outputs = ["--metrics", "m.json", "--roc", "roc.csv", "--confusion", "c.csv", "--loss-plot", "l.png",
               "--weights-plot", "w.png"]
    with pytest.raises(SystemExit) as exit_status:
        run_cli(main, ["--model", "w.npz", "--valid-features", "valid.npz", "--history", "h.csv", *outputs])
    assert exit_status.value.code == 2
    assert capsys.readouterr().err.endswith(
        "error: w.npz: 12 of the 13 weights (W and b) are not finite numbers (NaN or infinity): the training "
        "diverged; retrain with a lower train.lr (`dvc repro`)\n")
    assert sorted(p.name for p in in_tmp.iterdir()) == ["params.yaml", "valid.npz", "w.npz"]
