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

Modules: ``context`` (what the user said about the run, the grid), ``estimate`` (the estimate and
its alternatives). Settings: the node's ``Settings.estimation`` (``grid_ci``, the override of
the grid intensity, and the ``local-cpu`` calibration), handed in by ``for_settings``; the
module-level callbacks use the process environment's.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from sustainml.config import EstimationSettings, Settings
from sustainml.estimate.carbon import (
    UnknownRegionError,
    countries,
    env_intensity,
    find_region,
    table_intensity,
)
from sustainml.messages.types import (
    CO2Footprint,
    HWResource,
    MLModel,
    NodeStatus,
    RequestType,
    ResponseType,
    UserInput,
)
from sustainml.workers.logic.carbon_footprint.context import stated_run
from sustainml.workers.logic.carbon_footprint.estimate import catalogue_spec, estimate
from sustainml.workers.logic.common import (
    StageLogic,
    bind,
    estimation_settings,
    reply,
    reply_error,
    reply_unsupported,
)

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


def for_settings(settings: Settings) -> StageLogic:
    """The callbacks of one deployment: its grid-intensity override and calibrations."""
    return bind(task_callback, configuration_callback, settings.estimation)


def task_callback(
    ml_model: MLModel,
    user_input: UserInput,
    hw: HWResource,
    node_status: NodeStatus,
    co2: CO2Footprint,
    *,
    settings: EstimationSettings | None = None,
) -> None:
    est = estimation_settings(settings)
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
        run = stated_run(user_input, incoming, hw, est)
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
        extra = estimate(ml_model, user_input, hw, hw_extra, incoming, target, est)
    except ValueError as exc:
        # Keep the upstream keys on the output; the runtime adds the error and fails the task.
        _zeros(co2, {**base, **failed, "mode": "error", "error": str(exc)})
        raise
    co2.carbon_footprint = extra.pop("_carbon_kg")
    co2.energy_consumption = extra.pop("_energy_wh")
    co2.carbon_intensity = extra.pop("_intensity")
    co2.set_extra({**base, **extra})


def configuration_callback(
    req: RequestType, res: ResponseType, *, settings: EstimationSettings | None = None
) -> None:
    """``regions[, <continent>]``: the region codes (sorted, upstream list style) and their rows;
    ``intensity, <region>``: the value the node would use for that location and why."""
    keyword, _, argument = req.configuration.partition(",")
    keyword, argument = keyword.strip().lower(), argument.strip()
    if keyword == "regions":
        _reply_regions(req, res, argument)
    elif keyword == "intensity" and argument:
        _reply_intensity(req, res, argument, estimation_settings(settings).grid_ci)
    elif keyword == "intensity":
        reply_error(req, res, "intensity needs a region: 'intensity, <country code or name>'")
    else:
        reply_unsupported(req, res)


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


def _reply_intensity(req: RequestType, res: ResponseType, region: str, grid_ci: str) -> None:
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
    forced = grid_ci.strip()
    if forced:  # what a task without extra_data.carbon_intensity uses instead of the table
        try:
            payload["env_override"] = env_intensity(forced)
        except ValueError as exc:
            payload["env_override_error"] = str(exc)
    reply(req, res, payload)


__all__ = ["UNITS", "catalogue_spec", "configuration_callback", "for_settings", "task_callback"]
