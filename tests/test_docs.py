"""The docs run: every command block of README.md and docs/*.md is executed, flow by flow, in order, in a
fresh clone, with the real `dvc` CLI, and what a block quotes of a command's output is checked.

A fenced block's info string says what happens to it (GitHub reads only the first word, the language):
- ```` ```sh test=FLOW ````: a bash script (`set -e`), run in the flow's clone;
- ```` ```console test=FLOW ````: `$ command` lines, each followed by the lines it prints. Every line shown
  must be among the lines printed, numbers and commit hashes masked (the numbers the docs quote come from
  the full-size default run and are checked by `python -m tools.readme --check`, tests/test_readme.py),
  and with them what follows from the numbers alone: the regression gate's verdicts (`REGRESSION`,
  `same`, `info`, ...) and its list of failing metrics; whitespace and table rules collapsed; `...` allows any other lines; no line at all means it prints
  nothing; `$ echo $?` shows the previous command's exit status (otherwise it must be 0);
- ```` ```sh notest: REASON ```` (or console): not run, for the reason given; any other sh or console
  block fails the test, so a new command block is run or says why not.
The blocks of a flow run in reading order: README.md, then docs/ in the order README.md links them.

Why not a Markdown doctest runner from PyPI: pytest-codeblocks and mktestdocs run each block in the
pytest process's directory and compare (or ignore) the whole output; byexample drives an interactive
bash through pexpect with a per-example timeout and compares whole outputs; phmdoctest and
pytest-markdown-docs run Python blocks only; cram and prysk read their own .t format, not Markdown. The
flows need a clone per flow, a shared state across blocks and pages, and checks of the lines shown only.
The fences are found by markdown-it-py (a CommonMark parser, already pinned), not by a parser of ours.

What the test changes, and why (each a line of FLOW_SETUP or SUBSTITUTE below): the clone's committed
params are small (60 photos, 60 epochs: the full default takes minutes per run), the clone shares the
project's .venv (so `make` does not install it again), a folder stands for the team's remote disk, and
HOME holds a small Kaggle-layout `Downloads/train.zip` made of the clone's own JPEGs.
"""

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
SMALL = {"ingest": {"n_per_class": 30}, "train": {"epochs": 60}}
TEAM_DISK = "/mnt/team/cats-dogs-dvc"  # the docs' example remote folder, a temporary folder here


def pages():
    """README.md, then the docs/ pages in the order README.md links them, then any other."""
    readme = (ROOT / "README.md").read_text()
    linked = list(dict.fromkeys(re.findall(r"\]\((docs/[\w.-]+\.md)\)", readme)))
    rest = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))
    return ["README.md", *(p for p in linked if (ROOT / p).exists()), *(p for p in rest if p not in linked)]


def blocks():
    """(page, line, language, mark, text) of every sh and console fence."""
    found = []
    for page in pages():
        for token in MarkdownIt("commonmark").parse((ROOT / page).read_text()):
            language, _, mark = token.info.strip().partition(" ")
            if token.type == "fence" and language in ("sh", "console"):
                found.append((page, token.map[0] + 1, language, mark.strip(), token.content))
    return found


def flows():
    named = {}
    for page, line, language, mark, text in blocks():
        if mark.startswith("test="):
            named.setdefault(mark[5:], []).append((page, line, language, text))
    return named


def test_every_command_block_is_run_or_says_why_not():
    unmarked = [f"{page}:{line}" for page, line, _, mark, _ in blocks()
                if not mark.startswith("test=") and not re.match(r"notest: \S", mark)]  # fmt: skip
    assert unmarked == [], "blocks with neither test=FLOW nor `notest: reason`"
    assert set(flows()) == set(FLOW_SETUP)


def mask(line):
    """A line as compared: hashes, numbers, rules and runs of spaces collapsed; the regression gate's verdicts
    and its list of failing metrics, which follow from the numbers, masked with them."""
    line = re.sub(r"\b[0-9a-f]{7,40}\b|#######", "H", line)
    line = re.sub(r"[-+]?\d[\d,]*(\.\d+)?(e[-+]?\d+)?", "N", line)
    line = re.sub(r"\b(REGRESSION|worse, within tolerance|same|better|info)\b", "V", line)
    line = re.sub(r"^(FAIL: N metric\(s\) worse than allowed against \S+:) .*", r"\1 V", line)
    return " ".join(re.sub(r"[─━]+", "─", re.sub(r"-{3,}", "-", line)).split())


def console_steps(text):
    """[(command, [lines shown])] of a console block."""
    steps = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


def shell(cwd, env, script):
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600)  # fmt: skip


def run_block(cwd, env, where, language, text):
    if language == "sh":
        result = shell(cwd, env, "set -e\n" + text)
        assert result.returncode == 0, f"{where} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        return
    status, steps = None, console_steps(text)
    for index, (command, shown) in enumerate(steps):
        if command == "echo $?":
            assert shown == [str(status)], f"{where}: exit status {status}, the docs show {shown}"
            continue
        result = shell(cwd, env, command)
        output = (result.stdout + result.stderr).replace(f"file://{cwd}", "file:///...")  # as tools/readme.py writes it
        status, printed = result.returncode, output.splitlines()
        if status != 0 and steps[index + 1 : index + 2] != [("echo $?", [str(status)])]:
            raise AssertionError(f"{where}: `{command}` exited {status}:\n{result.stdout}{result.stderr}")
        wanted = [mask(line) for line in shown if line.strip() != "..."]
        if not shown:
            assert printed == [], f"{where}: `{command}` should print nothing, printed:\n" + "\n".join(printed)
        have = {mask(line) for line in printed}
        missing = [line for line in wanted if line not in have]
        assert not missing, f"{where}: `{command}` did not print {missing}; it printed:\n" + "\n".join(printed)


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """A bare git repository holding the project as in this work tree (tracked files), with SMALL params
    and their `dvc repro` committed: what a newcomer clones."""
    base = tmp_path_factory.mktemp("docs")
    work = base / "first"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in filter(None, files.stdout.split("\0")):
        if (ROOT / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, work / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    text = (work / "params.yaml").read_text()
    for group, values in SMALL.items():
        for key, value in values.items():
            assert params[group][key] != value
            text, count = re.subn(rf"(^{group}:\n(?:[ #].*\n|\n)*?  {key}: ).*$", rf"\g<1>{value}", text, flags=re.M)
            assert count == 1
    (work / "params.yaml").write_text(text)
    env = environment(base)
    for script in ("git init -q -b main && git add -A && git commit -qm project", "dvc repro --quiet",
                   "git add -A && git commit -qm 'the default run (small)'",
                   f"git clone -q --bare . {base / 'origin.git'}"):  # fmt: skip
        result = shell(work, env, script)
        assert result.returncode == 0, f"{script}: {result.stdout}{result.stderr}"
    return base / "origin.git"


def environment(base):
    home = base / "home"
    if not home.exists():
        home.mkdir()
        (home / ".gitconfig").write_text("[user]\n\temail = test@example.com\n\tname = test\n")
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1", HOME=str(home),
                DVC_SITE_CACHE_DIR=str(base / "dvc-site"), COLUMNS="200", GIT_TERMINAL_PROMPT="0")  # fmt: skip


def kaggle_zip(clone, home):
    """~/Downloads/train.zip: Kaggle's layout (train/cat.N.jpg ...) from the clone's own photos."""
    (home / "Downloads").mkdir(exist_ok=True)
    with zipfile.ZipFile(home / "Downloads/train.zip", "w") as archive:
        for photo in sorted((clone / "data/raw").glob("*.jpg"))[::3]:
            archive.write(photo, f"train/{photo.name}")


def share_venv(clone):
    """The clone's .venv is the project's, requirements.txt dated as installed: `make` installs nothing."""
    (clone / ".venv").symlink_to(ROOT / ".venv")
    installed = (ROOT / ".venv/.installed").stat().st_mtime
    os.utime(clone / "requirements.txt", (installed, installed))


FLOW_SETUP = {"everyday": [share_venv], "experiments": [share_venv], "sharing": [], "failure": []}


@pytest.mark.parametrize("flow", sorted(FLOW_SETUP))
def test_flow(flow, origin, tmp_path):
    if not (ROOT / ".venv/.installed").exists():
        pytest.skip("needs the project's .venv (make venv)")
    env = environment(tmp_path)
    home = Path(env["HOME"])
    clone = tmp_path / "cats-dogs"
    assert shell(tmp_path, env, f"git clone -q {origin} {clone}").returncode == 0
    for setup in FLOW_SETUP[flow]:
        setup(clone)
    disk = tmp_path / "team-disk"
    for page, line, language, text in flows()[flow]:
        if "~/Downloads/train.zip" in text:
            kaggle_zip(clone, home)
        run_block(clone, env, f"{page}:{line}", language, text.replace(TEAM_DISK, str(disk)))
