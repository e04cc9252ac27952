import numpy as np

from stages.common import load_npz, save_npz
from stages.flatten_normalize import flatten_normalize, to_features


def test_to_features_flattens_row_major_and_scales_to_unit_interval():
    images = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3) * 10
    X = to_features(images)
    assert X.shape == (2, 12) and X.dtype == np.float32
    assert X[0, 3] == np.float32(images[0, 0, 1, 0] / np.float32(255))  # (row, column, channel) order
    assert to_features(np.full((1, 1, 1, 3), 255, np.uint8)).max() == 1.0


def test_flatten_normalize_writes_both_splits_with_image_size(tmp_path):
    for split, m in (("train", 5), ("valid", 2)):
        save_npz(
            tmp_path / "in" / f"{split}.npz",
            X=np.full((m, 4, 4, 3), 51, np.uint8),
            y=np.arange(m, dtype=np.uint8) % 2,
            names=np.array([f"cat.{i}.jpg" for i in range(m)]),
            draft=np.bool_(False),
        )
    shapes = flatten_normalize(tmp_path / "in", tmp_path / "out")
    assert shapes == {"train": (5, 48), "valid": (2, 48)}
    out = load_npz(tmp_path / "out/train.npz", ("X", "y", "names", "image_size", "draft"))
    assert int(out["image_size"]) == 4 and not out["draft"]
    np.testing.assert_allclose(out["X"], 0.2)
