"""Inference latency against MLPerf Inference results (``sustainml eval published mlperf``).

The rows (``data/mlperf.json``) are closed-division results of MLPerf Inference rounds v3.0, v3.1
and v4.0 (NVIDIA's TensorRT submissions on Jetson AGX Orin, Jetson Orin NX, L4, A100 SXM and H100
SXM), each copied from the round's ``mlperf_log_summary.txt`` named in its ``source``:

- SingleStream: the published 90th-percentile latency of one sample, against our estimate at
  batch 1;
- Offline: the published throughput as time per sample (1 / samples per second), against our
  estimate of a batch (the row's ``batch_size``) divided by the batch;
- generative rows (Stable Diffusion XL, 20 steps at 1024 px): time per image against
  ``sustainml.estimate.serving`` (batch time / batch) with the SDXL U-Net cost of ``serving.json``.

Estimates use the same code as HW_RESOURCES: the ONNX graph of the model (built from the
catalogue, or from the architecture given under ``models`` for BERT-large at 384 tokens), the
fused-kernel roofline of the compiled engine (MLPerf submissions run TensorRT) at the row's
precision.

The compiled engine's factors (``roofline.COMPILED_EFFICIENCY``) were chosen on the rows marked
``split = fit`` (every other row of the first twelve); the score on the ``held-out`` rows (the
others, and every row added after the choice) is reported on its own, so the calibration is never
judged on the rows it was chosen on.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from functools import cache
from importlib import resources
from typing import Any

from sustainml.catalogue import ModelEntry, hardware, models
from sustainml.estimate import roofline as rl
from sustainml.validation.table import Criterion, Table

DATA = "mlperf.json"
TOLERANCE = 2.0
REQUIRED = 0.8
MEDIAN_RANGE = (0.75, 1.33)


def load() -> dict[str, Any]:
    text = resources.files("sustainml.validation").joinpath("data", DATA).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def split_of(row: dict[str, Any]) -> str:
    """``fit``: the row was used to choose the engine factors; ``held-out``: it was not."""
    split = str(row.get("split", "held-out"))
    if split not in ("fit", "held-out"):
        raise ValueError(f"mlperf.json: split must be 'fit' or 'held-out', got {split!r}")
    return split


@cache
def _spec_entry(name: str) -> ModelEntry:
    spec = load()["models"][name]
    base = models().get("bert-base-sst2") if spec["builder"] == "bert" else None
    if base is None:
        raise ValueError(f"mlperf.json: model {name!r} has no builder this table knows")
    return replace(
        base,
        name=name,
        input_shape=tuple(spec["input_shape"]),
        parameters=int(spec["parameters"]),
        builder=spec["builder"],
        builder_args=dict(spec["builder_args"]),
        aliases=(),
        source=spec["source"],
    )


def model_entry(name: str) -> ModelEntry:
    """The catalogue entry, or the architecture given in the data file."""
    if name in load()["models"]:
        return _spec_entry(name)
    return models().get(name)


def estimate_ms_per_sample(row: dict[str, Any]) -> float:
    """Our estimate of the row's time per sample in ms (the same path as HW_RESOURCES)."""
    if row.get("kind") == "serving":
        from sustainml.validation import serving

        per_image = serving.estimate_row({**row, "num_devices": 1, "kind": "diffusion"})
        return float(per_image["batch_seconds"]) / int(row["batch_size"]) * 1000.0
    from sustainml.onnxgraphs import cache as onnx_cache
    from sustainml.onnxgraphs.analyze import analyze

    entry = model_entry(row["model"])
    path = onnx_cache.build(entry, "random" if entry.parameters <= 150_000_000 else "zeros").path
    batch = int(row["batch_size"])
    report = analyze(path, batch_size=batch)
    est = rl.estimate(report, hardware().get(row["hardware"]), row["precision"], engine="compiled")
    return est.latency_s / batch * 1000.0


def run() -> Table:
    data = load()
    table = Table(
        part="mlperf",
        title="Inference latency against MLPerf Inference (time per sample, ms)",
        columns=[
            "split",
            "model",
            "hardware",
            "scenario",
            "round",
            "precision",
            "batch",
            "published_ms",
            "estimated_ms",
            "ratio",
            "held_out_ratio",
        ],
        criteria=[
            Criterion("ratio", "factor", TOLERANCE, REQUIRED, "all rows: within 2x on at least 80 %"),
            Criterion(
                "held_out_ratio", "factor", TOLERANCE, REQUIRED, "held-out rows: within 2x on at least 80 %"
            ),
        ],
    )
    for i, row in enumerate(data["rows"]):
        split = split_of(row)
        published = float(row["published_ms_per_sample"])
        try:
            estimated: float | None = estimate_ms_per_sample(row)
        except (ValueError, KeyError) as exc:
            table.notes.append(f"row {i} ({row['model']} on {row['hardware']}) not estimated: {exc}")
            estimated = None
        ratio = estimated / published if estimated is not None and published > 0 else None
        table.rows.append(
            {
                "split": split,
                "model": row["model"],
                "hardware": row["hardware"],
                "scenario": row["scenario"],
                "round": f"{row['round']} {row['submitter']}",
                "precision": row["precision"],
                "batch": row["batch_size"],
                "published_ms": published,
                "estimated_ms": estimated,
                "ratio": ratio,
                "held_out_ratio": ratio if split == "held-out" else None,
                "source": row["source"],
            }
        )
    for column, label in (("ratio", "all rows"), ("held_out_ratio", "held-out rows")):
        ratios = table.ratios(column)
        if ratios:
            median = statistics.median(ratios)
            lo, hi = MEDIAN_RANGE
            verdict = "PASS" if lo <= median <= hi else "MISS"
            table.notes.append(f"{verdict} median ratio of {label} {median:.2f} (required {lo}-{hi})")
    table.notes.append(
        "ratio = estimated / published; SingleStream = 90th-percentile latency, Offline = 1 / throughput "
        "(estimate: batch latency / batch); sources: the mlperf_log_summary.txt of each row in "
        "sustainml/validation/data/mlperf.json"
    )
    return table


__all__ = ["estimate_ms_per_sample", "load", "model_entry", "run", "split_of"]
