"""End to end: the real `dvc` CLI on the real pipeline, in a temporary git repository, on real JPEGs.

One repository per module (the first `dvc repro` is the expensive part); every test leaves it as it
found it: the commit made after the first run, with its outputs checked out.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from catsdogs.errors import DataError
from catsdogs.pipeline.dvc_files import stage_arguments, stage_path
from tests.conftest import ROOT, copy_pipeline

BIN = Path(sys.executable).parent
SMALL = {"ingest": {"n_per_class": 30}, "train": {"epochs": 60}}
FIRST_REPRO = {}
STAGES = ("ingest", "resize_split", "flatten_normalize", "train", "evaluate")


def run(repo, *args, check=True):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    result = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(repo, *args, check=True):
    return run(repo, str(BIN / "dvc"), *args, check=check)


def stages_run(output):
    return re.findall(r"Running stage '(\w+)'", output)


def set_param(repo, group, key, value_text):
    """Edit one key of params.yaml as text, the way a user would (so `1e-3` stays as written)."""
    path = repo / "params.yaml"
    text, count = re.subn(
        rf"(^{group}:\n(?:[ #].*\n|\n)*?  {key}: ).*$", rf"\g<1>{value_text}", path.read_text(), flags=re.M
    )
    assert count == 1, f"{group}.{key} not found"
    path.write_text(text)


def make_project(repo, changes):
    """Copy the project's pipeline into the empty folder `repo`, with params `changes` ({group: {key:
    value}}), and commit it in a new git repository."""
    copy_pipeline(repo)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for group, values in changes.items():
        params[group].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(repo, "git", "init", "-q", "-b", "main")
    run(repo, "git", "config", "user.email", "test@example.com")
    run(repo, "git", "config", "user.name", "test")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "project")
    return repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = make_project(tmp_path_factory.mktemp("project"), SMALL)
    first = dvc(repo, "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "first run")
    FIRST_REPRO["stdout"] = first.stdout
    return repo


@pytest.fixture
def clean(repo):
    yield repo
    run(repo, "git", "reset", "-q", "--hard")
    dvc(repo, "checkout", "--force")


def recomputed_metrics(repo):
    """Accuracy and MSE loss recomputed in float64 from the pipeline's own files: the model train wrote
    and the validation features evaluate read (the oracle for the metrics evaluate wrote)."""
    model = np.load(repo / stage_path("train", "--model", repo / "dvc.yaml"))
    valid = np.load(repo / stage_path("evaluate", "--valid-features", repo / "dvc.yaml"))
    a = 1 / (1 + np.exp(-(valid["X"].astype(np.float64) @ model["W"] + float(model["b"]))))
    y = valid["y"].astype(np.float64)
    return {"accuracy": float(np.mean((a > 0.5) == y)), "mse_loss": float(np.mean((a - y) ** 2) / 2), "n_valid": len(y)}


def test_repro_runs_every_stage_then_nothing(repo):
    assert stages_run(FIRST_REPRO["stdout"]) == list(STAGES)
    assert len(list((repo / "data/raw").glob("*.jpg"))) == 60
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    expected = recomputed_metrics(repo)
    assert metrics["n_valid"] == expected["n_valid"] == 12
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
    assert metrics["mse_loss"] == pytest.approx(expected["mse_loss"], rel=1e-5)
    second = dvc(repo, "repro")
    assert stages_run(second.stdout) == []
    assert "up to date" in second.stdout


def test_learning_rate_change_reruns_only_train_and_evaluate(clean):
    repo = clean
    set_param(repo, "train", "lr", "0.5")
    assert stages_run(dvc(repo, "repro").stdout) == ["train", "evaluate"]
    params_diff = json.loads(dvc(repo, "params", "diff", "--json").stdout)
    assert list(params_diff["params.yaml"]) == ["train.lr"]
    assert (
        params_diff["params.yaml"]["train.lr"]["old"] == 0.003 and params_diff["params.yaml"]["train.lr"]["new"] == 0.5
    )
    metrics_diff = json.loads(dvc(repo, "metrics", "diff", "--json").stdout)
    changed = metrics_diff["metrics/evaluate.json"]["mse_loss"]
    assert changed["old"] != changed["new"] and changed["diff"] == pytest.approx(changed["new"] - changed["old"])


def test_experiment_with_a_learning_rate_is_listed_with_its_metrics(clean):
    repo = clean
    out = dvc(repo, "exp", "run", "-S", "train.lr=0.01", "--name", "lr-0.01")
    assert stages_run(out.stdout) == ["train", "evaluate"]
    table = dvc(repo, "exp", "show", "--csv", "--no-pager").stdout.splitlines()
    header = table[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in table[1:]]
    experiment = next(row for row in rows if row["Experiment"] == "lr-0.01")
    assert float(experiment["train.lr"]) == 0.01
    expected = recomputed_metrics(repo)  # exp run leaves the experiment's outputs in the workspace
    assert float(experiment["accuracy"]) == pytest.approx(expected["accuracy"], abs=1e-4)
    assert float(experiment["mse_loss"]) == pytest.approx(expected["mse_loss"], rel=1e-4)
    assert float(experiment["mse_loss"]) != pytest.approx(
        json.loads(run(repo, "git", "show", "HEAD:metrics/evaluate.json").stdout)["mse_loss"]
    )


@pytest.mark.parametrize(
    "overrides, written",
    [
        (("train.lr=0.00001", "train.l2=1.0e-4"), {"lr": 1e-05, "l2": 1e-4}),  # DVC writes `lr: 1e-05`
        (("train.lr=1e2", "train.epochs=1.0e1"), {"lr": 100.0, "epochs": 10}),
    ],
)
def test_exp_run_set_param_values_in_exponent_form_run(clean, overrides, written):
    """`dvc exp run -S` writes params.yaml with YAML 1.2 numbers (`1e-05`); the stages read them as DVC does."""
    repo = clean
    name = f"exponent-{written['lr']}"
    args = [arg for override in overrides for arg in ("-S", override)]
    out = dvc(repo, "exp", "run", *args, "--name", name)
    assert stages_run(out.stdout) == ["train", "evaluate"]
    table = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    (run,) = [exp for commit in table for exp in (commit.get("experiments") or []) if exp["name"] == name]
    params = run["revs"][0]["data"]["params"]["params.yaml"]["data"]["train"]
    assert {key: params[key] for key in written} == written
    metrics = run["revs"][0]["data"]["metrics"]["metrics/train.json"]["data"]
    assert metrics["epoch"] == params["epochs"]


def test_plots_show_writes_every_plot(clean):
    repo = clean
    dvc(repo, "plots", "show", "-o", "dvc_plots")
    page = (repo / "dvc_plots/index.html").read_text()
    for title in (
        "Loss curves",
        "ROC curve",
        "Confusion matrix",
        "loss.png",
        "weights.png",
        "roc.png",
        "confusion.png",
        "mistakes.png",
    ):
        assert title in page, title


def test_evaluate_pngs_are_committed_outputs_and_the_same_bytes_when_rerun(clean):
    """The PNGs are outputs of evaluate kept in git (cache: false), hashed in dvc.lock: forcing evaluate to
    run again must give the same bytes, so neither the files nor dvc.lock change."""
    repo = clean
    pngs = ("plots/loss.png", "plots/weights.png", "plots/roc.png", "plots/confusion.png", "plots/mistakes.png")
    tracked = run(repo, "git", "ls-files", *pngs).stdout.split()
    assert sorted(tracked) == sorted(pngs)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["evaluate"]
    assert {out["path"] for out in lock["outs"]} >= set(pngs)
    before = {png: (repo / png).read_bytes() for png in pngs}
    assert stages_run(dvc(repo, "repro", "--force", "--single-item", "evaluate").stdout) == ["evaluate"]
    assert {png: (repo / png).read_bytes() for png in pngs} == before
    assert run(repo, "git", "status", "--porcelain").stdout == ""


def test_predict_says_the_model_learned_from_the_synthetic_set(clean):
    """predict on a photo of the pipeline's own run: P(cat) and the label at evaluate.threshold, and a note
    that dvc.lock records ingest.source: synthetic for the run that made this model file. After ingest is
    rerun alone on other photos, dvc.lock no longer vouches for the model's data, and predict says so."""
    repo = clean
    command = (str(BIN / "python"), "-m", "catsdogs.predict", "data/raw/cat.0.jpg")
    result = run(repo, *command)
    assert re.fullmatch(r"data/raw/cat\.0\.jpg\tP\(cat\)=0\.\d{4}\t(cat|dog)\n", result.stdout)
    assert result.stderr.startswith(
        "predict: note: models/weights.npz was trained on the embedded synthetic set (ingest.source: synthetic in "
        "dvc.lock)"
    )
    p_cat = float(result.stdout.split("=")[1].split()[0])
    assert result.stdout.endswith("\tcat\n" if p_cat > 0.5 else "\tdog\n")  # params.yaml's threshold: 0.5
    flipped = p_cat + 0.001 if p_cat > 0.5 else p_cat - 0.001  # a threshold on the other side of P(cat)
    set_param(repo, "evaluate", "threshold", f"{flipped:.4f}")
    assert run(repo, *command).stdout.endswith("\tdog\n" if p_cat > 0.5 else "\tcat\n")
    set_param(repo, "ingest", "seed", "1")
    assert stages_run(dvc(repo, "repro", "--single-item", "ingest").stdout) == ["ingest"]
    assert "so which photos trained it is unknown" in run(repo, *command).stderr


def test_a_diverging_learning_rate_stops_train_with_the_epoch_and_what_to_change(clean):
    repo = clean
    set_param(repo, "train", "lr", "10.0")
    set_param(repo, "train", "l2", "1.0")
    result = dvc(repo, "repro", check=False)
    assert result.returncode != 0
    assert re.search(
        r"train: error: params.yaml: train.lr = 10 made the training diverge: after \d+ of 60 epochs "
        r".* only stable for train.lr x train.l2 < 2, here 10 x 1 = 10",
        result.stderr,
    ), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert stages_run(result.stdout) == ["train"]  # evaluate never ran on diverged weights


@pytest.mark.parametrize(
    "group, key, value, message",
    [
        ("train", "lr", "-0.01", "train.lr = -0.01 is out of range, expected a number > 0"),
        ("train", "lr", "1.0e300", "train.lr = 1e+300 is out of range, expected a number > 0 and <= 1000000.0"),
        ("train", "lr", "'0.01'", "train.lr = '0.01' is text, expected a number"),
        ("train", "loss", "hinge", "train.loss = 'hinge' is not allowed, expected one of: mse, cross_entropy"),
        ("resize_split", "valid_fraction", "1.5", "resize_split.valid_fraction = 1.5 is out of range"),
        (
            "resize_split",
            "size",
            "1024",
            "resize_split.size = 1024 is out of range, expected an integer >= 1 and <= 512",
        ),
    ],
)
def test_bad_parameter_stops_the_stage_with_a_message(clean, group, key, value, message):
    repo = clean
    set_param(repo, group, key, value)
    result = dvc(repo, "repro", check=False)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout


def test_missing_key_is_named(clean):
    repo = clean
    path = repo / "params.yaml"
    path.write_text(re.sub(r"^  epochs: .*\n", "", path.read_text(), flags=re.M))
    before = (repo / "models/weights.npz").read_bytes()
    arguments = stage_arguments("train", repo / "dvc.yaml")
    result = run(repo, str(BIN / "python"), "-m", "stages.train", *arguments, check=False)
    assert result.returncode == 2
    assert "missing key train.epochs" in result.stderr
    assert (repo / "models/weights.npz").read_bytes() == before  # stopped before any work


CODE_ROOTS = ("stages", "catsdogs")  # the stage scripts and the library they import


def imported_stage_files(module: str) -> set[str]:
    """The files of `stages.<module>` and of every project module it imports, directly or not (stages/ and
    the catsdogs library), including each package's __init__.py (importing a module runs them;
    stages/__init__.py pins BLAS threads, which the results depend on)."""
    import ast

    found, todo = set(), [f"stages.{module}"]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        package_inits = [ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]
        module_file = ROOT.joinpath(*parts).with_suffix(".py")
        if not module_file.exists():
            module_file = ROOT.joinpath(*parts, "__init__.py")
        for file in (*package_inits, module_file):
            path = file.relative_to(ROOT).as_posix()
            if path in found:
                continue
            found.add(path)
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in CODE_ROOTS:
                    todo.append(node.module)
                    todo.extend(
                        f"{node.module}.{alias.name}"
                        for alias in node.names
                        if ROOT.joinpath(*node.module.split("."), f"{alias.name}.py").exists()
                    )
    return found


def stage_definition(stage: str) -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]


def paths_of(entries) -> set[str]:
    return {entry if isinstance(entry, str) else next(iter(entry)) for entry in entries}


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_depends_on_exactly_the_code_it_runs(stage):
    """Editing any module a stage imports must rerun that stage, and nothing else: dvc.yaml lists each
    such file as a dep, and no other stages/ file."""
    module = re.match(r"python -m stages\.(\w+)( |$)", stage_definition(stage)["cmd"]).group(1)
    code = {dep for dep in paths_of(stage_definition(stage)["deps"]) if dep.split("/")[0] in CODE_ROOTS}
    assert code == imported_stage_files(module)


@pytest.mark.parametrize("stage", STAGES)
def test_every_data_dep_and_out_is_named_in_the_stages_cmd(stage):
    """dvc.yaml is the one map of files: the stage reads and writes exactly the paths its `cmd:` names,
    each given by an option (`--option path`), and the code has no default path."""
    definition = stage_definition(stage)
    files = {path for path in paths_of(definition["deps"]) if path.split("/")[0] not in CODE_ROOTS}
    files |= paths_of(definition.get("outs", [])) | paths_of(definition.get("metrics", []))
    words = stage_arguments(stage, ROOT / "dvc.yaml")
    options, paths = words[::2], words[1::2]
    assert len(options) == len(paths) and all(option.startswith("--") for option in options), words
    assert set(paths) == files


def test_stage_path_reads_the_cmd(tmp_path):
    assert stage_path("train", "--model", ROOT / "dvc.yaml") == Path("models/weights.npz")
    assert stage_path("evaluate", "--model", ROOT / "dvc.yaml") == Path("models/weights.npz")
    dvc_file = tmp_path / "dvc.yaml"
    dvc_file.write_text("stages:\n  train:\n    cmd: python -m stages.train --history 'my runs/h.csv'\n")
    assert stage_path("train", "--history", dvc_file) == Path("my runs/h.csv")
    with pytest.raises(DataError, match=r"stage `train`'s cmd has no `--model PATH`"):
        stage_path("train", "--model", dvc_file)
    with pytest.raises(DataError, match=r"no stage `evaluate` with a `cmd:`"):
        stage_path("evaluate", "--model", dvc_file)
    with pytest.raises(DataError, match=r"not found \(run from the project root\)"):
        stage_path("train", "--model", tmp_path / "missing.yaml")
