"""Stage 2, resize_split: decode every photo, resize it to size x size RGB, split train / validation.

Writes the train and valid image files (.npz) with uint8 arrays X (m, size, size, 3), y (m,) (cat = 1,
dog = 0) and the file names (m,), rows sorted by name; and the preprocessing record (images.Preprocessing,
JSON): the image size, draft decoding and pixel scale that a new photo needs, read by flatten_normalize
and train. Every path comes from the command line (dvc.yaml's `cmd:`).

Speed: with `draft: true` libjpeg decodes each JPEG directly at 1/2, 1/4 or 1/8 scale (the smallest
that is still at least size x size), which skips most of the decoding work; the bilinear resize then
starts from that smaller image. Images are decoded by `jobs` processes; every image is decoded on its
own, so the output does not depend on `jobs`.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from stages.common import (
    LABELS,
    DataError,
    ordered_map,
    run_cli,
    save_npz,
    stage_parser,
    usable_cores,
)
from stages.images import Preprocessing, label_of, load_image
from stages.memory import available_memory, check_pipeline_fits
from stages.params import Flag, Number, param, stage_params

CHUNK = 64  # images per task sent to a worker process
# Kaggle's photos are at most about 500 px on the long side (a few reach 1,050): a larger square only
# interpolates pixels they do not have. Memory is bounded separately (stages/memory.py), from the image count.
MAX_SIZE = 512


@stage_params("resize_split")
class ResizeSplitParams:
    size: int = param(
        64, Number(low=1, high=MAX_SIZE, integer=True), "side of the square images, in pixels (the article: 64)"
    )
    valid_fraction: float = param(
        0.2, Number(low=0, high=1, low_open=True, high_open=True), "fraction of each class held out for validation"
    )
    seed: int = param(42, Number(low=0, integer=True), "seed of the split")
    draft: bool = param(True, Flag(), "let libjpeg decode at 1/2, 1/4 or 1/8 scale before the resize")
    jobs: int = param(
        0, Number(low=0, high=1024, integer=True), "worker processes decoding images; 0 = all cores", tracked=False
    )


def validation_mask(names: Sequence[str], labels: np.ndarray, valid_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask (m,) of the rows that go to validation.

    Stratified: round(valid_fraction * count) images of each class. Which ones is decided by a
    seeded hash of each file name, so the split depends on the set of names and the seed, never on
    the order the files were listed in.
    """
    labels = np.asarray(labels)
    keys = np.array([hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).hexdigest() for name in names])
    mask = np.zeros(len(names), dtype=bool)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        n_valid = int(round(valid_fraction * len(rows)))
        mask[rows[np.argsort(keys[rows], kind="stable")[:n_valid]]] = True
    return mask


def list_labelled_images(raw_dir: Path) -> tuple[list[Path], np.ndarray]:
    """Image files of `raw_dir` with a cat/dog name, sorted by name, and their labels (m,)."""
    paths = sorted((p for p in Path(raw_dir).iterdir() if label_of(p.name) is not None), key=lambda p: p.name)
    return paths, np.array([label_of(p.name) for p in paths], dtype=np.uint8)


def _decode_chunk(
    paths: Sequence[Path], size: int, draft: bool
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Decode `paths` (k,): X (k, size, size, 3) uint8 (zeros where a file failed), the mask of decoded
    rows (k,), and the (name, reason) of every file that could not be decoded."""
    X = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    skipped = []
    for row, path in enumerate(paths):
        try:
            X[row] = load_image(path, size, draft)
            ok[row] = True
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            skipped.append((path.name, f"{type(err).__name__}: {err}"))
    return X, ok, skipped


def decode_all(
    paths: Sequence[Path], size: int, progress: bool = True, draft: bool = True, jobs: int = 1
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Decode `paths` (m,) with `jobs` processes (0 = all cores) into X (m, size, size, 3) uint8; return
    X, the mask of decoded rows (m,), and the (name, reason) of every file that could not be decoded.
    Chunks are put back in order, so the result is the same for any `jobs`."""
    chunks = [list(paths[start : start + CHUNK]) for start in range(0, len(paths), CHUNK)]
    parts = [_decode_chunk([], size, draft)]  # makes m = 0 work
    with tqdm(total=len(paths), desc="resize_split", unit="img", disable=not progress) as bar:
        decode_chunk = functools.partial(_decode_chunk, size=size, draft=draft)
        for chunk, part in ordered_map(decode_chunk, chunks, min(jobs or usable_cores(), max(len(chunks), 1))):
            parts.append(part)
            bar.update(len(chunk))
    X, ok, skipped = zip(*parts)
    return np.concatenate(X), np.concatenate(ok), [item for chunk in skipped for item in chunk]


def resize_split(
    params: ResizeSplitParams,
    raw_dir: Path,
    train_file: Path,
    valid_file: Path,
    preprocessing_file: Path,
    progress: bool = True,
) -> dict[str, int]:
    """Run the stage: the photos of `raw_dir` to `train_file` and `valid_file`, and the preprocessing
    record to `preprocessing_file`; return counts {train, valid, skipped}."""
    paths, labels = list_labelled_images(raw_dir)
    check_pipeline_fits(len(paths), params.size, available_memory(), raw_dir)  # before decoding anything
    X, ok, skipped = decode_all(paths, params.size, progress, params.draft, params.jobs)
    for name, reason in skipped:
        print(f"resize_split: skipped {name}: {reason}", file=sys.stderr)
    names = np.array([p.name for p in paths])
    X, labels, names = X[ok], labels[ok], names[ok]
    for class_name, label in LABELS.items():
        if not np.any(labels == label):
            raise DataError(f"{raw_dir}: no usable {class_name} image (need {class_name}.N.jpg files)")
    is_valid = validation_mask(names, labels, params.valid_fraction, params.seed)
    for split, rows in (("train", ~is_valid), ("valid", is_valid)):
        for class_name, label in LABELS.items():
            if not np.any(labels[rows] == label):
                raise DataError(
                    f"resize_split.valid_fraction = {params.valid_fraction} leaves no {class_name} image in the "
                    f"{split} split ({int(np.sum(labels == label))} usable {class_name} images in all); "
                    "choose a fraction that keeps both classes in both splits"
                )
    for path, rows in ((train_file, ~is_valid), (valid_file, is_valid)):
        save_npz(path, X=X[rows], y=labels[rows], names=names[rows])
    Preprocessing(image_size=params.size, draft=params.draft).save(preprocessing_file)
    return {"train": int((~is_valid).sum()), "valid": int(is_valid.sum()), "skipped": len(skipped)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = stage_parser(
        "resize_split",
        "Decode the photos of --raw (cat.N.jpg, dog.N.jpg), resize to size x size RGB (bilinear), split "
        "stratified into --train-images and --valid-images (uint8 .npz), with `jobs` processes; write the "
        "preprocessing a new photo needs to --preprocessing.",
        paths={
            "--raw": "folder of the photos (in)",
            "--train-images": "training images .npz (out)",
            "--valid-images": "validation images .npz (out)",
            "--preprocessing": "preprocessing record .json (out)",
        },
        params=ResizeSplitParams,
    )
    args = parser.parse_args(argv)
    params = ResizeSplitParams.read(args.params)
    counts = resize_split(params, args.raw, args.train_images, args.valid_images, args.preprocessing)
    print(f"resize_split: {counts['train']} train, {counts['valid']} valid, {counts['skipped']} skipped")


if __name__ == "__main__":
    run_cli(main)
