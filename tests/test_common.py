import hashlib

import numpy as np
import pytest

from stages.common import (
    ParamError,
    atomic_path,
    check_choice,
    check_number,
    load_npz,
    load_section,
    save_npz,
)


def test_check_number_accepts_values_in_range():
    assert check_number("train.lr", 0.003, low=0, low_open=True) == 0.003
    assert check_number("train.epochs", 5000, integer=True, low=1) == 5000
    assert check_number("train.epochs", 10.0, integer=True, low=1) == 10


@pytest.mark.parametrize(
    "value, kwargs, fragment",
    [
        (-0.1, dict(low=0, low_open=True), "out of range, expected a number > 0"),
        (0, dict(low=0, low_open=True), "out of range"),
        (1.5, dict(low=0, high=1, low_open=True, high_open=True), "expected a number > 0 and < 1"),
        (2.5, dict(integer=True), "expected an integer"),
        (True, {}, "not allowed"),
        (None, {}, "not allowed"),
        (float("nan"), {}, "not allowed"),
        ("fast", {}, "is text"),
    ],
)
def test_check_number_rejects_with_key_and_allowed_range(value, kwargs, fragment):
    with pytest.raises(ParamError, match="train.lr") as err:
        check_number("train.lr", value, **kwargs)
    assert fragment in str(err.value)


def test_number_written_as_1e_minus_3_is_explained():
    with pytest.raises(ParamError) as err:
        check_number("train.lr", "1e-3", low=0, low_open=True)
    message = str(err.value)
    assert "train.lr" in message and "'1e-3' is text" in message and "1.0e-3" in message


def test_check_choice_lists_allowed_values():
    assert check_choice("train.loss", "mse", ("mse", "cross_entropy")) == "mse"
    with pytest.raises(ParamError, match=r"train.loss = 'hinge' .* one of: mse, cross_entropy"):
        check_choice("train.loss", "hinge", ("mse", "cross_entropy"))


def test_load_section_reports_missing_and_unknown_keys(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 0.1\n  epochs: 3\n")
    assert load_section("train", ("lr", "epochs"), path) == {"lr": 0.1, "epochs": 3}
    with pytest.raises(ParamError, match=r"missing key train.loss"):
        load_section("train", ("lr", "epochs", "loss"), path)
    with pytest.raises(ParamError, match=r"unknown key train.epochs \(allowed keys: lr\)"):
        load_section("train", ("lr",), path)
    with pytest.raises(ParamError, match=r"missing group `evaluate:`"):
        load_section("evaluate", ("threshold",), path)
    with pytest.raises(ParamError, match="file not found"):
        load_section("train", ("lr",), tmp_path / "nope.yaml")


def test_atomic_path_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_save_npz_is_byte_reproducible_and_round_trips(tmp_path):
    arrays = dict(X=np.arange(12, dtype=np.float32).reshape(3, 4), y=np.array([1, 0, 1], np.uint8))
    save_npz(tmp_path / "a.npz", **arrays)
    save_npz(tmp_path / "b.npz", **arrays)
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.npz", "b.npz")]
    assert digest[0] == digest[1]
    loaded = load_npz(tmp_path / "a.npz", ("X", "y"))
    np.testing.assert_array_equal(loaded["X"], arrays["X"])
    assert loaded["y"].dtype == np.uint8


def test_save_npz_streams_the_bytes_zipfile_writestr_would_write(tmp_path):
    import io
    import zipfile

    arrays = {"X": np.arange(600, dtype=np.float32).reshape(20, 30), "names": np.array(["cat.1.jpg", "dog.2.jpg"])}
    save_npz(tmp_path / "streamed.npz", **arrays)
    with zipfile.ZipFile(tmp_path / "reference.npz", "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())
    assert (tmp_path / "streamed.npz").read_bytes() == (tmp_path / "reference.npz").read_bytes()
