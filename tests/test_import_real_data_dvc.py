"""End to end: a real archive brought in with `dvc import` from a data registry (a git repository whose
DVC remote holds it) works in a temporary experiment (`dvc exp run --temp`), which runs in a copy of
the project: the archive comes from DVC's cache and only train and evaluate run."""

import json
import zipfile

from catsdogs.data.synthetic import write_synthetic_dataset
from tests.test_pipeline_dvc import dvc, make_project, run, stages_run
from tests.test_sweep_parallel import ARCHIVE, REAL


def test_an_imported_archive_works_in_a_temporary_experiment(tmp_path):
    registry = tmp_path / "registry"
    (registry / "data").mkdir(parents=True)
    photos = write_synthetic_dataset(tmp_path / "photos", 15, seed=5, progress=False)
    with zipfile.ZipFile(registry / "data/train.zip", "w") as archive:
        for photo in photos:
            archive.write(photo, f"train/{photo.name}")
    run(registry, "git", "init", "-q", "-b", "main")
    run(registry, "git", "config", "user.email", "test@example.com")
    run(registry, "git", "config", "user.name", "test")
    dvc(registry, "init", "-q")
    dvc(registry, "remote", "add", "-d", "storage", str(tmp_path / "remote"))
    dvc(registry, "add", "data/train.zip")
    dvc(registry, "push")
    run(registry, "git", "add", "-A")
    run(registry, "git", "commit", "-qm", "the archive")

    project = make_project(tmp_path / "project", REAL)
    dvc(project, "import", str(registry), "data/train.zip", "-o", ARCHIVE)
    run(project, "git", "add", f"{ARCHIVE}.dvc", "data/external/.gitignore")
    assert stages_run(dvc(project, "repro").stdout) == [
        "ingest",
        "resize_split",
        "flatten_normalize",
        "train",
        "evaluate",
    ]
    run(project, "git", "add", "-A")
    run(project, "git", "commit", "-qm", "first run on the imported archive")

    result = dvc(project, "exp", "run", "--temp", "-S", "train.lr=0.3")
    assert stages_run(result.stdout) == ["train", "evaluate"], result.stdout
    ingested = json.loads((project / "metrics/ingest.json").read_text())
    assert ingested["usable"] == {"cat": 15, "dog": 15, "total": 30}  # the registry's photos
