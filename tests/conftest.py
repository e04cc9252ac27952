"""Shared fixtures. Tests never touch the project's own data/, models/, metrics/ or plots/: each works
in a temporary folder (tmp_path, or a temporary git repository for the DVC tests)."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["DVC_NO_ANALYTICS"] = "1"

import stages  # noqa: E402,F401  (pins BLAS to one thread before NumPy loads)


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


def photo_like(path, width, height, seed):
    """A JPEG with detail at every scale (smooth gradients plus noise), like a photo."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 / width, yy * 255 / height, (xx + yy) * 127 / (width + height)], axis=-1)
    Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)).save(path, quality=90)
