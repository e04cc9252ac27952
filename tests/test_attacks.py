"""Hostile input (issue 17): FIFOs, links out of data/external, loops, unreadable and very deep folders,
out-of-range numbers in files, names and values that would forge output, payloads after an image.
Each case runs the real command (a subprocess with a timeout: a hang fails) or the real reader, and
expects one clear line and the documented exit status, never a traceback."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from catsdogs.data.images import Preprocessing
from catsdogs.data.readers import FolderSource
from catsdogs.data.sources import jpeg_end, keep_image_only, png_end
from catsdogs.errors import DataError, ParamError
from catsdogs.pipeline.config import TrainParams
from catsdogs.pipeline.params import load_section
from catsdogs.pipeline.weights_file import load_model
from stages.ingest import check_source_resolved
from tests.conftest import ROOT, write_params
from tools.gate_report import markdown_text, report_markdown

ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def run(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """A module run as a command; a hang fails the test (TimeoutExpired)."""
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line(result: subprocess.CompletedProcess, status: int, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == status and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def jpeg(seed: int = 0, size: tuple[int, int] = (16, 12), progressive: bool = False) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=80, progressive=progressive)
    return buffer.getvalue()


def model_file(path: Path, W, b=0.0, image_size=2, pixel_scale=255.0, compress=False) -> Path:
    """A model file written by hand (numpy's own savez: an independent writer)."""
    save = np.savez_compressed if compress else np.savez
    save(
        path,
        W=W,
        b=np.float32(b),
        image_size=np.int64(image_size),
        draft=np.bool_(True),
        pixel_scale=np.float32(pixel_scale),
    )
    return path


# --------------------------------------------------------------------------- FIFOs: refused at once


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_predict_refuses_a_fifo_as_photo_and_as_weights(tmp_path, fifo):
    weights = model_file(tmp_path / "w.npz", np.zeros(12, np.float32))
    result = run("catsdogs.predict", "--weights", str(weights), "--threshold", "0.5", str(fifo), cwd=tmp_path)
    assert result.returncode == 1 and "a FIFO (named pipe), not a regular file" in result.stderr
    result = run("catsdogs.predict", "--weights", str(fifo), "--threshold", "0.5", str(fifo), cwd=tmp_path)
    assert_one_line(result, 2, "a FIFO (named pipe), not a regular file")


def test_every_reader_refuses_a_fifo(fifo):
    with pytest.raises(DataError, match="FIFO"):
        Preprocessing.load(fifo)
    with pytest.raises(ParamError, match="not a regular file"):
        load_section("train", ["lr"], fifo)


# --------------------------------------------------------------------------- numbers read from files


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"W": np.zeros(12, np.float32), "pixel_scale": 1e-45}, "pixel_scale = "),
        ({"W": np.full(12, 1e38, np.float32)}, "weights so large"),
        ({"W": np.array(["1"] * 12)}, "expected float32 numbers"),
        ({"W": np.zeros(12, np.float64)}, "expected float32 numbers"),
        ({"W": np.zeros(8000 * 8000 * 3 // 64, np.float32), "image_size": 8000, "compress": True}, "image_size = 8000"),
    ],
)
def test_a_model_file_out_of_range_is_refused_before_use(tmp_path, arrays, message):
    with pytest.raises(DataError, match=message):
        load_model(model_file(tmp_path / "w.npz", **arrays))


def test_a_huge_w_is_refused_from_its_declared_size_before_allocating(tmp_path):
    """image_size 512 is allowed, but W holds 4x what 512 needs (deflated zeros: a small file)."""
    path = model_file(tmp_path / "w.npz", np.zeros(4 * 512 * 512 * 3, np.float32), image_size=512, compress=True)
    assert path.stat().st_size < 10**6
    with pytest.raises(DataError, match="more than the"):
        load_model(path)


def test_a_model_file_behind_a_link_loop_is_one_line(tmp_path):
    (tmp_path / "a.npz").symlink_to(tmp_path / "b.npz")
    (tmp_path / "b.npz").symlink_to(tmp_path / "a.npz")
    result = run("catsdogs.predict", "--weights", "a.npz", "--threshold", "0.5", "x.jpg", cwd=tmp_path)
    assert_one_line(result, 2, "a.npz")


def test_a_400_digit_seed_is_out_of_range(tmp_path):
    params = write_params(tmp_path / "params.yaml")
    params.write_text(params.read_text().replace("seed: 0\n", f"seed: {'9' * 400}\n"))
    with pytest.raises(ParamError, match="train.seed = 999.* is out of range"):
        TrainParams.read(params)


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda p: p.mkdir(), "Is a directory"),
        (lambda p: p.write_bytes(b"train:\n  lr: caf\xe9\n"), r"not UTF-8 text \(byte 0xe9"),
        (lambda p: p.write_text("train: [\n"), "not valid YAML: "),
        (lambda p: p.write_text("train:\n  lr: 1\n lr: 2\n"), "not valid YAML: "),
        (lambda p: p.write_text("[" * 5000), "not valid YAML"),
    ],
)
def test_a_bad_params_file_is_one_line(tmp_path, write, message):
    write(tmp_path / "params.yaml")
    result = run("stages.train", "--help", cwd=tmp_path)  # --help reads nothing: a baseline
    assert result.returncode == 0
    with pytest.raises(ParamError, match=message) as caught:
        TrainParams.read(tmp_path / "params.yaml")
    assert "\n" not in str(caught.value)


def test_an_unreadable_params_file_is_one_line_exit_2(tmp_path):
    params = write_params(tmp_path / "params.yaml")
    params.chmod(0)
    command = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-m", "stages.train"]
    if not shutil.which("setpriv") and os.geteuid() == 0:
        pytest.skip("root without setpriv reads any file")
    if os.geteuid() != 0:
        command = command[3:]
    result = subprocess.run(
        [
            *command,
            *[
                "--preprocessing",
                "p",
                "--train-features",
                "t",
                "--valid-features",
                "v",
                "--model",
                "m",
                "--history",
                "h",
                "--metrics",
                "x",
            ],
        ],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line(result, 2, "params.yaml: cannot be read as the parameters file (Permission denied)")


# --------------------------------------------------------------------------- sources


def test_a_source_behind_a_link_out_of_data_external_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "data/external").mkdir(parents=True)
    (tmp_path / "data/external/linkout").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ParamError, match="leads through a link to .*elsewhere, outside data/external/"):
        check_source_resolved("data/external/linkout", Path("data/external"))
    (tmp_path / "data/external/inside").mkdir()
    (tmp_path / "data/external/linkin").symlink_to(tmp_path / "data/external/inside")
    check_source_resolved("data/external/linkin", Path("data/external"))  # a link within: tracked, allowed


def test_a_link_loop_and_a_folder_1900_deep_are_listed(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    folder = os.open(root, os.O_RDONLY)
    for _ in range(1900):  # one level at a time, relative to the last (the whole path is beyond PATH_MAX)
        os.mkdir("d", dir_fd=folder)
        inner = os.open("d", os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = inner
    os.close(os.open("cat.1.jpg", os.O_WRONLY | os.O_CREAT, dir_fd=folder))
    os.close(folder)
    (root / "loop").symlink_to(root / "loop")
    try:
        entries = {e.name: e for e in FolderSource(root).entries()}
    finally:
        subprocess.run(["rm", "-rf", str(root / "d")], check=True)  # shutil.rmtree recurses: too deep for it
    assert entries["loop"].problem == "link_not_followed"
    assert any(name.endswith("cat.1.jpg") or entries[name].problem == "unreadable_folder" for name in entries)


def test_an_unreadable_subfolder_is_in_the_skip_report(tmp_path):
    """Run the listing without CAP_DAC_OVERRIDE (setpriv), so that chmod 000 holds even for root."""
    root = tmp_path / "src"
    (root / "locked").mkdir(parents=True)
    (root / "locked/cat.1.jpg").write_bytes(jpeg())
    (root / "dog.1.jpg").write_bytes(jpeg())
    (root / "locked").chmod(0)
    try:
        code = f"from catsdogs.data.readers import FolderSource\nfor e in FolderSource({str(root)!r}).entries(): print(e.name, e.problem)"
        command = [sys.executable, "-c", code]
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                pytest.skip("root without setpriv lists any folder")
            command = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", *command]
        listing = subprocess.run(command, env=ENV, capture_output=True, text=True, check=True).stdout.split("\n")
    finally:
        (root / "locked").chmod(0o755)
    assert sorted(filter(None, listing)) == ["dog.1.jpg None", "locked/ unreadable_folder"]


# --------------------------------------------------------------------------- what ingest keeps of a file


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    size=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    progressive=st.booleans(),
    tail=st.binary(max_size=300),
)
def test_jpeg_end_finds_the_end_pillow_wrote(seed, size, progressive, tail):
    """Oracle: the bytes Pillow wrote are the image; anything after them is a payload to drop."""
    image = jpeg(seed, size, progressive)
    assert jpeg_end(image + tail) == len(image)


def test_png_end_and_a_png_payload(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (5, 3), (1, 2, 3)).save(buffer, "PNG")
    image = buffer.getvalue()
    assert png_end(image + b"<html>payload</html>") == len(image) and png_end(image[:-3]) is None


@pytest.mark.parametrize(
    "payload", [os.urandom(1 << 20), b"<html><script>alert(1)</script></html>", b"PK\x03\x04" + b"\0" * 100]
)
def test_ingest_keeps_the_image_without_what_follows_it(tmp_path, payload):
    """A JPEG followed by other bytes (random, HTML, a zip) is kept up to its EOI only, byte for byte."""
    external = tmp_path / "data/external"
    external.mkdir(parents=True)
    images = {"cat.1.jpg": jpeg(1), "dog.1.jpg": jpeg(2, progressive=True)}
    with zipfile.ZipFile(external / "train.zip", "w") as archive:
        for name, data in images.items():
            archive.writestr(f"train/{name}", data + payload)
    write_params(tmp_path / "params.yaml", ingest={"source": "data/external/train.zip", "jobs": 1})
    args = ["--external", "data/external", "--raw", "data/raw", "--metrics", "m.json", "--skipped", "s.csv"]
    result = run("stages.ingest", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "data/raw").iterdir()} == images


def test_another_format_is_re_encoded_losslessly(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    path = tmp_path / "cat.1.jpg"
    Image.fromarray(pixels).save(path, "BMP")
    path.write_bytes(path.read_bytes() + b"payload")
    keep_image_only(path)
    with Image.open(path) as image:
        assert image.format == "PNG" and np.array_equal(np.asarray(image), pixels)
    assert b"payload" not in path.read_bytes()


# --------------------------------------------------------------------------- output that holds outside data


def unescape(text: str) -> str:
    """The inverse of errors.escape, written apart from it: \\\\, \\xNN, \\uNNNN, \\UNNNNNNNN."""
    out, at = [], 0
    while at < len(text):
        if text[at] != "\\":
            out.append(text[at])
            at += 1
            continue
        kind = text[at + 1]
        if kind == "\\":
            out.append("\\")
            at += 2
        else:
            width = {"x": 2, "u": 4, "U": 8}[kind]
            code = int(text[at + 2 : at + 2 + width], 16)
            out.append(chr(0xDC00 + code) if kind == "x" else chr(code))
            at += 2 + width
    return "".join(out)


NAMES = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=20)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES.filter(lambda n: n not in (".", "..") and len(n.encode()) < 200))
def test_a_photo_name_never_forges_a_line_nor_reaches_the_terminal_raw(tmp_path, name):
    """One output line per photo, no control character in it, and the name read back exactly."""
    weights = model_file(tmp_path / "w.npz", np.zeros(12, np.float32))
    photo = tmp_path / name
    photo.write_bytes(jpeg())
    from catsdogs.predict import main

    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        main(["--weights", str(weights), "--threshold", "0.5", str(photo)])
    finally:
        sys.stdout = saved
        photo.unlink()
    lines = out.getvalue().split("\n")
    assert len(lines) == 2 and lines[1] == ""
    shown, p_cat, label = lines[0].split("\t")
    assert unescape(shown) == str(photo) and p_cat == "P(cat)=0.5000" and label == "dog"
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in lines[0].replace("\t", ""))


@settings(max_examples=100, deadline=None)
@given(value=st.text(max_size=40), name=st.text(min_size=1, max_size=20))
def test_a_params_value_stays_one_literal_markdown_cell(value, name):
    """Whatever a param name or value holds, the report keeps its shape: the same lines, each params row
    with exactly its four cell bars, no HTML tag, no heading, no link."""
    report = report_markdown([], "main", [(name, value, None)], None)
    empty = report_markdown([], "main", [("p", "v", None)], None)
    assert len(report.splitlines()) == len(empty.splitlines())
    row = report.splitlines()[report.splitlines().index("|---|---|---|") + 1]
    assert row.replace("\\\\", "").replace("\\|", "").count("|") == 4
    cell = markdown_text(value)
    assert "<" not in cell and ">" not in cell and "\n" not in cell and "](" not in cell.replace("\\]", "")


@pytest.mark.parametrize(
    "document, message",
    [
        ("[" * 990 + "]" * 990, "nested too deep|expected a JSON object"),
        ('{"a":' * 990 + "1" + "}" * 990, "nested too deep"),
    ],
)
def test_the_gate_says_bad_input_for_deep_metrics_json(tmp_path, document, message):
    from tools.check_metrics import GateError, parse_metrics

    with pytest.raises(GateError, match=message):
        parse_metrics(document, "workspace:m.json")


@pytest.mark.parametrize("config", ["dir", "{1: {a: {direction: info}}}", "{m.json: {[a]: {direction: info}}}"])
def test_the_gate_config_a_folder_or_with_a_key_not_text_is_exit_2(tmp_path, config):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    path = tmp_path / "gate.yaml"
    if config == "dir":
        path.mkdir()
    else:
        path.write_text(config)
    result = run("tools.check_metrics", "--config", "gate.yaml", cwd=tmp_path)
    assert_one_line(result, 2, "gate.yaml")


@pytest.mark.parametrize(
    "text", ["", "epoch,loss\n1,0.5\n", "epoch,train_loss,valid_loss,train_accuracy,valid_accuracy\n"]
)
def test_evaluate_refuses_an_empty_or_wrong_history(tmp_path, text):
    from stages.evaluate import read_history

    (tmp_path / "h.csv").write_text(text)
    with pytest.raises(DataError, match="h.csv: "):
        read_history(tmp_path / "h.csv")
