"""What the requirements extractor produces: findings with their evidence spans and strength, the
contradictions among them, and the extraction; the sources text is read from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from sustainml.workers.logic.requirements import units

Value = int | float | str | list[str]

STRENGTH_DEFAULT: Final = 0
STRENGTH_DERIVED: Final = 1
STRENGTH_TEXT: Final = 2
STRENGTH_EXPLICIT: Final = 3


@dataclass(frozen=True)
class Span:
    """Where a value came from: ``source`` text ``[start:end]``; ``field`` names the extra_data key.

    For explicit extra_data values ``text`` is ``"<key>=<value>"`` as given and spans all of it."""

    text: str
    start: int
    end: int
    source: str
    field: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "start": self.start, "end": self.end, "source": self.source}
        if self.field is not None:
            out["field"] = self.field
        return out


@dataclass(frozen=True)
class Finding:
    key: str
    value: float | str
    span: Span
    strength: int


@dataclass(frozen=True)
class Contradiction:
    key: str
    values: list[float | str]
    chosen: float | str
    rule: str
    spans: list[Span]

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "values": list(self.values),
            "chosen": self.chosen,
            "rule": self.rule,
            "evidence": [s.to_json() for s in self.spans],
        }


@dataclass
class Extraction:
    """The requirements of one problem: typed values, their evidence, contradictions, overrides."""

    requirements: dict[str, Value] = field(default_factory=dict)
    evidence: dict[str, Span] = field(default_factory=dict)
    contradictions: list[Contradiction] = field(default_factory=list)
    #: text findings that an explicit extra_data value replaced: key -> (text value, its span)
    overridden: dict[str, tuple[Value, Span]] = field(default_factory=dict)

    def strings(self) -> list[str]:
        """``key=value`` strings sorted by key (numbers via :func:`units.format_value`, sets
        comma-joined): the content of ``AppRequirements.app_requirements``."""
        return [f"{key}={format_requirement(value)}" for key, value in sorted(self.requirements.items())]

    def extra(self) -> dict[str, Any]:
        """What APP_REQUIREMENTS puts in ``extra_data``."""
        return {
            "requirements": {
                k: (list(v) if isinstance(v, list) else v) for k, v in self.requirements.items()
            },
            "evidence": {k: span.to_json() for k, span in sorted(self.evidence.items())},
            "contradictions": [c.to_json() for c in self.contradictions],
            "overridden": {
                k: {"value": v, "evidence": span.to_json()}
                for k, (v, span) in sorted(self.overridden.items())
            },
        }


def format_requirement(value: Value) -> str:
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, int | float):
        return units.format_value(float(value))
    return value


@dataclass(frozen=True)
class Source:
    name: str  # "description" | "definition" | "extra_data"
    text: str
    field: str | None = None
