"""The model file (catsdogs/pipeline/weights_file.py): what train writes is what evaluate and predict read; weights that are
not finite numbers are refused both ways."""

import numpy as np
import pytest

from catsdogs.data.images import Preprocessing
from catsdogs.errors import DataError
from catsdogs.pipeline.npz_files import save_npz
from catsdogs.pipeline.weights_file import load_model, save_model


def test_round_trip(tmp_path):
    W = np.arange(12, dtype=np.float32) / 7
    save_model(tmp_path / "w.npz", W, np.float32(-0.25), Preprocessing(2, False, 510.0))
    model = load_model(tmp_path / "w.npz")
    np.testing.assert_array_equal(model.W, W)
    assert model.b == np.float32(-0.25) and model.preprocessing == Preprocessing(2, False, 510.0)


def test_non_finite_weights_are_never_written(tmp_path):
    W = np.array([0.5, np.inf, np.nan], dtype=np.float32)
    with pytest.raises(
        DataError,
        match=r"w.npz: 2 of the 4 weights \(W and b\) are not finite numbers .*"
        r"the training diverged; retrain with a lower train.lr",
    ):
        save_model(tmp_path / "w.npz", W, np.float32(0.0), Preprocessing(1, True))
    with pytest.raises(DataError, match=r"w.npz: 1 of the 4 weights"):
        save_model(tmp_path / "w.npz", np.zeros(3, np.float32), np.float32(-np.inf), Preprocessing(1, True))
    assert not (tmp_path / "w.npz").exists()


@pytest.mark.parametrize(
    "W, b, message",
    [
        (np.full(3, np.nan, np.float32), np.float32(0), r"3 of the 4 weights \(W and b\) are not finite"),
        (np.zeros(3, np.float32), np.float32(np.inf), r"1 of the 4 weights"),
        (
            np.zeros(4, np.float32),
            np.float32(0),
            r"W of shape \(4,\) and b of shape \(\); the image size 1 needs W of shape \(3,\)",
        ),
        (np.zeros(3, np.float32), np.zeros(2, np.float32), r"b of shape \(2,\)"),
    ],
)
def test_a_model_file_that_cannot_score_is_refused(tmp_path, W, b, message):
    save_npz(tmp_path / "w.npz", W=W, b=b, **Preprocessing(1, True).arrays())  # written by hand, not by train
    with pytest.raises(DataError, match=message):
        load_model(tmp_path / "w.npz")


def test_each_refusal_names_the_file_and_what_to_do_word_for_word(tmp_path):
    path = tmp_path / "w.npz"
    save_npz(path, W=np.array([np.nan, 0, 0], np.float32), b=np.float32(0), **Preprocessing(1, True).arrays())
    with pytest.raises(DataError) as diverged:
        load_model(path)
    assert str(diverged.value) == (
        f"{path}: 1 of the 4 weights (W and b) are not finite numbers (NaN or infinity): "
        "the training diverged; retrain with a lower train.lr (`dvc repro`)"
    )
    arrays = {**Preprocessing(1, True).arrays(), "image_size": np.float64(1.5)}
    save_npz(path, W=np.zeros(3, np.float32), b=np.float32(0), **arrays)
    with pytest.raises(DataError, match=rf"^{path}: "):
        load_model(path)
