"""Shared fixtures and helpers. Tests never touch the project's own data/, models/, metrics/ or plots/:
each works in a temporary folder (tmp_path, or a temporary git repository for the DVC tests)."""

import os
import shutil
from pathlib import Path

from catsdogs.blas_threads import use_one_blas_thread

use_one_blas_thread()  # first: before NumPy loads, as in the pipeline (stages/__init__.py)
import numpy as np
import pytest
from PIL import Image


ROOT = Path(__file__).resolve().parents[1]
os.environ["DVC_NO_ANALYTICS"] = "1"
PIPELINE_FILES = (
    "dvc.yaml",
    "params.yaml",
    ".gitignore",
    ".dvcignore",
    ".dvc/config",
    ".dvc/.gitignore",
    "data/external/README.md",
    "data/external/.gitignore",
    "metrics_gate.yaml",
)
PIPELINE_DIRS = ("stages", "catsdogs", "tools", ".dvc/plots")  # .dvc/plots: the offline page template of `dvc plots`


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test with the current directory set to an empty temporary folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_params(path: Path, **groups) -> Path:
    """Write a params.yaml from the project's defaults, with some keys of some groups replaced.

    write_params(p, train={"lr": 0.1}) keeps every other key as in the project's params.yaml.
    """
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for group, values in groups.items():
        params.setdefault(group, {}).update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def copy_pipeline(dest: Path) -> Path:
    """Copy what `dvc repro` and the gate need (not data, git history or DVC cache) into `dest`."""
    for name in PIPELINE_FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, dest / name)
    for name in PIPELINE_DIRS:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def help_text(main, capsys) -> str:
    """What `main(["--help"])` prints, on one line (argparse's wrapping undone); it must exit with 0."""
    with pytest.raises(SystemExit) as status:
        main(["--help"])
    assert status.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def photo_like(path, width, height, seed):
    """A JPEG with detail at every scale (smooth gradients plus noise), like a photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) * 127 / (width + height)], axis=-1)
    Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)).save(path, quality=90)


def black_png(path, width, height):
    """A valid black PNG of width x height (1 bit per pixel), written row by row: a 144-megapixel one takes
    20 kB on disk and no more memory than a row here, while Pillow decoding it allocates a byte per pixel,
    and converting it to RGB three more."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    squeeze = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then 8 black pixels a byte
    data = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit per pixel, grayscale
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def pytest_terminal_summary(terminalreporter):
    """Print what tests recorded with record_property("timings", text), e.g. the remote round trips."""
    lines = [
        f"{report.nodeid}: {value}"
        for report in terminalreporter.stats.get("passed", [])
        for name, value in report.user_properties
        if name == "timings"
    ]
    if lines:
        terminalreporter.write_sep("-", "timings")
        for line in lines:
            terminalreporter.write_line(line)
