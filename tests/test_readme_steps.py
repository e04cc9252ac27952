"""tools/readme.py in this process: `--check`'s output and exit status on a README with broken markers,
and the command runner `sh` on real child processes (the write mode, minutes of runs in a clone, is
tests/test_readme.py's)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tools.readme import ReadmeError, main, sh


def test_check_names_each_problem_on_stderr_and_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the committed metrics and params.yaml
    readme = tmp_path / "R.md"
    readme.write_text("# no generated blocks\n")
    assert main(["--check", "--readme", str(readme)]) == 1
    out, err = capsys.readouterr()
    assert out == f"{readme}: stale, rerun `python -m tools.readme`\n"
    assert err.splitlines() == [f"{readme}: README.md: block `compare` appears 0 times, expected once"]
    assert readme.read_text() == "# no generated blocks\n"  # --check writes nothing


def test_without_check_the_markers_are_read_before_any_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    readme = tmp_path / "R.md"
    readme.write_text("<!-- end of generated block -->\n")
    assert main(["--readme", str(readme)]) == 1
    assert capsys.readouterr().err.startswith("readme: error: ")
    assert readme.read_text() == "<!-- end of generated block -->\n"


def test_sh_runs_in_the_folder_with_this_python_first_and_hides_the_folder_in_links(tmp_path):
    script = "import os, sys; print(os.getcwd(), os.environ['PATH'].split(os.pathsep)[0], os.environ['DVC_NO_ANALYTICS'], os.environ['COLUMNS']); print('file://' + os.getcwd() + '/x')"
    assert sh(tmp_path, sys.executable, "-c", script) == (
        f"{tmp_path} {Path(sys.executable).parent} 1 200\nfile:///.../x\n"
    )
    assert sh(tmp_path, sys.executable, "-c", "import sys; print('ok'); sys.exit(1)", status=1) == "ok\n"


def test_sh_names_a_command_that_exits_otherwise(tmp_path):
    with pytest.raises(ReadmeError) as failed:
        sh(tmp_path, sys.executable, "-c", "import sys; print('o'); print('e', file=sys.stderr); sys.exit(2)")
    assert str(failed.value) == (
        f"`{sys.executable} -c import sys; print('o'); print('e', file=sys.stderr); sys.exit(2)` exited 2:\no\ne\n"
    )
    with pytest.raises(ReadmeError, match=r"exited 0:"):
        sh(tmp_path, sys.executable, "-c", "pass", status=1)
