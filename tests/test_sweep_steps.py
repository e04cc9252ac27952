"""tools/sweep.py in this process, in seconds: the commands main() runs, in order, what it writes and prints,
and what it says of a failed run, with the command runner replaced by `Runner`, which records each command
and answers as dvc and git print (tests/test_sweep.py and test_sweep_parallel.py run the real sweep on
DVC's queue); the runner itself on real child processes; the bounds of --lr and --jobs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import help_text
from tools import sweep
from tools.sweep import main, positive_float, positive_int

PY = sys.executable
HISTORY = "epoch,train_loss,valid_loss,train_accuracy,valid_accuracy\n0,0.2,0.3,0.5,0.5\n1,0.1,0.2,0.6,0.55\n"
DROP = "Created|State|Executor|true_.*|false_.*|n_valid|.*/.*"
SHOW_TABLE = ("exp", "show", "--no-pager", "--only-changed", "--drop", DROP, "--sort-by",
              "metrics/evaluate.json:accuracy", "--sort-order", "desc")  # fmt: skip


def show(*runs: tuple[str, str, str | None, str | None]) -> list:
    """`dvc exp show --json` of runs (name, commit, executor state or None once done, error message or None)."""
    experiments = [
        {"executor": None if state is None else {"state": state},
         "revs": [{"rev": rev, "name": name, "error": None if error is None else {"msg": error}}]}
        for name, rev, state, error in runs
    ]  # fmt: skip
    return [{"rev": "workspace", "experiments": None}, {"rev": "HEAD", "experiments": experiments}]


class Runner:
    """Stands for sweep._run: records (command, capture, check) and answers as dvc and git print."""

    def __init__(self, existing="lr-0.3\nlr-9\n", runs=(("lr-0.3", "aaa111", "success", None),), fail_on=()):
        self.calls: list[tuple[tuple[str, ...], bool, bool]] = []
        self.existing, self.runs, self.fail_on = existing, runs, fail_on

    def __call__(self, *args: str, capture: bool = False, check: bool = True) -> str:
        self.calls.append((args, capture, check))
        words = args[3:] if args[:3] == (PY, "-m", "dvc") else args
        if self.fail_on and words[: len(self.fail_on)] == self.fail_on:
            raise RuntimeError(f"`{' '.join(args)}` failed with exit status 1")
        if words[:2] == ("exp", "list"):
            return self.existing
        if words == ("exp", "show", "--json"):
            return json.dumps(show(*self.runs))
        if words[:2] == ("exp", "show"):
            return "the table\n"
        if words[:2] == ("queue", "logs"):
            return f"Running stage 'train':\ntrain: error: {words[2]} went wrong\nERROR: failed to reproduce 'train'\n"
        if words[:2] == ("git", "show"):
            return HISTORY
        return ""


def dvc(*words: str, capture: bool = False, check: bool = True) -> tuple[tuple[str, ...], bool, bool]:
    return (PY, "-m", "dvc", *words), capture, check


@pytest.fixture
def charts(in_tmp, monkeypatch):
    """dvc.yaml with train's history file; every loss chart drawn: [(runs' histories, path, title)]."""
    Path("dvc.yaml").write_text("stages:\n  train:\n    cmd: python -m stages.train --history plots/h.csv\n")
    drawn = []
    plot = sweep.plot_loss_curves

    def record(histories, path, title):
        drawn.append(({name: history.to_csv(index=False) for name, history in histories.items()}, path, title))
        plot(histories, path, title)

    monkeypatch.setattr(sweep, "plot_loss_curves", record)
    return drawn


def test_the_sweep_runs_its_commands_in_order_and_writes_its_files(charts, monkeypatch, capsys):
    runs = (("lr-0.3", "aaa111", "success", None), ("lr-0.001", "bbb222", None, None))
    runner = Runner(runs=runs)
    monkeypatch.setattr(sweep, "_run", runner)
    assert main(["--lr", "0.3", "1e-3", "-S", "train.epochs=20", "-S", "seed=1", "--out", "out", "-j", "3"]) == 0
    assert runner.calls == [
        dvc("exp", "list", "--name-only", capture=True),
        dvc("exp", "remove", "lr-0.3"),  # rerun: the earlier lr-0.3 replaced; lr-9 is not the sweep's
        dvc("repro", "flatten_normalize"),
        dvc("exp", "run", "--queue", "-S", "train.lr=0.3", "-S", "train.epochs=20", "-S", "seed=1", "--name", "lr-0.3"),
        dvc("exp", "run", "--queue", "-S", "train.lr=0.001", "-S", "train.epochs=20", "-S", "seed=1", "--name",
            "lr-0.001"),
        dvc("exp", "run", "--run-all", "--jobs", "3"),
        dvc(*SHOW_TABLE, capture=True),
        dvc("exp", "show", "--json", capture=True),
        dvc("plots", "diff", "lr-0.3", "lr-0.001", "-o", "out/dvc_plots"),
        (("git", "show", "aaa111:./plots/h.csv"), True, True),
        (("git", "show", "bbb222:./plots/h.csv"), True, True),
    ]  # fmt: skip
    assert Path("out/exp_show.txt").read_text() == "the table\n"
    assert charts == [({"lr-0.3": HISTORY, "lr-0.001": HISTORY}, Path("out/loss_curves.png"),
                       "Loss curves by learning rate (dashed: validation)")]  # fmt: skip
    with Image.open("out/loss_curves.png") as png:
        assert png.format == "PNG"
    assert capsys.readouterr() == (
        "the table\n\nLoss curves: out/loss_curves.png; all plots: out/dvc_plots/index.html\n",
        "",
    )


def test_without_earlier_runs_nothing_is_removed_and_the_defaults_are_used(charts, monkeypatch):
    names = ["lr-0.001", "lr-0.003", "lr-0.01", "lr-0.03"]
    runner = Runner(existing="lr-0.0010\nlr-1\n", runs=[(n, f"r{i}", None, None) for i, n in enumerate(names)])
    monkeypatch.setattr(sweep, "_run", runner)
    assert main([]) == 0
    words = [args[3:] for args, *_ in runner.calls if args[0] == PY]
    assert ("exp", "remove") not in [w[:2] for w in words]
    assert [w[-1] for w in words if w[:3] == ("exp", "run", "--queue")] == names
    assert ("exp", "run", "--run-all", "--jobs", "1") in words
    assert ("plots", "diff", *names, "-o", "sweep/dvc_plots") in words
    assert Path("sweep/exp_show.txt").is_file() and Path("sweep/loss_curves.png").is_file()
    assert [list(histories) for histories, *_ in charts] == [names]


def test_each_earlier_run_of_the_sweep_is_removed_in_one_command(charts, monkeypatch):
    runner = Runner(existing="lr-0.1 lr-0.2\nlr-0.3\n", runs=[("lr-0.1", "r", None, None)])
    monkeypatch.setattr(sweep, "_run", runner)
    assert main(["--lr", "0.1", "0.3", "0.4", "--out", "o"]) == 1  # lr-0.3 and lr-0.4 did not finish
    assert runner.calls[1] == dvc("exp", "remove", "lr-0.1", "lr-0.3")


def test_a_failed_run_is_named_with_its_error_and_log_and_the_others_are_drawn(charts, monkeypatch, capsys):
    runs = [("lr-0.1", "ok1", None, None), ("lr-0.2", "f2", "failed", None), ("lr-0.3", "e3", None, "boom"),
            ("lr-0.4", "ok4", "success", None)]  # fmt: skip
    runner = Runner(existing="", runs=runs)
    monkeypatch.setattr(sweep, "_run", runner)
    assert main(["--lr", "0.1", "0.2", "0.3", "0.4", "0.5", "--out", "o"]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"sweep: error: experiment {name} failed: train: error: {name} went wrong (its log: `dvc queue logs {name}`)"
        for name in ("lr-0.2", "lr-0.3", "lr-0.5")
    ]
    assert [call for call in runner.calls if call[0][3:5] == ("queue", "logs")] == [
        dvc("queue", "logs", name, capture=True, check=False) for name in ("lr-0.2", "lr-0.3", "lr-0.5")
    ]
    assert dvc("plots", "diff", "lr-0.1", "lr-0.4", "-o", "o/dvc_plots") in runner.calls
    assert [list(histories) for histories, *_ in charts] == [["lr-0.1", "lr-0.4"]]
    assert out.endswith("Loss curves: o/loss_curves.png; all plots: o/dvc_plots/index.html\n")


def test_when_no_run_finished_nothing_is_drawn(charts, monkeypatch, capsys):
    runner = Runner(existing="", runs=[])
    monkeypatch.setattr(sweep, "_run", runner)
    assert main(["--lr", "0.3", "--out", "out"]) == 1
    out, err = capsys.readouterr()
    assert out == "the table\n\n" and err.startswith("sweep: error: experiment lr-0.3 failed: ")
    assert charts == [] and not Path("out/dvc_plots").exists()
    assert [args[3:5] for args, *_ in runner.calls][-2:] == [("exp", "show"), ("queue", "logs")]


@pytest.mark.parametrize(
    "fail_on, written",
    [(("exp", "list"), False), (("repro",), False), (("exp", "run", "--run-all"), False), (("plots",), True)],
)
def test_a_failed_command_is_one_line_and_exit_status_1_and_draws_nothing(
    charts, monkeypatch, capsys, fail_on, written
):
    runner = Runner(fail_on=fail_on)
    monkeypatch.setattr(sweep, "_run", runner)
    assert main(["--lr", "0.3", "--out", "out"]) == 1
    err = capsys.readouterr().err
    assert err == f"sweep: error: `{PY} -m dvc {' '.join(runner.calls[-1][0][3:])}` failed with exit status 1\n"
    assert runner.calls[-1][0][3:][: len(fail_on)] == fail_on
    assert charts == [] and Path("out/exp_show.txt").exists() is written


def test_a_history_that_is_no_csv_is_one_line_too(charts, monkeypatch, capsys):
    runner = Runner()
    monkeypatch.setattr(sweep, "_run", lambda *a, **k: "epoch\n1\n" if a[0] == "git" else runner(*a, **k))
    assert main(["--lr", "0.3", "--out", "out"]) == 1
    assert capsys.readouterr().err == (
        "sweep: error: lr-0.3:plots/h.csv: missing columns train_loss, valid_loss (has epoch)\n"
    )
    assert charts == []


def test_the_output_folder_may_be_nested_and_may_exist(charts, monkeypatch):
    monkeypatch.setattr(sweep, "_run", Runner())
    assert main(["--lr", "0.3", "--out", "a/b"]) == 0
    assert main(["--lr", "0.3", "--out", "a/b"]) == 0  # again, into the folder made the first time
    assert Path("a/b/exp_show.txt").is_file()


@pytest.mark.parametrize("text", ["0", "-0.1", "nan", "inf", "-inf"])
def test_a_learning_rate_must_be_a_finite_number_above_0(text):
    with pytest.raises(argparse.ArgumentTypeError, match=rf"^learning rate '{text}': expected a number > 0$"):
        positive_float(text)


def test_the_smallest_and_largest_positive_learning_rates_are_ones():
    assert positive_float("5e-324") == 5e-324 and positive_float("1.7e308") == 1.7e308


def test_jobs_is_a_whole_number_from_1():
    assert positive_int("1") == 1 and positive_int("64") == 64
    for text in ("0", "-1"):
        with pytest.raises(argparse.ArgumentTypeError, match=rf"^jobs '{text}': expected a whole number >= 1$"):
            positive_int(text)
    with pytest.raises(ValueError):
        positive_int("1.5")


def test_help_says_what_the_sweep_does_and_each_option(capsys):
    text = help_text(main, capsys)
    assert text.startswith("usage: sweep [-h] [--lr LR [LR ...]] [-S KEY=VALUE] [-j JOBS] [--out OUT] ")
    for sentence in (
        "Learning-rate sweep with DVC's queue: the image stages brought up to date once (`dvc repro "
        "flatten_normalize`), then one experiment `lr-LR` per rate (replacing an earlier one of that name), run by "
        "DVC's queue workers (--jobs at a time), only train and evaluate running; then `dvc exp show` sorted by "
        "validation accuracy (also OUT/exp_show.txt), `dvc plots diff` of the finished runs (OUT/dvc_plots/index.html) "
        "and their loss curves on one chart (OUT/loss_curves.png); a failed run is named with its error and `dvc queue "
        "logs NAME` (exit status 1). Run from the project root.",
        "--lr LR [LR ...] learning rates (default: 0.001 0.003 0.01 0.03)",
        "-S KEY=VALUE, --set-param KEY=VALUE another params.yaml override for every run, as `dvc exp run -S` "
        "takes it (repeatable)",
        "-j JOBS, --jobs JOBS experiments run at the same time by DVC's queue workers (default 1; the results do "
        "not depend on it)",
        "--out OUT output folder (default: sweep)",
    ):
        assert sentence in text
    for bad, message in ((["--lr", "0"], "argument --lr: learning rate '0': expected a number > 0"),
                         (["-j", "0"], "argument -j/--jobs: jobs '0': expected a whole number >= 1"),
                         (["-j", "x"], "argument -j/--jobs: invalid positive_int value: 'x'")):  # fmt: skip
        with pytest.raises(SystemExit):
            main(bad)
        assert message in capsys.readouterr().err


def test_the_runner_puts_this_python_first_on_path_and_names_a_failure(monkeypatch):
    script = (
        "import os; print(os.environ['PATH'], os.environ['DVC_NO_ANALYTICS'], os.environ['COLUMNS'], os.environ['K'])"
    )
    monkeypatch.setenv("PATH", "/nowhere:/usr/bin")
    monkeypatch.setenv("K", "kept")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "0")
    assert sweep._run(PY, "-c", script, capture=True) == f"{Path(PY).parent}:/nowhere:/usr/bin 1 200 kept\n"
    monkeypatch.delenv("PATH")
    assert sweep._run(PY, "-c", "import os; print(os.environ['PATH'])", capture=True) == f"{Path(PY).parent}:\n"
    assert sweep._run(PY, "-c", "print('not captured')") == ""
    with pytest.raises(RuntimeError) as failed:
        sweep._run(PY, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)", capture=True)
    assert str(failed.value) == (
        f"`{PY} -c import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)` failed with exit status 3:"
        "\nout\nerr\n"
    )
    with pytest.raises(RuntimeError) as quiet:
        sweep._run(PY, "-c", "import sys; sys.exit(4)")
    assert str(quiet.value) == f"`{PY} -c import sys; sys.exit(4)` failed with exit status 4"


def test_the_runner_unchecked_gives_stdout_then_stderr_whatever_the_status():
    script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(5)"
    assert sweep._run(PY, "-c", script, capture=True, check=False) == "out\nerr\n"
    assert sweep._run(PY, "-c", script, check=False) == ""
    assert sweep._run(PY, "-c", "import sys; print('e', file=sys.stderr)", capture=True) == ""  # checked: stdout only


def test_dvc_runs_this_pythons_dvc(monkeypatch):
    seen = []
    monkeypatch.setattr(sweep, "_run", lambda *args, capture=False: seen.append((args, capture)) or "x")
    assert sweep.dvc("version", capture=True) == "x"
    sweep.dvc("status")
    assert seen == [((PY, "-m", "dvc", "version"), True), ((PY, "-m", "dvc", "status"), False)]


def test_finished_runs_skips_an_experiment_without_revs_and_ones_with_errors():
    exp_show = [
        {"rev": "HEAD", "experiments": [
            {"executor": {"state": "success"}},  # no revs listed
            {"executor": None, "revs": [{"rev": "e1", "name": "lr-2", "error": {"msg": "x"}}]},
            {"executor": {"state": "running"}, "revs": [{"rev": "r1", "name": "lr-3", "error": None}]},
            {"executor": None, "revs": [{"rev": "ok", "name": "lr-1", "error": None}, {"rev": "o", "name": "lr-9"}]},
        ]},
        {"rev": "other"},  # no experiments
    ]  # fmt: skip
    assert sweep.finished_runs(exp_show, ["lr-3", "lr-2", "lr-1"]) == {"lr-1": "ok"}
