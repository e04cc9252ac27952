import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from catsdogs.data.images import Preprocessing
from catsdogs.errors import DataError
from catsdogs.pipeline.command_line import run_cli
from catsdogs.pipeline.dvc_files import locked_params
from catsdogs.pipeline.npz_files import save_npz
from catsdogs.pipeline.weights_file import load_model, save_model
from catsdogs.predict import data_note, main, predict_proba
from tests.conftest import ROOT, black_png, help_text, photo_like, write_params


def test_predict_uses_the_pipelines_preprocessing(in_tmp, capsys):
    tmp_path = in_tmp
    write_params(in_tmp / "params.yaml")
    # W looks only at the red channel of pixel (0, 0): bright red -> cat
    size = 8
    W = np.zeros(size * size * 3, np.float32)
    W[0] = 20.0
    b = np.float32(-10.0)
    Image.new("RGB", (300, 200), (255, 0, 0)).save(tmp_path / "red.jpg")
    Image.new("L", (50, 90), 0).save(tmp_path / "black.png")
    p = predict_proba([tmp_path / "red.jpg", tmp_path / "black.png"], W, b, Preprocessing(size, True))
    assert p[0] > 0.99 and p[1] < 0.01

    save_npz(tmp_path / "weights.npz", W=W, b=b, **Preprocessing(size, True).arrays())
    main([str(tmp_path / "red.jpg"), str(tmp_path / "black.png"), "--weights", str(tmp_path / "weights.npz")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("\tcat") and lines[1].endswith("\tdog")


@pytest.mark.parametrize("record", [Preprocessing(16, True), Preprocessing(16, False), Preprocessing(12, True, 510.0)])
def test_predict_prepares_a_photo_as_the_model_file_says(tmp_path, record):
    photo_like(tmp_path / "photo.jpg", 500, 374, seed=3)
    W = np.random.default_rng(0).normal(0, 0.01, record.image_size**2 * 3).astype(np.float32)
    save_npz(tmp_path / "weights.npz", W=W, b=np.float32(0.1), **record.arrays())
    model = load_model(tmp_path / "weights.npz")
    assert model[2] == record
    # the oracle: the features resize_split + flatten_normalize would make with this record, in float64
    x = record.features([tmp_path / "photo.jpg"]).astype(np.float64)
    expected = 1 / (1 + np.exp(-(x @ W.astype(np.float64) + 0.1)))
    (p,) = predict_proba([tmp_path / "photo.jpg"], *model)
    np.testing.assert_allclose(p, expected[0], rtol=1e-5)
    assert 0.01 < p < 0.99  # not saturated: a wrong scale or decode would show


def test_a_model_file_without_the_preprocessing_is_refused(tmp_path):
    save_npz(tmp_path / "weights.npz", W=np.zeros(3, np.float32), b=np.float32(0))
    with pytest.raises(DataError, match=r"weights.npz: missing arrays \['image_size', 'draft', 'pixel_scale'\]"):
        load_model(tmp_path / "weights.npz")


@pytest.mark.parametrize("threshold", ["1.5", "1", "0", "-0.1"])
def test_threshold_must_be_a_probability(tmp_path, capsys, threshold):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "x.jpg"), "--threshold", threshold])
    assert f"--threshold: {threshold} is not between 0 and 1" in capsys.readouterr().err


def test_help_says_what_the_arguments_mean(capsys):
    """What --help states, as the tests here observe it (argparse rewraps the lines)."""
    text = help_text(main, capsys)
    assert text.startswith(
        "usage: python -m catsdogs.predict [-h] [--weights WEIGHTS] [--threshold THRESHOLD] images [images ...] "
        "Print P(cat) and the label (cat if P(cat) > threshold) for each image file. "
        "positional arguments: images image files (JPEG, PNG, ...) "
    )
    assert (
        "--weights WEIGHTS model file (default: the --model file of train's cmd in dvc.yaml) "
        "--threshold THRESHOLD P(cat) above which to say cat, 0 < t < 1 (default: evaluate.threshold of params.yaml) "
        "One line per file, tab-separated, its name escaped"
    ) in text
    assert text.endswith("1: some image was skipped (its line on stderr), the others classified.")


def test_an_unreadable_photo_is_reported_and_the_others_still_classified(in_tmp, capsys):
    """A file that is not an image, then a photo: the first is an error line on stderr, the second is still
    classified, and the exit status is 1. P(cat) exactly 0.5 (W = 0, b = 0) is a dog: cat only above the
    threshold, as evaluate counts it."""
    save_model("w.npz", np.zeros(8 * 8 * 3, np.float32), np.float32(0.0), Preprocessing(8, True))
    Path("bad.jpg").write_bytes(b"not an image")
    Image.new("RGB", (20, 20), (0, 0, 0)).save("black.png")
    with pytest.raises(SystemExit) as status:
        main(["./bad.jpg", "./black.png", "--weights", "./w.npz", "--threshold", "0.5"])
    assert status.value.code == 1
    out, err = capsys.readouterr()
    assert out == "black.png\tP(cat)=0.5000\tdog\n"  # the path as pathlib writes it
    assert err == (
        "predict: note: dvc.lock does not record how w.npz was made, so which photos trained it is unknown\n"
        "bad.jpg\terror: cannot identify image file 'bad.jpg'\n"
    )


def test_the_threshold_is_compared_with_the_float64_p_cat(in_tmp, capsys):
    """z = 18 for every photo: P(cat) = 1 - 1.5e-8, which float32 rounds to 1.0; at threshold 1 - 1e-8 it is a
    dog (the float64 value, as evaluate's metrics use), and predict_proba returns it unrounded."""
    save_model("w.npz", np.zeros(8 * 8 * 3, np.float32), np.float32(18.0), Preprocessing(8, True))
    Image.new("RGB", (20, 20), (0, 0, 0)).save("black.png")
    expected = 1 / (1 + math.exp(-18))
    assert expected < 0.99999999 and np.float32(expected) == 1.0
    (p,) = predict_proba([Path("black.png")], *load_model("w.npz"))
    assert p == pytest.approx(expected, rel=1e-12, abs=0)
    main(["black.png", "--weights", "w.npz", "--threshold", "0.99999999"])
    assert capsys.readouterr().out == "black.png\tP(cat)=1.0000\tdog\n"


def test_default_weights_are_the_model_file_of_trains_cmd(in_tmp, capsys):
    W = np.zeros(8 * 8 * 3, np.float32)
    save_npz(
        "elsewhere/w.npz",
        W=W,
        b=np.float32(3.0),
        image_size=np.int64(8),
        draft=np.bool_(True),
        pixel_scale=np.float32(255),
    )
    (in_tmp / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python -m stages.train --model elsewhere/w.npz\n")
    write_params(in_tmp / "params.yaml")
    Image.new("RGB", (20, 20), (0, 0, 0)).save("black.png")
    main(["black.png"])
    assert capsys.readouterr().out.strip().endswith("\tcat")  # b = 3: P(cat) = sigmoid(3) whatever the photo


def test_a_photo_with_too_many_pixels_is_reported_and_skipped_without_being_decoded(tmp_path):
    """A real 144-megapixel PNG beside a normal photo: predict refuses the first from its header, still
    classifies the second, and exits 1; its peak memory stays far below decoding it (730 MiB measured)."""
    black_png(tmp_path / "huge.png", 12_000, 12_000)
    Image.new("RGB", (300, 200), (255, 0, 0)).save(tmp_path / "red.jpg")
    save_model(tmp_path / "w.npz", np.zeros(8 * 8 * 3, np.float32), np.float32(1.0), Preprocessing(8, True))
    probe = (
        "import resource, subprocess, sys; status = subprocess.run(sys.argv[1:]).returncode; "
        "print(status, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )  # KiB on Linux
    command = [
        sys.executable,
        "-m",
        "catsdogs.predict",
        "huge.png",
        "red.jpg",
        "--weights",
        "w.npz",
        "--threshold",
        "0.5",
    ]
    result = subprocess.run(
        [sys.executable, "-c", probe, *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    *lines, last = result.stdout.splitlines()
    status, peak_kib = map(int, last.split())
    assert status == 1 and lines == ["red.jpg\tP(cat)=0.7311\tcat"]  # sigmoid(1)
    assert result.stderr == (
        "predict: note: dvc.lock does not record how w.npz was made, so which photos trained it "
        "is unknown\n"
        "huge.png\terror: 12000 x 12000 = 144,000,000 pixels, more than the 89,478,485 any "
        "stage decodes (images.MAX_PIXELS); shrink the image first\n"
    )
    assert peak_kib * 1024 < 200 << 20, peak_kib  # decoded and converted to RGB: 144 + 432 MB


def test_the_default_threshold_is_evaluate_threshold_of_params_yaml(in_tmp, capsys):
    """P(cat) = sigmoid(1) = 0.7311 whatever the photo: a dog at evaluate.threshold 0.8, a cat at --threshold 0.5."""
    save_model("w.npz", np.zeros(8 * 8 * 3, np.float32), np.float32(1.0), Preprocessing(8, True))
    Image.new("RGB", (20, 20), (0, 0, 0)).save("black.png")
    write_params(in_tmp / "params.yaml", evaluate={"threshold": 0.8})
    main(["black.png", "--weights", "w.npz"])
    assert capsys.readouterr().out == "black.png\tP(cat)=0.7311\tdog\n"
    main(["black.png", "--weights", "w.npz", "--threshold", "0.5"])
    assert capsys.readouterr().out == "black.png\tP(cat)=0.7311\tcat\n"
    write_params(in_tmp / "params.yaml", evaluate={"threshold": 1.5})
    with pytest.raises(SystemExit) as status:
        run_cli(main, ["black.png", "--weights", "w.npz"])
    assert status.value.code == 2
    assert capsys.readouterr().err.endswith(
        "error: params.yaml: evaluate.threshold = 1.5 is out of range, expected a "
        "number > 0 and < 1; or give --threshold\n"
    )


def fake_lock(folder, model_md5, raw_md5_in_resize_split="raw.dir"):
    """A dvc.lock of ingest -> resize_split -> train, as DVC writes one (paths relative to its folder)."""
    lock = {
        "schema": "2.0",
        "stages": {
            "ingest": {
                "cmd": "python -m stages.ingest",
                "deps": [{"path": "data/external", "md5": "ext.dir"}],
                "params": {"params.yaml": {"ingest.source": "synthetic", "ingest.seed": 0}},
                "outs": [{"path": "data/raw", "hash": "md5", "md5": "raw.dir"}],
            },
            "resize_split": {
                "cmd": "python -m stages.resize_split",
                "deps": [
                    {"path": "data/raw", "md5": raw_md5_in_resize_split},
                    {"path": "catsdogs/data/images.py", "md5": "code"},
                ],
                "params": {"params.yaml": {"resize_split.size": 64}},
                "outs": [{"path": "data/prepared/train.npz", "md5": "prepared"}],
            },
            "train": {
                "cmd": "python -m stages.train",
                "deps": [{"path": "data/prepared/train.npz", "md5": "prepared"}],
                "params": {"params.yaml": {"train.lr": 0.003}},
                "outs": [{"path": "models/weights.npz", "hash": "md5", "md5": model_md5}],
            },
        },
    }
    (folder / "dvc.lock").write_text(yaml.safe_dump(lock))
    return folder / "dvc.lock"


def test_locked_params_walk_back_from_the_model_to_ingest(in_tmp):
    save_model("models/weights.npz", np.zeros(3, np.float32), np.float32(0), Preprocessing(1, True))
    md5 = hashlib.md5(Path("models/weights.npz").read_bytes()).hexdigest()
    lock = fake_lock(in_tmp, md5)
    assert locked_params("models/weights.npz", lock) == {
        "train.lr": 0.003,
        "resize_split.size": 64,
        "ingest.source": "synthetic",
        "ingest.seed": 0,
    }
    assert locked_params(in_tmp / "models/weights.npz", lock)["ingest.source"] == "synthetic"  # absolute path
    assert data_note(Path("models/weights.npz"), lock).startswith(
        "predict: note: models/weights.npz was trained on the embedded synthetic set (ingest.source: synthetic"
    )
    fake_lock(in_tmp, md5, raw_md5_in_resize_split="other.dir")  # resize_split was rerun alone on other photos
    assert locked_params("models/weights.npz", lock) is None
    fake_lock(in_tmp, "0" * 32)  # not this model file
    assert locked_params("models/weights.npz", lock) is None
    assert data_note(Path("models/weights.npz"), lock) == (
        f"predict: note: {lock} does not record how models/weights.npz was made, so which photos trained it is unknown"
    )
    lock.write_text("stages: [")
    assert locked_params("models/weights.npz", lock) is None
    assert locked_params("models/weights.npz", in_tmp / "missing.lock") is None


def test_the_synthetic_note_in_full_from_the_lock_file_given(in_tmp):
    """A project in a subfolder, read from its parent: the note comes from that project's dvc.lock (paths
    relative to its folder), not from a dvc.lock of the current directory (there is none)."""
    save_model("sub/models/weights.npz", np.zeros(3, np.float32), np.float32(0), Preprocessing(1, True))
    lock = fake_lock(in_tmp / "sub", hashlib.md5(Path("sub/models/weights.npz").read_bytes()).hexdigest())
    assert data_note(Path("sub/models/weights.npz"), lock) == (
        f"predict: note: sub/models/weights.npz was trained on the embedded synthetic set (ingest.source: "
        f"synthetic in {lock}), drawn animals rather than photos: P(cat) of a real photo means little. "
        "README, Real data: train it on Kaggle's photos"
    )


def test_no_note_for_a_model_trained_on_real_photos(in_tmp):
    save_model("models/weights.npz", np.zeros(3, np.float32), np.float32(0), Preprocessing(1, True))
    lock = fake_lock(in_tmp, hashlib.md5(Path("models/weights.npz").read_bytes()).hexdigest())
    lock.write_text(lock.read_text().replace("ingest.source: synthetic", "ingest.source: data/external/train.zip"))
    assert locked_params("models/weights.npz", lock)["ingest.source"] == "data/external/train.zip"
    assert data_note(Path("models/weights.npz"), lock) is None
