"""Entries without a graph or architecture: tree ensembles (``estimate.trees``) and models known by
their published MACs and parameters (``roofline.published_estimate``), checked by hand; the
real-time factor of audio models and how a "real time" requirement is judged for them."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pytest

from sustainml.catalogue import ModelCatalogue, ModelEntry, hardware, models
from sustainml.estimate import power as pw
from sustainml.estimate import roofline as rl
from sustainml.estimate import trees as tr
from sustainml.messages.types import AppRequirements, HWConstraints, HWResource, MLModel, NodeStatus
from sustainml.workers.logic import hw_resources
from sustainml.workers.logic import ml_model as mm
from sustainml.workers.logic.tables import MODEL_PATH_SCHEME


def record(name: str) -> MLModel:
    entry = models().get(name)
    path = MODEL_PATH_SCHEME + name if entry.analytic else str(hw_resources.catalogue_file(entry))
    return MLModel(model=name, model_path=path, model_properties=json.dumps(mm.model_properties(entry)))


def run(
    name: str,
    hardware_required: list[str],
    reqs: list[str] | None = None,
    app_extra: dict[str, Any] | None = None,
    **extra: Any,
) -> HWResource:
    cons = HWConstraints(hardware_required=hardware_required)
    cons.set_extra({"measure_local": False, **extra})
    app = AppRequirements(app_requirements=reqs or [])
    if app_extra is not None:
        app.set_extra(app_extra)
    out = HWResource()
    hw_resources.task_callback(record(name), app, cons, NodeStatus(), out)
    return out


# -------------------------------------------------------------------------------------------------
# tree ensembles
# -------------------------------------------------------------------------------------------------


def test_the_ensemble_is_solved_from_the_catalogue_convention() -> None:
    entry = models().get("catboost-higgs")
    assert tr.is_tree_ensemble(entry)
    ens = tr.ensemble_of(entry)
    # parameters 254,000 = 2,000 x 127 node values, macs 12,000 = 2,000 x 6 comparisons
    assert (ens.trees, ens.depth, ens.nodes, ens.features) == (2000, 6, 254_000, 28)
    assert ens.visits == 12_000


def test_builder_args_win_and_inconsistent_figures_fall_back_to_one_chain() -> None:
    entry = models().get("xgboost-california")
    explicit = tr.ensemble_of(replace(entry, builder_args={"trees": 500, "depth": 8}))
    assert (explicit.trees, explicit.depth, explicit.nodes) == (500, 8, 500 * 511)
    odd = tr.ensemble_of(replace(entry, parameters=1000, macs=777))
    assert (odd.trees, odd.depth, odd.nodes) == (1, 777, 1000)
    with pytest.raises(ValueError, match="macs"):
        tr.ensemble_of(replace(entry, parameters=0, macs=0))


def test_cpu_latency_and_core_share_by_hand() -> None:
    ens = tr.ensemble_of(models().get("catboost-higgs"))
    epyc = hardware().get("EPYC-9654")  # 96 cores, idle 90 W, TDP 360 W
    one = tr.estimate(ens, epyc)
    assert one.latency_s == pytest.approx(5e-6 + 12_000 * 10e-9)
    assert one.power_w == pytest.approx((90 + 0.5 * (360 - 90)) / 96)
    assert one.energy_per_inference_j == pytest.approx(one.power_w * one.latency_s)
    assert one.model_bytes == 254_000 * 8 and one.input_bytes == 28 * 4
    batch = tr.estimate(ens, epyc, batch_size=200)  # 3 rounds of 96 rows over all cores
    assert batch.latency_s == pytest.approx(5e-6 + 3 * 12_000 * 10e-9)
    assert batch.power_w == pytest.approx(90 + 0.5 * (360 - 90))


def test_gpu_and_mcu_latency_by_hand() -> None:
    ens = tr.ensemble_of(models().get("catboost-higgs"))
    gpu = tr.estimate(ens, hardware().get("A100"))
    assert gpu.path == "parallel"
    assert gpu.latency_s == pytest.approx(30e-6 + 1 * 6 * 0.5e-6)  # 2,000 trees fit 4,096 lanes
    assert gpu.power_w == pytest.approx(pw.device_power_w(hardware().get("A100"), 0.5))
    mcu = tr.estimate(ens, hardware().get("STM32H7"))
    assert mcu.latency_s == pytest.approx(1e-6 + 12_000 * 20 / 480e6)
    with pytest.raises(ValueError, match="batch_size"):
        tr.estimate(ens, hardware().get("A100"), batch_size=0)


def test_auto_prefers_a_cpu_and_marks_devices_without_a_tree_runtime() -> None:
    out = run("catboost-higgs", ["auto"], allowed_hardware=["A100", "EPYC-9654", "PIM_AI_1chip"])
    extra = out.get_extra()
    assert out.hw_description == "EPYC-9654" and extra["trees"]["path"] == "cpu"
    by_name = {r["hardware"]: r for r in extra["ranking"]}
    assert by_name["A100"]["feasible"] is True
    assert by_name["A100"]["energy_per_inference_j"] > 10 * extra["energy_per_inference_j"]
    assert by_name["PIM_AI_1chip"]["feasible"] is False
    assert any(v.startswith("runtime:") for v in by_name["PIM_AI_1chip"]["violations"])
    assert extra["memory"]["footprint_mb"] == pytest.approx((254_000 * 8 + 28 * 4) / 1e6)


def test_auto_over_the_whole_catalogue_picks_a_cpu_class_device() -> None:
    out = run("xgboost-california", ["auto"])
    extra = out.get_extra()
    assert extra["device_class"] in ("server-cpu", "desktop", "edge", "mobile", "local")
    assert extra["constraints_met"] is True


def test_a_tree_ensemble_on_an_mcu_that_lacks_the_memory_says_so() -> None:
    extra = run("catboost-higgs", ["STM32H7"]).get_extra()  # 2 MB of nodes, 1 MB of SRAM
    assert extra["constraints_met"] is False
    assert any(v.startswith("memory:") for v in extra["violations"])


# -------------------------------------------------------------------------------------------------
# published MACs and parameters
# -------------------------------------------------------------------------------------------------


@pytest.fixture
def published_only(monkeypatch: pytest.MonkeyPatch) -> ModelEntry:
    """A catalogue entry known only by its published MACs and parameters: DETR-R50's figures
    without its graph builder, under its own name, in the catalogue the test and HW_RESOURCES read."""
    detr = models().get("detr-resnet-50")
    entry = replace(detr, name="detr-published-figures", aliases=(), builder="", builder_args={})
    catalogue = ModelCatalogue([*models(), entry], "name")
    monkeypatch.setattr(hw_resources, "models", lambda: catalogue)
    monkeypatch.setitem(globals(), "models", lambda: catalogue)
    return entry


def test_published_figures_roofline_by_hand(published_only: ModelEntry) -> None:
    entry = published_only  # 86 GMACs, 41.3 M parameters
    assert hw_resources.costing_method(entry) == "published"
    out = run(entry.name, ["A100"])
    # compiled engine on a cloud GPU: eta_c 0.8, eta_m 0.9, 2 us per kernel, 60 kernels assumed
    t_c = 2 * entry.macs / (19.5e12 * 0.8)
    t_m = entry.parameters * 4 / (1555e9 * 0.9)
    assert out.latency == pytest.approx(max(t_c, t_m) + 60 * 2e-6)
    weights_mb = entry.parameters * 4 / 1e6
    assert out.memory_footprint_of_ml_model == pytest.approx(weights_mb * 1.5)
    extra = out.get_extra()
    assert extra["energy_per_inference_j"] == pytest.approx(out.power_consumption * out.latency)
    assert extra["published_figures"]["kernels_assumed"] == 60
    eager = rl.published_estimate(entry.macs, entry.parameters, hardware().get("EPYC-9654"))
    assert eager.engine == "eager" and eager.overhead_s == pytest.approx(200 * 2e-6)


def test_an_entry_with_nothing_to_cost_from_fails_naming_the_fields() -> None:
    # A catalogue entry with no graph, shape or pipeline, and no published MACs.
    entry = replace(models().get("tcn-electricity"), builder="", builder_args={}, macs=0)
    with pytest.raises(ValueError, match="macs"):
        hw_resources.evaluate_without_graph(entry, hardware().get("A100"))


# -------------------------------------------------------------------------------------------------
# real time for audio models
# -------------------------------------------------------------------------------------------------

REAL_TIME = {
    "requirements": {"max_latency_ms": 100.0, "languages": ["es"]},
    "evidence": {"max_latency_ms": {"text": "real time", "start": 40, "end": 49, "source": "description"}},
}
HUNDRED_MS = {
    "requirements": {"max_latency_ms": 100.0},
    "evidence": {"max_latency_ms": {"text": "100 ms", "start": 10, "end": 16, "source": "description"}},
}


def test_real_time_asr_is_judged_on_the_real_time_factor() -> None:
    out = run("whisper-large-v3", ["L4"], ["max_latency_ms=100"], REAL_TIME)
    extra = out.get_extra()
    rt = extra["real_time"]
    assert out.latency > 0.1  # a 30 s window takes longer than 100 ms ...
    assert rt["real_time_factor"] == pytest.approx(out.latency / 30.0)
    assert rt["real_time_factor"] < 1  # ... but keeps up with the audio
    assert extra["constraints_met"] is True and extra["violations"] == []
    assert "real-time factor" in rt["reasoning"] and "100 ms" in rt["reasoning"]
    assert rt["latency_per_window_s"] == pytest.approx(out.latency)


def test_a_number_stays_a_latency_limit_and_an_explicit_factor_is_checked() -> None:
    extra = run("whisper-large-v3", ["L4"], ["max_latency_ms=100"], HUNDRED_MS).get_extra()
    assert extra["constraints_met"] is False
    assert any(v.startswith("latency:") for v in extra["violations"])
    assert extra["real_time"]["max_real_time_factor"] is None
    strict = run("whisper-large-v3", ["L4"], ["max_real_time_factor=0.001"]).get_extra()
    assert any(v.startswith("real-time factor:") for v in strict["violations"])


def test_long_audio_keeps_the_factor_and_slow_devices_miss_it() -> None:
    hour = run("whisper-large-v3", ["L4"], ["max_latency_ms=100"], REAL_TIME, audio_seconds=3600.0)
    rt = hour.get_extra()["real_time"]
    assert rt["audio_s"] == 3600.0
    assert rt["real_time_factor"] == pytest.approx(hour.latency / 3600.0)
    pi = run("whisper-large-v3", ["Raspberry-Pi-4"], ["max_latency_ms=100"], REAL_TIME).get_extra()
    assert pi["real_time"]["real_time_factor"] > 1
    assert any(v.startswith("real-time factor:") for v in pi["violations"])


def test_a_graph_audio_model_reports_its_factor_per_window() -> None:
    out = run("wav2vec2-base-960h", ["A100"], ["max_latency_ms=100"], REAL_TIME)
    extra = out.get_extra()
    window = hw_resources.audio_window_seconds(models().get("wav2vec2-base-960h"))
    assert window is not None and window > 0
    assert extra["real_time"]["real_time_factor"] == pytest.approx(out.latency / window)
    assert math.isfinite(extra["real_time"]["real_time_factor"])


def test_non_audio_models_have_no_real_time_block_and_keep_the_latency_check() -> None:
    extra = run("resnet-50", ["Raspberry-Pi-4"], ["max_latency_ms=100"], REAL_TIME).get_extra()
    assert "real_time" not in extra
    assert any(v.startswith("latency:") for v in extra["violations"])
