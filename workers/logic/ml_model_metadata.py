"""ML_MODEL_METADATA (task encoder): the goal of the problem and its keywords.

Goal: ``extra_data.goal`` when the user gave one; otherwise every goal of ``tables.GOAL_TRIGGERS``
scores the sum of the weights of its triggers found in problem_short_description +
problem_definition, goals of the user's modality get ``MODALITY_BONUS``, and the highest total among
goals with at least one trigger wins (ties: ``tables.GOALS`` order). No trigger at all: the first
goal of the modality (or ``FALLBACK_GOAL``), and ``reason`` says it was a guess.

Keywords: up to ``MAX_KEYWORDS`` content words of the same text (stopwords, numbers and words
shorter than 3 letters dropped), most frequent first, ties by first appearance.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from sustainml.messages.types import MLModelMetadata, NodeStatus, RequestType, ResponseType, UserInput
from sustainml.workers.logic.common import norm_key, reply, reply_error, reply_unsupported, words
from sustainml.workers.logic.tables import (
    FALLBACK_GOAL,
    GOAL_TRIGGERS,
    GOALS,
    MAX_KEYWORDS,
    MODALITY_ALIASES,
    MODALITY_BONUS,
    MODALITY_GOALS,
    STOPWORDS,
)

# Each trigger anchored at a word start and extended to the end of the word, so the match text is
# the whole word the user wrote ("summar" -> "summarize").
_TRIGGERS: dict[str, tuple[tuple[re.Pattern[str], float], ...]] = {
    goal: tuple((re.compile(rf"\b(?:{frag})\w*"), weight) for frag, weight in triggers)
    for goal, triggers in GOAL_TRIGGERS.items()
}


def task_callback(user_input: UserInput, node_status: NodeStatus, ml_model_metadata: MLModelMetadata) -> None:
    incoming = user_input.get_extra()
    text = " ".join(
        part.strip()
        for part in (user_input.problem_short_description, user_input.problem_definition)
        if part.strip()
    )
    modality = resolve_modality(user_input.modality)

    user_goal = incoming.get("goal")
    if isinstance(user_goal, str) and user_goal.strip():
        goal = user_goal.strip().casefold()
        source = "user"
        reason = "goal given by the user (extra_data.goal)"
        if goal not in GOALS:
            reason += "; it is not one of the goals this node knows, so no catalogue model may match it"
        scores: dict[str, float] = {}
    else:
        goal, source, reason, scores = infer_goal(text, modality)

    ml_model_metadata.keywords = extract_keywords(text)
    ml_model_metadata.ml_model_metadata = [goal]

    out: dict[str, Any] = {}
    # Upstream pass-through: model_selected and type only when non-empty, model_restrains always.
    model_selected = incoming.get("model_selected")
    if model_selected:
        out["model_selected"] = model_selected
    restrains = incoming.get("model_restrains")
    out["model_restrains"] = list(restrains) if isinstance(restrains, list | tuple) else []
    type_limiter = incoming.get("type")
    if type_limiter:
        out["type"] = type_limiter
    out["problem_short_description"] = user_input.problem_short_description
    out["goal"] = goal
    out["goal_source"] = source
    out["modality"] = modality
    out["reason"] = reason
    out["goal_scores"] = scores
    ml_model_metadata.set_extra(out)


def configuration_callback(req: RequestType, res: ResponseType) -> None:
    request = req.configuration.strip()
    if request == "modality":
        reply(req, res, {"modalities": ", ".join(sorted(MODALITY_GOALS)), "goals": ", ".join(sorted(GOALS))})
        return
    head, sep, arg = request.partition(",")
    if head.strip() == "problem_from_modality" and sep:
        modality = resolve_modality(arg)
        if not modality:
            reply_error(
                req, res, f"Unknown modality {arg.strip()!r}; known: {', '.join(sorted(MODALITY_GOALS))}"
            )
            return
        reply(req, res, {"goals": ", ".join(sorted(MODALITY_GOALS[modality]))})
        return
    reply_unsupported(req, res)


def resolve_modality(raw: str) -> str:
    """Canonical modality (a ``MODALITY_GOALS`` key) of a free-text modality, or ``""``."""
    whole = norm_key(raw)
    if whole in MODALITY_ALIASES:
        return MODALITY_ALIASES[whole]
    parts = re.findall(r"[a-z0-9]+", raw.casefold())
    for i, word in enumerate(parts):
        pair = word + parts[i + 1] if i + 1 < len(parts) else ""
        if pair in MODALITY_ALIASES:  # "time series" -> "timeseries"
            return MODALITY_ALIASES[pair]
        if word in MODALITY_ALIASES:
            return MODALITY_ALIASES[word]
    return ""


def infer_goal(text: str, modality: str) -> tuple[str, str, str, dict[str, float]]:
    """(goal, source, reason, scores) for a description; see the module docstring for the rule."""
    lowered = text.casefold()
    in_modality = set(MODALITY_GOALS.get(modality, ()))
    scores: dict[str, float] = {}
    hits: dict[str, list[str]] = {}
    for goal in GOALS:
        found: list[str] = []
        score = 0.0
        for pattern, weight in _TRIGGERS[goal]:
            match = pattern.search(lowered)
            if match:
                score += weight
                found.append(f"'{match.group(0)}' (+{weight:g})")
        if score > 0:
            scores[goal] = score + (MODALITY_BONUS if goal in in_modality else 0.0)
            hits[goal] = found

    if scores:
        best = max(GOALS, key=lambda g: (scores.get(g, float("-inf")), -GOALS.index(g)))
        reason = "keywords " + ", ".join(hits[best])
        if best in in_modality:
            reason += f"; modality {modality} (+{MODALITY_BONUS:g})"
        return best, "keywords", reason, scores

    if modality:
        guess = MODALITY_GOALS[modality][0]
        return guess, "modality_default", f"no goal keyword matched; best guess for modality {modality}", {}
    return (
        FALLBACK_GOAL,
        "fallback",
        "no goal keyword matched and the modality is unknown; generic best guess",
        {},
    )


def extract_keywords(text: str) -> list[str]:
    """Up to ``MAX_KEYWORDS`` content words, most frequent first, ties by first appearance."""
    tokens = [
        w for w in words(text) if len(w) >= 3 and w not in STOPWORDS and not w.replace("-", "").isdigit()
    ]
    counts = Counter(tokens)
    first: dict[str, int] = {}
    for i, w in enumerate(tokens):
        first.setdefault(w, i)
    ranked = sorted(counts, key=lambda w: (-counts[w], first[w]))
    return ranked[:MAX_KEYWORDS]
