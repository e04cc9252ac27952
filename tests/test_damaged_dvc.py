"""End to end with the real `dvc` CLI: a corrupt file in DVC's cache (issue 9). DVC names cache files by
their hash and does not check them again, so `dvc checkout` restores the damage and even `dvc repro
--force` keeps it; the stage reading the file says so in one line with the command that repairs it,
and that command (README "Damaged files") does."""

import os
import re

import yaml

from tests.test_pipeline_dvc import SMALL, dvc, make_project, run, stages_run


def lock_md5(repo, path):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", []) if out["path"] == path)


def test_a_corrupt_cache_file_is_named_with_the_command_that_repairs_it(tmp_path):
    (tmp_path / "project").mkdir()
    repo = make_project(tmp_path / "project", SMALL)
    dvc(repo, "repro")
    target = "data/features/valid.npz"
    md5 = lock_md5(repo, target)
    cached = repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    good = cached.read_bytes()
    stat = cached.stat()
    os.chmod(cached, 0o644)
    cached.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])  # bit rot, same size and time
    os.utime(cached, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (repo / target).unlink()
    dvc(repo, "checkout", target)
    assert (repo / target).read_bytes() != good  # the damage came back from the cache

    failed = dvc(repo, "repro", "--force", "evaluate", check=False)  # --force reruns it: the damage stays
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    (line,) = [line for line in failed.stderr.splitlines() if "damaged" in line]
    assert f"{target}: damaged (" in line and "output of stage flatten_normalize" in line
    command = re.search(r"rebuild it: (rm -f .* && dvc repro)$", line).group(1)

    repaired = run(repo, "sh", "-c", command)  # PATH has the venv's dvc
    assert "flatten_normalize" in stages_run(repaired.stdout)
    assert (repo / target).read_bytes() == good and cached.read_bytes() == good
    assert "up to date" in dvc(repo, "status").stdout
