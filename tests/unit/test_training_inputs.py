"""Training footprints from what people know: device-hours or devices x wall clock, rated /
stated / capped / measured power, PUE by setting, region or cloud region, a 6·N·D forecast, ranges,
the embodied share, and a stated run computed even when no model was found."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sustainml.catalogue import hardware, regions
from sustainml.config import Settings
from sustainml.estimate import carbon as cb
from sustainml.estimate import embodied, hardware_choice, pue
from sustainml.estimate.training import calibration
from sustainml.messages.types import CO2Footprint, HWResource, MLModel, NodeStatus, UserInput, pack_extra
from sustainml.workers.logic import carbon_footprint

DE = regions().get("DE").carbon_intensity
#: The stage as a deployment without a grid override runs it (a developer's environment plays no part).
CARBON = carbon_footprint.for_settings(Settings())


@pytest.fixture(autouse=True)
def _fallback_extractor(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(hardware_choice, "_external_extractor", lambda: None)  # explicit keys only
    yield


def run(
    extra: dict[str, Any], *, device: str = "A100-80GB", region: str = "", model: str = "x"
) -> CO2Footprint:
    out = CO2Footprint()
    record = UserInput(geo_location_region=region, extra_data=pack_extra(extra))
    hw = HWResource(hw_description=device, power_consumption=100.0, latency=0.01)
    m = MLModel(model=model, model_properties='{"macs": 1e9}')
    CARBON.task_callback(m, record, hw, NodeStatus(), out)
    return out


def test_devices_times_wall_clock_days_at_rated_power() -> None:
    # 8 x A100 SXM4 80 GB x 72 h = 576 device-hours x 400 W x PUE 1.56 = 359.4 kWh; x DE grid
    out = run({"num_devices": 8, "training_days": 3}, region="Germany")
    t = out.get_extra()["training"]
    assert t["device_hours"] == pytest.approx(576)
    assert out.energy_consumption == pytest.approx(576 * 400 * 1.56)
    assert out.carbon_footprint == pytest.approx(576 * 400 * 1.56 / 1e6 * DE)
    # ranges: power 0.6-1.0 x rated, PUE 1.40-1.80; time given, so no MFU range
    assert t["energy_wh_low"] == pytest.approx(576 * 400 * 0.6 * 1.40)
    assert t["energy_wh_high"] == pytest.approx(576 * 400 * 1.80)
    assert t["carbon_kg_low"] < out.carbon_footprint < t["carbon_kg_high"]


@pytest.mark.parametrize(
    ("extra", "power", "source"),
    [
        ({"training_power_w": 330}, 330.0, "measured"),
        ({"power_cap_w": 300}, 300.0, "cap"),
        ({"power_cap_w": 900}, 400.0, "cap"),  # a cap above the TDP changes nothing
        ({"hardware_required": "A100-80GB (TDP of 350-400W)"}, 400.0, "stated"),
        ({}, 400.0, "rated"),
    ],
)
def test_power_as_rated_stated_capped_or_measured(extra: dict[str, Any], power: float, source: str) -> None:
    t = run({"training_device_hours": 1000, "pue": 1.1, **extra}).get_extra()["training"]
    assert (t["power_w_per_device"], t["power_source"]) == (power, source)
    assert t["energy_wh"] == pytest.approx(1000 * power * 1.1)


@pytest.mark.parametrize(
    ("extra", "region", "value"),
    [
        ({"pue_setting": "hyperscale"}, "", 1.10),
        ({"pue_setting": "on-premises"}, "", 2.0),
        ({"pue_setting": "typical"}, "", 1.56),
        ({}, "us-east-1", 1.20),  # AWS (Green Algorithms' provider table)
        ({}, "europe-west4", 1.12),  # Google Cloud
        ({}, "Germany", 1.56),  # a data centre of unknown kind
        ({"pue": 1.3, "pue_setting": "on-premises"}, "", 1.3),  # the number wins
    ],
)
def test_pue_by_setting_or_provider(extra: dict[str, Any], region: str, value: float) -> None:
    t = run({"training_device_hours": 10, **extra}, region=region).get_extra()["training"]
    assert t["pue"] == pytest.approx(value)


def test_an_unknown_pue_setting_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"extra_data\.pue_setting must be one of hyperscale"):
        run({"training_device_hours": 10, "pue_setting": "igloo"})


def test_forecast_from_size_and_tokens_is_six_n_d() -> None:
    # 7e9 params x 1e12 tokens x 6 = 4.2e22 FLOP on 8 H100 SXM (989.4 TFLOPS bf16) at the realised
    # MFU of the H100-class calibration runs
    fit = calibration.fits()[calibration.HOPPER]
    mfu, (low, high) = fit.mfu(7e9), fit.mfu_range(7e9)
    out = run(
        {"model_parameters": 7e9, "training_tokens": 1e12, "num_devices": 8, "pue": 1.1},
        device="H100-SXM",
    )
    t = out.get_extra()["training"]
    assert t["flops"] == pytest.approx(4.2e22) and t["flops_source"] == "transformer"
    seconds = 4.2e22 / (8 * 989.4e12 * mfu)
    assert t["time_s"] == pytest.approx(seconds) and t["mfu"] == pytest.approx(mfu)
    assert t["energy_wh"] == pytest.approx(8 * 700 * seconds * 1.1 / 3600)
    # MFU range from the calibration spread, power 0.6-1.0 x rated; a realised MFU already holds
    # restarts, so no restart overhead on the high end
    assert t["energy_wh_high"] == pytest.approx(t["energy_wh"] * mfu / low)
    assert t["energy_wh_low"] == pytest.approx(t["energy_wh"] * 0.6 * mfu / high)
    assumptions = out.get_extra()["assumptions"]
    assert "Phi-4" in assumptions["mfu"]["reference"] and "realised" in assumptions["mfu"]["reference"]
    assert "restart_overhead_high" not in assumptions


def test_a_mixture_of_experts_counts_its_active_parameters() -> None:
    dense = run({"model_parameters": 47e9, "training_tokens": 1e9}).get_extra()["training"]
    moe = run({"model_parameters": 47e9, "active_parameters": 13e9, "training_tokens": 1e9}).get_extra()[
        "training"
    ]
    assert moe["flops"] == pytest.approx(6 * 13e9 * 1e9) and dense["flops"] == pytest.approx(6 * 47e9 * 1e9)


def test_samples_times_epochs_times_tokens_per_sample() -> None:
    t = run(
        {"model_parameters": 1e8, "training_samples": 1000, "epochs": 2, "input_tokens": 512}
    ).get_extra()["training"]
    assert t["flops"] == pytest.approx(6 * 1e8 * 1000 * 2 * 512)


def test_instance_type_gives_device_count_and_a_note() -> None:
    extra = run(
        {"hardware_required": "p4d.24xlarge", "training_hours": 10}, device="A100-SXM4-40GB"
    ).get_extra()
    assert extra["training"]["num_devices"] == 8 and extra["training"]["device_hours"] == pytest.approx(80)
    assert "instance type p4d.24xlarge: 8 x A100-SXM4-40GB" in extra["hardware_notes"][0]


def test_embodied_share_is_its_own_figure() -> None:
    out = run({"num_devices": 8, "training_hours": 72}, region="Germany")
    emb = out.get_extra()["training"]["embodied"]
    share = embodied.BY_CLASS["cloud"].kg * 576 / (5 * 8760)
    assert emb["carbon_kg"] == pytest.approx(share)
    assert emb["carbon_kg_low"] < emb["carbon_kg"] <= emb["carbon_kg_high"]
    assert out.carbon_footprint == pytest.approx(576 * 400 * 1.56 / 1e6 * DE)  # operational only
    assert embodied.units_of(hardware().get("H100_x8")) == 8 and embodied.units_of(hardware().get("T4")) == 1


def test_a_stated_training_run_is_computed_even_without_a_model() -> None:
    out = CO2Footprint()
    record = UserInput(
        geo_location_region="Germany", extra_data=pack_extra({"num_devices": 8, "training_hours": 72})
    )
    hw = HWResource(hw_description="A100-80GB", extra_data=pack_extra({"error_code": "NO_MODEL"}))
    CARBON.task_callback(MLModel(model="NO_MODEL"), record, hw, NodeStatus(), out)
    extra = out.get_extra()
    assert extra["mode"] == "no_model" and "still estimated" in extra["note"]
    assert out.energy_consumption == pytest.approx(576 * 400 * 1.56)
    # nothing described: zeros as before
    out = CO2Footprint()
    CARBON.task_callback(MLModel(model="NO_MODEL"), UserInput(), hw, NodeStatus(), out)
    assert out.carbon_footprint == 0.0 and out.get_extra()["mode"] == "no_model"


def test_inference_uses_hw_resources_energy_per_answer_times_pue() -> None:
    out = CO2Footprint()
    record = UserInput(extra_data=pack_extra({"pue": 1.2, "training_device_hours": 1}))
    hw = HWResource(
        hw_description="A100-80GB",
        power_consumption=300.0,
        latency=0.5,
        extra_data=pack_extra({"energy_per_inference_j": 36.0}),  # per answer, batch already divided
    )
    CARBON.task_callback(MLModel(model="x", model_properties='{"macs": 1e9}'), record, hw, NodeStatus(), out)
    inference = out.get_extra()["inference"]
    assert inference["energy_per_inference_wh"] == pytest.approx(36.0 / 3600 * 1.2)


def test_greener_hardware_lists_positive_savings_only() -> None:
    options = run({"training_device_hours": 100}).get_extra()["greener_alternatives"]["hardware"]["options"]
    assert options and all(o["saving_percent"] > 0 for o in options)
    best = run({"training_device_hours": 100}, device="B200").get_extra()
    assert best["greener_alternatives"]["hardware"]["options"] == []


def test_pue_module_settings_have_sources_and_ranges() -> None:
    for p in pue.SETTINGS.values():
        assert p.low <= p.value <= p.high and p.source
    assert pue.setting("cloud").setting == "hyperscale" and pue.setting("On-Prem").setting == "on-premises"
    assert pue.default_for("edge").value == 1.0 and pue.default_for("cloud", "gcp").value == 1.12


def test_tokens_alone_take_the_catalogue_models_active_parameters() -> None:
    # Mixtral 8x7B from the model catalogue: 2 of 8 experts per token, ~12.9 B active parameters
    t = run({"training_tokens": 1e9}, model="mixtral-8x7b").get_extra()["training"]
    assert t["flops_source"] == "transformer"
    assert 12e9 * 6e9 < t["flops"] < 14e9 * 6e9


def test_inference_and_workload_carry_the_pue_range() -> None:
    extra = run({"training_device_hours": 10, "pue_setting": "typical", "inferences": 100}).get_extra()
    inference, workload = extra["inference"], extra["workload"]
    per = inference["energy_per_inference_wh"]
    assert inference["energy_per_inference_wh_low"] == pytest.approx(per * 1.40 / 1.56)
    assert inference["energy_per_inference_wh_high"] == pytest.approx(per * 1.80 / 1.56)
    assert workload["energy_wh_low"] < workload["energy_wh"] < workload["energy_wh_high"]


def test_a_city_or_state_gives_its_country_grid() -> None:
    assert run({"training_device_hours": 1}, region="Frankfurt").get_extra()["grid"]["code"] == "DE"
    assert run({"training_device_hours": 1}, region="Virginia").get_extra()["grid"]["code"] == "US"


def test_a_place_from_the_text_that_is_unknown_is_noted_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    def extract(description: str = "", definition: str = "", extra: Any = None) -> Any:
        return SimpleNamespace(requirements={"region": "Gotham"}, evidence={})

    monkeypatch.setattr(hardware_choice, "_external_extractor", lambda: extract)
    extra = run({"training_device_hours": 1}).get_extra()
    assert extra["grid"]["code"] == "WORLD"
    assert "unknown region 'Gotham'" in extra["grid"]["notes"][0]
    # typed in the field, the same place is refused
    with pytest.raises(cb.UnknownRegionError):
        run({"training_device_hours": 1}, region="Gotham")


def test_local_cpu_is_the_entry_hw_resources_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    # One figure per device: CARBON_FOOTPRINT takes this machine as measured, like HW_RESOURCES.
    from dataclasses import replace

    from sustainml.catalogue import localcpu

    measured = replace(hardware().get("local-cpu"), tdp_w=123.0, description="measured here")
    monkeypatch.setattr(localcpu, "local_cpu_entry", lambda *a, **k: measured)
    assert cb.find_hardware("local-cpu") is measured
    t = run({"training_device_hours": 1}, device="local-cpu").get_extra()["training"]
    assert t["power_w_per_device"] == pytest.approx(123.0)


def test_accelerators_of_one_cloud_take_that_providers_pue() -> None:
    assert run({"training_device_hours": 1}, device="TPU-v4").get_extra()["training"]["pue"] == 1.12
    assert run({"training_device_hours": 1}, device="Trainium").get_extra()["training"]["pue"] == 1.20


def test_a_catalogue_decoder_adds_attention_at_its_training_sequence_length() -> None:
    # llama-2-7b in the catalogue: 32 layers, attention width 4,096, context 4,096
    base = {"model_parameters": 6.74e9, "training_tokens": 1e9, "pue": 1.1}
    t = run(base, model="llama-2-7b").get_extra()
    attention = 6 * 32 * 4096 * 4096 * 1e9
    assert t["training"]["flops"] == pytest.approx(6 * 6.74e9 * 1e9 + attention)
    assert t["assumptions"]["sequence_length"]["value"] == 4096
    short = run({**base, "sequence_length": 1024}, model="llama-2-7b").get_extra()["training"]
    assert short["flops"] == pytest.approx(6 * 6.74e9 * 1e9 + attention / 4)
    # A model with no catalogue shape: 6·N·D alone.
    plain = run(base, model="x").get_extra()["training"]
    assert plain["flops"] == pytest.approx(6 * 6.74e9 * 1e9)


def test_a_long_context_model_defaults_to_a_4096_training_sequence() -> None:
    t = run({"training_tokens": 1e9, "pue": 1.1}, model="llama-3.1-8b").get_extra()
    assert t["assumptions"]["sequence_length"] == {
        "value": 4096,
        "source": "architecture",
        "reference": t["assumptions"]["sequence_length"]["reference"],
    }
    assert "Qwen2.5" in t["assumptions"]["sequence_length"]["reference"]


def test_a_catalogue_encoder_decoder_counts_each_stack() -> None:
    # t5-small from the catalogue: the decoder sees target_tokens, fewer than 6·N·D on the whole model
    t = run({"training_tokens": 1e9, "target_tokens": 2e8, "pue": 1.1}, model="t5-small").get_extra()
    assert t["training"]["flops_source"] == "transformer"
    assert t["assumptions"]["target_tokens"]["source"] == "user"
    assert t["training"]["flops"] < 6 * 60e6 * 1e9
