"""The Makefile's interpreter check and venv rebuild, in a folder whose path has a space, with real Pythons.

Each test runs GNU make on the project's Makefile, copied with the requirements files into the folder; the
target .venv/.python creates the venv without installing the requirements (`make venv` adds the pip install).
"""

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SUPPORTED = "3.11 3.12 3.13"
# A real unsupported interpreter, where this machine has one (pyenv's or Debian's), else None.
OLD_PYTHON = (
    sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10"))) or [shutil.which("python3.10")]
)[0]
needs_old_python = pytest.mark.skipif(OLD_PYTHON is None, reason="no Python 3.10 on this machine")


@pytest.fixture
def checkout(tmp_path):
    folder = tmp_path / "a checkout"
    folder.mkdir()
    for path in (ROOT / "Makefile", *ROOT.glob("requirements*.txt")):
        shutil.copy(path, folder / path.name)
    return folder


def make(folder, *args, path=None):
    env = dict(os.environ, PATH=path or os.environ["PATH"])
    env.pop("PYTHON", None)
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)  # under `make test` the inner make would print "make[1]:" lines
    return subprocess.run(["make", "--no-print-directory", *args], cwd=folder, env=env, capture_output=True, text=True)


def venv_version(folder):
    return subprocess.run(
        [str(folder / ".venv/bin/python"), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.mark.parametrize(
    "python, says", [("no-such-python", "is not a Python that runs"), (OLD_PYTHON, "is Python 3.10")]
)
def test_unsupported_python_stops_with_one_line_before_anything_is_made(checkout, python, says):
    if python is None:
        pytest.skip("no Python 3.10 on this machine")
    result = make(checkout, "venv", f"PYTHON={python}")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()  # make's $(error) line only: no `make: *** [...] Error 1` after it
    message = f"PYTHON={python} {says}; supported: {SUPPORTED}, e.g. make test PYTHON=python3.12"
    assert re.fullmatch(r"Makefile:\d+: \*\*\* (.*)\.  Stop\.", line)[1] == message, line
    assert not (checkout / ".venv").exists() and result.stdout == ""


@needs_old_python
def test_venv_of_another_interpreter_is_rebuilt_with_the_one_asked_for(checkout):
    """The case of the issue: a .venv left by Python 3.10. `python3` is looked up on the caller's PATH,
    not the venv's (whose python3 is the 3.10 one)."""
    subprocess.run([OLD_PYTHON, "-m", "venv", "--without-pip", str(checkout / ".venv")], check=True)
    caller_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # python3: this test's Python
    first = make(checkout, ".venv/.python", path=caller_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("rebuilding .venv: it runs '3.10 ")
    assert venv_version(checkout) == f"{sys.version_info[0]}.{sys.version_info[1]}"
    stamp = checkout / ".venv/.python"
    written = stamp.stat().st_mtime_ns
    again = make(checkout, ".venv/.python", path=caller_path)  # same interpreter: nothing to do
    assert again.returncode == 0 and again.stdout == "" and stamp.stat().st_mtime_ns == written
    plan = make(checkout, "-n", "venv", path=caller_path).stdout  # a new venv: the requirements come next
    assert f'"{checkout}/.venv/bin/python" -m pip install --quiet -r requirements.txt' in plan


def test_recipes_quote_a_path_with_a_space(checkout):
    plan = make(checkout, "-n", "test", "check-metrics", "repro", "sweep").stdout
    bin_dir = f'"{checkout}/.venv/bin'
    for line in (
        '/python" -m pytest -n auto --dist loadfile tests',
        '/python" -m tools.check_metrics --base="$ARG_BASE"',  # BASE reaches the shell as data (test_shell_injection)
        '/dvc" repro',
        '/python" -m tools.sweep --jobs "$ARG_JOBS" ${ARG_LRS:+--lr $ARG_LRS}',
    ):
        assert bin_dir + line in plan, line
