"""HW_RESOURCES: latency, power and memory of the chosen model on the required hardware.

For the device ``hardware_required[0]`` (``tables.HARDWARE``, name or alias, case- and
punctuation-insensitive) and the model's parameters and MACs (``MLModel.model_properties``, else the
catalogue entry of ``MLModel.model``):

- latency [s] = 2 x MACs / (peak fp32 FLOP/s x ``COMPUTE_EFFICIENCY``)
- power_consumption [W] = idle + ``UTILISATION`` x (TDP - idle)
- memory_footprint_of_ml_model [MB] = params x 4 B / 1e6 + activation allowance
  (max(``ACTIVATION_FRACTION`` x weights, ``ACTIVATION_FLOOR_MB``))
- max_hw_memory_footprint [MB] = device memory GB x 1000

``NO_MODEL`` -> the upstream sentinel (hw_description = the hardware asked for, zeros). Unknown
hardware -> ``ValueError`` listing the known names (the runtime publishes it as an error output).
"""

from __future__ import annotations

import json
from typing import Any, TypeGuard

from sustainml.messages.types import (
    AppRequirements,
    HWConstraints,
    HWResource,
    MLModel,
    NodeStatus,
    RequestType,
    ResponseType,
)
from sustainml.workers.logic.common import (
    find_hardware,
    find_model,
    parse_requirements,
    reply,
    reply_unsupported,
)
from sustainml.workers.logic.tables import (
    ACTIVATION_FLOOR_MB,
    ACTIVATION_FRACTION,
    COMPUTE_EFFICIENCY,
    DEFAULT_HARDWARE,
    HARDWARE,
    NO_MODEL,
    NO_MODEL_HW_ERROR,
    UTILISATION,
    HardwareSpec,
)

UNITS = {
    "latency": "s",
    "power_consumption": "W",
    "memory_footprint_of_ml_model": "MB",
    "max_hw_memory_footprint": "MB",
}


def task_callback(
    ml_model: MLModel,
    app_requirements: AppRequirements,
    hw_constraints: HWConstraints,
    node_status: NodeStatus,
    hw: HWResource,
) -> None:
    requested = hw_constraints.hardware_required[0].strip() if hw_constraints.hardware_required else ""
    requested = requested or DEFAULT_HARDWARE

    if ml_model.model == NO_MODEL:
        hw.hw_description = requested
        hw.power_consumption = 0.0
        hw.latency = 0.0
        hw.memory_footprint_of_ml_model = 0.0
        hw.max_hw_memory_footprint = 0.0
        hw.set_extra({"error_code": NO_MODEL, "error": NO_MODEL_HW_ERROR})
        return

    device = resolve_hardware(requested)
    parameters, macs, model_source = model_size(ml_model)

    flops = 2.0 * macs
    latency_s = flops / (device.peak_fp32_flops * COMPUTE_EFFICIENCY)
    power_w = device.idle_w + UTILISATION * (device.tdp_w - device.idle_w)
    weights_mb = parameters * 4 / 1e6
    activation_mb = max(ACTIVATION_FRACTION * weights_mb, ACTIVATION_FLOOR_MB)
    footprint_mb = weights_mb + activation_mb
    capacity_mb = device.memory_gb * 1000.0

    hw.hw_description = device.name
    hw.latency = latency_s
    hw.power_consumption = power_w
    hw.memory_footprint_of_ml_model = footprint_mb
    hw.max_hw_memory_footprint = capacity_mb

    extra: dict[str, Any] = {
        "hardware": device.name,
        "hardware_requested": requested,
        "device": device.description,
        "model": ml_model.model,
        "parameters": parameters,
        "macs": macs,
        "flops": flops,
        "model_size_source": model_source,
        "peak_fp32_flops": device.peak_fp32_flops,
        "compute_efficiency": COMPUTE_EFFICIENCY,
        "tdp_w": device.tdp_w,
        "idle_w": device.idle_w,
        "utilisation": UTILISATION,
        "weights_mb": weights_mb,
        "activation_allowance_mb": activation_mb,
        "fits_in_device_memory": footprint_mb <= capacity_mb,
        "energy_per_inference_j": power_w * latency_s,
        "hardware_source": device.source,
        "formulas": {
            "latency": "2 x MACs / (peak_fp32_flops x compute_efficiency)",
            "power_consumption": "idle_w + utilisation x (tdp_w - idle_w)",
            "memory_footprint_of_ml_model": "params x 4 / 1e6 + max(0.2 x weights_mb, 4 MB)",
        },
        "units": UNITS,
    }
    latency_ms = parse_requirements(app_requirements).get("max_latency_ms")
    if isinstance(latency_ms, float):
        extra["max_latency_ms"] = latency_ms
        extra["meets_latency_requirement"] = latency_s * 1000.0 <= latency_ms
    if hw_constraints.max_memory_footprint > 0:
        extra["within_max_memory_footprint"] = footprint_mb <= hw_constraints.max_memory_footprint
    hw.set_extra(extra)


def configuration_callback(req: RequestType, res: ResponseType) -> None:
    if req.configuration.strip() == "hardwares":
        reply(req, res, {"hardwares": ", ".join(hardware_names())})
        return
    reply_unsupported(req, res)


def hardware_names() -> list[str]:
    return sorted((h.name for h in HARDWARE), key=lambda n: (n.casefold(), n))


def resolve_hardware(name: str) -> HardwareSpec:
    device = find_hardware(name)
    if device is None:
        raise ValueError(f"Unknown hardware {name!r}; known hardware: {', '.join(hardware_names())}")
    return device


def model_size(ml_model: MLModel) -> tuple[int, float, str]:
    """(parameters, MACs, where they came from) of the model to estimate."""
    if ml_model.model_properties.strip():
        try:
            props = json.loads(ml_model.model_properties)
        except json.JSONDecodeError as exc:
            raise ValueError(f"model_properties of {ml_model.model!r} is not JSON: {exc}") from exc
        if isinstance(props, dict):
            params, macs = props.get("parameters"), props.get("macs")
            if _positive_number(params) and _positive_number(macs):
                return int(params), float(macs), "model_properties"
    spec = find_model(ml_model.model)
    if spec is not None:
        return spec.parameters, spec.macs, "catalogue"
    raise ValueError(
        f"cannot estimate model {ml_model.model!r}: model_properties has no positive 'parameters' and "
        "'macs' and the name is not in the catalogue"
    )


def _positive_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
