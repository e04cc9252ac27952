"""End to end: the model registry, in a temporary git repository with a DVC remote. The model is the
artifact `cats-dogs-neuron` of dvc.yaml; GTO (its git tags) registers two versions and assigns them
stages; `dvc artifacts get` fetches each into another folder, the same bytes as dvc.lock recorded for
that version; predict scores photos with the fetched file."""

import hashlib
import re
import sys

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_check_metrics_dvc import TINY
from tests.test_pipeline_dvc import BIN, dvc, make_project, run, set_param

ARTIFACT = "cats-dogs-neuron"


def gto(repo, *args):
    return run(repo, str(BIN / "gto"), *args)


def locked_weights_md5(repo, ref):
    """The md5 dvc.lock recorded for the model file at git ref `ref`: the oracle of a fetched version."""
    lock = yaml.safe_load(run(repo, "git", "show", f"{ref}:dvc.lock").stdout)
    (out,) = [out for out in lock["stages"]["train"]["outs"] if out["path"] == "models/weights.npz"]
    return out["md5"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Two trained versions of the model, each registered and pushed to a local DVC remote:
    v0.0.1 (lr 0.003) in stage prod, v0.0.2 (lr 0.5) in stage staging."""
    repo = make_project(tmp_path_factory.mktemp("registry"), TINY)
    dvc(repo, "remote", "add", "-d", "storage", str(tmp_path_factory.mktemp("remote")))
    for lr, version, stage in (("0.003", "v0.0.1", "prod"), ("0.5", "v0.0.2", "staging")):
        set_param(repo, "train", "lr", lr)
        dvc(repo, "repro")
        dvc(repo, "push")
        run(repo, "git", "add", "-A")
        run(repo, "git", "commit", "-qm", f"train with lr {lr}")
        registered = gto(repo, "register", ARTIFACT)
        assert f"Created git tag '{ARTIFACT}@{version}' that registers version" in registered.stdout
        gto(repo, "assign", ARTIFACT, "--version", version, "--stage", stage)
    return repo


def test_dvc_yaml_declares_the_model_artifact():
    artifact = yaml.safe_load((ROOT / "dvc.yaml").read_text())["artifacts"][ARTIFACT]
    assert artifact["path"] == "models/weights.npz" and artifact["type"] == "model"
    assert artifact["desc"] and artifact["labels"]


def test_gto_shows_versions_and_stages(registry):
    tags = run(registry, "git", "tag").stdout.split()
    assert sorted(tags) == sorted(
        [f"{ARTIFACT}@v0.0.1", f"{ARTIFACT}@v0.0.2", f"{ARTIFACT}#prod#1", f"{ARTIFACT}#staging#2"]
    )
    shown = gto(registry, "show", ARTIFACT).stdout
    assert re.search(r"v0\.0\.2\s.*staging", shown) and re.search(r"v0\.0\.1\s.*prod", shown), shown
    assert gto(registry, "show", f"{ARTIFACT}#prod", "--ref").stdout.split() == [f"{ARTIFACT}@v0.0.1"]


def test_artifacts_get_into_another_folder_and_predict(registry, tmp_path):
    fetched = {}
    for how, tag in (
        (("--stage", "prod"), f"{ARTIFACT}@v0.0.1"),
        (("--stage", "staging"), f"{ARTIFACT}@v0.0.2"),
        (("--rev", "v0.0.1"), f"{ARTIFACT}@v0.0.1"),
    ):
        out = tmp_path / "-".join(how) / "weights.npz"
        dvc(tmp_path, "artifacts", "get", str(registry), ARTIFACT, *how, "-o", str(out))
        assert hashlib.md5(out.read_bytes()).hexdigest() == locked_weights_md5(registry, tag), how
        fetched[how] = out
    assert fetched[("--stage", "prod")].read_bytes() == fetched[("--rev", "v0.0.1")].read_bytes()
    photos = [str(registry / "data/raw" / name) for name in ("cat.1.jpg", "dog.2.jpg")]
    scores = {}
    for how in (("--stage", "prod"), ("--stage", "staging")):
        result = run(registry, sys.executable, "-m", "catsdogs.predict", "--weights", str(fetched[how]), *photos)
        lines = result.stdout.splitlines()
        assert [line.split("\t")[0] for line in lines] == photos
        assert all(re.fullmatch(r".*\tP\(cat\)=0\.\d{4}\t(cat|dog)", line) for line in lines), lines
        scores[how] = lines
    assert scores[("--stage", "prod")] != scores[("--stage", "staging")]  # each run read its own file
