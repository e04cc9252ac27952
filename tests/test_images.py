"""Tests for catsdogs/data/images.py: decoding a photo, features, the Kaggle file name, the preprocessing record."""

import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import catsdogs.data.images
from catsdogs.data.images import Preprocessing, kaggle_file_name, label_of, load_image, to_features
from catsdogs.errors import DataError
from tests.conftest import black_png, photo_like


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
    pixels = load_image(path, 16, draft=True)
    assert pixels.shape == (16, 16, 3) and pixels.dtype == np.uint8
    np.testing.assert_allclose(pixels.reshape(-1, 3).mean(axis=0), expected, atol=6)


def test_load_image_applies_exif_orientation(tmp_path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue, right half red
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate 90 degrees clockwise
    image.save(tmp_path / "dog.1.jpg", exif=exif)
    pixels = load_image(tmp_path / "dog.1.jpg", 8, draft=True)
    assert pixels[0, 4, 2] > 200 and pixels[-1, 4, 0] > 200  # blue on top, red at the bottom


# EXIF orientation -> what a viewer does to the stored pixels (rows, columns, channels) to show them upright
ORIENTATIONS = {
    1: lambda A: A,
    2: np.fliplr,  # mirrored left-right
    3: lambda A: np.rot90(A, 2),  # upside down
    4: np.flipud,  # mirrored top-bottom
    5: lambda A: A.transpose(1, 0, 2),  # mirrored along the main diagonal
    6: lambda A: np.rot90(A, -1),  # rotate 90 degrees clockwise
    7: lambda A: np.rot90(A, 2).transpose(1, 0, 2),  # mirrored along the anti-diagonal
    8: lambda A: np.rot90(A, 1),  # rotate 90 degrees counter-clockwise
}


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
@pytest.mark.parametrize("draft", [True, False])
def test_load_image_applies_every_exif_orientation(tmp_path, orientation, draft):
    # a square PNG of distinct random pixels at the output size: the resize is the identity, so the
    # decoded pixels must be the stored ones turned as numpy turns them, exactly
    stored = np.random.default_rng(orientation).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "cat.1.png", exif=exif)
    np.testing.assert_array_equal(load_image(tmp_path / "cat.1.png", 6, draft), ORIENTATIONS[orientation](stored))


def test_load_image_resizes_bilinearly(tmp_path):
    """Upscaling 2 x 2 -> 4 x 4 by hand: output pixel centres 0.25, 0.75, 1.25, 1.75 (in input pixels) sit
    on input centres 0.5, 1.5 with weights (1, 0), (3/4, 1/4), (1/4, 3/4), (0, 1) (held at the edges),
    along rows and columns alike. Values are multiples of 16, so each pass is exact in uint8."""
    stored = np.random.default_rng(5).integers(0, 16, (2, 2, 3)).astype(np.uint8) * 16
    Image.fromarray(stored).save(tmp_path / "cat.1.png")
    M = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    expected = np.einsum("ir,rcx,jc->ijx", M, stored.astype(np.float64), M)  # M A M^T per channel
    np.testing.assert_array_equal(load_image(tmp_path / "cat.1.png", 4, draft=False), expected)


def test_load_image_silences_only_the_decompression_bomb_warning(tmp_path):
    """Pillow's other warnings about a file still reach the caller: an APNG control chunk announcing 0
    frames (Pillow warns while opening it, then reads the plain PNG)."""
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(png, format="PNG")
    data = png.getvalue()
    actl = b"acTL" + bytes(8)  # num_frames 0, num_plays 0
    chunk = struct.pack(">I", 8) + actl + struct.pack(">I", zlib.crc32(actl))
    (tmp_path / "cat.1.png").write_bytes(data[:33] + chunk + data[33:])  # after the signature and IHDR
    with pytest.warns(UserWarning, match="Invalid APNG"):
        pixels = load_image(tmp_path / "cat.1.png", 4, draft=True)
    assert pixels.tolist() == [[[10, 20, 30]] * 4] * 4


def test_load_image_rejects_non_images(tmp_path):
    (tmp_path / "cat.1.jpg").write_bytes(b"not an image")
    with pytest.raises(OSError):
        load_image(tmp_path / "cat.1.jpg", 8, draft=True)


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


def test_to_features_flattens_row_major_and_scales_to_unit_interval():
    images = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3) * 10
    X = to_features(images, 255.0)
    assert X.shape == (2, 12) and X.dtype == np.float32
    assert X[0, 3] == np.float32(images[0, 0, 1, 0] / np.float32(255))  # (row, column, channel) order
    assert to_features(np.full((1, 1, 1, 3), 255, np.uint8), 255.0).max() == 1.0


@pytest.mark.parametrize("label, number", [(1, 0), (0, 12), (1, "7")])
def test_kaggle_file_name_is_what_label_of_reads(label, number):
    name = kaggle_file_name(label, number)
    assert name == f"{('dog', 'cat')[label]}.{number}.jpg" and label_of(name) == label


def test_preprocessing_record_round_trips_through_json_and_npz_arrays(tmp_path):
    record = Preprocessing(image_size=64, draft=True)
    record.save(tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text()) == {"image_size": 64, "draft": True, "pixel_scale": 255.0}
    assert Preprocessing.load(tmp_path / "p.json") == record
    arrays = record.arrays()
    assert (arrays["image_size"].dtype, arrays["draft"].dtype, arrays["pixel_scale"].dtype) == (
        np.int64,
        np.bool_,
        np.float32,
    )
    assert Preprocessing.from_mapping({k: np.asarray(v) for k, v in arrays.items()}, "x") == record


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"image_size": 64, "draft": true}', "expected the preprocessing fields image_size, draft, pixel_scale"),
        (
            '{"image_size": 0, "draft": true, "pixel_scale": 255.0}',
            "image_size = 0, .*; expected an integer image_size from 1 to 512",
        ),
        # issue 17: out of range although finite (a 1.7 GB W, features of inf and NaN)
        ('{"image_size": 513, "draft": true, "pixel_scale": 255.0}', "image_size = 513, .*from 1 to 512"),
        ('{"image_size": 8000, "draft": true, "pixel_scale": 255.0}', "image_size = 8000"),
        ('{"image_size": 64, "draft": false, "pixel_scale": 1e-300}', "pixel_scale = 1e-300;.*from 0.001 to 1e"),
        ('{"image_size": 64, "draft": false, "pixel_scale": 1e-45}', "pixel_scale = 1e-45;"),
        ('{"image_size": 64, "draft": false, "pixel_scale": 1e300}', "pixel_scale = 1e[+]300;"),
        ('{"image_size": 1' + "0" * 400 + ', "draft": false, "pixel_scale": 255}', "image_size = 1000"),
        ("[" * 100000 + "]" * 100000, "not a preprocessing record"),
        ('{"image_size": 64, "draft": "yes", "pixel_scale": 255.0}', "draft = 'yes'"),
        ('{"image_size": 64, "draft": false, "pixel_scale": -1}', "pixel_scale = -1"),
        ('{"image_size": 64.5, "draft": false, "pixel_scale": 255}', "image_size = 64.5"),
        ('{"image_size": [64], "draft": false, "pixel_scale": 255}', r"image_size = \[64\]"),
        ('{"image_size": 64, "draft": false, "pixel_scale": 0}', "pixel_scale = 0;"),
        ('{"image_size": 64, "draft": false, "pixel_scale": NaN}', "pixel_scale = nan;"),
        ('{"image_size": 64, "draft": false, "pixel_scale": Infinity}', "pixel_scale = inf;"),
        ('{"image_size": 64, "draft": false, "pixel_scale": "255"}', "pixel_scale = '255';"),
        ("[1, 2]", "expected the preprocessing fields"),
        ("not json", "not a preprocessing record"),
    ],
)
def test_a_bad_record_is_a_data_error_naming_the_file(tmp_path, text, message):
    (tmp_path / "p.json").write_text(text)
    with pytest.raises(DataError, match=f"p.json: .*{message}"):
        Preprocessing.load(tmp_path / "p.json")
    with pytest.raises(DataError, match="not found"):
        Preprocessing.load(tmp_path / "missing.json")


def test_a_bad_record_read_from_an_npz_shows_plain_values_not_arrays():
    """An .npz holds 0-d arrays: the message shows the numbers they hold, as a JSON record's would be."""
    record = {"image_size": np.asarray(0), "draft": np.asarray(True), "pixel_scale": np.asarray(np.float32(0.5))}
    with pytest.raises(DataError) as refused:
        Preprocessing.from_mapping(record, "w.npz")
    assert str(refused.value) == (
        "w.npz: image_size = 0, draft = True, pixel_scale = 0.5; expected an integer image_size from 1 to 512, "
        "draft true or false, a number pixel_scale from 0.001 to 1e+06 (255: features in [0, 1])"
    )


@pytest.mark.parametrize(
    "record, expected",
    [
        ({"image_size": 1, "draft": False, "pixel_scale": 0.5}, Preprocessing(1, False, 0.5)),  # the bounds
        ({"image_size": 3, "draft": True, "pixel_scale": 510}, Preprocessing(3, True, 510.0)),
        ({"image_size": 512, "draft": True, "pixel_scale": 1e-3}, Preprocessing(512, True, 1e-3)),
        ({"image_size": 2, "draft": True, "pixel_scale": 1e6}, Preprocessing(2, True, 1e6)),
    ],
)
def test_the_bounds_of_the_record_values_are_accepted(record, expected):
    loaded = Preprocessing.from_mapping(record, "x")
    assert loaded == expected and type(loaded.pixel_scale) is float


def test_features_give_back_the_images_they_were_made_from():
    images = np.random.default_rng(0).integers(0, 256, (5, 3, 3, 3), dtype=np.uint8)
    images[0, 0, 0] = (0, 255, 128)  # both ends of the uint8 range
    for record in (Preprocessing(3, True), Preprocessing(3, False, 510.0)):
        back = record.images(to_features(images, record.pixel_scale))
        assert back.dtype == np.uint8
        np.testing.assert_array_equal(back, images)


def test_images_of_features_outside_the_range_are_clipped_to_uint8():
    X = np.array([[-0.2, 1.3, 0.2], [2.0, -1.0, 0.998]])  # times 255: -51, 331.5, 51; 510, -255, 254.49
    images = Preprocessing(1, True).images(X)
    assert images.dtype == np.uint8 and images.shape == (2, 1, 1, 3)
    assert images.reshape(2, 3).tolist() == [[0, 255, 51], [255, 0, 254]]


def test_features_of_files_are_decode_then_divide(tmp_path):
    photo_like(tmp_path / "a.jpg", 300, 200, seed=0)
    Image.new("L", (50, 90), 77).save(tmp_path / "b.png")
    paths = [tmp_path / "a.jpg", tmp_path / "b.png"]
    for record in (Preprocessing(8, True), Preprocessing(8, False, 510.0), Preprocessing(5, True, 1.0)):
        expected = np.stack([load_image(p, record.image_size, record.draft) for p in paths])
        expected = expected.reshape(2, -1).astype(np.float64) / record.pixel_scale
        np.testing.assert_allclose(record.features(paths), expected, rtol=1e-6)
    assert not np.array_equal(Preprocessing(64, True).features(paths[:1]), Preprocessing(64, False).features(paths[:1]))


def test_load_image_refuses_more_pixels_than_the_cap_from_the_header(tmp_path, monkeypatch):
    """images.MAX_PIXELS applies to the width x height the header announces, before any decoding; Pillow
    alone would decode this 144-megapixel PNG (it only warns below 2 x its bound)."""
    black_png(tmp_path / "huge.png", 12_000, 12_000)
    with pytest.warns(Image.DecompressionBombWarning), Image.open(tmp_path / "huge.png") as image:
        assert image.size == (12_000, 12_000)  # a real PNG, which Pillow opens with a warning only
    with pytest.raises(
        Image.DecompressionBombError,
        match=r"^12000 x 12000 = 144,000,000 pixels, more than the "
        r"89,478,485 any stage decodes \(images.MAX_PIXELS\); shrink the image first$",
    ):
        load_image(tmp_path / "huge.png", 64, draft=True)
    monkeypatch.setattr(catsdogs.data.images, "MAX_PIXELS", 40 * 30)  # the bound itself: equal passes, one more fails
    solid("RGB", (1, 2, 3), (40, 30)).save(tmp_path / "at.png")
    solid("RGB", (1, 2, 3), (41, 30)).save(tmp_path / "above.png")
    assert load_image(tmp_path / "at.png", 8, draft=True).shape == (8, 8, 3)
    with pytest.raises(Image.DecompressionBombError, match=r"41 x 30 = 1,230 pixels, more than the 1,200"):
        load_image(tmp_path / "above.png", 8, draft=True)


def test_max_pixels_is_pillows_default_bound():
    assert catsdogs.data.images.MAX_PIXELS == Image.MAX_IMAGE_PIXELS == 89_478_485


def test_a_feature_half_way_between_two_pixel_values_is_undone_in_float64():
    """float32(0.5 / 255) x 255 is 0.50000001 in float64 (rint: 1) but exactly 0.5 in float32 (rint: 0):
    images() multiplies in float64 whatever the features' dtype, as its code says."""
    X = np.full((1, 3), 0.5 / 255, dtype=np.float32)
    assert Preprocessing(1, True).images(X).tolist() == [[[[1, 1, 1]]]]
