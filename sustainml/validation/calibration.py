"""Where the forecast's MFU comes from (``sustainml eval published --part calibration``): the
published runs of ``sustainml.estimate.training.calibration``, each with its realised MFU, and the
fit per hardware group the forecast uses. Not scored: these rows are what the default is derived
from, and none of them is a row of the training and forecast tables (``data/training_runs.json``).
"""

from __future__ import annotations

from sustainml.estimate.training.calibration import RUNS, SIZE_CORRELATION, fits
from sustainml.validation.table import Table


def run() -> Table:
    table = Table(
        part="calibration",
        title="Forecast MFU calibration: realised MFU of published runs outside the validation table",
        columns=[
            "model",
            "hardware",
            "device",
            "group",
            "params",
            "tokens",
            "device_h",
            "realised_MFU",
            "hours from",
            "source",
        ],
    )
    for run_ in RUNS:
        table.rows.append(
            {
                "model": run_.model + (" (MoE, active)" if run_.mixture_of_experts else ""),
                "hardware": run_.hardware,
                "device": run_.device,
                "group": run_.group(),
                "params": run_.parameters,
                "tokens": run_.tokens,
                "device_h": float(run_.device_hours),
                "realised_MFU": run_.realised_mfu(),
                "hours from": run_.derivation,
                "source": run_.source + (f"; {run_.note}" if run_.note else ""),
            }
        )
    for fit in fits().values():
        table.notes.append(f"{fit.group}: {fit.describe()}: the forecast's MFU and range on this group")
    table.notes += [
        "realised MFU = 6 x N (active) x D / (device-hours x 3600 x the catalogue's dense bf16 peak): the "
        "hours hold restarts, evaluation and idle time, so the forecast adds no restart overhead on top",
        "groups by dense bf16 peak (500 TFLOP/s or more: H100 class and later); a group follows the model "
        "size (log-linear, N clamped to its runs' sizes) where its runs show a size dependence (|r| >= "
        f"{SIZE_CORRELATION:g}), else takes their median; the range is the lowest and highest realised / "
        "fitted ratio of its runs; V100 keeps Megatron-LM's sustained 0.24 (no V100 run)",
    ]
    return table
