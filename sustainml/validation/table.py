"""A validation table: rows of estimate vs published figure, with the criteria they are scored by."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Criterion:
    """A pass criterion over the rows' ratios estimate / published, e.g. "within 15 % on 90 %".

    ``tolerance`` is relative for ``kind="relative"`` (|ratio - 1| <= tolerance) and a factor for
    ``kind="factor"`` (1/tolerance <= ratio <= tolerance). ``required`` is the fraction of rows
    that must pass; ``column`` names the ratio column scored.
    """

    column: str
    kind: str
    tolerance: float
    required: float
    label: str = ""

    def passes(self, ratio: float) -> bool:
        if not math.isfinite(ratio) or ratio <= 0:
            return False
        if self.kind == "relative":
            return abs(ratio - 1.0) <= self.tolerance
        if self.kind == "factor":
            return 1.0 / self.tolerance <= ratio <= self.tolerance
        raise ValueError(f"Criterion.kind: expected 'relative' or 'factor', got {self.kind!r}")

    def describe(self) -> str:
        bound = f"within {self.tolerance:.0%}" if self.kind == "relative" else f"within {self.tolerance:g}x"
        return self.label or f"{self.column}: {bound} on at least {self.required:.0%} of rows"


@dataclass
class Table:
    """One part of ``eval published``. ``rows`` are dicts keyed by ``columns``; ratio columns hold
    estimate / published (``None`` when the row is not scored, with the reason in ``notes``)."""

    part: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    criteria: list[Criterion] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ratios(self, column: str) -> list[float]:
        return [float(r[column]) for r in self.rows if isinstance(r.get(column), int | float)]

    def score(self, criterion: Criterion) -> tuple[int, int, bool]:
        """(rows passing, rows scored, criterion met)."""
        ratios = self.ratios(criterion.column)
        passed = sum(criterion.passes(r) for r in ratios)
        met = bool(ratios) and passed / len(ratios) >= criterion.required
        return passed, len(ratios), met

    def median_ratio(self, column: str) -> float | None:
        ratios = self.ratios(column)
        return statistics.median(ratios) if ratios else None

    def to_json(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "title": self.title,
            "columns": self.columns,
            "rows": self.rows,
            "criteria": [
                {"criterion": c.describe(), "passed": p, "scored": n, "met": met}
                for c in self.criteria
                for p, n, met in [self.score(c)]
            ],
            "notes": self.notes,
        }

    def render(self) -> str:
        """Plain text: the title, an aligned table, then one line per criterion."""
        cells = [[_fmt(r.get(c)) for c in self.columns] for r in self.rows]
        widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(self.columns)]
        lines = [f"## {self.title}", ""]
        lines.append("  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
        lines.append("")
        for c in self.criteria:
            passed, scored, met = self.score(c)
            median = self.median_ratio(c.column)
            med = f", median ratio {median:.2f}" if median is not None else ""
            lines.append(f"{'PASS' if met else 'MISS'}  {c.describe()}: {passed}/{scored}{med}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0 or 0.01 <= abs(value) < 1e6:
            return f"{value:.3g}" if abs(value) < 10 else f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value)
