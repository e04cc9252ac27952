"""How the regression gate shows its verdict: the plain-text table it prints, the one-line summary,
and the Markdown report for a pull request. Pure formatting of tools.check_metrics's rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tools.gate_verdicts import Row, Rule


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.10g}"


def _rule(rule: Rule) -> str:
    return "info" if rule.direction == "info" else f"{rule.direction}, tol {rule.tolerance:g}"


def table_cells(rows: Sequence[Row]) -> list[list[str]]:
    """The table as text cells, header first: metric, old, new, change, rule, verdict."""
    cells = [["metric", "old", "new", "change", "rule", "verdict"]]
    for row in rows:
        change = "-" if row.change is None else f"{row.change:+.6g}"
        cells.append(
            [f"{row.file}:{row.metric}", _number(row.old), _number(row.new), change, _rule(row.rule), row.verdict]
        )
    return cells


def format_table(cells: Sequence[Sequence[str]]) -> str:
    """Plain-text table with aligned columns (numbers right-aligned)."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = []
    for index, row in enumerate(cells):
        parts = [cell.rjust(w) if 0 < i < 4 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(cells: Sequence[Sequence[str]]) -> str:
    """GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in cells[1:]]
    return "\n".join(lines)


def summary(rows: Sequence[Row], base: str) -> str:
    """One line: PASS, or FAIL naming every failing metric."""
    failed = [f"{row.metric} ({row.verdict})" for row in rows if row.failed]
    if not failed:
        return f"PASS: no metric worse than its tolerance against {base}"
    return f"FAIL: {len(failed)} metric(s) worse than allowed against {base}: {', '.join(failed)}"


def report_markdown(rows: Sequence[Row], base: str, params: Sequence[tuple[str, Any, Any]], image: str | None) -> str:
    """The Markdown report for a pull request: verdict, metrics table, params diff, loss curves."""
    verdict = summary(rows, base)
    parts = [f"## Metrics gate: {verdict.split(':')[0]}", "", verdict, "", markdown_table(table_cells(rows)), ""]
    parts += [f"### Params changed since {base}", ""]
    if params:
        parts += [markdown_table([["param", "old", "new"], *([name, _text(a), _text(b)] for name, a, b in params)])]
    else:
        parts += ["No parameter changed."]
    parts += ["", "### Loss curves", ""]
    parts += [f"![loss curves, {base} and workspace]({image})" if image else "No loss history to draw."]
    return "\n".join(parts) + "\n"


def _text(value: Any) -> str:
    return "-" if value is None else str(value)
