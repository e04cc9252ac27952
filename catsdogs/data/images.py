"""From a photo file to the neuron's input, in one place: used by resize_split, flatten_normalize and predict.

photo file --load_image(size, draft)--> uint8 (size, size, 3) --to_features(pixel_scale)--> float32 (size*size*3,)

`Preprocessing` is that whole transform as a record: resize_split writes it once
(data/prepared/preprocessing.json), flatten_normalize scales by its pixel_scale, train stores it unchanged
with the weights, and predict reads it from the model file only, so a new photo is prepared exactly
as the training photos were.

Also here: the Kaggle file name (`cat.12.jpg`, `dog.7.jpg`) that carries every photo's label, the
layout ingest writes and resize_split reads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from catsdogs.data.labels import CLASS_NAMES, LABELS
from catsdogs.errors import DataError
from catsdogs.pipeline.atomic_files import save_json

PIXEL_SCALE = 255.0  # the article divides by 255: features in [0, 1]
# The most pixels (width x height) load_image decodes, for every stage and predict: Pillow's default bound
# (Image.MAX_IMAGE_PIXELS, above which it only warns up to twice as many), fixed here so that no other
# setting of Pillow's can raise it. Decoded, such an image is 256 MiB as RGB (341 MiB with alpha).
# ingest.max_pixels may lower it for a real source; no stage raises it.
MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3  # 89,478,485
# A Kaggle file name: class name, number, .jpg or .jpeg, any case (Cat.3.JPG).
KAGGLE_NAME = re.compile(r"(cat|dog)\.(\d+)\.jpe?g", re.IGNORECASE)


def label_of(name: str) -> int | None:
    """Label from a Kaggle file name: 'cat.12.jpg' -> 1, 'dog.7.jpg' -> 0, anything else -> None."""
    match = KAGGLE_NAME.fullmatch(name)
    return LABELS[match.group(1).lower()] if match else None


def kaggle_file_name(label: int, number: int | str) -> str:
    """The Kaggle file name of photo `number` of class `label`: (1, 12) -> 'cat.12.jpg'."""
    return f"{CLASS_NAMES[label]}.{number}.jpg"


def open_image(path: Path | str) -> Image.Image:
    """Image.open without Pillow's DecompressionBombWarning, which it prints between its bound and twice
    it: every caller refuses more pixels than its own bound from the header, in the project's words."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def load_image(path: Path | str, size: int, draft: bool) -> np.ndarray:
    """Decode one image file to a uint8 array of shape (size, size, 3).

    Applies the EXIF orientation, converts any mode (grayscale, CMYK, palette, alpha) to RGB and
    resizes with bilinear interpolation without keeping the aspect ratio, as the article did.
    draft: let libjpeg decode a JPEG at a reduced scale (1/2 to 1/8) that keeps both sides >= size;
    other formats ignore it. Raises OSError (or a subclass) when the file is not a readable image, and
    Image.DecompressionBombError, before decoding, when its header announces more than MAX_PIXELS pixels.
    """
    with open_image(path) as image:
        width, height = image.size  # from the header: what the decoder would allocate
        if width * height > MAX_PIXELS:
            raise Image.DecompressionBombError(
                f"{width} x {height} = {width * height:,} pixels, more than the {MAX_PIXELS:,} any stage decodes "
                "(images.MAX_PIXELS); shrink the image first"
            )
        if draft:
            image.draft("RGB", (size, size))
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of the full image when upright
        if image.mode != "RGB":  # convert would copy an RGB image too
            image = image.convert("RGB")  # type: ignore[assignment]  # an Image, no longer the file's
        return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def to_features(images: np.ndarray, pixel_scale: float) -> np.ndarray:
    """uint8 images (m, size, size, 3) -> float32 (m, size*size*3), each pixel value divided by
    `pixel_scale` (255 in the pipeline: features in [0, 1]).

    Flattening is row-major (row, column, channel), the order the article's reshape used.
    """
    images = np.asarray(images)
    X = images.reshape(images.shape[0], -1).astype(np.float32)
    X /= np.float32(pixel_scale)  # in place: one float32 matrix in memory, not two
    return X


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """The whole photo -> features transform: decode (`draft`), resize to `image_size` x `image_size`,
    divide by `pixel_scale`. Written once by resize_split; the model file carries the same three values."""

    image_size: int
    draft: bool
    pixel_scale: float = PIXEL_SCALE

    def features(self, paths: Sequence[Path | str]) -> np.ndarray:
        """float32 features (k, image_size * image_size * 3) of k image files."""
        images = np.stack([load_image(path, self.image_size, self.draft) for path in paths])
        return to_features(images, self.pixel_scale)

    def images(self, X: np.ndarray) -> np.ndarray:
        """The uint8 images (k, image_size, image_size, 3) that features X (k, image_size * image_size * 3)
        were made from: to_features undone (each feature is a uint8 value divided by pixel_scale)."""
        values = np.rint(np.asarray(X, dtype=np.float64) * self.pixel_scale).clip(0, 255).astype(np.uint8)
        return values.reshape(-1, self.image_size, self.image_size, 3)

    def save(self, path: Path | str) -> None:
        """Write the record as JSON, e.g. {"image_size": 64, "draft": true, "pixel_scale": 255.0}."""
        save_json(path, dataclasses.asdict(self))

    @classmethod
    def load(cls, path: Path | str) -> Preprocessing:
        """Read a record written by `save`; a missing or malformed file is a DataError."""
        try:
            record = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise DataError(f"{path}: not found (run the earlier stages: `dvc repro`)") from None
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: not a preprocessing record ({err})") from None
        return cls.from_mapping(record, str(path))

    def arrays(self) -> dict[str, np.generic]:
        """The record as NumPy scalars, to store in an .npz beside the weights."""
        return {
            "image_size": np.int64(self.image_size),
            "draft": np.bool_(self.draft),
            "pixel_scale": np.float32(self.pixel_scale),
        }

    @classmethod
    def from_mapping(cls, record: Mapping, source: str) -> Preprocessing:
        """The record from a dict (the JSON file) or from an .npz's arrays (as `arrays` wrote them); a
        DataError naming `source` when a field is missing or not allowed."""
        names = [field.name for field in dataclasses.fields(cls)]
        if not isinstance(record, Mapping) or any(name not in record for name in names):
            raise DataError(f"{source}: expected the preprocessing fields {', '.join(names)}")
        image_size = _scalar(record["image_size"], "iu")
        draft = _scalar(record["draft"], "b")
        pixel_scale = _scalar(record["pixel_scale"], "iuf")
        if (
            image_size is None
            or image_size < 1
            or draft is None
            or not (pixel_scale is not None and math.isfinite(pixel_scale) and pixel_scale > 0)
        ):
            got = ", ".join(f"{name} = {record[name]!r}" for name in names)
            raise DataError(
                f"{source}: {got}; expected an integer image_size >= 1, draft true or false, a number pixel_scale > 0"
            )
        return cls(int(image_size), bool(draft), float(pixel_scale))


def _scalar(value, kinds: str) -> int | float | bool | None:
    """`value` (a JSON value or a 0-d array) as a Python scalar if its NumPy kind is one of `kinds`, else None."""
    array = np.asarray(value)
    return array.item() if array.ndim == 0 and array.dtype.kind in kinds else None
