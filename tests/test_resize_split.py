import numpy as np
import pytest
from PIL import Image

from stages.common import DataError, load_npz
from stages.resize_split import (
    ResizeSplitParams,
    decode_all,
    label_of,
    load_image,
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


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"valid_fraction": 1.5}, r"resize_split.valid_fraction = 1.5 .*> 0 and < 1"),
        ({"draft": "yes"}, r"resize_split.draft = 'yes' is not allowed, expected true or false"),
        ({"jobs": -1}, r"resize_split.jobs = -1 is out of range, expected an integer >= 0"),
    ],
)
def test_read_params_rejects_bad_values(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        ResizeSplitParams.read(write_params(tmp_path / "params.yaml", resize_split=changes))


def photo_like(path, width, height, seed):
    """A JPEG with detail at every scale (smooth gradients plus noise), like a photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) * 127 / (width + height)], axis=-1)
    Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)).save(path, quality=90)


def test_draft_decoding_is_close_to_the_full_decode_but_not_equal(tmp_path):
    photo_like(tmp_path / "cat.1.jpg", 500, 374, seed=0)
    with Image.open(tmp_path / "cat.1.jpg") as image:
        assert image.draft("RGB", (64, 64))[1] == (0, 0, 125, 93.5)  # libjpeg decodes at 1/4 scale
    full = load_image(tmp_path / "cat.1.jpg", 64, draft=False).astype(int)
    draft = load_image(tmp_path / "cat.1.jpg", 64, draft=True).astype(int)
    assert 0 < np.abs(full - draft).mean() < 3
    small = tmp_path / "dog.1.jpg"
    photo_like(small, 100, 70, seed=1)  # under 2 x 64 on a side: no reduced scale possible
    np.testing.assert_array_equal(load_image(small, 64, draft=True), load_image(small, 64, draft=False))


def test_decode_all_output_does_not_depend_on_jobs(tmp_path, monkeypatch):
    monkeypatch.setattr("stages.resize_split.CHUNK", 3)  # several chunks for a few images
    paths = []
    for i in range(8):
        paths.append(tmp_path / f"cat.{i}.jpg")
        photo_like(paths[-1], 150 + 10 * i, 130, seed=i)
    paths.insert(4, tmp_path / "dog.0.jpg")
    paths[4].write_bytes(b"broken")
    runs = [decode_all(paths, 16, progress=False, jobs=jobs) for jobs in (1, 2, 0)]
    for X, ok, skipped in runs[1:]:
        np.testing.assert_array_equal(X, runs[0][0])
        np.testing.assert_array_equal(ok, runs[0][1])
        assert skipped == runs[0][2]
    assert runs[0][1].tolist() == [True] * 4 + [False] + [True] * 4 and runs[0][2][0][0] == "dog.0.jpg"
    assert decode_all([], 16, progress=False)[0].shape == (0, 16, 16, 3)


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


def test_resize_split_needs_both_classes_in_both_splits(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(3):
        solid("RGB", (0, 0, 0)).save(raw / f"cat.{i}.jpg")
    solid("RGB", (0, 0, 0)).save(raw / "dog.0.jpg")  # round(0.2 * 1) = 0: no dog to validate on
    with pytest.raises(DataError, match=r"resize_split.valid_fraction = 0.2 leaves no dog image in the valid split"):
        resize_split(ResizeSplitParams(8, 0.2, 0, True, 1), raw, tmp_path / "prepared", progress=False)
