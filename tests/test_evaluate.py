import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from catsdogs.data.images import Preprocessing
from catsdogs.errors import DataError
from catsdogs.evaluation.figures import plot_confusion, plot_losses, plot_mistakes, plot_roc, plot_weights
from catsdogs.evaluation.metrics import classification_metrics, most_confident_mistakes, roc_curve
from catsdogs.pipeline.command_line import run_cli
from catsdogs.pipeline.npz_files import save_npz
from catsdogs.pipeline.weights_file import save_model
from stages.evaluate import EvaluateParams, evaluate, main, read_history
from tests.conftest import help_text, write_params


def pairwise_auc(y, scores):
    """P(score of a random positive > score of a random negative), ties counted 1/2."""
    pos, neg = scores[y == 1][:, None], scores[y == 0][None, :]
    return ((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size)


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
    write_inputs(X, y, W, b, size)
    return evaluate(
        EvaluateParams(threshold), model="in/w.npz", valid_features="in/valid.npz", history="in/h.csv", **OUTPUTS
    )


def write_inputs(X, y, W, b, size):
    """evaluate's input files in in/: valid.npz (X, y, names v0.jpg, v1.jpg...), w.npz, h.csv (two epochs)."""
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


@pytest.mark.parametrize("nan_rows", [[1], [0, 3], list(range(1, 17))])
def test_nan_scores_are_refused_by_the_metrics_and_the_roc(nan_rows):
    """A NaN has no rank: unsorted, it would change the AUC with the sort algorithm (issue 20: 0.5 or 0.333
    for [1.0] + [nan] * 16)."""
    y = np.arange(17) % 2
    z = np.linspace(-2, 2, 17)
    z[nan_rows] = np.nan
    message = rf"^{len(nan_rows)} of 17 scores are NaN; metrics need numbers$"
    with pytest.raises(ValueError, match=message):
        classification_metrics(y, z)
    with pytest.raises(ValueError, match=message):
        roc_curve(y, z)
    with pytest.raises(ValueError, match=message):  # one class only: no AUC, still no metric of a NaN
        classification_metrics(np.ones(17), z)
    assert classification_metrics(y, np.nan_to_num(z))["n_valid"] == 17  # the same scores without NaN: fine


@pytest.mark.parametrize("labels", [[0, 1, 2], [0, 1, 0.5], [-1, 1, 0], [1, 1, True + 1]])
def test_labels_other_than_0_and_1_are_refused(labels):
    """0.5 would be a dog as an int64 (truncated) and neither class as a float: refused, not guessed."""
    with pytest.raises(ValueError, match=r"^labels must be 0 \(dog\) or 1 \(cat\)$"):
        classification_metrics(np.array(labels), np.array([0.0, 1.0, 2.0]))
    assert classification_metrics(np.array([0, 1, True]), np.array([0.0, 1.0, 2.0]))["n_valid"] == 3


def test_integer_scores_beyond_2_to_the_53_rank_as_their_float64():
    """The scores are ranked as float64, as the sigmoid sees them: 2^53 and 2^53 + 1 are one tie."""
    z = np.array([2**53 + 1, 2**53, 0, 1], dtype=np.int64)
    y = np.array([0, 1, 0, 1])
    assert classification_metrics(y, z)["roc_auc"] == 0.625  # (1/2 + 1 + 0 + 1) / 4 pairs (cat, dog)


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]])
def test_tied_infinite_scores_are_one_tie(order):
    """z = +inf for a cat and a dog, -inf for a cat and a dog: each pair is a tie (counted 1/2), whatever
    the order of the rows; the cat-dog pairs across the ties are ranked right: AUC (1 + 1/2 + 1/2 + 0) / 4."""
    y, z = np.array([1, 0, 1, 0])[order], np.array([np.inf, np.inf, -np.inf, -np.inf])[order]
    fpr, tpr = roc_curve(y, z)
    assert fpr.tolist() == [0, 0.5, 1] and tpr.tolist() == [0, 0.5, 1]
    with np.errstate(invalid="ignore"):  # the losses of infinite scores
        assert classification_metrics(y, z)["roc_auc"] == pairwise_auc(y, z) == 0.5


def test_metrics_counts_at_a_threshold_of_0_8_by_hand():
    """P(cat) = sigmoid(z): z = 2 gives 0.881 (> 0.8: cat), z = 1 gives 0.731 (dog at 0.8, cat at 0.5).
    Cats at z 2, 2, 2, 1, 1, 1, 1 and dogs at z 2, 1, 1: tp 3, fn 4, fp 1, tn 2 (all different)."""
    y = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
    z = np.array([2, 2, 2, 1, 1, 1, 1, 2, 1, 1], dtype=np.float64)
    m = classification_metrics(y, z, threshold=0.8)
    assert (m["true_positives"], m["false_negatives"], m["false_positives"], m["true_negatives"]) == (3, 4, 1, 2)
    assert m["accuracy"] == 0.5 and m["precision"] == 0.75 and m["recall"] == round(3 / 7, 6)
    at_half = classification_metrics(y, z)
    assert (at_half["true_positives"], at_half["false_positives"], at_half["true_negatives"]) == (7, 3, 0)


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
    """Finite weights too large for float32 scores (a file train would never write) would give NaN log loss:
    the model file is refused when read, from its bound sum |W| x 255 / pixel_scale + |b| = 12 x 1e38 x 255 / 255."""
    W = np.full(12, 1e38, np.float32)
    with pytest.raises(DataError, match=r"in/w.npz: weights so large that x W \+ b could reach 1.2e\+39 and overflow"):
        X = np.array([[1] * 12, [0] * 12, [0.5] * 12, [0] * 12, [0] * 12], np.float32)  # 1.2e39, 6e38: beyond float32
        run_evaluate(X, np.array([1, 0, 1, 0, 0], np.uint8), W, 0.0, 2)
    assert not Path("out").exists()


# test_metrics_of_a_hand_checked_example as a stage run: z = X W + b = (2, 1, -1, 0.5, -3), W = (1, 0, 0), b = 0
HAND_X = np.array([[2, 0, 0], [1, 0, 0], [-1, 0, 0], [0.5, 0, 0], [-3, 0, 0]], np.float32)
HAND_Y = np.array([1, 1, 1, 0, 0], np.uint8)
HAND_W = np.array([1, 0, 0], np.float32)


def test_the_stage_reads_its_params_file_and_writes_the_hand_checked_files(in_tmp, capsys):
    """At evaluate.threshold 0.7 (P(cat) = 0.881, 0.731, 0.269, 0.622, 0.047) only rows 0 and 1 are cats:
    tp 2, fp 0, tn 2, fn 1, accuracy 0.8, F1 2 x 1 x 2/3 / (1 + 2/3) = 0.8; AUC 5/6 (of the 6 cat-dog pairs
    only -1 < 0.5 is ranked wrong). The ROC steps through 2 (cat), 1 (cat), 0.5 (dog), -1 (cat), -3 (dog)."""
    write_inputs(HAND_X, HAND_Y, HAND_W, 0.0, 1)
    write_params(in_tmp / "other.yaml", evaluate={"threshold": 0.7})
    inputs = ["--model", "in/w.npz", "--valid-features", "in/valid.npz", "--history", "in/h.csv"]
    outputs = [word for key, path in OUTPUTS.items() for word in (f"--{key.replace('_', '-')}", path)]
    main(["--params", "other.yaml", *inputs, *outputs])
    assert capsys.readouterr().out == "evaluate: accuracy 0.8000, F1 0.8000, ROC AUC 0.833333, on 5 validation images\n"
    m = json.loads(Path(OUTPUTS["metrics"]).read_text())
    assert (m["true_positives"], m["false_positives"], m["true_negatives"], m["false_negatives"]) == (2, 0, 2, 1)
    assert Path(OUTPUTS["roc"]).read_text() == "fpr,tpr\n0,0\n0,0.333333\n0,0.666667\n0.5,0.666667\n0.5,1\n1,1\n"
    assert Path(OUTPUTS["confusion"]).read_text() == "actual,predicted\ncat,cat\ncat,cat\ncat,dog\ndog,dog\ndog,dog\n"


def test_each_png_is_drawn_from_its_own_data(in_tmp):
    """The same bytes as catsdogs.evaluation.figures draws from the hand-checked data above (threshold 0.7): the history,
    W of 1 x 1 pixel, the ROC points and AUC 0.833333, the counts, and one false dog (row 2, P(cat)
    1 / (1 + e), its feature -1 shown as black) out of (0 false cats, 1 false dog)."""
    run_evaluate(HAND_X, HAND_Y, HAND_W, 0.0, 1, threshold=0.7)
    Path("expected").mkdir()
    plot_losses(pd.read_csv("in/h.csv"), "expected/loss_plot.png")
    plot_weights(HAND_W, 1, "expected/weights_plot.png")
    plot_roc(
        np.array([0, 0, 0, 0.5, 0.5, 1]), np.array([0, 1 / 3, 2 / 3, 2 / 3, 1, 1]), 0.833333, "expected/roc_plot.png"
    )
    counts = {"true_positives": 2, "false_positives": 0, "true_negatives": 2, "false_negatives": 1}
    plot_confusion(counts, 0.7, "expected/confusion_plot.png")
    false_dog = (np.zeros((1, 1, 3), np.uint8), "v2.jpg", 1 / (1 + math.e))
    plot_mistakes([], [false_dog], (0, 1), 8, "expected/mistakes_plot.png")
    for key in PNGS:
        assert Path(OUTPUTS[key]).read_bytes() == Path(f"expected/{key}.png").read_bytes(), key


def test_confusion_pairs_agree_with_the_counts_a_hair_above_the_threshold(in_tmp):
    """z = 1e-8 for every image: P(cat) = 0.5 + 2.5e-9 is a cat in float64, as the metrics count it, and
    exactly 0.5 (a dog) in float32; confusion.csv must say cat as well."""
    metrics = run_evaluate(
        np.zeros((4, 3), np.float32), np.array([1, 0, 1, 0], np.uint8), np.zeros(3, np.float32), 1e-8, 1
    )
    assert (metrics["true_positives"], metrics["false_positives"]) == (2, 2)
    assert pd.read_csv(OUTPUTS["confusion"]).predicted.tolist() == ["cat"] * 4


def test_help_says_what_the_stage_writes(capsys):
    text = help_text(main, capsys)
    assert text.startswith("usage: python -m stages.evaluate [-h] [--params PARAMS] --model PATH ")
    assert (
        " Score the trained weights on the validation features: metrics (JSON), the plot data dvc.yaml charts (ROC, "
        "confusion matrix) and PNGs (loss curves, weights image, ROC, confusion matrix, mistakes gallery). "
    ) in text


def test_roc_rates_below_1e_4_are_written_as_python_writes_them(in_tmp):
    """20,000 dogs: one dog (z = 3) above the only cat (z = 2), the others tied below (z = -1): the ROC is
    (0, 0), (1/20000, 0), (1/20000, 1), (1, 1), and 1/20000 is written 5e-05 (%.6g, as in metrics/)."""
    z = np.r_[3.0, 2.0, np.full(19_999, -1.0)].astype(np.float32)
    X = np.zeros((len(z), 3), np.float32)
    X[:, 0] = z
    run_evaluate(X, np.r_[0, 1, np.zeros(19_999)].astype(np.uint8), HAND_W, 0.0, 1)
    assert Path(OUTPUTS["roc"]).read_text() == "fpr,tpr\n0,0\n5e-05,0\n5e-05,1\n1,1\n"


def test_the_gallery_shows_the_8_most_confident_of_more_mistakes(in_tmp):
    """10 false cats (dogs at z = 1 ... 10, features >= 1: shown red) and 2 cats called cat: the gallery is
    the same bytes as catsdogs.evaluation.figures draws for the 8 most confident (z = 10 ... 3) of 10."""
    z = np.r_[np.arange(1, 11), 20, 30].astype(np.float32)
    X = np.zeros((12, 3), np.float32)
    X[:, 0] = z
    run_evaluate(X, np.r_[np.zeros(10), 1, 1].astype(np.uint8), HAND_W, 0.0, 1)
    red = np.array([[[255, 0, 0]]], np.uint8)
    shown = [(red, f"v{row}.jpg", 1 / (1 + math.exp(-z[row]))) for row in range(9, 1, -1)]
    plot_mistakes(shown, [], (10, 0), 8, "expected.png")
    assert Path(OUTPUTS["mistakes_plot"]).read_bytes() == Path("expected.png").read_bytes()


# --------------------------------------------------------------------------- read_history, word for word

HEADER = "epoch,train_loss,valid_loss,train_accuracy,valid_accuracy"
DAMAGED = "replace it with a good copy (README: Damaged files)"  # restore_hint of a file dvc.lock does not list


def refusal(path: Path) -> str:
    with pytest.raises(DataError) as refused:
        read_history(path)
    return str(refused.value)


def test_read_history_keeps_its_five_columns_as_numbers(tmp_path):
    (tmp_path / "h.csv").write_text(f"note,{HEADER}\nfirst,0,0.5,0.25,1,0.75\nsecond,1,0.125,0.5,1,1\n")
    history = read_history(tmp_path / "h.csv")
    assert list(history.columns) == HEADER.split(",")  # the text column `note` left out
    assert history.to_numpy().tolist() == [[0, 0.5, 0.25, 1, 0.75], [1, 0.125, 0.5, 1, 1]]


def test_read_history_says_what_is_wrong_word_for_word(tmp_path):
    path = tmp_path / "h.csv"
    assert refusal(path) == f"{path}: not found (run the earlier stages: `dvc repro`)"
    path.write_text("")
    assert refusal(path) == f"{path}: not a readable CSV (No columns to parse from file); {DAMAGED}"
    path.write_bytes(b"\xff")
    assert refusal(path) == (
        f"{path}: not a readable CSV ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte); {DAMAGED}"
    )
    expected = f"{path}: expected rows of finite numbers in columns epoch, train_loss, valid_loss, train_accuracy, valid_accuracy"
    path.write_text(HEADER + "\n")
    assert refusal(path) == f"{expected} (has 0 rows, columns {HEADER.replace(',', ', ')}); {DAMAGED}"
    for row in ("0,0.5,0.5,x,0.5", "0,0.5,0.5,inf,0.5", "0,0.5,0.5,True,0.5", "0,0.5,0.5,0.5,"):
        path.write_text(f"{HEADER}\n{row}\n")
        assert refusal(path) == f"{expected} (has 1 rows, columns {HEADER.replace(',', ', ')}); {DAMAGED}", row
    names = ["epoch", "l" * 50, "c\x01"] + [f"k{i}" for i in range(9)]  # 12 columns, no train_loss
    path.write_text(",".join(names) + "\n" + ",".join("1" * len(names)) + "\n")
    shown = ", ".join(["epoch", "l" * 40, "c\\u0001"] + [f"k{i}" for i in range(7)])  # 10 of them, 40 characters each
    assert refusal(path) == f"{expected} (has 1 rows, columns {shown}); {DAMAGED}"
