"""Requirements extractor scanners for keywords: deployment target, privacy, processing mode,
explainability, GPU, languages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from sustainml.workers.logic.requirements.findings import STRENGTH_TEXT, Finding
from sustainml.workers.logic.requirements.schema import (
    LANGUAGES,
    MULTILINGUAL,
)
from sustainml.workers.logic.requirements.text import _I, _Gate, _Text

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
