import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stages.common import DataError, run_cli, save_npz
from stages.evaluate import EvaluateParams, evaluate, main
from stages.images import Preprocessing, to_features
from stages.metrics import classification_metrics, most_confident_mistakes, roc_curve
from stages.model import save_model
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


OUTPUTS = dict(
    metrics="out/m.json",
    roc="out/roc.csv",
    confusion="out/c.csv",
    loss_plot="out/loss.png",
    weights_plot="out/w.png",
    roc_plot="out/roc.png",
    confusion_plot="out/confusion.png",
    mistakes_plot="out/mistakes.png",
)
PNGS = ("loss_plot", "weights_plot", "roc_plot", "confusion_plot", "mistakes_plot")


def run_evaluate(X, y, W, b, size, threshold=0.5):
    """evaluate on validation features X (m, n), labels y (m,), with the model W (n,), b; names v0.jpg, v1.jpg..."""
    save_npz("in/valid.npz", X=X, y=y, names=np.array([f"v{i}.jpg" for i in range(len(y))]))
    save_model("in/w.npz", W, np.float32(b), Preprocessing(size, True))
    pd.DataFrame(
        {
            "epoch": [0, 1],
            "train_loss": [0.125, 0.1],
            "valid_loss": [0.125, 0.11],
            "train_accuracy": [0.5, 0.6],
            "valid_accuracy": [0.5, 0.55],
        }
    ).to_csv("in/h.csv", index=False)
    return evaluate(
        EvaluateParams(threshold), model="in/w.npz", valid_features="in/valid.npz", history="in/h.csv", **OUTPUTS
    )


def test_evaluate_stage_writes_metrics_and_plot_files(in_tmp):
    size = 4
    rng = np.random.default_rng(0)
    X = rng.random((30, size * size * 3), dtype=np.float32)
    y = (X[:, 0] > 0.5).astype(np.uint8)
    W = np.zeros(size * size * 3, np.float32)
    W[0] = 10.0
    metrics = run_evaluate(X, y, W, -5.0, size)
    assert metrics["accuracy"] == 1.0 and metrics["roc_auc"] == 1.0
    assert json.loads(open("out/m.json").read()) == metrics
    confusion = pd.read_csv("out/c.csv")
    assert len(confusion) == 30 and set(confusion.actual) == {"cat", "dog"}
    assert list(pd.read_csv("out/roc.csv").columns) == ["fpr", "tpr"]
    for key in PNGS:
        with Image.open(OUTPUTS[key]) as png:
            assert png.format == "PNG" and png.size[0] > 300
            assert set(png.info) <= {"dpi"}  # no Software, no date: only what the pixels need


@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.2])
def test_evaluate_stage_confusion_pairs_and_threshold(in_tmp, threshold):
    # a random, non-saturating neuron: the labels at `threshold` differ from those at 0.5
    size = 4
    rng = np.random.default_rng(1)
    X = rng.random((60, size * size * 3), dtype=np.float32)
    y = rng.integers(0, 2, 60).astype(np.uint8)
    W = (rng.normal(0, 1, size * size * 3) / 3).astype(np.float32)
    b = np.float32(-float(np.mean(X @ W)))
    metrics = run_evaluate(X, y, W, b, size, threshold)
    # the oracle, in float64: P(cat) = sigmoid(X W + b), predicted cat where P(cat) > threshold
    p = 1 / (1 + np.exp(-(X.astype(np.float64) @ W + float(b))))
    predicted = (p > threshold).astype(int)
    assert np.mean(predicted != (p > 0.5)) > 0 or threshold == 0.5  # the threshold matters here
    confusion = pd.read_csv(OUTPUTS["confusion"])
    names = np.array(["dog", "cat"])
    assert confusion.actual.tolist() == names[y].tolist()
    assert confusion.predicted.tolist() == names[predicted].tolist()
    tp, fp = int(np.sum((predicted == 1) & (y == 1))), int(np.sum((predicted == 1) & (y == 0)))
    tn, fn = int(np.sum((predicted == 0) & (y == 0))), int(np.sum((predicted == 0) & (y == 1)))
    assert (
        metrics["true_positives"],
        metrics["false_positives"],
        metrics["true_negatives"],
        metrics["false_negatives"],
    ) == (tp, fp, tn, fn)
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
    # tp == fn: recall 1/2
    assert classification_metrics(np.array([1, 1, 0]), np.array([1.0, -1.0, -2.0]))["recall"] == 0.5


def test_metrics_threshold_is_applied_to_the_float64_sigmoid():
    # sigmoid(1e-9) is 0.5 + 2.5e-10: a cat in float64, exactly 0.5 (a dog) in float32
    m = classification_metrics(np.array([1]), np.array([1e-9], dtype=np.float32))
    assert m["true_positives"] == 1


def test_every_png_is_the_same_bytes_when_drawn_again(in_tmp):
    """DVC hashes the PNGs (dvc.lock): the same inputs must give the same bytes, run after run."""
    rng = np.random.default_rng(1)
    X = rng.random((40, 2 * 2 * 3), dtype=np.float32)
    y = rng.integers(0, 2, 40).astype(np.uint8)
    W = rng.normal(size=12).astype(np.float32)
    run_evaluate(X, y, W, 0.0, 2)
    first = {key: Path(OUTPUTS[key]).read_bytes() for key in PNGS}
    for path in Path("out").iterdir():
        path.unlink()
    run_evaluate(X, y, W, 0.0, 2)
    assert {key: Path(OUTPUTS[key]).read_bytes() for key in PNGS} == first


def brute_force_mistakes(y, z, threshold, k):
    """The oracle: the mistakes listed one by one, sorted by (confidence, row) with Python's sort."""
    p_cat = [1 / (1 + math.exp(-value)) for value in z]
    false_cats = sorted(
        (row for row in range(len(y)) if y[row] == 0 and p_cat[row] > threshold), key=lambda row: (-z[row], row)
    )
    false_dogs = sorted(
        (row for row in range(len(y)) if y[row] == 1 and p_cat[row] <= threshold), key=lambda row: (z[row], row)
    )
    return false_cats[:k], false_dogs[:k]


@pytest.mark.parametrize("seed, threshold, k", [(0, 0.5, 8), (1, 0.3, 3), (2, 0.9, 50), (3, 0.5, 0)])
def test_most_confident_mistakes_equal_the_brute_force_listing(seed, threshold, k):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    z = np.round(rng.normal(size=300) + y - 0.5, 1)  # rounding makes ties, broken by row
    expected = brute_force_mistakes(y, z, threshold, k)
    assert [list(rows) for rows in most_confident_mistakes(y, z, threshold, k)] == [list(rows) for rows in expected]


def test_most_confident_mistakes_keep_row_order_within_long_ties():
    # 80 dogs called cat at two scores and 80 cats called dog at two: within each tie, rows in order
    y = np.r_[np.zeros(80, int), np.ones(80, int)]
    z = np.r_[np.full(40, 1.0), np.full(40, 2.0), np.full(40, -1.0), np.full(40, -2.0)]
    false_cats, false_dogs = most_confident_mistakes(y, z, 0.5, 80)
    assert list(false_cats) == [*range(40, 80), *range(40)]
    assert list(false_dogs) == [*range(120, 160), *range(80, 120)]


def test_most_confident_mistakes_apply_the_threshold_to_the_float64_sigmoid():
    # as classification_metrics: sigmoid(1e-9) is above 0.5 in float64 (a cat), exactly 0.5 in float32
    false_cats, _ = most_confident_mistakes(np.array([0]), np.array([1e-9], dtype=np.float32), 0.5, 1)
    assert list(false_cats) == [0]


def test_the_mistakes_gallery_shows_the_images_the_neuron_got_most_confidently_wrong(in_tmp):
    """Each validation image is one solid colour: the gallery's top row must show the false cats' colours
    left to right, most confident first, its bottom row the false dogs', and no other image's colour."""
    size, m = 2, 24
    rng = np.random.default_rng(7)
    colours = rng.choice(np.arange(40, 216), size=(m, 3), replace=False)  # a unique red, green and blue each
    X = (np.repeat(colours[:, None, :], size * size, axis=1).reshape(m, -1) / np.float32(255)).astype(np.float32)
    y = np.array([0, 1] * (m // 2), dtype=np.uint8)
    W = np.zeros(size * size * 3, np.float32)
    W[0] = 40.0  # z = 40 red / 255 - 20: redder is more "cat"
    run_evaluate(X, y, W, -20.0, size)
    z = X @ W - 20.0
    false_cats, false_dogs = brute_force_mistakes(y, z, 0.5, 8)
    assert false_cats and false_dogs  # both rows have mistakes to show
    png = np.asarray(Image.open(OUTPUTS["mistakes_plot"]).convert("RGB")).astype(int)
    centres = {}
    for row in range(m):
        where = np.argwhere((png == colours[row]).all(axis=2))
        centres[row] = where.mean(axis=0) if len(where) else None
    assert all(centres[row] is None for row in range(m) if row not in false_cats + false_dogs)
    for rows, in_top_half in ((false_cats, True), (false_dogs, False)):
        ys, xs = zip(*(centres[row] for row in rows))
        assert all((y_centre < png.shape[0] / 2) == in_top_half for y_centre in ys)
        assert list(xs) == sorted(xs)  # most confident on the left


def test_features_give_back_the_images_they_were_made_from():
    images = np.random.default_rng(0).integers(0, 256, (5, 3, 3, 3), dtype=np.uint8)
    for record in (Preprocessing(3, True), Preprocessing(3, False, 510.0)):
        np.testing.assert_array_equal(record.images(to_features(images, record.pixel_scale)), images)


def test_evaluate_refuses_weights_that_are_not_finite(in_tmp, capsys):
    """A model file with NaN weights (written by hand: train refuses to) would give NaN metrics; the stage
    stops with exit status 2 before writing any."""
    save_npz("w.npz", W=np.full(12, np.nan, np.float32), b=np.float32(0), **Preprocessing(2, True).arrays())
    save_npz("valid.npz", X=np.zeros((4, 12), np.float32), y=np.array([0, 1, 0, 1], np.uint8))
    write_params(in_tmp / "params.yaml")
    outputs = [word for key, path in OUTPUTS.items() for word in (f"--{key.replace('_', '-')}", path)]
    with pytest.raises(SystemExit) as exit_status:
        run_cli(main, ["--model", "w.npz", "--valid-features", "valid.npz", "--history", "h.csv", *outputs])
    assert exit_status.value.code == 2
    assert capsys.readouterr().err.endswith(
        "error: w.npz: 12 of the 13 weights (W and b) are not finite numbers (NaN or infinity): the training "
        "diverged; retrain with a lower train.lr (`dvc repro`)\n"
    )
    assert sorted(p.name for p in in_tmp.iterdir()) == ["params.yaml", "valid.npz", "w.npz"]


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_evaluate_refuses_weights_whose_scores_overflow(in_tmp):
    """Finite weights too large for float32 scores (a file train would never write) would give NaN log loss."""
    W = np.full(12, 1e38, np.float32)
    with pytest.raises(DataError, match=r"in/w.npz: the scores z = X W \+ b of 2 validation images overflow float32"):
        X = np.array([[1] * 12, [0] * 12, [0.5] * 12, [0] * 12], np.float32)  # z = 1.2e39 and 6e38: beyond float32
        run_evaluate(X, np.array([1, 0, 1, 0], np.uint8), W, 0.0, 2)
    assert not Path("out").exists()
