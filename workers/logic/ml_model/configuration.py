"""ML_MODEL configuration requests: ``models``, ``model_from_goal``, ``hf_search``."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from sustainml.catalogue import ModelEntry, models
from sustainml.catalogue.schema import model_fold as fold
from sustainml.config import EncoderSettings, EstimationSettings
from sustainml.estimate import roofline as rl
from sustainml.estimate.devices import resolve_device
from sustainml.messages.types import (
    RequestType,
    ResponseType,
)
from sustainml.workers.logic.common import (
    estimation_settings,
    reply,
    reply_error,
    words,
)
from sustainml.workers.logic.ml_model.rules import HF_SEARCH_DEFAULT_LIMIT, MAX_LISTED, MODEL_CONFIG_PREFIX

log = logging.getLogger(__name__)

def configuration_callback(
    req: RequestType,
    res: ResponseType,
    *,
    settings: EstimationSettings | None = None,
    encoder: EncoderSettings | None = None,
) -> None:
    """``encoder``: the task encoder's settings ``hf_search`` infers the goal with (default: the
    process environment's)."""
    text = req.configuration.strip()
    keyword, sep, rest = text.partition(",")
    keyword = keyword.strip()
    if text == "models":
        reply(req, res, {"models": ", ".join(sorted(m.name for m in models()))})
    elif keyword == "model_from_goal" and sep:
        _model_from_goal(req, res, [p.strip() for p in rest.split(",")], estimation_settings(settings))
    elif keyword == "hf_search" and sep:
        _hf_search(req, res, rest, encoder)
    else:
        reply_error(req, res, f"Unsupported configuration request: {req.configuration}")
        body = json.loads(res.configuration)
        res.configuration = json.dumps({"models": "", **body})  # upstream's reply key, plus the reason


def _unets() -> list[ModelEntry]:
    """Segmentation U-Nets (upstream's ``U_NET_MODELS``)."""
    return [m for m in models().for_goal("image-segmentation") if "unet" in fold(m.name)]


def _model_from_goal(
    req: RequestType, res: ResponseType, args: list[str], settings: EstimationSettings
) -> None:
    goal = args[0] if args else ""
    hw_name = args[1] if len(args) > 1 else ""
    family = args[2] if len(args) > 2 else ""
    chosen = _unets() if goal.casefold() in ("u_net_models", "unet_models") else models().for_goal(goal)
    if hw_name:
        try:
            device = resolve_device(hw_name, settings.data_dir)
        except ValueError as exc:
            reply_error(req, res, str(exc))
            return
        if family and "fpga" in hw_name.casefold() and fold(family) in ("cnns", "cnn"):
            chosen = _unets() or chosen  # upstream: CNNs on an FPGA list the U-Net models
        # weights at the precision each model is released in (fp32 for the small graph-built ones)
        chosen = [
            m
            for m in chosen
            if m.parameters * rl.PRECISION_BYTES[m.default_precision] / 1e6 <= device.memory_gb * 1000.0
        ]
    if family:
        want = fold(family).removesuffix("s")
        chosen = [m for m in chosen if want and want in fold(m.family)]
    names = sorted({m.name for m in chosen})
    if not names:
        reply_error(
            req,
            res,
            f"No catalogue model for goal {goal!r}"
            + (f" on {hw_name}" if hw_name else "")
            + (f" of family {family!r}" if family else ""),
        )
        return
    reply(req, res, {"models": ", ".join(names[:MAX_LISTED])})


def _tooltip(m: ModelEntry) -> str:
    q = m.quality
    return (
        f"{m.name} ({m.family}, {m.year}): {m.parameters / 1e6:.1f} M parameters, "
        f"{m.macs / 1e9:.2f} GMACs at input {'x'.join(str(d) for d in m.input_shape)}; "
        f"{q.metric} {q.value:g} on {q.dataset}; licence {m.licence}"
    )


def _card(m: ModelEntry, score: float, goal: str) -> dict[str, Any]:
    author = (
        m.source.split("/")[3]
        if m.source.startswith("https://github.com/") and m.source.count("/") >= 4
        else ""
    )
    return {
        "model_id": m.name,
        "author": author,
        "downloads": 0,
        "likes": 0,
        "pipeline_tag": goal if goal in m.goals else m.goals[0],
        "library_name": "analytic" if m.analytic else "onnx",
        "tags": sorted({*m.goals, m.modality, m.family, *m.aliases}),
        "cardData": {
            "license": m.licence,
            "quality": {"metric": m.quality.metric, "value": m.quality.value, "dataset": m.quality.dataset},
        },
        "card_text": _tooltip(m) + f". Source: {m.source}",
        "sha": "",
        "lastModified": str(m.year),
        "url": m.source if m.source.startswith("http") else "",
        "score": round(score, 6),
        "tooltip": _tooltip(m),
    }


def goal_probabilities(
    description: str, encoder: EncoderSettings | None = None
) -> tuple[dict[str, float], str]:
    """Goal -> probability from the task encoder, or ({}, reason) when it is not available."""
    try:
        from sustainml.workers.logic.encoder import encode
    except ImportError as exc:
        return {}, f"task encoder not available ({exc}); word overlap only"
    try:
        enc = encode(description, settings=encoder)
    except Exception as exc:  # the encoder is another module: fall back and say so
        log.warning("hf_search: the task encoder failed (%s); word overlap only", exc)
        return {}, f"task encoder failed ({type(exc).__name__}); word overlap only"
    return {g: float(s) for g, s in enc.top_goals}, "task encoder"


def _model_words(m: ModelEntry) -> set[str]:
    text = " ".join([m.name, m.family, " ".join(m.goals), m.modality, " ".join(m.aliases), m.quality.dataset])
    return set(words(text.replace("-", " ")))


def search(
    description: str, limit: int, encoder: EncoderSettings | None = None
) -> tuple[list[tuple[ModelEntry, float]], str, str]:
    """(ranked (model, score), inferred goal, method): score = 0.7 x P(goal) + 0.3 x word overlap."""
    probs, method = goal_probabilities(description, encoder)
    query = set(words(description.replace("-", " ")))
    scored: list[tuple[ModelEntry, float]] = []
    for m in models():
        mw = _model_words(m)
        overlap = len(query & mw) / math.sqrt(len(query) * len(mw)) if query and mw else 0.0
        goal_p = max((probs.get(g, 0.0) for g in m.goals), default=0.0)
        score = 0.7 * goal_p + 0.3 * overlap if probs else overlap
        if score > 0:
            scored.append((m, score))
    scored.sort(key=lambda t: (-t[1], t[0].macs, t[0].name))
    goal = max(probs, key=lambda g: (probs[g], g)) if probs else (scored[0][0].goals[0] if scored else "")
    return scored[:limit], goal, method


def _hf_search(req: RequestType, res: ResponseType, rest: str, encoder: EncoderSettings | None) -> None:
    description, limit = rest, HF_SEARCH_DEFAULT_LIMIT
    head, sep, tail = rest.rpartition(",")
    if sep and tail.strip().lstrip("-").isdigit():
        description, limit = head, int(tail.strip())
    description = description.strip()
    if description.startswith(MODEL_CONFIG_PREFIX):
        model_id = description[len(MODEL_CONFIG_PREFIX) :].strip()
        entry = models().find(model_id)
        if entry is None:
            reply(
                req,
                res,
                {"model_id": model_id, "tooltip": "", "error": f"unknown catalogue model {model_id!r}"},
            )
        else:
            reply(req, res, {"model_id": entry.name, "tooltip": _tooltip(entry)})
        return
    if not description:
        reply(req, res, {"models": [], "error": "hf_search needs a description"})
        return
    if limit < 1:
        reply(req, res, {"models": [], "error": f"limit must be >= 1, got {limit}"})
        return
    found, goal, method = search(description, min(limit, MAX_LISTED), encoder)
    if not found:
        reply(
            req,
            res,
            {
                "models": [],
                "error": "no catalogue model matches the description",
                "task": goal,
                "pipeline_tag": goal,
                "candidates": 0,
            },
        )
        return
    reply(
        req,
        res,
        {
            "models": [_card(m, s, goal) for m, s in found],
            "task": goal,
            "pipeline_tag": goal,
            "candidates": len(models()),
            "method": method,
        },
    )
