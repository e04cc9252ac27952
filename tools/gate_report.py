"""How the regression gate shows its verdict: the plain-text table it prints, the one-line summary,
and the Markdown report for a pull request. Pure formatting of tools.check_metrics's rows.

Outside text (metric and parameter names and values from the files, the base revision's name) is
escaped for where it goes: control characters as \\uNNNN everywhere (common.escape: no terminal escape
sequence, no forged line), and in the Markdown report, which CI posts on the pull request, also
HTML's < > & " ' as entities and Markdown's special characters behind a backslash (`markdown_text`),
so that a value can neither add a table cell (|), a heading (## ...), a link or an HTML element.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from catsdogs.errors import escape
from tools.gate_verdicts import Row, Rule

# What can start Markdown syntax inside a line (a cell's text never starts a line: newlines are escaped);
# `_` only at a word's edge (inside a word, as in mse_loss, GitHub never reads it as emphasis); `://`
# would make an autolink.
MARKDOWN_SPECIAL = re.compile(r"([\\`*{}\[\]#|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def markdown_text(text: str) -> str:
    """`text` as literal Markdown inline text: one line, no HTML, no Markdown syntax."""
    return html.escape(MARKDOWN_SPECIAL.sub(r"\\\1", escape(text)).replace("://", ":\\/\\/"), quote=True)


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
    """Plain-text table with aligned columns (numbers right-aligned), each cell through common.escape."""
    cells = [[escape(cell) for cell in row] for row in cells]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = []
    for index, row in enumerate(cells):
        parts = [cell.rjust(w) if 0 < i < 4 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(cells: Sequence[Sequence[str]]) -> str:
    """GitHub-flavoured Markdown table, each cell through markdown_text."""
    lines = ["| " + " | ".join(map(markdown_text, cells[0])) + " |", "|" + "---|" * len(cells[0])]
    lines += ["| " + " | ".join(markdown_text(str(cell)) for cell in row) + " |" for row in cells[1:]]
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
    parts = [f"## Metrics gate: {verdict.split(':')[0]}", "", markdown_text(verdict), ""]
    parts += [markdown_table(table_cells(rows)), "", f"### Params changed since {markdown_text(base)}", ""]
    if params:
        parts += [markdown_table([["param", "old", "new"], *([name, _text(a), _text(b)] for name, a, b in params)])]
    else:
        parts += ["No parameter changed."]
    parts += ["", "### Loss curves", ""]
    parts += [f"![loss curves, {markdown_text(base)} and workspace]({image})" if image else "No loss history to draw."]
    return "\n".join(parts) + "\n"


def _text(value: Any) -> str:
    return "-" if value is None else str(value)
