"""The regression gate's verdicts and the rows of its table, shared by tools/check_metrics.py (which
judges) and tools/gate_report.py (which formats)."""

from __future__ import annotations

from dataclasses import dataclass

SAME, BETTER, WITHIN, REGRESSION = "same", "better", "worse, within tolerance", "REGRESSION"
NEW, REMOVED, NO_VALUE, INFO = "new", "REMOVED", "NO VALUE", "info"
FAILING = (REGRESSION, REMOVED, NO_VALUE)


@dataclass(frozen=True)
class Rule:
    """Which way is better for one metric, and the largest change the wrong way that still passes."""

    direction: str  # "higher", "lower" or "info" (shown, never judged)
    tolerance: float = 0.0  # absolute, in the metric's own units


@dataclass(frozen=True)
class Row:
    """One line of the gate's table."""

    file: str
    metric: str
    old: float | None
    new: float | None
    rule: Rule
    verdict: str

    @property
    def change(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING
