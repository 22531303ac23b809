"""From a description (and the user's modality hint and goal, if any) to the encoder's answer.

Goal: ``extra_data.goal`` when given (validated against the vocabulary); otherwise the configured
backend's answer, the built-in classifier's when none is configured or it fails. The modality hint
enters as a prior (``backends.HINT_BOOST``).

Input modality, always one of the goal's possible inputs (``vocabulary.GOAL_INPUTS``):

1. the user's hint, when it is one of them;
2. the only one, when the goal has a single input modality (summarization -> text);
3. the backend's modality, when it gave one that fits;
4. otherwise the modality classifier's most probable among them (anomaly detection on "vibration
   readings" -> time-series, on "photos of fabric" -> image).

Below ``CLARIFY_THRESHOLD`` confidence the best goal is still answered, and
``needs_clarification`` lists the alternatives so a front end can ask the user.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final

from sustainml.config import EncoderSettings
from sustainml.workers.logic.encoder.backends import (
    Backend,
    BackendError,
    BuiltinBackend,
    Prediction,
    best_input,
    configured_backend,
)
from sustainml.workers.logic.encoder.keywords import extract_keywords
from sustainml.workers.logic.encoder.model import get_model
from sustainml.workers.logic.encoder.scoring import ScoringModel
from sustainml.workers.logic.encoder.vocabulary import (
    GOAL_INPUTS,
    GOALS,
    hint_fits,
    resolve_goal,
    resolve_modality,
    unknown_goal_message,
)

log = logging.getLogger(__name__)

#: Below this confidence the answer carries ``needs_clarification``. In 5-fold cross-validation on
#: the corpus (no hint), about 3 in 4 answers reached it and those were right about 90 % of the
#: time; the answers below it were right only about 60 % of the time (``sustainml eval encoder``).
CLARIFY_THRESHOLD: Final = 0.45

TOP_N: Final = 3


@dataclass(frozen=True)
class Encoding:
    """The encoder's answer for one task."""

    goal: str
    goal_source: str  # "user" or the backend's name ("builtin", "openai", "ollama", "embedding")
    modality: str
    modality_source: str  # "hint", "goal", "backend" or "text"
    confidence: float
    top_goals: list[tuple[str, float]]
    reason: str
    keywords: list[str]
    modality_hint: str  # the user's modality resolved to the vocabulary ("" if none or unknown)
    needs_clarification: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def extra(self) -> dict[str, Any]:
        """The fields as they go into ``MLModelMetadata.extra_data``."""
        out: dict[str, Any] = {
            "goal": self.goal,
            "goal_source": self.goal_source,
            "modality": self.modality,
            "modality_source": self.modality_source,
            "confidence": round(self.confidence, 4),
            "top_goals": [{"goal": g, "score": round(s, 4)} for g, s in self.top_goals],
            "reason": self.reason,
        }
        if self.needs_clarification is not None:
            out["needs_clarification"] = self.needs_clarification
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


def encode(
    text: str,
    modality: str = "",
    goal: str = "",
    backend: Backend | None = None,
    model: ScoringModel | None = None,
    keyword_text: str | None = None,
    settings: EncoderSettings | None = None,
) -> Encoding:
    """Encode one problem description.

    ``modality`` is the user's free-text modality (aliases accepted), ``goal`` the user's goal
    (overrides inference; ``ValueError`` if it is not in the vocabulary), ``backend`` forces a
    backend (default: the one ``settings`` name, see ``backends.py``), ``model`` forces a built-in
    model (default: the shared cached one), ``keyword_text`` the text to take key phrases from
    (default: ``text``); ``settings`` is the encoder section of the caller's settings (default: the
    process environment's). ``ValueError`` too when there is nothing to go on (no text,
    no goal, no modality).
    """
    model = model or get_model(settings)
    warnings: list[str] = []
    hint = resolve_modality(modality)
    if modality.strip() and not hint:
        warnings.append(f"modality {modality.strip()!r} is not a known modality or alias; ignored")
    builtin = BuiltinBackend(model)
    keywords = extract_keywords(text if keyword_text is None else keyword_text, model.idf, model.default_idf)

    if goal.strip():
        chosen_goal = resolve_goal(goal)
        if not chosen_goal:
            raise ValueError(unknown_goal_message(goal))
        chosen_modality, modality_source = _modality(chosen_goal, hint, "", builtin, text)
        return Encoding(
            goal=chosen_goal,
            goal_source="user",
            modality=chosen_modality,
            modality_source=modality_source,
            confidence=1.0,
            top_goals=[(chosen_goal, 1.0)],
            reason="goal given by the user (extra_data.goal)",
            keywords=keywords,
            modality_hint=hint,
            warnings=warnings,
        )

    if not text.strip() and not hint:
        raise ValueError(
            "nothing to infer the goal from: the problem description and definition are empty and "
            "neither a modality nor extra_data.goal is given"
        )

    base = builtin.predict(text, hint)
    prediction, source = base, builtin.name
    try:
        configured = backend if backend is not None else configured_backend(settings)
    except BackendError as exc:
        warnings.append(f"{exc}; the built-in classifier answered")
        log.warning("encoder backend misconfigured: %s", exc)
        configured = None
    if configured is not None and configured.name != builtin.name:
        try:
            prediction = configured.predict(text, hint)
            source = configured.name
            if prediction.goal not in GOALS:
                raise BackendError(f"{configured.name} backend answered an unknown goal {prediction.goal!r}")
        except Exception as exc:  # a plugged backend is foreign code: any failure falls back
            warnings.append(f"{exc}; the built-in classifier answered")
            log.warning(
                "encoder backend %s failed (%s: %s); falling back", configured.name, type(exc).__name__, exc
            )
            prediction, source = base, builtin.name

    chosen_goal = prediction.goal
    scores = prediction.scores or base.scores  # an LLM gives no distribution: the built-in's ranks the rest
    confidence = prediction.confidence if prediction.confidence is not None else scores.get(chosen_goal, 0.0)
    ranked = [g for g in sorted(scores, key=lambda g: (-scores[g], GOALS.index(g))) if g != chosen_goal]
    top = [(chosen_goal, confidence), *((g, scores[g]) for g in ranked[: TOP_N - 1])]
    reason = prediction.reason + _hint_note(prediction, hint)
    chosen_modality, modality_source = _modality(chosen_goal, hint, prediction.modality, builtin, text)
    clarification = None
    if confidence < CLARIFY_THRESHOLD:
        alternatives = [g for g, _ in top]
        clarification = {
            "question": f"Is the goal {alternatives[0]}, or rather {' or '.join(alternatives[1:])}? "
            "Set extra_data.goal or describe the problem in more detail.",
            "alternatives": alternatives,
            "threshold": CLARIFY_THRESHOLD,
        }
    return Encoding(
        goal=chosen_goal,
        goal_source=source,
        modality=chosen_modality,
        modality_source=modality_source,
        confidence=confidence,
        top_goals=top,
        reason=reason,
        keywords=keywords,
        modality_hint=hint,
        needs_clarification=clarification,
        warnings=warnings,
    )


def _hint_note(prediction: Prediction, hint: str) -> str:
    if not hint or not prediction.scores:
        return ""
    if not hint_fits(prediction.goal, hint):
        return f"; the description outweighed the modality hint '{hint}'"
    if prediction.text_only_goal and prediction.text_only_goal != prediction.goal:
        return f"; the modality hint '{hint}' decided it over {prediction.text_only_goal}"
    return f"; consistent with the modality hint '{hint}'"


def _modality(goal: str, hint: str, from_backend: str, builtin: BuiltinBackend, text: str) -> tuple[str, str]:
    inputs = GOAL_INPUTS[goal]
    if hint in inputs:
        return hint, "hint"
    if len(inputs) == 1:
        return inputs[0], "goal"
    if from_backend in inputs:
        return from_backend, "backend"
    return best_input(goal, builtin.modality_scores(text)), "text"
