"""Serving speech recognition (Whisper-style encoder-decoder): ``ceil(audio_seconds / 30)`` windows of
30 s (Whisper pads every input to 30 s, Radford et al. 2022, arXiv:2212.04356); per window one
encoder pass over the ``encoder_context`` audio frames and decoder steps for the transcript at
``TOKENS_PER_AUDIO_SECOND`` (~150 spoken words per minute x ~1.3 tokens per word, an assumption)."""

from __future__ import annotations

import math
from typing import Final

from sustainml.catalogue.schema import HardwareEntry
from sustainml.estimate import transformer as tf
from sustainml.estimate.serving.llm import estimate_llm
from sustainml.estimate.serving.phases import Phase, ServingEstimate
from sustainml.estimate.serving.scenario import Scenario

#: Transcript tokens per second of speech: ~150 words per minute x ~1.3 tokens per word.
TOKENS_PER_AUDIO_SECOND: Final = 150 / 60 * 1.3
WHISPER_WINDOW_S: Final = 30.0


def estimate_asr(spec: tf.TransformerSpec, hw: HardwareEntry, sc: Scenario) -> ServingEstimate:
    """Whisper-style transcription of ``sc.audio_seconds`` per request."""
    sc = sc.validated()
    if spec.kind != "encoder-decoder":
        raise ValueError("architecture.kind: speech recognition needs an encoder-decoder architecture")
    windows = max(1, math.ceil(sc.audio_seconds / WHISPER_WINDOW_S - 1e-9))
    tokens = max(1, round(min(sc.audio_seconds, WHISPER_WINDOW_S) * TOKENS_PER_AUDIO_SECOND))
    frames = spec.encoder_context or 1500
    per_window = estimate_llm(
        spec,
        hw,
        Scenario(
            "llm",
            frames,
            tokens,
            sc.batch_size,
            sc.num_devices,
            sc.precision,
            sc.engine,
            utilisation=sc.utilisation,
        ),
    )
    phases = tuple(
        Phase(
            f"{p.name} x {windows} windows",
            p.seconds * windows,
            p.flops * windows,
            p.bytes * windows,
            p.bound,
        )
        for p in per_window.phases
    )
    total = per_window.batch_seconds * windows
    notes = (
        f"{windows} window(s) of {WHISPER_WINDOW_S:g} s; {tokens} transcript tokens per window "
        f"({TOKENS_PER_AUDIO_SECOND:.2f} tokens per second of speech, assumption)",
    )
    return ServingEstimate(
        sc,
        hw.name,
        sc.num_devices,
        per_window.engine,
        phases,
        total,
        per_window.power_w,
        per_window.utilisation,
        per_window.weights_gb,
        per_window.kv_cache_gb,
        notes,
    )
