"""HW_RESOURCES: latency, power, energy and memory of the proposed model on the hardware.

1. **The model** (``MLModel``): its ONNX file (``model_path`` when it is a file in the model cache or
   in an allowed user-model directory; otherwise the catalogue entry ``model`` is built or loaded
   from ``onnxgraphs.cache``; otherwise ``raw_model`` bytes), analysed by ``onnxgraphs.analyze`` at
   the batch size (``model_properties.batch_size``, else dim 0 of ``input_batch``, else 1):
   per-operator MACs, FLOPs (= 2 x MACs for the linear layers; element-wise ops count their own
   FLOPs, see ``analyze``), parameters, bytes moved, peak activation memory.
2. **The hardware** (``HWConstraints.hardware_required``): one catalogue device (names and aliases
   fold case and punctuation); several devices or ``"auto"`` (with ``extra_data.allowed_hardware``,
   default every catalogue device) -> each is evaluated and the device with the **lowest energy per
   inference** that meets the constraints is chosen (ties: lower latency, then name). When none
   meets them, the lowest-energy device that fits in memory (else the lowest-energy one) is
   reported with ``constraints_met = false`` and the violations.
3. **Per device** (``sustainml.estimate``):
   - latency [s] = per-operator roofline of the whole batch (``roofline.estimate``), with the
     documented efficiency factors of the device class (``local-cpu``: fitted on this machine);
   - power [W] = idle + utilisation x (TDP - idle) (``power.device_power_w``; utilisation
     ``extra_data.utilisation`` or ``power.DEFAULT_UTILISATION`` of the class);
   - energy per inference [J] = power x latency / batch size;
   - memory_footprint_of_ml_model [MB] = (parameters + other constants + peak activations) bytes at
     the precision / 1e6; max_hw_memory_footprint [MB] = device memory GB x 1000 (decimal units);
   - constraints: footprint <= device memory, footprint <= ``max_memory_footprint`` (0 = none),
     latency <= ``max_latency_ms``, power <= ``max_power_w`` (requirements, when stated).
4. ``local-cpu`` chosen: the model also **runs** with onnxruntime (warm-up, median of up to 10 runs,
   cached by model hash, batch and device; ``estimate.measure``) on ``input_batch`` when ML_MODEL
   sent it (``extra_data.include_input_batch``), else on the same seeded synthetic arrays regenerated
   here (``measure.feed_for``: ML_MODEL's generator, seed, shapes and input order), and
   ``extra_data.measured`` reports it next to the estimate. ``hw.latency`` stays the estimate so the
   main outputs are reproducible (docs/estimation.md). ``extra_data.measure_local``:
   ``false`` skips the run, ``true`` forces it; by default a model estimated above
   ``MEASURE_MAX_ESTIMATE_S`` per batch is not run (it would hold the worker for minutes) and
   ``measured`` says so.

5. **No graph**: a served generative model (transformer ``architecture``, diffusion pipeline,
   Whisper-style speech recognition) is costed per answer by ``estimate.serving``; a catalogue
   entry with no graph, architecture or per-step pipeline by ``estimate.trees`` (tree ensembles:
   CPUs preferred, devices without a tree runtime marked) or ``roofline.published_estimate``
   (published MACs and parameters).
6. **Audio models** report ``extra_data.real_time`` (real-time factor = processing s / audio s);
   a latency requirement read from "real time" wording is judged on that factor <= 1 for them,
   and ``max_real_time_factor`` is checked when given.

``NO_MODEL`` -> the upstream sentinel (``hw_description`` = the hardware asked for, zeros,
``{"error_code": "NO_MODEL", "error": ...}``). Unknown hardware or an unusable model -> ``ValueError``
(the runtime publishes it as the task's error).

extra_data (units in ``units``): ``hardware``, ``hardware_requested``, ``device_class``, ``device``,
``selection`` (how the device was chosen), ``model``, ``batch_size``, ``precision``, ``analysis``,
``roofline``, ``power``, ``energy_per_inference_j``, ``energy_per_batch_j``, ``memory``,
``requirements``, ``constraints_met``, ``violations``, ``ranking`` (several devices: top 5 with
latency, power and energy), ``measured`` (local-cpu), ``sources``, ``formulas``.

Configuration requests: ``hardwares`` -> ``{"hardwares": "..."}`` (upstream's names in upstream order,
then the other catalogue devices sorted); ``hardware_info, <name>`` -> the catalogue entry with the
efficiency factors and utilisation used for it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from sustainml.catalogue import HardwareEntry, ModelEntry, UnknownEntry, hardware, models
from sustainml.estimate import measure as measuring
from sustainml.estimate import power as pw
from sustainml.estimate import roofline as rl
from sustainml.estimate import serving as sv
from sustainml.estimate import trees as tr
from sustainml.messages.types import (
    AppRequirements,
    HWConstraints,
    HWResource,
    MLModel,
    NodeStatus,
    RequestType,
    ResponseType,
)
from sustainml.onnxgraphs import cache as onnx_cache
from sustainml.onnxgraphs.analyze import AnalysisError, ModelReport, analyze
from sustainml.onnxgraphs.layers import WeightsMode
from sustainml.workers.logic.common import parse_requirements, reply, reply_error, reply_unsupported
from sustainml.workers.logic.tables import DEFAULT_HARDWARE, MODEL_PATH_SCHEME, NO_MODEL, NO_MODEL_HW_ERROR

log = logging.getLogger(__name__)

AUTO: Final = "auto"
LOCAL_CPU: Final = "local-cpu"
RANKING_SIZE: Final = 5
#: local-cpu runs are skipped by default above this estimated latency per batch (seconds).
MEASURE_MAX_ESTIMATE_S: Final = 5.0
MODEL_DIRS_ENV: Final = "SUSTAINML_MODEL_DIRS"
#: Largest user model file (with external data) read from the allowed directories.
USER_MODEL_MAX_BYTES: Final = 2 * 1024**3
#: Catalogue graphs above this many parameters are built with zero weights (a sparse file, no
#: time to generate); the graph, shapes and runtime are the same (``onnxgraphs.cache``).
RANDOM_WEIGHTS_MAX_PARAMETERS: Final = 150_000_000

UNITS: Final = {
    "latency": "s",
    "power_consumption": "W",
    "memory_footprint_of_ml_model": "MB",
    "max_hw_memory_footprint": "MB",
    "energy_per_inference_j": "J",
    "energy_per_batch_j": "J",
}
FORMULAS: Final = {
    "latency": "sum over operators of max(FLOPs / (peak x eta_c), bytes / (bandwidth x eta_m)) + overhead "
    "(whole batch)",
    "power_consumption": "idle_w + utilisation x (tdp_w - idle_w)",
    "energy_per_inference_j": "power_consumption x latency / batch_size",
    "memory_footprint_of_ml_model": "(parameter bytes + other constants + peak activation bytes) at the "
    "precision / 1e6",
    "max_hw_memory_footprint": "device memory_gb x 1000",
    "flops": "FLOPs = 2 x MACs for Conv/MatMul/Gemm/RNN; element-wise ops their own count "
    "(onnxgraphs.analyze)",
}


# ------------------------------------------------------------------------------------------------
# The callback
# ------------------------------------------------------------------------------------------------


def task_callback(
    ml_model: MLModel,
    app_requirements: AppRequirements,
    hw_constraints: HWConstraints,
    node_status: NodeStatus,
    hw: HWResource,
) -> None:
    requested = [h.strip() for h in hw_constraints.hardware_required if h.strip()] or [DEFAULT_HARDWARE]
    if ml_model.model == NO_MODEL:
        hw.hw_description = requested[0]
        hw.power_consumption = 0.0
        hw.latency = 0.0
        hw.memory_footprint_of_ml_model = 0.0
        hw.max_hw_memory_footprint = 0.0
        hw.set_extra({"error_code": NO_MODEL, "error": NO_MODEL_HW_ERROR})
        return

    options = hw_constraints.get_extra()
    props = model_properties_of(ml_model)
    devices, selection = candidate_devices(hw_constraints)
    utilisation = utilisation_override(options)
    limits = Limits.of(app_requirements, hw_constraints)
    requirements = requirements_of(app_requirements)
    request = serving_request_of(ml_model, props, options, requirements)
    if request is not None:
        serve(request, ml_model, devices, selection, requested, limits, utilisation, hw)
        return
    entry = models().find(ml_model.model) if ml_model.model.strip() else None
    if entry is not None and entry.analytic and not _is_file(ml_model.model_path):
        cost_without_graph(
            entry, ml_model, props, options, devices, selection, requested, limits, utilisation, hw
        )
        return

    batch = batch_size_of(ml_model, props)
    precision = precision_of(props, options)
    engine = graph_engine_of(options, requirements)
    loaded = load_model(ml_model, props)
    report = analysed(loaded.path, batch, loaded.dims)
    pass_audio_s = (audio_window_seconds(loaded.entry) or 0.0) if loaded.entry is not None else 0.0
    evaluations = [
        evaluate_device(report, d, precision, limits, utilisation, engine, pass_audio_s) for d in devices
    ]
    chosen = choose(evaluations)
    assert chosen.roofline is not None
    windows, window_s, audio_s, audio_source = audio_windows(loaded.entry, options, requirements)

    _report(hw, chosen)
    extra: dict[str, Any] = {
        **_identity(chosen, requested, selection, ml_model),
        "model_file": loaded.describe(),
        "batch_size": batch,
        "precision": precision,
        "engine": chosen.roofline.engine,
        "analysis": analysis_summary(report),
        "roofline": chosen.roofline.to_dict(),
        "power": chosen.power_dict(),
        "energy_per_inference_j": chosen.energy_per_inference_j * windows,
        "energy_per_batch_j": chosen.energy_per_batch_j,
        "latency_per_inference_s": chosen.latency_s * windows,
        **_checks(chosen, limits),
        "sources": {
            **_hardware_sources(chosen),
            "efficiency": chosen.roofline.efficiency.source,
        },
        "formulas": FORMULAS,
        "units": UNITS,
    }
    if windows > 1:
        extra["audio_windows"] = {
            "windows": windows,
            "seconds_per_window": window_s,
            "audio_seconds": audio_s,
            "source": audio_source,
            "rule": "an audio model's graph covers a fixed window of audio: a longer request runs "
            "ceil(audio / window) forward passes; latency and energy per answer are multiplied by that",
        }
    _add_real_time(extra, chosen, limits)
    _add_ranking(extra, evaluations)
    measure = options.get("measure_local")
    if chosen.hw.name == LOCAL_CPU and measure is not False:
        if measure is True or chosen.roofline.latency_s <= MEASURE_MAX_ESTIMATE_S:
            extra["measured"] = measured_on_this_cpu(loaded, batch, ml_model, chosen.roofline.latency_s)
        else:
            extra["measured"] = {
                "skipped": f"estimated {chosen.roofline.latency_s:.1f} s per batch > "
                f"{MEASURE_MAX_ESTIMATE_S:g} s; set extra_data.measure_local = true to run it anyway"
            }
    hw.set_extra(extra)


def _report(hw: HWResource, chosen: DeviceEvaluation, description: str = "") -> None:
    """The main outputs of the chosen device."""
    hw.hw_description = description or chosen.hw.name
    hw.latency = chosen.latency_s
    hw.power_consumption = chosen.power_w
    hw.memory_footprint_of_ml_model = chosen.footprint_mb
    hw.max_hw_memory_footprint = chosen.capacity_mb


def _identity(
    chosen: DeviceEvaluation, requested: Sequence[str], selection: str, ml_model: MLModel
) -> dict[str, Any]:
    return {
        "hardware": chosen.hw.name,
        "hardware_requested": ", ".join(requested),
        "device_class": chosen.hw.device_class,
        "device": chosen.hw.description,
        "selection": selection,
        "model": ml_model.model,
    }


def _checks(chosen: DeviceEvaluation, limits: Limits) -> dict[str, Any]:
    return {
        "memory": chosen.memory_dict(),
        "requirements": limits.to_dict(),
        "constraints_met": chosen.feasible,
        "violations": chosen.violations,
    }


def _hardware_sources(chosen: DeviceEvaluation) -> dict[str, Any]:
    return {
        "hardware": chosen.hw.source,
        "hardware_estimated_fields": list(chosen.hw.estimated),
        "utilisation": chosen.utilisation_source,
    }


def _add_real_time(extra: dict[str, Any], chosen: DeviceEvaluation, limits: Limits) -> None:
    """An audio model's real-time factor, and how a latency requirement was judged for it."""
    rtf = chosen.real_time_factor
    if rtf is None:
        return
    limit = limits.real_time_factor_limit()
    info: dict[str, Any] = {
        "real_time_factor": rtf,
        "processing_s": chosen.latency_s,
        "audio_s": chosen.audio_s,
        "keeps_up_with_audio": rtf <= REAL_TIME_FACTOR_LIMIT,
        "formula": "processing seconds / seconds of audio processed (<= 1: as fast as the audio arrives)",
        "max_real_time_factor": limit,
    }
    if chosen.serving is not None and chosen.serving.scenario.kind == "asr":
        windows = max(1, math.ceil(chosen.audio_s / sv.WHISPER_WINDOW_S - 1e-9))
        info["latency_per_window_s"] = chosen.latency_s / windows
        info["window_s"] = sv.WHISPER_WINDOW_S
        chunk_note = (
            f" Streamed in chunks, each chunk is padded to one {sv.WHISPER_WINDOW_S:g} s window: a chunk's "
            f"transcript arrives {chosen.latency_s / windows:.3g} s after the chunk ends."
        )
    else:
        chunk_note = ""
    if limits.latency_is_real_time:
        info["reasoning"] = (
            f"'real time' for an audio model is judged on the real-time factor, not on a "
            f"{(limits.max_latency_s or 0) * 1000:g} ms latency: {chosen.latency_s:.3g} s of processing for "
            f"{chosen.audio_s:g} s of audio is a real-time factor of {rtf:.3g} "
            f"({'meets' if limit is None or rtf <= limit else 'misses'} <= {limit:g}).{chunk_note}"
        )
    elif limit is not None:
        info["reasoning"] = f"real-time factor {rtf:.3g} against max_real_time_factor {limit:g}.{chunk_note}"
    else:
        info["reasoning"] = (
            f"real-time factor {rtf:.3g}: {chosen.latency_s:.3g} s of processing for {chosen.audio_s:g} s "
            f"of audio.{chunk_note}"
        )
    # the reasoning first, right after the model, so that a shortened display still shows it
    info = {"reasoning": info.pop("reasoning"), **info}
    items = list(extra.items())
    at = next((i + 1 for i, (k, _) in enumerate(items) if k == "model"), len(items))
    items.insert(at, ("real_time", info))
    extra.clear()
    extra.update(items)


def _add_ranking(extra: dict[str, Any], evaluations: Sequence[DeviceEvaluation]) -> None:
    if len(evaluations) > 1:
        extra["ranking"] = [e.summary() for e in ranked(evaluations)[:RANKING_SIZE]]
        extra["devices_evaluated"] = len(evaluations)
        extra["feasible_devices"] = sum(1 for e in evaluations if e.feasible)
        extra["selection_rule"] = (
            "lowest energy per inference among devices meeting memory, latency and power constraints; "
            "ties: lower latency, then name"
        )


def serve(
    request: ServingRequest,
    ml_model: MLModel,
    devices: Sequence[HardwareEntry],
    selection: str,
    requested: Sequence[str],
    limits: Limits,
    utilisation: float | None,
    hw: HWResource,
) -> None:
    """HW_RESOURCES for a served generative model costed analytically (no graph)."""
    evaluations = [evaluate_serving(request, d, limits, utilisation) for d in devices]
    chosen = choose(evaluations)
    est = chosen.serving
    assert est is not None
    _report(hw, chosen, chosen.hw.name if est.num_devices == 1 else f"{est.num_devices} x {chosen.hw.name}")
    extra: dict[str, Any] = {
        **_identity(chosen, requested, selection, ml_model),
        "num_devices": est.num_devices,
        "model_source": request.source,
        "kind": request.kind,
        "batch_size": est.scenario.batch_size,
        "precision": est.scenario.precision,
        "engine": est.engine.name,
        "scenario": est.scenario.to_dict(),
        "scenario_sources": {
            **{k: where for k, (_, where) in request.inputs.items()},
            **({"num_devices": serving_devices(request, chosen.hw)["num_devices"][1]}
               if request.training_devices is not None else {}),
        },
        "assumed_defaults": {
            k: getattr(est.scenario, _SCENARIO_FIELD.get(k, k)) for k in est.scenario.assumed
        },
        "serving": est.to_dict(),
        "power": chosen.power_dict(),
        "energy_per_inference_j": est.energy_per_inference_j,
        "energy_per_batch_j": est.energy_per_batch_j,
        "latency_per_inference_s": est.latency_per_inference_s,
        **_checks(chosen, limits),
        "sources": {
            **_hardware_sources(chosen),
            "engine": est.engine.source,
            "method": "sustainml.estimate.serving (docs/estimation.md, Inference latency and serving)",
        },
        "formulas": SERVING_FORMULAS,
        "units": SERVING_UNITS,
    }
    _add_real_time(extra, chosen, limits)
    _add_ranking(extra, evaluations)
    hw.set_extra(extra)


def _is_file(model_path: str) -> bool:
    text = model_path.strip()
    if not text or text.startswith(MODEL_PATH_SCHEME) or text == "N/A":
        return False
    return Path(text).expanduser().is_file()


def cost_without_graph(
    entry: ModelEntry,
    ml_model: MLModel,
    props: Mapping[str, Any],
    options: Mapping[str, Any],
    devices: Sequence[HardwareEntry],
    selection: str,
    requested: Sequence[str],
    limits: Limits,
    utilisation: float | None,
    hw: HWResource,
) -> None:
    """HW_RESOURCES for a catalogue entry with no graph, transformer shape or per-step pipeline:
    a tree ensemble (``estimate.trees``) or a model known by its published MACs and parameters
    (``roofline.published_estimate``)."""
    batch = batch_size_of(ml_model, props)
    evaluations = [
        evaluate_without_graph(entry, d, batch, props, options, limits, utilisation) for d in devices
    ]
    chosen = choose(evaluations)
    _report(hw, chosen)
    extra: dict[str, Any] = {
        **_identity(chosen, requested, selection, ml_model),
        "model_file": "none: the catalogue entry has no graph; costed from its published figures",
        "batch_size": batch,
        "power": chosen.power_dict(),
        "energy_per_inference_j": chosen.energy_per_inference_j,
        "energy_per_batch_j": chosen.energy_per_batch_j,
        "latency_per_inference_s": chosen.latency_s,
        **_checks(chosen, limits),
        "units": UNITS,
    }
    if chosen.trees is not None:
        est = chosen.trees
        extra["method"] = (
            "tree ensemble: trees x depth dependent comparisons per row (sustainml.estimate.trees)"
        )
        extra["precision"] = "fp32"
        extra["engine"] = f"tree traversal ({est.path})"
        extra["trees"] = est.to_dict()
        extra["power"]["share_of_device"] = est.share_of_device
        extra["power"]["device_power_w"] = est.power_w / est.share_of_device
        extra["sources"] = {**_hardware_sources(chosen), "trees": tr.SOURCES}
        extra["formulas"] = {
            "latency": tr.FORMULA[est.path],
            "power_consumption": "share of the device busy x (idle_w + utilisation x (tdp_w - idle_w))",
            "energy_per_inference_j": "power_consumption x latency / batch_size",
            "memory_footprint_of_ml_model": f"nodes x {tr.NODE_BYTES} B + batch x features x 4 B, / 1e6",
        }
        if est.path == "parallel":
            extra["device_note"] = (
                "a tree ensemble is branchy and latency-bound: CPUs usually serve single rows with less "
                "energy; this device was asked for or was the only feasible one"
            )
    else:
        assert chosen.roofline is not None
        extra["method"] = (
            "published MACs and parameters (no graph or architecture in the catalogue): whole-model "
            "roofline + the engine's fixed cost per kernel"
        )
        extra["precision"] = chosen.roofline.precision
        extra["engine"] = chosen.roofline.engine
        extra["roofline"] = chosen.roofline.to_dict()
        extra["published_figures"] = {
            "macs": entry.macs,
            "parameters": entry.parameters,
            "estimated_fields": list(entry.estimated),
            "source": entry.source,
            "kernels_assumed": rl.PUBLISHED_KERNELS[chosen.roofline.engine],
            "activation_fraction_assumed": rl.PUBLISHED_ACTIVATION_FRACTION,
        }
        extra["sources"] = {**_hardware_sources(chosen), "efficiency": chosen.roofline.efficiency.source}
        extra["formulas"] = {
            **FORMULAS,
            "latency": "max(2 x MACs x batch / (peak x eta_c), weights / (bandwidth x eta_m)) + kernels x "
            "fixed cost",
            "memory_footprint_of_ml_model": "weights at the precision x (1 + assumed activation fraction) "
            "/ 1e6",
        }
    _add_ranking(extra, evaluations)
    hw.set_extra(extra)


def costing_method(entry: ModelEntry) -> str:
    """How HW_RESOURCES costs a catalogue entry sent by name: ``graph`` (ONNX graph, or its
    transformer shape when it generates), ``serving`` (architecture or diffusion pipeline),
    ``trees`` (tree ensemble), ``published`` (published MACs and parameters); ``""`` when it
    cannot (no graph, shape, pipeline, and no positive MACs and parameters)."""
    if entry.builder:
        return "graph"
    if entry.architecture is not None or getattr(entry, "diffusion", None) is not None:
        return "serving"
    if sv.diffusion_from_components(entry.components, entry.input_shape, entry.name) is not None:
        return "serving"
    if tr.is_tree_ensemble(entry):
        return "trees"
    return "published" if entry.macs > 0 and entry.parameters > 0 else ""


def evaluate_without_graph(
    entry: ModelEntry,
    device: HardwareEntry,
    batch: int = 1,
    props: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
    utilisation: float | None = None,
) -> DeviceEvaluation:
    """One device's figures for a catalogue entry costed without a graph (see ``cost_without_graph``)."""
    lim = limits if limits is not None else Limits(None, None, None)
    if tr.is_tree_ensemble(entry):
        est = tr.estimate(tr.ensemble_of(entry), device, batch, utilisation)
        model_mb = est.model_bytes / 1e6
        input_mb = est.input_bytes / 1e6
        return DeviceEvaluation(
            hw=device,
            roofline=None,
            utilisation=est.utilisation,
            utilisation_source="extra_data.utilisation" if utilisation is not None else pw.UTILISATION_SOURCE,
            power_w=est.power_w,
            footprint_mb=model_mb + input_mb,
            weights_mb=model_mb,
            activations_mb=input_mb,
            capacity_mb=device.memory_gb * 1000.0,
            limits=lim,
            trees=est,
            unsupported=tr.unsupported_reason(device),
        )
    if entry.macs <= 0 or entry.parameters <= 0:
        raise ValueError(
            f"model {entry.name}: no graph builder, transformer architecture or per-step components, and "
            f"no positive published macs and parameters to cost it from (macs={entry.macs}, "
            f"parameters={entry.parameters})"
        )
    precision = precision_of(props or {}, options or {})
    engine = graph_engine_of(options or {}, {})
    roof = rl.published_estimate(entry.macs, entry.parameters, device, batch, precision, engine)
    weights_mb = entry.parameters * rl.PRECISION_BYTES[precision] / 1e6
    activations_mb = weights_mb * rl.PUBLISHED_ACTIVATION_FRACTION
    return _roofline_evaluation(device, roof, weights_mb, activations_mb, lim, utilisation)


_SCENARIO_FIELD: Final = {"serving_engine": "engine"}

SERVING_UNITS: Final = {
    "latency": "s (one batch = one answer)",
    "power_consumption": "W (all devices)",
    "memory_footprint_of_ml_model": "MB per device (weights + KV cache)",
    "max_hw_memory_footprint": "MB per device",
    "energy_per_inference_j": "J per answer",
    "energy_per_batch_j": "J",
    "latency_per_inference_s": "s per answer",
}
SERVING_FORMULAS: Final = {
    "prefill": "max(batch x prefill FLOPs / (n x peak x eta_c), weights / (n x bandwidth x eta_m)) "
    "+ all-reduces",
    "decode": "output_tokens x [max(step FLOPs / (n x peak x eta_c), (weights + KV cache) / (n x bandwidth x "
    "eta_m)) + layers x engine step overhead + all-reduces]",
    "diffusion": "steps x max(2 x denoiser MACs x (latent / reference)^2 x guidance passes x batch / "
    "(n x peak x eta_c), weights / (n x bandwidth x eta_m)) + text encoder + VAE decoder",
    "asr": "ceil(audio_seconds / 30) x (encoder over 1500 frames + decoder of 30 s of transcript tokens)",
    "power_consumption": "num_devices x (idle_w + utilisation x (tdp_w - idle_w))",
    "energy_per_inference_j": "power_consumption x batch time / batch_size",
    "latency_per_inference_s": "batch time (every answer of a static batch ends with the batch)",
}


# ------------------------------------------------------------------------------------------------
# Served generative models (analytic path)
# ------------------------------------------------------------------------------------------------

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


def configuration_callback(req: RequestType, res: ResponseType) -> None:
    text = req.configuration.strip()
    keyword, _, argument = text.partition(",")
    if text == "hardwares":
        reply(req, res, {"hardwares": ", ".join(hardware_names())})
        return
    if keyword.strip() == "hardware_info":
        name = argument.strip()
        if not name:
            reply_error(req, res, "hardware_info needs a device name: 'hardware_info, <name>'")
            return
        try:
            entry = resolve_device(name)
        except ValueError as exc:
            reply_error(req, res, str(exc))
            return
        reply(req, res, hardware_info(entry))
        return
    reply_unsupported(req, res)


# ------------------------------------------------------------------------------------------------
# Hardware
# ------------------------------------------------------------------------------------------------


def hardware_names() -> list[str]:
    """Upstream's names that the catalogue holds, in upstream order, then every other device sorted."""
    from sustainml.catalogue.listing import UPSTREAM_HARDWARE_NAMES

    catalogue = [h.name for h in hardware()]
    upstream = [n for n in UPSTREAM_HARDWARE_NAMES if n in catalogue]
    rest = sorted(n for n in catalogue if n not in upstream)
    return [*upstream, *rest]


def resolve_device(name: str) -> HardwareEntry:
    """The catalogue device ``name`` spells (``local-cpu``: as measured on this machine)."""
    try:
        entry = hardware().get(name)
    except UnknownEntry as exc:
        raise ValueError(f"Unknown hardware {name!r}: {exc}") from exc
    if entry.name == LOCAL_CPU:
        from sustainml.catalogue.localcpu import local_cpu_entry

        return local_cpu_entry()
    return entry


def candidate_devices(hw_constraints: HWConstraints) -> tuple[list[HardwareEntry], str]:
    """(devices to evaluate, how they were chosen) from ``hardware_required``: one device; several;
    or ``auto`` -> ``extra_data.allowed_hardware`` (default: every catalogue device)."""
    requested = [h.strip() for h in hw_constraints.hardware_required if h.strip()] or [DEFAULT_HARDWARE]
    if any(h.casefold() == AUTO for h in requested):
        allowed = hw_constraints.get_extra().get("allowed_hardware")
        if isinstance(allowed, list) and allowed:
            devices: list[HardwareEntry] = []
            skipped: list[str] = []
            for name in allowed:
                try:
                    entry = resolve_device(str(name))
                except ValueError:
                    skipped.append(str(name))
                    continue
                if all(d.name != entry.name for d in devices):
                    devices.append(entry)
            if skipped:
                log.warning("allowed_hardware names not in the catalogue, skipped: %s", ", ".join(skipped))
            if not devices:
                raise ValueError(f"none of extra_data.allowed_hardware is a catalogue device: {allowed!r}")
            note = f"auto: {len(devices)} devices of extra_data.allowed_hardware"
            return devices, note + (f" (unknown, skipped: {', '.join(skipped)})" if skipped else "")
        return [resolve_device(h.name) for h in hardware()], "auto: every catalogue device"
    devices = []
    for name in requested:
        entry = resolve_device(name)
        if all(d.name != entry.name for d in devices):
            devices.append(entry)
    if len(devices) == 1:
        return devices, "hardware_required"
    return devices, f"hardware_required lists {len(devices)} devices: the best is chosen"


def hardware_info(entry: HardwareEntry) -> dict[str, Any]:
    eff = rl.efficiency_for(entry)
    return {
        "name": entry.name,
        "device_class": entry.device_class,
        "description": entry.description,
        "vendor": entry.vendor,
        "year": entry.year,
        "peak_flops": dict(entry.peak_flops),
        "memory_bandwidth_gbs": entry.memory_bandwidth_gbs,
        "memory_gb": entry.memory_gb,
        "tdp_w": entry.tdp_w,
        "idle_w": entry.idle_w,
        "aliases": ", ".join(entry.aliases),
        "estimated": ", ".join(entry.estimated),
        "source": entry.source,
        "efficiency": eff.to_dict(),
        "default_utilisation": pw.default_utilisation(entry.device_class),
        "power_at_default_utilisation_w": pw.device_power_w(
            entry, pw.default_utilisation(entry.device_class)
        ),
    }


# ------------------------------------------------------------------------------------------------
# Inputs of the estimate
# ------------------------------------------------------------------------------------------------


def model_properties_of(ml_model: MLModel) -> dict[str, Any]:
    text = ml_model.model_properties.strip()
    if not text:
        return {}
    try:
        props = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"model_properties of {ml_model.model!r} is not JSON: {exc}") from exc
    if not isinstance(props, dict):
        raise ValueError(f"model_properties of {ml_model.model!r} must be a JSON object")
    return props


def batch_size_of(ml_model: MLModel, props: Mapping[str, Any]) -> int:
    value = props.get("batch_size")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if ml_model.input_batch:
        arrays = ml_model.input_arrays()
        if arrays and arrays[0].ndim >= 1 and arrays[0].shape[0] >= 1:
            return int(arrays[0].shape[0])
    return 1


def precision_of(props: Mapping[str, Any], options: Mapping[str, Any]) -> str:
    value = options.get("precision") or props.get("precision") or "fp32"
    if not isinstance(value, str) or value not in rl.PRECISION_BYTES:
        raise ValueError(
            f"extra_data.precision must be one of {', '.join(rl.PRECISION_BYTES)}, got {value!r}"
        )
    return value


def utilisation_override(options: Mapping[str, Any]) -> float | None:
    value = options.get("utilisation")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"extra_data.utilisation must be a number between 0 and 1, got {value!r}")
    return float(value)


#: Words of a latency requirement that ask for keeping up with a stream rather than for a number.
_REAL_TIME_WORDS: Final = re.compile(r"\b(?:real[\s-]*time|realtime|live|stream\w*)\b", re.IGNORECASE)
#: The real-time factor a "real time" audio requirement is judged on: processing no slower than
#: the audio arrives.
REAL_TIME_FACTOR_LIMIT: Final = 1.0


def latency_is_real_time_wording(app_requirements: AppRequirements | None) -> bool:
    """True when ``max_latency_ms`` was read from words such as "real time" with no number (the
    extractor's evidence span), so that for audio it means keeping up with the audio."""
    if app_requirements is None:
        return False
    evidence = app_requirements.get_extra().get("evidence")
    span = evidence.get("max_latency_ms") if isinstance(evidence, dict) else None
    text = span.get("text") if isinstance(span, dict) else None
    if not isinstance(text, str):
        return False
    return bool(_REAL_TIME_WORDS.search(text)) and not re.search(r"\d", text)


@dataclass(frozen=True)
class Limits:
    max_latency_s: float | None
    max_memory_mb: float | None  # HWConstraints.max_memory_footprint (0 = none)
    max_power_w: float | None
    #: processing seconds per second of audio (``max_real_time_factor`` requirement)
    max_real_time_factor: float | None = None
    #: the latency limit came from "real time" wording: audio models are judged on the real-time
    #: factor instead (``REAL_TIME_FACTOR_LIMIT`` unless ``max_real_time_factor`` is given)
    latency_is_real_time: bool = False

    @classmethod
    def of(cls, app_requirements: AppRequirements | None, hw_constraints: HWConstraints) -> Limits:
        reqs = parse_requirements(app_requirements)
        latency = reqs.get("max_latency_ms")
        power = reqs.get("max_power_w")
        rtf = reqs.get("max_real_time_factor")
        memory = hw_constraints.max_memory_footprint
        return cls(
            float(latency) / 1000.0 if isinstance(latency, float) and latency > 0 else None,
            float(memory) if memory > 0 else None,
            float(power) if isinstance(power, float) and power > 0 else None,
            float(rtf) if isinstance(rtf, float) and rtf > 0 else None,
            latency_is_real_time_wording(app_requirements),
        )

    def real_time_factor_limit(self) -> float | None:
        """The real-time factor an audio model must meet, if any."""
        if self.max_real_time_factor is not None:
            return self.max_real_time_factor
        return REAL_TIME_FACTOR_LIMIT if self.latency_is_real_time else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_latency_s": self.max_latency_s,
            "max_memory_footprint_mb": self.max_memory_mb,
            "max_power_w": self.max_power_w,
            "max_real_time_factor": self.max_real_time_factor,
            "latency_from_real_time_wording": self.latency_is_real_time,
        }


# ------------------------------------------------------------------------------------------------
# The model file and its analysis
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    origin: str  # "catalogue", "user file", "raw_model"
    entry: ModelEntry | None = None
    dims: dict[str, int] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "origin": self.origin, "dims": self.dims}


def weights_mode(entry: ModelEntry) -> WeightsMode:
    return "random" if entry.parameters <= RANDOM_WEIGHTS_MAX_PARAMETERS else "zeros"


def catalogue_file(entry: ModelEntry) -> Path:
    """The entry's ONNX file (built on a cache miss)."""
    return onnx_cache.build(entry, weights_mode(entry)).path


def user_model_dirs() -> list[Path]:
    """Directories user ONNX files may be read from: ``SUSTAINML_MODEL_DIRS`` (os.pathsep-separated),
    else ``<SUSTAINML_DATA_DIR>/user-models``."""
    import os

    raw = os.environ.get(MODEL_DIRS_ENV, "")
    if raw.strip():
        return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip()]
    from sustainml.config import Settings

    return [(Settings.from_env().data_dir / "user-models").resolve()]


def _inside(path: Path, dirs: Sequence[Path]) -> bool:
    real = path.resolve()
    return any(real.is_relative_to(d) for d in dirs)


def _dims_of(props: Mapping[str, Any]) -> dict[str, int]:
    raw = props.get("input_dims") or {}
    if not isinstance(raw, dict):
        raise ValueError(f"model_properties.input_dims must map dimension names to sizes, got {raw!r}")
    out: dict[str, int] = {}
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"model_properties.input_dims[{k!r}] must be a positive integer, got {v!r}")
        out[str(k)] = v
    return out


def load_model(ml_model: MLModel, props: Mapping[str, Any]) -> LoadedModel:
    """The ONNX file to analyse (see the module docstring, step 1)."""
    dims = _dims_of(props)
    entry = models().find(ml_model.model) if ml_model.model.strip() else None
    path_text = ml_model.model_path.strip()
    if path_text and not path_text.startswith(MODEL_PATH_SCHEME) and path_text != "N/A":
        path = Path(path_text).expanduser()
        if path.is_file():
            trusted = [onnx_cache.default_cache_dir().resolve(), *user_model_dirs()]
            if _inside(path, trusted):
                origin = "catalogue" if entry is not None and props.get("synthetic") else "user file"
                return LoadedModel(path.resolve(), origin, entry, dims)
            if entry is None:
                raise ValueError(
                    f"model_path {path_text!r} is outside the model cache and the allowed model directories "
                    f"({', '.join(str(d) for d in user_model_dirs())})"
                )
            log.warning("model_path %s is outside the allowed directories; using the catalogue graph", path)
    if entry is not None:
        return LoadedModel(catalogue_file(entry), "catalogue", entry, dims)
    if ml_model.raw_model:
        return LoadedModel(store_raw_model(bytes(ml_model.raw_model)), "raw_model", None, dims)
    raise ValueError(
        f"cannot estimate model {ml_model.model!r}: it is not a catalogue model and neither model_path "
        "nor raw_model holds an ONNX file"
    )


def store_raw_model(data: bytes) -> Path:
    """Validate ``data`` (a serialized ONNX model, ``onnxgraphs.load_user_model``) and write it into
    the model cache by content hash."""
    from sustainml.onnxgraphs import load_user_model

    digest = hashlib.sha256(data).hexdigest()[:16]
    directory = onnx_cache.default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"user-{digest}.onnx"
    if not path.is_file():
        load_user_model(data, [], onnx_cache.DEFAULT_RAW_MODEL_LIMIT)  # UserModelError is a ValueError
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


_analysis_lock = threading.Lock()
_analysis_memo: OrderedDict[tuple[str, int, int, int, str], ModelReport] = OrderedDict()
_ANALYSIS_MEMO_SIZE: Final = 32


def analysed(path: Path, batch_size: int, dims: Mapping[str, int] | None = None) -> ModelReport:
    """``onnxgraphs.analyze`` of ``path`` at ``batch_size`` (memoised by file identity)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, batch_size, json.dumps(dict(dims or {}), sort_keys=True))
    with _analysis_lock:
        hit = _analysis_memo.get(key)
        if hit is not None:
            _analysis_memo.move_to_end(key)
            return hit
    try:
        report = analyze(path, batch_size=batch_size, dims=dims or None)
    except AnalysisError as exc:
        raise ValueError(f"cannot analyse {path.name}: {exc}") from exc
    with _analysis_lock:
        _analysis_memo[key] = report
        while len(_analysis_memo) > _ANALYSIS_MEMO_SIZE:
            _analysis_memo.popitem(last=False)
    return report


def analysis_summary(report: ModelReport) -> dict[str, Any]:
    return {
        "batch_size": report.batch_size,
        "batch_mode": report.batch_mode,
        "inputs": {k: list(v) for k, v in report.inputs.items()},
        "outputs": {k: list(v) for k, v in report.outputs.items()},
        "parameters": report.parameters,
        "parameter_bytes": report.parameter_bytes,
        "other_constant_bytes": report.other_constant_bytes,
        "macs": report.macs,
        "flops": report.flops,
        "bytes_moved": report.bytes_moved,
        "activation_bytes": report.activation_bytes,
        "peak_activation_bytes": report.peak_activation_bytes,
        "operators": len(report.ops),
        "unsupported_ops": list(report.unsupported_ops),
        "by_op_type": [asdict(s) for s in report.by_op_type()[:10]],
        "flops_convention": FORMULAS["flops"],
    }


# ------------------------------------------------------------------------------------------------
# Evaluating a device
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceEvaluation:
    """One device's figures: from the graph's roofline (``roofline``) or, for a served generative
    model costed analytically, from ``serving`` (then ``power_w`` is that of all its devices and
    the memory figures are per device)."""

    hw: HardwareEntry
    roofline: rl.RooflineEstimate | None
    utilisation: float
    utilisation_source: str
    power_w: float
    footprint_mb: float
    weights_mb: float
    activations_mb: float
    capacity_mb: float
    limits: Limits
    serving: sv.ServingEstimate | None = None
    trees: tr.TreeEstimate | None = None
    unsupported: str = ""  # why the device cannot run this kind of model (a violation)
    audio_s: float = 0.0  # seconds of audio one batch element covers in ``latency_s`` (audio models)

    @property
    def real_time_factor(self) -> float | None:
        """Processing seconds per second of audio (audio models only)."""
        return self.latency_s / self.audio_s if self.audio_s > 0 else None

    @property
    def latency_s(self) -> float:
        """Latency of one batch, which is also that of each answer in it."""
        if self.serving is not None:
            return self.serving.batch_seconds
        if self.trees is not None:
            return self.trees.latency_s
        assert self.roofline is not None
        return self.roofline.latency_s

    @property
    def batch_size(self) -> int:
        if self.serving is not None:
            return self.serving.scenario.batch_size
        if self.trees is not None:
            return self.trees.batch_size
        assert self.roofline is not None
        return self.roofline.batch_size

    @property
    def num_devices(self) -> int:
        return self.serving.num_devices if self.serving is not None else 1

    @property
    def bound(self) -> str:
        if self.serving is not None:
            slowest = max(self.serving.phases, key=lambda p: p.seconds)
            return slowest.bound
        if self.trees is not None:
            return self.trees.bound
        assert self.roofline is not None
        return self.roofline.bound

    @property
    def energy_per_batch_j(self) -> float:
        return self.power_w * self.latency_s

    @property
    def energy_per_inference_j(self) -> float:
        return self.energy_per_batch_j / self.batch_size

    @property
    def fits_device(self) -> bool:
        return self.footprint_mb <= self.capacity_mb

    @property
    def violations(self) -> list[str]:
        out: list[str] = []
        if self.unsupported:
            out.append(f"runtime: {self.unsupported}")
        if not self.fits_device:
            out.append(
                f"memory: footprint {self.footprint_mb:.1f} MB > device memory {self.capacity_mb:.0f} MB"
            )
        lim = self.limits
        if lim.max_memory_mb is not None and self.footprint_mb > lim.max_memory_mb:
            out.append(
                f"max_memory_footprint: footprint {self.footprint_mb:.1f} MB > limit {lim.max_memory_mb:g} MB"
            )
        rtf_limit = lim.real_time_factor_limit()
        rtf = self.real_time_factor
        if rtf is not None and rtf_limit is not None and rtf > rtf_limit:
            out.append(
                f"real-time factor: {rtf:.3g} s of processing per s of audio > {rtf_limit:g} "
                "(the audio is processed slower than it arrives)"
            )
        latency_replaced = self.audio_s > 0 and lim.latency_is_real_time
        if not latency_replaced and lim.max_latency_s is not None and self.latency_s > lim.max_latency_s:
            out.append(
                f"latency: {self.latency_s * 1000:.3g} ms > max_latency_ms {lim.max_latency_s * 1000:g}"
            )
        if lim.max_power_w is not None and self.power_w > lim.max_power_w:
            out.append(f"power: {self.power_w:.3g} W > max_power_w {lim.max_power_w:g}")
        return out

    @property
    def feasible(self) -> bool:
        return not self.violations

    def power_dict(self) -> dict[str, Any]:
        return {
            "idle_w": self.hw.idle_w,
            "tdp_w": self.hw.tdp_w,
            "utilisation": self.utilisation,
            "utilisation_source": self.utilisation_source,
            "power_w": self.power_w,
            "formula": FORMULAS["power_consumption"],
        }

    def memory_dict(self) -> dict[str, Any]:
        lim = self.limits.max_memory_mb
        return {
            "weights_mb": self.weights_mb,
            "peak_activations_mb": self.activations_mb,
            "footprint_mb": self.footprint_mb,
            "device_memory_mb": self.capacity_mb,
            "fits_device": self.fits_device,
            "max_memory_footprint_mb": lim,
            "within_max_memory_footprint": None if lim is None else self.footprint_mb <= lim,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "hardware": self.hw.name,
            "device_class": self.hw.device_class,
            "latency_s": self.latency_s,
            "power_w": self.power_w,
            "energy_per_inference_j": self.energy_per_inference_j,
            "memory_footprint_mb": self.footprint_mb,
            "bound": self.bound,
            "estimated_hardware_figures": list(self.hw.estimated),
            "feasible": self.feasible,
            "violations": self.violations,
        }


def evaluate_device(
    report: ModelReport,
    device: HardwareEntry,
    precision: str = "fp32",
    limits: Limits | None = None,
    utilisation: float | None = None,
    engine: str | None = None,
    audio_s: float = 0.0,
) -> DeviceEvaluation:
    """Latency, power, energy and memory of ``report`` on ``device`` (``engine``: the roofline's,
    default the device class's; ``audio_s``: seconds of audio one pass covers, for audio models)."""
    roof = _roofline(report, device, precision, engine)
    scale = rl.precision_scale(precision)
    weights_mb = (report.parameter_bytes * scale + report.other_constant_bytes) / 1e6
    activations_mb = report.peak_activation_bytes * scale / 1e6
    return _roofline_evaluation(device, roof, weights_mb, activations_mb, limits, utilisation, audio_s)


_ROOFLINE_MEMO_SIZE: Final = 4096
_roofline_memo: OrderedDict[tuple[int, int, str, str | None], tuple[Any, Any, rl.RooflineEstimate]] = (
    OrderedDict()
)
_roofline_lock = threading.Lock()


def _roofline(
    report: ModelReport, device: HardwareEntry, precision: str, engine: str | None
) -> rl.RooflineEstimate:
    """``roofline.estimate`` memoised per (analysed report, device, precision, engine): ``auto``
    evaluates every allowed device, and the same model comes back task after task. Reports are
    themselves memoised (``analysed``) and devices are catalogue entries, so identity is the key;
    the memo keeps both objects alive, so an id is never reused while its entry exists."""
    key = (id(report), id(device), precision, engine)
    with _roofline_lock:
        hit = _roofline_memo.get(key)
        if hit is not None and hit[0] is report and hit[1] is device:
            _roofline_memo.move_to_end(key)
            return hit[2]
    roof = rl.estimate(report, device, precision, engine=engine)
    with _roofline_lock:
        _roofline_memo[key] = (report, device, roof)
        while len(_roofline_memo) > _ROOFLINE_MEMO_SIZE:
            _roofline_memo.popitem(last=False)
    return roof


def _roofline_evaluation(
    device: HardwareEntry,
    roof: rl.RooflineEstimate,
    weights_mb: float,
    activations_mb: float,
    limits: Limits | None,
    utilisation: float | None,
    audio_s: float = 0.0,
) -> DeviceEvaluation:
    """A device's figures from a roofline latency, at the class's (or the given) utilisation."""
    if utilisation is None:
        u, u_source = pw.default_utilisation(device.device_class), pw.UTILISATION_SOURCE
    else:
        u, u_source = utilisation, "extra_data.utilisation"
    return DeviceEvaluation(
        hw=device,
        roofline=roof,
        utilisation=u,
        utilisation_source=u_source,
        power_w=pw.device_power_w(device, u),
        footprint_mb=weights_mb + activations_mb,
        weights_mb=weights_mb,
        activations_mb=activations_mb,
        capacity_mb=device.memory_gb * 1000.0,
        limits=limits if limits is not None else Limits(None, None, None),
        audio_s=audio_s,
    )


def evaluate_serving(
    request: ServingRequest,
    device: HardwareEntry,
    limits: Limits | None = None,
    utilisation: float | None = None,
) -> DeviceEvaluation:
    """Per-answer latency and energy of a served generative model on ``device`` (analytic)."""
    if request.training_devices is not None:
        request = replace(request, inputs=serving_devices(request, device))
    scenario = sv.build_scenario(request.kind, request.inputs, device, request.goal, utilisation)

    def estimate(sc: sv.Scenario) -> sv.ServingEstimate:
        if request.kind == "diffusion":
            assert request.diffusion is not None
            return sv.estimate_diffusion(request.diffusion, device, sc)
        assert request.spec is not None
        if request.kind == "asr":
            return sv.estimate_asr(request.spec, device, sc)
        return sv.cached_llm(request.spec, device, sc)

    est = estimate(scenario)
    if "requests_per_s" in request.inputs and "batch_size" not in request.inputs:
        # Little's law: requests in flight = arrival rate x time in the system (a few fixed-point rounds)
        rate = float(request.inputs["requests_per_s"][0])
        for _ in range(4):
            batch = max(1, math.ceil(rate * est.batch_seconds))
            if batch == est.scenario.batch_size:
                break
            est = estimate(replace(est.scenario, batch_size=batch))
    u = est.utilisation
    source = "extra_data.utilisation" if utilisation is not None else pw.UTILISATION_SOURCE
    per_device_weights = est.weights_gb * 1000.0 / est.num_devices
    per_device_kv = est.kv_cache_gb * 1000.0 / est.num_devices
    return DeviceEvaluation(
        hw=device,
        roofline=None,
        utilisation=u,
        utilisation_source=source,
        power_w=est.power_w,
        footprint_mb=per_device_weights + per_device_kv,
        weights_mb=per_device_weights,
        activations_mb=per_device_kv,
        capacity_mb=device.memory_gb * 1000.0,
        limits=limits if limits is not None else Limits(None, None, None),
        serving=est,
        audio_s=est.scenario.audio_seconds if est.scenario.kind == "asr" else 0.0,
    )


def serving_devices(request: ServingRequest, device: HardwareEntry) -> dict[str, tuple[Any, str]]:
    """``request.inputs`` with ``num_devices`` = the fewest devices (1, 2, 4, ... up to the training
    run's count) whose memory holds the model's weights and KV cache for the scenario."""
    assert request.training_devices is not None
    most = max(1, request.training_devices)
    n = 1
    while True:
        inputs = dict(request.inputs)
        inputs["num_devices"] = (
            n,
            f"fewest of the training run's {most} devices that hold the model for serving "
            "(the count in the text is the training run's)",
        )
        if n >= most:
            return inputs
        sc = sv.build_scenario(request.kind, inputs, device, request.goal)
        if request.kind == "diffusion" or request.spec is None:
            return inputs
        est = sv.estimate_asr(request.spec, device, sc) if request.kind == "asr" else sv.cached_llm(
            request.spec, device, sc
        )
        if (est.weights_gb + est.kv_cache_gb) <= device.memory_gb * n:
            return inputs
        n = min(most, n * 2)


def ranked(evaluations: Sequence[DeviceEvaluation]) -> list[DeviceEvaluation]:
    """Feasible first, then by energy per inference, latency and name."""
    return sorted(
        evaluations,
        key=lambda e: (not e.feasible, e.energy_per_inference_j, e.latency_s, e.hw.name),
    )


def choose(evaluations: Sequence[DeviceEvaluation]) -> DeviceEvaluation:
    """The lowest-energy feasible device; else the lowest-energy one that fits in memory; else the
    lowest-energy one."""
    if not evaluations:
        raise ValueError("no hardware to evaluate")
    feasible = [e for e in evaluations if e.feasible]
    fitting = [e for e in evaluations if e.fits_device]
    pool = feasible or fitting or list(evaluations)
    return min(pool, key=lambda e: (e.energy_per_inference_j, e.latency_s, e.hw.name))


# ------------------------------------------------------------------------------------------------
# Measuring on local-cpu
# ------------------------------------------------------------------------------------------------


def measured_on_this_cpu(
    loaded: LoadedModel, batch_size: int, ml_model: MLModel, estimate_s: float
) -> dict[str, Any]:
    """onnxruntime latency of the model on this CPU next to the estimate (errors reported, not raised)."""
    try:
        arrays: list[np.ndarray[Any, Any]] = ml_model.input_arrays() if ml_model.input_batch else []
        m = measuring.measure_latency(loaded.path, batch_size, arrays, dims=loaded.dims)
    except Exception as exc:  # a measurement is an extra: report why it is missing
        log.warning("measuring %s on this CPU failed: %s", loaded.path.name, exc)
        return {"error": f"{type(exc).__name__}: {exc}"}
    out = m.to_dict()
    out["inputs"] = "input_batch" if arrays else "seeded synthetic inputs, regenerated (as ML_MODEL's)"
    out["estimated_s"] = estimate_s
    out["ratio_measured_over_estimated"] = m.median_s / estimate_s if estimate_s > 0 else math.inf
    out["method"] = (
        "onnxruntime CPU provider, all graph optimisations, one thread per usable core; warm-up runs, "
        "then the median of the timed runs of the whole batch"
    )
    return out


__all__ = [
    "DeviceEvaluation",
    "Limits",
    "LoadedModel",
    "analysed",
    "candidate_devices",
    "catalogue_file",
    "choose",
    "configuration_callback",
    "cost_without_graph",
    "costing_method",
    "evaluate_device",
    "evaluate_without_graph",
    "hardware_info",
    "hardware_names",
    "load_model",
    "ranked",
    "resolve_device",
    "store_raw_model",
    "task_callback",
    "user_model_dirs",
]
