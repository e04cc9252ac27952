import numpy as np
import pytest
from PIL import Image

from stages.common import save_npz
from stages.predict import main, predict_proba


def test_predict_uses_the_pipelines_preprocessing(tmp_path, capsys):
    # W looks only at the red channel of pixel (0, 0): bright red -> cat
    size = 8
    W = np.zeros(size * size * 3, np.float32)
    W[0] = 20.0
    weights = dict(W=W, b=np.float32(-10.0), image_size=np.int64(size), draft=np.bool_(True), pixel_scale=np.float32(255))
    Image.new("RGB", (300, 200), (255, 0, 0)).save(tmp_path / "red.jpg")
    Image.new("L", (50, 90), 0).save(tmp_path / "black.png")
    p = predict_proba([tmp_path / "red.jpg", tmp_path / "black.png"], weights)
    assert p[0] > 0.99 and p[1] < 0.01

    save_npz(tmp_path / "weights.npz", **weights)
    main([str(tmp_path / "red.jpg"), str(tmp_path / "black.png"), "--weights", str(tmp_path / "weights.npz")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("\tcat") and lines[1].endswith("\tdog")


def test_threshold_must_be_a_probability(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "x.jpg"), "--threshold", "1.5"])
    assert "--threshold: 1.5 is not between 0 and 1" in capsys.readouterr().err


def test_default_weights_are_the_model_file_of_trains_cmd(in_tmp, capsys):
    W = np.zeros(8 * 8 * 3, np.float32)
    save_npz("elsewhere/w.npz", W=W, b=np.float32(3.0), image_size=np.int64(8), draft=np.bool_(True), pixel_scale=np.float32(255))
    (in_tmp / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python -m stages.train --model elsewhere/w.npz\n")
    Image.new("RGB", (20, 20), (0, 0, 0)).save("black.png")
    main(["black.png"])
    assert capsys.readouterr().out.strip().endswith("\tcat")  # b = 3: P(cat) = sigmoid(3) whatever the photo
