"""HW_RESOURCES: what a served generative model is costed from analytically (no graph): the
architecture or diffusion pipeline, the scenario inputs and where each came from; and the audio
windows and roofline engine of a graph model."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sustainml.catalogue import ModelEntry, models
from sustainml.estimate import serving as sv
from sustainml.messages.types import AppRequirements, MLModel
from sustainml.workers.logic.common import parse_requirements

#: Goals whose answer is generated token by token, step by step or per audio window.
GENERATIVE_GOALS: Final = frozenset(
    {
        "text-generation",
        "conversational",
        "summarization",
        "translation",
        "text2text-generation",
        "automatic-speech-recognition",
        "text-to-image",
        "image-text-to-text",
        "image-to-text",
        "visual-question-answering",
    }
)


@dataclass(frozen=True)
class ServingRequest:
    kind: sv.Kind
    inputs: dict[str, tuple[Any, str]]
    goal: str
    source: str  # where the architecture came from
    spec: Any = None  # transformer.TransformerSpec
    diffusion: sv.DiffusionModel | None = None
    # Devices the text names for a *training* run: serving uses the fewest of them that hold the
    # model, not all of them as tensor-parallel shards (a 7B model is not served over 8 GPUs).
    training_devices: int | None = None


def requirements_of(app_requirements: AppRequirements | None) -> dict[str, Any]:
    """The extracted requirements (``extra_data["requirements"]``), else the parsed key=value list."""
    if app_requirements is None:
        return {}
    extracted = app_requirements.get_extra().get("requirements")
    if isinstance(extracted, dict):
        return dict(extracted)
    return dict(parse_requirements(app_requirements))


#: Samples per second of raw-waveform audio inputs, and spectrogram frames per second (10 ms hop:
#: Whisper, wav2vec2-style front-ends, PANNs and AST all use 16 kHz audio with a 10 ms hop).
AUDIO_SAMPLE_RATE: Final = 16_000
SPECTROGRAM_FRAMES_PER_S: Final = 100


def audio_window_seconds(entry: ModelEntry) -> float | None:
    """Seconds of audio one forward pass of an audio catalogue graph covers: ``(1, samples)``
    waveforms at 16 kHz, spectrograms ``(1, [1,] frames, mels)`` or ``(1, mels, frames)`` at 100
    frames per second (the larger of the last two dims is the time axis)."""
    if entry.modality != "audio":
        return None
    shape = entry.input_shape
    if len(shape) == 2:
        return shape[1] / AUDIO_SAMPLE_RATE
    if len(shape) >= 3:
        return max(shape[-1], shape[-2]) / SPECTROGRAM_FRAMES_PER_S
    return None


def audio_windows(
    entry: ModelEntry | None, options: Mapping[str, Any], requirements: Mapping[str, Any]
) -> tuple[int, float, float, str]:
    """(forward passes per answer, seconds per pass, audio seconds, where they came from) for a
    graph audio model given ``audio_seconds`` (or a daily volume); (1, 0, 0, "") otherwise."""
    window = audio_window_seconds(entry) if entry is not None else None
    inputs = sv.read_inputs(options, requirements)
    if window is None or window <= 0 or "audio_seconds" not in inputs:
        return 1, 0.0, 0.0, ""
    audio, where = inputs["audio_seconds"]
    return max(1, math.ceil(float(audio) / window - 1e-9)), window, float(audio), where


def graph_engine_of(options: Mapping[str, Any], requirements: Mapping[str, Any]) -> str | None:
    """The roofline engine for a graph model: ``serving_engine`` eager -> per operator, any
    optimised server -> compiled; absent -> the device class's default."""
    inputs = sv.read_inputs(options, requirements)
    if "serving_engine" not in inputs:
        return None
    return "eager" if inputs["serving_engine"][0] == "eager" else "compiled"


def serving_request_of(
    ml_model: MLModel,
    props: Mapping[str, Any],
    options: Mapping[str, Any],
    requirements: Mapping[str, Any],
) -> ServingRequest | None:
    """What to cost analytically, or ``None`` for the graph path: a diffusion model
    (``extra_data.diffusion_model`` or a catalogue denoiser), or a transformer with an
    architecture (``extra_data.architecture``, ``model_properties.architecture``, the catalogue
    entry's ``architecture``, or the shape of a generating catalogue graph: GPT-2, Whisper, BART)."""
    entry = models().find(ml_model.model) if ml_model.model.strip() else None
    goals = props.get("goals") or (list(entry.goals) if entry is not None else [])
    goal = str(goals[0]) if goals else ""
    inputs = sv.read_inputs(options, requirements)
    training_devices = training_run_devices(inputs, options, requirements)
    if training_devices is not None:
        del inputs["num_devices"]
    if "batch_size" not in inputs:
        b = props.get("batch_size")
        if isinstance(b, int) and not isinstance(b, bool) and b > 1:
            inputs["batch_size"] = (b, "model_properties.batch_size")

    released = getattr(entry, "default_precision", "") if entry is not None else ""
    if "precision" not in inputs and released in ("bf16", "fp16", "fp8", "int8", "int4"):
        inputs["precision"] = (released, f"catalogue {entry.name if entry else ''} default_precision")
    diffusion = options.get("diffusion_model") or props.get("diffusion_model")
    if diffusion is None and entry is not None:
        diffusion = getattr(entry, "diffusion", None)
    if isinstance(diffusion, dict):
        where = "extra_data.diffusion_model" if options.get("diffusion_model") else "diffusion_model"
        return ServingRequest(
            "diffusion", inputs, goal, where, diffusion=sv.diffusion_model_of(diffusion, where)
        )
    if diffusion is not None:
        raise ValueError(f"extra_data.diffusion_model: expected an object, got {type(diffusion).__name__}")
    components = getattr(entry, "components", ()) if entry is not None else ()
    pipeline = sv.diffusion_from_components(components, entry.input_shape, entry.name) if entry else None
    if entry is not None and pipeline is not None:
        if "guidance" not in inputs and entry.name.startswith("flux"):
            # FLUX.1 [dev]/[schnell] are guidance-distilled: one transformer pass per step
            inputs["guidance"] = (False, f"catalogue {entry.name}: guidance-distilled, one pass per step")
        source = f"catalogue {entry.name} components"
        return ServingRequest("diffusion", inputs, goal or "text-to-image", source, diffusion=pipeline)
    if entry is not None and entry.builder == "sd_unet":
        model = sv.DiffusionModel(float(entry.macs), float(entry.parameters), int(entry.input_shape[-1]))
        return ServingRequest(
            "diffusion",
            inputs,
            goal or "text-to-image",
            f"catalogue {entry.name} (denoiser MACs)",
            diffusion=model,
        )

    arch: Any = None
    source = ""
    for where, candidate in (
        ("extra_data.architecture", options.get("architecture")),
        ("model_properties.architecture", props.get("architecture")),
        (f"catalogue {entry.name if entry else ''} architecture", getattr(entry, "architecture", None)),
    ):
        if candidate is not None:
            arch, source = candidate, where
            break
    if arch is None and entry is not None and goal in GENERATIVE_GOALS:
        arch = sv.architecture_from_builder(entry.builder, entry.builder_args)
        source = f"catalogue {entry.name} graph builder arguments"
    if arch is None:
        return None
    if not isinstance(arch, Mapping):
        raise ValueError(f"{source}: expected an object, got {type(arch).__name__}")
    spec = sv.spec_of(dict(arch), where=source)
    if goal == "automatic-speech-recognition" or "audio_seconds" in inputs:
        kind: sv.Kind = "asr"
    else:
        kind = "llm"
    if spec.kind == "encoder" and "output_tokens" not in inputs:
        inputs["output_tokens"] = (0, "an encoder generates no tokens")
    elif (
        spec.kind == "encoder-decoder"
        and kind == "llm"
        and goal
        and goal not in GENERATIVE_GOALS
        and "output_tokens" not in inputs
    ):
        # e.g. BART-MNLI for classification: the decoder runs once over the input, nothing is generated
        inputs["output_tokens"] = (1, f"goal {goal} generates no text: one decoder pass")
    return ServingRequest(kind, inputs, goal, source, spec=spec, training_devices=training_devices)


#: Keys that say the text describes a training run (its devices are then the run's, not serving's).
TRAINING_KEYS: Final = (
    "training_hours",
    "training_device_hours",
    "training_tokens",
    "epochs",
    "training_samples",
)


def training_run_devices(
    inputs: Mapping[str, tuple[Any, str]], options: Mapping[str, Any], requirements: Mapping[str, Any]
) -> int | None:
    """The device count of a training run the text describes ("fine-tune ... on 8 A100s for 3
    days"), when it is the only source of ``num_devices``: no explicit ``extra_data.num_devices``,
    ``tensor_parallel`` or ``pipeline_parallel``. ``None`` otherwise."""
    if "num_devices" not in inputs:
        return None
    # HW_CONSTRAINTS forwards a count it read from the text as extra_data.num_devices and says so
    sources = options.get("constraint_sources")
    said = str(sources.get("num_devices", "")) if isinstance(sources, Mapping) else ""
    from_text = inputs["num_devices"][1].startswith("requirements") or said.startswith("the problem text")
    if not from_text:
        return None
    if "tensor_parallel" in inputs or "pipeline_parallel" in inputs:
        return None
    if not any(options.get(k) or requirements.get(k) for k in TRAINING_KEYS):
        return None
    return int(inputs["num_devices"][0])
