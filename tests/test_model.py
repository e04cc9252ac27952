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


def test_w_is_read_only_up_to_the_size_its_image_size_needs_on_both_sides(tmp_path):
    # image size 1: W needs 3 float32 = 12 bytes, plus at most 4096 of .npy header: a member of 4108 bytes
    # at most. A uint8 W of 3980 values is a 4108-byte member (128 bytes of header): read, then refused for
    # its shape; one more value and it is refused unread, for its size.
    path = tmp_path / "w.npz"
    save_npz(path, W=np.zeros(3980, np.uint8), b=np.float32(0), **Preprocessing(1, True).arrays())
    with pytest.raises(DataError, match=r"W of shape \(3980,\) and b of shape \(\); the image size 1 needs"):
        load_model(path)
    save_npz(path, W=np.zeros(3981, np.uint8), b=np.float32(0), **Preprocessing(1, True).arrays())
    with pytest.raises(DataError, match=r"damaged \(W.npy: 4109 bytes, more than the 4108 it may hold\)"):
        load_model(path)


@pytest.mark.parametrize(
    "W_type, b_type", [(np.float64, np.float32), (np.float32, np.float64), (np.float16, np.float16)]
)
def test_w_or_b_not_float32_is_refused(tmp_path, W_type, b_type):
    path = tmp_path / "w.npz"
    save_npz(path, W=np.zeros(3, W_type), b=b_type(0), **Preprocessing(1, True).arrays())
    with pytest.raises(DataError) as refused:
        load_model(path)
    assert str(refused.value) == (
        f"{path}: W of type {np.dtype(W_type)} and b of type {np.dtype(b_type)}; expected float32 numbers"
    )


# float32 W whose sum |W| in float64 is exactly 1e30 (float64): the three float32 parts of 1e30
EXACTLY_1E30 = [9.999999394896025e29, 6.051039611854738e22, 1407374883553280.0]


@pytest.mark.parametrize(
    "W, b, refused",
    [
        (EXACTLY_1E30, 0.0, True),  # the bound is MAX_SCORE itself: refused
        (EXACTLY_1E30[:2] + [0.0], -EXACTLY_1E30[2], True),  # so it is with the last part in |b|
        (EXACTLY_1E30[:2] + [0.0], 0.0, False),  # 1e30 - 1.4e15: read
    ],
)
def test_weights_that_could_overflow_are_refused_from_the_bound_on(tmp_path, W, b, refused):
    path = tmp_path / "w.npz"
    save_npz(path, W=np.array(W, np.float32), b=np.float32(b), **Preprocessing(1, True, 255.0).arrays())
    assert float(np.abs(np.array(W, np.float32), dtype=np.float64).sum()) + abs(b) == (
        1e30 if refused else 1e30 - 2**50 * 1.25
    )
    if refused:
        with pytest.raises(DataError) as error:
            load_model(path)
        assert str(error.value) == (
            f"{path}: weights so large that x W + b could reach 1e+30 and overflow (at most 1e+30 allowed); "
            "retrain it (`dvc repro`)"
        )
    else:
        np.testing.assert_array_equal(load_model(path).W, np.array(W, np.float32))


@pytest.mark.parametrize("W0, refused", [(1e30 / 509, True), (1e30 / 511, False)])
def test_the_bound_counts_the_largest_feature_255_over_pixel_scale(tmp_path, W0, refused):
    # pixel_scale 0.5: a feature reaches 510, so |x W| reaches 510 W0: over 1e30 for 1e30 / 509, not for / 511
    path = tmp_path / "w.npz"
    save_npz(path, W=np.array([W0, 0, 0], np.float32), b=np.float32(0), **Preprocessing(1, True, 0.5).arrays())
    if refused:
        with pytest.raises(DataError, match=r"could reach 1e\+30 and overflow"):
            load_model(path)
    else:
        assert load_model(path).W[0] == np.float32(W0)


def test_the_bound_is_summed_in_float64_where_float32_would_overflow(tmp_path):
    path = tmp_path / "w.npz"
    W = np.array([3e38, 3e38, 0], np.float32)  # finite float32 numbers whose float32 sum is infinite
    save_npz(path, W=W, b=np.float32(0), **Preprocessing(1, True, 255.0).arrays())
    with pytest.raises(DataError, match=r"w.npz: weights so large that x W \+ b could reach 6e\+38 and overflow"):
        load_model(path)
