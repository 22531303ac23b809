"""Training footprints of published runs, computed from their device-hours (``sustainml eval
published --part training``).

Each row of ``data/training_runs.json`` states a published training run as its source does:
hardware as written (read by ``hardware_names.parse_hardware``, as HW_CONSTRAINTS reads it),
device-hours, power (a measured average, the rated TDP, or the power written with the hardware
name), PUE (or the site's setting) and grid intensity (or the region whose catalogue figure is
used), with the published energy and carbon. The estimate is the product's own
``sustainml.estimate.training.estimate_training`` on those inputs, as CARBON_FOOTPRINT runs it.

Sources: Patterson et al. 2021 (GPT-3, T5, Meena, GShard, Switch Transformer, Evolved
Transformer NAS), Luccioni et al. 2023 (BLOOM; Gopher's totals), the LLaMA paper (LLaMA 7-65B and
its recalculations of OPT-175B and BLOOM), the Llama 2 paper, the Llama 3, 3.1, 3.2 (text and
vision) and 4 model cards, Strubell et al. 2019 (BERT-base). A row whose published figure was not
computed the way ours is (no stated power behind a total) is shown but not scored, with the reason.

Which runs are rows (the rule was fixed before the forecasts of the rows it added were computed;
docs/estimation.md): a language-model training run whose developers' paper or model card, or a
study of that run, states for that model alone the accelerator, the device-hours (or devices x
wall clock) and the emissions or energy. Totals over a family of models are not rows, nor is a run
already counted in another row.

Criteria: energy and carbon within 15 % of the published figures on at least 90 % of the scored
rows (energy where the source publishes it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from sustainml.catalogue import hardware
from sustainml.estimate.carbon import carbon_kg, table_intensity
from sustainml.estimate.hardware_names import parse_hardware
from sustainml.estimate.training import TrainingEstimate, estimate_training
from sustainml.validation.table import Criterion, Table
from sustainml.workers.logic.carbon_footprint import catalogue_spec

DATA = "training_runs.json"
TOLERANCE = 0.15
REQUIRED = 0.9


@cache
def load() -> list[dict[str, Any]]:
    text = resources.files("sustainml.validation").joinpath("data", DATA).read_text(encoding="utf-8")
    rows: list[dict[str, Any]] = json.loads(text)["rows"]
    return rows


@dataclass(frozen=True)
class Inputs:
    """What the row states, as the estimator's inputs."""

    device: str
    values: dict[str, Any]
    stated_power_w: float | None
    g_per_kwh: float


def inputs(row: dict[str, Any], *, forecast: bool) -> Inputs:
    """The estimator's inputs for ``row``: device-hours (training) or size and tokens (forecast);
    a measured power only for the training part (a forecast knows the hardware, not the run)."""
    spec = parse_hardware(str(row["hardware"]), "training")
    values: dict[str, Any] = {}
    if forecast:
        values["model_parameters"] = row["model_parameters"]
        values["training_tokens"] = row["training_tokens"]
        if row.get("active_parameters"):
            values["active_parameters"] = row["active_parameters"]
        # Facts the row's sources state (MFU, architecture, target tokens), each quoted in the row.
        values.update(paper_inputs(row))
    else:
        values["training_device_hours"] = row["device_hours"]
        if row["power"]["kind"] == "measured":
            values["training_power_w"] = row["power"]["w"]
    if row.get("pue") is not None:
        values["pue"] = row["pue"]
    elif row.get("pue_setting"):
        values["pue_setting"] = row["pue_setting"]
    if row.get("intensity_kg_per_kwh") is not None:
        g = float(row["intensity_kg_per_kwh"]) * 1000.0
    else:
        g = table_intensity(str(row["region"])).g_per_kwh
    return Inputs(spec.device, values, spec.stated_power_w, g)


def paper_inputs(row: dict[str, Any]) -> dict[str, Any]:
    """The forecast inputs the row's sources state (``forecast_inputs.values``); every one must be
    quoted in ``forecast_inputs.quotes``."""
    given = row.get("forecast_inputs") or {}
    values: dict[str, Any] = dict(given.get("values") or {})
    unquoted = sorted(set(values) - set(given.get("quotes") or {}))
    if unquoted:
        raise ValueError(f"{row['name']}: forecast_inputs {', '.join(unquoted)} without a quote")
    return values


def estimate(row: dict[str, Any], *, forecast: bool) -> tuple[TrainingEstimate, float]:
    """(the training estimate, its kgCO2e) for ``row``."""
    given = inputs(row, forecast=forecast)
    # A forecast knows the model's shape when the user names a catalogue model, as CARBON_FOOTPRINT
    # looks it up.
    named = row.get("catalogue_model") if forecast else None
    est = estimate_training(
        given.values,
        device=hardware().get(given.device),
        forward_flops=None,
        stated_power_w=given.stated_power_w,
        architecture=catalogue_spec(str(named), given.values) if named else None,
    )
    return est, carbon_kg(est.energy_wh, given.g_per_kwh)


def ratio(estimated: float, published: Any) -> float | None:
    return estimated / float(published) if isinstance(published, int | float) and published > 0 else None


def run() -> Table:
    table = Table(
        part="training",
        title="Training footprints from device-hours vs published (energy MWh, carbon tCO2e)",
        columns=[
            "model",
            "hardware",
            "device",
            "device_h",
            "W",
            "PUE",
            "MWh",
            "pub_MWh",
            "energy_ratio",
            "tCO2e",
            "pub_tCO2e",
            "carbon_ratio",
            "note",
        ],
        criteria=[
            Criterion(
                "energy_ratio", "relative", TOLERANCE, REQUIRED, "energy within 15 % on >= 90 % of rows"
            ),
            Criterion(
                "carbon_ratio", "relative", TOLERANCE, REQUIRED, "carbon within 15 % on >= 90 % of rows"
            ),
        ],
    )
    for row in load():
        est, kg = estimate(row, forecast=False)
        skip = row.get("training_not_scored")
        mwh, t = est.energy_wh / 1e6, kg / 1000.0
        table.rows.append(
            {
                "model": row["name"],
                "hardware": row["hardware"],
                "device": inputs(row, forecast=False).device,
                "device_h": float(row["device_hours"]),
                "W": est.power_w,
                "PUE": est.pue,
                "MWh": mwh,
                "pub_MWh": row.get("published_mwh"),
                "energy_ratio": None if skip else ratio(mwh, row.get("published_mwh")),
                "tCO2e": t,
                "pub_tCO2e": row["published_tco2e"],
                "carbon_ratio": None if skip else ratio(t, row["published_tco2e"]),
                "note": f"not scored: {skip}" if skip else f"{est.power_source} power",
            }
        )
    table.notes += [
        "inputs as each source states them (data/training_runs.json cites every row); estimates by "
        "sustainml.estimate.training, the code CARBON_FOOTPRINT runs",
        "Llama 2, 3 and 4 rows: Meta states neither PUE nor intensity; the rows use the hyperscale PUE "
        "setting (1.10) and the United States grid of the region catalogue",
    ]
    return table
