"""Requirements extractor scanners for the workload: hardware and device counts, region, training
scale, tokens, images, audio."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Final

from sustainml.workers.logic.requirements import units
from sustainml.workers.logic.requirements.findings import STRENGTH_DERIVED, STRENGTH_TEXT, Finding
from sustainml.workers.logic.requirements.gazetteer import (
    CLOUD_REGION,
    DATACENTRE,
    DEVICE_PATTERNS,
    DEVICE_TRIGGERS,
    azure_display_region,
    normalise_place,
    place_pattern,
)
from sustainml.workers.logic.requirements.text import (
    _BOUND_AFTER,
    _BOUND_MAX_BEFORE,
    _BOUND_MIN_BEFORE,
    _I,
    _LOOKBACK,
    _TRAIN_WORD,
    _Gate,
    _num,
    _Text,
)
from sustainml.workers.logic.requirements.units import MULTIPLIER, NUMBER, WORD_NUMBER

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
    if "azure" in t.lower:
        for m in azure_display_region().finditer(t.text):
            s0, s1 = t.sentence(m.start(), m.end())
            if "azure" not in t.lower[s0:s1]:
                continue
            identifier = "".join(m.group("azure").split()).lower()
            yield Finding("region", identifier, t.span(m.start(), m.end()), STRENGTH_TEXT)
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
    rf"(?<![\w.,$€£-])(?P<num>{NUMBER}{MULTIPLIER}?)\s+(?:of\s+(?:our|the|my|their|your|its)\s+)?"
    rf"(?:(?!(?:tokens?|of|per|hours?|days?)\b)[\w-]+\s+){{0,2}}?"
    rf"(?P<item>{_SAMPLE_ITEMS})\b",
    _I,
)
_TIME_AFTER = re.compile(r"\s*-?\s*(?:s|secs?|seconds?|minutes?|mins?|hours?|h|days?|ms)\b", _I)
#: A count that sizes a model, not a data set ("a 7B model for customer support").
_MODEL_AFTER = re.compile(r"\s*-?\s*(?:parameters?|params?|models?|llms?|networks?|transformers?)\b", _I)
_SAMPLES_CUE = re.compile(
    r"\b(?:train\w*|fine-?tun\w*|pre-?train\w*|dataset|data\s+set|corpus|labell?ed|annotated|contains?|"
    r"holds?|available|collected|we\s+have|spreadsheet|epochs?|examples|exports?|exported|tabular|csv|"
    r"historical|history)\b",
    _I,
)


def _samples(t: _Text) -> Iterator[Finding]:
    if not t.has_digit:
        return
    for m in _SAMPLES.finditer(t.text):
        if _PER_PERIOD_AFTER.match(t.text, m.end()) or _TIME_AFTER.match(t.text, m.end("num")):
            continue
        if _MODEL_AFTER.match(t.text, m.end("num")):
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
