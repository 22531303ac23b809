"""HW_RESOURCES: one device's figures for the model (latency, power, energy, memory, the
constraints it meets) and the choice among the candidate devices."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from sustainml.catalogue import HardwareEntry, ModelEntry
from sustainml.estimate import memo
from sustainml.estimate import power as pw
from sustainml.estimate import roofline as rl
from sustainml.estimate import serving as sv
from sustainml.estimate import trees as tr
from sustainml.messages.types import AppRequirements, HWConstraints
from sustainml.onnxgraphs.analyze import ModelReport
from sustainml.workers.logic.common import parse_requirements
from sustainml.workers.logic.hw_resources.serving_request import ServingRequest, graph_engine_of

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
    data_dir: Path | None = None,
) -> DeviceEvaluation:
    """Latency, power, energy and memory of ``report`` on ``device`` (``engine``: the roofline's,
    default the device class's; ``audio_s``: seconds of audio one pass covers, for audio models;
    ``data_dir``: where this machine's latency calibration is kept, for ``local-cpu``)."""
    roof = _roofline(report, device, precision, engine, data_dir)
    scale = rl.precision_scale(precision)
    weights_mb = (report.parameter_bytes * scale + report.other_constant_bytes) / 1e6
    activations_mb = report.peak_activation_bytes * scale / 1e6
    return _roofline_evaluation(device, roof, weights_mb, activations_mb, limits, utilisation, audio_s)


#: ``roofline.estimate`` per (analysed report, device, precision, engine, efficiency factors):
#: ``auto`` evaluates every allowed device, and the same model comes back task after task.
#: Reports are memoised themselves (``analysed``) and devices are catalogue entries, so both take
#: part by identity; the efficiency factors by value (a recalibrated ``local-cpu`` misses).
_rooflines: Final = memo.Memo[rl.RooflineEstimate]("hw_resources.roofline", 4096)


def _roofline(
    report: ModelReport, device: HardwareEntry, precision: str, engine: str | None, data_dir: Path | None
) -> rl.RooflineEstimate:
    efficiency = rl.efficiency_for(device, data_dir, engine)
    return _rooflines.get(
        (precision, engine, efficiency),
        lambda: rl.estimate(report, device, precision, efficiency, engine=engine),
        (report, device),
    )


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
        est = (
            sv.estimate_asr(request.spec, device, sc)
            if request.kind == "asr"
            else sv.cached_llm(request.spec, device, sc)
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


def evaluate_without_graph(
    entry: ModelEntry,
    device: HardwareEntry,
    batch: int = 1,
    props: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
    utilisation: float | None = None,
    data_dir: Path | None = None,
) -> DeviceEvaluation:
    """One device's figures for a catalogue entry costed without a graph (see ``cost_without_graph``;
    ``data_dir``: where this machine's latency calibration is kept, for ``local-cpu``)."""
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
    roof = rl.published_estimate(
        entry.macs, entry.parameters, device, batch, precision, engine, calibration_dir=data_dir
    )
    weights_mb = entry.parameters * rl.PRECISION_BYTES[precision] / 1e6
    activations_mb = weights_mb * rl.PUBLISHED_ACTIVATION_FRACTION
    return _roofline_evaluation(device, roof, weights_mb, activations_mb, lim, utilisation)
