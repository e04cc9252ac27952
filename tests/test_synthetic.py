"""Tests for catsdogs/data/synthetic.py (the deterministic synthetic cats-vs-dogs generator)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import catsdogs.pipeline.atomic_files
from catsdogs.data.synthetic import CAT, DOG, photo_jpeg, synthetic_photo, write_synthetic_dataset
from catsdogs.data.synthetic_scene import sample_size


def _digests(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


# ---------------------------------------------------------------- pure function
def test_photo_is_rgb_uint8_and_deterministic():
    a = synthetic_photo(CAT, 3, seed=7)
    b = synthetic_photo(CAT, 3, seed=7)
    assert a.mode == "RGB"
    arr = np.asarray(a)
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
    assert arr.shape[:2] == (a.height, a.width)
    np.testing.assert_array_equal(arr, np.asarray(b))


@pytest.mark.parametrize(
    "other",
    [(CAT, 3, 8), (CAT, 4, 7), (DOG, 3, 7)],
    ids=["seed", "index", "label"],
)
def test_photo_changes_with_seed_index_and_label(other):
    ref = np.asarray(synthetic_photo(CAT, 3, 7))
    img = np.asarray(synthetic_photo(*other))
    assert img.shape != ref.shape or not np.array_equal(img, ref)


def test_photo_does_not_touch_or_depend_on_global_random_state():
    np.random.seed(0)
    a = np.asarray(synthetic_photo(DOG, 5, 1))
    state = np.random.get_state()[1].copy()
    np.random.seed(12345)
    np.random.random(1000)
    b = np.asarray(synthetic_photo(DOG, 5, 1))
    np.testing.assert_array_equal(a, b)
    np.random.seed(0)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_photo_independent_of_generation_order():
    keys = [(label, i) for label in (CAT, DOG) for i in range(6)]
    forward = {k: np.asarray(synthetic_photo(k[0], k[1], 11)) for k in keys}
    backward = {k: np.asarray(synthetic_photo(k[0], k[1], 11)) for k in reversed(keys)}
    for k in keys:
        np.testing.assert_array_equal(forward[k], backward[k])


def test_images_are_not_flat_and_classes_differ():
    imgs = [np.asarray(synthetic_photo(label, i, 0), dtype=np.float64) for label in (CAT, DOG) for i in range(4)]
    for arr in imgs:
        assert arr.std() > 10.0  # an actual picture, not a constant fill
    assert len({a.tobytes() for a in imgs}) == len(imgs)


def test_size_distribution_sample():
    sizes = [synthetic_photo(label, i, 3).size for label in (CAT, DOG) for i in range(100)]
    widths = np.array([s[0] for s in sizes])
    heights = np.array([s[1] for s in sizes])
    long_side = np.maximum(widths, heights)
    short_side = np.minimum(widths, heights)
    assert (widths > heights).sum() >= 80, "landscape images should be the majority"
    assert (heights > widths).sum() >= 20, "some portrait images expected"
    assert long_side.min() >= 32 and long_side.max() <= 1050
    assert short_side.min() >= 8
    assert np.mean((long_side >= 300) & (long_side <= 500)) >= 0.9
    assert np.any(long_side == 500) and np.any(long_side < 500)
    assert sizes.count((500, 374)) >= 10, "500x374 should be common, like the Kaggle data"


def test_size_sampler_tails_and_class_independence():
    # The sampler only sees the rng, so the size distribution cannot depend on the class.
    long_sides = []
    for i in range(20000):
        w, h = sample_size(np.random.default_rng([5, i]))
        long_sides.append(max(w, h))
    long_sides = np.array(long_sides)
    tiny = np.mean(long_sides < 64)
    large = np.mean(long_sides >= 900)
    assert 0.005 < tiny < 0.02
    assert 0.005 < large < 0.02
    assert long_sides.max() <= 1050


def test_tiny_and_large_photos_render():
    # Find a tiny and a large image among the first indices (sizes come first from the same rng).
    found = {}
    for i in range(2000):
        w, h = sample_size(np.random.default_rng([0, DOG, i]))
        kind = "tiny" if max(w, h) < 64 else "large" if max(w, h) >= 900 else None
        if kind and kind not in found:
            found[kind] = (i, (w, h))
        if len(found) == 2:
            break
    assert set(found) == {"tiny", "large"}
    for i, size in found.values():
        img = synthetic_photo(DOG, i, 0)
        assert img.size == size
        assert np.asarray(img).std() > 5.0


def test_size_does_not_reveal_the_class():
    cat = np.array([synthetic_photo(CAT, i, 9).size for i in range(150)], dtype=float)
    dog = np.array([synthetic_photo(DOG, i, 9).size for i in range(150)], dtype=float)
    # same marginal distribution: means of width/height within sampling noise
    assert np.all(np.abs(np.median(cat, axis=0) - np.median(dog, axis=0)) <= 40)
    assert abs(np.mean(cat[:, 0] > cat[:, 1]) - np.mean(dog[:, 0] > dog[:, 1])) < 0.15


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"label": 2, "index": 0, "seed": 0}, "label"),
        ({"label": True, "index": 0, "seed": 0}, "label"),
        ({"label": 1, "index": -1, "seed": 0}, "index"),
        ({"label": 1, "index": 0, "seed": -3}, "seed"),
        ({"label": 1, "index": 0, "seed": 1.5}, "seed"),
    ],
)
def test_photo_argument_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        synthetic_photo(**kwargs)


# ---------------------------------------------------------------- writer
def test_write_names_count_and_sorted(tmp_path):
    out = tmp_path / "raw" / "train"  # created with parents
    paths = write_synthetic_dataset(out, n_per_class=3, seed=0, progress=False)
    expected = sorted(out / f"{name}.{i}.jpg" for name in ("cat", "dog") for i in range(3))
    assert paths == expected
    assert sorted(out.iterdir()) == expected  # nothing else (no temp files left)
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.mode == "RGB"


def test_write_matches_pure_function(tmp_path):
    (path,) = [p for p in write_synthetic_dataset(tmp_path, 2, seed=4, progress=False) if p.name == "dog.1.jpg"]
    ref = synthetic_photo(DOG, 1, 4)
    with Image.open(path) as im:
        assert im.size == ref.size
        diff = np.abs(np.asarray(im, dtype=np.int16) - np.asarray(ref, dtype=np.int16))
    assert diff.mean() < 6.0  # only JPEG loss


def test_files_are_the_one_encoders_bytes(tmp_path):
    paths = write_synthetic_dataset(tmp_path, 2, seed=3, jpeg_quality=80, progress=False)
    assert [p.read_bytes() for p in paths] == [photo_jpeg(label, i, 3, 80) for label in (CAT, DOG) for i in (0, 1)]
    with Image.open(paths[0]) as image:
        assert image.format == "JPEG" and "progressive" not in image.info
        assert image.layer[1][1:3] == (1, 1) and image.layer[0][1:3] == (2, 2)  # 4:2:0 chroma subsampling


def test_write_is_byte_deterministic_and_seed_sensitive(tmp_path):
    a = _digests(write_synthetic_dataset(tmp_path / "a", 3, seed=1, progress=False))
    b = _digests(write_synthetic_dataset(tmp_path / "b", 3, seed=1, progress=False))
    c = _digests(write_synthetic_dataset(tmp_path / "c", 3, seed=2, progress=False))
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)


def test_write_leaves_global_random_state_alone(tmp_path):
    np.random.seed(3)
    before = np.random.get_state()[1].copy()
    write_synthetic_dataset(tmp_path, 1, seed=0, progress=False)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_write_prefix_is_stable_when_n_grows(tmp_path):
    small = _digests(write_synthetic_dataset(tmp_path / "s", 2, seed=5, progress=False))
    big = _digests(write_synthetic_dataset(tmp_path / "b", 4, seed=5, progress=False))
    assert all(big[k] == v for k, v in small.items())


def test_write_quality_changes_bytes(tmp_path):
    q90 = _digests(write_synthetic_dataset(tmp_path / "q90", 1, seed=0, progress=False))
    q50 = _digests(write_synthetic_dataset(tmp_path / "q50", 1, seed=0, jpeg_quality=50, progress=False))
    assert all(q90[k] != q50[k] for k in q90)


def test_write_overwrites_atomically_and_keeps_other_files(tmp_path):
    (tmp_path / "cat.0.jpg").write_bytes(b"stale")
    (tmp_path / "notes.txt").write_text("keep me")
    write_synthetic_dataset(tmp_path, 1, seed=0, progress=False)
    assert (tmp_path / "cat.0.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.0.jpg", "dog.0.jpg", "notes.txt"]


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(catsdogs.pipeline.atomic_files.os, "replace", boom)  # the rename of atomic_path
    with pytest.raises(OSError, match="disk full"):
        write_synthetic_dataset(tmp_path, 1, seed=0, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_progress_bar(tmp_path, capsys):
    write_synthetic_dataset(tmp_path / "on", 2, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "ingest: synthetic" in err and "4/4" in err
    write_synthetic_dataset(tmp_path / "off", 2, seed=0, progress=False)
    assert "ingest: synthetic" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, name, allowed",
    [
        ({"n_per_class": 0}, "n_per_class", "expected an integer >= 1"),
        ({"n_per_class": -2}, "n_per_class", "expected an integer >= 1"),
        ({"n_per_class": 2.5}, "n_per_class", "expected an integer >= 1"),
        ({"n_per_class": True}, "n_per_class", "expected an integer >= 1"),
        ({"seed": -1}, "seed", "expected an integer >= 0"),
        ({"seed": "1"}, "seed", "expected an integer >= 0"),
        ({"jpeg_quality": 0}, "jpeg_quality", "expected an integer >= 1 and <= 95"),
        ({"jpeg_quality": 96}, "jpeg_quality", "expected an integer >= 1 and <= 95"),
        ({"jpeg_quality": 90.5}, "jpeg_quality", "expected an integer >= 1 and <= 95"),
    ],
)
def test_write_argument_validation(tmp_path, kwargs, name, allowed):
    args = {"n_per_class": 1, "seed": 0, "jpeg_quality": 90, "progress": False, **kwargs}
    out = tmp_path / "never"
    with pytest.raises(ValueError, match=name) as exc:
        write_synthetic_dataset(out, **args)
    assert allowed in str(exc.value)
    assert not out.exists()  # validated before anything touches the disk
