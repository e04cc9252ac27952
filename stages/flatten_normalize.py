"""Stage 3, flatten_normalize: uint8 images (m, size, size, 3) -> float32 features (m, size*size*3) in [0, 1].

Reads each split's images (.npz from resize_split) and writes its features (.npz) with X (m, n_features)
float32, y (m,) uint8 and names (m,); pixel values are divided by the preprocessing record's pixel_scale
(images.to_features). Every path comes from the command line (dvc.yaml's `cmd:`).
Rows are examples (the article's notebook used the transpose, one column per image).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from catsdogs.data.images import Preprocessing, to_features
from catsdogs.errors import DataError
from catsdogs.pipeline.command_line import run_cli, stage_parser
from catsdogs.pipeline.npz_files import load_npz, save_npz


def flatten_normalize(images_file: Path, features_file: Path, preprocessing: Preprocessing) -> tuple[int, int]:
    """Run the stage on one split; return its feature matrix shape (m, n_features)."""
    data = load_npz(images_file, ("X", "y", "names"))
    size = preprocessing.image_size
    if data["X"].shape[1:] != (size, size, 3):
        raise DataError(
            f"{images_file}: images of shape {data['X'].shape[1:]}, the preprocessing record says "
            f"{(size, size, 3)} (rerun resize_split: `dvc repro`)"
        )
    X = to_features(data["X"], preprocessing.pixel_scale)
    save_npz(features_file, X=X, y=data["y"], names=data["names"])
    return X.shape


def main(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(
        "flatten_normalize",
        "Flatten --train-images and --valid-images (uint8 .npz) to one row of size*size*3 features per "
        "image, divided by the pixel_scale of --preprocessing (255: features in [0, 1]), into "
        "--train-features and --valid-features (float32 .npz). No parameters.",
        paths={
            "--preprocessing": "preprocessing record .json (in)",
            "--train-images": "training images .npz (in)",
            "--valid-images": "validation images .npz (in)",
            "--train-features": "training features .npz (out)",
            "--valid-features": "validation features .npz (out)",
        },
    )
    args = parser.parse_args(argv)
    preprocessing = Preprocessing.load(args.preprocessing)
    shapes = {
        split: flatten_normalize(images, features, preprocessing)
        for split, images, features in (
            ("train", args.train_images, args.train_features),
            ("valid", args.valid_images, args.valid_features),
        )
    }
    print("flatten_normalize: " + ", ".join(f"{split} {shape[0]} x {shape[1]}" for split, shape in shapes.items()))


if __name__ == "__main__":
    run_cli(main)
