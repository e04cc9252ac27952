"""catsdogs/evaluation/figures.py checked against expectations written by hand, never against a second
drawing by the same code: what each figure shows is read back from its artists (the numbers in the
confusion cells, the ROC line's points, the gallery's titles and images) and from the saved PNG's pixels.
The figure is taken just before it is saved (save_figure wrapped, then called as it is)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from catsdogs.evaluation import figures
from catsdogs.evaluation.figures import plot_confusion, plot_losses, plot_mistakes, plot_roc, plot_weights
from tests.test_evaluate import HAND_W, HAND_X, HAND_Y, OUTPUTS, run_evaluate


@pytest.fixture
def drawn(monkeypatch):
    """{PNG file name: the matplotlib Figure that was saved there}."""
    seen = {}
    save = figures.save_figure

    def capture(figure, path):
        seen[Path(path).name] = figure
        save(figure, path)

    monkeypatch.setattr(figures, "save_figure", capture)
    return seen


def cells(figure) -> dict[tuple[str, str], str]:
    """The confusion figure's numbers by (actual, predicted), placed by the tick labels of their row and column."""
    axes = figure.axes[0]
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("predicted", "actual")
    columns = {round(tick): label.get_text() for tick, label in zip(axes.get_xticks(), axes.get_xticklabels())}
    rows = {round(tick): label.get_text() for tick, label in zip(axes.get_yticks(), axes.get_yticklabels())}
    return {(rows[round(t.get_position()[1])], columns[round(t.get_position()[0])]): t.get_text() for t in axes.texts}


def test_each_confusion_cell_shows_its_count_where_its_row_and_column_say(tmp_path, drawn):
    counts = {"true_positives": 7, "false_negatives": 2, "false_positives": 3, "true_negatives": 11}
    plot_confusion(counts, 0.5, tmp_path / "c.png")
    figure = drawn["c.png"]
    # actual cat called dog: a false negative; actual dog called cat: a false positive
    assert cells(figure) == {("cat", "cat"): "7", ("cat", "dog"): "2", ("dog", "cat"): "3", ("dog", "dog"): "11"}
    axes = figure.axes[0]
    shade = axes.images[0].get_array()
    for text in axes.texts:  # the cell's colour is its own count's; white on the darker half
        column, row = (round(v) for v in text.get_position())
        assert shade[row, column] == int(text.get_text())
        assert text.get_color() == ("white" if int(text.get_text()) > 11 / 2 else "black")
    assert axes.get_title() == "Confusion matrix (validation, threshold 0.5)"


def test_the_confusion_png_is_darker_where_the_count_is_larger(tmp_path, drawn):
    counts = {"true_positives": 7, "false_negatives": 2, "false_positives": 3, "true_negatives": 11}
    plot_confusion(counts, 0.5, tmp_path / "c.png")
    figure = drawn["c.png"]
    axes = figure.axes[0]
    png = np.asarray(Image.open(tmp_path / "c.png").convert("L")).astype(int)
    scale = figures.DPI / figure.dpi
    brightness = {}
    for text in axes.texts:
        column, row = (round(v) for v in text.get_position())
        x, y = axes.transData.transform((column - 0.35, row - 0.35)) * scale  # a corner of the cell, off the text
        brightness[int(text.get_text())] = png[png.shape[0] - round(y), round(x)]
    ordered = [brightness[count] for count in sorted(brightness)]
    assert ordered == sorted(ordered, reverse=True) and len(set(ordered)) == 4  # 2, 3, 7, 11: darker and darker


def test_the_stage_draws_the_hand_checked_confusion_and_roc(in_tmp, drawn):
    """The hand-checked example of tests/test_evaluate.py at threshold 0.7: tp 2, fn 1, fp 0, tn 2; ROC
    through (0, 0), (0, 1/3), (0, 2/3), (1/2, 2/3), (1/2, 1), (1, 1), AUC 5/6."""
    run_evaluate(HAND_X, HAND_Y, HAND_W, 0.0, 1, threshold=0.7)
    assert cells(drawn["confusion.png"]) == {
        ("cat", "cat"): "2",
        ("cat", "dog"): "1",
        ("dog", "cat"): "0",
        ("dog", "dog"): "2",
    }
    axes = drawn["roc.png"].axes[0]
    curve, chance = axes.lines
    assert curve.get_label() == "the neuron" and chance.get_label() == "chance"
    expected = [(0, 0), (0, 1 / 3), (0, 2 / 3), (1 / 2, 2 / 3), (1 / 2, 1), (1, 1)]
    np.testing.assert_allclose(curve.get_xydata(), expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(chance.get_xydata(), [(0, 0), (1, 1)])
    assert axes.get_title() == "ROC curve (validation), AUC 0.833333"
    assert (axes.get_xlim(), axes.get_ylim()) == ((0, 1), (0, 1))


def test_the_roc_figure_shows_the_points_it_is_given(tmp_path, drawn):
    fpr, tpr = np.array([0, 0.25, 0.25, 1]), np.array([0, 0.5, 1, 1])
    plot_roc(fpr, tpr, None, tmp_path / "r.png")
    axes = drawn["r.png"].axes[0]
    assert [tuple(p) for p in axes.lines[0].get_xydata()] == [(0, 0), (0.25, 0.5), (0.25, 1), (1, 1)]
    assert [tuple(p) for p in axes.lines[1].get_xydata()] == [(0, 0), (1, 1)]  # chance
    assert (axes.get_xlim(), axes.get_ylim()) == ((0, 1), (0, 1))
    assert axes.get_title() == "ROC curve (validation), AUC None"


def test_the_gallery_shows_the_stages_mistakes_in_order_with_their_names_and_p_cat(in_tmp, drawn):
    """One feature, W = 1, b = 0: z = x. Dogs at z = 3 and 1 are false cats (3 first: the more confident),
    cats at z = -2 and -0.5 are false dogs (-2 first); the others are right."""
    z = np.array([3.0, -2.0, 1.0, 2.0, -0.5, -4.0], np.float32)
    y = np.array([0, 1, 0, 1, 1, 0], np.uint8)
    X = np.zeros((6, 3), np.float32)
    X[:, 0] = z
    run_evaluate(X, y, np.array([1, 0, 0], np.float32), 0.0, 1)  # one 1 x 1 pixel: red is z
    figure = drawn["mistakes.png"]
    titles = [[axes.get_title() for axes in figure.axes[row * 8 : row * 8 + 8] if axes.get_title()] for row in (0, 1)]

    def title(row):
        return f"v{row}.jpg\nP(cat) {1 / (1 + math.exp(-float(z[row]))):.3f}"

    assert titles == [[title(0), title(2)], [title(1), title(4)]]
    headers = [text.get_text() for text in figure.texts]
    assert headers == [
        "false cats: dogs called cat: the 2 most confident of 2",
        "false dogs: cats called dog: the 2 most confident of 2",
    ]


def test_the_gallery_draws_each_image_under_its_own_title_in_the_given_order(tmp_path, drawn):
    images = [np.full((2, 2, 3), value, np.uint8) for value in (10, 20, 30)]
    false_cats = [(images[0], "a.jpg", 0.99), (images[1], "b.jpg", 0.9)]
    false_dogs = [(images[2], "c.jpg", 0.01)]
    plot_mistakes(false_cats, false_dogs, (5, 1), 3, tmp_path / "m.png")
    figure = drawn["m.png"]
    shown = [(axes.get_title(), int(axes.images[0].get_array()[0, 0, 0])) for axes in figure.axes if axes.images]
    assert shown == [("a.jpg\nP(cat) 0.990", 10), ("b.jpg\nP(cat) 0.900", 20), ("c.jpg\nP(cat) 0.010", 30)]
    assert [axes.get_position().y0 > 0.5 for axes in figure.axes if axes.images] == [True, True, False]
    assert [text.get_text() for text in figure.texts] == [
        "false cats: dogs called cat: the 2 most confident of 5",
        "false dogs: cats called dog: the 1 most confident of 1",
    ]
    plot_mistakes([], [], (0, 0), 3, tmp_path / "none.png")
    assert [text.get_text() for text in drawn["none.png"].texts] == [
        "false cats: dogs called cat: none",
        "false dogs: cats called dog: none",
    ]


def test_the_loss_figure_plots_each_column_of_the_history(tmp_path, drawn):
    history = pd.DataFrame(
        {
            "epoch": [0, 1, 2],
            "train_loss": [0.3, 0.2, 0.1],
            "valid_loss": [0.35, 0.25, 0.2],
            "train_accuracy": [0.5, 0.6, 0.7],
            "valid_accuracy": [0.4, 0.5, 0.55],
        }
    )
    plot_losses(history, tmp_path / "l.png")
    loss_axes, accuracy_axes = drawn["l.png"].axes
    for axes, what in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        assert axes.get_title() == what
        lines = {line.get_label(): line.get_xydata().tolist() for line in axes.lines}
        assert lines == {
            split: [[e, v] for e, v in zip([0, 1, 2], history[f"{split}_{what}"])] for split in ("train", "valid")
        }


def test_the_weights_figure_shows_w_per_channel_and_summed(tmp_path, drawn):
    W = np.array([1, 0, 0, 0, -2, 0, 0, 0, 0, 1, 1, 1], np.float32)  # 2 x 2 pixels: red, -green, black, white
    plot_weights(W, 2, tmp_path / "w.png")
    rgb_axes, sum_axes = drawn["w.png"].axes[:2]
    np.testing.assert_array_equal(sum_axes.images[0].get_array(), [[1, -2], [0, 3]])
    rgb = rgb_axes.images[0].get_array()
    np.testing.assert_allclose(rgb[0, 0], [0.75, 0.5, 0.5])  # grey 0.5 + 0.5 x 1 / 2 (2: the largest |w|)
    np.testing.assert_allclose(rgb[0, 1], [0.5, 0.0, 0.5])
    assert sum_axes.images[0].get_clim() == (-3, 3)


def test_every_png_of_the_stage_is_written(in_tmp, drawn):
    run_evaluate(HAND_X, HAND_Y, HAND_W, 0.0, 1)
    assert sorted(drawn) == sorted(Path(OUTPUTS[key]).name for key in OUTPUTS if key.endswith("_plot"))


def test_each_png_has_its_documented_size_at_80_dpi_and_no_metadata_but_the_dpi(tmp_path):
    """Fixed sizes (inches x 80 DPI) so that the same inputs give the same bytes."""
    history = pd.DataFrame(
        {c: [0.0, 1.0] for c in ("epoch", "train_loss", "valid_loss", "train_accuracy", "valid_accuracy")}
    )
    plot_losses(history, tmp_path / "l.png")
    plot_weights(np.ones(12, np.float32), 2, tmp_path / "w.png")
    plot_roc(np.array([0.0, 1.0]), np.array([0.0, 1.0]), 0.5, tmp_path / "r.png")
    counts = {"true_positives": 1, "false_negatives": 2, "false_positives": 3, "true_negatives": 4}
    plot_confusion(counts, 0.5, tmp_path / "c.png")
    plot_mistakes([], [], (0, 0), 4, tmp_path / "m.png")
    sizes = {"l.png": (800, 320), "w.png": (640, 320), "r.png": (400, 400), "c.png": (400, 360), "m.png": (480, 352)}
    for name, size in sizes.items():
        with Image.open(tmp_path / name) as png:
            assert (png.size, set(png.info)) == (size, {"dpi"}), name
            assert png.info["dpi"] == pytest.approx((80, 80), abs=0.01)
    assert not list(tmp_path.glob(".tmp-*"))  # written atomically


def test_every_label_and_title_a_reader_sees(tmp_path, drawn):
    history = pd.DataFrame(
        {
            "epoch": [5, 6],
            "train_loss": [0.3, 0.2],
            "valid_loss": [0.4, 0.3],
            "train_accuracy": [0.5, 0.6],
            "valid_accuracy": [0.4, 0.5],
        }
    )
    plot_losses(history, tmp_path / "l.png")
    loss_axes, accuracy_axes = drawn["l.png"].axes
    assert loss_axes.get_position().y0 == accuracy_axes.get_position().y0  # side by side
    assert loss_axes.get_position().x0 < accuracy_axes.get_position().x0
    for axes in (loss_axes, accuracy_axes):
        assert axes.get_xlabel() == "epoch" and [line.get_xdata().tolist() for line in axes.lines] == [[5, 6], [5, 6]]
    assert [t.get_text() for t in loss_axes.get_legend().get_texts()] == ["train", "valid"]
    plot_roc(np.array([0.0, 1.0]), np.array([0.0, 1.0]), 0.5, tmp_path / "r.png")
    axes = drawn["r.png"].axes[0]
    assert (axes.get_xlabel(), axes.get_ylabel()) == (
        "false positive rate (dogs called cat)",
        "true positive rate (cats called cat)",
    )
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["the neuron", "chance"]
    plot_weights(np.zeros(12, np.float32), 2, tmp_path / "w.png")  # all zero: grey, no division by 0
    rgb_axes, sum_axes, bar = drawn["w.png"].axes
    assert rgb_axes.get_title() == "W as RGB (grey = 0)"
    assert sum_axes.get_title() == "W summed over RGB (red: cat, blue: dog)"
    left, right = rgb_axes.get_position(), sum_axes.get_position()
    assert left.x1 <= right.x0 and abs((left.y0 + left.y1) - (right.y0 + right.y1)) < 0.1  # side by side
    np.testing.assert_array_equal(rgb_axes.images[0].get_array(), np.full((2, 2, 3), 0.5))
    assert sum_axes.images[0].get_clim() == (-1.0, 1.0)
    assert bar.get_ylim() == (-1.0, 1.0)  # the colour bar of the summed W


def test_a_cells_number_is_white_above_half_the_largest_count_and_black_at_half(tmp_path, drawn):
    counts = {"true_positives": 10, "false_negatives": 5, "false_positives": 6, "true_negatives": 0}
    plot_confusion(counts, 0.5, tmp_path / "c.png")
    colours = {t.get_text(): t.get_color() for t in drawn["c.png"].axes[0].texts}
    assert colours == {"10": "white", "6": "white", "5": "black", "0": "black"}


def test_the_gallery_draws_each_image_pixel_for_pixel(tmp_path, drawn):
    image = np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)
    plot_mistakes([(image, "a.jpg", 0.9)], [], (1, 0), 2, tmp_path / "m.png")
    [axes] = [axes for axes in drawn["m.png"].axes if axes.images]
    assert axes.images[0].get_interpolation() == "nearest"
    np.testing.assert_array_equal(axes.images[0].get_array(), image)
    assert axes.get_title() == "a.jpg\nP(cat) 0.900"


def renderer(figure):
    """An Agg renderer of the (closed) figure, at its own DPI: where its artists are drawn."""
    return FigureCanvasAgg(figure).get_renderer()


def extent(artist, figure):
    """Where `artist` is drawn, in the figure's pixels (x0, y0, x1, y1), y up."""
    return tuple(artist.get_window_extent(renderer(figure)).extents)


def test_the_confusion_shading_starts_at_0_and_each_count_is_centred_in_its_cell(tmp_path, drawn):
    counts = {"true_positives": 7, "false_negatives": 2, "false_positives": 3, "true_negatives": 11}
    plot_confusion(counts, 0.5, tmp_path / "c.png")
    figure = drawn["c.png"]
    axes = figure.axes[0]
    assert axes.images[0].get_clim() == (0, 11)  # white is no image, the darkest the largest count
    for text in axes.texts:
        column, row = (round(v) for v in text.get_position())
        x0, y0, x1, y1 = extent(text, figure)
        (left, bottom), (right, top) = axes.transData.transform([(column - 0.5, row + 0.5), (column + 0.5, row - 0.5)])
        assert left < x0 < x1 < right and bottom < y0 < y1 < top, text.get_text()  # inside its cell
        centre = axes.transData.transform((column, row))
        assert abs((x0 + x1) / 2 - centre[0]) < 1 and abs((y0 + y1) / 2 - centre[1]) < 1, text.get_text()


def test_the_gallery_puts_each_row_under_its_header_and_everything_on_the_figure(tmp_path, drawn):
    """The stage's 8 columns, each mistake with a title of two lines: header 1, row 1, header 2, row 2 from
    the top, nothing overlapping and nothing cut off at the figure's edges."""
    image = np.zeros((64, 64, 3), np.uint8)
    false_cats = [(image, f"dog.{1000 + i}.jpg", 0.999) for i in range(8)]
    false_dogs = [(image, f"cat.{1000 + i}.jpg", 0.001) for i in range(8)]
    plot_mistakes(false_cats, false_dogs, (123, 456), 8, tmp_path / "m.png")
    figure = drawn["m.png"]
    drawing = renderer(figure)
    assert len(figure.axes) == 16 and not any(axes.axison for axes in figure.axes)  # no frames, ticks or empty boxes
    width, height = figure.bbox.width, figure.bbox.height
    headers = [extent(text, figure) for text in figure.texts]
    rows = [[tuple(axes.get_tightbbox(drawing).extents) for axes in figure.axes[r * 8 : r * 8 + 8]] for r in (0, 1)]
    for x0, y0, x1, y1 in headers + rows[0] + rows[1]:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    assert all(x0 < 0.02 * width for x0, *_ in headers)  # each header at the left edge
    (_, first_bottom, *_), (_, second_bottom, _, second_top) = headers
    assert first_bottom > max(box[3] for box in rows[0])
    assert min(box[1] for box in rows[0]) > second_top
    assert second_bottom > max(box[3] for box in rows[1])
    for row in rows:  # side by side, left to right, not overlapping
        assert all(left[2] <= right[0] for left, right in zip(row, row[1:]))


def test_a_gallery_of_one_column_has_one_mistake_per_row(tmp_path, drawn):
    image = np.zeros((2, 2, 3), np.uint8)
    plot_mistakes([(image, "a.jpg", 0.9)], [(image, "b.jpg", 0.2)], (1, 1), 1, tmp_path / "m.png")
    figure = drawn["m.png"]
    assert [axes.get_title() for axes in figure.axes] == ["a.jpg\nP(cat) 0.900", "b.jpg\nP(cat) 0.200"]
    assert figure.axes[0].get_position().y0 > figure.axes[1].get_position().y1


def test_the_roc_chance_line_is_dashed_and_the_curve_solid(tmp_path, drawn):
    plot_roc(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.9, 1.0]), 0.7, tmp_path / "r.png")
    curve, chance = drawn["r.png"].axes[0].lines
    assert (curve.get_linestyle(), chance.get_linestyle()) == ("-", "--")


def test_the_summed_weights_are_red_for_cat_and_blue_for_dog_beside_their_colour_bar(tmp_path, drawn):
    """The title says red: cat (positive W: z up, P(cat) up), blue: dog."""
    W = np.array([1, 1, 1, -1, -1, -1, 0, 0, 0, 0.5, 0, 0], np.float32)
    plot_weights(W, 2, tmp_path / "w.png")
    figure = drawn["w.png"]
    rgb_axes, sum_axes, bar = figure.axes
    shown = sum_axes.images[0]
    red, green, blue, _ = shown.to_rgba(3.0)
    assert red > 0.6 > blue  # the largest sum, +3: red
    red, green, blue, _ = shown.to_rgba(-3.0)
    assert blue > 0.6 > red
    assert not rgb_axes.axison and not sum_axes.axison
    rgb, summed, scale = (extent(axes.images[0] if axes.images else axes, figure) for axes in (rgb_axes, sum_axes, bar))
    assert rgb[2] <= summed[0] and summed[2] <= scale[0]  # left to right: RGB, summed, its colour bar
    assert summed[2] - summed[0] > 0.8 * (rgb[2] - rgb[0])  # the bar takes a little of the summed image's room


def test_save_figure_closes_the_figure_it_saves_not_the_current_one(tmp_path):
    saved, current = plt.figure(), plt.figure()
    try:
        figures.save_figure(saved, tmp_path / "s.png")
        assert plt.get_fignums() == [current.number]
    finally:
        plt.close("all")
