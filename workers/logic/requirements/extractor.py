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

import bisect
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sustainml.workers.logic.requirements import units
from sustainml.workers.logic.requirements.gazetteer import (
    CLOUD_REGION,
    DATACENTRE,
    DEVICE_PATTERNS,
    DEVICE_TRIGGERS,
    device_class,
    normalise_place,
    place_pattern,
)
from sustainml.workers.logic.requirements.schema import (
    DEPLOYMENTS,
    DEVICE_SIDE,
    DEVICE_SIDE_RULE,
    KEYS,
    LANGUAGES,
    MULTILINGUAL,
    RULES,
    TEXT_FIELDS,
)
from sustainml.workers.logic.requirements.units import MULTIPLIER, NUMBER, WORD_NUMBER

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


# ------------------------------------------------------------------------------------------------
# entry points
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    name: str  # "description" | "definition" | "extra_data"
    text: str
    field: str | None = None


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


# ------------------------------------------------------------------------------------------------
# shared pattern pieces
# ------------------------------------------------------------------------------------------------

_I = re.IGNORECASE

#: A number, optionally a range "50-100", "50 to 100", "between 50 and 100".
_QTY = (
    rf"(?<![\w.,])(?P<num>{NUMBER}{MULTIPLIER}?)"
    rf"(?:\s*(?P<sep>-|\u2013|\u2014|\bto\b|\band\b)\s*(?P<num2>{NUMBER}{MULTIPLIER}?))?"
)
_BOUND_MAX = (
    r"(?:in\s+under|in\s+less\s+than|under|below|beneath|less\s+than|lower\s+than|shorter\s+than|"
    r"faster\s+than|smaller\s+than|within|at\s+most|at\s+the\s+most|max(?:imum)?\.?(?:\s+of)?|up\s+to|"
    r"no\s+more\s+than|not\s+more\s+than|no\s+longer\s+than|no\s+slower\s+than|no\s+later\s+than|"
    r"no\s+larger\s+than|no\s+bigger\s+than|not\s+exceeding|(?:must|should|may|can|will|does|do)(?:\s+not|n't)"
    r"\s+exceed|never\s+exceed|limit(?:ed)?\s+(?:of|to)|capped\s+at|a\s+cap\s+of|budget\s+of|"
    r"fits?\s+(?:in(?:to)?|within|on)|fitting\s+(?:in(?:to)?|within|on)|sub-?|<=?|≤|=<)"
)
_BOUND_AFTER = (
    r"(?:\s*(?:or\s+less|or\s+lower|or\s+faster|or\s+under|or\s+below|or\s+smaller|or\s+fewer|at\s+most|"
    r"at\s+the\s+most|max(?:imum)?\b|tops\b))"
)
_BOUND_MIN = (
    r"(?:at\s+least|minimum(?:\s+of)?|min\.?|more\s+than|over|above|no\s+less\s+than|not\s+less\s+than|"
    r"upwards\s+of|up\s+to|about|around|approximately|roughly|some|>=?|≥|~)"
)

# Bounds are looked up behind a quantity (a leading optional alternation tried at every character
# made long texts slow): the phrase must end right before the number.
_BOUND_MAX_BEFORE = re.compile(rf"(?<!\w)(?:{_BOUND_MAX})\s*(?:between\s+)?$|\bbetween\s+$", _I)
_BOUND_MIN_BEFORE = re.compile(rf"(?<!\w)(?:{_BOUND_MIN})\s*(?:between\s+)?$|\bbetween\s+$", _I)
_LOOKBACK = 40

_CLAUSE_BREAK = re.compile(
    r"[.;:!?](?=\s|$)|,(?=\s)|\n|[()]|\s[-\u2013\u2014]\s|"
    r"\s(?:but|however|whereas|while|although|though|yet|except|plus)\s",
    _I,
)
_SENTENCE_BREAK = re.compile(r"[.;!?](?=\s|$)|\n")
_WORD = re.compile(r"[\w'\u2019]+")

_NEG_WORDS: Final = frozenset(
    {"not", "no", "never", "without", "neither", "nor", "non", "cannot", "nothing", "none"}
)
_FILLERS: Final = frozenset(
    """in the a an on to be been any for via through from using use used need needs needed require
    requires required necessarily run runs running deployed deploy hosted host served serve sent send
    uploaded upload stored store processed go goes rely relying depend depending have has had must
    should will would can could it this that really strictly of into onto at as with we is are do does
    done want wanted expected intended meant designed built made execute executed work works supposed
    always available necessary matter important critical required so even support supports dedicated
    discrete separate powerful big large extra additional fancy special""".split()  # noqa: SIM905 - reads as text
)
_POST_NEGATION = re.compile(
    r"[\s,]*(?:\w+\s+){0,3}?(?:is|are|isn't|aren't|was|will\s+be|would\s+be)?\s*"
    r"(?:(?:not|n't|no\s+longer)\s+(?:really\s+|strictly\s+|an?\s+|the\s+)?"
    r"(?:needed|required|necessary|important|critical|essential|option|allowed|permitted|possible|"
    r"concern|priority|requirement|must|constraint|goal|focus|issue)"
    r"|optional|unnecessary|irrelevant|forbidden|prohibited|ruled\s+out|not\s+a\s+concern|"
    r"(?:does|do)(?:n't|\s+not)\s+matter)\b",
    _I,
)
_TRAIN_WORD = re.compile(r"\b(?:train(?:ed|ing|s)?|re-?train\w*|fine-?tun\w*|pre-?train\w*)\b", _I)
_USE_WORD = re.compile(
    r"\b(?:deploy\w*|runs?|running|served?|serving|inference|infer|predict\w*|host\w*|execut\w*|ships?|"
    r"production|operat\w*|use[ds]?)\b",
    _I,
)
_TRAIN_AFTER = re.compile(
    r"\W*(?:\w+\W+){0,3}?(?:for|during)\s+(?:the\s+)?(?:(?:re-?|pre-?)?train|fine[-\s]?tun)", _I
)


class _Text:
    """One source text with its clause and sentence boundaries, for context checks."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.text = source.text
        self.lower = source.text.casefold()  # for substring gates only (casefold may change length)
        self.has_digit = any(ch.isdigit() for ch in source.text)
        self._clauses = self._bounds(_CLAUSE_BREAK)
        self._sentences = self._bounds(_SENTENCE_BREAK)

    def _bounds(self, pattern: re.Pattern[str]) -> tuple[list[int], list[int]]:
        """(starts, ends) of the breaks; both sorted, breaks do not overlap."""
        found = [(m.start(), m.end()) for m in pattern.finditer(self.text)]
        return [b[0] for b in found], [b[1] for b in found]

    def _segment(self, breaks: tuple[list[int], list[int]], start: int, end: int) -> tuple[int, int]:
        """The segment between the break before ``start`` and the first break at or after ``end``."""
        starts, ends = breaks
        i = bisect.bisect_right(ends, start)
        j = bisect.bisect_left(starts, end)
        return (ends[i - 1] if i else 0), (starts[j] if j < len(starts) else len(self.text))

    def clause(self, start: int, end: int) -> tuple[int, int]:
        return self._segment(self._clauses, start, end)

    def sentence(self, start: int, end: int) -> tuple[int, int]:
        return self._segment(self._sentences, start, end)

    def span(self, start: int, end: int) -> Span:
        # Trim whitespace so the span is exactly the words.
        while start < end and self.text[start].isspace():
            start += 1
        while end > start and self.text[end - 1].isspace():
            end -= 1
        return Span(self.text[start:end], start, end, self.source.name, self.source.field)

    def near(self, start: int, end: int, pattern: re.Pattern[str], window: int = 50) -> bool:
        """``pattern`` occurs within ``window`` characters of ``[start:end]`` in the same sentence."""
        s0, s1 = self.sentence(start, end)
        return pattern.search(self.text, max(s0, start - window), min(s1, end + window)) is not None

    def negated(self, start: int, end: int) -> bool:
        c0, c1 = self.clause(start, end)
        before = self.text[c0:start]
        if re.search(r"\bnon-?\s*$", before, _I):
            return True
        words = [w.casefold().replace("\u2019", "'") for w in _WORD.findall(before)][-7:]
        for i in range(len(words) - 1, -1, -1):
            w = words[i]
            if w in _NEG_WORDS or w.endswith("n't"):
                if all(x in _FILLERS for x in words[i + 1 :]):
                    return True
                break
        return _POST_NEGATION.match(self.text, end, c1) is not None

    def about_training(self, start: int, end: int) -> bool:
        c0, c1 = self.clause(start, end)
        last_train = max((m.start() for m in _TRAIN_WORD.finditer(self.text, c0, start)), default=-1)
        last_use = max((m.start() for m in _USE_WORD.finditer(self.text, c0, start)), default=-1)
        if last_train > last_use:
            return True
        return last_train < 0 and last_use < 0 and _TRAIN_AFTER.match(self.text, end, c1) is not None


class _Gate:
    """A pattern run only when the text can match it: it contains one of ``triggers`` (lower-case
    substrings; none = always) and, with ``digit``, a digit. Python's ``re`` tries a long
    alternation at every character, so skipping patterns that cannot match keeps a task fast."""

    __slots__ = ("digit", "pattern", "triggers")

    def __init__(self, pattern: re.Pattern[str], *triggers: str, digit: bool = False) -> None:
        self.pattern = pattern
        self.triggers = triggers
        self.digit = digit

    def finditer(self, t: _Text) -> Iterator[re.Match[str]]:
        if self.digit and not t.has_digit:
            return iter(())
        if self.triggers and not any(trigger in t.lower for trigger in self.triggers):
            return iter(())
        return self.pattern.finditer(t.text)


def _hits(t: _Text, gate: _Gate, before: re.Pattern[str]) -> Iterator[tuple[re.Match[str], int, bool]]:
    """(match, start of its span including a bound phrase before it, bounded?) for each match."""
    has_after = "after" in gate.pattern.groupindex
    for m in gate.finditer(t):
        bound = before.search(t.text, max(0, m.start() - _LOOKBACK), m.start())
        bounded = bound is not None or bool(has_after and m.group("after"))
        yield m, (bound.start() if bound is not None else m.start()), bounded


def _num(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return units.parse_number(text)
    except ValueError:
        return None


def _range_value(m: re.Match[str], kind: str) -> tuple[float, int] | None:
    """(value, start of the number) of a ``_QTY`` match; ranges per the module rule."""
    first = _num(m.group("num"))
    second = _num(m.group("num2")) if m.group("num2") else None
    if first is None:
        return None
    if second is None:
        return first, m.start("num")
    sep = m.group("sep").casefold()
    before = m.string[max(0, m.start("num") - 9) : m.start("num")].casefold()
    if sep == "and" and "between" not in before:
        return second, m.start("num2")  # "20 and 40 ms": only the second number has the unit
    if kind == "min":
        return min(first, second), m.start("num")
    return max(first, second), m.start("num")


# ------------------------------------------------------------------------------------------------
# latency and throughput
# ------------------------------------------------------------------------------------------------

_TIME_UNIT = (
    r"(?P<unit>ms|msecs?|milli-?seconds?|µs|μs|(?-i:us)|micro-?seconds?|ns|nano-?seconds?|secs?|seconds?|s|"
    r"mins?|minutes?|hours?|hrs?|h)\b"
)
_LATENCY_QTY = re.compile(
    rf"(?:{_QTY}|\b(?P<word>{WORD_NUMBER}))\s*-?\s*{_TIME_UNIT}"
    rf"(?P<after>{_BOUND_AFTER})?",
    _I,
)
_LATENCY_WORDS = re.compile(
    r"latenc|respon[sd]|\brepl(?:y|ies)|\banswer|inference|\binfer\b|turn-?around|\bdelay|\blag\b|"
    r"round-?trip|end-to-end|\bp\d\d\b|\breturn|time\s+to\s+first|\bready\b|\bdecisions?\b|"
    r"\bper\s+(?:image|frame|request|query|sample|prediction|item|call|utterance|document|page|"
    r"transaction|message|record|scan)",
    _I,
)
_NOT_LATENCY_AFTER = re.compile(
    r"\s*(?:long\s+|of\s+)?(?:audio|video|speech|sound|voice|raw|recorded)?\s*"
    r"(?:clips?|recordings?|segments?|windows?|snippets?|samples?|chunks?|files?|intervals?|videos?|"
    r"audio|footage|history|context|of\s+(?:audio|video|speech|data|footage|recordings?|history|context))\b",
    _I,
)
_NOT_LATENCY_BEFORE = re.compile(r"\b(?:every|each|last|past|over|for|after|first)\s+(?:the\s+)?$", _I)
_FPS = re.compile(
    rf"{_QTY}\s*-?\s*"
    r"(?:fps|frames?\s*(?:per|/|a|each)\s*s(?:ec(?:ond)?)?)\b",
    _I,
)
_REALTIME = re.compile(r"\b(?P<near>near(?:ly)?[- ])?real[- ]?time\b", _I)
_INTERACTIVE = re.compile(r"\binteractive(?:ly)?\b", _I)
_SUB_SECOND = re.compile(r"\bsub-?(?P<unit>second|millisecond)\b", _I)
_G_LATENCY_QTY = _Gate(_LATENCY_QTY, digit=True)
_G_LATENCY_WORDS = _Gate(_LATENCY_QTY, "second", "minute", "hour", "milli", "micro")
_G_SUB_SECOND = _Gate(_SUB_SECOND, "sub")
_G_FPS = _Gate(_FPS, "fps", "frame", digit=True)
_G_REALTIME = _Gate(_REALTIME, "real")
_G_INTERACTIVE = _Gate(_INTERACTIVE, "interactiv")

_ITEMS = (
    r"(?:requests?|reqs?|queries|query|calls?|images?|pictures?|photos?|frames?|documents?|docs?|pages?|"
    r"texts?|sentences?|messages?|e-?mails?|tickets?|reviews?|transactions?|records?|rows?|samples?|"
    r"predictions?|inferences?|items?|events?|orders?|users?|customers?|clips?|videos?|files?|scans?|"
    r"tweets?|posts?|comments?|articles?|questions?|utterances?|recordings?|readings?|measurements?|"
    r"parts?|products?|packages?|invoices?|claims?|applications?|chats?|conversations?|searches?|"
    r"lookups?|sessions?|tokens?|jobs?|tasks?|logs?|alerts?|forms?|receipts?|emails?)"
)
_PERIOD = r"(?P<period>seconds?|secs?|s|minutes?|mins?|hours?|hrs?|h|days?|nights?|weeks?|months?|years?)"
_THROUGHPUT = re.compile(
    rf"{_QTY}\s+(?:[A-Za-z-]+\s+){{0,2}}?(?P<item>{_ITEMS})"
    rf"\s*(?:/|\bper\b|\ban?\b|\beach\b|\bevery\b)\s*{_PERIOD}\b",
    _I,
)
_THROUGHPUT_ABBR = re.compile(
    rf"{_QTY}\s*(?P<abbr>rps|qps|tps|req/s|requests/s|queries/s)\b",
    _I,
)


_G_THROUGHPUT = _Gate(_THROUGHPUT, "per", "/", " a ", " an ", "each", "every", digit=True)
_G_THROUGHPUT_ABBR = _Gate(_THROUGHPUT_ABBR, "rps", "qps", "tps", "/s", digit=True)


def _latency(t: _Text) -> Iterator[Finding]:
    text = t.text
    gate = _G_LATENCY_QTY if t.has_digit else _G_LATENCY_WORDS  # "within a second" has no digit
    for m, start, bounded in _hits(t, gate, _BOUND_MAX_BEFORE):
        unit = m.group("unit").casefold()
        if m.group("word") is not None:
            if not bounded:
                continue  # "a second camera": spelled numbers only count with a bound
            value = units.parse_number(m.group("word"))
        else:
            got = _range_value(m, "max")
            if got is None:
                continue
            value = got[0]
        if _NOT_LATENCY_AFTER.match(text, m.end()) or _NOT_LATENCY_BEFORE.search(
            text, max(0, m.start() - 20), m.start()
        ):
            continue
        if unit.startswith(("min", "h")) and not bounded:
            continue
        if not bounded and not t.near(m.start(), m.end(), _LATENCY_WORDS):
            continue
        ms = value * units.unit_factor(units.TIME_MS, unit.replace("-", ""))
        if ms > 0:
            yield Finding("max_latency_ms", ms, t.span(start, m.end()), STRENGTH_TEXT)
    for m in _G_SUB_SECOND.finditer(t):
        ms = units.SUB_SECOND_MS if m.group("unit").casefold() == "second" else 1.0
        yield Finding("max_latency_ms", ms, t.span(m.start(), m.end()), STRENGTH_TEXT)
    for m, start, _ in _hits(t, _G_FPS, _BOUND_MIN_BEFORE):
        got = _range_value(m, "throughput")
        if got is None or got[0] <= 0:
            continue
        span = t.span(start, m.end())
        yield Finding("min_throughput_per_s", got[0], span, STRENGTH_TEXT)
        yield Finding("max_latency_ms", 1000.0 / got[0], span, STRENGTH_DERIVED)
    for m in _G_REALTIME.finditer(t):
        if t.negated(m.start(), m.end()):
            continue
        ms = units.INTERACTIVE_MS if m.group("near") else units.REALTIME_MS
        yield Finding("max_latency_ms", ms, t.span(m.start(), m.end()), STRENGTH_DEFAULT)
    for m in _G_INTERACTIVE.finditer(t):
        if not t.negated(m.start(), m.end()):
            yield Finding(
                "max_latency_ms", units.INTERACTIVE_MS, t.span(m.start(), m.end()), STRENGTH_DEFAULT
            )


def _throughput(t: _Text) -> Iterator[Finding]:
    for m, start, _ in _hits(t, _G_THROUGHPUT, _BOUND_MIN_BEFORE):
        got = _range_value(m, "throughput")
        if got is None:
            continue
        period = m.group("period").casefold()
        per_s = got[0] / units.unit_factor(units.PERIOD_S, period)
        if per_s > 0:
            yield Finding("min_throughput_per_s", per_s, t.span(start, m.end()), STRENGTH_TEXT)
    for m, start, _ in _hits(t, _G_THROUGHPUT_ABBR, _BOUND_MIN_BEFORE):
        got = _range_value(m, "throughput")
        if got is not None and got[0] > 0:
            yield Finding("min_throughput_per_s", got[0], t.span(start, m.end()), STRENGTH_TEXT)


# ------------------------------------------------------------------------------------------------
# model size, parameters
# ------------------------------------------------------------------------------------------------

_SIZE = re.compile(
    rf"{_QTY}\s*-?\s*"
    r"(?P<unit>kib|kb|mib|mb|gib|gb|tib|tb|kilobytes?|megabytes?|gigabytes?|terabytes?)\b"
    rf"(?P<after>{_BOUND_AFTER})?",
    _I,
)
_MEMORY_WORDS = re.compile(
    r"memory|\bram\b|model\s+size|size\s+of\s+the\s+model|footprint|storage|flash|\bweights\b|\bvram\b|"
    r"\bdisk\b|model\s+file|binary|\bmodel\b",
    _I,
)
_NOT_MODEL_SIZE_AFTER = re.compile(
    r"\s*(?:of\s+)?(?:training\s+|raw\s+|labell?ed\s+|historical\s+|new\s+)?"
    r"(?:data(?:sets?)?|images|photos|videos?|audio|text|logs?|records|corpus|footage|scans|"
    r"(?:per|a|/)\s*(?:day|hour|month|week|year|second|s)\b)",
    _I,
)
_NOT_MODEL_SIZE_BEFORE = re.compile(r"\b(?:data(?:set)?|corpus|logs?)\s+(?:of|with|is|has)?\s*$", _I)
_PARAMS = re.compile(
    rf"{_QTY}\s*(?:parameters|params|weights)\b(?P<after>{_BOUND_AFTER})?",
    _I,
)


_G_SIZE = _Gate(_SIZE, "b", digit=True)  # every size unit contains a b
_G_PARAMS = _Gate(_PARAMS, "param", "weights", digit=True)


def _size(t: _Text) -> Iterator[Finding]:
    text = t.text
    for m, start, bounded in _hits(t, _G_SIZE, _BOUND_MAX_BEFORE):
        if _NOT_MODEL_SIZE_AFTER.match(text, m.end()) or _NOT_MODEL_SIZE_BEFORE.search(
            text, max(0, m.start() - 20), m.start()
        ):
            continue
        if not bounded and not t.near(m.start(), m.end(), _MEMORY_WORDS, window=40):
            continue
        got = _range_value(m, "max")
        if got is None:
            continue
        mb = got[0] * units.unit_factor(units.SIZE_MB, m.group("unit"))
        if mb > 0:
            yield Finding("max_model_size_mb", mb, t.span(start, m.end()), STRENGTH_TEXT)
    for m, start, bounded in _hits(t, _G_PARAMS, _BOUND_MAX_BEFORE):
        if not bounded:
            continue  # "a 7B model" describes a model, it does not limit one
        got = _range_value(m, "max")
        if got is not None and got[0] > 0:
            yield Finding("max_parameters", got[0], t.span(start, m.end()), STRENGTH_TEXT)


# ------------------------------------------------------------------------------------------------
# power, battery, energy, carbon
# ------------------------------------------------------------------------------------------------

_POWER = re.compile(
    rf"{_QTY}\s*-?\s*"
    r"(?P<unit>mW|kW|MW|W|(?i:milliwatts?|kilowatts?|megawatts?|watts?))\b(?![-\s]?(?i:h\b|hours?))"
    rf"(?P<after>(?i:{_BOUND_AFTER}))?"
)
_POWER_WORDS = re.compile(r"power|consum|\bdraws?\b|drawing|budget|\btdp\b|envelope|dissipat|supply", _I)
_BATTERY_WORDS = re.compile(r"batter|charge", _I)
_ENERGY = re.compile(
    rf"{_QTY}\s*-?\s*"
    r"(?P<unit>mWh|kWh|MWh|GWh|Wh|kJ|MJ|GJ|J|(?i:kilowatt[- ]hours?|megawatt[- ]hours?|watt[- ]hours?|"
    r"kilojoules?|megajoules?|joules?))\b"
    rf"(?P<after>(?i:{_BOUND_AFTER}))?"
)
_CARBON = re.compile(
    rf"{_QTY}\s*-?\s*"
    r"(?P<unit>kg|kilograms?|kilos?|g|grams?|t|tonnes?|tons?|metric\s+tons?)"
    r"(?:\s*(?:of\s+)?(?P<co2>co2(?:[- ]?e(?:q(?:uivalents?)?)?)?|co₂e?|"
    r"carbon(?:\s+dioxide)?(?:\s+equivalents?)?))?\b"
    rf"(?P<after>{_BOUND_AFTER})?",
    _I,
)
_CARBON_WORDS = re.compile(r"carbon|co2|co₂|emission|footprint|emit", _I)
_PERIOD_AFTER = re.compile(
    r"\s*(?:of\s+\w+\s+)?(?:(?:per|a|an|each|every|/)\s*(?P<p>day|night|hour|h|week|month|year|annum|"
    r"(?P<inf>inference|prediction|request|query|image|sample|call|classification|document|transaction|"
    r"frame|item)s?)\b|(?P<adv>daily|hourly|weekly|monthly|yearly|annually|a\s+year|a\s+day))",
    _I,
)
_PERIOD_BEFORE = re.compile(
    r"(?:(?:per|each|every)\s+(?P<inf>inference|prediction|request|query|image|sample|call|classification|"
    r"document|transaction|frame|item)|(?P<adv>daily|hourly|weekly|monthly|yearly|annual|annually))\b"
    r"[^,;.]{0,30}$",
    _I,
)
_ADVERB_PERIOD: Final = {
    "daily": "day",
    "hourly": "hour",
    "weekly": "week",
    "monthly": "month",
    "yearly": "year",
    "annually": "year",
    "annual": "year",
    "annum": "year",
    "a year": "year",
    "a day": "day",
}

_BATTERY_LIFE = (
    re.compile(
        rf"\b(?:runs?|run|running|last(?:s|ing)?|work(?:s|ing)?|operat\w*|surviv\w*|go(?:es)?)\s+"
        rf"(?:for\s+)?(?:at\s+least\s+)?(?:(?P<n>{NUMBER})|(?P<w>a\s+full|an\s+entire|a\s+whole|all|{WORD_NUMBER}))"
        r"\s*-?\s*(?P<u>hours?|hrs?|h|days?|nights?|weeks?|months?|years?)\s+(?:on|of|with|from)\s+"
        r"(?:a\s+|one\s+|its\s+|the\s+)?(?:single\s+|full\s+)?(?:batter(?:y|ies)|charge|coin[- ]cells?)",
        _I,
    ),
    re.compile(
        rf"\bbatter(?:y|ies)\s+(?:for|lasting)\s+(?:at\s+least\s+)?(?:(?P<n>{NUMBER})|(?P<w>{WORD_NUMBER}))\s*-?\s*"
        r"(?P<u>hours?|hrs?|h|days?|weeks?|months?|years?)\b",
        _I,
    ),
    re.compile(
        rf"\bbattery\s+life\s+(?:of\s+)?(?:at\s+least\s+)?(?:(?P<n>{NUMBER})|(?P<w>{WORD_NUMBER}))\s*-?\s*"
        r"(?P<u>hours?|hrs?|h|days?|weeks?|months?|years?)\b",
        _I,
    ),
    re.compile(
        rf"(?:(?P<n>{NUMBER})|\b(?P<w>{WORD_NUMBER}))\s*-?\s*(?P<u>hours?|hrs?|h|days?|weeks?|months?|years?)"
        r"\s+(?:of\s+)?battery(?:\s+life)?\b",
        _I,
    ),
)
_WHOLE: Final = {"a full": 1.0, "an entire": 1.0, "a whole": 1.0, "all": 1.0}

_POWER_SOURCE = (
    (
        "battery",
        re.compile(
            r"\bon\s+(?:\w+\s+){0,2}?batter(?:y|ies)\b|"
            r"\bbattery[- ]?(?:powered|operated|driven|life|budget|backed)\b|"
            r"\b(?:single|one|full)\s+charge\b|\bcoin[- ]cells?\b|"
            r"\b(?:runs?|running|powered)\s+(?:off|from|by)\s+(?:a\s+)?batter(?:y|ies)\b",
            _I,
        ),
    ),
    (
        "solar",
        # solar panels as what the model inspects ("spot cracked solar panels") are not a power source
        re.compile(
            r"\bsolar[- ]?powered\b|"
            r"\b(?:powered\s+by|runs?\s+(?:on|off)|running\s+(?:on|off)|with|from|has|have)\s+"
            r"(?:(?:a|an|its|their|the|small|large|rooftop|own)\s+){0,2}"
            r"solar[- ]?(?:panels?|energy|cells?|power)\b|"
            r"\bpowered\s+by\s+(?:the\s+)?sun\b",
            _I,
        ),
    ),
    (
        "mains",
        re.compile(
            r"\bmains[- ]?(?:powered|power)\b|\bplugged\s+in\b|\bwall\s+(?:power|sockets?|outlets?)\b", _I
        ),
    ),
)


_G_POWER = _Gate(_POWER, "w", digit=True)
_G_ENERGY = _Gate(_ENERGY, "wh", "j", "watt", digit=True)
_G_CARBON = _Gate(_CARBON, "co2", "co₂", "carbon", "kg", "kilo", "ton", digit=True)
_BATTERY_TRIGGERS: Final = ("batter", "charge", "coin")
_G_BATTERY_LIFE = tuple(_Gate(p, *_BATTERY_TRIGGERS) for p in _BATTERY_LIFE)
_POWER_SOURCE_TRIGGERS: Final = {
    "battery": _BATTERY_TRIGGERS,
    "solar": ("solar", "sun"),
    "mains": ("mains", "plugged", "wall"),
}
_G_POWER_SOURCE = tuple((value, _Gate(p, *_POWER_SOURCE_TRIGGERS[value])) for value, p in _POWER_SOURCE)


def _period(t: _Text, m: re.Match[str]) -> tuple[str, float]:
    """('total' | 'day' | 'inference', factor to that period) for an energy/carbon quantity."""
    c0, c1 = t.clause(m.start(), m.end())
    after = _PERIOD_AFTER.match(t.text, m.end(), c1)
    if after is not None:
        if after.group("inf"):
            return "inference", 1.0
        word = (after.group("p") or after.group("adv") or "").casefold()
        period = _ADVERB_PERIOD.get(" ".join(word.split()), word)
        return "day", units.unit_factor(units.PER_DAY, period)
    before = _PERIOD_BEFORE.search(t.text, max(c0, m.start() - 60), m.start())
    if before is not None:
        if before.group("inf"):
            return "inference", 1.0
        return "day", units.unit_factor(units.PER_DAY, _ADVERB_PERIOD[before.group("adv").casefold()])
    return "total", 1.0


def _power_energy_carbon(t: _Text) -> Iterator[Finding]:
    for m, start, bounded in _hits(t, _G_POWER, _BOUND_MAX_BEFORE):
        if not bounded and not t.near(m.start(), m.end(), _POWER_WORDS, window=30):
            continue
        got = _range_value(m, "max")
        if got is not None and got[0] > 0:
            watts = got[0] * units.unit_factor(units.POWER_W, m.group("unit"))
            yield Finding("max_power_w", watts, t.span(start, m.end()), STRENGTH_TEXT)
    for m, start, bounded in _hits(t, _G_ENERGY, _BOUND_MAX_BEFORE):
        if not bounded and t.near(m.start(), m.end(), _BATTERY_WORDS, window=30):
            continue  # "a 10 Wh battery" is a capacity, not a budget
        got = _range_value(m, "max")
        if got is None or got[0] <= 0:
            continue
        wh = got[0] * units.unit_factor(units.ENERGY_WH, m.group("unit"))
        period, factor = _period(t, m)
        key = {
            "total": "max_energy_wh",
            "day": "max_energy_wh_per_day",
            "inference": "max_energy_wh_per_inference",
        }
        yield Finding(key[period], wh * factor, t.span(start, m.end()), STRENGTH_TEXT)
    for m, start, _ in _hits(t, _G_CARBON, _BOUND_MAX_BEFORE):
        unit = " ".join(m.group("unit").casefold().split())
        if not m.group("co2") and (
            unit in ("g", "t") or not t.near(m.start(), m.end(), _CARBON_WORDS, window=40)
        ):
            continue  # a mass without "CO2" counts only as kg/tonnes next to a carbon word
        got = _range_value(m, "max")
        if got is None or got[0] <= 0:
            continue
        kg = got[0] * units.unit_factor(units.MASS_KG, unit)
        period, factor = _period(t, m)
        key = {
            "total": "max_carbon_kg",
            "day": "max_carbon_kg_per_day",
            "inference": "max_carbon_kg_per_inference",
        }
        yield Finding(key[period], kg * factor, t.span(start, m.end()), STRENGTH_TEXT)
    for gate in _G_BATTERY_LIFE:
        for m in gate.finditer(t):
            count = _num(m.group("n")) if m.group("n") else None
            if count is None and m.group("w"):
                word = " ".join(m.group("w").casefold().split())
                count = _WHOLE.get(word, None) if word in _WHOLE else _num(word)
            if count is None or count <= 0:
                continue
            hours = count * units.unit_factor(units.TIME_H, m.group("u"))
            yield Finding("min_battery_life_h", hours, t.span(m.start(), m.end()), STRENGTH_TEXT)
    for value, source_gate in _G_POWER_SOURCE:
        for m in source_gate.finditer(t):
            if not t.negated(m.start(), m.end()):
                yield Finding("power_source", value, t.span(m.start(), m.end()), STRENGTH_TEXT)


# ------------------------------------------------------------------------------------------------
# quality targets
# ------------------------------------------------------------------------------------------------

_METRIC = (
    r"(?P<metric>(?i:top-?[15]\s+accuracy|classification\s+accuracy|accuracy|accurate|"
    r"mean\s+average\s+precision|average\s+precision|precision|recall|sensitivity|"
    r"(?:macro|micro|weighted)[- ]f1(?:[- ]score)?|f1(?:[- ]score)?|f-?score|f-?measure|"
    r"(?:roc[- ])?auc(?:[- ]roc)?|auroc|mean\s+iou|miou|iou|intersection[- ]over[- ]union|"
    r"word\s+error\s+rate|character\s+error\s+rate)|"
    r"mAP(?:@?\.?\d+(?:\.\d+)?(?::\.?\d+(?:\.\d+)?)?)?|WER|CER)"
)
_PCT = r"(?:%|\s?percent\b|\s?per\s?cent\b|\s?pct\b)"
_VALUE = (
    rf"(?P<v>{NUMBER})(?P<pct>{_PCT})?"
    rf"(?:\s*(?P<sep>-|\u2013|\bto\b|\band\b)\s*(?P<v2>{NUMBER})(?P<pct2>{_PCT})?)?"
)
_NOT_A_SCORE_AFTER = (
    r"(?!\s*(?:fps|ms\b|s\b|secs?\b|seconds?\b|minutes?\b|hours?\b|[kMG]i?B\b|W\b|frames|images|samples|"
    r"classes|epochs|of\s+the\s+(?:time|cases|data))|\.\d)"
)
_CONNECT = (
    r"(?:\s*(?:of|at|must|should|needs?|has|have|to|be|is|are|reach(?:es)?|exceeds?|above|over|at\s+least|"
    r"minimum|min|no\s+less\s+than|not\s+below|greater\s+than|higher\s+than|better\s+than|more\s+than|"
    r"below|under|less\s+than|lower\s+than|at\s+most|between|around|approximately|about|target|score|"
    r"≥|>=|>|≤|<=|<|=|:|~|\([^)]{0,20}\))(?=[\s\d.≥≤<>=~:(]))*"
)
_SCORE_AFTER_METRIC = re.compile(rf"{_METRIC}{_CONNECT}\s*{_VALUE}{_NOT_A_SCORE_AFTER}")
_SCORE_BEFORE_METRIC = re.compile(rf"(?<![\w.,-]){_VALUE}\s+(?:of\s+)?(?:[A-Za-z-]+\s+)?{_METRIC}\b")


_METRIC_TRIGGERS: Final = (
    "accura", "precision", "recall", "sensitiv", "f1", "score", "measure", "auc", "map", "iou",
    "intersection", "error rate", "wer", "cer",
)  # fmt: skip
_G_SCORES = (
    _Gate(_SCORE_BEFORE_METRIC, *_METRIC_TRIGGERS, digit=True),
    _Gate(_SCORE_AFTER_METRIC, *_METRIC_TRIGGERS, digit=True),
)


def _metric_key(metric: str) -> str | None:
    m = metric.casefold()
    if "accura" in m:
        return "min_accuracy"
    if m.startswith("map") or "average precision" in m:
        return "min_map"
    if "precision" in m:
        return "min_precision"
    if "recall" in m or "sensitivity" in m:
        return "min_recall"
    if "f1" in m or "score" in m or "measure" in m:
        return "min_f1"
    if "auc" in m:
        return "min_auc"
    if "iou" in m or "intersection" in m:
        return "min_iou"
    if m in ("wer", "word error rate"):
        return "max_wer"
    if m in ("cer", "character error rate"):
        return "max_cer"
    return None


def _fraction(number: str, percent: bool) -> float | None:
    value = _num(number)
    if value is None:
        return None
    if percent or value > 1:
        value /= 100.0
    return value if 0 < value <= 1 else None


def _scores(t: _Text) -> Iterator[Finding]:
    used: list[tuple[int, int]] = []
    for gate in _G_SCORES:
        for m, start, _ in _hits(t, gate, _BOUND_MIN_BEFORE):
            metric_span = (m.start("metric"), m.end("metric"))
            if any(a < metric_span[1] and metric_span[0] < b for a, b in used):
                continue
            key = _metric_key(m.group("metric"))
            if key is None:
                continue
            percent = bool(m.group("pct") or m.group("pct2"))
            first = _fraction(m.group("v"), percent)
            second = _fraction(m.group("v2"), percent) if m.group("v2") else None
            if first is None:
                continue
            value = first
            if second is not None:
                value = min(first, second) if key.startswith("min_") else max(first, second)
            used.append(metric_span)
            yield Finding(key, value, t.span(min(start, m.start()), m.end()), STRENGTH_TEXT)


# ------------------------------------------------------------------------------------------------
# deployment, privacy, processing, explainability, GPU, languages
# ------------------------------------------------------------------------------------------------

_DEPLOYMENT_PATTERNS: Final = (
    (
        "embedded",
        r"\bembedded\b|\bmicro-?controllers?\b|\bMCUs?\b|\bFPGAs?\b|\bfirmware\b|\bcortex-?m\d*\b|"
        r"\bSTM32\w*|\bESP32\w*|\barduino\b|\btinyml\b|\bbare[- ]metal\b|\bnRF52\w*",
    ),
    (
        "mobile",
        # a phone as the subject of the task ("phone calls", "mobile phone usage") is not a target
        r"\b(?:mobile\s+|smart-?|cell\s*|i)?phones?\b(?!\s+(?:calls?|conversations?|numbers?|support|lines?|"
        r"recordings?|audio|interviews?|usage|use|users?|screens?|cases?|fraud|theft|addiction|scams?)\b)|"
        r"\bmobile\b(?!\s+(?:robots?|networks?|operators?|money|games?\s+data|phones?)\b)|\bandroid\b|\biOS\b|"
        r"\bipads?\b|\bon\s+(?:a\s+|the\s+)?tablets?\b|\bhandsets?\b",
    ),
    (
        "browser",
        r"\b(?:web\s+)?browsers?\b|\bbrowser-based\b|\bin-browser\b|\bweb-?assembly\b|\bwasm\b|"
        r"\bclient-side\b|\btensorflow\.js\b|\btfjs\b|\bonnx\s+runtime\s+web\b|\bjavascript\b",
    ),
    (
        "edge",
        r"(?<!cutting[- ])(?<!leading[- ])(?<!bleeding[- ])\bedge\b"
        r"(?![- ](?:detection|detectors?|cases?|maps?|pixels?|of\b))|"
        r"\bon-?device\b|\bjetson\b|\braspberry(?:\s*pi)?\b|\bcoral\b|"
        r"\bIoT\s+(?:devices?|gateways?|boards?|nodes?|hardware)\b|\bsmart-?watch(?:es)?\b|\bwearables?\b|"
        r"\bon-?board\b|\bin-?vehicle\b|\bon\s+(?:a\s+|the\s+|our\s+|each\s+)?(?:drones?|robots?|robot\s+arms?|"
        r"cars?|vehicles?|cameras?|camera\s+itself|devices?|edge\s+devices?|gateways?)\b",
    ),
    (
        "on-premise",
        r"\bon-?prem(?:ise|ises)?\b|\bin-house\s+(?:servers?|hardware|cluster|data\s*cent(?:er|re)s?)\b|"
        r"\b(?:our|own|local|private|company)\s+(?:own\s+)?(?:servers?|data\s*cent(?:er|re)s?|cluster|"
        r"hardware|infrastructure|machines)\b|\bself-hosted\b|\bair-?gapped\b",
    ),
    (
        "cloud",
        r"(?<!point\s)(?<!point-)\bcloud\b(?!s|[- ](?:cover|free|masks?|detection|segmentation))|\bAWS\b|"
        r"\bazure\b|\bGCP\b|\bgoogle\s+cloud\b|\bsagemaker\b|\bdata\s*cent(?:er|re)s?\b|\bSaaS\b|"
        r"\bserverless\b",
    ),
)
_DEPLOYMENT_TRIGGERS: Final[dict[str, tuple[str, ...]]] = {
    "embedded": ("embedded", "controller", "mcu", "fpga", "firmware", "cortex", "stm32", "esp32", "arduino",
                 "tinyml", "metal", "nrf52"),
    "mobile": ("phone", "mobile", "android", "ios", "ipad", "tablet", "handset"),
    "browser": ("browser", "assembly", "wasm", "client-side", "tensorflow.js", "tfjs", "runtime web",
                "javascript"),
    "edge": ("edge", "device", "jetson", "raspberry", "coral", "iot", "watch", "wearable", "board", "vehicle",
             "drone", "robot", "car", "camera", "gateway"),
    "on-premise": ("prem", "in-house", "server", "cent", "cluster", "hardware", "infrastructure", "machines",
                   "self-hosted", "gapped"),
    "cloud": ("cloud", "aws", "azure", "gcp", "sagemaker", "cent", "saas", "serverless"),
}  # fmt: skip
_DEPLOYMENT = tuple(
    (value, _Gate(re.compile(pattern, _I), *_DEPLOYMENT_TRIGGERS[value]))
    for value, pattern in _DEPLOYMENT_PATTERNS
)
_IOS = re.compile(r"\biOS\b")  # case-sensitive: "ios" inside words/other casings is not Apple's OS

_DEVICE_PLACES = (
    r"devices?|phones?|smart-?phones?|handsets?|cameras?|watch(?:es)?|smart-?watch(?:es)?|cars?|vehicles?|"
    r"robots?|headsets?|laptops?|tablets?|sensors?|machines?"
)
_PREMISE_PLACES = (
    r"hospitals?|clinics?|premises|buildings?|company|organi[sz]ation|network|bank|factory|plant|site|"
    r"servers?|data\s*cent(?:er|re)|office|campus|firewall"
)
_REGION_PLACES = r"EU|E\.U\.|European\s+Union|Europe|country|UK|US|USA|Germany|France|region|jurisdiction"
_LEAVE = (
    r"(?:(?:never|not|n't|no\s+longer)\s+(?:\w+\s+){0,2}?(?:leaves?|leaving|be\s+(?:sent|uploaded|transmitted|"
    r"transferred)\s+(?:off|out\s+of|outside|from|beyond))|(?:must|should|has\s+to|have\s+to|needs?\s+to|will|"
    r"to)\s+(?:stay|remain|be\s+kept|be\s+stored|be\s+processed)\s+(?:on|in|within|inside)|"
    r"(?:stays?|remains?|kept|stored|processed)\s+(?:locally\s+)?(?:on|in|within|inside))"
)
_PRIVACY_PATTERNS: Final = (
    ("gdpr", r"\bGDPR\b|\bgeneral\s+data\s+protection\s+regulation\b"),
    ("hipaa", r"\bHIPAA\b"),
    ("anonymised", r"\banonymi[sz](?:ed?|ation|ing)\b|\bde-?identif\w+|\bpseudonymi[sz]\w+"),
    ("data-residency", r"\bdata\s+residency\b|\bdata\s+sovereignty\b"),
    (
        "no-cloud",
        r"\bno\s+cloud\b|\b(?:not|never|n't)\s+(?:[\w'-]+\s+){0,4}?(?:in|to|on|into|via|through|by|from|with)\s+"
        r"(?:the\s+|a\s+|any\s+)(?:[\w-]+\s+)?cloud\b|"
        r"\bwithout\s+(?:the\s+|any\s+|a\s+)?cloud\b|\bcloud[- ]free\b|"
        r"\b(?:cannot|can't|can\s+not|must\s+not|mustn't|may\s+not|should\s+not|shouldn't|never|won't|not|"
        r"don't|doesn't|do\s+not|does\s+not)\s+(?:be\s+)?(?:sent|send|uploaded|upload|transmit(?:ted)?|stored|store|"
        r"processed|process|hosted|host|go|push(?:ed)?|mov(?:e|ed))\s+(?:\w+\s+){0,3}?(?:to|in|on|into)\s+"
        r"(?:the\s+|a\s+|any\s+)?(?:public\s+)?cloud\b|\bcloud\s+(?:\w+\s+)?(?:is|are)\s+not\s+(?:an\s+option|allowed|permitted|possible)\b|"
        r"\b(?:fully|completely|entirely)\s+offline\b|\bair-?gapped\b",
    ),
)
_PRIVACY_TRIGGERS: Final[dict[str, tuple[str, ...]]] = {
    "gdpr": ("gdpr", "general data protection"),
    "hipaa": ("hipaa",),
    "anonymised": ("anonymi", "identif", "pseudonymi"),
    "data-residency": ("residency", "sovereignty"),
    "no-cloud": ("cloud", "offline", "gapped"),
}
_PRIVACY = tuple(
    (value, _Gate(re.compile(pattern, _I), *_PRIVACY_TRIGGERS[value])) for value, pattern in _PRIVACY_PATTERNS
)
_PRIVACY_LEAVE = re.compile(
    rf"{_LEAVE}\s+(?:the\s+|their\s+|its\s+|our\s+|a\s+|the\s+user'?s\s+|users'\s+|each\s+)?"
    rf"(?:[\w'-]+\s+)?(?:(?P<device>{_DEVICE_PLACES})|(?P<premise>{_PREMISE_PLACES})|(?P<region>{_REGION_PLACES}))\b",
    _I,
)
_NO_DATA_LEAVES = re.compile(
    rf"\b(?:no|nothing)\s+(?:\w+\s+){{0,3}}?(?:leaves?|is\s+(?:sent|uploaded))\s+(?:off\s+|out\s+of\s+)?"
    rf"(?:the\s+|their\s+|its\s+|our\s+|a\s+|the\s+user'?s\s+)?"
    rf"(?:[\w'-]+\s+)?(?:(?P<device>{_DEVICE_PLACES})|(?P<premise>{_PREMISE_PLACES})|(?P<region>{_REGION_PLACES}))\b",
    _I,
)
_ON_DEVICE = re.compile(r"\bon-?device\b|\blocally\s+on\s+(?:the\s+)?(?:device|phone)\b", _I)
_PRIVACY_WORDS = re.compile(r"privacy|private|personal|sensitive|confidential|gdpr|hipaa|leave|secret", _I)
_PLACE_DEPLOYMENT = re.compile(
    r"(?P<mobile>phones?|smart-?phones?|handsets?|tablets?)|(?P<edge>devices?|cameras?|watch(?:es)?|"
    r"smart-?watch(?:es)?|cars?|vehicles?|robots?|headsets?|sensors?|machines?)",
    _I,
)

_PROCESSING_PATTERNS: Final = (
    (
        "streaming",
        r"\bstream(?:s|ing|ed)?\b|\blive\s+(?:video|feeds?|camera|audio|streams?|data|traffic|footage|"
        r"broadcasts?|transcription|captions?)\b|\b(?:camera|video|sensor|data|audio)\s+feeds?\b|"
        r"\b\w+(?:ed|ing)\s+live\b|\bcontinuous(?:ly)?\s+(?:monitoring|stream|processing|flow|feed)\b|\bcontinuously\b|"
        r"\bon\s+the\s+fly\b|\bas\s+(?:they|it|soon\s+as\s+they)\s+(?:arrive|come\s+in)\b|"
        r"\bevent-driven\b|\bonline\s+(?:inference|processing|predictions?|scoring)\b",
    ),
    (
        "batch",
        r"\bbatch(?:es|ed)?\b(?![- ](?:size|norm))(?!\s*(?:of\s+|=\s*|:\s*)?\d)|\bnightly\b|\bovernight\b|"
        r"\bonce\s+(?:a|per)\s+(?:day|night|week|month)\b|\bevery\s+(?:night|day|week|month|morning)\b|"
        r"\bdaily\s+(?:jobs?|runs?|reports?|batch)\b|\bweekly\s+(?:jobs?|runs?|reports?)\b|"
        r"\boffline\s+(?:processing|inference|analysis|jobs?|scoring)\b|\bend\s+of\s+(?:the\s+)?day\b|"
        r"\bin\s+bulk\b|\bbackfill\w*",
    ),
)
_PROCESSING_TRIGGERS: Final[dict[str, tuple[str, ...]]] = {
    "streaming": ("stream", "live", "feed", "continuous", "fly", "arrive", "come in", "event", "online"),
    "batch": ("batch", "night", "once", "every", "daily", "weekly", "offline", "end of", "bulk", "backfill"),
}
_PROCESSING = tuple(
    (value, _Gate(re.compile(pattern, _I), *_PROCESSING_TRIGGERS[value]))
    for value, pattern in _PROCESSING_PATTERNS
)

_EXPLAIN = re.compile(
    r"\bexplainab\w*|\binterpretab\w*|\bXAI\b|\bjustif(?:y|ies|ied|ication)\b|"
    r"\bexplain(?:s|ing)?\s+(?:its\s+|the\s+|each\s+|their\s+|every\s+|why\s+|how\s+|the\s+model's\s+)?"
    r"(?:decisions?|predictions?|outputs?|reasoning|results?|choices?|classifications?|scores?|answers?|"
    r"diagnos\w+|recommendations?|it\s+decided)\b|\bexplanations?\b|"
    r"\b(?:not|never|no)\s+(?:be\s+)?(?:a\s+)?black[- ]box\b|"
    r"\btransparent\s+(?:decisions?|models?|reasoning)\b|"
    r"\bauditab\w+|\b(?:understand|know|see|tell|show|explain)\s+why\b",
    _I,
)
_GPU = re.compile(r"\bGPUs?\b|\bCUDA\b|\bgraphics\s+cards?\b", _I)
_CPU_ONLY = re.compile(
    r"\bCPU[- ]only\b|\bonly\s+(?:on\s+)?(?:a\s+|the\s+)?CPUs?\b|\bCPUs?\s+only\b|"
    r"\b(?:runs?|run|running|inference|deployed|served)\s+(?:\w+\s+){0,2}?on\s+(?:a\s+|the\s+|commodity\s+|"
    r"standard\s+|regular\s+|plain\s+|ordinary\s+|our\s+|their\s+|its\s+)?"
    r"(?:(?:laptop|notebook|desktop|office)s?(?:'s|'|\u2019s|\u2019)?\s+)?CPUs?\b",
    _I,
)

_LANGUAGE = re.compile(
    r"\b(?P<name>(?i:"
    + "|".join(sorted((n for n in LANGUAGES if n != "polish"), key=len, reverse=True))
    + r")|Polish)"
    r"\b(?![- ](?i:shepherds?|fries|bulldogs?|toast|press|breakfast|restaurants?|cuisine|food|dishes|horns?|"
    r"kiss|doors?|windows?|pointers?|mastiffs?|terriers?|setters?|cheese|wine|beer|grammar\s+school|chess))"
)
_MULTILINGUAL = re.compile(
    r"\bmulti-?lingual\b|\bcross-?lingual\b|\b(?:many|several|multiple|various|all|any|\d+)\s+languages\b",
    _I,
)


_G_PRIVACY_LEAVE = _Gate(
    _PRIVACY_LEAVE,
    "leav", "stay", "remain", "kept", "stored", "processed", "sent", "uploaded", "transmitted", "transferred",
)  # fmt: skip
_G_NO_DATA_LEAVES = _Gate(_NO_DATA_LEAVES, "leave", "sent", "upload")
_G_ON_DEVICE = _Gate(_ON_DEVICE, "device")
_G_EXPLAIN = _Gate(_EXPLAIN, "explain", "interpret", "xai", "justif", "black", "transparent", "audit", "why")
_G_GPU = _Gate(_GPU, "gpu", "cuda", "graphics")
_G_CPU_ONLY = _Gate(_CPU_ONLY, "cpu")
_G_LANGUAGE = _Gate(_LANGUAGE, *LANGUAGES)
_G_MULTILINGUAL = _Gate(_MULTILINGUAL, "lingual", "languages")


def _keywords(t: _Text) -> Iterator[Finding]:
    no_cloud = [
        (m.start(), m.end()) for value, gate in _PRIVACY if value == "no-cloud" for m in gate.finditer(t)
    ]
    deployment: list[tuple[int, int, str]] = []
    for value, gate in _DEPLOYMENT:
        for m in gate.finditer(t):
            if m.group(0).casefold() == "ios" and not _IOS.fullmatch(m.group(0)):
                continue
            deployment.append((m.start(), m.end(), value))
    # overlapping matches ("our data center" vs "data center"): the longer one wins
    deployment.sort(key=lambda d: (d[0], -(d[1] - d[0])))
    taken_end = -1
    for start, end, value in deployment:
        if start < taken_end:
            continue
        taken_end = end
        if t.negated(start, end) or t.about_training(start, end):
            continue
        if value == "cloud" and any(a < end and start < b for a, b in no_cloud):
            continue  # "must never send photos to the cloud" forbids the cloud
        yield Finding("deployment", value, t.span(start, end), STRENGTH_TEXT)

    for value, gate in _PRIVACY:
        for m in gate.finditer(t):
            if value in ("gdpr", "hipaa", "anonymised") and t.negated(m.start(), m.end()):
                continue
            yield Finding("privacy", value, t.span(m.start(), m.end()), STRENGTH_TEXT)
    for gate in (_G_PRIVACY_LEAVE, _G_NO_DATA_LEAVES):
        for m in gate.finditer(t):
            span = t.span(m.start(), m.end())
            if m.group("device"):
                yield Finding("privacy", "on-device", span, STRENGTH_TEXT)
                place = _PLACE_DEPLOYMENT.fullmatch(m.group("device"))
                if place is not None and place.group("mobile"):
                    yield Finding(
                        "deployment", "mobile", t.span(m.start("device"), m.end("device")), STRENGTH_TEXT
                    )
            elif m.group("premise"):
                yield Finding("privacy", "on-premise", span, STRENGTH_TEXT)
            else:
                yield Finding("privacy", "data-residency", span, STRENGTH_TEXT)
    for m in _G_ON_DEVICE.finditer(t):
        if t.near(m.start(), m.end(), _PRIVACY_WORDS, window=80) and not t.negated(m.start(), m.end()):
            yield Finding("privacy", "on-device", t.span(m.start(), m.end()), STRENGTH_TEXT)

    for value, gate in _PROCESSING:
        for m in gate.finditer(t):
            if not t.negated(m.start(), m.end()):
                yield Finding("processing", value, t.span(m.start(), m.end()), STRENGTH_TEXT)

    for m in _G_EXPLAIN.finditer(t):
        if not t.negated(m.start(), m.end()) or m.group(0).casefold().startswith(("not", "never", "no")):
            yield Finding("explainability", "required", t.span(m.start(), m.end()), STRENGTH_TEXT)

    for m in _G_GPU.finditer(t):
        if t.about_training(m.start(), m.end()):
            continue
        value = "none" if t.negated(m.start(), m.end()) else "available"
        yield Finding("gpu", value, t.span(m.start(), m.end()), STRENGTH_TEXT)
    for m in _G_CPU_ONLY.finditer(t):
        if not t.about_training(m.start(), m.end()):
            yield Finding("gpu", "none", t.span(m.start(), m.end()), STRENGTH_TEXT)

    for m in _G_LANGUAGE.finditer(t):
        if not t.negated(m.start(), m.end()):
            code = LANGUAGES[m.group("name").casefold()]
            yield Finding("languages", code, t.span(m.start(), m.end()), STRENGTH_TEXT)
    for m in _G_MULTILINGUAL.finditer(t):
        if not t.negated(m.start(), m.end()):
            yield Finding("languages", MULTILINGUAL, t.span(m.start(), m.end()), STRENGTH_TEXT)


# ------------------------------------------------------------------------------------------------
# the workload: hardware and device counts, region, training scale, tokens, images, audio
# ------------------------------------------------------------------------------------------------

_COUNT_WORDS: Final[dict[str, float]] = {
    "a": 1, "an": 1, "one": 1, "single": 1, "a single": 1, "the": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "sixteen": 16,
    "twenty": 20, "thirty-two": 32, "sixty-four": 64, "a pair of": 2, "a couple of": 2, "dual": 2,
}  # fmt: skip
_COUNT_BEFORE = re.compile(
    r"(?:(?P<n>\d{1,3}(?:,\d{3})+|\d+)\s*(?:x|\u00d7|\*)?\s*|(?P<w>a\s+single|a\s+pair\s+of|a\s+couple\s+of|"
    r"an?|one|single|the|dual|two|three|four|five|six|seven|eight|nine|ten|twelve|sixteen|twenty|"
    r"thirty-two|sixty-four)\s+)(?:(?:nvidia|amd|google|intel|apple|tesla|new|dedicated|local|"
    r"cloud|rented|spare|old|older|small)\s+)*$",
    _I,
)
_COUNT_AFTER = re.compile(
    r"\s*(?:x|\u00d7)\s*(?P<n>\d+)\b|[^.;,]{0,25}?\bwith\s+(?P<n2>\d+)\s+(?:chips|gpus|cards|accelerators|devices)\b",
    _I,
)
_SPELLED_COUNTS: Final = "|".join(
    k for k in _COUNT_WORDS if " " not in k and k not in ("a", "an", "the", "dual")
)
_GENERIC_DEVICES = re.compile(
    rf"(?<![\w.,])(?P<n>\d{{1,3}}(?:,\d{{3}})+|\d+|{_SPELLED_COUNTS}|"
    r"a\s+single|one|single)\s+(?:[\w-]+\s+)?(?:GPUs|GPU|TPU\s+chips|TPUs|accelerators|chips)\b",
    _I,
)
_G_GENERIC_DEVICES = _Gate(_GENERIC_DEVICES, "gpu", "tpu", "accelerator", "chip")


def _count_word(text: str) -> float | None:
    word = " ".join(text.casefold().split())
    if word in _COUNT_WORDS:
        return float(_COUNT_WORDS[word])
    return _num(word)


def _hardware(t: _Text) -> Iterator[Finding]:
    """Devices named in the text (all of them: several different ones are a contradiction) and the
    count of the first one; a generic count ("32 GPUs") when no named device has a count."""
    if not any(trigger in t.lower for trigger in DEVICE_TRIGGERS):
        mentions: list[tuple[int, int, str, str]] = []
    else:
        mentions = []
        for pattern, spell, cls in DEVICE_PATTERNS:
            for m in pattern.finditer(t.text):
                mentions.append((m.start(), m.end(), spell(m), cls))
    mentions.sort(key=lambda d: (d[0], -(d[1] - d[0])))
    taken_end = -1
    counted = False  # only the first device named carries the count
    for start, end, name, cls in mentions:
        if start < taken_end:
            continue  # inside a longer name already taken
        taken_end = end
        count: float | None = None
        span_start = start
        before = _COUNT_BEFORE.search(t.text, max(0, start - 40), start)
        after = _COUNT_AFTER.match(t.text, end)
        if after is not None:
            count = _num(after.group("n") or after.group("n2"))
        elif before is not None:
            if before.group("n"):
                count = _num(before.group("n"))
            elif cls != "cpu" and not t.text[start:end].casefold().endswith("s"):
                count = _count_word(before.group("w"))  # "a T4" is one; "the T4s" no count
            if count is not None:
                span_start = before.start()
        yield Finding("hardware", name, t.span(start, end), STRENGTH_TEXT)
        if not counted and count is not None and count >= 1:
            yield Finding(
                "num_devices", count, t.span(span_start, after.end() if after else end), STRENGTH_TEXT
            )
        counted = True
        if cls == DATACENTRE and not t.about_training(start, end):
            yield Finding(_DATACENTRE_USE, name, t.span(start, end), STRENGTH_TEXT)
    if not counted:
        for m in _G_GENERIC_DEVICES.finditer(t):
            count = _count_word(m.group("n"))
            if count is not None and count >= 1:
                yield Finding("num_devices", count, t.span(m.start(), m.end()), STRENGTH_TEXT)
                break


#: Internal finding: a data-centre device named for inference (checked against the deployment).
_DATACENTRE_USE: Final = "_datacentre_device"

_PLACE_BEFORE = re.compile(
    r"\b(?:in|at|from|within|based\s+in|located\s+in|hosted\s+in|out\s+of|sits\s+in|near)\s+(?:the\s+)?"
    r"(?:[A-Z][\w-]+,\s+)?$"
)
_NOT_OUR_PLACE = re.compile(
    r"\b(?:users?|customers?|clients?|patients?|people|households?|citizens?|residents?|students?|"
    r"farmers?|drivers?|readers?|audiences?|speakers?|markets?|images?|photos?|data|fields?|roads?|"
    r"cities|schools?)\b(?:\s+\w+){0,2}\s*$",
    _I,
)
_COMPUTE_CUE = re.compile(
    r"server|data\s*cent|cluster|host|cloud|\bgpus?\b|\btpus?\b|region|colocation|facility|"
    r"infrastructure|\bruns?\b|running|\btrain|deploy|inference|\bserv(?:e|ed|ing)\b|office|company|"
    r"\bteam\b|\blab\b|hospital|based|located|\bgrid\b|\bsits?\b|machines?|A100|H100|T4|L4",
    _I,
)


def _region(t: _Text) -> Iterator[Finding]:
    for m in CLOUD_REGION.finditer(t.lower):
        span = t.span(m.start(), m.end())
        yield Finding("region", m.group("cloud"), span, STRENGTH_TEXT)
        if not t.about_training(m.start(), m.end()):
            yield Finding("deployment", "cloud", span, STRENGTH_DERIVED)
    for m in place_pattern().finditer(t.text):
        raw = m.group("place")
        if not raw.removeprefix("the ")[:1].isupper():
            continue  # places are proper nouns
        if _PLACE_BEFORE.search(t.text[max(0, m.start() - 40) : m.start()]) is None:
            continue
        if _NOT_OUR_PLACE.search(t.text, max(0, m.start() - 40), m.start()):
            continue
        s0, s1 = t.sentence(m.start(), m.end())
        if _COMPUTE_CUE.search(t.text, s0, s1) is None:
            continue
        yield Finding("region", normalise_place(raw), t.span(m.start(), m.end()), STRENGTH_TEXT)


_DURATION = re.compile(
    rf"(?:(?<![\w.,])(?P<n>{NUMBER})|\b(?P<w>{WORD_NUMBER}|a\s+full|an\s+entire|a\s+whole))\s*-?\s*"
    r"(?P<u>minutes?|mins?|hours?|hrs?|h|days?|weeks?|months?|weekends?)\b",
    _I,
)
_TRAINING_CUE = re.compile(rf"{_TRAIN_WORD.pattern}|\bepochs?\b", _I)
_NOT_TRAINING_DURATION_BEFORE = re.compile(
    r"\b(?:next|last|past|previous|every|each|per|ago|within\s+the|the\s+coming|forecast|battery|"
    r"once\s+a|coming)\s+(?:\w+\s+)?$",
    _I,
)
_NOT_TRAINING_DURATION_AFTER = re.compile(
    r"(?:\s*-?\s*long)?\s+(?:of\s+(?:\w+\s+){0,2}?(?:speech|audio|data|logs?|recordings?|video|footage|"
    r"readings|history|text|conversations|calls|sensor|measurements)|ahead|in\s+advance|later|ago|"
    r"(?:audio\s+|voice\s+)?(?:clips?|recordings?|calls?|meetings?|lectures?|notes?|windows?|segments?|"
    r"episodes?|videos?|podcasts?|announcements?)|battery)\b",
    _I,
)
_DURATION_H: Final = {**units.TIME_H, "min": 1 / 60, "minute": 1 / 60, "weekend": 48.0}


def _training_duration(t: _Text) -> Iterator[Finding]:
    if not any(u in t.lower for u in ("hour", "day", "week", "month", "min", "h")):
        return
    for m in _DURATION.finditer(t.text):
        s0, s1 = t.sentence(m.start(), m.end())
        before = t.text[max(s0, m.start() - 30) : m.start()]
        if _NOT_TRAINING_DURATION_BEFORE.search(before) or _NOT_TRAINING_DURATION_AFTER.match(
            t.text, m.end()
        ):
            continue
        trained = _TRAINING_CUE.search(t.text, s0, s1) is not None
        if not trained:
            # "8 A100s for 3 days": a count of devices in the same sentence, the duration unbounded
            devices = _COUNT_DEVICES_NEAR.search(t.text, s0, s1)
            if devices is None or _BOUND_MAX_BEFORE.search(before):
                continue
        if m.group("n"):
            count = _num(m.group("n"))
        else:
            word = " ".join(m.group("w").casefold().split())
            count = 1.0 if word in ("a full", "an entire", "a whole") else _num(word)
        if count is None or count <= 0:
            continue
        unit = m.group("u").casefold().rstrip("s") or "h"
        hours = count * units.unit_factor(_DURATION_H, unit)
        yield Finding("training_hours", hours, t.span(m.start(), m.end()), STRENGTH_TEXT)


_COUNT_DEVICES_NEAR = re.compile(
    r"\b\d[\d,]*\s*(?:x\s*)?(?:[A-Z][\w-]*\s+)?(?:[AHBLTVP]\d{1,3}\w*|GPUs?|TPUs?|chips|accelerators)\b"
)

_TOKENS = re.compile(
    rf"(?<![\w.,])(?P<num>{NUMBER}{MULTIPLIER}?)\s*(?P<hy>-\s*)?tokens?\b",
    _I,
)
_OUTPUT_CUE = re.compile(
    r"\b(?:answers?|responses?|repl(?:y|ies)|outputs?|summar(?:y|ies)|completions?|generat\w*|writes?|"
    r"written|emits?|continuations?|captions?)\b",
    _I,
)
_INPUT_CUE = re.compile(
    r"\b(?:prompts?|inputs?|context|documents?|reports?|articles?|passages?|chunks?|contracts?|queries|"
    r"query|questions?|pages?|conversations?|transcripts?|tickets?|emails?|requests?)\b",
    _I,
)
_TRAINING_TOKENS_CUE = re.compile(
    r"\b(?:train\w*|pre-?train\w*|fine-?tun\w*|corpus|dataset|data\s+set|continue\w*|seen)\b", _I
)
_PER_PERIOD_AFTER = re.compile(
    r"\s*(?:of\s+(?:\w+\s+){0,2})?(?:per|a|an|each|every|/)\s*(?:second|sec|s|minute|min|hour|h|day|night|"
    r"week|month|year)\b|\s*(?:daily|weekly|monthly|hourly)\b",
    _I,
)


def _tokens(t: _Text) -> Iterator[Finding]:
    if "token" not in t.lower:
        return
    for m in _TOKENS.finditer(t.text):
        value = _num(m.group("num"))
        if value is None or value <= 0 or _PER_PERIOD_AFTER.match(t.text, m.end()):
            continue
        _, c1 = t.clause(m.start(), m.end())
        s0, _ = t.sentence(m.start(), m.end())
        span = t.span(m.start(), m.end())
        if m.group("hy"):
            # "500-token answers": the noun right after decides
            noun = re.match(r"\s*(?:[\w-]+\s+)?(\w+)", t.text[m.end() : c1])
            word = noun.group(1) if noun else ""
            if _OUTPUT_CUE.fullmatch(word):
                yield Finding("output_tokens", value, span, STRENGTH_TEXT)
            elif _INPUT_CUE.fullmatch(word) or word:
                yield Finding("input_tokens", value, span, STRENGTH_TEXT)
            continue
        before = t.text[max(s0, m.start() - 60) : m.start()]
        after = t.text[m.end() : min(c1, m.end() + 20)]
        out_before = max((x.end() for x in _OUTPUT_CUE.finditer(before)), default=-1)
        in_before = max((x.end() for x in _INPUT_CUE.finditer(before)), default=-1)
        train_before = max((x.end() for x in _TRAINING_TOKENS_CUE.finditer(before)), default=-1)
        if re.match(
            r"\s*(?:per|each|a|for\s+(?:each|every))\s+(?:repl|answer|response|output|completion)", after, _I
        ):
            yield Finding("output_tokens", value, span, STRENGTH_TEXT)
        elif train_before > max(out_before, in_before) or (value >= 1e7 and out_before < 0 and in_before < 0):
            yield Finding("training_tokens", value, span, STRENGTH_TEXT)
        elif out_before > in_before:
            yield Finding("output_tokens", value, span, STRENGTH_TEXT)
        elif in_before >= 0:
            yield Finding("input_tokens", value, span, STRENGTH_TEXT)


_MODEL_SIZE = re.compile(
    rf"(?<![\w.,])(?P<num>{NUMBER})\s*-?\s*(?P<mult>trillion|billion|million|[BMT])\b\s*-?\s*"
    r"(?:(?P<param>parameters?|params?)\b\s*-?\s*)?"
    r"(?P<noun>(?:[\w-]+\s+){0,2}?(?:model|LLM|network|net|transformer|encoder|decoder|teacher|student|"
    r"checkpoint|variant|version|backbone|classifier|detector)s?\b)?",
)
_NAME_BEFORE = re.compile(
    r"(?:[A-Za-z][\w.]*-|\b(?!(?:A|An|The|Our|Their|This|That|Its|Your|My|One)\b)[A-Z][\w.]*\s+)$"
)


def _model_size(t: _Text) -> Iterator[Finding]:
    if not t.has_digit:
        return
    for m in _MODEL_SIZE.finditer(t.text):
        if not (m.group("noun") or m.group("param")):
            continue  # "7B" alone: "7B tokens", a name
        if m.group("param") and not m.group("noun"):
            lookback = t.text[max(0, m.start() - _LOOKBACK) : m.start()]
            if _BOUND_MAX_BEFORE.search(lookback) or _BOUND_MIN_BEFORE.search(lookback):
                continue  # a limit: max_parameters
            if re.match(_BOUND_AFTER, t.text[m.end() :], _I):
                continue
        if _NAME_BEFORE.search(t.text, max(0, m.start() - 30), m.start()):
            continue  # "Llama-2-7b model", "Mistral 7B": part of a name
        base = _num(m.group("num"))
        if base is None:
            continue
        value = base * {"b": 1e9, "m": 1e6, "t": 1e12}[m.group("mult").casefold()[0]]
        if value > 0:
            yield Finding("model_parameters", value, t.span(m.start(), m.end()), STRENGTH_TEXT)


_SAMPLE_ITEMS = (
    r"(?:images?|photos?|pictures?|samples?|examples?|records?|rows?|documents?|sentences?|pairs?|"
    r"instructions?|tickets?|reviews?|e-?mails?|houses?|utterances?|texts?|articles?|transactions?|"
    r"scans?|x-rays?|radiographs?|dialogues?|conversations?|questions?|frames?|videos?|clips?|"
    r"patients?|customers?|invoices?|receipts?|tweets?|posts?|products?|listings?|releases|reports?|"
    r"letters?|abstracts?|papers?|essays?|stories|books?|descriptions?|dialogs?|prompts?)"
)
_SAMPLES = re.compile(
    rf"(?<![\w.,$€£-])(?P<num>{NUMBER}{MULTIPLIER}?)\s+(?:(?!(?:tokens?|of|per|hours?|days?)\b)[\w-]+\s+){{0,2}}?"
    rf"(?P<item>{_SAMPLE_ITEMS})\b",
    _I,
)
_TIME_AFTER = re.compile(r"\s*-?\s*(?:s|secs?|seconds?|minutes?|mins?|hours?|h|days?|ms)\b", _I)
_SAMPLES_CUE = re.compile(
    r"\b(?:train\w*|fine-?tun\w*|pre-?train\w*|dataset|data\s+set|corpus|labell?ed|annotated|contains?|"
    r"holds?|available|collected|we\s+have|spreadsheet|epochs?|examples)\b",
    _I,
)


def _samples(t: _Text) -> Iterator[Finding]:
    if not t.has_digit:
        return
    for m in _SAMPLES.finditer(t.text):
        if _PER_PERIOD_AFTER.match(t.text, m.end()) or _TIME_AFTER.match(t.text, m.end("num")):
            continue
        s0, s1 = t.sentence(m.start(), m.end())
        if _SAMPLES_CUE.search(t.text, s0, s1) is None:
            continue
        value = _num(m.group("num"))
        if value is None or value < 2 or value != int(value):
            continue
        if _BOUND_MAX_BEFORE.search(t.text, max(0, m.start() - _LOOKBACK), m.start()):
            continue  # "up to 20 images per request" is not a data set
        yield Finding("training_samples", value, t.span(m.start(), m.end()), STRENGTH_TEXT)


_EPOCHS = re.compile(
    r"(?<![\w.,])(?P<n>\d+|one|two|three|four|five|six|seven|eight|nine|ten|twenty|fifty|a\s+hundred)\s*-?\s*epochs?\b",
    _I,
)
_BATCH = re.compile(
    r"\bbatch(?:[\s-]?size)?\s*(?:of|=|:|is)?\s*(?P<n>\d+)\b(?!\s*(?:%|ms|s\b|seconds|minutes|hours|GB|MB))|"
    r"\bbatches\s+of\s+(?P<n2>\d+)\b",
    _I,
)
_STEPS = re.compile(
    r"(?<![\w.,])(?P<n>\d{1,4})\s*-?\s*(?P<kind>sampling|denoising|diffusion|inference|scheduler)?\s*steps?\b",
    _I,
)
_IMAGE_GENERATION = re.compile(
    r"diffusion|text-to-image|sampler|denois|\bSDXL\b|\b(?:generat|render|draw|paint|creat)\w*\b"
    r"[^.;]{0,60}\b(?:images?|pictures?|art|illustrations?|photos?|renders?|steps)\b",
    _I,
)


def _training_counts(t: _Text) -> Iterator[Finding]:
    low = t.lower
    if "epoch" in low:
        for m in _EPOCHS.finditer(t.text):
            value = _count_word(m.group("n"))
            if value is not None and value >= 1:
                yield Finding("epochs", value, t.span(m.start(), m.end()), STRENGTH_TEXT)
    if "batch" in low and t.has_digit:
        for m in _BATCH.finditer(t.text):
            value = _num(m.group("n") or m.group("n2"))
            if value is not None and value >= 1:
                yield Finding("batch_size", value, t.span(m.start(), m.end()), STRENGTH_TEXT)
    if "step" in low and t.has_digit:
        for m in _STEPS.finditer(t.text):
            s0, s1 = t.sentence(m.start(), m.end())
            if m.group("kind") is None:
                if _IMAGE_GENERATION.search(t.text, s0, s1) is None or t.about_training(m.start(), m.end()):
                    continue
                if _TRAINING_CUE.search(t.text, s0, m.start()):
                    continue
            value = _num(m.group("n"))
            if value is not None and value >= 1:
                yield Finding("diffusion_steps", value, t.span(m.start(), m.end()), STRENGTH_TEXT)


_RESOLUTION = re.compile(
    r"(?<![\w.])(?P<w>\d{2,5})\s*(?:x|\u00d7|\*|by)\s*(?P<h>\d{2,5})(?:\s*(?:px|pixels?))?\b"
    r"(?!\s*(?:mm|cm|m|km|inch|inches|in|ft|feet|meters?|metres?|grid|matrix)\b)"
    r"|(?<![\w.])(?P<s>\d{2,5})\s*-?\s*(?:px|pixels?)\b(?:\s+(?:on\s+a\s+side|square|wide))?"
    r"|(?<![\w.])(?P<p>480|720|1080|1440|2160|4320)p\b"
    r"|(?<![\w.])(?P<k>4K|8K|UHD)\b(?=\s+(?:\w+\s+)?(?:video|footage|frames?|cameras?|resolution|streams?|"
    r"displays?|monitors?|screens?|images?|drone))",
    _I,
)
_WIDESCREEN: Final = {"480": (854, 480), "720": (1280, 720), "1080": (1920, 1080), "1440": (2560, 1440),
                      "2160": (3840, 2160), "4320": (7680, 4320), "4k": (3840, 2160), "uhd": (3840, 2160),
                      "8k": (7680, 4320)}  # fmt: skip


def _resolution(t: _Text) -> Iterator[Finding]:
    if not t.has_digit and "uhd" not in t.lower:
        return
    for m in _RESOLUTION.finditer(t.text):
        if m.group("w"):
            w, h = float(m.group("w")), float(m.group("h"))
            if min(w, h) < 16:
                continue
        elif m.group("s"):
            w = h = float(m.group("s"))
        else:
            w, h = _WIDESCREEN[(m.group("p") or m.group("k")).casefold()]
        side = round(math.sqrt(w * h))  # the square with the same number of pixels
        yield Finding("image_resolution", float(side), t.span(m.start(), m.end()), STRENGTH_TEXT)


_AUDIO_NOUN = (
    r"(?:audio\s+|voice\s+|speech\s+|sound\s+)?(?:clips?|voice\s+notes?|notes?|recordings?|calls?|"
    r"meetings?|lectures?|windows?|segments?|episodes?|utterances?|messages?|snippets?|announcements?|"
    r"podcasts?|interviews?|sessions?|files?|songs?|tracks?|consultations?|appointments?|visits?|"
    r"dictations?|broadcasts?|shows?|sermons?|talks?|speeches)"
)
_AUDIO_UNIT = r"(?P<u>s|secs?|seconds?|minutes?|mins?|hours?|hrs?|h)"
_AUDIO_LENGTH = (
    re.compile(
        rf"(?:(?<![\w.,])(?P<n>{NUMBER})|\b(?P<w>{WORD_NUMBER}))\s*-?\s*{_AUDIO_UNIT}\s*-?\s*(?:long\s+)?"
        rf"(?:[\w]+-[\w-]+\s+)?(?P<noun>{_AUDIO_NOUN})\b",
        _I,
    ),
    re.compile(
        rf"\b(?P<noun>{_AUDIO_NOUN})\s+(?:are\s+|is\s+)?(?:last(?:s|ing)?|average|averaging|take|of|run)?\s*"
        rf"(?:about|around|roughly|approximately|on\s+average|up\s+to|at\s+most)?\s*"
        rf"(?:(?P<n>{NUMBER})|\b(?P<w>{WORD_NUMBER}))\s*-?\s*{_AUDIO_UNIT}\b",
        _I,
    ),
)
_AUDIO_VOLUME = re.compile(
    rf"(?:(?<![\w.,])(?P<n>{NUMBER})|\b(?P<w>{WORD_NUMBER}))\s*{_AUDIO_UNIT}\s+of\s+(?:\w+\s+)?"
    r"(?:audio|speech|recordings?|calls?|voice|sound|podcasts?|meetings?)\s*(?:each|per|a|every|/)\s*"
    r"(?P<p>day|week|month|hour)\b",
    _I,
)
_AUDIO_CUE = re.compile(
    r"audio|speech|voice|sound|\bcalls?\b|meeting|lecture|podcast|noise|spoken|transcri|recording|"
    r"announcement|gunshot|music|song|\bsay\b|dictat|\btts\b|asr\b",
    _I,
)
_NOT_AUDIO = re.compile(r"\b(?:ECG|EEG|EKG|vibration|sensor|accelerometer|video|footage)\b", _I)


def _audio(t: _Text) -> Iterator[Finding]:
    if _AUDIO_CUE.search(t.text) is None:
        return
    volume_spans: list[tuple[int, int]] = []
    for m in _AUDIO_VOLUME.finditer(t.text):
        count = _num(m.group("n")) if m.group("n") else _num(m.group("w"))
        if count is None or count <= 0:
            continue
        seconds = count * units.unit_factor(units.TIME_MS, m.group("u")) / 1000.0
        per_day = seconds * units.unit_factor(units.PER_DAY, m.group("p"))
        volume_spans.append((m.start(), m.end()))
        yield Finding("audio_seconds_per_day", per_day, t.span(m.start(), m.end()), STRENGTH_TEXT)
    for pattern in _AUDIO_LENGTH:
        for m in pattern.finditer(t.text):
            if any(a <= m.start() < b for a, b in volume_spans):
                continue
            c0, c1 = t.clause(m.start(), m.end())
            if _NOT_AUDIO.search(t.text, max(c0, m.start() - 30), min(c1, m.end() + 30)):
                continue
            count = _num(m.group("n")) if m.group("n") else _num(m.group("w"))
            if count is None or count <= 0:
                continue
            seconds = count * units.unit_factor(units.TIME_MS, m.group("u")) / 1000.0
            yield Finding("audio_seconds", seconds, t.span(m.start(), m.end()), STRENGTH_TEXT)


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
