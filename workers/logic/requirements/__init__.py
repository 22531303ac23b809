"""Application requirements understood offline: extraction, key schema, evaluation.

- :func:`extract` / :func:`extract_text` -> :class:`Extraction` (typed requirements, evidence spans,
  contradictions, extra_data overrides); ``Extraction.strings()`` are the ``key=value`` strings.
- :data:`KEYS`: every supported key with its kind, unit and description; :func:`describe` is the
  JSON answer of the ``requirements`` configuration request.
- :func:`evaluate` -> :class:`RequirementsReport`: precision and recall over ``cases.jsonl``.
"""

from __future__ import annotations

from typing import Any

from sustainml.workers.logic.requirements import units
from sustainml.workers.logic.requirements.evaluate import RequirementsReport, evaluate, load_cases
from sustainml.workers.logic.requirements.extractor import extract, extract_text
from sustainml.workers.logic.requirements.findings import Contradiction, Extraction, Span, format_requirement
from sustainml.workers.logic.requirements.schema import KEYS, RULES, TEXT_FIELDS, KeySpec

__all__ = [
    "KEYS",
    "Contradiction",
    "Extraction",
    "KeySpec",
    "RequirementsReport",
    "Span",
    "describe",
    "evaluate",
    "extract",
    "extract_text",
    "format_requirement",
    "load_cases",
]


def describe() -> dict[str, Any]:
    """The supported keys, units and conventions (reply of the ``requirements`` request)."""
    return {
        "keys": {key: spec.to_json() for key, spec in KEYS.items()},
        "format": "app_requirements: 'key=value' strings sorted by key; sets comma-joined; numbers with "
        "at most 3 decimals (6 significant digits below 1); extra_data.requirements holds the typed values, "
        "extra_data.evidence the text span of each ({text, start, end, source[, field]})",
        "extra_data": {
            "explicit_keys": list(KEYS),
            "requirements": "an object of the same keys (explicit), a string (free text), or a list of "
            "strings whose 'key=value' items are explicit and whose other items are free text",
            "text_fields": list(TEXT_FIELDS),
            "precedence": "explicit extra_data values win over text (the top-level key over "
            "requirements.<key>); a disagreeing text finding is listed in extra_data.overridden",
        },
        "defaults_ms": {
            "real-time": units.REALTIME_MS,
            "near real-time": units.INTERACTIVE_MS,
            "interactive": units.INTERACTIVE_MS,
            "sub-second": units.SUB_SECOND_MS,
        },
        "conventions": {
            "size": "1 GB = 1024 MB, 1 KB = 1/1024 MB (as workers/logic/tables.py SIZE_UNIT_MB)",
            "frame rate": "N fps -> min_throughput_per_s = N and, when no latency is stated, "
            "max_latency_ms = 1000 / N",
            "periods": "throughput per second; energy/carbon budgets per day (a month = 30 days, "
            "a year = 365 days, per hour x 24)",
            "numbers": "'1,000' and '40 000' are thousands, any other comma is a decimal comma; "
            "k = 1e3, M = 1e6, B = 1e9",
            "ranges": "an upper limit takes the upper end, a lower limit the lower end; a throughput range "
            "requires its upper end",
            "percentages": "quality targets are fractions: '95%' and '95' -> 0.95",
        },
        "contradictions": {kind: rule for kind, rule in RULES.items() if kind != "set"},
    }
