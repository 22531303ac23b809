"""Energy and latency per answer of a served generative model, costed analytically (no graph).

A *serving scenario* (``Scenario``) states what one request is and how it is served: input and
output tokens, batch (requests served together), devices (tensor parallel), precision and the
serving engine; for diffusion, steps and image resolution; for speech recognition, seconds of
audio. ``estimate_llm``, ``estimate_diffusion`` and ``estimate_asr`` return the latency of one
answer and the energy of one answer (the batch's energy divided by the batch), with every
intermediate figure.

One module per part, each documenting its model and sources: ``scenario`` (the request, the
engines, the defaults), ``phases`` (a phase's roofline, the estimate, power and energy), ``llm``
(prefill and decode of language models), ``diffusion``, ``asr`` (speech recognition) and
``inputs`` (a scenario from a task's inputs). Their public names are re-exported here.
"""

from __future__ import annotations

from sustainml.estimate.serving.asr import TOKENS_PER_AUDIO_SECOND, WHISPER_WINDOW_S, estimate_asr
from sustainml.estimate.serving.diffusion import (
    CFG_PASSES,
    KERNELS_PER_DENOISER_PASS,
    DiffusionModel,
    diffusion_from_components,
    diffusion_model_of,
    estimate_diffusion,
)
from sustainml.estimate.serving.inputs import INPUT_KEYS, build_scenario, read_inputs
from sustainml.estimate.serving.llm import architecture_from_builder, cached_llm, estimate_llm, spec_of
from sustainml.estimate.serving.phases import (
    ALLREDUCE_LATENCY_S,
    LINK_BANDWIDTH_BYTES_S,
    UTILISATION_BY_BOUND,
    Phase,
    ServingEstimate,
    utilisation_of,
)
from sustainml.estimate.serving.scenario import (
    DEFAULTS,
    ENGINE_ALIASES,
    ENGINES,
    TOKENS_BY_GOAL,
    Engine,
    Kind,
    Scenario,
    default_engine,
    resolve_engine,
)

__all__ = [
    "ALLREDUCE_LATENCY_S",
    "CFG_PASSES",
    "DEFAULTS",
    "ENGINES",
    "ENGINE_ALIASES",
    "INPUT_KEYS",
    "KERNELS_PER_DENOISER_PASS",
    "LINK_BANDWIDTH_BYTES_S",
    "TOKENS_BY_GOAL",
    "TOKENS_PER_AUDIO_SECOND",
    "UTILISATION_BY_BOUND",
    "WHISPER_WINDOW_S",
    "DiffusionModel",
    "Engine",
    "Kind",
    "Phase",
    "Scenario",
    "ServingEstimate",
    "architecture_from_builder",
    "build_scenario",
    "cached_llm",
    "default_engine",
    "diffusion_from_components",
    "diffusion_model_of",
    "estimate_asr",
    "estimate_diffusion",
    "estimate_llm",
    "read_inputs",
    "resolve_engine",
    "spec_of",
    "utilisation_of",
]
