"""CARBON_FOOTPRINT: energy and carbon of running the chosen model on the chosen hardware.

Units (the seed IDL): carbon_footprint kgCO2e, energy_consumption Wh, carbon_intensity gCO2e/kWh;
HWResource latency s and power W.

- energy per inference [Wh] = power_consumption [W] x latency [s] / 3600
- energy_consumption [Wh] = energy per inference x inferences (``extra_data.inferences`` of the
  UserInput, default ``DEFAULT_INFERENCES``)
- carbon_intensity [g/kWh]: ``$SUSTAINML_GRID_CI``, else the country of ``geo_location_region``,
  else ``geo_location_continent``, else the world average (``tables``; source recorded)
- carbon_footprint [kg] = energy_consumption / 1000 x carbon_intensity / 1000

No PUE is applied: the hardware power is taken as the whole draw (on-device view).
``NO_MODEL`` -> zeros, mode ``no_model``; an error reported by HW_RESOURCES -> zeros, mode ``error``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from typing import Any

from sustainml.messages.types import (
    CO2Footprint,
    HWResource,
    MLModel,
    NodeStatus,
    RequestType,
    ResponseType,
    UserInput,
)
from sustainml.workers.logic.common import norm_key, reply_unsupported
from sustainml.workers.logic.tables import (
    CONTINENT_INTENSITY,
    COUNTRY_INTENSITY,
    DEFAULT_INFERENCES,
    GRID_CI_ENV,
    NO_MODEL,
    WORLD_INTENSITY,
    GridIntensity,
)

log = logging.getLogger(__name__)

UNITS = {"carbon_footprint": "kgCO2e", "energy_consumption": "Wh", "carbon_intensity": "gCO2e/kWh"}

_COUNTRIES: dict[str, GridIntensity] = {
    norm_key(alias): row for row in COUNTRY_INTENSITY for alias in (row.key, *row.aliases)
}
_CONTINENTS: dict[str, GridIntensity] = {
    norm_key(alias): row for row in CONTINENT_INTENSITY for alias in (row.key, *row.aliases)
}


def task_callback(
    ml_model: MLModel, user_input: UserInput, hw: HWResource, node_status: NodeStatus, co2: CO2Footprint
) -> None:
    incoming = user_input.get_extra()
    previous = incoming.get("model_restrains")
    restrains: list[str] = []
    if ml_model.model and ml_model.model != NO_MODEL:
        restrains.append(ml_model.model)
    if isinstance(previous, list | tuple):
        restrains += [str(m) for m in previous]
    elif previous is not None:
        log.warning("user_input extra_data.model_restrains is not a list (%r); ignored", previous)
    extra: dict[str, Any] = {
        "num_outputs": _num_outputs(incoming.get("num_outputs")),
        "model_restrains": list(dict.fromkeys(restrains)),  # current model first, de-duplicated
        "units": UNITS,
    }

    hw_extra = hw.get_extra()
    if ml_model.model == NO_MODEL or hw_extra.get("error_code") == NO_MODEL:
        _zeros(co2, {**extra, "mode": "no_model"})
        return
    if "error" in hw_extra:
        _zeros(co2, {**extra, "mode": "error", "error": f"HW_RESOURCES reported: {hw_extra['error']}"})
        return

    inferences, inferences_source = _inferences(incoming.get("inferences"))
    intensity, ci = grid_intensity(user_input.geo_location_region, user_input.geo_location_continent)
    per_inference_wh = hw.power_consumption * hw.latency / 3600.0
    energy_wh = per_inference_wh * inferences
    carbon_kg = energy_wh / 1000.0 * intensity / 1000.0

    co2.energy_consumption = energy_wh
    co2.carbon_intensity = intensity
    co2.carbon_footprint = carbon_kg
    extra.update(
        mode="estimate",
        assumptions={
            "inferences": int(inferences) if inferences.is_integer() else inferences,
            "inferences_source": inferences_source,
            "power_w": hw.power_consumption,
            "latency_s": hw.latency,
            "hardware": hw.hw_description,
            "energy_per_inference_wh": per_inference_wh,
            "carbon_per_inference_kg": carbon_kg / inferences if inferences else 0.0,
            "pue": 1.0,
            **ci,
        },
        formulas={
            "energy_per_inference_wh": "power_w x latency_s / 3600",
            "energy_consumption": "energy_per_inference_wh x inferences",
            "carbon_footprint": "energy_consumption / 1000 x carbon_intensity / 1000",
        },
    )
    co2.set_extra(extra)


def configuration_callback(req: RequestType, res: ResponseType) -> None:
    reply_unsupported(req, res)


def grid_intensity(region: str, continent: str) -> tuple[float, dict[str, Any]]:
    """(g CO2e/kWh, provenance) for a location: env override, region as a country (ISO alpha-2,
    alpha-3 or English name; "Madrid, Spain" and "ES-MD" work), continent, world default."""
    forced = os.environ.get(GRID_CI_ENV, "").strip()
    if forced:
        try:
            value = float(forced)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{GRID_CI_ENV}={forced!r} must be a non-negative number of gCO2e/kWh")
        return value, _provenance("env", GRID_CI_ENV, value, "", f"environment variable {GRID_CI_ENV}")

    country = _lookup(region, _COUNTRIES)
    if country is not None:
        return country.g_per_kwh, _provenance(
            "region", country.key, country.g_per_kwh, country.year, country.source
        )
    area = _lookup(continent, _CONTINENTS)
    if area is not None:
        return area.g_per_kwh, _provenance("continent", area.key, area.g_per_kwh, area.year, area.source)
    if region.strip() or continent.strip():
        log.info("no grid intensity for region %r / continent %r; using the world average", region, continent)
    w = WORLD_INTENSITY
    return w.g_per_kwh, _provenance("world_default", w.key, w.g_per_kwh, w.year, w.source)


def _lookup(text: str, table: dict[str, GridIntensity]) -> GridIntensity | None:
    if not text.strip():
        return None
    for candidate in (text, *re.split(r"[,/;|()\-]", text)):
        row = table.get(norm_key(candidate))
        if row is not None:
            return row
    return None


def _provenance(source: str, key: str, value: float, year: str, reference: str) -> dict[str, Any]:
    return {
        "ci_source": source,
        "ci_key": key,
        "ci_g_per_kwh": value,
        "ci_year": year,
        "ci_reference": reference,
    }


def _zeros(co2: CO2Footprint, extra: dict[str, Any]) -> None:
    co2.carbon_footprint = 0.0
    co2.energy_consumption = 0.0
    co2.carbon_intensity = 0.0
    co2.set_extra(extra)


def _inferences(value: Any) -> tuple[float, str]:
    if value is None:
        return float(DEFAULT_INFERENCES), "default"
    try:
        if isinstance(value, bool):
            raise TypeError("a boolean is not a count")
        count = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"user_input extra_data.inferences must be a number, got {value!r}") from exc
    if not math.isfinite(count) or count < 0:
        raise ValueError(f"user_input extra_data.inferences must be a finite number >= 0, got {value!r}")
    return count, "user"


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
