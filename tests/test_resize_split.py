import numpy as np
import pytest
from PIL import Image

from stages.common import DataError, load_npz
from stages.resize_split import (
    ResizeSplitParams,
    label_of,
    load_image,
    read_params,
    resize_split,
    validation_mask,
)
from tests.conftest import write_params


def solid(mode, color, size=(40, 30)):
    return Image.new(mode, size, color)


@pytest.mark.parametrize(
    "name, label", [("cat.0.jpg", 1), ("dog.12.jpg", 0), ("Cat.3.JPG", 1), ("cat.jpg", None), ("bird.1.jpg", None)]
)
def test_label_comes_from_the_name(name, label):
    assert label_of(name) == label


@pytest.mark.parametrize(
    "mode, color, fmt, expected",
    [
        ("RGB", (200, 10, 30), "JPEG", (200, 10, 30)),
        ("L", 128, "JPEG", (128, 128, 128)),
        ("CMYK", (0, 255, 255, 0), "JPEG", (255, 0, 0)),
        ("RGBA", (10, 200, 30, 255), "PNG", (10, 200, 30)),
        ("P", 0, "GIF", (0, 0, 0)),
    ],
)
def test_load_image_gives_rgb_of_requested_size(tmp_path, mode, color, fmt, expected):
    path = tmp_path / "cat.1.jpg"  # content format need not match the name
    solid(mode, color).save(path, format=fmt)
    pixels = load_image(path, 16)
    assert pixels.shape == (16, 16, 3) and pixels.dtype == np.uint8
    np.testing.assert_allclose(pixels.reshape(-1, 3).mean(axis=0), expected, atol=6)


def test_load_image_applies_exif_orientation(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue, right half red
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate 90 degrees clockwise
    image.save(tmp_path / "dog.1.jpg", exif=exif)
    pixels = load_image(tmp_path / "dog.1.jpg", 8)
    assert pixels[0, 4, 2] > 200 and pixels[-1, 4, 0] > 200  # blue on top, red at the bottom


def test_load_image_rejects_non_images(tmp_path):
    (tmp_path / "cat.1.jpg").write_bytes(b"not an image")
    with pytest.raises(OSError):
        load_image(tmp_path / "cat.1.jpg", 8)


def test_validation_mask_is_stratified_seeded_and_order_independent():
    names = [f"cat.{i}.jpg" for i in range(50)] + [f"dog.{i}.jpg" for i in range(30)]
    labels = np.array([1] * 50 + [0] * 30)
    mask = validation_mask(names, labels, 0.2, seed=1)
    assert mask[labels == 1].sum() == 10 and mask[labels == 0].sum() == 6
    order = np.random.default_rng(0).permutation(len(names))
    shuffled = validation_mask([names[i] for i in order], labels[order], 0.2, seed=1)
    assert set(np.array(names)[order][shuffled]) == set(np.array(names)[mask])
    assert not np.array_equal(validation_mask(names, labels, 0.2, seed=2), mask)


def test_read_params_rejects_bad_fraction(tmp_path):
    path = write_params(tmp_path / "params.yaml", resize_split={"valid_fraction": 1.5})
    with pytest.raises(ValueError, match=r"resize_split.valid_fraction = 1.5 .*> 0 and < 1"):
        read_params(path)


def test_resize_split_writes_uint8_caches_and_skips_corrupt_files(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(10):
        solid("RGB", (250, 250, 250)).save(raw / f"cat.{i}.jpg")
        solid("RGB", (5, 5, 5)).save(raw / f"dog.{i}.jpg")
    (raw / "dog.99.jpg").write_bytes(b"")  # zero bytes
    (raw / "notes.txt").write_text("ignored: no cat/dog name")
    counts = resize_split(ResizeSplitParams(8, 0.2, 0), raw, tmp_path / "prepared", progress=False)
    assert counts == {"train": 16, "valid": 4, "skipped": 1}
    assert "dog.99.jpg" in capsys.readouterr().err
    train = load_npz(tmp_path / "prepared/train.npz", ("X", "y", "names"))
    valid = load_npz(tmp_path / "prepared/valid.npz", ("X", "y", "names"))
    assert train["X"].shape == (16, 8, 8, 3) and train["X"].dtype == np.uint8
    assert sorted(valid["y"].tolist()) == [0, 0, 1, 1]
    assert not set(train["names"]) & set(valid["names"])
    for split in (train, valid):  # labels follow the names: cats bright, dogs dark
        bright = split["X"].reshape(len(split["y"]), -1).mean(axis=1) > 128
        np.testing.assert_array_equal(bright, split["y"] == 1)


def test_resize_split_needs_both_classes(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    solid("RGB", (0, 0, 0)).save(raw / "cat.0.jpg")
    with pytest.raises(DataError, match="no usable dog image"):
        resize_split(ResizeSplitParams(8, 0.2, 0), raw, tmp_path / "prepared", progress=False)
