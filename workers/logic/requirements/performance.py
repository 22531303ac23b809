"""Requirements extractor scanners for performance targets: latency and throughput, model size and
parameters, power, battery, energy and carbon budgets, quality targets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from sustainml.workers.logic.requirements import units
from sustainml.workers.logic.requirements.findings import (
    STRENGTH_DEFAULT,
    STRENGTH_DERIVED,
    STRENGTH_TEXT,
    Finding,
)
from sustainml.workers.logic.requirements.text import (
    _BOUND_AFTER,
    _BOUND_MAX_BEFORE,
    _BOUND_MIN_BEFORE,
    _I,
    _QTY,
    _Gate,
    _hits,
    _num,
    _range_value,
    _Text,
)
from sustainml.workers.logic.requirements.units import NUMBER, WORD_NUMBER

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
