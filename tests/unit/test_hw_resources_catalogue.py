"""Every catalogue entry through HW_RESOURCES: each must come back with a finite, positive latency
and energy per answer (no entry can fail a task), on a server CPU through the whole callback, and
on one device of every class."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from sustainml.catalogue import ModelEntry, models
from sustainml.messages.types import AppRequirements, HWConstraints, HWResource, MLModel, NodeStatus
from sustainml.workers.logic import hw_resources
from sustainml.workers.logic import ml_model as mm
from sustainml.workers.logic.tables import MODEL_PATH_SCHEME

#: One device per device class (the server CPU has memory for every entry but the largest LLMs).
ONE_PER_CLASS = (
    "A100-80GB",
    "EPYC-9654",
    "Apple-M2",
    "Jetson-AGX-Orin",
    "Snapdragon8gen3",
    "STM32H7",
    "PIM_AI_1dimm",
    "Zynq UltraScale+ ZCU102",
    "local-cpu",
)
ENTRIES = [m.name for m in models()]


def record(entry: ModelEntry) -> MLModel:
    """The MLModel ML_MODEL sends for a catalogue entry (analytic entries: no file)."""
    path = MODEL_PATH_SCHEME + entry.name if entry.analytic else str(hw_resources.catalogue_file(entry))
    return MLModel(model=entry.name, model_path=path, model_properties=json.dumps(mm.model_properties(entry)))


def run(entry: ModelEntry, hardware_required: list[str]) -> HWResource:
    cons = HWConstraints(hardware_required=hardware_required)
    cons.set_extra({"measure_local": False})
    out = HWResource()
    hw_resources.task_callback(record(entry), AppRequirements(app_requirements=[]), cons, NodeStatus(), out)
    return out


def assert_costed(name: str, device: str, latency_s: object, energy_j: object) -> None:
    for what, value in (("latency per answer", latency_s), ("energy per answer", energy_j)):
        assert isinstance(value, float), f"{name} on {device}: {what} is {value!r}"
        assert math.isfinite(value) and value > 0, f"{name} on {device}: {what} = {value!r}"


def test_the_catalogue_has_every_kind_of_entry() -> None:
    kinds = {
        "graph": [m for m in models() if m.builder],
        "architecture": [m for m in models() if not m.builder and m.architecture],
        "no graph, no architecture": [m for m in models() if not m.builder and not m.architecture],
    }
    assert all(kinds.values()), {k: len(v) for k, v in kinds.items()}


def test_costing_method_names_a_method_for_every_entry() -> None:
    methods = {m.name: hw_resources.costing_method(m) for m in models()}
    assert all(methods.values()), [n for n, m in methods.items() if not m]
    assert methods["catboost-higgs"] == "trees" and methods["detr-resnet-50"] == "graph"
    assert methods["resnet-50"] == "graph" and methods["llama-3.1-8b"] == "serving"
    # An entry with published MACs and parameters but no graph: DETR-R50 without its builder.
    figures_only = replace(models().get("detr-resnet-50"), builder="", builder_args={})
    assert hw_resources.costing_method(figures_only) == "published"
    assert hw_resources.costing_method(replace(figures_only, macs=0)) == ""
    assert methods["stable-diffusion-xl-base-1.0"] == "serving"


@pytest.mark.parametrize("name", ENTRIES)
def test_every_entry_is_costed_on_a_server_cpu(name: str) -> None:
    out = run(models().get(name), ["EPYC-9654"])
    extra = out.get_extra()
    assert out.hw_description.endswith("EPYC-9654")
    assert_costed(name, "EPYC-9654", extra["latency_per_inference_s"], extra["energy_per_inference_j"])
    assert out.latency > 0 and math.isfinite(out.latency)
    assert out.power_consumption > 0 and out.memory_footprint_of_ml_model > 0
    assert extra["energy_per_inference_j"] <= out.power_consumption * out.latency * (
        extra.get("audio_windows", {}).get("windows", 1)
    ) * (1 + 1e-9)


@pytest.mark.parametrize("name", ENTRIES)
def test_every_entry_is_costed_on_one_device_of_every_class(name: str) -> None:
    entry = models().get(name)
    for device in ONE_PER_CLASS:
        out = run(entry, [device])
        extra = out.get_extra()
        assert_costed(name, device, extra["latency_per_inference_s"], extra["energy_per_inference_j"])
        assert extra["constraints_met"] is (not extra["violations"])
