"""No value given to make (BASE, LRS, MODULES, BENCH_ARGS, PYTHON) reaches a shell as shell text.

GNU make runs a copy of the project's real Makefile in a temporary folder, with BIN pointing at a
stand-in `python` that records its arguments and with every venv target marked up to date (-o), so
each target's command line is seen exactly as the shell built it. A value that ran anything would
create the canary file.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT

RECORDER = "import json, os, sys\nwith open(os.environ['ARGV_LOG'], 'a') as f:\n    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
# The attacks of issue 17 and their relatives: command substitution, quote breaking, make functions.
PAYLOADS = [
    "`touch {canary}`",
    'x";touch {canary};"',
    "x';touch {canary};'",
    "$(touch {canary})",
    "$(shell touch {canary})",
    "${{IFS}}$(touch {canary})",
    "a\ntouch {canary}",
    "x & touch {canary} #",
    "$$(touch {canary})",
]
# Text make accepts as a command-line value: anything but NUL (argv) and a leading/trailing blank,
# which make strips; a shell's and make's special characters are drawn often.
VALUE = st.text(
    alphabet=st.sampled_from(list("`$()\"';&|<>*?[]{}#\\\n\t ~!=%@^:ab-.0"))
    | st.characters(blacklist_characters="\x00"),
    max_size=30,
).map(str.strip)


VENV_TARGETS = (
    "venv",
    *(
        f".venv/.{name}"
        for name in ("python", "installed", "test-installed", "bench-installed", "mutation-installed", "lint-installed")
    ),
)


@pytest.fixture(scope="module")
def fake_bin(tmp_path_factory):
    """A folder with the Makefile's copy and bin/python, the recorder."""
    folder = tmp_path_factory.mktemp("checkout")
    (folder / "Makefile").write_bytes((ROOT / "Makefile").read_bytes())
    (folder / "bin").mkdir()
    (folder / "bin/python").write_text(f"#!{sys.executable}\n{RECORDER}")
    (folder / "bin/python").chmod(0o755)
    return folder


def run_make(fake_bin: Path, tmp: Path, target: str, **values: str) -> list[list[str]]:
    """The argument lists the stand-in python got from `make target VAR=value...`."""
    log = tmp / "argv.log"
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    env["ARGV_LOG"] = str(log)
    args = [f"{name}={value}" for name, value in values.items()]
    skip = [f"--old-file={name}" for name in VENV_TARGETS]
    subprocess.run(
        ["make", "-s", "--no-print-directory", *skip, target, f"BIN={fake_bin / 'bin'}", *args],
        cwd=fake_bin,
        env=env,
        check=True,
        capture_output=True,
    )
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def shell_words(value: str) -> list[str]:
    """How sh splits an unquoted expansion (IFS: space, tab, newline; no globbing under set -f)."""
    return [word for word in re.split("[ \t\n]+", value) if word]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_issue_payloads_run_nothing(fake_bin, tmp_path, payload):
    canary = tmp_path / "canary"
    value = payload.format(canary=canary)
    assert run_make(fake_bin, tmp_path, "check-metrics", BASE=value) == [
        ["-m", "tools.check_metrics", f"--base={value}", "--report", "reports"]
    ]
    sweep = ["-m", "tools.sweep", "--jobs", "1", "--lr", *shell_words(value)]
    assert run_make(fake_bin, tmp_path, "sweep", LRS=value) == [sweep]
    assert run_make(fake_bin, tmp_path, "sweep", JOBS=value) == [["-m", "tools.sweep", "--jobs", value]]
    assert not canary.exists()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUE.filter(bool))
def test_any_value_arrives_as_data(fake_bin, tmp_path, value):
    """Every target taking a value passes it verbatim (BASE) or split into words (lists), never run."""
    runs = run_make(fake_bin, tmp_path, "check-metrics", BASE=value)
    assert runs == [["-m", "tools.check_metrics", f"--base={value}", "--report", "reports"]]
    words = shell_words(value)
    assert run_make(fake_bin, tmp_path, "sweep", LRS=value) == [
        ["-m", "tools.sweep", "--jobs", "1", *(["--lr", *words] if words else [])]
    ]
    assert run_make(fake_bin, tmp_path, "mutation", MODULES=value) == [["-m", "tools.mutation", *words]]
    assert run_make(fake_bin, tmp_path, "bench", BENCH_ARGS=value) == [["-m", "bench.run_all", *words]]


def test_python_value_is_not_shell_text(tmp_path):
    """PYTHON names the interpreter: an odd one is refused by name, nothing it carries runs."""
    canary = tmp_path / "canary"
    (tmp_path / "Makefile").write_bytes((ROOT / "Makefile").read_bytes())
    (tmp_path / "requirements.txt").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    value = f'x";touch {canary};"'
    result = subprocess.run(
        ["make", "--no-print-directory", "venv", f"PYTHON={value}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert f"PYTHON={value} is not a Python that runs" in result.stderr
    assert not canary.exists()


def test_values_not_given_take_their_documented_defaults(fake_bin, tmp_path):
    """`unexport` defines an unknown variable as empty: the defaults must be set before it (a regression:
    `make check-metrics` passed --base= and the gate stopped with "unknown revision ''")."""
    assert run_make(fake_bin, tmp_path, "check-metrics") == [
        ["-m", "tools.check_metrics", "--base=HEAD", "--report", "reports"]
    ]
    assert run_make(fake_bin, tmp_path, "sweep") == [["-m", "tools.sweep", "--jobs", "1"]]
    assert run_make(fake_bin, tmp_path, "mutation") == [["-m", "tools.mutation"]]
    assert run_make(fake_bin, tmp_path, "bench") == [["-m", "bench.run_all"]]
