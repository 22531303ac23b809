"""Pluggable goal backends: the built-in classifier (default), an LLM endpoint, sentence embeddings.

A backend implements :class:`Backend`: ``predict(text, modality_hint) -> Prediction``, raising
:class:`BackendError` (or anything else) when it cannot answer. The encoder always computes the
built-in prediction too (about a millisecond) and falls back to it, with a line in
``extra_data.warnings``, whenever another backend fails.

Configuration: the ``encoder`` section of the settings (:class:`~sustainml.config.EncoderSettings`)
a node hands to its stage logic; callers without settings get the process environment's, re-read
when a variable changes. The variables:

===============================  =================================================================
``SUSTAINML_ENCODER_BACKEND``    ``builtin`` (default), ``openai``, ``ollama`` or ``embedding``
``SUSTAINML_ENCODER_URL``        LLM base URL: ``http://host:8000/v1`` (OpenAI-compatible; the
                                 ``/chat/completions`` path is appended unless present) or
                                 ``http://host:11434`` (Ollama; ``/api/chat`` appended)
``SUSTAINML_ENCODER_MODEL``      LLM model name (Ollama default ``llama3``, as upstream); for
                                 ``embedding``, the sentence-transformers model name or local path
``SUSTAINML_ENCODER_TIMEOUT``    seconds per LLM request (default 10)
``SUSTAINML_ENCODER_API_KEY``    optional bearer token for OpenAI-compatible servers
===============================  =================================================================

**LLM backends** send one chat request (temperature 0) listing the goal and modality vocabulary and
asking for a JSON object ``{"goal", "modality", "confidence", "reason"}``; the goal must resolve to
a vocabulary name (a bare goal name in a prose answer is accepted too), anything else is a failure.

**Embedding backend**: an :class:`Embedder` turns texts into vectors; the backend embeds the shipped
corpus once, scores each goal by the mean cosine similarity of the description to that goal's
``EMBEDDING_TOP_K`` nearest examples, and turns the scores into probabilities with a softmax at
temperature ``EMBEDDING_TEMPERATURE``. The shipped embedder, :class:`SentenceTransformerEmbedder`,
needs the optional ``sentence-transformers`` package (not a dependency of this project); without it
the backend fails cleanly with a message saying so, and the built-in classifier answers. Any other
embedder (an ONNX model, a remote service) can be plugged in through
:func:`set_backend` / ``EmbeddingBackend(my_embedder)``.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from sustainml.config import ConfigError, EncoderSettings, environment_settings
from sustainml.workers.logic.encoder.keywords import stopwords
from sustainml.workers.logic.encoder.model import Example, load_corpus
from sustainml.workers.logic.encoder.scoring import FeatureRow, ScoringModel
from sustainml.workers.logic.encoder.vocabulary import (
    GOAL_INPUTS,
    GOALS,
    MODALITIES,
    hint_fits,
    resolve_goal,
    resolve_modality,
)

log = logging.getLogger(__name__)

BACKEND_ENV: Final = "SUSTAINML_ENCODER_BACKEND"
URL_ENV: Final = "SUSTAINML_ENCODER_URL"
MODEL_ENV: Final = "SUSTAINML_ENCODER_MODEL"
TIMEOUT_ENV: Final = "SUSTAINML_ENCODER_TIMEOUT"
API_KEY_ENV: Final = "SUSTAINML_ENCODER_API_KEY"

DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_OLLAMA_MODEL: Final = "llama3"
DEFAULT_EMBEDDING_MODEL: Final = "sentence-transformers/all-MiniLM-L6-v2"

#: A user's modality hint multiplies the probability of every goal that takes that modality as
#: input by ``HINT_BOOST`` before renormalising: a prior saying "the user is 4x more likely to mean
#: a goal of the modality they named". Strong enough to decide between goals the text leaves
#: close, too weak to override a description that clearly says otherwise. Chosen by
#: cross-validation with correct and with deliberately wrong hints (``evaluate.py``; 2 gained too
#: little with correct hints, 8 lost too much with wrong ones). The field names the input's
#: modality, but users sometimes name the output ("image" for text-to-image): goals that produce
#: the hinted modality get the weaker ``OUTPUT_HINT_BOOST``.
HINT_BOOST: Final = 4.0
OUTPUT_HINT_BOOST: Final = 2.0

#: Goal and input modality are decided together: the built-in backend multiplies the goal
#: classifier's P(goal) by P(m)^MODALITY_WEIGHT, m the most probable of the goal's possible inputs
#: under the modality classifier, and renormalises. The modality classifier reads the data nouns
#: ("photos", "EEG recordings", "rows of a CRM export") with nothing else to explain, so it
#: vetoes goals whose input the description does not mention. When the user names a modality,
#: their hint takes this factor's place. 0.5 chosen by 5-fold
#: cross-validation on the corpus (0.25 to 1.0 all helped, 0.5 most; 2 and above helped less).
MODALITY_WEIGHT: Final = 0.5

EMBEDDING_TOP_K: Final = 3
EMBEDDING_TEMPERATURE: Final = 0.05

_REASON_WORDS: Final = 3
_MAX_LLM_REASON: Final = 200


class BackendError(RuntimeError):
    """A backend cannot answer (misconfigured, unreachable, timed out, unusable answer).

    The text ends up in logs and in task results (the fallback reason), so URL passwords and
    ``api_key`` (the backend's, when it has one) are masked here, whatever the endpoint echoed back."""

    def __init__(self, message: str, api_key: str | None = None) -> None:
        from sustainml.redact import redact_text

        super().__init__(redact_text(message, api_key))


@dataclass(frozen=True)
class Prediction:
    """A backend's answer. ``scores`` are per-goal probabilities when the backend has them (after
    the modality hint); ``confidence`` is ``None`` when the backend cannot say; ``modality`` is
    ``""`` when the backend leaves the input modality to the encoder."""

    goal: str
    confidence: float | None
    reason: str
    scores: dict[str, float] = field(default_factory=dict)
    modality: str = ""
    text_only_goal: str = ""  # best goal before the modality hint (built-in/embedding backends)


@runtime_checkable
class Backend(Protocol):
    name: str

    def predict(self, text: str, modality_hint: str) -> Prediction: ...


def apply_hint(scores: Mapping[str, float], hint: str) -> dict[str, float]:
    """``scores`` with goals fitting the modality ``hint`` boosted (see ``HINT_BOOST``), renormalised."""
    if not hint:
        return dict(scores)
    boosted = {g: s * _hint_factor(g, hint) for g, s in scores.items()}
    total = sum(boosted.values())
    return {g: s / total for g, s in boosted.items()} if total > 0 else boosted


def _hint_factor(goal: str, hint: str) -> float:
    if hint in GOAL_INPUTS[goal]:
        return HINT_BOOST
    return OUTPUT_HINT_BOOST if hint_fits(goal, hint) else 1.0


def best_input(goal: str, modalities: Mapping[str, float]) -> str:
    """The most probable of ``goal``'s possible input modalities (ties: vocabulary order)."""
    inputs = GOAL_INPUTS[goal]
    return max(inputs, key=lambda m: (modalities.get(m, 0.0), -inputs.index(m)))


def joint_scores(goals: Mapping[str, float], modalities: Mapping[str, float]) -> dict[str, float]:
    """P(goal) x P(best input of the goal)^``MODALITY_WEIGHT``, renormalised (see ``MODALITY_WEIGHT``)."""
    if not modalities:
        return dict(goals)
    joint = {
        g: p * modalities.get(best_input(g, modalities), 0.0) ** MODALITY_WEIGHT for g, p in goals.items()
    }
    total = sum(joint.values())
    return {g: s / total for g, s in joint.items()} if total > 0 else dict(goals)


def best_goal(scores: Mapping[str, float]) -> str:
    """Highest score; ties broken by vocabulary order."""
    return max(GOALS, key=lambda g: (scores.get(g, -math.inf), -GOALS.index(g)))


# ------------------------------------------------------------------------------------------------
# built-in
# ------------------------------------------------------------------------------------------------


class BuiltinBackend:
    """The TF-IDF + logistic-regression classifier of ``model.py``."""

    name = "builtin"

    def __init__(self, model: ScoringModel) -> None:
        self.model = model

    def predict(self, text: str, modality_hint: str) -> Prediction:
        x = self.model.features(text)
        probs = self.model.goal_probabilities(x)
        modalities = self._modality_probabilities(x)
        plain = {g: float(p) for g, p in zip(self.model.goals, probs, strict=True)}
        raw = joint_scores(plain, modalities)
        # A modality the user named replaces the one read from the text (HINT_BOOST below).
        scores = apply_hint(plain, modality_hint) if modality_hint else raw
        goal = best_goal(scores)
        return Prediction(
            goal=goal,
            confidence=scores[goal],
            reason=self._reason(text, x, goal, modalities),
            scores=scores,
            text_only_goal=best_goal(raw),
        )

    def modality_scores(self, text: str) -> dict[str, float]:
        return self._modality_probabilities(self.model.features(text))

    def _modality_probabilities(self, x: FeatureRow) -> dict[str, float]:
        probs = self.model.modality_probabilities(x)
        return {m: float(p) for m, p in zip(self.model.modalities, probs, strict=True)}

    def _reason(self, text: str, x: FeatureRow, goal: str, modalities: Mapping[str, float]) -> str:
        modality = best_input(goal, modalities)
        by_goal, by_modality = self.model.explain(text, x, goal, modality)
        goal_words = self._deciding(by_goal)
        if not goal_words:
            reason = f"no word of the description is specific to {goal}; chosen from the prior and hint"
        else:
            reason = f"{goal_words} point to {goal}"
        modality_words = self._deciding(by_modality)
        if modality_words:
            reason += f"; {modality_words} point to {modality} input"
        return reason

    @staticmethod
    def _deciding(contributions: Sequence[tuple[str, float]]) -> str:
        stop = stopwords()
        # function words carry weight but explain nothing
        positive = [(w, s) for w, s in contributions if s > 0.05 and w not in stop]
        return ", ".join(f"'{w}' (+{s:.2f})" for w, s in positive[:_REASON_WORDS])


# ------------------------------------------------------------------------------------------------
# LLM (OpenAI-compatible chat completions, Ollama chat)
# ------------------------------------------------------------------------------------------------

LLMApi = Literal["openai", "ollama"]

_SYSTEM_PROMPT: Final = (
    "You classify descriptions of machine-learning problems. Choose the one goal that fits best "
    "and the modality of the model's input. Answer with one JSON object and nothing else: "
    '{"goal": "<goal>", "modality": "<modality>", "confidence": <number 0..1>, '
    '"reason": "<one short sentence>"}.\n'
    f"Goals: {', '.join(GOALS)}.\nModalities: {', '.join(MODALITIES)}."
)


class LLMBackend:
    """Asks a chat model for the goal. ``api`` selects the request/response shape."""

    def __init__(
        self,
        api: LLMApi,
        url: str,
        model: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        api_key: str = "",
    ) -> None:
        if not url.strip():
            raise BackendError(f"{api} backend: {URL_ENV} is not set")
        if not model.strip():
            raise BackendError(f"{api} backend: {MODEL_ENV} is not set")
        self.name: str = api
        self.api: LLMApi = api
        self.model = model.strip()
        self.timeout = timeout
        self.api_key = api_key
        base = url.strip().rstrip("/")
        suffix = "/chat/completions" if api == "openai" else "/api/chat"
        self.endpoint = base if base.endswith(suffix) else base + suffix

    def _body(self, text: str, modality_hint: str) -> dict[str, Any]:
        user = (
            f"Problem description: {text}\n"
            f"Modality named by the user (a hint; may be wrong or empty): {modality_hint or '(none)'}"
        )
        messages = [{"role": "system", "content": _SYSTEM_PROMPT}, {"role": "user", "content": user}]
        if self.api == "openai":
            return {"model": self.model, "messages": messages, "temperature": 0}
        return {
            "model": self.model,
            "messages": messages,
            "stream": False,
            "format": "json",
            "options": {"temperature": 0},
        }

    def predict(self, text: str, modality_hint: str) -> Prediction:
        import httpx  # here: only an LLM backend needs an HTTP client (~7 MB resident)

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            response = httpx.post(
                self.endpoint, json=self._body(text, modality_hint), headers=headers, timeout=self.timeout
            )
        except httpx.TimeoutException as exc:
            raise BackendError(
                f"{self.name} backend: no answer from {self.endpoint} within {self.timeout:g} s", self.api_key
            ) from exc
        except httpx.HTTPError as exc:
            raise BackendError(
                f"{self.name} backend: request to {self.endpoint} failed: {exc}", self.api_key
            ) from exc
        if response.status_code != 200:
            raise BackendError(
                f"{self.name} backend: {self.endpoint} answered HTTP {response.status_code}: "
                f"{response.text[:200]}",
                self.api_key,
            )
        try:
            payload = response.json()
            content = (
                payload["choices"][0]["message"]["content"]
                if self.api == "openai"
                else payload["message"]["content"]
            )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendError(
                f"{self.name} backend: unexpected response shape: {response.text[:200]}", self.api_key
            ) from exc
        if not isinstance(content, str):
            raise BackendError(f"{self.name} backend: the message content is not text", self.api_key)
        return self._parse(content)

    def _parse(self, content: str) -> Prediction:
        answer: dict[str, Any] = {}
        match = re.search(r"\{.*\}", content, re.DOTALL)
        if match:
            try:
                parsed = json.loads(match.group(0))
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                answer = parsed
        goal = resolve_goal(str(answer.get("goal", "")))
        if not goal:  # prose answer: accept it if it names exactly one goal
            named = [g for g in GOALS if re.search(rf"\b{re.escape(g)}\b", content.casefold())]
            if len(named) == 1:
                goal = named[0]
        if not goal:
            raise BackendError(
                f"{self.name} backend: the answer names no known goal: {content[:200]!r}", self.api_key
            )
        confidence: float | None = None
        raw_conf = answer.get("confidence")
        if isinstance(raw_conf, int | float) and not isinstance(raw_conf, bool) and math.isfinite(raw_conf):
            confidence = min(1.0, max(0.0, float(raw_conf)))
        modality = resolve_modality(str(answer.get("modality", "")))
        if modality not in GOAL_INPUTS[goal]:
            modality = ""
        why = " ".join(str(answer.get("reason", "")).split())[:_MAX_LLM_REASON]
        reason = (
            f"{self.name} model {self.model}: {why}"
            if why
            else f"chosen by the {self.name} model {self.model}"
        )
        return Prediction(goal=goal, confidence=confidence, reason=reason, modality=modality)


# ------------------------------------------------------------------------------------------------
# sentence embeddings
# ------------------------------------------------------------------------------------------------

Matrix = npt.NDArray[np.float64]


@runtime_checkable
class Embedder(Protocol):
    """Texts -> an (n, d) array of embeddings (any scale: the backend normalises them)."""

    def embed(self, texts: Sequence[str]) -> Matrix: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model (optional package ``sentence-transformers``, not installed by
    this project). Loading fails with :class:`BackendError` when the package is missing."""

    def __init__(self, model_name: str = DEFAULT_EMBEDDING_MODEL) -> None:
        try:
            module = importlib.import_module("sentence_transformers")
        except ImportError as exc:
            raise BackendError(
                "embedding backend: the optional package 'sentence-transformers' is not installed "
                "(pip install sentence-transformers)"
            ) from exc
        try:
            self._model = module.SentenceTransformer(model_name)
        except Exception as exc:  # missing weights, no network for a download ...
            raise BackendError(f"embedding backend: cannot load model {model_name!r}: {exc}") from exc

    def embed(self, texts: Sequence[str]) -> Matrix:
        return np.asarray(self._model.encode(list(texts)), dtype=np.float64)


def _normalise(m: Matrix) -> Matrix:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    out: Matrix = m / np.where(norms == 0, 1.0, norms)
    return out


class EmbeddingBackend:
    """Nearest corpus examples in an embedding space (see the module docstring)."""

    name = "embedding"

    def __init__(self, embedder: Embedder, examples: Sequence[Example] | None = None) -> None:
        self.embedder = embedder
        self._examples = list(examples) if examples is not None else None
        self._matrix: Matrix | None = None
        self._lock = threading.Lock()

    def _corpus(self) -> tuple[list[Example], Matrix]:
        with self._lock:
            if self._examples is None:
                self._examples = load_corpus()
            if self._matrix is None:
                matrix = self.embedder.embed([e.text for e in self._examples])
                if matrix.ndim != 2 or matrix.shape[0] != len(self._examples):
                    raise BackendError(f"embedding backend: embedder returned shape {matrix.shape}")
                self._matrix = _normalise(matrix)
            return self._examples, self._matrix

    def predict(self, text: str, modality_hint: str) -> Prediction:
        examples, matrix = self._corpus()
        query = _normalise(np.asarray(self.embedder.embed([text]), dtype=np.float64).reshape(1, -1))
        if query.shape[1] != matrix.shape[1]:
            raise BackendError("embedding backend: query and corpus embeddings differ in size")
        sims = (matrix @ query[0]).astype(np.float64)
        per_goal: dict[str, float] = {}
        nearest: dict[str, int] = {}
        for goal in GOALS:
            idx = [i for i, e in enumerate(examples) if e.goal == goal]
            if not idx:
                continue
            ranked = sorted(idx, key=lambda i: -sims[i])[:EMBEDDING_TOP_K]
            per_goal[goal] = float(np.mean(sims[ranked]))
            nearest[goal] = ranked[0]
        top = max(per_goal.values())
        exp = {g: math.exp((s - top) / EMBEDDING_TEMPERATURE) for g, s in per_goal.items()}
        total = sum(exp.values())
        raw = {g: v / total for g, v in exp.items()}
        scores = apply_hint(raw, modality_hint)
        goal = best_goal(scores)
        closest = examples[nearest[goal]]
        reason = f"closest corpus example for {goal}: {closest.text!r} (cosine {sims[nearest[goal]]:.2f})"
        return Prediction(
            goal=goal, confidence=scores[goal], reason=reason, scores=scores, text_only_goal=best_goal(raw)
        )


# ------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------

_configured_lock = threading.Lock()
_configured: dict[tuple[str, ...], Backend] = {}
_override: Backend | None = None


def set_backend(backend: Backend | None) -> None:
    """Use ``backend`` for every task of this process instead of the settings' choice
    (``None`` restores the settings')."""
    global _override
    _override = backend


def configured_backend(settings: EncoderSettings | None = None) -> Backend | None:
    """The non-built-in backend ``settings`` name (the process environment's without), or
    ``None`` for the built-in one.

    Raises :class:`BackendError` for an unknown backend name or a missing or bad setting. Instances
    are reused while the settings stay the same (the embedding backend embeds the corpus once)."""
    if _override is not None:
        return _override
    section = settings if settings is not None else environment_settings().encoder
    name = section.backend
    if name == "builtin":
        return None
    try:
        timeout = section.timeout_seconds(DEFAULT_TIMEOUT_S)
    except ConfigError as exc:
        raise BackendError(str(exc)) from exc
    key = (name, section.url, section.model, str(timeout), section.api_key)
    with _configured_lock:
        found = _configured.get(key)
        if found is not None:
            return found
        backend: Backend
        if name in ("openai", "ollama"):
            llm_model = section.model or (DEFAULT_OLLAMA_MODEL if name == "ollama" else "")
            api: LLMApi = "openai" if name == "openai" else "ollama"
            backend = LLMBackend(api, section.url, llm_model, timeout, section.api_key)
        elif name == "embedding":
            backend = EmbeddingBackend(SentenceTransformerEmbedder(section.model or DEFAULT_EMBEDDING_MODEL))
        else:
            raise BackendError(
                f"{BACKEND_ENV}={name!r} is not a backend; use builtin, openai, ollama or embedding"
            )
        _configured[key] = backend
        return backend
