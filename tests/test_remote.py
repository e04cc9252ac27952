"""Sharing through DVC remotes, as a team does, on real servers the tests start on localhost: a local
folder, moto's S3-compatible server and Debian's OpenSSH server (tests/remote_servers.py).

Alice's project (built once per module) tracks a real-source folder with `dvc add
data/external/train` (ingest reads it), has run the pipeline, committed the three remotes' settings in
.dvc/config (her credentials in .dvc/config.local) and then run an experiment. For each remote, at the
same time, from a copy of her project:
  - alice's first `dvc push` is killed with kill -9 part-way; a second push completes; `dvc exp push`
    sends the experiment; then every object on the remote must hash to its name (a push skips the
    names the remote already has, so a half-written object would stay there for good);
  - bob clones the git remote (a bare repository on disk) with no DVC cache: `dvc pull --run-cache`,
    `dvc status` clean, `dvc repro` runs nothing, every output byte-identical to alice's, the same run
    cache; on the local remote he also tries the experiment's parameters: `dvc repro --pull` takes the
    image stages from the run cache instead of recomputing them;
  - carol clones too and only wants the experiment: `dvc exp pull` and `dvc exp apply` give its
    outputs byte for byte.
Each transfer's wall time is recorded (`timings`, printed at the end of the pytest run).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import photo_like
from tests.remote_servers import (
    S3_CREDENTIALS,
    bucket_keys,
    bucket_objects,
    check_objects,
    folder_objects,
    moto_s3,
    s3_client,
    sshd,
)
from tests.test_pipeline_dvc import BIN, dvc, make_project, run, set_param, stages_run

PHOTOS_PER_CLASS = 50  # enough files that a one-at-a-time push lasts long enough to be killed part-way
SMALL = {"ingest": {"source": "data/external/train"}, "train": {"epochs": 20}}
EXPERIMENT = ("resize_split.size", "32", "size-32")
OUTPUTS = ("data/external/train", "data/raw", "data/prepared", "data/features", "models")
UP_TO_DATE = "Data and pipelines are up to date."
BUCKET = "team"


@dataclass
class Remote:
    url: str
    config: dict[str, str]  # committed in .dvc/config: the whole team shares it
    local_config: dict[str, str]  # .dvc/config.local: each teammate's own credentials, never in git
    stored: Callable[[], dict[str, bytes]]  # {path under the remote's root: bytes}
    count: Callable[[], int]  # how many files are under files/ (cheap enough to poll)
    clear: Callable[[], None]  # delete every file under files/ (a push that could not be killed)


def folder_remote(store: Path, url: str, local_config: dict[str, str]) -> Remote:
    return Remote(
        url,
        {},
        local_config,
        lambda: folder_objects(store),
        lambda: sum(1 for _ in store.glob("files/*/*/*")),
        lambda: shutil.rmtree(store / "files", ignore_errors=True),
    )


def write_photos(folder: Path, n_per_class: int) -> None:
    """Kaggle-layout JPEGs (cat.N.jpg, dog.N.jpg), 32 x 32."""
    folder.mkdir(parents=True)
    names = [f"{label}.{i}.jpg" for label in ("cat", "dog") for i in range(n_per_class)]
    for seed, name in enumerate(names):
        photo_like(folder / name, 32, 32, seed)


def output_bytes(repo: Path) -> dict[str, bytes]:
    return {
        path.relative_to(repo).as_posix(): path.read_bytes()
        for name in OUTPUTS
        for path in sorted((repo / name).rglob("*"))
        if path.is_file()
    }


def runs(repo: Path) -> set[str]:
    """The run-cache entries of a repository's cache."""
    return {path.relative_to(repo).as_posix() for path in (repo / ".dvc/cache/runs").rglob("*") if path.is_file()}


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """The servers, and alice's project with the three remotes (named local, s3, ssh) committed.

    Yields (alice's repo, {name: Remote}, the experiment's models/weights.npz bytes). Every dvc and git
    command of the module runs with HOME set to an empty folder (no user's ~/.ssh, ~/.aws or
    ~/.config/dvc gets in); it holds only ~/.ssh/known_hosts with the test server's host key. The S3
    credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), as in CI.
    """
    servers = tmp_path_factory.mktemp("servers")
    with pytest.MonkeyPatch.context() as patch, moto_s3(servers) as endpoint, sshd(servers) as ssh:
        home = tmp_path_factory.mktemp("home")
        patch.setenv("HOME", str(home))
        patch.setenv("PATH", f"{BIN}:{os.environ['PATH']}")
        patch.setenv("AWS_ACCESS_KEY_ID", S3_CREDENTIALS["access_key_id"])
        patch.setenv("AWS_SECRET_ACCESS_KEY", S3_CREDENTIALS["secret_access_key"])
        (home / ".ssh").mkdir()
        (home / ".ssh/known_hosts").write_text(ssh["known_hosts"])  # the server's key is checked
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        stores = tmp_path_factory.mktemp("stores")
        remotes = {
            "local": folder_remote(stores / "local", str(stores / "local"), {}),
            "s3": Remote(
                f"s3://{BUCKET}/store",
                {"endpointurl": endpoint},
                {},
                lambda: bucket_objects(s3, BUCKET, "store"),
                lambda: len(bucket_keys(s3, BUCKET, "store/files")),
                lambda: [s3.delete_object(Bucket=BUCKET, Key=key) for key in bucket_keys(s3, BUCKET, "store/files")],
            ),
            "ssh": folder_remote(
                stores / "ssh",
                f"ssh://{ssh['user']}@127.0.0.1:{ssh['port']}{stores / 'ssh'}",
                {"keyfile": ssh["keyfile"]},
            ),
        }

        repo = make_project(tmp_path_factory.mktemp("alice"), SMALL)
        write_photos(repo / "data/external/train", PHOTOS_PER_CLASS)
        dvc(repo, "add", "data/external/train")
        dvc(repo, "repro")
        for name, remote in remotes.items():
            dvc(repo, "remote", "add", *(["--default"] if name == "local" else []), name, remote.url)
            for key, value in remote.config.items():
                dvc(repo, "remote", "modify", name, key, value)
            for key, value in remote.local_config.items():
                dvc(repo, "remote", "modify", "--local", name, key, value)
        run(repo, "git", "add", "-A")
        run(repo, "git", "commit", "-qm", "tracked source, first run, DVC remotes")
        assert run(repo, "git", "ls-files", "data/external/train.dvc").stdout.strip() == "data/external/train.dvc"
        # After the remotes are committed: DVC reads each revision's own .dvc/config, so an experiment
        # (or commit) made before would have nowhere to push to.
        dvc(repo, "exp", "run", "-S", f"{EXPERIMENT[0]}={EXPERIMENT[1]}", "--name", EXPERIMENT[2])
        experiment_weights = (repo / "models/weights.npz").read_bytes()
        run(repo, "git", "reset", "-q", "--hard")
        dvc(repo, "checkout", "--force")
        yield repo, remotes, experiment_weights


def push_killed_part_way(repo: Path, name: str, remote: Remote, attempts: int = 5) -> int:
    """Start `dvc push -j 1` (one file at a time) to remote `name`, kill -9 it once the remote holds a
    file; return how many files the remote holds then. A push that finished between two looks at the
    remote (a fast local copy, this thread held up by the others) interrupted nothing: its files are
    deleted and it starts again, up to `attempts` times."""
    for _ in range(attempts):
        push = subprocess.Popen(
            [str(BIN / "dvc"), "push", "-r", name, "-j", "1"],
            cwd=repo,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while remote.count() == 0:
            assert push.poll() is None, f"push exited with status {push.returncode} before sending any file"
            assert time.monotonic() < deadline, "no file reached the remote in 60 s"
            time.sleep(0.01)
        push.kill()
        if push.wait() == -9:
            return remote.count()
        remote.clear()
    raise AssertionError(f"the push finished before it could be killed, {attempts} times")


def clone(folder: Path, name: str, alice: Path, remote: str) -> Path:
    """A teammate's clean clone of the git remote, with no DVC cache. Their own settings go to
    .dvc/config.local, never to git: the credentials (here alice's) and which remote they use."""
    run(folder, "git", "clone", "-q", str(folder / "git-remote.git"), name)
    local = (alice / ".dvc/config.local").read_text() if (alice / ".dvc/config.local").exists() else ""
    (folder / name / ".dvc/config.local").write_text(f"{local}[core]\n    remote = {remote}\n")
    return folder / name


def test_check_objects_names_corrupt_objects_and_unexpected_files():
    good, bad = b"photo", b"photo, half-written"
    name = hashlib.md5(good).hexdigest()
    objects, temporary = check_objects(
        {
            f"files/md5/{name[:2]}/{name[2:]}": good,
            "files/md5/4a/.rw0N9oT1yLQXSMf0lrBONA.tmp": bad,
            "runs/ab/cd/ef": b"",
        }
    )
    assert (objects, temporary) == ({name}, ["files/md5/4a/.rw0N9oT1yLQXSMf0lrBONA.tmp"])
    with pytest.raises(AssertionError, match=f"corrupt objects on the remote: .'files/md5/{name[:2]}/{name[2:]}'"):
        check_objects({f"files/md5/{name[:2]}/{name[2:]}": bad})
    with pytest.raises(AssertionError, match="unexpected files on the remote: .'files/md5/4a/partial'"):
        check_objects({"files/md5/4a/partial": bad})


def share(source: Path, name: str, remote: Remote, experiment_weights: bytes, folder: Path) -> str:
    """One team's round trip through remote `name` (see the module docstring), in `folder`, from a copy
    of alice's project. Returns what it measured, one line."""
    folder.mkdir()
    alice = folder / "alice"
    shutil.copytree(source, alice, symlinks=True)
    timings = {}

    def timed(label: str, where: Path, *args: str):
        start = time.perf_counter()
        result = dvc(where, *args)
        timings[label] = time.perf_counter() - start
        return result

    # Alice: the git remote, a push killed part-way, then one that completes.
    git_remote = str(folder / "git-remote.git")
    run(folder, "git", "init", "-q", "--bare", "-b", "main", git_remote)
    run(alice, "git", "push", "-q", git_remote, "main")
    files_when_killed = push_killed_part_way(alice, name, remote)
    pushed = timed("push --run-cache", alice, "push", "-r", name, "--run-cache").stdout.strip().splitlines()[-1]
    files_pushed = remote.count()
    assert 0 < files_when_killed < files_pushed, (files_when_killed, files_pushed)
    timed("exp push", alice, "exp", "push", "-r", name, git_remote, EXPERIMENT[2])

    # Bob: a clean clone; pull, nothing to run, the same bytes, the same run cache.
    bob = clone(folder, "bob", alice, name)
    timed("pull --run-cache", bob, "pull", "--run-cache")
    assert UP_TO_DATE in dvc(bob, "status").stdout
    assert stages_run(dvc(bob, "repro").stdout) == []
    assert output_bytes(bob) == output_bytes(alice)
    assert runs(bob) == runs(alice)
    if name == "local":  # DVC's run-cache logic is the same whatever the transport: once is enough
        # Bob tries the experiment's parameters: `dvc repro --pull` restores the image stages from the
        # run cache, with their outputs pulled from the remote (train and evaluate are not run-cached:
        # they have `cache: false` outputs).
        set_param(bob, "resize_split", "size", EXPERIMENT[1])
        again = timed("repro --pull (run cache)", bob, "repro", "--pull").stdout
        assert stages_run(again) == ["train", "evaluate"], again
        for stage in ("resize_split", "flatten_normalize"):
            assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in again
        assert (bob / "models/weights.npz").read_bytes() == experiment_weights

    # Carol: a clean clone, the experiment only.
    carol = clone(folder, "carol", alice, name)
    timed("exp pull", carol, "exp", "pull", "origin", EXPERIMENT[2])
    dvc(carol, "exp", "apply", EXPERIMENT[2])
    assert UP_TO_DATE in dvc(carol, "status").stdout
    assert (carol / "models/weights.npz").read_bytes() == experiment_weights
    objects, temporary = check_objects(remote.stored())  # after both pushes and exp push

    return (
        f"{', '.join(f'{label} {seconds:.1f} s' for label, seconds in timings.items())}; "
        f"killed with {files_when_killed} of {files_pushed} files on the remote, then {pushed}; "
        f"{len(objects)} objects, all intact; "
        f"temporary files left on the remote by the killed push: {temporary or 'none'}"
    )


@pytest.mark.remote
def test_a_team_shares_data_runs_and_experiments_through_each_remote(team, tmp_path, record_property):
    """The three round trips run at the same time (each mostly waits on dvc, git and its server)."""
    alice, remotes, experiment_weights = team
    with ThreadPoolExecutor(len(remotes)) as pool:
        trips = {
            name: pool.submit(share, alice, name, remote, experiment_weights, tmp_path / name)
            for name, remote in remotes.items()
        }
    failures = []
    for name, trip in trips.items():
        try:
            record_property("timings", f"{name}: {trip.result()}")
        except Exception:
            failures.append(f"--- remote {name}:\n{traceback.format_exc()}")
    assert not failures, "\n".join(failures)
