"""Bit-identical outputs on every x86-64 CPU (docs/reproducibility.md), with other CPUs simulated on this one:

- every OpenBLAS kernel this CPU can execute, forced with OPENBLAS_CORETYPE (kernels_this_cpu_runs);
- an x86-64-v2 machine (OLD_MACHINE): NumPy's dispatch above its baseline off (NPY_DISABLE_CPU_FEATURES),
  glibc's AVX2 and FMA variants off (GLIBC_TUNABLES), libjpeg-turbo without SIMD (JSIMD_FORCENONE) and
  OpenBLAS's SSE4.2 kernel (Nehalem).

The team flow, in real git and DVC: alice clones the project on the old machine, runs `dvc repro --force`
(every stage, from nothing) and `git status` is clean: dvc.lock, metrics/ and plots/ are the committed bytes; she
pushes to a folder remote. bob clones on another CPU, `dvc pull`s, `dvc status` is clean and `dvc repro`
runs nothing; then he reruns the numeric stages (train, evaluate) under every kernel his CPU has and
each time `git status` stays clean.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, copy_pipeline

BIN = Path(sys.executable).parent
# OpenBLAS's x86-64 kernels and the /proc/cpuinfo flags each needs
KERNEL_FLAGS = {
    "Prescott": {"pni"},
    "Nehalem": {"sse4_2"},
    "Sandybridge": {"avx"},
    "Haswell": {"avx2", "fma"},
    "Zen": {"avx2", "fma"},
    "SkylakeX": {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"},
    "Cooperlake": {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16"},
}
COMMITTED = ("dvc.lock", "metrics", "plots")  # what git holds of the pipeline's outputs


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def kernels_this_cpu_runs() -> list[str]:
    flags = cpu_flags()
    return [kernel for kernel, needs in KERNEL_FLAGS.items() if needs <= flags]


def numpy_dispatch_targets() -> str:
    """NumPy's optional SIMD targets (those above the wheel's baseline), as NPY_DISABLE_CPU_FEATURES takes them."""
    from numpy._core._multiarray_umath import __cpu_dispatch__

    return ",".join(__cpu_dispatch__)


OLD_MACHINE = {
    "OPENBLAS_CORETYPE": "Nehalem",
    "NPY_DISABLE_CPU_FEATURES": numpy_dispatch_targets(),
    "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F,-AVX",
    "JSIMD_FORCENONE": "1",
}

pytestmark = pytest.mark.skipif(
    not Path("/proc/cpuinfo").exists() or os.uname().machine != "x86_64", reason="simulates x86-64 CPUs (Linux)"
)


def run(repo: Path, *args: str, machine: dict[str, str] | None = None) -> str:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    for variable in ("OPENBLAS_CORETYPE", *OLD_MACHINE):
        env.pop(variable, None)
    env.update(machine or {})
    result = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}) on {machine}:\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def changed(repo: Path) -> str:
    """git status --short of the committed outputs: empty when every byte is the committed one."""
    return run(repo, "git", "status", "--short", "--untracked-files=no", "--", *COMMITTED)


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """alice's clone after `dvc repro` on the old machine and `dvc push`; bob's clone after `dvc pull`."""
    origin = copy_pipeline(tmp_path_factory.mktemp("origin"))
    for name in COMMITTED:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, origin / name)
    run(origin, "git", "init", "-q", "-b", "main")
    run(origin, "git", "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    run(origin, "git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "project")
    remote = tmp_path_factory.mktemp("remote")
    run(origin, str(BIN / "dvc"), "remote", "add", "--local", "-d", "shared", str(remote))

    alice = tmp_path_factory.mktemp("alice") / "project"
    run(origin, "git", "clone", "-q", str(origin), str(alice))
    shutil.copy(origin / ".dvc/config.local", alice / ".dvc/config.local")
    repro = run(
        alice, str(BIN / "dvc"), "repro", "--force", machine=OLD_MACHINE
    )  # every stage, not only those whose outputs are missing
    alice_changes = changed(alice)
    run(alice, str(BIN / "dvc"), "push", machine=OLD_MACHINE)

    bob = tmp_path_factory.mktemp("bob") / "project"
    run(origin, "git", "clone", "-q", str(origin), str(bob))
    shutil.copy(origin / ".dvc/config.local", bob / ".dvc/config.local")
    kernel = kernels_this_cpu_runs()[-1]  # the newest this CPU has: the furthest from the old machine
    run(bob, str(BIN / "dvc"), "pull", machine={"OPENBLAS_CORETYPE": kernel})
    return {"alice": alice, "repro": repro, "alice_changes": alice_changes, "bob": bob, "bob_kernel": kernel}


def test_the_old_machine_reproduces_every_committed_byte_from_nothing(team):
    stages = ("ingest", "resize_split", "flatten_normalize", "train", "evaluate")
    assert [f"Running stage '{stage}'" in team["repro"] for stage in stages] == [True] * len(stages)
    assert team["alice_changes"] == ""


def test_a_teammate_on_another_cpu_pulls_and_has_nothing_to_rerun(team):
    bob, machine = team["bob"], {"OPENBLAS_CORETYPE": team["bob_kernel"]}
    assert "Data and pipelines are up to date" in run(bob, str(BIN / "dvc"), "status", machine=machine)
    assert "Running stage" not in run(bob, str(BIN / "dvc"), "repro", machine=machine)


@pytest.mark.parametrize("kernel", kernels_this_cpu_runs())
def test_the_numeric_stages_give_the_committed_bytes_under_every_kernel(team, kernel):
    bob = team["bob"]
    for stage in ("train", "evaluate"):
        out = run(
            bob, str(BIN / "dvc"), "repro", "--force", "--single-item", stage, machine={"OPENBLAS_CORETYPE": kernel}
        )
        assert f"Running stage '{stage}'" in out
    assert changed(bob) == ""


def test_the_old_machine_is_really_another_machine():
    """The simulation takes effect: OpenBLAS runs the forced kernel, NumPy none of its optional SIMD targets,
    glibc loads its baseline x86-64 libraries (not the haswell ones)."""
    code = (
        "import threadpoolctl; from numpy._core._multiarray_umath import __cpu_features__, __cpu_dispatch__;"
        "print([i['architecture'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'][0],"
        " any(__cpu_features__[target] for target in __cpu_dispatch__))"
    )
    assert run(ROOT, sys.executable, "-c", code, machine=OLD_MACHINE).split() == ["Nehalem", "False"]
    loader = Path("/lib64/ld-linux-x86-64.so.2")
    if loader.exists():
        diagnostics = run(ROOT, str(loader), "--list-diagnostics", machine=OLD_MACHINE)
        assert 'dl_platform="x86_64"' in diagnostics
