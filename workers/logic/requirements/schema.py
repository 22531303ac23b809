"""The requirement keys APP_REQUIREMENTS produces: name, kind, unit, description, allowed values.

Kinds decide how several findings of one key combine:

- ``max``: an upper limit (float); the stricter = smallest value wins.
- ``min``: a lower limit (float); the stricter = largest value wins.
- ``enum``: one value out of ``values``, listed most constraining first; the first listed wins.
- ``set``: any number of ``values`` (sorted list); findings are united, never contradict.
- ``count``: a whole number describing the workload (devices, epochs, tokens ...), not a limit; the
  first mention wins and a different value elsewhere is reported as a contradiction.
- ``quantity``: the same for a real number (hours, seconds).
- ``text``: a name as written (a device, a place); first mention wins, others are contradictions.

Limits start with ``max_`` or ``min_``: ``workers/logic/common.py`` ``parse_requirements`` reads
those back as floats from the ``key=value`` strings. ``count`` and ``quantity`` keys come back from
there as strings; read them typed from ``Extraction.requirements`` or
``AppRequirements.extra_data["requirements"]`` (counts are ``int``, quantities ``float``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["max", "min", "enum", "set", "count", "quantity", "text"]


@dataclass(frozen=True)
class KeySpec:
    key: str
    kind: Kind
    unit: str
    description: str
    values: tuple[str, ...] = ()

    @property
    def numeric(self) -> bool:
        return self.kind in ("max", "min", "count", "quantity")

    @property
    def first_wins(self) -> bool:
        """Workload facts: the first mention is the value, a different one is a contradiction."""
        return self.kind in ("count", "quantity", "text")

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
        # -- the workload: what the user has or plans, not limits --------------------------------
        KeySpec(
            "hardware",
            "text",
            "device name",
            "the device named for training or inference, in its usual spelling ('8 A100s' -> A100, "
            "'a Jetson Orin' -> Jetson Orin, 'our laptops' CPUs' -> laptop CPU); the first one named",
        ),
        KeySpec(
            "num_devices",
            "count",
            "devices",
            "how many of the device ('8 A100s' -> 8, 'a T4' -> 1, 'a cluster of 32 GPUs' -> 32); an "
            "article counts one for accelerators and boards, not for CPUs",
        ),
        KeySpec(
            "region",
            "text",
            "place",
            "where the compute is: a country or continent (the region catalogue's name: 'in Germany' -> "
            "Germany), a city or US state as written ('Frankfurt'), or a cloud region ('us-east-1'); "
            "UserInput.geo_location_region wins over the text",
        ),
        KeySpec(
            "training_hours",
            "quantity",
            "h (wall clock)",
            "length of a training run ('for 3 days' -> 72, 'two weeks' -> 336, 'a month' -> 720)",
        ),
        KeySpec(
            "training_tokens", "count", "tokens", "tokens seen in training ('2 trillion tokens' -> 2e12)"
        ),
        KeySpec(
            "model_parameters",
            "count",
            "parameters",
            "size of the model meant ('a 7B model' -> 7e9); a size inside a model name ('Llama-2-7b', "
            "'Mistral 7B') is a name, not read; a bound ('under 10M parameters') is max_parameters",
        ),
        KeySpec(
            "training_samples",
            "count",
            "examples",
            "training examples ('50k images' -> 50000, '20,000 customer records'); rates per period are "
            "throughput, not samples",
        ),
        KeySpec("epochs", "count", "epochs", "passes over the training data ('10 epochs')"),
        KeySpec(
            "input_tokens",
            "count",
            "tokens/request",
            "prompt or context length per request ('2,000-token prompts', '8k-token reports')",
        ),
        KeySpec(
            "output_tokens",
            "count",
            "tokens/request",
            "generated length per request ('500-token answers', 'replies up to 300 tokens')",
        ),
        KeySpec(
            "batch_size", "count", "items", "batch size ('batch 32', 'batches of 8', 'batch size of 64')"
        ),
        KeySpec(
            "diffusion_steps",
            "count",
            "steps",
            "sampling steps of an image generator ('30 steps', '50 denoising steps'); training steps "
            "are not read",
        ),
        KeySpec(
            "image_resolution",
            "count",
            "pixels on a side",
            "input or output image size as the side of the square with the same pixel count: "
            "'1024x1024' -> 1024, '1920x1080' or '1080p' -> 1440, '4K video' -> 2880",
        ),
        KeySpec(
            "audio_seconds",
            "quantity",
            "s/request",
            "length of one audio input or output ('30-second voice notes' -> 30, 'calls last about 5 "
            "minutes' -> 300)",
        ),
        KeySpec(
            "audio_seconds_per_day",
            "quantity",
            "s/day",
            "audio volume per day, not per request ('one hour of audio a day' -> 3600; per week / 7)",
        ),
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
    "count": "first mentioned",
    "quantity": "first mentioned",
    "text": "first mentioned",
}

#: Rule of the cross-key contradiction between a device-side deployment and a data-centre device.
DEVICE_SIDE_RULE: Final = (
    "a device-side deployment (edge, mobile, embedded, browser) does not run on a data-centre "
    "accelerator: both kept, say which is meant"
)
