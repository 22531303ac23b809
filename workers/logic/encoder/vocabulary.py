"""The encoder's vocabulary: goals (Hugging Face task names), input modalities, their aliases, what
each goal takes and produces, and the evaluation metrics suggested per goal.

Everything the configuration requests answer (``modality``, ``in_out_modalities``, ``metrics``,
``problem_from_modality``) is derived from the tables here, so replies and inference cannot drift.
"""

from __future__ import annotations

import difflib
import re
from typing import Final

from sustainml.workers.logic.common import norm_key

#: Goals, in a fixed order (the classifiers' label order and every tie-break follow it).
GOALS: Final[tuple[str, ...]] = (
    "image-classification",
    "object-detection",
    "image-segmentation",
    "image-to-text",
    "text-to-image",
    "video-classification",
    "text-classification",
    "token-classification",
    "question-answering",
    "summarization",
    "translation",
    "text-generation",
    "sentence-similarity",
    "automatic-speech-recognition",
    "audio-classification",
    "text-to-speech",
    "time-series-forecasting",
    "anomaly-detection",
    "tabular-classification",
    "tabular-regression",
    "zero-shot-classification",
    "image-text-to-text",
)

#: Input modalities (what the model is fed).
MODALITIES: Final[tuple[str, ...]] = ("image", "video", "text", "audio", "time-series", "tabular")

#: Input modalities each goal accepts; the first is the usual one. The inferred modality of a task
#: is always one of its goal's inputs.
GOAL_INPUTS: Final[dict[str, tuple[str, ...]]] = {
    "image-classification": ("image",),
    "object-detection": ("image", "video"),
    "image-segmentation": ("image", "video"),
    "image-to-text": ("image",),
    "text-to-image": ("text",),
    "video-classification": ("video",),
    "text-classification": ("text",),
    "token-classification": ("text",),
    "question-answering": ("text",),
    "summarization": ("text",),
    "translation": ("text",),
    "text-generation": ("text",),
    "sentence-similarity": ("text",),
    "automatic-speech-recognition": ("audio",),
    "audio-classification": ("audio",),
    "text-to-speech": ("text",),
    "time-series-forecasting": ("time-series", "tabular"),
    "anomaly-detection": ("time-series", "tabular", "image", "video", "audio"),
    "tabular-classification": ("tabular", "time-series"),
    "tabular-regression": ("tabular",),
    "zero-shot-classification": ("text",),
    "image-text-to-text": ("image",),  # an image with a text prompt; the image is what sets it apart
}

#: What each goal produces (the ``outputs`` of ``in_out_modalities``).
GOAL_OUTPUT: Final[dict[str, str]] = {
    "image-classification": "label",
    "object-detection": "bounding-boxes",
    "image-segmentation": "mask",
    "image-to-text": "text",
    "text-to-image": "image",
    "video-classification": "label",
    "text-classification": "label",
    "token-classification": "token-labels",
    "question-answering": "text",
    "summarization": "text",
    "translation": "text",
    "text-generation": "text",
    "sentence-similarity": "similarity-score",
    "automatic-speech-recognition": "text",
    "audio-classification": "label",
    "text-to-speech": "audio",
    "time-series-forecasting": "time-series",
    "anomaly-detection": "anomaly-score",
    "tabular-classification": "label",
    "tabular-regression": "number",
    "zero-shot-classification": "label",
    "image-text-to-text": "text",
}

OUTPUTS: Final[tuple[str, ...]] = tuple(sorted(set(GOAL_OUTPUT.values())))

#: Free-text modality names -> canonical modality, keyed by ``norm_key`` (lower-case alphanumerics:
#: "Computer Vision" -> "computervision"). Upstream's Hub cover tags (cv, nlp) are aliases too.
MODALITY_ALIASES: Final[dict[str, str]] = {
    **{norm_key(m): m for m in MODALITIES},
    # image
    "images": "image",
    "img": "image",
    "cv": "image",
    "vision": "image",
    "computervision": "image",
    "picture": "image",
    "pictures": "image",
    "photo": "image",
    "photos": "image",
    "photograph": "image",
    "photographs": "image",
    "camera": "image",
    "visual": "image",
    "scan": "image",
    "scans": "image",
    # video
    "videos": "video",
    "clip": "video",
    "clips": "video",
    "footage": "video",
    "movie": "video",
    "movies": "video",
    # text
    "texts": "text",
    "nlp": "text",
    "naturallanguage": "text",
    "naturallanguageprocessing": "text",
    "language": "text",
    "document": "text",
    "documents": "text",
    "words": "text",
    # audio
    "speech": "audio",
    "sound": "audio",
    "sounds": "audio",
    "voice": "audio",
    "acoustic": "audio",
    "music": "audio",
    # time series
    "timeseries": "time-series",
    "ts": "time-series",
    "sensor": "time-series",
    "sensors": "time-series",
    "sensordata": "time-series",
    "signal": "time-series",
    "signals": "time-series",
    "telemetry": "time-series",
    "temporal": "time-series",
    "iot": "time-series",
    # tabular
    "table": "tabular",
    "tables": "tabular",
    "tablerow": "tabular",
    "csv": "tabular",
    "spreadsheet": "tabular",
    "structured": "tabular",
    "structureddata": "tabular",
    "relational": "tabular",
    "excel": "tabular",
    "dataframe": "tabular",
}

#: Other names people use for a goal (keys are ``norm_key`` forms); the goals' own names, with any
#: case, spaces or underscores, are accepted without being listed.
GOAL_ALIASES: Final[dict[str, str]] = {
    "imageclassifier": "image-classification",
    "detection": "object-detection",
    "objectdetector": "object-detection",
    "segmentation": "image-segmentation",
    "semanticsegmentation": "image-segmentation",
    "instancesegmentation": "image-segmentation",
    "captioning": "image-to-text",
    "imagecaptioning": "image-to-text",
    "ocr": "image-to-text",
    "imagegeneration": "text-to-image",
    "videoclassifier": "video-classification",
    "actionrecognition": "video-classification",
    "sentimentanalysis": "text-classification",
    "ner": "token-classification",
    "namedentityrecognition": "token-classification",
    "qa": "question-answering",
    "summarisation": "summarization",
    "machinetranslation": "translation",
    "conversational": "text-generation",
    "chatbot": "text-generation",
    "semanticsimilarity": "sentence-similarity",
    "semanticsearch": "sentence-similarity",
    "asr": "automatic-speech-recognition",
    "speechrecognition": "automatic-speech-recognition",
    "speechtotext": "automatic-speech-recognition",
    "tts": "text-to-speech",
    "speechsynthesis": "text-to-speech",
    "forecasting": "time-series-forecasting",
    "timeseriesforecast": "time-series-forecasting",
    "anomaly": "anomaly-detection",
    "outlierdetection": "anomaly-detection",
    "tabularclassifier": "tabular-classification",
    "regression": "tabular-regression",
    # embeddings are served by the sentence-similarity goal (Hugging Face's feature-extraction task
    # names the same encoders when they are used for their vectors)
    "featureextraction": "sentence-similarity",
    "embedding": "sentence-similarity",
    "embeddings": "sentence-similarity",
    "textembedding": "sentence-similarity",
    "textembeddings": "sentence-similarity",
    "zeroshot": "zero-shot-classification",
    "zeroshotclassifier": "zero-shot-classification",
    "vqa": "image-text-to-text",
    "visualquestionanswering": "image-text-to-text",
    "visionlanguage": "image-text-to-text",
    "vlm": "image-text-to-text",
    "multimodal": "image-text-to-text",
}

#: Metrics suggested per goal (answers ``metrics, ...`` requests). Chosen as the measures each
#: task's public benchmarks and the Hugging Face task pages report; names lower-case.
GOAL_METRICS: Final[dict[str, tuple[str, ...]]] = {
    "image-classification": ("accuracy", "top-5 accuracy", "f1", "precision", "recall"),
    "object-detection": ("map@0.5", "map@0.5:0.95", "precision", "recall"),
    "image-segmentation": ("mean iou", "dice", "pixel accuracy"),
    "image-to-text": ("bleu", "cider", "meteor", "cer"),
    "text-to-image": ("fid", "clip score", "inception score"),
    "video-classification": ("accuracy", "top-5 accuracy", "f1"),
    "text-classification": ("accuracy", "f1", "precision", "recall", "roc auc"),
    "token-classification": ("entity f1", "precision", "recall"),
    "question-answering": ("exact match", "f1"),
    "summarization": ("rouge-1", "rouge-2", "rouge-l", "bertscore"),
    "translation": ("bleu", "chrf", "ter", "comet"),
    "text-generation": ("perplexity", "bleu", "rouge-l"),
    "sentence-similarity": ("spearman correlation", "pearson correlation", "recall@k", "ndcg@10"),
    "automatic-speech-recognition": ("wer", "cer"),
    "audio-classification": ("accuracy", "f1", "map"),
    "text-to-speech": ("mos", "mel cepstral distortion", "wer"),
    "time-series-forecasting": ("mae", "rmse", "mape", "smape", "mase"),
    "anomaly-detection": ("roc auc", "pr auc", "f1", "precision@k"),
    "tabular-classification": ("accuracy", "f1", "roc auc", "log loss"),
    "tabular-regression": ("mae", "rmse", "r2", "mape"),
    "zero-shot-classification": ("accuracy", "f1", "precision", "recall"),
    "image-text-to-text": ("vqa accuracy", "anls", "exact match", "cider"),
}

_GOAL_KEYS: Final[dict[str, str]] = {norm_key(g): g for g in GOALS}
_OUTPUT_KEYS: Final[dict[str, str]] = {norm_key(o): o for o in OUTPUTS}


def resolve_modality(raw: str) -> str:
    """Canonical modality of a free-text modality (alias, any case), or ``""`` if none is named.

    The whole string is tried first ("Computer Vision"), then each word and each pair of adjacent
    words ("image data", "time series") left to right.
    """
    whole = norm_key(raw)
    if not whole:
        return ""
    if whole in MODALITY_ALIASES:
        return MODALITY_ALIASES[whole]
    parts = re.findall(r"[a-z0-9]+", raw.casefold())
    for i, word in enumerate(parts):
        pair = word + parts[i + 1] if i + 1 < len(parts) else ""
        if pair in MODALITY_ALIASES:
            return MODALITY_ALIASES[pair]
        if word in MODALITY_ALIASES:
            return MODALITY_ALIASES[word]
    return ""


def resolve_goal(raw: str) -> str:
    """Canonical goal of a goal name or alias (any case, spaces, underscores), or ``""``."""
    key = norm_key(raw)
    return _GOAL_KEYS.get(key) or GOAL_ALIASES.get(key, "")


def resolve_output(raw: str) -> str:
    """Canonical output kind (``OUTPUTS``) of a free-text name; modality names map to the output
    of the same name (``text``, ``image``, ``audio``, ``time-series``)."""
    key = norm_key(raw)
    if key in _OUTPUT_KEYS:
        return _OUTPUT_KEYS[key]
    modality = resolve_modality(raw)
    return modality if modality in OUTPUTS else ""


def close_goals(raw: str, n: int = 3) -> list[str]:
    """Up to ``n`` goal names closest in spelling to ``raw`` (for error messages)."""
    probe = raw.strip().casefold().replace("_", "-").replace(" ", "-")
    return difflib.get_close_matches(probe, GOALS, n=n, cutoff=0.45)


def unknown_goal_message(raw: str, where: str = "extra_data.goal") -> str:
    close = close_goals(raw)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"{where} {raw.strip()!r} is not a known goal; {hint}known goals: {', '.join(sorted(GOALS))}"


def goals_for_modality(modality: str) -> tuple[str, ...]:
    """Goals whose input may be ``modality`` (canonical), in ``GOALS`` order."""
    return tuple(g for g in GOALS if modality in GOAL_INPUTS[g])


def hint_fits(goal: str, modality: str) -> bool:
    """Whether a user's modality hint is consistent with ``goal``: the goal takes it as input, or
    produces it (a user may name the output, e.g. "image" for text-to-image)."""
    return modality in GOAL_INPUTS[goal] or modality == GOAL_OUTPUT[goal]
