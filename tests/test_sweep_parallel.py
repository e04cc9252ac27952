"""End to end: the sweep on DVC's queue with a real archive in data/external/, in a temporary git
repository. A git-ignored archive is missing from each queued run's copy: the run stops with one line
saying what to run and the sweep reports it as failed; after `dvc add` of the archive the runs work,
and DVC's own queue workers running two at a time (--jobs 2) give the results of one at a time."""

import json
import sys
import zipfile

import pytest

from catsdogs.data.synthetic import write_synthetic_dataset
from tests.test_pipeline_dvc import dvc, make_project, run
from tests.test_sweep import IMAGE_STAGES, stages_of

ARCHIVE = "data/external/train.zip"
REAL = {"ingest": {"source": ARCHIVE}, "train": {"epochs": 20}}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The pipeline reading a Kaggle-layout zip of real JPEGs (train/cat.N.jpg, train/dog.N.jpg) that
    git ignores, after a first `dvc repro`, committed."""
    repo = tmp_path_factory.mktemp("real")
    photos = write_synthetic_dataset(tmp_path_factory.mktemp("photos"), 15, seed=3, progress=False)
    (repo / "data/external").mkdir(parents=True)
    with zipfile.ZipFile(repo / ARCHIVE, "w") as archive:
        for photo in photos:
            archive.write(photo, f"train/{photo.name}")
    make_project(repo, REAL)
    assert run(repo, "git", "check-ignore", ARCHIVE).returncode == 0
    dvc(repo, "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "first run on the archive")
    return repo


def sweep(repo, *args):
    return run(repo, sys.executable, "-m", "tools.sweep", "-S", "train.epochs=20", "--out", "sweep", *args, check=False)


def results(repo):
    """{experiment: (train metrics, evaluate metrics, md5 of the weights)} from `dvc exp show --json`."""
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    found = {}
    for experiment in shown[1]["experiments"]:
        for rev in experiment["revs"]:
            data = rev["data"]
            metrics = data["metrics"]
            found[rev["name"]] = (
                metrics["metrics/train.json"]["data"],
                metrics["metrics/evaluate.json"]["data"],
                data["outs"]["models/weights.npz"]["hash"],
            )
    return found


def track_archive(repo):
    """What the failed run's message says to do: `dvc add` the archive, commit its .dvc file."""
    if not (repo / f"{ARCHIVE}.dvc").exists():
        dvc(repo, "add", ARCHIVE)
        run(repo, "git", "add", f"{ARCHIVE}.dvc", "data/external/.gitignore")
        run(repo, "git", "commit", "-qm", "track the archive with DVC")


def test_a_queued_run_without_the_archive_fails_with_what_to_run(project):
    result = sweep(project, "--lr", "0.3")
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("sweep: error:")]
    assert errors == [
        f"sweep: error: experiment lr-0.3 failed: ingest: error: {ARCHIVE}: not in this queued or temporary "
        "experiment, which runs in a copy of the project holding only what git and DVC track; in the project run "
        f"`dvc add {ARCHIVE}`, commit {ARCHIVE}.dvc and .gitignore, then queue the experiment again (or `dvc "
        "import` it: docs/real-data-in-experiments.md) (its log: `dvc queue logs lr-0.3`)"
    ]
    assert "unknown Git revision" not in result.stdout + result.stderr  # no `plots diff` of a failed run
    assert not (project / "sweep/dvc_plots").exists() and not (project / "sweep/loss_curves.png").exists()


def test_two_workers_give_the_results_of_one(project):
    track_archive(project)
    lrs = ["--lr", "0.3", "0.001"]
    parallel = sweep(project, "--jobs", "2", *lrs)
    assert parallel.returncode == 0, parallel.stdout + parallel.stderr
    workers = sorted(path.name for path in (project / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.out"))
    assert len(workers) >= 2, workers  # DVC started two queue workers
    for name in ("lr-0.3", "lr-0.001"):  # the archive came from DVC's cache: no image stage reran
        assert stages_of(project, name) == (["train", "evaluate"], IMAGE_STAGES)
    two_at_a_time = results(project)
    assert sweep(project, "--jobs", "1", *lrs).returncode == 0
    one_at_a_time = results(project)
    assert sorted(two_at_a_time) == ["lr-0.001", "lr-0.3"]
    assert two_at_a_time == one_at_a_time
    assert two_at_a_time["lr-0.3"] != two_at_a_time["lr-0.001"]
