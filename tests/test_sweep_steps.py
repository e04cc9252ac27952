"""tools/sweep.py in this process: the commands main() runs, in order, and what it writes, with the
command runner replaced by a recorder that answers as dvc and git would (tests/test_sweep.py runs the
real sweep on DVC's queue); the runner itself on real child processes; the learning rates' bounds."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from tools import sweep
from tools.sweep import DROP_COLUMNS, SORT_BY, main, positive_float

HISTORY = "epoch,train_loss,valid_loss,train_accuracy,valid_accuracy\n0,0.2,0.3,0.5,0.5\n1,0.1,0.2,0.6,0.55\n"
SHOW = [
    {"rev": "workspace", "experiments": None},
    {
        "rev": "HEAD",
        "experiments": [
            {"executor": {"state": "success"}, "revs": [{"rev": "aaa111", "name": "lr-0.3", "error": None}]},
            {"executor": None, "revs": [{"rev": "bbb222", "name": "lr-0.001", "error": None}]},
        ],
    },
]


class Runner:
    """Records every command; answers `exp list`, `exp show` and `git show` like dvc and git."""

    def __init__(self, existing="lr-0.3\nlr-9\n", show=SHOW, fail_on=None):
        self.commands: list[tuple[tuple[str, ...], bool]] = []
        self.existing, self.show, self.fail_on = existing, show, fail_on

    def __call__(self, *args: str, capture: bool = False) -> str:
        self.commands.append((args, capture))
        words = args[3:] if args[:3] == (sys.executable, "-m", "dvc") else args
        if self.fail_on and words[: len(self.fail_on)] == self.fail_on:
            raise RuntimeError(f"`{' '.join(args)}` failed with exit status 1")
        if words[:2] == ("exp", "list"):
            return self.existing
        if words[:3] == ("exp", "show", "--json"):
            return json.dumps(self.show)
        if words[:2] == ("exp", "show"):
            return "the table\n"
        if words[:2] == ("git", "show"):
            return HISTORY
        return ""


def dvc_words(runner: Runner) -> list[tuple[tuple[str, ...], bool]]:
    return [(args[3:] if args[0] == sys.executable else args, capture) for args, capture in runner.commands]


def test_the_sweep_runs_its_commands_in_order_and_writes_its_files(in_tmp, monkeypatch, capsys):
    Path("dvc.yaml").write_text("stages:\n  train:\n    cmd: python -m stages.train --history plots/h.csv\n")
    runner = Runner()
    monkeypatch.setattr(sweep, "_run", runner)
    assert main(["--lr", "0.3", "0.001", "-S", "train.epochs=20", "-S", "seed=1", "--out", "out"]) == 0
    assert dvc_words(runner) == [
        (("exp", "list", "--name-only"), True),
        (("exp", "remove", "lr-0.3"), False),  # rerun: the earlier lr-0.3 replaced; lr-9 is not the sweep's
        (("repro", "flatten_normalize"), False),
        (
            (
                "exp",
                "run",
                "--queue",
                "-S",
                "train.lr=0.3",
                "-S",
                "train.epochs=20",
                "-S",
                "seed=1",
                "--name",
                "lr-0.3",
            ),
            False,
        ),
        (
            (
                "exp",
                "run",
                "--queue",
                "-S",
                "train.lr=0.001",
                "-S",
                "train.epochs=20",
                "-S",
                "seed=1",
                "--name",
                "lr-0.001",
            ),
            False,
        ),
        (("exp", "run", "--run-all", "--jobs", "1"), False),
        (
            (
                "exp",
                "show",
                "--no-pager",
                "--only-changed",
                "--drop",
                DROP_COLUMNS,
                "--sort-by",
                SORT_BY,
                "--sort-order",
                "desc",
            ),
            True,
        ),
        (("plots", "diff", "lr-0.3", "lr-0.001", "-o", "out/dvc_plots"), False),
        (("exp", "show", "--json"), True),
        (("git", "show", "aaa111:./plots/h.csv"), True),
        (("git", "show", "bbb222:./plots/h.csv"), True),
    ]
    assert Path("out/exp_show.txt").read_text() == "the table\n"
    with Image.open("out/loss_curves.png") as png:
        assert png.format == "PNG"
    assert capsys.readouterr().out == (
        "the table\n\nLoss curves: out/loss_curves.png; all plots: out/dvc_plots/index.html\n"
    )


def test_without_earlier_runs_nothing_is_removed_and_the_defaults_are_used(in_tmp, monkeypatch):
    Path("dvc.yaml").write_text("stages:\n  train:\n    cmd: python -m stages.train --history h.csv\n")
    show = [
        {
            "rev": "HEAD",
            "experiments": [
                {"executor": None, "revs": [{"rev": f"r{i}", "name": n, "error": None}]}
                for i, n in enumerate(["lr-0.001", "lr-0.003", "lr-0.01", "lr-0.03"])
            ],
        }
    ]
    runner = Runner(existing="", show=show)
    monkeypatch.setattr(sweep, "_run", runner)
    assert main([]) == 0
    words = dvc_words(runner)
    assert all(args[:2] != ("exp", "remove") for args, _ in words)
    assert [args[-1] for args, _ in words if args[:3] == ("exp", "run", "--queue")] == [
        "lr-0.001",
        "lr-0.003",
        "lr-0.01",
        "lr-0.03",
    ]
    assert Path("sweep/exp_show.txt").is_file() and Path("sweep/loss_curves.png").is_file()


@pytest.mark.parametrize(
    "fail_on, show, message",
    [
        (("repro",), SHOW, "sweep: error: `"),
        (None, SHOW[:1], "sweep: error: experiment(s) lr-0.3 did not finish"),
    ],
)
def test_a_failed_step_is_one_line_and_exit_status_1_and_draws_nothing(
    in_tmp, monkeypatch, capsys, fail_on, show, message
):
    Path("dvc.yaml").write_text("stages:\n  train:\n    cmd: python -m stages.train --history h.csv\n")
    monkeypatch.setattr(sweep, "_run", Runner(show=show, fail_on=fail_on))
    assert main(["--lr", "0.3", "--out", "out"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert not Path("out/loss_curves.png").exists()


def test_a_history_that_is_no_csv_is_one_line_too(in_tmp, monkeypatch, capsys):
    Path("dvc.yaml").write_text("stages:\n  train:\n    cmd: python -m stages.train --history h.csv\n")
    runner = Runner(show=SHOW[1:])
    monkeypatch.setattr(
        sweep, "_run", lambda *a, capture=False: "epoch\n1\n" if a[0] == "git" else runner(*a, capture=capture)
    )
    assert main(["--lr", "0.3", "--out", "out"]) == 1
    assert capsys.readouterr().err == "sweep: error: lr-0.3:h.csv: missing columns train_loss, valid_loss (has epoch)\n"


@pytest.mark.parametrize("text", ["0", "-0.1", "nan", "inf", "-inf"])
def test_a_learning_rate_must_be_a_finite_number_above_0(text):
    with pytest.raises(argparse.ArgumentTypeError, match=rf"^learning rate '{text}': expected a number > 0$"):
        positive_float(text)


def test_the_smallest_positive_learning_rate_is_one():
    assert positive_float("5e-324") == 5e-324 and positive_float("1e308") == 1e308


def test_the_runner_puts_this_python_first_on_path_and_names_a_failure(tmp_path):
    shown = sweep._run(
        sys.executable,
        "-c",
        "import os; print(os.environ['PATH'].split(os.pathsep)[0], os.environ['DVC_NO_ANALYTICS'], os.environ['COLUMNS'])",
        capture=True,
    )
    assert shown == f"{Path(sys.executable).parent} 1 200\n"
    assert sweep._run(sys.executable, "-c", "print('not captured')") == ""
    with pytest.raises(RuntimeError) as failed:
        sweep._run(sys.executable, "-c", "import sys; print('out'); sys.exit(3)", capture=True)
    assert (
        str(failed.value)
        == f"`{sys.executable} -c import sys; print('out'); sys.exit(3)` failed with exit status 3:\nout\n"
    )
    with pytest.raises(RuntimeError) as quiet:
        sweep._run(sys.executable, "-c", "import sys; sys.exit(4)")
    assert str(quiet.value) == f"`{sys.executable} -c import sys; sys.exit(4)` failed with exit status 4"


def test_help_says_what_the_sweep_does_and_each_option(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: sweep [-h] [--lr LR [LR ...]] [-S KEY=VALUE] [--out OUT] ")
    for sentence in (
        "Learning-rate sweep with DVC's queue: the image stages brought up to date once (`dvc repro "
        "flatten_normalize`), then one experiment `lr-LR` per rate (replacing an earlier one of that name), run "
        "one at a time, only train and evaluate running; then `dvc exp show` sorted by validation accuracy (also "
        "OUT/exp_show.txt), `dvc plots diff` of the runs (OUT/dvc_plots/index.html) and their loss curves on one "
        "chart (OUT/loss_curves.png). Run from the project root.",
        "--lr LR [LR ...] learning rates (default: 0.001 0.003 0.01 0.03)",
        "-S KEY=VALUE, --set-param KEY=VALUE another params.yaml override for every run, as `dvc exp run -S` "
        "takes it (repeatable)",
        "--out OUT output folder (default: sweep)",
    ):
        assert sentence in text
    with pytest.raises(SystemExit):
        main(["--lr", "0"])
    assert "argument --lr: learning rate '0': expected a number > 0" in capsys.readouterr().err


def test_the_runner_puts_this_python_first_whatever_path_was(monkeypatch):
    script = "import os; print(os.environ['PATH'])"
    monkeypatch.setenv("PATH", "/nowhere:/usr/bin")
    assert (
        sweep._run(sys.executable, "-c", script, capture=True) == f"{Path(sys.executable).parent}:/nowhere:/usr/bin\n"
    )
    monkeypatch.delenv("PATH")
    assert sweep._run(sys.executable, "-c", script, capture=True) == f"{Path(sys.executable).parent}:\n"
    monkeypatch.delenv("DVC_NO_ANALYTICS", raising=False)  # the Makefile exports it: not here
    shown = sweep._run(sys.executable, "-c", "import os; print(os.environ.get('DVC_NO_ANALYTICS'))", capture=True)
    assert shown == "1\n"


def test_finished_experiments_are_found_past_failed_ones_and_errors(monkeypatch):
    show = [
        {"rev": "HEAD", "experiments": [
            {"executor": {"state": "failed"}, "revs": [{"rev": "f1", "name": "lr-1", "error": None}]},
            {"executor": {"state": "success"}},  # no revs listed
            {"executor": {"state": "success"}, "revs": [{"rev": "e1", "name": "lr-2", "error": {"msg": "x"}}]},
            {"executor": {"state": "success"}, "revs": [{"rev": "ok", "name": "lr-3", "error": None}]},
            {"executor": None, "revs": [{"rev": "other", "name": "lr-4", "error": None}]},
        ]},
    ]  # fmt: skip
    assert sweep.experiment_revs(show, ["lr-3"]) == {"lr-3": "ok"}
    with pytest.raises(RuntimeError, match=r"^experiment\(s\) lr-1, lr-2 did not finish: see `dvc queue status`"):
        sweep.experiment_revs(show, ["lr-1", "lr-2", "lr-3"])


def test_the_output_folder_may_be_nested_and_may_exist(in_tmp, monkeypatch):
    Path("dvc.yaml").write_text("stages:\n  train:\n    cmd: python -m stages.train --history h.csv\n")
    monkeypatch.setattr(sweep, "_run", Runner(show=SHOW[1:]))
    assert main(["--lr", "0.3", "0.001", "--out", "a/b"]) == 0
    assert main(["--lr", "0.3", "0.001", "--out", "a/b"]) == 0  # again, into the folder made the first time
    assert Path("a/b/exp_show.txt").is_file()
