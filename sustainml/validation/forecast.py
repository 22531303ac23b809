"""The published training runs forecast before training: model size and tokens plus hardware, no
device-hours (``sustainml eval published --part forecast``).

Same rows as the ``training`` part (``data/training_runs.json``). The forecast is what
CARBON_FOOTPRINT computes when a user gives ``model_parameters`` (``active_parameters`` for a
mixture of experts) and ``training_tokens`` with the hardware, naming the model (its catalogue
shape adds attention FLOPs; an encoder-decoder counts each stack on its own tokens): training
FLOPs at the device's dense bf16 peak and the realised MFU of published runs on its hardware
group (``sustainml.estimate.training.calibration``, none of them a row here), at the rated power
(or the power written with the hardware name, as model cards do; a measured average is not known
before a run), with the row's PUE and grid. A row may carry facts its source states (``forecast_inputs``:
MFU, architecture, sequence length, target tokens), each quoted in the row. Rows are not scored
where the method cannot apply (a search over many models, distillation from larger teachers, an
unknown token count or active-parameter count), each with the reason.

Criterion: carbon within 35 % of the published figure on at least 80 % of the scored rows.
"""

from __future__ import annotations

from typing import Any

from sustainml.estimate.training import TrainingEstimate
from sustainml.validation.table import Criterion, Table
from sustainml.validation.training import estimate, inputs, load, paper_inputs, ratio

TOLERANCE = 0.35
REQUIRED = 0.8


def run() -> Table:
    table = Table(
        part="forecast",
        title="Training footprints forecast from size + tokens + hardware vs published",
        columns=[
            "model",
            "device",
            "params",
            "tokens",
            "flops",
            "device_h",
            "pub_device_h",
            "MWh",
            "tCO2e",
            "pub_tCO2e",
            "carbon_ratio",
            "in_range",
            "note",
        ],
        criteria=[
            Criterion(
                "carbon_ratio", "relative", TOLERANCE, REQUIRED, "carbon within 35 % on >= 80 % of rows"
            ),
        ],
    )
    for row in load():
        skip = row.get("forecast_not_scored")
        if skip or not row.get("model_parameters") or not row.get("training_tokens"):
            table.rows.append(
                {
                    "model": row["name"],
                    "device": inputs(row, forecast=False).device,
                    "params": row.get("model_parameters"),
                    "tokens": row.get("training_tokens"),
                    "pub_device_h": float(row["device_hours"]),
                    "pub_tCO2e": row["published_tco2e"],
                    "carbon_ratio": None,
                    "note": f"not scored: {skip}",
                }
            )
            continue
        est, kg = estimate(row, forecast=True)
        t = kg / 1000.0
        # the forecast's own low/high range (power, PUE, MFU): does it hold the published figure?
        low, high = t * est.energy_wh_low / est.energy_wh, t * est.energy_wh_high / est.energy_wh
        table.rows.append(
            {
                "model": row["name"],
                "device": inputs(row, forecast=True).device,
                "params": float(row.get("active_parameters") or row["model_parameters"]),
                "tokens": float(row["training_tokens"]),
                "flops": est.flops,
                "device_h": est.device_hours,
                "pub_device_h": float(row["device_hours"]),
                "MWh": est.energy_wh / 1e6,
                "tCO2e": t,
                "pub_tCO2e": row["published_tco2e"],
                "carbon_ratio": ratio(t, row["published_tco2e"]),
                "in_range": "yes" if low <= float(row["published_tco2e"]) <= high else "no",
                "note": _note(row, est),
            }
        )
    scored = [r for r in table.rows if r.get("in_range")]
    inside = sum(r["in_range"] == "yes" for r in scored)
    table.notes += [
        f"the published figure lies inside the forecast's low-high range on {inside}/{len(scored)} "
        "scored rows",
        "device_h vs pub_device_h shows where a forecast misses: the run's achieved utilisation "
        "(published MFU ranges from about 0.2 on V100 to 0.5) and what the published hours include "
        "(restarts, context extension, post-training)",
        "no default was fitted on these rows: the MFU is the realised MFU of other published runs by "
        "hardware group (the calibration part lists them: A100 and TPU class, H100 class and later), "
        "V100 0.24 from Megatron-LM 2019; 'from the paper' lists the inputs a row's source states",
    ]
    return table


def _note(row: dict[str, Any], est: TrainingEstimate) -> str:
    mfu = est.assumptions.get("mfu")
    text = (
        f"MFU {est.mfu:.3g}{' (paper)' if mfu is not None and mfu.source == 'user' else ''}, "
        f"{est.power_source} power {est.power_w:g} W, PUE {est.pue:g}"
    )
    stated = sorted(paper_inputs(row))
    if stated:
        text += f"; from the paper: {', '.join(stated)}"
    if row.get("forecast_note"):
        text += f"; {row['forecast_note']}"
    return text
