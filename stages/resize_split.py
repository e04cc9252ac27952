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

import contextlib
import functools
import hashlib
import math
import mmap
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from catsdogs.data.images import Preprocessing, label_of, load_image
from catsdogs.data.labels import LABELS
from catsdogs.data.memory import available_memory, check_pipeline_fits
from catsdogs.errors import DataError
from catsdogs.pipeline.atomic_files import temp_sibling
from catsdogs.pipeline.command_line import run_cli, stage_parser
from catsdogs.pipeline.config import ResizeSplitParams
from catsdogs.pipeline.npz_files import save_npz
from catsdogs.pipeline.processes import ordered_map

CHUNK = 64  # images per task sent to a worker process


def validation_mask(
    names: Sequence[str] | np.ndarray, labels: np.ndarray, valid_fraction: float, seed: int
) -> np.ndarray:
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


def split_order(
    names: Sequence[str] | np.ndarray, labels: np.ndarray, valid_fraction: float, seed: int
) -> tuple[np.ndarray, int]:
    """The rows (m,) in the order of the two output files, the training rows then the validation rows
    (validation_mask's split, each part in the given order), and the number of training rows."""
    is_valid = validation_mask(names, labels, valid_fraction, seed)
    return np.concatenate([np.flatnonzero(~is_valid), np.flatnonzero(is_valid)]), int(np.count_nonzero(~is_valid))


@contextlib.contextmanager
def shared_rows(shape: tuple[int, ...]) -> Iterator[tuple[np.ndarray, str]]:
    """A uint8 array of zeros of `shape`, and the path by which any process maps the same memory.

    On Linux the memory is anonymous (a memfd, opened as /proc/<pid>/fd/<n>): it is freed when the last
    process holding it ends, kill -9 included. Elsewhere it is a temporary file in the working folder,
    removed on exit or, after a kill, by the next write there (common.sweep_temp). The path is valid
    inside the `with` block; the array stays valid after it.
    """
    nbytes = max(math.prod(shape), 1)  # mmap refuses 0 bytes
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("resize_split")
        path, cleanup = f"/proc/{os.getpid()}/fd/{fd}", None
    else:
        cleanup = temp_sibling(Path("rows"))
        fd, path = os.open(cleanup, os.O_RDWR), str(cleanup)
    try:
        os.ftruncate(fd, nbytes)
        array = np.frombuffer(mmap.mmap(fd, nbytes), dtype=np.uint8)[: math.prod(shape)].reshape(shape)
        yield array, path
    finally:
        os.close(fd)  # the mapping stays until the array is freed
        if cleanup:
            cleanup.unlink(missing_ok=True)


def _decode_chunk(
    chunk: tuple[int, Sequence[Path]], size: int, draft: bool, rows: str
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Decode the k paths of `chunk = (start, paths)` into rows start .. start + k - 1 of the shared array
    at `rows` (shared_rows' path); return the mask of decoded rows (k,) and the (name, reason) of every
    file that could not be decoded (its row stays zero)."""
    start, paths = chunk
    out = np.memmap(rows, np.uint8, "r+", offset=start * size * size * 3, shape=(len(paths), size, size, 3))
    ok = np.zeros(len(paths), dtype=bool)
    skipped = []
    for row, path in enumerate(paths):
        try:
            out[row] = load_image(path, size, draft)
            ok[row] = True
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            skipped.append((path.name, f"{type(err).__name__}: {err}"))
    return ok, skipped


def decode_all(
    paths: Sequence[Path], size: int, progress: bool, draft: bool, jobs: int
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Decode `paths` (m,) with `jobs` processes (0 = all cores) into X (m, size, size, 3) uint8; return
    X, the mask of decoded rows (m,), and the (name, reason) of every file that could not be decoded.
    Each process writes each image straight into its row of X (shared memory: no image goes through a
    pipe, none is copied); each image is decoded on its own, so X is the same for any `jobs`."""
    chunks = [(start, list(paths[start : start + CHUNK])) for start in range(0, len(paths), CHUNK)]
    ok, skipped = np.zeros(len(paths), dtype=bool), []
    shared = shared_rows((len(paths), size, size, 3))
    bar = tqdm(total=len(paths), desc="resize_split", unit="img", disable=not progress)
    with shared as (X, rows), bar:
        decode_chunk = functools.partial(_decode_chunk, size=size, draft=draft, rows=rows)
        for (start, chunk), (chunk_ok, chunk_skipped) in ordered_map(decode_chunk, chunks, jobs):
            ok[start : start + len(chunk)] = chunk_ok
            skipped += chunk_skipped
            bar.update(len(chunk))
    return X, ok, skipped


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
    names = np.array([p.name for p in paths])
    # The split is decided from the names before decoding (ingest kept only photos that decode), so
    # that each photo is decoded straight into its row of the output files; should some photo fail
    # after all, it is decided again on those that decoded. order[r]: the photo in output row r.
    order, n_train = split_order(names, labels, params.valid_fraction, params.seed)
    X, ok, skipped = decode_all([paths[i] for i in order], params.size, progress, params.draft, params.jobs)
    for name, reason in sorted(skipped):
        print(f"resize_split: skipped {name}: {reason}", file=sys.stderr)
    if skipped:
        decoded = np.flatnonzero(ok)[np.argsort(order[ok])]  # rows of X that decoded, in name order
        again, n_train = split_order(names[order[decoded]], labels[order[decoded]], params.valid_fraction, params.seed)
        X, order = X[decoded[again]], order[decoded[again]]
    labels, names = labels[order], names[order]
    for class_name, label in LABELS.items():
        if not np.any(labels == label):
            raise DataError(f"{raw_dir}: no usable {class_name} image (need {class_name}.N.jpg files)")
    splits = {"train": slice(0, n_train), "valid": slice(n_train, None)}
    for split, rows in splits.items():
        for class_name, label in LABELS.items():
            if not np.any(labels[rows] == label):
                raise DataError(
                    f"resize_split.valid_fraction = {params.valid_fraction} leaves no {class_name} image in the "
                    f"{split} split ({int(np.sum(labels == label))} usable {class_name} images in all); "
                    "choose a fraction that keeps both classes in both splits"
                )
    for path, rows in zip((train_file, valid_file), splits.values()):
        save_npz(path, X=X[rows], y=labels[rows], names=names[rows])  # X[rows]: a view, no copy
    Preprocessing(image_size=params.size, draft=params.draft).save(preprocessing_file)
    return {"train": n_train, "valid": len(names) - n_train, "skipped": len(skipped)}


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
