"""The GitHub workflows' invariants that no linter knows (zizmor and the schema check run in `make lint`).

Each rule is a function that lists the problems it finds in the workflow files' text. Every rule is held
by the real files in .github/workflows/, and every rule finds the fault that it is there for in a copy of
them broken in that one way: a tag instead of a commit, a pull_request_target trigger, a write permission
in a job that runs the pull request's code, a checkout in the commenting workflow, and so on.
"""

import re
import subprocess

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = ROOT / ".github/workflows"
GATE = "metrics-gate.yml"
COMMENT = "metrics-gate-comment.yml"
# `uses: owner/repo@<full commit SHA>  # vX.Y.Z`: the commit of that release tag in the action's repository.
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}  # v\d+\.\d+\.\d+$")
USES = re.compile(r"^\s*(?:- )?uses:\s*(.*?)\s*$", re.MULTILINE)
IGNORE = re.compile(r"zizmor: ignore\[([\w,-]+)\]")


def real_files() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(WORKFLOWS.glob("*.y*ml"))}


def load(text: str) -> dict:
    document = yaml.safe_load(text)
    if True in document:  # YAML 1.1 reads the key `on` as the boolean true
        document["on"] = document.pop(True)
    return document


def triggers(document: dict) -> set[str]:
    on = document["on"]
    return {on} if isinstance(on, str) else set(on)


def steps(document: dict):
    for name, job in document["jobs"].items():
        for step in job.get("steps", []):
            yield name, step


def unpinned(files: dict[str, str]) -> list[str]:
    """Every `uses:` is a full commit SHA with its release tag beside it, and each action one commit."""
    problems, commits = [], {}
    for name, text in files.items():
        for reference in USES.findall(text):
            if not PINNED.match(reference):
                problems.append(f"{name}: {reference!r} is not `owner/repo@<40-hex commit>  # vX.Y.Z`")
                continue
            action, commit = reference.split("  #")[0].split("@")
            commits.setdefault(action, set()).add(commit)
    problems += [f"{action} pinned to {len(shas)} commits" for action, shas in commits.items() if len(shas) > 1]
    return problems


def dangerous_triggers(files: dict[str, str]) -> list[str]:
    """No pull_request_target anywhere; workflow_run only in the commenting workflow."""
    problems = []
    for name, text in files.items():
        on = triggers(load(text))
        if "pull_request_target" in on:
            problems.append(f"{name}: pull_request_target runs with a write token on the base repository")
        if "workflow_run" in on and name != COMMENT:
            problems.append(f"{name}: workflow_run outside {COMMENT}")
    return problems


def writes_where_pr_code_runs(files: dict[str, str]) -> list[str]:
    """A workflow on pull_request grants nothing at the top, and each of its jobs only reads."""
    problems = []
    for name, text in files.items():
        document = load(text)
        if "pull_request" not in triggers(document):
            continue
        if document.get("permissions") != {}:
            problems.append(f"{name}: top-level permissions are not {{}} (jobs would inherit them)")
        for job_name, job in document["jobs"].items():
            permissions = job.get("permissions")
            if not isinstance(permissions, dict):
                problems.append(f"{name}: job {job_name} does not list its permissions ({permissions!r})")
            else:
                problems += [
                    f"{name}: job {job_name} runs the pull request's code with {scope}: {level}"
                    for scope, level in permissions.items()
                    if level not in ("read", "none")
                ]
    return problems


def persisted_credentials(files: dict[str, str]) -> list[str]:
    """Every checkout sets persist-credentials: false (no token left in the workspace for a later step)."""
    problems = []
    for name, text in files.items():
        for job_name, step in steps(load(text)):
            checkout = step.get("uses", "").startswith("actions/checkout@")
            if checkout and (step.get("with") or {}).get("persist-credentials") is not False:
                problems.append(f"{name}: job {job_name}'s checkout keeps its credentials")
    return problems


def expressions_in_code(files: dict[str, str]) -> list[str]:
    """No `${{ }}` inside a shell `run:` or a github-script `script:`: outside values come in through env."""
    problems = []
    for name, text in files.items():
        for job_name, step in steps(load(text)):
            for code in (step.get("run", ""), (step.get("with") or {}).get("script", "")):
                if "${{" in code:
                    problems.append(f"{name}: job {job_name} has an expression inside code: {code.strip()[:60]!r}")
    return problems


def comment_runs_pr_code(files: dict[str, str]) -> list[str]:
    """The commenting workflow (which holds a write token) checks nothing out and runs no shell at all."""
    problems = []
    for job_name, step in steps(load(files[COMMENT])):
        if "run" in step:
            problems.append(f"{COMMENT}: job {job_name} runs a shell step")
        if step.get("uses", "").startswith("actions/checkout@"):
            problems.append(f"{COMMENT}: job {job_name} checks out code")
    return problems


def broken_hand_off(files: dict[str, str]) -> list[str]:
    """The commenting workflow starts on the gate workflow by its name, and reads the artifact it uploads."""
    gate, comment = load(files[GATE]), load(files[COMMENT])
    problems = []
    on = comment["on"].get("workflow_run") or {}
    if on.get("workflows") != [gate["name"]] or on.get("types") != ["completed"]:
        problems.append(f"{COMMENT}: does not start on the completion of {gate['name']!r}")
    uploaded = {s["with"]["name"] for _, s in steps(gate) if s.get("uses", "").startswith("actions/upload-artifact@")}
    downloaded = {
        s["with"]["name"] for _, s in steps(comment) if s.get("uses", "").startswith("actions/download-artifact@")
    }
    if len(uploaded) != 1 or uploaded != downloaded or f'"{next(iter(uploaded), "")}"' not in files[COMMENT]:
        problems.append(f"artifact names: {GATE} uploads {uploaded}, {COMMENT} downloads {downloaded}")
    return problems


def pythons_not_supported(files: dict[str, str]) -> list[str]:
    """The tests' matrix is exactly the Makefile's SUPPORTED Pythons."""
    supported = re.search(r"^SUPPORTED := (.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)[1].split()
    matrices = [job["strategy"]["matrix"]["python"] for job in load(files[GATE])["jobs"].values() if "strategy" in job]
    return [] if matrices == [supported] else [f"{GATE}: Python matrices {matrices}, Makefile supports {supported}"]


def suppressed(files: dict[str, str]) -> list[str]:
    """zizmor is silenced only where the commenting workflow must use workflow_run."""
    found = {(name, audit) for name, text in files.items() for audit in IGNORE.findall(text)}
    allowed = {(COMMENT, "dangerous-triggers")}
    return [f"{name}: zizmor ignores {audit}" for name, audit in sorted(found - allowed)]


RULES = [
    unpinned,
    dangerous_triggers,
    writes_where_pr_code_runs,
    persisted_credentials,
    expressions_in_code,
    comment_runs_pr_code,
    broken_hand_off,
    pythons_not_supported,
    suppressed,
]


def test_the_two_workflows_are_there():
    assert set(real_files()) == {GATE, COMMENT}


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.__name__)
def test_the_workflows_hold_the_rule(rule):
    assert rule(real_files()) == []


CHECKOUT = "uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1  # v7.0.1"
# (rule, file, text in it, replaced by): one fault each, made in a copy of the real files.
FAULTS = [
    pytest.param(unpinned, GATE, CHECKOUT, "uses: actions/checkout@v7.0.1", id="tag"),
    pytest.param(unpinned, GATE, CHECKOUT, CHECKOUT.replace("  # v7.0.1", ""), id="no-tag-comment"),
    pytest.param(unpinned, GATE, CHECKOUT, CHECKOUT.replace("3d3c42e5", "4d3c42e5"), id="two-commits"),
    pytest.param(dangerous_triggers, GATE, "  pull_request:\n", "  pull_request_target:\n", id="pull_request_target"),
    pytest.param(
        dangerous_triggers, GATE, "  pull_request:\n", "  pull_request:\n  workflow_run:\n", id="workflow_run-in-gate"
    ),
    pytest.param(writes_where_pr_code_runs, GATE, "permissions: {}\n", "", id="default-top-level"),
    pytest.param(writes_where_pr_code_runs, GATE, "    permissions:\n      contents: read\n", "", id="job-inherits"),
    pytest.param(
        writes_where_pr_code_runs, GATE, "      contents: read\n", "      contents: write\n", id="contents-write"
    ),
    pytest.param(
        writes_where_pr_code_runs,
        GATE,
        "      contents: read\n",
        "      contents: read\n      pull-requests: write\n",
        id="pull-requests-write",
    ),
    pytest.param(persisted_credentials, GATE, "          persist-credentials: false\n", "", id="persist"),
    pytest.param(expressions_in_code, GATE, ".ci/run gate\n", ".ci/run ${{ github.base_ref }}\n", id="in-run"),
    pytest.param(expressions_in_code, COMMENT, "process.env.PULL", "${{ steps.find.outputs.pull }}", id="in-script"),
    pytest.param(comment_runs_pr_code, COMMENT, "    steps:\n", f"    steps:\n      - {CHECKOUT}\n", id="checkout"),
    pytest.param(comment_runs_pr_code, COMMENT, "    steps:\n", "    steps:\n      - run: make\n", id="shell"),
    pytest.param(broken_hand_off, GATE, "name: Pipeline and metrics gate\n", "name: Gate\n", id="renamed-gate"),
    pytest.param(broken_hand_off, GATE, "name: metrics-report\n", "name: report\n", id="renamed-artifact"),
    pytest.param(pythons_not_supported, GATE, '"3.12", "3.13"]', '"3.12"]', id="no-3.13"),
    pytest.param(
        suppressed, GATE, "  pull_request:\n", "  pull_request:  # zizmor: ignore[dangerous-triggers]\n", id="ignore"
    ),
]


@pytest.mark.parametrize("rule, name, old, new", FAULTS)
def test_each_rule_finds_its_fault(rule, name, old, new):
    files = real_files()
    assert files[name].count(old) >= 1, f"{name} no longer holds {old!r}: update this fault"
    files[name] = files[name].replace(old, new, 1)
    assert rule(files) != []


def test_ci_run_refuses_an_unknown_part_with_one_line():
    result = subprocess.run(["bash", ROOT / ".ci/run", "test"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == ".ci/run: unknown part 'test'; usage: .ci/run [tests|gate] (no argument: everything)\n"
