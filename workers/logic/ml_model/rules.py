"""ML_MODEL: the documented numbers and words the stage decides with, and which catalogue
entries HW_RESOURCES can cost."""

from __future__ import annotations

from typing import Final

from sustainml.catalogue import ModelEntry
from sustainml.estimate.model_files import (
    costing_method,
)
from sustainml.messages import limits as msg_limits

TOP_N: Final = 5
MAX_LISTED: Final = 50
DEFAULT_ENERGY_WEIGHT: Final = 0.5
PRIORITY_WEIGHTS: Final = {"accuracy": 0.25, "quality": 0.25, "balanced": 0.5, "energy": 1.0}
MAX_BATCH: Final = 1024
#: raw_model is sent only below this (the message limit; onnxgraphs' own limit is larger).
RAW_MODEL_LIMIT: Final = msg_limits.MAX_RAW_MODEL_BYTES
#: Headroom left in input_batch for the .npy headers.
INPUT_BATCH_BUDGET: Final = int(msg_limits.MAX_INPUT_BATCH_BYTES * 0.95)
HF_SEARCH_DEFAULT_LIMIT: Final = 20
MODEL_CONFIG_PREFIX: Final = "__MODEL_CONFIG__:"

#: Cover tags (upstream modalities) -> catalogue input modalities.
COVER_TAG_MODALITIES: Final[dict[str, tuple[str, ...]]] = {
    "cv": ("image", "video"),
    "vision": ("image", "video"),
    "nlp": ("text",),
    "audio": ("audio",),
    "tabular": ("tabular", "time-series"),
    "timeseries": ("time-series",),
}

#: Quality requirements -> (metric words that make a model's metric comparable, lower is better).
QUALITY_REQUIREMENTS: Final[dict[str, tuple[tuple[str, ...], bool]]] = {
    "min_accuracy": (("accuracy", "acc"), False),
    "min_f1": (("f1",), False),
    "min_map": (("map",), False),
    "min_iou": (("iou", "miou"), False),
    "min_auc": (("auc",), False),
    "max_wer": (("wer",), True),
    "max_cer": (("cer",), True),
}

RANKING_RULE: Final = (
    "score = quality - w x energy; quality = 1 - (best - figure) / max(best - worst, 10 % of best) among "
    "the feasible candidates reporting the reference metric and dataset (the one most report for this goal); "
    "0.5 (not comparable) for the others and for figures measured on another task; "
    "when the problem names a domain (e.g. medical imaging) and candidates report a figure measured in it, "
    "that figure is the reference; "
    "energy = log10(J per inference or per answer on the model's device) min-max normalised; "
    "ties: quality, energy, parameters, name"
)

#: Goals whose answer is generated token by token: an answer costs prefill + N decode steps.
GENERATIVE_GOALS: Final = frozenset(
    {
        "text-generation",
        "summarization",
        "translation",
        "image-text-to-text",
        "image-to-text",
        "automatic-speech-recognition",
        "question-answering",
    }
)
#: Generated tokens per answer when the requirement ``output_tokens`` is not given (screening only;
#: HW_RESOURCES states its own per-answer figures): a chat reply, a summary, a short answer, the
#: text of 30 s of speech (~150 words per minute, ~1.3 tokens per word).
DEFAULT_OUTPUT_TOKENS: Final[dict[str, int]] = {
    "text-generation": 256,
    "summarization": 200,
    "translation": 128,
    "question-answering": 32,
    "image-text-to-text": 128,
    "image-to-text": 32,
    "automatic-speech-recognition": 100,
}
#: Denoising steps per image when ``diffusion_steps`` is not given (the common scheduler default).
DEFAULT_DIFFUSION_STEPS: Final = 30
#: "a 7B model": catalogue models within this factor of the stated size are "that size".
SIZE_BAND: Final = 1.35
#: "multilingual" with no language named: a model must cover at least this many languages.
MULTILINGUAL_MIN_LANGUAGES: Final = 10
#: Words of the description (ML_MODEL_METADATA keywords) that ask for a chat/instruction model.
CHAT_WORDS: Final = frozenset({"chat", "chatbot", "assistant", "instruct", "instruction", "conversational"})
#: Application domains whose own benchmarks a figure can be measured on, and the words of the
#: description (ML_MODEL_METADATA keywords) that place a problem in one. A catalogue model whose
#: figure was measured in the domain carries the domain as a tag.
DOMAIN_WORDS: Final[dict[str, frozenset[str]]] = {
    "biomedical": frozenset(
        {
            "medical", "biomedical", "clinical", "hospital", "patient", "patients", "radiology",
            "mri", "ct", "x-ray", "xray", "ultrasound", "tumour", "tumours", "tumor", "tumors",
            "lesion", "lesions", "histology", "histopathology", "pathology", "microscopy",
            "cell", "cells", "organ", "organs",
        }
    ),
}  # fmt: skip
#: Words that say the task is training (fine-tuning) rather than inference.
TRAINING_WORDS: Final = frozenset(
    {"train", "training", "fine-tune", "finetune", "fine-tuning", "finetuning", "pretrain", "pre-train"}
)
TRAINING_KEYS: Final = ("training_hours", "training_tokens", "training_samples", "epochs")
#: Device classes a memory relaxation for training does not count in (CPUs and on-device parts:
#: their memory fits a large model, their throughput does not train it).
TRAINING_UNSUITED_CLASSES: Final = frozenset({"server-cpu", "desktop", "local", "mobile", "embedded"})
#: "long documents" with no stated length: tokens assumed (a 15-20 page contract or report is
#: ~8,000 words of English or French, ~10,000 tokens; 8,192 is the common context step).
LONG_INPUT_TOKENS: Final = 8192
LONG_WORDS: Final = frozenset({"long", "lengthy", "long-form", "book", "books"})
#: Training sequence length for the activation memory when none is stated (tokens).
DEFAULT_TRAINING_SEQUENCE: Final = 2048


DESCRIPTION_KEYS: Final = ("problem_short_description", "problem_definition", "description")


NOT_COSTABLE: Final = (
    "HW_RESOURCES cannot estimate it (no graph, transformer shape, pipeline, or published MACs and "
    "parameters in the catalogue)"
)


def costable(entry: ModelEntry) -> bool:
    """True when HW_RESOURCES can cost the entry (``estimate.model_files.costing_method``: a graph, a
    transformer shape or diffusion pipeline, a tree ensemble, or published MACs and parameters).
    An entry it cannot cost is excluded with constraint ``costing``, never proposed."""
    return bool(costing_method(entry))


def generative(entry: ModelEntry, goal: str) -> bool:
    """True when an answer of ``entry`` for ``goal`` is generated token by token (costed per answer)."""
    spec = entry.transformer
    return spec is not None and spec.kind != "encoder" and goal in GENERATIVE_GOALS
