"""HW_RESOURCES: the output record and its ``extra_data`` for each way a model is costed (graph,
served generative model, catalogue figures without a graph), and the run on this CPU."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sustainml.catalogue import HardwareEntry, ModelEntry
from sustainml.estimate import roofline as rl
from sustainml.estimate import serving as sv
from sustainml.estimate import trees as tr
from sustainml.messages.types import HWResource, MLModel
from sustainml.onnxgraphs.analyze import ModelReport
from sustainml.workers.logic.hw_resources.evaluation import (
    FORMULAS,
    REAL_TIME_FACTOR_LIMIT,
    UNITS,
    DeviceEvaluation,
    Limits,
    choose,
    evaluate_serving,
    evaluate_without_graph,
    ranked,
    serving_devices,
)
from sustainml.workers.logic.hw_resources.model_file import LoadedModel, batch_size_of
from sustainml.workers.logic.hw_resources.serving_request import ServingRequest

if TYPE_CHECKING:
    import numpy.typing as npt

log = logging.getLogger(__name__)

RANKING_SIZE: Final = 5


def report_chosen(hw: HWResource, chosen: DeviceEvaluation, description: str = "") -> None:
    """The main outputs of the chosen device."""
    hw.hw_description = description or chosen.hw.name
    hw.latency = chosen.latency_s
    hw.power_consumption = chosen.power_w
    hw.memory_footprint_of_ml_model = chosen.footprint_mb
    hw.max_hw_memory_footprint = chosen.capacity_mb


def identity(
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


def checks(chosen: DeviceEvaluation, limits: Limits) -> dict[str, Any]:
    return {
        "memory": chosen.memory_dict(),
        "requirements": limits.to_dict(),
        "constraints_met": chosen.feasible,
        "violations": chosen.violations,
    }


def hardware_sources(chosen: DeviceEvaluation) -> dict[str, Any]:
    return {
        "hardware": chosen.hw.source,
        "hardware_estimated_fields": list(chosen.hw.estimated),
        "utilisation": chosen.utilisation_source,
    }


def add_real_time(extra: dict[str, Any], chosen: DeviceEvaluation, limits: Limits) -> None:
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


def add_ranking(extra: dict[str, Any], evaluations: Sequence[DeviceEvaluation]) -> None:
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
    name = chosen.hw.name
    report_chosen(hw, chosen, name if est.num_devices == 1 else f"{est.num_devices} x {name}")
    extra: dict[str, Any] = {
        **identity(chosen, requested, selection, ml_model),
        "num_devices": est.num_devices,
        "model_source": request.source,
        "kind": request.kind,
        "batch_size": est.scenario.batch_size,
        "precision": est.scenario.precision,
        "engine": est.engine.name,
        "scenario": est.scenario.to_dict(),
        "scenario_sources": {
            **{k: where for k, (_, where) in request.inputs.items()},
            **(
                {"num_devices": serving_devices(request, chosen.hw)["num_devices"][1]}
                if request.training_devices is not None
                else {}
            ),
        },
        "assumed_defaults": {
            k: getattr(est.scenario, _SCENARIO_FIELD.get(k, k)) for k in est.scenario.assumed
        },
        "serving": est.to_dict(),
        "power": chosen.power_dict(),
        "energy_per_inference_j": est.energy_per_inference_j,
        "energy_per_batch_j": est.energy_per_batch_j,
        "latency_per_inference_s": est.latency_per_inference_s,
        **checks(chosen, limits),
        "sources": {
            **hardware_sources(chosen),
            "engine": est.engine.source,
            "method": "sustainml.estimate.serving (docs/estimation.md, Inference latency and serving)",
        },
        "formulas": SERVING_FORMULAS,
        "units": SERVING_UNITS,
    }
    add_real_time(extra, chosen, limits)
    add_ranking(extra, evaluations)
    hw.set_extra(extra)


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
    data_dir: Path | None = None,
) -> None:
    """HW_RESOURCES for a catalogue entry with no graph, transformer shape or per-step pipeline:
    a tree ensemble (``estimate.trees``) or a model known by its published MACs and parameters
    (``roofline.published_estimate``)."""
    batch = batch_size_of(ml_model, props)
    evaluations = [
        evaluate_without_graph(entry, d, batch, props, options, limits, utilisation, data_dir)
        for d in devices
    ]
    chosen = choose(evaluations)
    report_chosen(hw, chosen)
    extra: dict[str, Any] = {
        **identity(chosen, requested, selection, ml_model),
        "model_file": "none: the catalogue entry has no graph; costed from its published figures",
        "batch_size": batch,
        "power": chosen.power_dict(),
        "energy_per_inference_j": chosen.energy_per_inference_j,
        "energy_per_batch_j": chosen.energy_per_batch_j,
        "latency_per_inference_s": chosen.latency_s,
        **checks(chosen, limits),
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
        extra["sources"] = {**hardware_sources(chosen), "trees": tr.SOURCES}
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
        extra["sources"] = {**hardware_sources(chosen), "efficiency": chosen.roofline.efficiency.source}
        extra["formulas"] = {
            **FORMULAS,
            "latency": "max(2 x MACs x batch / (peak x eta_c), weights / (bandwidth x eta_m)) + kernels x "
            "fixed cost",
            "memory_footprint_of_ml_model": "weights at the precision x (1 + assumed activation fraction) "
            "/ 1e6",
        }
    add_ranking(extra, evaluations)
    hw.set_extra(extra)


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


def measured_on_this_cpu(
    loaded: LoadedModel, batch_size: int, ml_model: MLModel, estimate_s: float, data_dir: Path
) -> dict[str, Any]:
    """onnxruntime latency of the model on this CPU next to the estimate (errors reported, not raised)."""
    from sustainml.estimate import measure as measuring  # onnx and onnxruntime: on the first run

    try:
        arrays: list[npt.NDArray[Any]] = ml_model.input_arrays() if ml_model.input_batch else []
        m = measuring.measure_latency(
            loaded.path, batch_size, arrays, dims=loaded.dims, cache_dir=data_dir / measuring.MEASUREMENTS_DIR
        )
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
