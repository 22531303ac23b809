"""CARBON_FOOTPRINT: the estimate of the proposed model on the proposed hardware: the training run,
the inferences, the workload, and where or on what it would emit less."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from sustainml.catalogue import models
from sustainml.config import EstimationSettings
from sustainml.estimate import transformer
from sustainml.estimate.carbon import (
    ALTERNATIVES,
    DEFAULT_INFERENCES,
    REF_INFERENCES_DEFAULT,
    GridIntensity,
    HardwareOption,
    carbon_kg,
    describe_intensity,
    find_hardware,
    greener_regions,
    hardware_options,
    inference_energy_wh,
)
from sustainml.estimate.training import (
    PRECISIONS,
    Assumption,
    TrainingEstimate,
    estimate_training,
    fmt,
    number_setting,
    precision_setting,
)
from sustainml.estimate.transformer import TransformerSpec
from sustainml.messages.types import (
    HWResource,
    MLModel,
    UserInput,
)
from sustainml.workers.logic.carbon_footprint.context import (
    location_pue,
    read_context,
    stated_power,
    training_summary,
)

log = logging.getLogger(__name__)


def estimate(
    ml_model: MLModel,
    user_input: UserInput,
    hw: HWResource,
    hw_extra: dict[str, Any],
    incoming: dict[str, Any],
    target: float | None,
    settings: EstimationSettings,
) -> dict[str, Any]:
    """The output's extra_data (with the main figures under ``_carbon_kg``, ``_energy_wh`` and
    ``_intensity``) for a model HW_RESOURCES costed."""
    hw_name = hw_extra.get("hardware") if isinstance(hw_extra.get("hardware"), str) else ""
    device = find_hardware(str(hw_name or ""), hw.hw_description, data_dir=settings.data_dir)
    if device is None:
        log.warning(
            "hardware %r is not in the catalogue: training speed and power taken from HW_RESOURCES",
            hw.hw_description,
        )
    forward, forward_source = _forward_flops(ml_model, hw_extra)
    fallback_rate = forward / hw.latency if forward and hw.latency > 0 else 0.0

    ctx = read_context(user_input, incoming, device, settings)
    grid = ctx.grid
    values = ctx.values
    active = _catalogue_size(ml_model.model, values)
    spec = catalogue_spec(ml_model.model, values)
    training = estimate_training(
        values,
        device=device,
        forward_flops=forward,
        forward_source=forward_source,
        maximum_samples=user_input.maximum_samples,
        minimum_samples=user_input.minimum_samples,
        fallback_power_w=hw.power_consumption,
        fallback_rate=fallback_rate,
        stated_power_w=stated_power(ctx.choice, device),
        default_pue_setting=location_pue(grid, device),
        active_parameters=active,
        architecture=spec,
    )
    ci = grid.g_per_kwh
    training_block, training_kg, training_lines = training_summary(training, ci, device)

    # Inference on the same device and site as the training: same PUE. HW_RESOURCES' per-answer
    # energy (one request, already divided by the batch) when it gives one: one figure per device.
    count = number_setting(incoming, "inferences", strict_minimum=False)
    inferences = float(DEFAULT_INFERENCES) if count is None else count
    per_answer = hw_extra.get("energy_per_inference_j")
    if isinstance(per_answer, int | float) and _positive(per_answer):
        per_inference_wh = float(per_answer) / 3600.0 * training.pue
        inference_line = (
            f"energy per inference = {fmt(float(per_answer))} J (HW_RESOURCES energy_per_inference_j) / 3600 "
            f"x PUE {fmt(training.pue)} = {fmt(per_inference_wh)} Wh"
        )
    else:
        per_inference_wh = inference_energy_wh(hw.power_consumption, hw.latency, training.pue)
        inference_line = (
            f"energy per inference = {fmt(hw.power_consumption)} W x {fmt(hw.latency)} s x "
            f"PUE {fmt(training.pue)} / 3600 = {fmt(per_inference_wh)} Wh"
        )
    per_inference_kg = carbon_kg(per_inference_wh, ci)
    inference_wh = per_inference_wh * inferences
    inference_kg = carbon_kg(inference_wh, ci)
    workload_wh = training.energy_wh + inference_wh
    workload_kg = carbon_kg(workload_wh, ci)

    assumptions: dict[str, Assumption] = dict(training.assumptions)
    assumptions["inferences"] = (
        Assumption(_num(inferences), "user", "extra_data.inferences")
        if count is not None
        else Assumption(DEFAULT_INFERENCES, "default", REF_INFERENCES_DEFAULT)
    )
    assumptions["inference_power_w"] = Assumption(
        hw.power_consumption, "hw_resources", "HWResource.power_consumption"
    )
    assumptions["inference_latency_s"] = Assumption(hw.latency, "hw_resources", "HWResource.latency")
    assumptions["carbon_intensity"] = Assumption(ci, grid.source, _ci_reference(grid))

    lines = list(training.breakdown)
    lines.append(describe_intensity(grid))
    lines += training_lines
    lines.append(inference_line)
    lines.append(
        f"carbon per inference = {fmt(per_inference_wh)} Wh / 1000 x {fmt(ci)} gCO2e/kWh / 1000 = "
        f"{fmt(per_inference_kg)} kgCO2e"
    )
    lines.append(
        f"inferences = {fmt(per_inference_wh)} Wh x {fmt(inferences)} = {fmt(inference_wh)} Wh = "
        f"{fmt(inference_kg)} kgCO2e"
    )
    lines.append(
        f"workload = {fmt(training.energy_wh)} Wh training + {fmt(inference_wh)} Wh inference = "
        f"{fmt(workload_wh)} Wh = {fmt(workload_kg)} kgCO2e"
    )

    regions_alt = greener_regions(
        grid, workload_wh, training.energy_wh, movable=ctx.movable, why_fixed=ctx.why_fixed
    )
    hw_alt: dict[str, Any]
    hw_next: list[dict[str, Any]] = []
    if device is None:
        hw_alt = {
            "scope": "",
            "current": hw.hw_description,
            "options": [],
            "note": "hardware not in the catalogue",
        }
    else:
        requested = precision_setting(incoming)
        pue_given = number_setting(incoming, "pue", minimum=1.0, strict_minimum=False)
        scope, ranked = hardware_options(
            device,
            training,
            inference_wh_per_inference=per_inference_wh,
            inferences=inferences,
            inference_precision=_inference_precision(hw_extra),
            g_per_kwh=ci,
            memory_mb=hw.memory_footprint_of_ml_model,
            requested_precision=requested,
            pue_override=pue_given,
        )
        hw_alt = {
            "scope": scope,
            "current": device.name,
            "current_kg": workload_kg,
            # positive savings only: a "greener" device that emits more is no alternative
            "options": [
                o.as_dict() for o in _distinct([o for o in ranked if o.saving_percent > 0])[:ALTERNATIVES]
            ],
        }
        # Strictly better (not a rounding tie); one device per figure: H100, H100_x2 and H100_x4
        # have the same FLOP/s per W and would be the same step.
        better = sorted(
            (o for o in ranked if o.training_kg < training_kg * (1.0 - 1e-9)),
            key=lambda o: (o.training_kg, o.device.name),
        )
        seen: set[str] = set()
        for o in better:
            figure = f"{o.training_kg:.9g}"
            if figure in seen:
                continue
            seen.add(figure)
            hw_next.append(
                {
                    "kind": "hardware",
                    "hardware": o.device.name,
                    "estimated_kg": o.training_kg,
                    "saving_percent": _saving(training_kg, o.training_kg),
                    "meets_target": None if target is None else o.training_kg <= target,
                }
            )
            if len(hw_next) == ALTERNATIVES:
                break

    next_options = hw_next
    if _model_choice_open(ml_model.model, incoming):
        next_options.append({"kind": "model", "exclude": ml_model.model})

    return {
        "_carbon_kg": training_kg,
        "_energy_wh": training.energy_wh,
        "_intensity": ci,
        "mode": "estimate",
        "model": ml_model.model,
        "hardware": device.name if device is not None else hw.hw_description,
        "device_class": device.device_class if device is not None else "",
        "hardware_notes": ctx.choice.notes,
        "training": training_block,
        "inference": {
            "power_w": hw.power_consumption,
            "latency_s": hw.latency,
            "pue": training.pue,
            "energy_per_inference_wh": per_inference_wh,
            # range from the site's PUE range (HW_RESOURCES' figure at the device carries none)
            "energy_per_inference_wh_low": per_inference_wh * _pue_factor(training, low=True),
            "energy_per_inference_wh_high": per_inference_wh * _pue_factor(training, low=False),
            "carbon_per_inference_kg": per_inference_kg,
            "inferences": _num(inferences),
            "total_energy_wh": inference_wh,
            "total_carbon_kg": inference_kg,
        },
        "workload": {
            "energy_wh": workload_wh,
            "energy_wh_low": training.energy_wh_low + inference_wh * _pue_factor(training, low=True),
            "energy_wh_high": training.energy_wh_high + inference_wh * _pue_factor(training, low=False),
            "carbon_kg": workload_kg,
            "training_share_percent": round(100.0 * training.energy_wh / workload_wh, 2)
            if workload_wh
            else 0.0,
        },
        "grid": {**grid.as_dict(), "notes": ctx.notes},
        "grid_ci_source": grid.source,
        "assumptions": {k: v.as_dict() for k, v in assumptions.items()},
        "breakdown": lines,
        "greener_alternatives": {"regions": regions_alt, "hardware": hw_alt},
        "meets_target": None if target is None else training_kg <= target,
        "next_options": next_options,
    }


def _forward_flops(ml_model: MLModel, hw_extra: dict[str, Any]) -> tuple[float | None, str]:
    """FLOPs of one forward pass on one sample and where the figure came from."""
    if ml_model.model_properties.strip():
        try:
            props = json.loads(ml_model.model_properties)
        except json.JSONDecodeError as exc:
            raise ValueError(f"model_properties of {ml_model.model!r} is not JSON: {exc}") from exc
        if isinstance(props, dict):
            if _positive(props.get("macs")):
                return 2.0 * float(props["macs"]), "model_properties (2 x macs)"
            if _positive(props.get("flops")):
                return float(props["flops"]), "model_properties (flops)"
    entry = _catalogue_model(ml_model.model)
    if entry is not None:
        return float(entry.flops), "model catalogue (2 x macs)"
    if _positive(hw_extra.get("macs")):
        return 2.0 * float(hw_extra["macs"]), "hw_resources (2 x macs)"
    if _positive(hw_extra.get("flops")):
        return float(hw_extra["flops"]), "hw_resources (flops)"
    return None, ""


def _pue_factor(training: TrainingEstimate, *, low: bool) -> float:
    """The end of the PUE range relative to the PUE used (1.0 when it has no range)."""
    end = training.pue_low if low else training.pue_high
    return end / training.pue if end > 0 and training.pue > 0 else 1.0


def _catalogue_size(model: str, values: dict[str, Any]) -> float | None:
    """The model's (active) parameters from the model catalogue, for a 6·N·D forecast when the user
    gave the tokens but not the size; None otherwise."""
    if values.get("training_tokens") is None:
        return None
    if values.get("model_parameters") is not None or values.get("active_parameters") is not None:
        return None
    entry = _catalogue_model(model)
    if entry is None:
        return None
    arch = getattr(entry, "architecture", None)
    if isinstance(arch, dict) and arch:
        try:
            return float(transformer.from_architecture(arch).active_parameters())
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("architecture of %r unusable (%s); using its parameter count", model, exc)
    params = getattr(entry, "parameters", None)
    return float(params) if isinstance(params, int | float) else None


def catalogue_spec(model: str, values: dict[str, Any]) -> TransformerSpec | None:
    """The model catalogue's architecture of ``model`` for a forecast from training tokens (an
    encoder-decoder's FLOPs per stack, attention FLOPs at the training sequence length); None
    without tokens, catalogue entry or architecture."""
    if values.get("training_tokens") is None:
        return None
    entry = _catalogue_model(model)
    arch = getattr(entry, "architecture", None) if entry is not None else None
    if not isinstance(arch, dict) or not arch:
        return None
    try:
        return transformer.from_architecture(arch)
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("architecture of %r unusable (%s); forecast without it", model, exc)
        return None


def _distinct(options: list[HardwareOption]) -> list[HardwareOption]:
    """One device per workload figure (multi-GPU aggregates of one GPU tie with it)."""
    seen: set[str] = set()
    out = []
    for o in options:
        figure = f"{o.workload_kg:.9g}"
        if figure not in seen:
            seen.add(figure)
            out.append(o)
    return out


def _catalogue_model(name: str) -> Any:
    if not name.strip():
        return None
    try:
        return models().find(name)
    except FileNotFoundError as exc:  # the model catalogue file is optional for this node
        log.warning("model catalogue unavailable (%s); forward FLOPs only from model_properties", exc)
        return None


def _inference_precision(hw_extra: dict[str, Any]) -> str:
    value = hw_extra.get("precision")
    return value if isinstance(value, str) and value in PRECISIONS else "fp32"


def _model_choice_open(model: str, incoming: dict[str, Any]) -> bool:
    """Excluding the model only helps when ML_MODEL chose it (a ``model_selected`` always wins)."""
    selected = incoming.get("model_selected")
    return bool(model.strip()) and not (isinstance(selected, str) and selected.strip())


def _ci_reference(grid: GridIntensity) -> str:
    if grid.source in ("user", "env"):
        return grid.reference
    return f"{grid.name} ({grid.code}), {grid.year}: {grid.reference}"


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def _saving(current: float, alternative: float) -> float:
    return round((1.0 - alternative / current) * 100.0, 2) if current > 0 else 0.0


def _num(value: float) -> float | int:
    return int(value) if value.is_integer() and abs(value) < 2**63 else value
