"""Encoder backends: the LLM backend against a fake HTTP server (OpenAI-compatible and Ollama
shapes), every failure falling back to the built-in classifier with a warning, the embedding
backend interface, and configuration from the settings (and the environment for callers without)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from sustainml.config import EncoderSettings, Settings, environment_settings
from sustainml.workers.logic.encoder import backends
from sustainml.workers.logic.encoder.backends import (
    BackendError,
    EmbeddingBackend,
    LLMBackend,
    Prediction,
    configured_backend,
    set_backend,
)
from sustainml.workers.logic.encoder.inference import encode
from sustainml.workers.logic.encoder.model import load_corpus
from sustainml.workers.logic.encoder.vocabulary import GOALS

SUMMARY = "Condense our long quarterly reports into a few key points for the board"


@dataclass
class FakeLLM:
    """What the fake server answers, and what it received."""

    status: int = 200
    body: Any = None  # JSON-serialisable answer, or bytes sent as they are
    delay: float = 0.0  # seconds before answering (server side)
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def fake_llm() -> Iterator[tuple[FakeLLM, str]]:
    state = FakeLLM()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            state.requests.append((self.path, dict(self.headers.items()), json.loads(raw)))
            if state.delay:
                state.release.wait(state.delay)  # released early when the test ends
            payload = state.body if isinstance(state.body, bytes) else json.dumps(state.body).encode()
            try:
                self.send_response(state.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test); nothing to answer

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in (
        backends.BACKEND_ENV,
        backends.URL_ENV,
        backends.MODEL_ENV,
        backends.TIMEOUT_ENV,
        backends.API_KEY_ENV,
    ):
        monkeypatch.delenv(var, raising=False)
    set_backend(None)
    yield
    set_backend(None)


def openai_answer(content: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


def ollama_answer(content: str) -> dict[str, Any]:
    return {"model": "llama3", "message": {"role": "assistant", "content": content}, "done": True}


def configured(
    backend: str, url: str = "", model: str = "", timeout: str = "", api_key: str = ""
) -> EncoderSettings:
    """The encoder section of a deployment that chose ``backend`` (the session's weights cache)."""
    return (
        environment_settings()
        .with_overrides(
            encoder_backend=backend,
            encoder_url=url,
            encoder_model=model,
            encoder_timeout=timeout,
            encoder_api_key=api_key,
        )
        .encoder
    )


def test_builtin_is_the_default() -> None:
    assert configured_backend() is None
    assert configured_backend(Settings.from_env({backends.BACKEND_ENV: "builtin"}).encoder) is None
    assert configured_backend(configured(" BuiltIn ")) is None
    enc = encode(SUMMARY)
    assert enc.goal == "summarization" and enc.goal_source == "builtin" and not enc.warnings


def test_openai_compatible_backend(fake_llm: tuple[FakeLLM, str]) -> None:
    state, url = fake_llm
    # The fake model disagrees with the built-in classifier, so its answer is visibly the one used.
    state.body = openai_answer(
        '{"goal": "translation", "modality": "text", "confidence": 0.8, "reason": "they want it in French"}'
    )
    settings = configured("openai", url + "/v1", "fake-gpt", api_key="sk-test")
    enc = encode(SUMMARY, "nlp", settings=settings)
    assert (enc.goal, enc.goal_source, enc.modality) == ("translation", "openai", "text")
    assert enc.confidence == pytest.approx(0.8)
    assert enc.reason.startswith("openai model fake-gpt: they want it in French")
    assert enc.top_goals[0] == ("translation", 0.8)
    assert enc.top_goals[1][0] == "summarization"  # the built-in ranks the alternatives
    assert not enc.warnings

    path, headers, body = state.requests[-1]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "fake-gpt" and body["temperature"] == 0
    system, user = body["messages"]
    assert system["role"] == "system" and all(g in system["content"] for g in GOALS)
    assert user["role"] == "user" and SUMMARY in user["content"] and "text" in user["content"]


def test_ollama_backend(fake_llm: tuple[FakeLLM, str]) -> None:
    state, url = fake_llm
    state.body = ollama_answer('{"goal": "Text Generation", "modality": "audio"}')
    settings = configured("ollama", url)  # no model: upstream's llama3
    enc = encode(SUMMARY, settings=settings)
    assert (enc.goal, enc.goal_source) == ("text-generation", "ollama")
    # no confidence in the answer: the built-in's probability of that goal; an impossible modality
    # from the model is ignored.
    assert 0.0 <= enc.confidence < 0.5
    assert enc.modality == "text"
    path, headers, body = state.requests[-1]
    assert path == "/api/chat" and "Authorization" not in headers
    assert body["model"] == "llama3" and body["stream"] is False and body["format"] == "json"
    assert body["options"] == {"temperature": 0}


def test_llm_prose_answer_naming_one_goal_is_accepted(fake_llm: tuple[FakeLLM, str]) -> None:
    state, url = fake_llm
    state.body = ollama_answer("I think this is summarization, clearly.")
    p = LLMBackend("ollama", url, "m").predict(SUMMARY, "")
    assert p.goal == "summarization" and p.confidence is None
    state.body = openai_answer('{"goal": "object-detection", "confidence": 7}')
    p = LLMBackend("openai", url + "/v1/chat/completions", "m").predict("x", "")
    assert p.goal == "object-detection" and p.confidence == 1.0  # clamped
    assert state.requests[-1][0] == "/v1/chat/completions"  # full endpoint kept as given


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (500, {"error": "model crashed"}, "answered HTTP 500"),
        (200, b"this is not json", "unexpected response shape"),
        (200, {"unexpected": True}, "unexpected response shape"),
        (200, "openai-unknown-goal", "names no known goal"),
        (200, "openai-two-goals", "names no known goal"),
    ],
)
def test_llm_failures_fall_back_to_the_builtin_with_a_warning(
    fake_llm: tuple[FakeLLM, str], status: int, body: Any, message: str
) -> None:
    state, url = fake_llm
    state.status = status
    if body == "openai-unknown-goal":
        body = openai_answer('{"goal": "world-domination"}')
    elif body == "openai-two-goals":
        body = openai_answer("either translation or summarization")
    state.body = body
    settings = configured("openai", url, "m")
    enc = encode(SUMMARY, settings=settings)
    assert (enc.goal, enc.goal_source) == ("summarization", "builtin")
    assert len(enc.warnings) == 1 and message in enc.warnings[0]
    assert enc.warnings[0].endswith("the built-in classifier answered")
    assert enc.extra()["warnings"] == enc.warnings
    assert state.requests  # the server was asked


def test_the_api_key_is_masked_in_the_fallback_warning(fake_llm: tuple[FakeLLM, str]) -> None:
    state, url = fake_llm
    state.status = 401
    state.body = {"error": "key sk-live-0123456789 is revoked"}  # servers echo what they were sent
    enc = encode(SUMMARY, settings=configured("openai", url, "m", api_key="sk-live-0123456789"))
    assert enc.goal_source == "builtin" and "answered HTTP 401" in enc.warnings[0]
    assert "sk-live-0123456789" not in enc.warnings[0] and "key *** is revoked" in enc.warnings[0]


def test_llm_timeout_falls_back(fake_llm: tuple[FakeLLM, str]) -> None:
    state, url = fake_llm
    state.delay = 5.0
    state.body = ollama_answer('{"goal": "translation"}')
    settings = configured("ollama", url, "m", timeout="0.3")
    enc = encode(SUMMARY, settings=settings)
    assert enc.goal_source == "builtin" and enc.goal == "summarization"
    assert "no answer from" in enc.warnings[0] and "within 0.3 s" in enc.warnings[0]


def test_unreachable_llm_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = configured("openai", f"http://127.0.0.1:{port}/v1", "m")
    enc = encode(SUMMARY, settings=settings)
    assert enc.goal_source == "builtin" and "request to" in enc.warnings[0]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({backends.BACKEND_ENV: "openai", backends.MODEL_ENV: "m"}, "SUSTAINML_ENCODER_URL is not set"),
        (
            {backends.BACKEND_ENV: "openai", backends.URL_ENV: "http://x"},
            "SUSTAINML_ENCODER_MODEL is not set",
        ),
        ({backends.BACKEND_ENV: "crystal-ball"}, "'crystal-ball' is not a backend"),
        (
            {backends.BACKEND_ENV: "ollama", backends.URL_ENV: "http://x", backends.TIMEOUT_ENV: "soon"},
            "is not a number of seconds",
        ),
    ],
)
def test_misconfiguration_is_a_warning_not_a_failure(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    with pytest.raises(BackendError, match=message):
        configured_backend(Settings.from_env(env).encoder)
    for key, value in env.items():  # the same through the environment of a caller without settings
        monkeypatch.setenv(key, value)
    enc = encode(SUMMARY)
    assert enc.goal == "summarization" and enc.goal_source == "builtin"
    assert message in enc.warnings[0]


def test_embedding_backend_without_its_optional_package_fails_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import now raises ImportError
    settings = configured("embedding")
    with pytest.raises(BackendError, match="'sentence-transformers' is not installed"):
        configured_backend(settings)
    enc = encode(SUMMARY, settings=settings)
    assert enc.goal_source == "builtin" and "sentence-transformers" in enc.warnings[0]


class HashingEmbedder:
    """A stand-in embedding model: hashed bag of lower-case words (deterministic, no weights)."""

    def __init__(self, dims: int = 512) -> None:
        self.dims = dims
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
        self.calls += 1
        out = np.zeros((len(texts), self.dims))
        for i, text in enumerate(texts):
            for word in text.casefold().split():
                out[i, sum(map(ord, word.strip(".,;:!?'\""))) % self.dims] += 1.0
        return out


def test_embedding_backend_interface_with_a_plugged_embedder() -> None:
    corpus = load_corpus()
    embedder = HashingEmbedder()
    backend = EmbeddingBackend(embedder, corpus)
    sample = [e for i, e in enumerate(corpus) if i % 25 == 0]
    predictions = [backend.predict(e.text, "") for e in sample]
    # A corpus text is its own nearest neighbour: the backend returns its goal.
    assert [p.goal for p in predictions] == [e.goal for e in sample]
    first = predictions[0]
    assert set(first.scores) == set(GOALS) and sum(first.scores.values()) == pytest.approx(1.0)
    assert first.confidence == first.scores[first.goal] and "closest corpus example" in first.reason
    assert embedder.calls == 1 + len(sample)  # the corpus is embedded once

    set_backend(backend)
    enc = encode("Shorten long board reports into brief overviews", "text")
    assert enc.goal_source == "embedding" and enc.goal in GOALS and not enc.warnings
    assert len(enc.top_goals) == 3


def test_a_plugged_backend_that_raises_falls_back() -> None:
    class Broken:
        name = "broken"

        def predict(self, text: str, modality_hint: str) -> Prediction:
            raise RuntimeError("GPU on fire")

    class Lying:
        name = "lying"

        def predict(self, text: str, modality_hint: str) -> Prediction:
            return Prediction(goal="mind-reading", confidence=1.0, reason="trust me")

    for plugged, message in ((Broken(), "GPU on fire"), (Lying(), "unknown goal 'mind-reading'")):
        set_backend(plugged)
        enc = encode(SUMMARY)
        assert enc.goal_source == "builtin" and enc.goal == "summarization"
        assert message in enc.warnings[0]


def test_user_goal_skips_every_backend(fake_llm: tuple[FakeLLM, str]) -> None:
    state, url = fake_llm
    settings = configured("openai", url, "m")
    enc = encode(SUMMARY, goal="translation", settings=settings)
    assert enc.goal_source == "user" and not state.requests
