"""The requirement keys APP_REQUIREMENTS produces: name, kind, unit, description, allowed values.

Kinds decide how several findings of one key combine:

- ``max``: an upper limit (float); the stricter = smallest value wins.
- ``min``: a lower limit (float); the stricter = largest value wins.
- ``enum``: one value out of ``values``, listed most constraining first; the first listed wins.
- ``set``: any number of ``values`` (sorted list); findings are united, never contradict.

Numeric keys all start with ``max_`` or ``min_``: ``workers/logic/common.py`` ``parse_requirements``
reads those back as floats from the ``key=value`` strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["max", "min", "enum", "set"]


@dataclass(frozen=True)
class KeySpec:
    key: str
    kind: Kind
    unit: str
    description: str
    values: tuple[str, ...] = ()

    @property
    def numeric(self) -> bool:
        return self.kind in ("max", "min")

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "unit": self.unit, "description": self.description}
        if self.values:
            out["values"] = list(self.values)
        return out


DEPLOYMENTS: Final = ("embedded", "mobile", "browser", "edge", "on-premise", "cloud")
DEVICE_SIDE: Final = frozenset({"embedded", "mobile", "browser", "edge"})
PRIVACY: Final = ("on-device", "on-premise", "data-residency", "no-cloud", "gdpr", "hipaa", "anonymised")
PROCESSING: Final = ("streaming", "batch")
GPU: Final = ("none", "available")
POWER_SOURCES: Final = ("battery", "solar", "mains")

#: ISO 639-1 code of each language name the extractor recognises (lower case).
LANGUAGES: Final[dict[str, str]] = {
    "english": "en",
    "german": "de",
    "french": "fr",
    "spanish": "es",
    "italian": "it",
    "portuguese": "pt",
    "dutch": "nl",
    "flemish": "nl",
    "polish": "pl",
    "swedish": "sv",
    "danish": "da",
    "norwegian": "no",
    "finnish": "fi",
    "icelandic": "is",
    "greek": "el",
    "czech": "cs",
    "slovak": "sk",
    "slovenian": "sl",
    "croatian": "hr",
    "serbian": "sr",
    "bulgarian": "bg",
    "romanian": "ro",
    "hungarian": "hu",
    "estonian": "et",
    "latvian": "lv",
    "lithuanian": "lt",
    "turkish": "tr",
    "russian": "ru",
    "ukrainian": "uk",
    "arabic": "ar",
    "hebrew": "he",
    "persian": "fa",
    "farsi": "fa",
    "hindi": "hi",
    "bengali": "bn",
    "urdu": "ur",
    "tamil": "ta",
    "chinese": "zh",
    "mandarin": "zh",
    "cantonese": "zh",
    "japanese": "ja",
    "korean": "ko",
    "vietnamese": "vi",
    "thai": "th",
    "indonesian": "id",
    "malay": "ms",
    "tagalog": "tl",
    "filipino": "tl",
    "swahili": "sw",
    "catalan": "ca",
    "basque": "eu",
    "galician": "gl",
    "welsh": "cy",
    "irish": "ga",
}
MULTILINGUAL: Final = "multilingual"

_FRACTION = "fraction 0-1"

KEYS: Final[dict[str, KeySpec]] = {
    spec.key: spec
    for spec in (
        KeySpec(
            "max_latency_ms",
            "max",
            "ms",
            "latency limit per request/item; '20 fps' -> 50 ms per frame when no latency is stated; "
            "'real-time' -> 100 ms, 'interactive'/'near real-time' -> 1000 ms when no number is given",
        ),
        KeySpec(
            "min_throughput_per_s",
            "min",
            "items/s",
            "items (requests, images, frames, documents ...) to handle per second; per minute/hour/day "
            "rates are divided down (a month = 30 days, a year = 365 days)",
        ),
        KeySpec("deployment", "enum", "", "where inference runs (most constraining first)", DEPLOYMENTS),
        KeySpec("privacy", "set", "", "data-handling constraints", PRIVACY),
        KeySpec("min_accuracy", "min", _FRACTION, "accuracy target ('at least 95% accuracy' -> 0.95)"),
        KeySpec("min_precision", "min", _FRACTION, "precision target"),
        KeySpec("min_recall", "min", _FRACTION, "recall / sensitivity target"),
        KeySpec("min_f1", "min", _FRACTION, "F1 score target"),
        KeySpec("min_map", "min", _FRACTION, "mean average precision (mAP) target"),
        KeySpec("min_auc", "min", _FRACTION, "ROC AUC target"),
        KeySpec("min_iou", "min", _FRACTION, "(mean) intersection-over-union target"),
        KeySpec("max_wer", "max", _FRACTION, "word error rate limit ('WER below 10%' -> 0.1)"),
        KeySpec("max_cer", "max", _FRACTION, "character error rate limit"),
        KeySpec(
            "max_model_size_mb",
            "max",
            "MB (1 GB = 1024 MB)",
            "model size / memory limit ('fits in 2 GB' -> 2048, '256 KB of RAM' -> 0.25)",
        ),
        KeySpec("max_parameters", "max", "parameters", "parameter-count limit ('less than 10M parameters')"),
        KeySpec("max_power_w", "max", "W", "power budget ('under 5 W', '500 mW' -> 0.5)"),
        KeySpec("power_source", "set", "", "how the device is powered", POWER_SOURCES),
        KeySpec("min_battery_life_h", "min", "h", "battery life ('runs a day on battery' -> 24)"),
        KeySpec("max_energy_wh", "max", "Wh", "total energy budget (e.g. for a training run)"),
        KeySpec(
            "max_energy_wh_per_day",
            "max",
            "Wh/day",
            "energy budget per day (per hour x 24, per week / 7, per month / 30, per year / 365)",
        ),
        KeySpec("max_energy_wh_per_inference", "max", "Wh", "energy budget per inference/request"),
        KeySpec("max_carbon_kg", "max", "kgCO2e", "total carbon budget"),
        KeySpec("max_carbon_kg_per_day", "max", "kgCO2e/day", "carbon budget per day (periods as energy)"),
        KeySpec("max_carbon_kg_per_inference", "max", "kgCO2e", "carbon budget per inference/request"),
        KeySpec(
            "languages",
            "set",
            "ISO 639-1",
            "natural languages the system must handle; 'multilingual' when many/any",
            (*sorted(set(LANGUAGES.values())), MULTILINGUAL),
        ),
        KeySpec(
            "processing", "enum", "", "streaming (continuous, live) or batch (nightly, bulk)", PROCESSING
        ),
        KeySpec("explainability", "enum", "", "predictions must be explainable/interpretable", ("required",)),
        KeySpec("gpu", "enum", "", "GPU at inference: none ('no GPU', 'CPU only') or available", GPU),
    )
}

#: extra_data keys scanned as free text (besides the requirement keys, which are explicit values).
TEXT_FIELDS: Final = ("constraints", "requirements_text", "notes")

#: Why a value was chosen when findings disagree, per kind.
RULES: Final[dict[Kind, str]] = {
    "max": "stricter limit: the smallest value",
    "min": "stricter minimum: the largest value",
    "enum": "most constraining value, in the order of the key's values",
    "set": "union",
}
