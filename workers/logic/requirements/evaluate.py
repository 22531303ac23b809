"""Precision and recall of the requirement extractor over the shipped table of phrasings.

Each line of ``cases.jsonl`` is a JSON object: ``id``, ``description``, optional ``definition`` and
``extra`` (a UserInput's extra_data), ``expected`` (the typed requirements, ``{}`` = nothing to
find) and optional ``contradictions`` (the keys that must be reported as contradictory).

Scoring is over (key, value) pairs: a predicted pair equal to the expected one (numbers within
0.1 %, sets as sorted lists) is a true positive; a predicted pair that is absent or has another
value is a false positive; an expected pair not predicted with that value is a false negative (a
wrong value counts once as each). Per key and micro-averaged over all keys; contradiction keys are
scored the same way, separately. Names (``hardware``, ``region``) compare without regard to case,
spaces and hyphens ("Jetson AGX Orin" = "jetson agx-orin").

Two tables ship: ``cases.jsonl``, written together with the rules (figures on the development set,
optimistic), and ``blind_cases.jsonl``, written before the rules for the workload keys (hardware,
device counts, region, training scale, tokens, batch size, diffusion steps, resolution, audio
length) and never edited to fit them: its figures are the honest ones on unseen phrasings.
``sustainml eval requirements`` reports both, with the median extraction time per description.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

from sustainml.workers.logic.requirements.extractor import extract
from sustainml.workers.logic.requirements.findings import Value, format_requirement


@dataclass(frozen=True)
class Case:
    id: str
    description: str
    definition: str
    extra: dict[str, Any]
    expected: dict[str, Any]
    contradictions: tuple[str, ...]


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None or p + r == 0:
            return None
        return 2 * p * r / (p + r)

    def to_json(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


@dataclass(frozen=True)
class Miss:
    case_id: str
    text: str
    missing: dict[str, Any]
    unexpected: dict[str, Any]
    contradictions_expected: tuple[str, ...]
    contradictions_found: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.case_id,
            "text": self.text,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "contradictions_expected": list(self.contradictions_expected),
            "contradictions_found": list(self.contradictions_found),
        }


#: The tables ``evaluate`` knows by name: development (written with the rules) and blind.
DEVELOPMENT: Final = "cases.jsonl"
BLIND: Final = "blind_cases.jsonl"


@dataclass
class RequirementsReport:
    title: str = DEVELOPMENT
    median_ms: float = 0.0
    cases: int = 0
    exact: int = 0
    per_key: dict[str, Score] = field(default_factory=dict)
    micro: Score = field(default_factory=Score)
    contradictions: Score = field(default_factory=Score)
    misses: list[Miss] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.title,
            "median_ms_per_description": round(self.median_ms, 3),
            "cases": self.cases,
            "exact_cases": self.exact,
            "micro": self.micro.to_json(),
            "per_key": {k: s.to_json() for k, s in sorted(self.per_key.items())},
            "contradictions": self.contradictions.to_json(),
            "misses": [m.to_json() for m in self.misses],
        }

    def render(self) -> str:
        def pct(v: float | None) -> str:
            return "   -  " if v is None else f"{v * 100:5.1f}%"

        what = (
            "blind table: written before the rules, never edited to fit them"
            if self.title == BLIND
            else "development table: the rules were written with it"
            if self.title == DEVELOPMENT
            else "table given"
        )
        lines = [
            f"requirements extraction, {self.title}: {self.cases} cases, {self.exact} exactly right ({what})",
            f"median extraction time per description: {self.median_ms:.2f} ms",
            f"micro-averaged over (key, value) pairs: precision {pct(self.micro.precision)}  "
            f"recall {pct(self.micro.recall)}  F1 {pct(self.micro.f1)}  "
            f"(tp {self.micro.tp}, fp {self.micro.fp}, fn {self.micro.fn})",
            f"contradictions reported: precision {pct(self.contradictions.precision)}  "
            f"recall {pct(self.contradictions.recall)}",
            "",
            f"{'key':<30} {'precision':>9} {'recall':>7} {'tp':>4} {'fp':>4} {'fn':>4}",
        ]
        for key, s in sorted(self.per_key.items()):
            lines.append(f"{key:<30} {pct(s.precision):>9} {pct(s.recall):>7} {s.tp:>4} {s.fp:>4} {s.fn:>4}")
        if self.misses:
            lines += ["", f"misses ({len(self.misses)}):"]
            for m in self.misses:
                lines.append(f"  {m.case_id}: {m.text}")
                if m.missing:
                    lines.append(f"      missing    {_show(m.missing)}")
                if m.unexpected:
                    lines.append(f"      unexpected {_show(m.unexpected)}")
                if m.contradictions_expected != m.contradictions_found:
                    lines.append(
                        f"      contradictions expected {list(m.contradictions_expected)}, "
                        f"found {list(m.contradictions_found)}"
                    )
        return "\n".join(lines)


def _show(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={format_requirement(_typed(v))}" for k, v in sorted(d.items()))


def _typed(v: Any) -> Value:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, list):
        return [str(x) for x in v]
    return str(v)


def load_cases(path: str | Path | None = None) -> list[Case]:
    """A shipped table (``None`` = the development one, or ``DEVELOPMENT`` / ``BLIND`` by name) or
    the file at ``path``, validated: every line must be a complete case."""
    if path is None or path in (DEVELOPMENT, BLIND):
        where = str(path or DEVELOPMENT)
        text = resources.files(__package__).joinpath(where).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
        where = str(path)
    cases: list[Case] = []
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            case = Case(
                id=str(raw["id"]),
                description=str(raw.get("description", "")),
                definition=str(raw.get("definition", "")),
                extra=dict(raw.get("extra", {})),
                expected=dict(raw["expected"]),
                contradictions=tuple(raw.get("contradictions", ())),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{where}:{lineno}: not a valid case: {exc}") from exc
        if case.id in seen:
            raise ValueError(f"{where}:{lineno}: duplicate case id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    return cases


def _name_key(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def values_equal(expected: Any, got: Any) -> bool:
    if isinstance(expected, str) and isinstance(got, str):
        return _name_key(expected) == _name_key(got)
    if isinstance(expected, list) or isinstance(got, list):
        return isinstance(expected, list) and isinstance(got, list) and sorted(expected) == sorted(got)
    if isinstance(expected, int | float) and isinstance(got, int | float):
        return math.isclose(float(expected), float(got), rel_tol=1e-3, abs_tol=1e-9)
    return bool(expected == got)


def evaluate(path: str | Path | None = None) -> RequirementsReport:
    """Run the extractor over every case of a table (see ``load_cases``) and score it."""
    report = RequirementsReport(
        title=str(path or DEVELOPMENT) if path in (None, DEVELOPMENT, BLIND) else Path(path).name
    )
    timings: list[float] = []
    for case in load_cases(path):
        started = time.perf_counter()
        found = extract(case.description, case.definition, case.extra)
        timings.append((time.perf_counter() - started) * 1000.0)
        got = found.requirements
        report.cases += 1
        missing: dict[str, Any] = {}
        unexpected: dict[str, Any] = {}
        for key in sorted(set(got) | set(case.expected)):
            score = report.per_key.setdefault(key, Score())
            if key in got and key in case.expected and values_equal(case.expected[key], got[key]):
                score.tp += 1
                report.micro.tp += 1
                continue
            if key in got:
                score.fp += 1
                report.micro.fp += 1
                unexpected[key] = got[key]
            if key in case.expected:
                score.fn += 1
                report.micro.fn += 1
                missing[key] = case.expected[key]
        found_contra = tuple(sorted(c.key for c in found.contradictions))
        wanted_contra = tuple(sorted(case.contradictions))
        report.contradictions.tp += len(set(found_contra) & set(wanted_contra))
        report.contradictions.fp += len(set(found_contra) - set(wanted_contra))
        report.contradictions.fn += len(set(wanted_contra) - set(found_contra))
        if missing or unexpected or found_contra != wanted_contra:
            text = " | ".join(p for p in (case.description, case.definition) if p)
            if case.extra:
                text += f" | extra_data {json.dumps(case.extra, sort_keys=True)}"
            report.misses.append(Miss(case.id, text, missing, unexpected, wanted_contra, found_contra))
        else:
            report.exact += 1
    report.median_ms = statistics.median(timings) if timings else 0.0
    return report
