"""The requirements extractor's reading of one source text: shared pattern pieces (quantities,
bounds, clause and sentence breaks, negation cues), the indexed text (``_Text``) and the gates that
skip a pattern when none of its trigger words occurs."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from typing import Final

from sustainml.workers.logic.requirements import units
from sustainml.workers.logic.requirements.findings import Source, Span
from sustainml.workers.logic.requirements.units import MULTIPLIER, NUMBER

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
