import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stages.common import save_npz
from stages.evaluate import EvaluateParams, evaluate
from stages.metrics import classification_metrics, roc_curve


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
    save_npz("in/w.npz", W=W, b=np.float32(-5.0), image_size=np.int64(size))
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


@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.2])
def test_evaluate_stage_confusion_pairs_and_threshold(in_tmp, threshold):
    # a random, non-saturating neuron: the labels at `threshold` differ from those at 0.5
    size = 4
    rng = np.random.default_rng(1)
    X = rng.random((60, size * size * 3), dtype=np.float32)
    y = rng.integers(0, 2, 60).astype(np.uint8)
    W = (rng.normal(0, 1, size * size * 3) / 3).astype(np.float32)
    b = np.float32(-float(np.mean(X @ W)))
    save_npz("in/valid.npz", X=X, y=y)
    save_npz("in/w.npz", W=W, b=b, image_size=np.int64(size))
    pd.DataFrame({"epoch": [0, 1], "train_loss": [0.125, 0.1], "valid_loss": [0.125, 0.11],
                  "train_accuracy": [0.5, 0.6], "valid_accuracy": [0.5, 0.55]}).to_csv("in/h.csv", index=False)
    metrics = evaluate(
        EvaluateParams(threshold), model="in/w.npz", valid_features="in/valid.npz", history="in/h.csv",
        metrics="out/m.json", roc="out/roc.csv", confusion="out/c.csv", loss_plot="out/loss.png", weights_plot="out/w.png",
    )
    # the oracle, in float64: P(cat) = sigmoid(X W + b), predicted cat where P(cat) > threshold
    p = 1 / (1 + np.exp(-(X.astype(np.float64) @ W + float(b))))
    predicted = (p > threshold).astype(int)
    assert 0 < np.mean(predicted != (p > 0.5)) or threshold == 0.5  # the threshold matters here
    confusion = pd.read_csv("out/c.csv")
    names = np.array(["dog", "cat"])
    assert confusion.actual.tolist() == names[y].tolist()
    assert confusion.predicted.tolist() == names[predicted].tolist()
    tp, fp = int(np.sum((predicted == 1) & (y == 1))), int(np.sum((predicted == 1) & (y == 0)))
    tn, fn = int(np.sum((predicted == 0) & (y == 0))), int(np.sum((predicted == 0) & (y == 1)))
    assert (metrics["true_positives"], metrics["false_positives"], metrics["true_negatives"],
            metrics["false_negatives"]) == (tp, fp, tn, fn)
    assert metrics["accuracy"] == pytest.approx((tp + tn) / 60, abs=1e-6)
    assert metrics["precision"] == pytest.approx(tp / (tp + fp), abs=1e-6)
    assert metrics["recall"] == pytest.approx(tp / (tp + fn), abs=1e-6)
    assert metrics["mse_loss"] == pytest.approx(np.mean((p - y) ** 2) / 2, abs=1e-6)
    assert metrics["log_loss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)), abs=1e-6)
    assert metrics["roc_auc"] == pytest.approx(pairwise_auc(y, p), abs=1e-6)


def test_metrics_edge_cases_by_hand():
    # no predicted cat: precision 0 (not a division by zero), recall 0, F1 0
    m = classification_metrics(np.array([1, 0, 0]), np.array([-1.0, -2.0, -3.0]))
    assert (m["precision"], m["recall"], m["f1"], m["n_valid"]) == (0.0, 0.0, 0.0, 3)
    # no cat at all: recall 0 by convention, and no AUC (one class)
    m = classification_metrics(np.array([0, 0]), np.array([1.0, -1.0]))
    assert (m["recall"], m["precision"], m["roc_auc"]) == (0.0, 0.0, None)
    # tp == fp: precision 1/2; exactly one cat: AUC defined; values rounded to 6 decimals
    m = classification_metrics(np.array([1, 0, 0]), np.array([2.0, 1.0, -1.0]))
    assert (m["precision"], m["recall"], m["roc_auc"], m["accuracy"]) == (0.5, 1.0, 1.0, 0.666667)
    assert m["f1"] == 0.666667


def test_metrics_threshold_is_applied_to_the_float64_sigmoid():
    # sigmoid(1e-9) is 0.5 + 2.5e-10: a cat in float64, exactly 0.5 (a dog) in float32
    m = classification_metrics(np.array([1]), np.array([1e-9], dtype=np.float32))
    assert m["true_positives"] == 1
