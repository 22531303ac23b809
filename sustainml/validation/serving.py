"""Energy and latency per answer of served generative models against public measurements
(``sustainml eval published --part serving``).

The rows (``data/serving.json``) come from the ML.ENERGY benchmark v2 (vLLM chat serving of Llama
3.1, Mistral, Mixtral, Gemma 2 and Phi-3 on A100 SXM4 40 GB and H100 SXM 80 GB, one to eight GPUs;
Stable Diffusion 2.1 and SDXL with diffusers) and the ML.ENERGY leaderboard v1 (PyTorch eager, batch 1 on an
A100: Llama 2, LLaMA, Vicuna). Each row names the file it was copied from and the measured
conditions (batch, tokens or steps, engine, GPUs). The architectures are those of the models'
``config.json``; the SD 2.1 and SDXL U-Net costs were computed from their architectures (our graph
analysis; SDXL's deeper transformer stacks counted by hand, see the data file).

Each row is estimated with ``sustainml.estimate.serving`` exactly as HW_RESOURCES does for such a
request (same scenario: tokens, batch, tensor-parallel GPUs, precision, engine) and scored on
energy per answer and latency per answer: within 2x on at least 80 % of the rows each.

The vLLM engine's cost per sequence and step and the utilisation by bound were chosen on the rows
marked ``split = fit``; the ``held-out`` rows are scored on their own too.
"""

from __future__ import annotations

import json
import statistics
from functools import cache
from importlib import resources
from typing import Any

from sustainml.catalogue import hardware
from sustainml.estimate import serving as sv
from sustainml.validation.table import Criterion, Table

DATA = "serving.json"
TOLERANCE = 2.0
REQUIRED = 0.8


@cache
def load() -> dict[str, Any]:
    text = resources.files("sustainml.validation").joinpath("data", DATA).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def scenario_of(row: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """The row's measured conditions as the scenario inputs HW_RESOURCES reads."""
    keys = ("input_tokens", "output_tokens", "batch_size", "num_devices", "precision", "diffusion_steps",
            "image_resolution", "audio_seconds")  # fmt: skip
    explicit = {k: row[k] for k in keys if k in row}
    explicit["serving_engine"] = row["engine"]
    return sv.read_inputs(explicit, {})


def estimate_row(row: dict[str, Any]) -> dict[str, Any]:
    """Our estimate for ``row``: ``ServingEstimate.to_dict()``. Raises ``ValueError`` (unknown
    hardware, bad architecture) or ``KeyError`` (a model the data file does not describe)."""
    data = load()
    device = hardware().find(row["hardware"])
    if device is None:
        raise ValueError(f"hardware {row['hardware']!r} is not in the catalogue")
    inputs = scenario_of(row)
    kind = row["kind"]
    scenario = sv.build_scenario(kind, inputs, device)
    if kind == "diffusion":
        spec = {k: v for k, v in data["diffusion_models"][row["model"]].items() if k != "source"}
        return sv.estimate_diffusion(sv.diffusion_model_of(spec), device, scenario).to_dict()
    arch = sv.spec_of(data["architectures"][row["model"]], where=f"architectures.{row['model']}")
    if kind == "asr":
        return sv.estimate_asr(arch, device, scenario).to_dict()
    return sv.cached_llm(arch, device, scenario).to_dict()


def _ratio(estimate: float | None, published: float) -> float | None:
    return estimate / published if estimate is not None and published > 0 else None


def run() -> Table:
    data = load()
    table = Table(
        part="serving",
        title="Serving: energy and latency per answer against ML.ENERGY measurements",
        columns=[
            "split",
            "model",
            "hardware",
            "gpus",
            "batch",
            "engine",
            "work",
            "published_j",
            "estimated_j",
            "energy_ratio",
            "published_s",
            "estimated_s",
            "latency_ratio",
        ],
        criteria=[
            Criterion(
                "energy_ratio", "factor", TOLERANCE, REQUIRED, "energy per answer: within 2x on at least 80 %"
            ),
            Criterion(
                "latency_ratio",
                "factor",
                TOLERANCE,
                REQUIRED,
                "latency per answer: within 2x on at least 80 %",
            ),
            Criterion(
                "held_out_energy_ratio",
                "factor",
                TOLERANCE,
                REQUIRED,
                "held-out rows, energy: within 2x on 80 %",
            ),
            Criterion(
                "held_out_latency_ratio",
                "factor",
                TOLERANCE,
                REQUIRED,
                "held-out rows, latency: within 2x on 80 %",
            ),
        ],
    )
    for i, row in enumerate(data["rows"]):
        energy: float | None = None
        latency: float | None = None
        try:
            est = estimate_row(row)
            energy, latency = float(est["energy_per_inference_j"]), float(est["latency_per_inference_s"])
        except (ValueError, KeyError) as exc:
            table.notes.append(f"row {i} ({row['model']} on {row['hardware']}) not estimated: {exc}")
        work = (
            f"{row['diffusion_steps']} steps {row['image_resolution']}px"
            if row["kind"] == "diffusion"
            else f"{row.get('input_tokens', '-')}+{row.get('output_tokens', '-')} tok"
        )
        e_ratio = _ratio(energy, float(row["published_energy_j"]))
        l_ratio = _ratio(latency, float(row["published_latency_s"]))
        held = row["split"] == "held-out"
        table.rows.append(
            {
                "split": row["split"],
                "model": row["model"],
                "hardware": row["hardware"].removeprefix("NVIDIA "),
                "gpus": row["num_devices"],
                "batch": row["batch_size"],
                "engine": row["engine"],
                "work": work,
                "published_j": float(row["published_energy_j"]),
                "estimated_j": energy,
                "energy_ratio": e_ratio,
                "published_s": float(row["published_latency_s"]),
                "estimated_s": latency,
                "latency_ratio": l_ratio,
                "held_out_energy_ratio": e_ratio if held else None,
                "held_out_latency_ratio": l_ratio if held else None,
                "source": row["source"],
            }
        )
    for column in ("energy_ratio", "latency_ratio"):
        ratios = table.ratios(column)
        if ratios:
            table.notes.append(f"median {column} {statistics.median(ratios):.2f}")
    table.notes.append(
        "ratio = estimated / published; sources and measured conditions per row in "
        "sustainml/validation/data/serving.json; " + data["assumptions"]
    )
    return table


__all__ = ["estimate_row", "load", "run", "scenario_of"]
