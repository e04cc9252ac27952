"""tools/mutation.py, the `make mutation` driver: its bookkeeping on hand-made mutmut results (running
mutmut itself takes minutes per module; `make mutation` does that)."""

import hashlib
import json
import tomllib

import pytest

from tests.conftest import ROOT
from tools import mutation
from tools.mutation import (
    MODULES,
    REPORT,
    RESULTS,
    classify,
    explain,
    main,
    mutant_order,
    mutated_lines,
    mutmut_config,
    render,
    score,
)

DIFF = """--- tools/check_metrics.py
+++ tools/check_metrics.py
@@ -1,3 +1,3 @@
     worse_by = old - new
-    if worse_by < 0:
+    if worse_by <= 0:
         return BETTER"""


def test_outcomes_from_mutmut_exit_codes():
    codes = {"a": 1, "b": 0, "c": 33, "d": 36, "e": None, "f": 3, "g": 5, "h": -24}
    assert classify(codes) == {
        "killed": ["a", "f"],
        "timeout": ["d", "h"],
        "survived": ["b"],
        "no_tests": ["c", "g"],
        "other": ["e"],
    }


def test_score_counts_timeouts_as_caught_and_everything_else_against():
    assert score({"killed": 6, "timeout": 1, "survived": 1, "no_tests": 1, "other": 1}) == 0.7


def test_mutated_lines_are_the_added_lines_of_the_diff():
    assert mutated_lines(DIFF) == "if worse_by <= 0:"


def test_mutants_sort_by_function_then_number():
    names = ["m.x_f__mutmut_10", "m.x_f__mutmut_9", "m.x_e__mutmut_2"]
    assert sorted(names, key=mutant_order) == ["m.x_e__mutmut_2", "m.x_f__mutmut_9", "m.x_f__mutmut_10"]


def test_reasons_attach_by_mutated_line_and_stale_ones_are_returned():
    result = {
        "missed": [
            {"name": "m.x_judge__mutmut_22", "outcome": "survived", "diff": DIFF},
            {"name": "m.x_judge__mutmut_30", "outcome": "no tests", "diff": DIFF.replace("<= 0", "< 1")},
        ]
    }
    reasons = [
        {"mutated": "if worse_by <= 0:", "reason": "worse_by == 0 returned above"},
        {"mutated": "if worse_by < 2:", "reason": "gone"},
    ]
    missed, stale = explain(result, reasons)
    assert [(m["name"], m["reason"]) for m in missed] == [
        ("m.x_judge__mutmut_22", "worse_by == 0 returned above"),
        ("m.x_judge__mutmut_30", None),
    ]
    assert stale == [reasons[1]]


def test_mutmut_config_mutates_one_module_and_copies_the_rest():
    config = tomllib.loads(
        mutmut_config(
            "catsdogs/pipeline/params.py", ["tests/test_params.py"], ["catsdogs", "params.yaml", "stages", "tests"]
        )
    )
    assert config["tool"]["mutmut"] == {
        "source_paths": ["catsdogs"],
        "only_mutate": ["catsdogs/pipeline/params.py"],
        "also_copy": ["params.yaml", "stages", "tests"],
        "pytest_add_cli_args_test_selection": ["tests/test_params.py"],
    }


def test_the_report_lists_every_missed_mutant_with_its_reason_or_unexplained(tmp_path, monkeypatch):
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    (tmp_path / "m.py").write_text("")
    run = {
        "module": "m.py",
        "tests": ["tests/test_m.py"],
        "mutmut": "3.8.1",
        "date": "2026-01-01 00:00 UTC",
        "commit": "abc1234",
        "seconds": 61.0,
        "load_average": 1.5,
        "counts": {"killed": 2, "timeout": 0, "survived": 1, "no_tests": 1, "other": 0},
        "missed": [
            {"name": "m.x_judge__mutmut_22", "outcome": "survived", "diff": DIFF},
            {"name": "m.x_judge__mutmut_30", "outcome": "no tests", "diff": DIFF.replace("<= 0", "< 1")},
        ],
    }
    report = render(
        {"m.py": {"history": [run]}},
        {"m.py": [{"mutated": "if worse_by <= 0:", "reason": "equivalent: X"}]},
        ["m.py"],
    )
    assert "| m.py | STALE | tests/test_m.py | 4 | 2 | 0 | 1 | 1 | 50.0% | 61 s |" in report
    assert "| 2026-01-01 00:00 UTC | abc1234 | 4 | 2 | 0 | 1 | 1 | 50.0% | 61 s (1.5) |" in report
    assert (
        "**m.x_judge__mutmut_22** (survived): equivalent: X\n\n```diff\n-    if worse_by < 0:\n+    if worse_by <= 0:\n```"
        in report
    )
    assert "**m.x_judge__mutmut_30** (no tests): UNEXPLAINED" in report


def test_an_unknown_module_is_refused_with_the_allowed_ones(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["stages/nope.py"])
    assert exit.value.code == 2
    assert (
        f"unknown module stages/nope.py (allowed: {', '.join(MODULES)}; add it to tests/mutation/modules.yaml)"
        in capsys.readouterr().err
    )


def test_every_module_and_test_file_named_exists():
    for module, tests in MODULES.items():
        assert (ROOT / module).is_file(), module
        files = [test for test in tests if test.endswith(".py")]  # the others: pytest options (-k EXPRESSION)
        assert files and all((ROOT / test).is_file() for test in files), module


def test_every_module_under_mutation_testing_has_a_report_entry():
    """A module added to modules.yaml without a run would hide behind the others' scores: run it
    (`make mutation MODULES=...`, or `make mutation`, which runs every module without a run)."""
    results = json.loads((ROOT / RESULTS).read_text())
    report = (ROOT / REPORT).read_text()
    missing = [module for module in MODULES if module not in results or f"\n## {module}\n" not in report]
    assert missing == [], f"no mutation results for {missing}: run `make mutation`"


def test_a_module_whose_code_changed_since_its_run_is_stale_and_rerun_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # main() changes to ROOT: restored after the test
    module = tmp_path / "m.py"
    module.write_text("x = 1\n")
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    run = {"tests": ["t.py"], "counts": {"killed": 1, "timeout": 0, "survived": 0, "no_tests": 0, "other": 0}}
    current = {"history": [{**run, "code_sha256": hashlib.sha256(b"x = 1\n").hexdigest()}]}
    assert mutation.state("m.py", current) == "current"
    assert mutation.state("m.py", {"history": [run]}) == "STALE"  # no hash: run on code nobody recorded
    assert mutation.state("m.py", None) == "NOT RUN"
    module.write_text("x = 2\n")
    assert mutation.state("m.py", current) == "STALE"
    entry = {**current["history"][0], "module": "m.py", "mutmut": "3.8.1", "date": "d", "commit": "c"}
    report = render(
        {"m.py": {"history": [{**entry, "seconds": 1, "load_average": 0, "missed": []}]}}, {}, ["m.py", "n.py"]
    )
    assert "| m.py | STALE | t.py | 1 | 1 |" in report and "**STALE**: the code changed since" in report
    assert "| n.py | NOT RUN |" in report
    # `make mutation` without modules runs the stale and the never run only
    ran = []
    monkeypatch.setattr(mutation, "MODULES", {"m.py": ["t.py"], "n.py": ["t.py"], "o.py": ["t.py"]})
    (tmp_path / "o.py").write_text("y = 1\n")
    (tmp_path / "n.py").write_text("z = 1\n")
    stored = {**entry, "seconds": 1, "load_average": 0, "missed": []}
    results = {
        "m.py": {"history": [stored]},
        "o.py": {"history": [{**stored, "code_sha256": hashlib.sha256(b"y = 1\n").hexdigest()}]},
    }
    (tmp_path / "tests/mutation").mkdir(parents=True)
    (tmp_path / RESULTS).write_text(json.dumps(results))
    monkeypatch.setattr(mutation, "commit_label", lambda: "abc")

    def fake_run(module, tests, max_children, commit):
        ran.append(module)
        return {**entry, "module": module, "seconds": 1, "load_average": 0, "missed": []}

    monkeypatch.setattr(mutation, "run_module", fake_run)
    assert mutation.main([]) == 0
    assert ran == ["m.py", "n.py"]
    assert "modules to run (stale or never run): m.py, n.py" in capsys.readouterr().out
