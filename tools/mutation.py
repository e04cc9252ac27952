"""Mutation testing (`make mutation`; not in CI, too slow): mutmut makes small bugs (mutants) in the
modules that decide what the model learns and what the user sees, one at a time, and runs each
module's fast unit tests against each; a mutant no test fails on "survived". Writes tests/mutation/.

    python -m tools.mutation                          # the modules of tests/mutation/modules.yaml never run or
                                                      # whose code changed since their last run (stale)
    python -m tools.mutation --all                    # every module
    python -m tools.mutation tools/check_metrics.py   # some of them (the others' results are kept)
    python -m tools.mutation --report-only            # REPORT.md again from results.json (e.g. after a merge)

Each module runs in its own scratch copy of the working tree (.mutation/<module>/, git-ignored, kept:
`cd .mutation/tools__check_metrics.py && ../../.venv/bin/mutmut show NAME` shows a mutant) with a
[tool.mutmut] table for that module: only it is mutated, only its tests run. Every run starts fresh
(mutmut's cache keeps old verdicts of unchanged functions, even after new tests).

Results: tests/mutation/results.json (latest run and history per module, with the SHA-256 of the module's
code it ran on), rendered into REPORT.md, which marks a module STALE when its code changed since (or was
never run: NOT RUN), and tests/test_mutation.py fails when a module has no entry. A survivor (or a mutant no test reaches) needs a new test, or a reason
why it is equivalent (behaves like the original) in tests/mutation/equivalent.yaml, matched by its
mutated line. Exit status: 0 every survivor explained; 1 a survivor without a reason, or a reason
matching no survivor (stale); 2 mutmut failed (its log is printed).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = Path("tests/mutation")
RESULTS, REPORT, EQUIVALENT = OUT / "results.json", OUT / "REPORT.md", OUT / "equivalent.yaml"
# The modules under mutation testing, each with the fast unit tests that should kill its mutants (no DVC tests).
MODULES: dict[str, list[str]] = yaml.safe_load((ROOT / OUT / "modules.yaml").read_text())
SCRATCH = Path(".mutation")
# mutmut's exit codes of a mutant's test run (mutmut/stats.py), grouped for the report.
KILLED = {1: "killed", 3: "killed", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout"}
SURVIVED, NO_TESTS = 0, (5, 33)
# The diffs of some mutants, from mutmut's own function (what `mutmut show NAME` prints), in one process.
DIFFS = (
    "import json, sys; from mutmut.mutation.diff_apply import get_diff_for_mutant; "
    "print(json.dumps({name: get_diff_for_mutant(name, path=sys.argv[1]) for name in json.load(sys.stdin)}))"
)


def project_files(root: Path) -> list[str]:
    """The files of the working tree that git tracks or would track (not ignored), that exist."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({name for name in listing.split("\0") if name and (root / name).is_file()})


def mutmut_config(module: str, tests: Sequence[str], top_level: Sequence[str]) -> str:
    """The [tool.mutmut] table for one module: mutate only `module`, run only `tests`; copy the rest of
    the project (`top_level` entries) beside it so the tests find params.yaml, dvc.yaml, ..."""
    package = module.split("/")[0]
    values = {
        "source_paths": [package],
        "only_mutate": [module],
        "also_copy": [entry for entry in top_level if entry != package],
        "pytest_add_cli_args_test_selection": list(tests),
    }
    # json.dumps of a list of plain strings is a valid TOML array.
    return "[tool.mutmut]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


def prepare(module: str, tests: Sequence[str]) -> Path:
    """A fresh scratch copy of the project with mutmut's config for `module`."""
    scratch = SCRATCH / module.replace("/", "__")
    shutil.rmtree(scratch, ignore_errors=True)
    files = project_files(ROOT)
    for name in files:
        (scratch / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, scratch / name)
    config = mutmut_config(module, tests, sorted({name.split("/")[0] for name in files}))
    pyproject = scratch / "pyproject.toml"
    existing = pyproject.read_text() if pyproject.exists() else ""
    if "[tool.mutmut]" in existing:
        raise SystemExit(f"{pyproject}: the project has its own [tool.mutmut]; tools/mutation.py writes it per module")
    pyproject.write_text(existing + ("\n" if existing else "") + config)
    return scratch


def classify(exit_codes: dict[str, int | None]) -> dict[str, list[str]]:
    """Mutant names by outcome: killed, timeout, survived, no_tests, other (not run, suspicious...)."""
    groups: dict[str, list[str]] = {"killed": [], "timeout": [], "survived": [], "no_tests": [], "other": []}
    for name, code in exit_codes.items():
        if code in KILLED:
            groups[KILLED[code]].append(name)
        elif code == SURVIVED:
            groups["survived"].append(name)
        elif code in NO_TESTS:
            groups["no_tests"].append(name)
        else:
            groups["other"].append(name)
    return groups


def score(counts: dict[str, int]) -> float:
    """Share of mutants the tests catch (killed or timed out) among all mutants."""
    total = sum(counts.values())
    return (counts["killed"] + counts["timeout"]) / total if total else float("nan")


def mutated_lines(diff: str) -> str:
    """The added lines of a mutant's diff (`mutmut show`), stripped: what the mutant wrote."""
    return "\n".join(
        line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")
    )


def run_module(module: str, tests: Sequence[str], max_children: int | None, commit: str) -> dict[str, Any]:
    """Run mutmut on one module; its counts, wall time and the diff of each mutant no test caught."""
    code = code_hash(module)  # before the copy: the code this run's results are about
    scratch = prepare(module, tests)
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [mutmut, "run", *(["--max-children", str(max_children)] if max_children else [])]
    print(f"{module}: mutmut run in {scratch} (tests: {' '.join(tests)})", flush=True)
    load = os.getloadavg()[0]
    start = time.monotonic()
    with open(scratch / "mutmut.log", "w") as log:
        status = subprocess.run(command, cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - start
    if status != 0:
        print((scratch / "mutmut.log").read_text()[-4000:], file=sys.stderr)
        raise SystemExit(f"{module}: mutmut run failed (exit {status}); log: {scratch / 'mutmut.log'}")
    meta = json.loads((scratch / "mutants" / f"{module}.meta").read_text())
    groups = classify(meta["exit_code_by_key"])
    names = sorted(groups["survived"] + groups["no_tests"] + groups["other"], key=mutant_order)
    diffs = json.loads(
        subprocess.run(
            [sys.executable, "-c", DIFFS, module],
            input=json.dumps(names),
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    missed = []
    for name in names:
        outcome = "survived" if name in groups["survived"] else "no tests" if name in groups["no_tests"] else "other"
        missed.append({"name": name, "outcome": outcome, "diff": diffs[name]})
    return {
        "module": module,
        "tests": list(tests),
        "mutmut": metadata.version("mutmut"),
        "date": f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "commit": commit,
        "code_sha256": code,
        "seconds": round(seconds, 1),
        "test_seconds": round(sum(meta["durations_by_key"].values()), 1),
        "load_average": round(load, 2),
        "counts": {key: len(names) for key, names in groups.items()},
        "missed": missed,
    }


def code_hash(module: str) -> str:
    """SHA-256 of the module's code as it is now: a run's results hold for this code only."""
    return hashlib.sha256((ROOT / module).read_bytes()).hexdigest()


def state(module: str, entry: dict[str, Any] | None) -> str:
    """ "current" when the module's latest run was on its code as it is now; "NOT RUN" without a run;
    "STALE" when the code changed since (or the run predates the hash: results re-keyed from old paths)."""
    if not entry or not entry.get("history"):
        return "NOT RUN"
    return "current" if entry["history"][-1].get("code_sha256") == code_hash(module) else "STALE"


def mutant_order(name: str) -> tuple[str, int]:
    """x_judge__mutmut_9 before x_judge__mutmut_10."""
    function, _, number = name.rpartition("__mutmut_")
    return function, int(number) if number.isdigit() else 0


def commit_label() -> str:
    """The commit the working tree is at, with "+changes" when it differs from it."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return head + ("+changes" if dirty else "")


def explain(result: dict[str, Any], reasons: Sequence[dict[str, str]]) -> tuple[list[dict], list[dict]]:
    """Attach to each missed mutant the reason whose `mutated` text is its mutated line(s); return
    (missed mutants, each with `reason` or None) and the reasons that matched none (stale)."""
    used = set()
    missed = []
    for mutant in result["missed"]:
        wrote = mutated_lines(mutant["diff"])
        match = next((i for i, reason in enumerate(reasons) if reason["mutated"].strip() == wrote), None)
        if match is not None:
            used.add(match)
        missed.append({**mutant, "reason": None if match is None else reasons[match]["reason"]})
    return missed, [reason for i, reason in enumerate(reasons) if i not in used]


def render(
    results: dict[str, Any], equivalent: dict[str, list[dict[str, str]]], modules: Sequence[str] | None = None
) -> str:
    """tests/mutation/REPORT.md from the stored results and the reasons, one row per module of `modules`
    (default: modules.yaml's), each with its state: current, STALE (its code changed since its latest
    run: the numbers are of older code) or NOT RUN."""
    modules = list(MODULES) if modules is None else list(modules)
    lines = [
        "# Mutation testing report",
        "",
        "Written by `python -m tools.mutation` (`make mutation`) from tests/mutation/results.json; do not edit by hand.",
        "mutmut makes one small change (a mutant) to a module at a time and runs the module's unit tests;",
        "**score** = caught (killed, or timed out) / all mutants. Every mutant no test catches is listed with",
        "the reason it is equivalent (tests/mutation/equivalent.yaml), or marked UNEXPLAINED (a test is missing).",
        "Times are wall-clock on the shared 2-core machine (load average at the start given).",
        "mutmut switches a mutant on when its function is called during a test: code that runs at import time",
        "(decorators, declarations) only counts when a test calls it again (tests/test_params.py: declare_toy).",
        "**state**: current (the latest run was on the module's code as it is now), STALE (the code changed",
        "since: `make mutation` reruns it) or NOT RUN.",
        "",
        "| module | state | tests | mutants | killed | timeout | survived | no tests | score | run time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for module in modules:
        if module not in results:
            lines.append(f"| {module} | NOT RUN | {', '.join(MODULES.get(module, []))} | | | | | | | |")
            continue
        latest = results[module]["history"][-1]
        counts = latest["counts"]
        lines.append(
            f"| {module} | {state(module, results[module])} | {', '.join(latest['tests'])} | {sum(counts.values())} "
            f"| {counts['killed']} | {counts['timeout']} | {counts['survived']} | {counts['no_tests']} "
            f"| {score(counts):.1%} | {latest['seconds']:.0f} s |"
        )
    for module in [name for name in modules if name in results]:
        entry = results[module]
        latest = entry["history"][-1]
        missed, _ = explain(latest, equivalent.get(module, []))
        lines += ["", f"## {module}", ""]
        if state(module, entry) == "STALE":
            lines += ["**STALE**: the code changed since the latest run below; `make mutation` reruns it.", ""]
        lines += [f"mutmut {latest['mutmut']}, tests: {', '.join(latest['tests'])}.", ""]
        lines += ["| date | commit | mutants | killed | timeout | survived | no tests | score | run time (load) |"]
        lines += ["|---|---|---|---|---|---|---|---|---|"]
        for run in entry["history"]:
            counts = run["counts"]
            lines.append(
                f"| {run['date']} | {run['commit']} | {sum(counts.values())} | {counts['killed']} | {counts['timeout']} "
                f"| {counts['survived']} | {counts['no_tests']} | {score(counts):.1%} | {run['seconds']:.0f} s ({run['load_average']}) |"
            )
        if not missed:
            lines += ["", "Every mutant caught."]
        for mutant in missed:
            lines += [
                "",
                f"**{mutant['name']}** ({mutant['outcome']}): {mutant['reason'] or 'UNEXPLAINED'}",
                "",
                "```diff",
            ]
            lines += [line for line in mutant["diff"].splitlines()[2:] if line.startswith(("+", "-"))]
            lines += ["```"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "modules",
        nargs="*",
        metavar="MODULE",
        help=f"modules to run (default: the stale or never run of {', '.join(MODULES)})",
    )
    parser.add_argument(
        "--max-children", type=int, help="parallel mutant runs (default: mutmut's, the number of cores)"
    )
    parser.add_argument("--all", action="store_true", help="run every module, not only the stale and never run")
    parser.add_argument("--report-only", action="store_true", help="run nothing: REPORT.md from results.json")
    args = parser.parse_args(argv)
    unknown = [module for module in args.modules if module not in MODULES]
    if unknown:
        parser.error(
            f"unknown module {', '.join(unknown)} (allowed: {', '.join(MODULES)}; add it to tests/mutation/modules.yaml)"
        )
    os.chdir(ROOT)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    commit = commit_label()  # before this run writes its results
    chosen = args.modules or [
        module for module in MODULES if args.all or state(module, results.get(module)) != "current"
    ]
    if not args.modules and not args.report_only:
        print(f"modules to run ({'all' if args.all else 'stale or never run'}): {', '.join(chosen) or 'none'}")
    for module in [] if args.report_only else chosen:
        result = run_module(module, MODULES[module], args.max_children, commit)
        results.setdefault(module, {"history": []})["history"].append(result)
        # Only the latest run keeps its mutants' diffs; older runs keep their numbers.
        for older in results[module]["history"][:-1]:
            older.pop("missed", None)
        OUT.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({name: results[name] for name in MODULES if name in results}, indent=1) + "\n")
        print(f"{module}: {result['counts']} in {result['seconds']:.0f} s", flush=True)
    equivalent = (yaml.safe_load(EQUIVALENT.read_text()) if EQUIVALENT.exists() else None) or {}
    REPORT.write_text(render({name: results[name] for name in MODULES if name in results}, equivalent))
    print(f"Report: {REPORT}")
    failed = False
    for module in [name for name in chosen if name in results]:
        missed, stale = explain(results[module]["history"][-1], equivalent.get(module, []))
        for mutant in missed:
            if mutant["reason"] is None:
                failed = True
                print(f"UNEXPLAINED {mutant['outcome']}: {mutant['name']}\n{mutant['diff']}\n")
        for reason in stale:
            failed = True
            print(f"STALE reason in {EQUIVALENT} for {module} (no such survivor): {reason['mutated']!r}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
