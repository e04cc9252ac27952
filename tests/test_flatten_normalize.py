import numpy as np
import pytest

from catsdogs.data.images import Preprocessing
from catsdogs.errors import DataError
from catsdogs.pipeline.npz_files import load_npz, save_npz
from stages.flatten_normalize import flatten_normalize, main
from tests.conftest import help_text


def write_images(path, m, size=4, value=51):
    save_npz(
        path,
        X=np.full((m, size, size, 3), value, np.uint8),
        y=np.arange(m, dtype=np.uint8) % 2,
        names=np.array([f"cat.{i}.jpg" for i in range(m)]),
    )


def test_flatten_normalize_scales_by_the_records_pixel_scale(tmp_path):
    write_images(tmp_path / "in.npz", 5)
    assert flatten_normalize(tmp_path / "in.npz", tmp_path / "out.npz", Preprocessing(4, True)) == (5, 48)
    out = load_npz(tmp_path / "out.npz", ("X", "y", "names"))
    np.testing.assert_allclose(out["X"], 0.2)
    assert out["X"].dtype == np.float32 and out["y"].tolist() == [0, 1, 0, 1, 0]
    assert out["y"].dtype == np.uint8 and out["names"].tolist() == [f"cat.{i}.jpg" for i in range(5)]
    flatten_normalize(tmp_path / "in.npz", tmp_path / "out.npz", Preprocessing(4, True, pixel_scale=102.0))
    np.testing.assert_allclose(load_npz(tmp_path / "out.npz", ("X",))["X"], 0.5)


def test_images_of_another_size_than_the_record_are_refused(tmp_path):
    write_images(tmp_path / "in.npz", 2, size=4)
    with pytest.raises(DataError) as error:
        flatten_normalize(tmp_path / "in.npz", tmp_path / "out.npz", Preprocessing(8, True))
    assert str(error.value) == (
        f"{tmp_path / 'in.npz'}: images of shape (4, 4, 3), the preprocessing record says (8, 8, 3) "
        "(rerun resize_split: `dvc repro`)"
    )
    assert not (tmp_path / "out.npz").exists()


def test_main_takes_every_path_from_the_command_line(in_tmp, capsys):
    write_images(in_tmp / "tr.npz", 5, value=255)
    write_images(in_tmp / "va.npz", 2, value=255)
    Preprocessing(4, True).save(in_tmp / "pre.json")
    main(
        [
            "--preprocessing",
            "pre.json",
            "--train-images",
            "tr.npz",
            "--valid-images",
            "va.npz",
            "--train-features",
            "f/tr.npz",
            "--valid-features",
            "f/va.npz",
        ]
    )
    assert capsys.readouterr().out == "flatten_normalize: train 5 x 48, valid 2 x 48\n"
    assert load_npz("f/va.npz", ("X",))["X"].max() == 1.0
    with pytest.raises(SystemExit):
        main(["--params", "params.yaml"])  # no parameters: no --params option


def test_help_names_every_file_and_what_the_stage_does(capsys):
    out = help_text(main, capsys)
    assert out.startswith("usage: python -m stages.flatten_normalize ")
    assert (
        " Flatten --train-images and --valid-images (uint8 .npz) to one row of size*size*3 features per image, "
        "divided by the pixel_scale of --preprocessing (255: features in [0, 1]), into --train-features and "
        "--valid-features (float32 .npz). No parameters. " in out
    )
    for option in (
        "--preprocessing PATH preprocessing record .json (in)",
        "--train-images PATH training images .npz (in)",
        "--valid-images PATH validation images .npz (in)",
        "--train-features PATH training features .npz (out)",
        "--valid-features PATH validation features .npz (out)",
    ):
        assert f" {option} " in out + " ", option
