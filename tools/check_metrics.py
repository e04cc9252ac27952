"""The regression gate: compare the workspace metrics with those committed at a base revision, fail on
any metric that got worse by more than its tolerance.

`dvc metrics diff` shows changes but always exits 0 (treeverse/dvc#10408); this exits 1 on a regression.
Rules (direction and tolerance per metric) live in metrics_gate.yaml. The metrics files are committed
to git (`cache: false` in dvc.yaml), so the base values are read with `git show REV:path`: no remote,
no DVC cache needed.

    python -m tools.check_metrics                      # workspace against HEAD
    python -m tools.check_metrics --base main          # on a branch: against main
    python -m tools.check_metrics --report reports     # also reports/metrics_report.md + loss_curves.png

Exit status: 0 no regression, 1 a regression or a removed metric, 2 bad input (unknown revision,
malformed metrics file or config, a folder or FIFO in a file's place, nesting too deep), 3 a file system
error writing the report (no space, read-only). Names and values from the files are escaped for the
terminal and, in the report, for Markdown and HTML (tools/gate_report.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError

from catsdogs.errors import escape, read_regular
from catsdogs.pipeline.command_line import os_error_line
from catsdogs.pipeline.dvc_files import stage_path
from catsdogs.pipeline.params import shown, yaml_error_line
from tools.gate_report import format_table, report_markdown, summary, table_cells
from tools.gate_verdicts import BETTER, INFO, NEW, NO_VALUE, REGRESSION, REMOVED, SAME, WITHIN, Row, Rule
from tools.git_files import read_at, resolve_revision
from tools.loss_curves import plot_loss_curves, read_history

CONFIG_FILE = Path("metrics_gate.yaml")
MAX_CONFIG_BYTES = 1 << 20
PARAMS_FILE = "params.yaml"
DIRECTIONS = ("higher", "lower", "info")
# Metrics are stored rounded (6 to 8 decimals): a change exactly equal to the tolerance must pass
# even though e.g. 0.715 - 0.7125 is 0.0025000000000000577 in binary floating point.
SLACK = 1e-9


class GateError(ValueError):
    """Input the gate cannot judge: unknown revision, malformed metrics file or config."""


# --------------------------------------------------------------------------- pure functions


def parse_rules(document: Any, source: str = str(CONFIG_FILE)) -> dict[str, dict[str, Rule]]:
    """Check the gate config {metrics file: {metric: {direction, tolerance}}} and return it as Rules.

    `direction` is one of DIRECTIONS; `tolerance` (a number >= 0) is required for higher/lower and not
    allowed for info.
    """
    if not isinstance(document, dict) or not document:
        raise GateError(f"{source}: expected a mapping of metrics files to their metrics, got {document!r}")
    rules: dict[str, dict[str, Rule]] = {}
    for file, metrics in document.items():
        names = [file, *(metrics if isinstance(metrics, dict) else ())]
        if not all(isinstance(name, str) for name in names):
            bad = next(name for name in names if not isinstance(name, str))
            raise GateError(f"{source}: key {shown(bad)} is not text; metrics files and metric names are text")
        if not isinstance(metrics, dict) or not metrics:
            raise GateError(f"{source}: {file}: expected a mapping of metric names to rules, got {metrics!r}")
        rules[file] = {}
        for metric, spec in metrics.items():
            where = f"{source}: {file}: {metric}"
            if not isinstance(spec, dict) or spec.get("direction") not in DIRECTIONS:
                raise GateError(f"{where}: expected {{direction: {' | '.join(DIRECTIONS)}, tolerance: number >= 0}}")
            unknown = set(spec) - {"direction", "tolerance"}
            if unknown:
                raise GateError(f"{where}: unknown key {', '.join(sorted(unknown))} (allowed: direction, tolerance)")
            if spec["direction"] == "info":
                if "tolerance" in spec:
                    raise GateError(f"{where}: an `info` metric is never judged, so it takes no tolerance")
                rules[file][metric] = Rule("info")
                continue
            tolerance = spec.get("tolerance")
            if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
                raise GateError(f"{where}: tolerance = {tolerance!r}, expected a number >= 0")
            rules[file][metric] = Rule(spec["direction"], float(tolerance))
    return rules


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}, the dotted names `dvc metrics` and `dvc params` use."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def parse_metrics(text: str, source: str) -> dict[str, float | None]:
    """Parse a JSON metrics file into {dotted name: number or None}; anything else is a GateError."""
    try:
        document = json.loads(text)
        metrics = flatten(document) if isinstance(document, dict) else None
    except json.JSONDecodeError as err:
        raise GateError(f"{source}: not valid JSON ({err})") from None
    except RecursionError:  # nesting deeper than Python's stack (990 levels)
        raise GateError(f"{source}: nested too deep to be a metrics file") from None
    if metrics is None:
        raise GateError(f"{source}: expected a JSON object of metrics, got {type(document).__name__}")
    for name, value in metrics.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (value is None or (number and math.isfinite(value))):
            raise GateError(f"{source}: metric {name} = {value!r} is not a finite number")
    return metrics


def judge(old: float | None, new: float | None, rule: Rule) -> str:
    """The verdict on one metric: `new` compared with `old` under `rule` (None = no value)."""
    if old is None and new is None:
        return SAME
    if old is None:
        return NEW
    if new is None:
        return NO_VALUE
    if rule.direction == "info":
        return SAME if new == old else INFO
    # How much worse: the drop of a higher-is-better metric, the rise of a lower-is-better one.
    worse_by = old - new if rule.direction == "higher" else new - old
    if worse_by == 0:
        return SAME
    if worse_by < 0:
        return BETTER
    return WITHIN if worse_by <= rule.tolerance + SLACK else REGRESSION


def compare(
    old: Mapping[str, Mapping[str, float | None]],
    new: Mapping[str, Mapping[str, float | None]],
    rules: Mapping[str, Mapping[str, Rule]],
) -> list[Row]:
    """Judge every metric of `old` and `new` ({file: {metric: value}}) under `rules`.

    A metric only in `new` passes (NEW); a metric only in `old` fails (REMOVED); a metric with no rule
    is shown as info. A rule naming a metric found in neither is a GateError (most likely a typo).
    """
    rows = []
    for file, file_rules in rules.items():
        before, after = old.get(file, {}), new.get(file, {})
        unknown = [metric for metric in file_rules if metric not in before and metric not in after]
        if unknown:
            raise GateError(
                f"{CONFIG_FILE}: {file}: no metric {', '.join(unknown)} at the base revision or in the workspace"
            )
        for metric in [*before, *(name for name in after if name not in before)]:
            rule = file_rules.get(metric, Rule("info"))
            if metric not in after:
                verdict = REMOVED
            elif metric not in before:
                verdict = NEW
            else:
                verdict = judge(before[metric], after[metric], rule)
            rows.append(Row(file, metric, before.get(metric), after.get(metric), rule, verdict))
    return rows


def params_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(name, old, new) for each flattened parameter that differs; a missing side is None."""
    before, after = flatten(old), flatten(new)
    names = [*before, *(name for name in after if name not in before)]
    return [(name, before.get(name), after.get(name)) for name in names if before.get(name) != after.get(name)]


# --------------------------------------------------------------------------- files at a revision


def load_metrics(commit: str | None, label: str, files: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """{file: {metric: value}} for the metrics files that exist at `commit` (None = workspace)."""
    metrics = {}
    for file in files:
        text = read_at(commit, file)
        if text is not None:
            metrics[file] = parse_metrics(text, f"{label}:{file}")
    return metrics


def load_params(commit: str | None, label: str) -> dict[str, Any]:
    text = read_at(commit, PARAMS_FILE)
    try:
        document = YAML(typ="safe").load(text) if text is not None else {}
    except YAMLError as err:
        raise GateError(f"{label}:{PARAMS_FILE}: not valid YAML ({yaml_error_line(err)})") from None
    except RecursionError:
        raise GateError(f"{label}:{PARAMS_FILE}: nested too deep") from None
    return document if isinstance(document, dict) else {}


def load_rules(path: Path) -> dict[str, dict[str, Rule]]:
    try:
        document = YAML(typ="safe").load(read_regular(path, MAX_CONFIG_BYTES))
    except FileNotFoundError:
        raise GateError(f"{path}: file not found (run from the project root)") from None
    except YAMLError as err:
        raise GateError(f"{path}: not valid YAML ({yaml_error_line(err)})") from None
    except UnicodeDecodeError:
        raise GateError(f"{path}: not UTF-8 text") from None
    except (OSError, RecursionError) as err:  # a folder, no permission; nested too deep
        raise GateError(f"{path}: cannot be read ({getattr(err, 'strerror', None) or 'nested too deep'})") from None
    return parse_rules(document, str(path))


def write_report(directory: Path, rows: Sequence[Row], base: str, commit: str) -> Path:
    """Write directory/metrics_report.md and, when there are loss histories, directory/loss_curves.png."""
    directory.mkdir(parents=True, exist_ok=True)
    history_file = stage_path("train", "--history")  # as the workspace's dvc.yaml names it
    histories = {}
    for label, at in ((base, commit), ("workspace", None)):
        text = read_at(at, str(history_file))
        if text is not None:
            histories[label] = read_history(text, f"{label}:{history_file}")
    image = None
    if histories:
        image = "loss_curves.png"
        plot_loss_curves(histories, directory / image, f"Loss curves: {base} and workspace")
    params = params_changes(load_params(commit, base), load_params(None, "workspace"))
    path = directory / "metrics_report.md"
    path.write_text(report_markdown(rows, base, params, image))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="check_metrics",
        description=(
            "Compare the workspace metrics with those committed at a base revision, metric by metric, "
            f"under the direction and tolerance in {CONFIG_FILE}. Prints a table (old, new, change, "
            "verdict). Exit 0: no regression; 1: a metric worse than its tolerance, or one that "
            "disappeared (a new metric passes); 2: unknown revision, malformed metrics file or config; "
            "3: a file system error writing the report. "
            "Run from the project root."
        ),
    )
    parser.add_argument("--base", default="HEAD", help="revision to compare with (default: HEAD; on a branch: main)")
    parser.add_argument("--config", type=Path, default=CONFIG_FILE, help=f"gate rules (default: {CONFIG_FILE})")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="also write DIR/metrics_report.md (metrics diff, params diff, loss curves) and DIR/loss_curves.png",
    )
    args = parser.parse_args(argv)
    try:
        rules = load_rules(args.config)
        commit = resolve_revision(args.base)
        old = load_metrics(commit, args.base, list(rules))
        new = load_metrics(None, "workspace", list(rules))
        rows = compare(old, new, rules)
        report = write_report(args.report, rows, args.base, commit) if args.report else None
    except ValueError as err:  # a GateError, or an unreadable loss history
        print(f"check_metrics: error: {escape(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # writing the report: no space, read-only, permission
        print(f"check_metrics: error: {os_error_line(err)}", file=sys.stderr)
        return 3
    base, config = escape(args.base), escape(str(args.config))
    print(f"Workspace metrics against {base} ({commit[:7]}), rules from {config}:\n")
    print(format_table(table_cells(rows)))
    print(f"\n{escape(summary(rows, args.base))}")
    if report:
        print(f"Report: {escape(str(report))}")
    return 1 if any(row.failed for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
