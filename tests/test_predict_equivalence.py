"""predict, end to end: for real photo files of varied size, mode, format and EXIF orientation, P(cat) from
the model file equals sigmoid(X W + b) on the features the pipeline itself made of the same files
(resize_split + flatten_normalize), to float32 precision. W is random and not saturating (z is O(1)) and
looks at every pixel, so a wrong pixel scale or a wrong decode (draft ignored) changes P(cat)."""

import numpy as np
import pytest
from PIL import Image

from catsdogs.data.images import Preprocessing
from catsdogs.pipeline.config import ResizeSplitParams
from catsdogs.pipeline.npz_files import load_npz, save_npz
from catsdogs.pipeline.weights_file import load_model
from catsdogs.predict import predict_proba
from stages.flatten_normalize import flatten_normalize
from stages.resize_split import resize_split
from tests.conftest import photo_like

SIZE = 16
# (width, height, mode, format, EXIF orientation): each large enough that draft decodes at a reduced scale
PHOTOS = [
    (500, 374, "RGB", "JPEG", None),
    (300, 800, "L", "JPEG", 6),
    (640, 480, "CMYK", "JPEG", 3),
    (257, 193, "RGB", "JPEG", 8),
    (420, 260, "P", "PNG", None),
    (330, 510, "RGBA", "PNG", None),
    (700, 230, "RGB", "JPEG", 5),
    (150, 390, "RGB", "PNG", None),
]


def write_photos(raw):
    """The PHOTOS as cat.N.jpg / dog.N.jpg (PNG content under a .jpg name: Pillow reads the content)."""
    raw.mkdir()
    for i, (width, height, mode, fmt, orientation) in enumerate(PHOTOS):
        path = raw / f"{('cat', 'dog')[i % 2]}.{i}.jpg"
        photo_like(path, width, height, seed=i)
        with Image.open(path) as image:
            image = image.convert(mode)
            extra = {}
            if orientation:
                exif = Image.Exif()
                exif[0x0112] = orientation
                extra["exif"] = exif
            if mode == "RGBA":  # a real alpha channel, not all opaque
                image.putalpha(Image.linear_gradient("L").resize(image.size))
            image.save(path, format=fmt, **extra)


def pipeline_features(tmp_path, draft):
    """{file name: float32 features} as resize_split + flatten_normalize make them, and the record."""
    prepared = tmp_path / "prepared"
    files = [prepared / name for name in ("train.npz", "valid.npz", "preprocessing.json")]
    resize_split(ResizeSplitParams(SIZE, 0.5, 0, draft=draft, jobs=1), tmp_path / "raw", *files, progress=False)
    record = Preprocessing.load(files[2])
    features = {}
    for split in ("train", "valid"):
        flatten_normalize(prepared / f"{split}.npz", prepared / f"{split}_features.npz", record)
        data = load_npz(prepared / f"{split}_features.npz", ("X", "names"))
        features.update(zip(data["names"].tolist(), data["X"]))
    return features, record


@pytest.mark.parametrize("draft", [True, False])
def test_predict_equals_the_neuron_on_the_pipelines_own_features(tmp_path, draft):
    write_photos(tmp_path / "raw")
    features, record = pipeline_features(tmp_path, draft)
    assert record == Preprocessing(SIZE, draft, 255.0) and len(features) == len(PHOTOS)
    names = sorted(features)
    X = np.stack([features[name] for name in names]).astype(np.float64)
    n = SIZE * SIZE * 3
    W = (np.random.default_rng(1).normal(0, 1, n) * 4 / np.sqrt(n)).astype(np.float32)  # z = X W + b is O(1)
    b = np.float32(-0.3)
    save_npz(tmp_path / "model.npz", W=W, b=b, **record.arrays())  # as train writes it

    expected = 1 / (1 + np.exp(-(X @ W.astype(np.float64) + float(b))))  # the oracle, in float64
    p = predict_proba([tmp_path / "raw" / name for name in names], *load_model(tmp_path / "model.npz"))
    np.testing.assert_allclose(p, expected, rtol=2e-6, atol=1e-7)

    # the test can fail: P(cat) is not saturated, and depends on the pixel scale and the draft flag
    assert np.all((expected > 0.02) & (expected < 0.98)) and np.ptp(expected) > 0.1
    other_draft = Preprocessing(SIZE, not draft).features([tmp_path / "raw" / name for name in names])
    assert np.max(np.abs(1 / (1 + np.exp(-(other_draft.astype(np.float64) @ W + b))) - expected)) > 1e-3
