"""CARBON_FOOTPRINT: the node (``workers/logic/carbon_footprint/``) and the intensity and
alternatives helpers (``sustainml.estimate.carbon``). Figures are worked out by hand in the
comments from the catalogue values the first test pins down."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from sustainml.catalogue import hardware, models, regions
from sustainml.config import Settings
from sustainml.estimate import carbon as cb
from sustainml.estimate.training import estimate_training
from sustainml.messages.types import (
    CO2Footprint,
    ErrorCode,
    HWResource,
    MLModel,
    NodeStatus,
    RequestType,
    ResponseType,
    UserInput,
    pack_extra,
)
from sustainml.workers.logic import carbon_footprint
from sustainml.workers.logic.common import StageLogic

FR, DE, ES = 41.44, 329.65, 153.6  # gCO2e/kWh, Ember 2025 via OWID (regions.json)
WORLD = 458.29


def test_the_catalogue_figures_the_hand_calculations_use() -> None:
    a100, h100 = hardware().get("A100"), hardware().get("H100")
    assert (a100.device_class, a100.peak("bf16"), a100.peak("fp32"), a100.tdp_w, a100.idle_w) == (
        "cloud",
        312e12,
        19.5e12,
        250.0,
        37.5,
    )
    assert (h100.peak("bf16"), h100.peak("fp32"), h100.tdp_w, h100.idle_w) == (756e12, 51e12, 350.0, 52.5)
    nano = hardware().get("Jetson-Orin-Nano")
    assert (nano.device_class, nano.peak("fp16"), "bf16" in nano.peak_flops, nano.tdp_w) == (
        "edge",
        10e12,
        False,
        15.0,
    )
    assert [regions().get(c).carbon_intensity for c in ("FR", "DE", "ES", "WORLD")] == [FR, DE, ES, WORLD]


# -------------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------------


def ui(
    *,
    region: str = "",
    continent: str = "",
    extra: dict[str, Any] | None = None,
    maximum_samples: int = 0,
    target: float = 0.0,
) -> UserInput:
    return UserInput(
        geo_location_region=region,
        geo_location_continent=continent,
        maximum_samples=maximum_samples,
        desired_carbon_footprint=target,
        optimize_carbon_footprint_auto=target > 0,
        extra_data=pack_extra(extra or {}),
    )


def model(name: str = "my-cnn", macs: float = 4e9) -> MLModel:
    return MLModel(model=name, model_properties=json.dumps({"macs": macs, "parameters": 1_000_000}))


def hw(
    name: str = "A100", power: float = 100.0, latency: float = 0.01, memory_mb: float = 100.0
) -> HWResource:
    return HWResource(
        hw_description=name, power_consumption=power, latency=latency, memory_footprint_of_ml_model=memory_mb
    )


def node(grid_ci: str = "") -> StageLogic:
    """The stage bound to a deployment's settings (a developer's environment plays no part)."""
    return carbon_footprint.for_settings(Settings(grid_ci=grid_ci))


def run(m: MLModel, u: UserInput, h: HWResource, grid_ci: str = "") -> CO2Footprint:
    out = CO2Footprint()
    node(grid_ci).task_callback(m, u, h, NodeStatus(), out)
    return out


def configure(text: str, grid_ci: str = "") -> tuple[ResponseType, Any]:
    res = ResponseType()
    node(grid_ci).configuration_callback(RequestType(node_id=6, transaction_id=9, configuration=text), res)
    return res, json.loads(res.configuration)


def a100_france(grid_ci: str = "", **extra: Any) -> CO2Footprint:
    """4e9 MACs, 100,000 samples x 3 epochs on one A100 in France; 100 W x 10 ms inference."""
    u = ui(region="France", extra={"epochs": 3, **extra}, maximum_samples=100_000)
    return run(model(), u, hw(), grid_ci)


# -------------------------------------------------------------------------------------------------
# training (the headline figures)
# -------------------------------------------------------------------------------------------------

# FLOPs = 3 x (2 x 4e9) x 100,000 x 3 = 7.2e15; time = 7.2e15 / (312e12 bf16 x 0.3) = 76.923 s;
# energy = 1 x 250 W (TDP at u = 1) x 76.923 s x PUE 1.56 / 3600 = 8.3333 Wh
A100_TRAIN_S = 7.2e15 / (312e12 * 0.3)
A100_TRAIN_WH = 250 * A100_TRAIN_S * 1.56 / 3600


def test_training_footprint_by_hand() -> None:
    out = a100_france()
    # the module constants above, redone: 7.2e15 / 9.36e13 = 76.923 s; 250 x 76.923 x 1.56 / 3600
    assert pytest.approx(76.923, rel=1e-4) == A100_TRAIN_S
    assert pytest.approx(8.33333, rel=1e-5) == A100_TRAIN_WH
    assert out.energy_consumption == pytest.approx(8.333333, rel=1e-6)
    assert out.carbon_intensity == FR
    # 8.3333 Wh = 0.0083333 kWh x 41.44 g/kWh = 0.345333 g = 3.45333e-4 kg
    assert out.carbon_footprint == pytest.approx(3.453333e-4, rel=1e-6)
    extra = out.get_extra()
    assert extra["mode"] == "estimate" and extra["hardware"] == "A100" and extra["device_class"] == "cloud"
    t = extra["training"]
    assert t["flops"] == pytest.approx(7.2e15)
    assert (t["precision"], t["peak_flops_per_device"], t["mfu"], t["num_devices"]) == (
        "bf16",
        312e12,
        0.3,
        1,
    )
    assert t["time_s"] == pytest.approx(A100_TRAIN_S) and t["power_w_per_device"] == 250.0
    assert t["pue"] == 1.56 and t["carbon_kg"] == pytest.approx(out.carbon_footprint)
    assert extra["units"]["carbon_footprint"] == "kgCO2e" and extra["units"]["energy_consumption"] == "Wh"
    assert extra["units"]["carbon_intensity"] == "gCO2e/kWh"


def test_breakdown_is_checkable_by_hand() -> None:
    lines = a100_france(inferences=36000).get_extra()["breakdown"]
    assert lines == [
        "training FLOPs = 3 x 8e+09 FLOP/sample x 100000 samples x 3 epochs = 7.2e+15 FLOP",
        "training time = 7.2e+15 FLOP / (1 device(s) x 3.12e+14 FLOP/s bf16 peak x 0.3 MFU) = 76.9231 s "
        "(0.0213675 h)",
        # ranges: power 0.6-1.0 x rated, PUE 1.40-1.80 (typical), MFU 0.2-0.4
        "training energy = 1 device(s) x 250 W x 76.9231 s x PUE 1.56 / 3600 = 8.33333 Wh "
        "(range 3.36538-14.4231 Wh)",
        "carbon intensity = 41.44 gCO2e/kWh (France, 2025, region)",
        "training carbon = 8.33333 Wh / 1000 x 41.44 gCO2e/kWh / 1000 = 0.000345333 kgCO2e "
        "(range 0.000139462-0.000597692)",
        # 273 + 5700 / 8 kgCO2e per data-centre GPU over 5 years; low end 150 + 2500 / 8
        "embodied carbon of the hardware's share = 985.5 kgCO2e per device x 0.0213675 device-hours / "
        "(5 years x 8760 h) = 0.000480769 kgCO2e (range 0.000225627-0.000480769; reported apart, not in "
        "carbon_footprint)",
        "energy per inference = 100 W x 0.01 s x PUE 1.56 / 3600 = 0.000433333 Wh",
        "carbon per inference = 0.000433333 Wh / 1000 x 41.44 gCO2e/kWh / 1000 = 1.79573e-08 kgCO2e",
        "inferences = 0.000433333 Wh x 36000 = 15.6 Wh = 0.000646464 kgCO2e",
        "workload = 8.33333 Wh training + 15.6 Wh inference = 23.9333 Wh = 0.000991797 kgCO2e",
    ]


def test_every_assumption_has_a_value_a_source_and_a_reference() -> None:
    assumptions = a100_france().get_extra()["assumptions"]
    for key in (
        "forward_flops_per_sample",
        "training_flops_factor",
        "training_samples",
        "epochs",
        "num_devices",
        "mfu",
        "training_precision",
        "peak_flops_per_device",
        "training_utilisation",
        "training_power_w",
        "pue",
        "inferences",
        "inference_power_w",
        "inference_latency_s",
        "carbon_intensity",
    ):
        a = assumptions[key]
        assert set(a) == {"value", "source", "reference"} and a["reference"], key
    assert assumptions["forward_flops_per_sample"] == {
        "value": 8e9,
        "source": "model_properties (2 x macs)",
        "reference": assumptions["forward_flops_per_sample"]["reference"],
    }
    assert assumptions["training_samples"]["source"] == "user_input.maximum_samples"
    assert assumptions["epochs"] == {"value": 3, "source": "user", "reference": "extra_data.epochs"}
    assert assumptions["inferences"]["value"] == 1000 and assumptions["inferences"]["source"] == "default"
    assert "Uptime" in assumptions["pue"]["reference"]
    assert (
        assumptions["carbon_intensity"]["source"] == "region"
        and "Ember" in assumptions["carbon_intensity"]["reference"]
    )


def test_training_flops_override_with_devices_mfu_pue_and_precision() -> None:
    out = run(
        model(),
        ui(
            region="ES",
            extra={
                "training_flops": 9.36e16,
                "num_devices": 2,
                "mfu": 0.5,
                "pue": 1.2,
                "training_precision": "fp32",
            },
        ),
        hw(),
    )
    # 9.36e16 / (2 x 19.5e12 fp32 x 0.5) = 4800 s; 2 x 250 W x 4800 s x 1.2 / 3600 = 800 Wh
    assert out.get_extra()["training"]["time_s"] == pytest.approx(4800.0)
    assert out.energy_consumption == pytest.approx(800.0)
    # 0.8 kWh x 153.6 g/kWh = 122.88 g
    assert out.carbon_footprint == pytest.approx(0.12288)
    # the user's PUE also applies to the inference: 100 W x 0.01 s x 1.2 / 3600
    assert out.get_extra()["inference"]["energy_per_inference_wh"] == pytest.approx(1 / 3000)


def test_device_hours_give_the_time() -> None:
    out = run(model(), ui(region="DE", extra={"training_device_hours": 10, "num_devices": 4}), hw())
    t = out.get_extra()["training"]
    assert t["time_s"] == pytest.approx(9000.0) and t["device_hours"] == pytest.approx(10.0)
    # 4 x 250 W x 9000 s x 1.56 / 3600 = 3900 Wh = 3.9 kWh x 329.65 g/kWh = 1.285635 kg
    assert out.energy_consumption == pytest.approx(3900.0)
    assert out.carbon_footprint == pytest.approx(1.285635)


def test_edge_device_defaults_fp16_and_no_pue() -> None:
    out = run(
        model(macs=1e9), ui(extra={"training_samples": 3000}), hw("jetson orin nano", power=9.0, latency=0.1)
    )
    # 3 x 2e9 x 3000 = 1.8e13 FLOP / (10e12 fp16 x 0.3) = 6 s; 15 W x 6 s x PUE 1.0 / 3600 = 0.025 Wh
    t = out.get_extra()["training"]
    assert (t["precision"], t["pue"], t["time_s"]) == ("fp16", 1.0, pytest.approx(6.0))
    assert out.energy_consumption == pytest.approx(0.025)
    assert out.carbon_intensity == WORLD and out.get_extra()["grid"]["source"] == "world_default"
    assert out.get_extra()["inference"]["energy_per_inference_wh"] == pytest.approx(9.0 * 0.1 / 3600)


def test_hardware_named_in_hw_resources_extra_wins_over_the_description() -> None:
    h = hw("NVIDIA A100 (40 GB)")
    h.set_extra({"hardware": "T4"})
    assert run(model(), ui(), h).get_extra()["hardware"] == "T4"


def test_unknown_hardware_uses_hw_resources_rate_and_power() -> None:
    out = run(model(macs=1e9), ui(maximum_samples=1000), hw("MyBoard", power=5.0, latency=0.01))
    # rate = 2e9 FLOP / 0.01 s = 2e11 FLOP/s; 6e12 FLOP / 2e11 = 30 s; 5 W x 30 s x 1.56 / 3600
    assert out.energy_consumption == pytest.approx(5 * 30 * 1.56 / 3600)
    extra = out.get_extra()
    assert extra["training"]["time_source"] == "inference_rate"
    assert extra["greener_alternatives"]["hardware"]["options"] == []
    assert [o["kind"] for o in extra["next_options"]] == ["model"]


def test_forward_flops_fall_back_to_hw_resources_figures() -> None:
    h = hw()
    h.set_extra({"macs": 5e8})
    out = run(MLModel(model="custom-net"), ui(extra={"training_samples": 1}), h)
    assert out.get_extra()["assumptions"]["forward_flops_per_sample"]["value"] == 1e9
    assert out.get_extra()["assumptions"]["forward_flops_per_sample"]["source"] == "hw_resources (2 x macs)"


def test_forward_flops_from_the_model_catalogue() -> None:
    try:
        entry = next(iter(models()))
    except FileNotFoundError:
        pytest.skip("the model catalogue (models.json) is not there yet")
    out = run(MLModel(model=entry.name), ui(extra={"training_samples": 1}), hw())
    a = out.get_extra()["assumptions"]["forward_flops_per_sample"]
    assert (a["value"], a["source"]) == (2 * entry.macs, "model catalogue (2 x macs)")


def test_unknown_flops_fail_the_task_with_the_upstream_keys_kept() -> None:
    out = CO2Footprint()
    u = ui(extra={"model_restrains": ["a"], "num_outputs": 2})
    with pytest.raises(ValueError, match=r"training_flops, model_parameters with training_tokens"):
        node().task_callback(MLModel(model="mystery"), u, hw(), NodeStatus(), out)
    extra = out.get_extra()
    assert (out.carbon_footprint, out.energy_consumption, out.carbon_intensity) == (0.0, 0.0, 0.0)
    assert extra["mode"] == "error" and "training_flops" in extra["error"]
    assert extra["model_restrains"] == ["mystery", "a"] and extra["num_outputs"] == 2


def test_invalid_extra_data_value_fails_naming_the_key() -> None:
    out = CO2Footprint()
    with pytest.raises(ValueError, match=r"extra_data\.epochs must be"):
        node().task_callback(model(), ui(extra={"epochs": -1}), hw(), NodeStatus(), out)
    assert out.get_extra()["mode"] == "error"


# -------------------------------------------------------------------------------------------------
# inference
# -------------------------------------------------------------------------------------------------


def test_inference_per_item_and_total_by_hand() -> None:
    inf = a100_france(inferences=36000).get_extra()["inference"]
    # 100 W x 0.01 s x PUE 1.56 / 3600 = 4.3333e-4 Wh; x 41.44 g/kWh = 1.79573e-8 kg
    assert inf["energy_per_inference_wh"] == pytest.approx(4.333333e-4, rel=1e-6)
    assert inf["carbon_per_inference_kg"] == pytest.approx(4.333333e-4 / 1000 * FR / 1000)
    # x 36,000 = 15.6 Wh = 6.46464e-4 kg
    assert inf["inferences"] == 36000
    assert inf["total_energy_wh"] == pytest.approx(15.6)
    assert inf["total_carbon_kg"] == pytest.approx(6.46464e-4)
    assert inf["pue"] == 1.56 and inf["power_w"] == 100.0 and inf["latency_s"] == 0.01


def test_inference_default_count_and_workload() -> None:
    extra = a100_france().get_extra()
    assert extra["inference"]["inferences"] == cb.DEFAULT_INFERENCES == 1000
    # workload = 8.3333 Wh training + 1000 x 4.3333e-4 Wh = 8.7667 Wh
    assert extra["workload"]["energy_wh"] == pytest.approx(A100_TRAIN_WH + 0.433333, rel=1e-6)
    assert extra["workload"]["carbon_kg"] == pytest.approx(
        (A100_TRAIN_WH + 1000 * 100 * 0.01 * 1.56 / 3600) * FR / 1e6
    )


def test_zero_inferences_leave_only_the_training() -> None:
    extra = a100_france(inferences=0).get_extra()
    assert extra["inference"]["total_energy_wh"] == 0.0
    assert extra["workload"]["energy_wh"] == pytest.approx(A100_TRAIN_WH)
    assert extra["workload"]["training_share_percent"] == 100.0


# -------------------------------------------------------------------------------------------------
# carbon intensity: region chain and overrides
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "continent", "code", "source"),
    [
        ("FR", "", "FR", "region"),
        ("fra", "", "FR", "region"),
        ("France", "Asia", "FR", "region"),  # the region wins over the continent
        ("Madrid, Spain", "", "ES", "region"),
        ("ES-MD", "", "ES", "region"),
        ("united kingdom", "", "GB", "region"),
        ("Europe", "", "EUROPE", "continent"),  # a continent typed as the region
        ("", "south america", "SOUTH-AMERICA", "continent"),
        ("", "Spain", "WORLD", "world_default"),  # a country is not a continent
        ("us-east-1", "", "US", "region"),  # AWS N. Virginia
        ("europe-west4", "", "NL", "region"),  # GCP Eemshaven
        ("westeurope", "Asia", "NL", "region"),  # Azure
        ("", "", "WORLD", "world_default"),
    ],
)
def test_region_fallback_chain(region: str, continent: str, code: str, source: str) -> None:
    out = run(model(), ui(region=region, continent=continent), hw())
    grid = out.get_extra()["grid"]
    assert (grid["code"], grid["source"]) == (code, source)
    assert out.carbon_intensity == regions().get(code).carbon_intensity
    assert out.get_extra()["grid_ci_source"] == source


def test_deployment_override_then_user_override() -> None:
    out = a100_france(grid_ci="100")
    assert out.carbon_intensity == 100.0
    # 8.3333 Wh x 100 g/kWh = 0.83333 g
    assert out.carbon_footprint == pytest.approx(A100_TRAIN_WH * 100 / 1e6)
    grid = out.get_extra()["grid"]
    assert (grid["source"], grid["code"], grid["table_carbon_intensity"]) == ("env", "FR", FR)
    # the task's own value beats the deployment's
    out = a100_france(grid_ci="100", carbon_intensity=10)
    assert out.carbon_intensity == 10.0 and out.get_extra()["grid"]["source"] == "user"
    assert out.get_extra()["assumptions"]["carbon_intensity"]["source"] == "user"


def test_invalid_overrides_are_errors() -> None:
    with pytest.raises(ValueError, match=r"extra_data\.carbon_intensity must be >= 0"):
        a100_france(carbon_intensity=-1)
    with pytest.raises(ValueError, match=cb.GRID_CI_ENV):
        a100_france(grid_ci="dirty")


def test_intensity_helpers_directly() -> None:
    g = cb.grid_intensity("Spain", "", user_value=None, env={cb.GRID_CI_ENV: "12.5"})
    assert (g.g_per_kwh, g.source, g.continent, g.table_g_per_kwh) == (12.5, "env", "Europe", ES)
    g = cb.grid_intensity("Spain", "", env={})
    assert (g.g_per_kwh, g.source, g.year) == (ES, "region", 2025)
    assert cb.find_region("") is None and cb.find_region("Atlantis") is None
    assert cb.carbon_kg(1000.0, 500.0) == pytest.approx(0.5)  # 1 kWh x 500 g
    assert cb.inference_energy_wh(36.0, 100.0, 1.0) == pytest.approx(1.0)  # 3600 J
    assert cb.saving_percent(10.0, 2.5) == 75.0 and cb.saving_percent(0.0, 1.0) == 0.0


# -------------------------------------------------------------------------------------------------
# greener alternatives
# -------------------------------------------------------------------------------------------------


def test_greener_regions_are_cloud_regions_nearest_first_with_positive_savings() -> None:
    # Germany: the nearest cloud regions whose country's grid is cleaner, one per country.
    extra = run(model(), ui(region="Germany", extra={"epochs": 3}, maximum_samples=100_000), hw()).get_extra()
    alt = extra["greener_alternatives"]["regions"]
    assert alt["scope"] == "cloud regions, nearest first"
    options = alt["options"]
    assert len(options) == 3 and len({o["region"] for o in options}) == 3
    distances = [o["distance_km"] for o in options]
    assert distances == sorted(distances) and distances[0] < 500  # Zurich from Frankfurt, ~300 km
    assert all(o["carbon_intensity"] < DE and o["saving_percent"] > 0 for o in options)
    workload_wh = extra["workload"]["energy_wh"]
    for o in options:
        assert o["workload_kg"] == pytest.approx(workload_wh / 1000 * o["carbon_intensity"] / 1000)
        assert o["saving_percent"] == pytest.approx((1 - o["carbon_intensity"] / DE) * 100, abs=0.01)
        assert o["cloud_region"] and o["provider"] in ("aws", "gcp", "azure")
    # no country without a data centre (the "Lesotho or Bhutan, for a car")
    assert not {"LS", "BT"} & {o["region"] for o in options}


def test_a_cloud_region_keeps_its_provider_and_cleaner_grids_only() -> None:
    extra = run(model(), ui(region="us-east-1"), hw()).get_extra()
    assert extra["grid"]["cloud_region"]["provider"] == "aws"
    options = extra["greener_alternatives"]["regions"]["options"]
    assert options and all(o["provider"] == "aws" and o["saving_percent"] > 0 for o in options)
    # from a clean grid only cleaner ones are proposed
    french = run(model(), ui(region="FR"), hw()).get_extra()["greener_alternatives"]["regions"]["options"]
    assert all(o["carbon_intensity"] < FR for o in french)


def test_edge_work_cannot_move_grid() -> None:
    extra = run(model(), ui(region="Germany"), hw("Jetson-Orin-Nano", power=10.0)).get_extra()
    alt = extra["greener_alternatives"]["regions"]
    assert alt["options"] == [] and "cannot move grid" in alt["note"]


def test_an_unknown_region_is_an_error_with_the_closest_names() -> None:
    with pytest.raises(cb.UnknownRegionError, match=r"unknown region 'Germny' \(closest: Germany \(DE\)"):
        run(model(), ui(region="Germny"), hw())
    with pytest.raises(ValueError, match=r"UserInput.geo_location_region: unknown region 'Atlantis'"):
        run(model(), ui(region="Atlantis"), hw())


def test_the_region_requirement_feeds_the_grid_when_the_field_is_empty() -> None:
    extra = run(model(), ui(extra={"region": "eu-west-3"}), hw()).get_extra()
    assert (extra["grid"]["code"], extra["grid"]["cloud_region"]["name"]) == ("FR", "eu-west-3")
    # the UserInput field wins
    assert run(model(), ui(region="Spain", extra={"region": "FR"}), hw()).get_extra()["grid"]["code"] == "ES"


def test_greener_hardware_figures_by_hand() -> None:
    u = ui(region="France", extra={"epochs": 3, "inferences": 36000}, maximum_samples=100_000)
    training = estimate_training(
        {"epochs": 3}, device=hardware().get("A100"), forward_flops=8e9, maximum_samples=100_000
    )
    scope, options = cb.hardware_options(
        hardware().get("A100"),
        training,
        inference_wh_per_inference=100 * 0.01 * 1.56 / 3600,
        inferences=36000,
        inference_precision="fp32",
        g_per_kwh=FR,
        memory_mb=100.0,
        requested_precision=None,
        pue_override=None,
    )
    assert scope == "same class" and {o.device.device_class for o in options} == {"cloud"}
    assert "A100" not in [o.device.name for o in options]
    h100 = next(o for o in options if o.device.name == "H100")
    # training: 7.2e15 / (756e12 x 0.3) = 31.746 s x 350 W x 1.56 / 3600 = 4.81481 Wh
    assert h100.training_wh == pytest.approx(4.814815, rel=1e-6)
    assert h100.peak_flops_per_w == pytest.approx(756e12 / 350)
    # inference: W per fp32 FLOP/s at u = 0.5: H100 (52.5 + 0.5 x 297.5) / 51e12 = 201.25 / 51e12,
    # A100 (37.5 + 0.5 x 212.5) / 19.5e12 = 143.75 / 19.5e12 -> ratio 0.535294
    ratio = (201.25 / 51e12) / (143.75 / 19.5e12)
    assert ratio == pytest.approx(0.535294, rel=1e-6)
    assert h100.inference_wh == pytest.approx(15.6 * ratio)
    current_wh = A100_TRAIN_WH + 15.6
    assert h100.workload_kg == pytest.approx((4.814815 + 15.6 * ratio) * FR / 1e6, rel=1e-6)
    assert h100.saving_percent == pytest.approx((1 - (4.814815 + 15.6 * ratio) / current_wh) * 100, abs=0.01)
    # ordering: lowest workload carbon first
    kgs = [o.workload_kg for o in options]
    assert kgs == sorted(kgs)
    # the node shows the top 3, one per figure (H100_x2 ties with H100), with the same numbers
    shown = run(model(), u, hw()).get_extra()["greener_alternatives"]["hardware"]
    assert shown["scope"] == "same class" and shown["current"] == "A100"
    assert len(shown["options"]) == 3
    assert [o["workload_kg"] for o in shown["options"]] == sorted(o["workload_kg"] for o in shown["options"])
    assert len({round(o["workload_kg"], 15) for o in shown["options"]}) == 3
    for o in shown["options"]:
        assert o["saving_percent"] == pytest.approx(
            (1 - o["workload_kg"] / shown["current_kg"]) * 100, abs=0.01
        )


def test_greener_hardware_respects_memory_and_falls_back_to_every_class() -> None:
    # 50 GB of model: only devices with more than 50 GB of memory remain
    extra = run(model(), ui(), hw(memory_mb=50_000)).get_extra()
    names = [o["hardware"] for o in extra["greener_alternatives"]["hardware"]["options"]]
    assert names and all(hardware().get(n).memory_gb * 1000 >= 50_000 for n in names)
    # local-cpu is alone in its class: every class is searched, and local-cpu is never proposed
    extra = run(model(), ui(), hw("local-cpu", power=30.0, latency=0.05)).get_extra()
    alt = extra["greener_alternatives"]["hardware"]
    assert alt["scope"] == "all classes"
    assert len({hardware().get(o["hardware"]).device_class for o in alt["options"]}) >= 1
    assert "local-cpu" not in [o["hardware"] for o in alt["options"]]


# -------------------------------------------------------------------------------------------------
# automatic optimisation: target and next options
# -------------------------------------------------------------------------------------------------


def test_next_options_hardware_first_then_the_model() -> None:
    u = ui(region="France", extra={"epochs": 3}, maximum_samples=100_000, target=3e-4)
    extra = run(model(), u, hw()).get_extra()
    assert extra["target_kg"] == 3e-4
    assert extra["meets_target"] is False  # 3.4533e-4 kg > 3e-4 kg
    options = extra["next_options"]
    kinds = [o["kind"] for o in options]
    assert kinds == ["hardware", "hardware", "hardware", "model"]
    assert options[-1] == {"kind": "model", "exclude": "my-cnn"}
    hw_opts = options[:3]
    # best bf16 FLOP/s per W of the cloud class: B200 (2,250e12 / 1,000 W); then the H100s
    assert hw_opts[0]["hardware"] == "B200"
    assert not any(o["hardware"].startswith("H100_x") for o in hw_opts)
    b200_wh = 7.2e15 / (2250e12 * 0.3) * 1000 * 1.56 / 3600
    assert hw_opts[0]["estimated_kg"] == pytest.approx(b200_wh * FR / 1e6, rel=1e-6)
    assert hw_opts[0]["saving_percent"] == pytest.approx((1 - b200_wh / 8.333333) * 100, abs=0.01)
    assert hw_opts[0]["meets_target"] is True
    kgs = [o["estimated_kg"] for o in hw_opts]
    assert kgs == sorted(kgs) and all(k < 3.453333e-4 for k in kgs)
    assert all(o["meets_target"] == (o["estimated_kg"] <= 3e-4) for o in hw_opts)


def test_target_met_and_no_target() -> None:
    u = ui(region="France", extra={"epochs": 3}, maximum_samples=100_000, target=1.0)
    assert run(model(), u, hw()).get_extra()["meets_target"] is True
    extra = a100_france().get_extra()
    assert extra["meets_target"] is None and extra["target_kg"] is None
    assert all(o.get("meets_target") is None for o in extra["next_options"] if o["kind"] == "hardware")


def test_the_most_efficient_device_offers_no_hardware_step() -> None:
    extra = run(model(), ui(region="France"), hw("B200")).get_extra()
    assert [o["kind"] for o in extra["next_options"]] == ["model"]


def test_a_pinned_model_is_not_offered_for_exclusion() -> None:
    extra = run(model(), ui(extra={"model_selected": "my-cnn"}), hw()).get_extra()
    assert "model" not in [o["kind"] for o in extra["next_options"]]


def test_next_options_are_stable_for_the_same_state() -> None:
    u = ui(region="DE", target=1e-6)
    assert (
        run(model(), u, hw()).get_extra()["next_options"] == run(model(), u, hw()).get_extra()["next_options"]
    )


# -------------------------------------------------------------------------------------------------
# upstream keys, NO_MODEL, errors
# -------------------------------------------------------------------------------------------------


def test_restrains_and_num_outputs() -> None:
    u = ui(extra={"model_restrains": ["resnet-50", "my-cnn", "resnet-50"], "num_outputs": 3})
    extra = run(model(), u, hw()).get_extra()
    assert extra["model_restrains"] == ["my-cnn", "resnet-50"]  # current first, de-duplicated
    assert extra["num_outputs"] == 3
    extra = run(model(), ui(), hw()).get_extra()
    assert extra["model_restrains"] == ["my-cnn"] and extra["num_outputs"] == 1


@pytest.mark.parametrize("target", [0.0, 2.0])
def test_no_model_gives_zeros(target: float) -> None:
    u = ui(region="France", extra={"model_restrains": ["gpt2"], "num_outputs": 2}, target=target)
    h = HWResource(hw_description="PIM_AI_1chip", extra_data=pack_extra({"error_code": "NO_MODEL"}))
    out = run(MLModel(model="NO_MODEL", model_path="N/A"), u, h)
    assert (out.carbon_footprint, out.energy_consumption, out.carbon_intensity) == (0.0, 0.0, 0.0)
    extra = out.get_extra()
    assert extra["mode"] == "no_model"
    assert extra["model_restrains"] == ["gpt2"] and extra["num_outputs"] == 2
    assert extra["next_options"] == []
    assert extra["meets_target"] is (None if target == 0 else False)


def test_hw_error_gives_zeros_with_the_reason() -> None:
    h = HWResource(hw_description="Error", extra_data=pack_extra({"error": "Unknown hardware 'x'"}))
    out = run(model(), ui(extra={"num_outputs": 2}), h)
    assert out.carbon_footprint == 0.0
    extra = out.get_extra()
    assert extra["mode"] == "error" and "Unknown hardware" in extra["error"]
    assert extra["num_outputs"] == 2 and extra["model_restrains"] == ["my-cnn"]


def test_deterministic_and_fast() -> None:
    u = ui(region="Germany", extra={"inferences": 10_000}, target=0.001)
    first = run(model(), u, hw()).model_dump()
    start = time.perf_counter()
    for _ in range(20):
        assert run(model(), u, hw()).model_dump() == first
    per_call_ms = (time.perf_counter() - start) / 20 * 1000
    assert per_call_ms < 25  # ~1 ms on a laptop; generous for loaded CI machines


# -------------------------------------------------------------------------------------------------
# configuration requests
# -------------------------------------------------------------------------------------------------


def test_regions_request_lists_every_country_sorted() -> None:
    res, body = configure("regions")
    assert res.success is True and res.err_code == ErrorCode.NO_ERROR
    assert (res.node_id, res.transaction_id) == (6, 9)
    codes = body["regions"].split(", ")
    assert codes == sorted(codes) and len(codes) == body["count"] == len(body["entries"])
    assert {"FR", "DE", "US", "XK"} <= set(codes)
    assert "WORLD" not in codes and "EUROPE" not in codes
    assert body["entries"][codes.index("FR")] == {
        "code": "FR",
        "name": "France",
        "continent": "Europe",
        "carbon_intensity": FR,
        "year": 2025,
    }


def test_regions_of_one_continent() -> None:
    res, body = configure("regions, Europe")
    assert res.success is True
    assert {e["continent"] for e in body["entries"]} == {"Europe"} and "FR" in body["regions"]
    res, body = configure("regions, Atlantis")
    assert res.success is False and "Atlantis" in body["error"]


@pytest.mark.parametrize(
    ("request_text", "code", "fallback"),
    [
        ("intensity, FR", "FR", "region"),
        ("intensity, Madrid, Spain", "ES", "region"),
        ("intensity, europe", "EUROPE", "continent"),
        ("intensity, eu-central-1", "DE", "region"),
    ],
)
def test_intensity_request(request_text: str, code: str, fallback: str) -> None:
    res, body = configure(request_text)
    assert res.success is True
    entry = regions().get(code)
    assert (body["code"], body["fallback"], body["carbon_intensity"]) == (
        code,
        fallback,
        entry.carbon_intensity,
    )
    assert (body["year"], body["source"], body["unit"]) == (entry.year, entry.source, "gCO2e/kWh")
    assert "env_override" not in body


def test_intensity_request_reports_the_deployment_override() -> None:
    _, body = configure("intensity, FR", grid_ci="99")
    assert body["carbon_intensity"] == FR and body["env_override"] == 99.0


@pytest.mark.parametrize("text", ["intensity", "anything", "hardwares", ""])
def test_unsupported_requests_fail_the_upstream_way(text: str) -> None:
    res, body = configure(text)
    assert res.success is False and res.err_code == ErrorCode.INTERNAL_ERROR
    if text != "intensity":
        assert body == {"error": f"Unsupported configuration request: {text}"}
    else:
        assert "needs a region" in body["error"]
