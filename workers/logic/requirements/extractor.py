"""Application requirements read out of a problem description: deterministic regular expressions.

Sources, in this order: ``description`` (``problem_short_description``), ``definition``
(``problem_definition``) and ``extra_data``. From extra_data:

- every requirement key of :data:`schema.KEYS` at the top level (``max_latency_ms: 50``,
  ``deployment: "edge"``, ``languages: ["en", "German"]``) is an explicit value;
- ``requirements`` may be a dict of such keys (explicit), a string (free text) or a list whose
  ``"key=value"`` items are explicit and whose other items are free text;
- the string (or list of strings) values of :data:`schema.TEXT_FIELDS` are free text.

Explicit values win over anything found in text (a disagreeing text finding is kept in
``overridden``); among explicit values the top-level key wins over ``requirements``. Invalid
explicit values raise ``ValueError`` naming the field.

Findings in text have a strength: a number or explicit phrase (2) beats a value derived from another
quantity (1: the frame period of "20 fps") which beats a default for a word (0: "real-time" 100 ms).
Among the strongest findings of a key, different values are a *contradiction*: reported with the
spans of each value, resolved by the key's rule (``schema.RULES``: the stricter limit, the most
constraining enum value). Ranges: an upper limit takes the range's upper end, a lower limit its lower
end, except throughput, where a range describes the load and its upper end is required.

Negations: a keyword finding (deployment, real-time, interactive, explainability, GPU, processing,
language, power source) is dropped when a negation cue (not, no, never, without, non-, n't ...) comes
before it in the same clause with only filler words in between ("doesn't need to be real-time",
"not in the cloud", "no GPU" -> ``gpu=none``), or when the clause goes on with "is not
needed/required/an option ...". Deployment and GPU mentions about training ("trained in the cloud")
are ignored. Numbers are not negated: "no more than 50 ms" is a bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

from sustainml.workers.logic.requirements import units
from sustainml.workers.logic.requirements.datasets import named_dataset
from sustainml.workers.logic.requirements.findings import (
    STRENGTH_EXPLICIT,
    Contradiction,
    Extraction,
    Finding,
    Source,
    Span,
    Value,
    format_requirement,
)
from sustainml.workers.logic.requirements.gazetteer import (
    DATACENTRE,
    device_class,
)
from sustainml.workers.logic.requirements.keywords import _keywords
from sustainml.workers.logic.requirements.performance import (
    _latency,
    _power_energy_carbon,
    _scores,
    _size,
    _throughput,
)
from sustainml.workers.logic.requirements.schema import (
    DEPLOYMENTS,
    DEVICE_SIDE,
    DEVICE_SIDE_RULE,
    KEYS,
    LANGUAGES,
    RULES,
    TEXT_FIELDS,
)
from sustainml.workers.logic.requirements.text import _Text
from sustainml.workers.logic.requirements.workload import (
    _DATACENTRE_USE,
    _audio,
    _hardware,
    _model_size,
    _region,
    _resolution,
    _samples,
    _tokens,
    _training_counts,
    _training_duration,
)

# ------------------------------------------------------------------------------------------------
# entry points
# ------------------------------------------------------------------------------------------------

def extract(
    description: str = "",
    definition: str = "",
    extra: Mapping[str, Any] | None = None,
    region: str = "",
) -> Extraction:
    """Requirements of a problem from its description, definition and extra_data; ``region`` is the
    UserInput's ``geo_location_region``, which wins over every other region."""
    sources = [Source("description", description), Source("definition", definition)]
    explicit: list[Finding] = []
    if region.strip():
        shown = f"region={' '.join(region.split())}"
        explicit.append(
            Finding(
                "region",
                " ".join(region.split()),
                Span(shown, 0, len(shown), "user_input", "geo_location_region"),
                STRENGTH_EXPLICIT,
            )
        )
    if extra:
        from_extra, text_sources = _from_extra(extra)
        explicit.extend(from_extra)
        sources.extend(text_sources)
    findings: list[Finding] = []
    for source in sources:
        if source.text.strip():
            findings.extend(_scan(source))
    return _resolve(findings, explicit)


def extract_text(text: str) -> Extraction:
    """Requirements found in one free text (as a description)."""
    return extract(description=text)


_SCANNERS: Final[tuple[Callable[[_Text], Iterator[Finding]], ...]] = (
    _latency,
    _throughput,
    _size,
    _power_energy_carbon,
    _scores,
    _keywords,
    _hardware,
    _region,
    _training_duration,
    _tokens,
    _model_size,
    _samples,
    named_dataset,
    _training_counts,
    _resolution,
    _audio,
)


def _scan(source: Source) -> list[Finding]:
    t = _Text(source)
    found: list[Finding] = []
    for scanner in _SCANNERS:
        found.extend(scanner(t))
    return found


# ------------------------------------------------------------------------------------------------
# extra_data
# ------------------------------------------------------------------------------------------------

_ENUM_ALIASES: Final[dict[str, dict[str, str]]] = {
    "deployment": {
        "onpremise": "on-premise",
        "onpremises": "on-premise",
        "onprem": "on-premise",
        "premise": "on-premise",
        "phone": "mobile",
        "smartphone": "mobile",
        "android": "mobile",
        "ios": "mobile",
        "mcu": "embedded",
        "microcontroller": "embedded",
        "web": "browser",
        "wasm": "browser",
        "ondevice": "edge",
        "device": "edge",
    },
    "processing": {"stream": "streaming", "realtime": "streaming", "online": "streaming", "offline": "batch"},
    "explainability": {"true": "required", "yes": "required", "explainable": "required"},
    "gpu": {
        "false": "none",
        "no": "none",
        "cpu": "none",
        "cpuonly": "none",
        "true": "available",
        "yes": "available",
    },
    "privacy": {
        "ondevice": "on-device",
        "onpremise": "on-premise",
        "onprem": "on-premise",
        "nocloud": "no-cloud",
        "anonymized": "anonymised",
        "dataresidency": "data-residency",
    },
    "power_source": {},
    "languages": {},
}


def _norm(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _explicit_value(key: str, raw: Any, where: str) -> float | str | list[str]:
    spec = KEYS[key]
    if spec.kind == "text":
        if not isinstance(raw, str) or not raw.strip():
            raise ValueError(f"{where} must be a non-empty string ({spec.unit}), got {raw!r}")
        return " ".join(raw.split())
    if spec.numeric:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise ValueError(f"{where} must be a number ({spec.unit}), got {raw!r}")
        try:
            value = float(raw) if not isinstance(raw, str) else units.parse_number(raw)
        except ValueError as exc:
            raise ValueError(f"{where} must be a number ({spec.unit}), got {raw!r}") from exc
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{where} must be a finite number >= 0, got {raw!r}")
        if spec.kind == "count" and value != int(value):
            raise ValueError(f"{where} must be a whole number ({spec.unit}), got {raw!r}")
        if spec.unit == "fraction 0-1" and value > 1:
            if value > 100:
                raise ValueError(f"{where} must be a fraction 0-1 (or a percentage), got {raw!r}")
            value /= 100.0
        return value
    aliases = _ENUM_ALIASES.get(key, {})
    allowed = {_norm(v): v for v in spec.values}

    def one(item: Any) -> str:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"{where} must be one of {', '.join(spec.values)}, got {item!r}")
        n = _norm(item)
        if key == "languages" and n in LANGUAGES:
            return LANGUAGES[n]
        found = allowed.get(n) or aliases.get(n)
        if found is None:
            shown = ", ".join(spec.values) if key != "languages" else "ISO 639-1 codes or language names"
            raise ValueError(f"{where}: unknown value {item!r}; accepted: {shown}")
        return found

    if spec.kind == "set":
        items = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(items, list | tuple) or not items:
            raise ValueError(f"{where} must be a list of strings (or a comma-separated string), got {raw!r}")
        return sorted({one(item) for item in items})
    return one(raw)


def _from_extra(extra: Mapping[str, Any]) -> tuple[list[Finding], list[Source]]:
    """(explicit findings in precedence order, free-text sources) of a UserInput's extra_data."""
    explicit: list[Finding] = []
    texts: list[Source] = []

    def add(key: str, raw: Any, field_name: str, text: str | None = None) -> None:
        value = _explicit_value(key, raw, f"extra_data.{field_name}")
        shown = text if text is not None else f"{key}={format_requirement(value)}"
        span = Span(shown, 0, len(shown), "extra_data", field_name)
        if isinstance(value, list):
            explicit.extend(Finding(key, v, span, STRENGTH_EXPLICIT) for v in value)
        else:
            explicit.append(Finding(key, value, span, STRENGTH_EXPLICIT))

    for key in KEYS:
        if key in extra and extra[key] is not None:
            add(key, extra[key], key)
    nested = extra.get("requirements")
    if isinstance(nested, Mapping):
        for key, raw in nested.items():
            if key not in KEYS:
                raise ValueError(
                    f"extra_data.requirements.{key}: unknown requirement key; accepted: {', '.join(KEYS)}"
                )
            if raw is not None:
                add(key, raw, f"requirements.{key}")
    elif isinstance(nested, str):
        texts.append(Source("extra_data", nested, "requirements"))
    elif isinstance(nested, list | tuple):
        for i, item in enumerate(nested):
            if not isinstance(item, str):
                raise ValueError(f"extra_data.requirements[{i}] must be a string, got {item!r}")
            key, sep, raw = item.partition("=")
            if sep and key.strip() in KEYS:
                add(key.strip(), raw.strip(), f"requirements[{i}]", text=item)
            else:
                texts.append(Source("extra_data", item, f"requirements[{i}]"))
    elif nested is not None:
        raise ValueError(
            f"extra_data.requirements must be an object, a string or a list of strings, got {nested!r}"
        )
    for name in TEXT_FIELDS:
        raw = extra.get(name)
        if raw is None:
            continue
        if isinstance(raw, str):
            texts.append(Source("extra_data", raw, name))
        elif isinstance(raw, list | tuple) and all(isinstance(x, str) for x in raw):
            texts.extend(Source("extra_data", x, f"{name}[{i}]") for i, x in enumerate(raw))
        else:
            raise ValueError(f"extra_data.{name} must be a string or a list of strings, got {raw!r}")
    return explicit, texts


# ------------------------------------------------------------------------------------------------
# resolution
# ------------------------------------------------------------------------------------------------


def _same(a: float | str, b: float | str) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _distinct(findings: Sequence[Finding]) -> list[Finding]:
    """First finding of each distinct value, in text order."""
    out: list[Finding] = []
    for f in findings:
        if not any(_same(f.value, o.value) for o in out):
            out.append(f)
    return out


def _choose(key: str, findings: Sequence[Finding]) -> tuple[Value, Span, list[Finding]]:
    """(value, evidence, distinct competing findings) of one key from findings of equal strength."""
    spec = KEYS[key]
    if spec.kind == "set":
        values = sorted({str(f.value) for f in findings})
        return values, findings[0].span, []
    distinct = _distinct(findings)
    if spec.first_wins:
        best = distinct[0]
        return best.value, best.span, distinct if len(distinct) > 1 else []
    if spec.kind == "enum":
        if key == "deployment" and len(distinct) > 1:
            # "edge" is the generic device side: subsumed by a more specific device value
            specific = [f for f in distinct if f.value in DEVICE_SIDE and f.value != "edge"]
            if specific:
                distinct = [f for f in distinct if f.value != "edge"]
        order = {v: i for i, v in enumerate(spec.values if key != "deployment" else DEPLOYMENTS)}
        best = min(distinct, key=lambda f: order.get(str(f.value), len(order)))
    elif spec.kind == "max":
        best = min(distinct, key=lambda f: float(f.value))
    else:
        best = max(distinct, key=lambda f: float(f.value))
    return best.value, best.span, distinct if len(distinct) > 1 else []


def _resolve(findings: list[Finding], explicit: list[Finding]) -> Extraction:
    out = Extraction()
    by_key: dict[str, list[Finding]] = {}
    for f in findings:
        by_key.setdefault(f.key, []).append(f)
    explicit_by_key: dict[str, list[Finding]] = {}
    for f in explicit:
        explicit_by_key.setdefault(f.key, []).append(f)

    source_rank: dict[tuple[str, str | None], int] = {}
    for f in findings:
        source_rank.setdefault((f.span.source, f.span.field), len(source_rank))
    for key in KEYS:  # schema order: deterministic
        text_findings = by_key.get(key, [])
        text_value: tuple[Value, Span] | None = None
        if text_findings:
            strongest = max(f.strength for f in text_findings)
            top = [f for f in text_findings if f.strength == strongest]
            if KEYS[key].first_wins:  # in reading order: description, definition, extra_data texts
                top.sort(key=lambda f: (source_rank[(f.span.source, f.span.field)], f.span.start))
            value, span, competing = _choose(key, top)
            text_value = (value, span)
            if competing and key not in explicit_by_key:
                out.contradictions.append(
                    Contradiction(
                        key,
                        [f.value for f in competing],
                        value if not isinstance(value, list) else ",".join(value),
                        RULES[KEYS[key].kind],
                        [f.span for f in competing],
                    )
                )
        if key in explicit_by_key:
            given = explicit_by_key[key]
            first_field = given[0].span.field
            given = [f for f in given if f.span.field == first_field]  # top-level beats requirements.*
            value = sorted({str(f.value) for f in given}) if KEYS[key].kind == "set" else given[0].value
            out.requirements[key] = value
            out.evidence[key] = given[0].span
            if text_value is not None and not _equal_values(text_value[0], value):
                out.overridden[key] = text_value
            continue
        if text_value is not None:
            out.requirements[key] = text_value[0]
            out.evidence[key] = text_value[1]
    for key, value in list(out.requirements.items()):
        if KEYS[key].kind == "count" and isinstance(value, float):
            out.requirements[key] = int(value)
    _device_side_check(out, by_key.get(_DATACENTRE_USE, []))
    return out


def _device_side_check(out: Extraction, datacentre_uses: list[Finding]) -> None:
    """An edge/mobile/embedded/browser deployment next to a data-centre accelerator named for
    inference (not for training) is reported: both are kept, the user must say which is meant."""
    deployment = out.requirements.get("deployment")
    hardware = out.requirements.get("hardware")
    if deployment not in DEVICE_SIDE or not isinstance(hardware, str):
        return
    use = next((f for f in datacentre_uses if f.value == hardware), None)
    given = out.evidence["hardware"].source in ("extra_data", "user_input")
    if use is None and not (given and device_class(hardware) == DATACENTRE):
        return  # a text device named for training, or not a data-centre one
    out.contradictions.append(
        Contradiction(
            "deployment/hardware",
            [str(deployment), hardware],
            f"deployment={deployment}, hardware={hardware}",
            DEVICE_SIDE_RULE,
            [out.evidence["deployment"], use.span if use is not None else out.evidence["hardware"]],
        )
    )


def _equal_values(a: Value, b: Value) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return a == b
    return _same(a, b)
