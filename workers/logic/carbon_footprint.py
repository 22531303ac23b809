"""CARBON_FOOTPRINT: what training the proposed model on the proposed hardware emits, what each
inference costs, and where or on what it would emit less.

Output (units of the seed IDL): ``carbon_footprint`` kgCO2e and ``energy_consumption`` Wh of the
**training run**, ``carbon_intensity`` gCO2e/kWh of the grid used. Formulas, defaults and their
sources: ``sustainml.estimate.training`` (training run) and ``sustainml.estimate.carbon``
(intensity, inference, alternatives). In short:

    training FLOPs  = extra_data.training_flops or 3 x forward FLOPs x samples x epochs
    training time   = FLOPs / (devices x peak x MFU)   (or extra_data.training_device_hours)
    training energy = devices x P_train x time x PUE / 3600                        [Wh]
    inference       = power_consumption x latency x PUE / 3600 per inference       [Wh]
                      x extra_data.inferences (default 1,000)
    carbon          = Wh / 1000 x gCO2e/kWh / 1000                                 [kgCO2e]

Forward FLOPs per sample = 2 x MACs, from ``MLModel.model_properties`` (``macs``), else the model
catalogue, else HW_RESOURCES' ``flops``/``macs``. The hardware is HW_RESOURCES' ``hardware`` /
``hw_description`` looked up in the hardware catalogue. One inference is one run of the model on
``MLModel.input_batch`` as HW_RESOURCES timed it (``latency``), at its ``power_consumption``.

UserInput.extra_data keys read: ``training_flops``, ``training_samples``, ``epochs``,
``training_device_hours``, ``num_devices``, ``mfu``, ``training_precision``,
``training_utilisation``, ``pue``, ``training_tokens``, ``model_parameters``,
``active_parameters``, ``architecture``, ``sequence_length``, ``target_tokens``, ``inferences``,
``carbon_intensity``, ``num_outputs``,
``model_restrains``, ``model_selected``. ``$SUSTAINML_GRID_CI`` overrides the intensity too
(``extra_data.carbon_intensity`` wins over it).

Output extra_data: ``mode`` (``estimate`` / ``no_model`` / ``error``), ``units``, ``num_outputs``
(default 1), ``model_restrains`` (current model first, then the previous ones, de-duplicated),
``training``, ``inference``, ``workload``, ``grid``, ``assumptions`` (value, source, reference
each), ``breakdown`` (the formulas with the numbers substituted), ``greener_alternatives``
(``regions`` and ``hardware``) and, for the orchestrator's automatic optimisation,
``target_kg``, ``meets_target`` and ``next_options``:

- ``target_kg``: ``UserInput.desired_carbon_footprint`` when > 0, else null;
- ``meets_target``: ``carbon_footprint <= target_kg``; null without a target; false when nothing
  could be estimated (NO_MODEL, error);
- ``next_options``: what to try next, most promising first: up to 3 ``{"kind": "hardware",
  "hardware": name, "estimated_kg": training kgCO2e there, ...}`` that lower the training
  footprint (set ``hardware_required``), then ``{"kind": "model", "exclude": current model}``
  (add it to ``model_restrains``) unless the user pinned the model with ``model_selected``.
  Entries do not depend on the iteration beyond the state they describe, so an orchestrator can
  compare them with the ones it already tried.

``NO_MODEL`` (from ML_MODEL or HW_RESOURCES) -> zeros, mode ``no_model``; an error reported by
HW_RESOURCES -> zeros, mode ``error``; an invalid extra_data value -> zeros, mode ``error``, and
the task fails with the message naming the key.

Configuration requests: ``regions`` (or ``regions, <continent>``) and ``intensity, <region>``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Final

from sustainml.catalogue import HardwareEntry, models
from sustainml.estimate import transformer
from sustainml.estimate.carbon import (
    ALTERNATIVES,
    DEFAULT_INFERENCES,
    GRID_CI_ENV,
    REF_INFERENCES_DEFAULT,
    GridIntensity,
    HardwareOption,
    UnknownRegionError,
    carbon_kg,
    countries,
    describe_intensity,
    env_intensity,
    find_hardware,
    find_region,
    greener_regions,
    grid_intensity,
    hardware_options,
    inference_energy_wh,
    table_intensity,
)
from sustainml.estimate.embodied import embodied_share
from sustainml.estimate.pue import DATACENTRE_CLASSES, Pue
from sustainml.estimate.pue import SETTINGS as PUE_SETTINGS
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
    CO2Footprint,
    HWResource,
    MLModel,
    NodeStatus,
    RequestType,
    ResponseType,
    UserInput,
)
from sustainml.workers.logic import hw_constraints as hc
from sustainml.workers.logic.common import reply, reply_error, reply_unsupported

log = logging.getLogger(__name__)

NO_MODEL: Final = "NO_MODEL"
UNITS: Final[dict[str, str]] = {
    "carbon_footprint": "kgCO2e",
    "energy_consumption": "Wh",
    "carbon_intensity": "gCO2e/kWh",
    "energy": "Wh",
    "carbon": "kgCO2e",
    "power": "W",
    "latency": "s",
    "time": "s",
    "flops": "FLOP",
    "peak_flops": "FLOP/s",
}


def task_callback(
    ml_model: MLModel, user_input: UserInput, hw: HWResource, node_status: NodeStatus, co2: CO2Footprint
) -> None:
    incoming = user_input.get_extra()
    target = user_input.desired_carbon_footprint if user_input.desired_carbon_footprint > 0 else None
    base: dict[str, Any] = {
        "num_outputs": _num_outputs(incoming.get("num_outputs")),
        "model_restrains": _restrains(ml_model.model, incoming.get("model_restrains")),
        "units": UNITS,
        "target_kg": target,
    }
    # Nothing estimated: a target cannot be shown met, and there is nothing left to try.
    failed: dict[str, Any] = {"meets_target": None if target is None else False, "next_options": []}

    hw_extra = hw.get_extra()
    if ml_model.model == NO_MODEL or hw_extra.get("error_code") == NO_MODEL:
        # No model to estimate, but a training run the user described is still computed.
        run = _stated_run(user_input, incoming, hw)
        if run is None:
            _zeros(co2, {**base, **failed, "mode": "no_model"})
            return
        co2.carbon_footprint = run.pop("_carbon_kg")
        co2.energy_consumption = run.pop("_energy_wh")
        co2.carbon_intensity = run.pop("_intensity")
        co2.set_extra({**base, **failed, "mode": "no_model", **run})
        return
    if "error" in hw_extra:
        _zeros(
            co2, {**base, **failed, "mode": "error", "error": f"HW_RESOURCES reported: {hw_extra['error']}"}
        )
        return
    try:
        extra = _estimate(ml_model, user_input, hw, hw_extra, incoming, target)
    except ValueError as exc:
        # Keep the upstream keys on the output; the runtime adds the error and fails the task.
        _zeros(co2, {**base, **failed, "mode": "error", "error": str(exc)})
        raise
    co2.carbon_footprint = extra.pop("_carbon_kg")
    co2.energy_consumption = extra.pop("_energy_wh")
    co2.carbon_intensity = extra.pop("_intensity")
    co2.set_extra({**base, **extra})


def configuration_callback(req: RequestType, res: ResponseType) -> None:
    """``regions[, <continent>]``: the region codes (sorted, upstream list style) and their rows;
    ``intensity, <region>``: the value the node would use for that location and why."""
    keyword, _, argument = req.configuration.partition(",")
    keyword, argument = keyword.strip().lower(), argument.strip()
    if keyword == "regions":
        _reply_regions(req, res, argument)
    elif keyword == "intensity" and argument:
        _reply_intensity(req, res, argument)
    elif keyword == "intensity":
        reply_error(req, res, "intensity needs a region: 'intensity, <country code or name>'")
    else:
        reply_unsupported(req, res)


# ------------------------------------------------------------------------------------------------
# the estimate
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What the user said about the run, read once: typed values (explicit extra_data over the
    requirement keys of the text), the hardware as written, the grid."""

    values: dict[str, Any]
    choice: hc.HardwareChoice
    grid: GridIntensity
    movable: bool
    why_fixed: str
    notes: list[str]  # what could not be used, and why


#: Requirement keys of the text this node reads (explicit extra_data keys of the same name win).
READ_KEYS: Final = (
    "num_devices",
    "training_hours",
    "training_tokens",
    "model_parameters",
    "training_samples",
    "epochs",
    "input_tokens",
)


def _context(user_input: UserInput, incoming: dict[str, Any], device: HardwareEntry | None) -> Context:
    hints = hc.app_hints(user_input, incoming)
    reqs = hints.requirements
    values: dict[str, Any] = {k: reqs[k] for k in READ_KEYS if reqs.get(k) is not None}
    values.update(incoming)
    choice = hc.choose_hardware(user_input, incoming, hints)
    if values.get("num_devices") is None and choice.num_devices is not None:
        values["num_devices"] = choice.num_devices
    region, where = user_input.geo_location_region, "UserInput.geo_location_region"
    if not region.strip():
        text = incoming.get("region") if isinstance(incoming.get("region"), str) else reqs.get("region")
        if isinstance(text, str) and text.strip():
            region = text
            where = "UserInput.extra_data.region" if incoming.get("region") else "the problem text (region)"
    user_ci = number_setting(incoming, "carbon_intensity", strict_minimum=False)
    notes: list[str] = []
    try:
        grid = grid_intensity(region, user_input.geo_location_continent, user_value=user_ci, where=where)
    except UnknownRegionError as exc:
        if not where.startswith("the problem text"):
            raise  # a region the user typed in a field: refused with the closest names
        notes.append(f"{exc}; the place read from the text is not used")
        grid = grid_intensity("", user_input.geo_location_continent, user_value=user_ci)
    fixed = device is not None and device.device_class not in DATACENTRE_CLASSES
    deployment = choice.deployment
    why = ""
    if fixed and device is not None:
        why = f"{device.name} ({device.device_class}) runs where it is: the work cannot move grid"
    elif deployment in DEVICE_SIDE:
        fixed, why = True, f"deployment={deployment} runs on the user's side: it cannot move grid"
    return Context(values, choice, grid, not fixed, why, notes)


#: Deployment targets on the user's side: no other grid to move to.
DEVICE_SIDE: Final = frozenset({"edge", "mobile", "embedded", "browser", "desktop"})


def _stated_power(choice: hc.HardwareChoice, device: HardwareEntry | None) -> float | None:
    if device is None:
        return None
    return next(
        (s.stated_power_w for s in choice.specs if s.device == device.name and s.stated_power_w), None
    )


#: Accelerators rented from one cloud only: their site is that provider's.
ONE_CLOUD: Final[dict[str, str]] = {"TPU-": "gcp", "Trainium": "aws", "Inferentia": "aws"}


def _location_pue(grid: GridIntensity, device: HardwareEntry | None = None) -> Pue | None:
    """The PUE the site implies: the cloud region's provider, else the only cloud that rents the
    device (TPUs: Google Cloud; Trainium, Inferentia: AWS), else None (the class default)."""
    cloud = grid.cloud_region
    if cloud is not None:
        return PUE_SETTINGS.get(cloud.provider)
    if device is not None:
        provider = next((p for prefix, p in ONE_CLOUD.items() if device.name.startswith(prefix)), None)
        if provider is not None:
            return PUE_SETTINGS[provider]
    return None


def _training_block(
    training: TrainingEstimate, ci: float, device: HardwareEntry | None
) -> tuple[dict[str, Any], float, list[str]]:
    """The ``training`` output block (with ranges and the embodied share) and the kgCO2e."""
    kg = carbon_kg(training.energy_wh, ci)
    block: dict[str, Any] = {
        **training.as_dict(),
        "carbon_kg": kg,
        "carbon_kg_low": carbon_kg(training.energy_wh_low, ci),
        "carbon_kg_high": carbon_kg(training.energy_wh_high, ci),
    }
    lines = [
        f"training carbon = {fmt(training.energy_wh)} Wh / 1000 x {fmt(ci)} gCO2e/kWh / 1000 = "
        f"{fmt(kg)} kgCO2e (range {fmt(block['carbon_kg_low'])}-{fmt(block['carbon_kg_high'])})"
    ]
    if device is not None:
        share = embodied_share(device, training.device_hours)
        block["embodied"] = share.as_dict()
        lines.append(
            f"embodied carbon of the hardware's share = {fmt(share.per_device_kg)} kgCO2e per device x "
            f"{fmt(share.device_hours)} device-hours / ({fmt(share.lifetime_years)} years x 8760 h) = "
            f"{fmt(share.kg)} kgCO2e (range {fmt(share.low_kg)}-{fmt(share.high_kg)}; reported apart, not in "
            "carbon_footprint)"
        )
    return block, kg, lines


def _stated_run(user_input: UserInput, incoming: dict[str, Any], hw: HWResource) -> dict[str, Any] | None:
    """The training run the user described (its length, or model size and tokens) on the hardware
    they named, when no model was found; None when they described none."""
    probe = hc.app_hints(user_input, incoming).requirements
    keys = ("training_device_hours", "training_hours", "training_days", "training_flops", "training_tokens")
    if not any(incoming.get(k) is not None or probe.get(k) is not None for k in keys):
        return None
    device = find_hardware(hw.hw_description)
    if device is None:
        return None  # "auto" or unknown: nothing named to run it on
    ctx = _context(user_input, incoming, device)
    training = estimate_training(
        ctx.values,
        device=device,
        forward_flops=None,
        stated_power_w=_stated_power(ctx.choice, device),
        default_pue_setting=_location_pue(ctx.grid, device),
    )
    block, kg, lines = _training_block(training, ctx.grid.g_per_kwh, device)
    return {
        "_carbon_kg": kg,
        "_energy_wh": training.energy_wh,
        "_intensity": ctx.grid.g_per_kwh,
        "note": "no model was found; the training run you described is still estimated on the hardware named",
        "hardware": device.name,
        "device_class": device.device_class,
        "hardware_notes": ctx.choice.notes,
        "training": block,
        "grid": {**ctx.grid.as_dict(), "notes": ctx.notes},
        "grid_ci_source": ctx.grid.source,
        "assumptions": {k: v.as_dict() for k, v in training.assumptions.items()},
        "breakdown": [*training.breakdown, describe_intensity(ctx.grid), *lines],
    }


def _estimate(
    ml_model: MLModel,
    user_input: UserInput,
    hw: HWResource,
    hw_extra: dict[str, Any],
    incoming: dict[str, Any],
    target: float | None,
) -> dict[str, Any]:
    hw_name = hw_extra.get("hardware") if isinstance(hw_extra.get("hardware"), str) else ""
    device = find_hardware(str(hw_name or ""), hw.hw_description)
    if device is None:
        log.warning(
            "hardware %r is not in the catalogue: training speed and power taken from HW_RESOURCES",
            hw.hw_description,
        )
    forward, forward_source = _forward_flops(ml_model, hw_extra)
    fallback_rate = forward / hw.latency if forward and hw.latency > 0 else 0.0

    ctx = _context(user_input, incoming, device)
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
        stated_power_w=_stated_power(ctx.choice, device),
        default_pue_setting=_location_pue(grid, device),
        active_parameters=active,
        architecture=spec,
    )
    ci = grid.g_per_kwh
    training_block, training_kg, training_lines = _training_block(training, ci, device)

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


def _zeros(co2: CO2Footprint, extra: dict[str, Any]) -> None:
    co2.carbon_footprint = 0.0
    co2.energy_consumption = 0.0
    co2.carbon_intensity = 0.0
    co2.set_extra(extra)


def _restrains(model: str, previous: Any) -> list[str]:
    """[current model] + previous, de-duplicated, current first (upstream); NO_MODEL is no model."""
    out: list[str] = []
    if model.strip() and model != NO_MODEL:
        out.append(model)
    if isinstance(previous, list | tuple):
        out += [str(m) for m in previous]
    elif previous is not None:
        log.warning("user_input extra_data.model_restrains is not a list (%r); ignored", previous)
    return list(dict.fromkeys(out))


def _num_outputs(value: Any) -> int:
    """Upstream copies it for the orchestrator's auto-iteration; a missing value must read as 1
    (upstream stored null and crashed the orchestrator)."""
    if value is None:
        return 1
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) >= 1:
        return int(value)
    log.warning("user_input extra_data.num_outputs=%r is not an integer >= 1; using 1", value)
    return 1


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def _saving(current: float, alternative: float) -> float:
    return round((1.0 - alternative / current) * 100.0, 2) if current > 0 else 0.0


def _num(value: float) -> float | int:
    return int(value) if value.is_integer() and abs(value) < 2**63 else value


# ------------------------------------------------------------------------------------------------
# configuration requests
# ------------------------------------------------------------------------------------------------


def _reply_regions(req: RequestType, res: ResponseType, continent: str) -> None:
    scope: str | None = None
    if continent:
        area = find_region(continent)
        if area is None or area.kind != "continent" or area.code == "EU":
            reply_error(req, res, f"regions: unknown continent {continent!r}")
            return
        scope = area.continent
    rows = countries(scope)
    reply(
        req,
        res,
        {
            "regions": ", ".join(r.code for r in rows),
            "count": len(rows),
            "entries": [
                {
                    "code": r.code,
                    "name": r.name,
                    "continent": r.continent,
                    "carbon_intensity": r.carbon_intensity,
                    "year": r.year,
                }
                for r in rows
            ],
            "unit": "gCO2e/kWh",
        },
    )


def _reply_intensity(req: RequestType, res: ResponseType, region: str) -> None:
    try:
        grid = table_intensity(region, where="intensity")
    except UnknownRegionError as exc:
        reply_error(req, res, str(exc))
        return
    payload: dict[str, Any] = {
        "cloud_region": grid.as_dict()["cloud_region"],
        "region": region,
        "code": grid.code,
        "name": grid.name,
        "continent": grid.continent,
        "carbon_intensity": grid.g_per_kwh,
        "unit": "gCO2e/kWh",
        "year": grid.year,
        "source": grid.reference,
        "fallback": grid.source,  # region | continent | world_default
    }
    forced = os.environ.get(GRID_CI_ENV, "").strip()
    if forced:  # what a task without extra_data.carbon_intensity uses instead of the table
        try:
            payload["env_override"] = env_intensity(forced)
        except ValueError as exc:
            payload["env_override_error"] = str(exc)
    reply(req, res, payload)
