"""The training-run estimate (``sustainml.estimate.training``): every formula checked against
figures worked out by hand here, on a made-up device whose numbers are round."""

from __future__ import annotations

from typing import Any

import pytest

from sustainml.catalogue import HardwareEntry, hardware
from sustainml.estimate import training as tr
from sustainml.estimate import transformer
from sustainml.estimate.training import calibration


def device(
    *,
    device_class: Any = "cloud",
    peaks: dict[str, float] | None = None,
    tdp: float = 300.0,
    idle: float = 50.0,
    name: str = "TestGPU",
) -> HardwareEntry:
    return HardwareEntry(
        name=name,
        device_class=device_class,
        description="test device",
        peak_flops=peaks if peaks is not None else {"fp32": 1e13, "bf16": 1e14},
        memory_bandwidth_gbs=1000.0,
        memory_gb=40.0,
        tdp_w=tdp,
        idle_w=idle,
        source="made up for the tests",
    )


def test_flops_time_energy_by_hand_with_the_defaults() -> None:
    est = tr.estimate_training(
        {}, device=device(), forward_flops=2e9, forward_source="test", maximum_samples=10_000
    )
    # 3 x 2e9 FLOP x 10,000 samples x 1 epoch = 6e13 FLOP
    assert est.flops == pytest.approx(6e13)
    # bf16 (the device has it): 6e13 / (1 x 1e14 x 0.3) = 2 s
    assert est.precision == "bf16" and est.peak_flops == 1e14 and est.mfu == 0.3
    assert est.time_s == pytest.approx(2.0)
    # training power at utilisation 1.0 = TDP = 300 W; cloud PUE 1.56
    assert est.power_w == 300.0 and est.pue == 1.56 and est.num_devices == 1
    # 1 x 300 W x 2 s x 1.56 / 3600 = 0.26 Wh
    assert est.energy_wh == pytest.approx(0.26)
    assert est.device_hours == pytest.approx(2.0 / 3600)
    assert est.time_source == "flops" and est.effective_flops == est.flops
    a = est.assumptions
    assert a["training_samples"].as_dict()["source"] == "user_input.maximum_samples"
    assert (a["epochs"].value, a["epochs"].source) == (1, "default")
    assert (a["mfu"].value, a["mfu"].source) == (0.3, "default") and "arXiv:2204.02311" in a["mfu"].reference
    assert (a["pue"].value, a["pue"].source) == (1.56, "default")
    assert a["training_precision"].source == "default" and "1710.03740" in a["training_precision"].reference
    assert a["forward_flops_per_sample"].source == "test"


def test_breakdown_strings_carry_the_substituted_numbers() -> None:
    est = tr.estimate_training(
        {"epochs": 2}, device=device(), forward_flops=2e9, forward_source="test", maximum_samples=10_000
    )
    assert est.breakdown == [
        "training FLOPs = 3 x 2e+09 FLOP/sample x 10000 samples x 2 epochs = 1.2e+14 FLOP",
        "training time = 1.2e+14 FLOP / (1 device(s) x 1e+14 FLOP/s bf16 peak x 0.3 MFU) = 4 s "
        "(0.00111111 h)",
        # range: power 0.6-1.0 x rated, PUE 1.40-1.80, MFU 0.2-0.4
        "training energy = 1 device(s) x 300 W x 4 s x PUE 1.56 / 3600 = 0.52 Wh (range 0.21-0.9 Wh)",
    ]


def test_user_settings_override_every_default() -> None:
    extra = {
        "training_samples": 1000,
        "epochs": 5,
        "num_devices": 4,
        "mfu": 0.5,
        "training_precision": "fp32",
        "pue": 1.2,
        "training_utilisation": 0.5,
    }
    est = tr.estimate_training(extra, device=device(), forward_flops=1e12, maximum_samples=99)
    # 3 x 1e12 x 1000 x 5 = 1.5e16 FLOP; / (4 x 1e13 fp32 x 0.5) = 750 s
    assert est.flops == pytest.approx(1.5e16)
    assert est.time_s == pytest.approx(750.0)
    # power at u = 0.5: 50 + 0.5 x (300 - 50) = 175 W; 4 x 175 x 750 x 1.2 / 3600 = 175 Wh
    assert est.power_w == pytest.approx(175.0)
    assert est.energy_wh == pytest.approx(175.0)
    assert all(
        est.assumptions[k].source == "user" for k in ("training_samples", "epochs", "num_devices", "mfu")
    )
    assert est.assumptions["pue"].source == "user" and est.assumptions["training_precision"].source == "user"


def test_training_flops_given_directly() -> None:
    est = tr.estimate_training({"training_flops": 3e15}, device=device(), forward_flops=None)
    # 3e15 / (1e14 x 0.3) = 100 s; 300 W x 100 s x 1.56 / 3600 = 13 Wh
    assert est.flops == 3e15 and est.time_s == pytest.approx(100.0)
    assert est.energy_wh == pytest.approx(13.0)
    assert est.assumptions["training_flops"].source == "user"
    assert "training_samples" not in est.assumptions  # not used
    assert est.breakdown[0] == "training FLOPs = 3e+15 FLOP (extra_data.training_flops)"


def test_device_hours_set_the_time_and_the_energy() -> None:
    est = tr.estimate_training(
        {"training_device_hours": 10, "num_devices": 4}, device=device(), forward_flops=2e9, maximum_samples=1
    )
    # wall clock: 10 device-hours / 4 devices = 2.5 h = 9000 s
    assert est.time_s == pytest.approx(9000.0) and est.time_source == "device_hours"
    assert est.device_hours == pytest.approx(10.0)
    # 4 x 300 W x 9000 s x 1.56 / 3600 = 4680 Wh (= 300 W x 10 h x 1.56)
    assert est.energy_wh == pytest.approx(4680.0)
    # the work those hours stand for: 4 x 1e14 x 0.3 x 9000 s = 1.08e18 FLOP
    assert est.effective_flops == pytest.approx(1.08e18)
    # a run given by its length reports no made-up FLOP count from the default samples
    assert est.flops is None
    assert est.breakdown[0] == (
        "training time = 10 device-hours / 4 device(s) = 2.5 h = 9000 s (extra_data.training_device_hours)"
    )


def test_device_hours_work_without_forward_flops() -> None:
    est = tr.estimate_training({"training_device_hours": 1}, device=device(), forward_flops=None)
    assert est.flops is None
    assert est.energy_wh == pytest.approx(300 * 1.56)


def test_unknown_forward_flops_without_alternatives_is_an_error() -> None:
    with pytest.raises(
        ValueError, match=r"training_flops, model_parameters with training_tokens, training_device_hours"
    ):
        tr.estimate_training({}, device=device(), forward_flops=None)


def test_samples_fall_back_to_minimum_then_the_documented_default() -> None:
    est = tr.estimate_training({}, device=device(), forward_flops=1.0, minimum_samples=700)
    assert est.assumptions["training_samples"].value == 700
    assert est.assumptions["training_samples"].source == "user_input.minimum_samples"
    est = tr.estimate_training({}, device=device(), forward_flops=1.0)
    assert est.assumptions["training_samples"].value == tr.DEFAULT_TRAINING_SAMPLES == 50_000
    assert est.assumptions["training_samples"].source == "default"
    assert "CIFAR-10" in est.assumptions["training_samples"].reference
    assert est.flops == pytest.approx(3 * 50_000)


def test_unknown_device_uses_the_rate_and_power_hw_resources_saw() -> None:
    est = tr.estimate_training(
        {}, device=None, forward_flops=2e9, maximum_samples=1000, fallback_power_w=5.0, fallback_rate=2e11
    )
    # 3 x 2e9 x 1000 = 6e12 FLOP at 2e11 FLOP/s = 30 s; 5 W x 30 s x 1.56 (unknown PUE) / 3600
    assert est.time_s == pytest.approx(30.0) and est.time_source == "inference_rate"
    assert est.pue == tr.PUE_UNKNOWN == 1.56
    assert est.energy_wh == pytest.approx(5 * 30 * 1.56 / 3600)
    assert est.assumptions["training_power_w"].source == "hw_resources"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"epochs": 0}, "epochs must be > 0"),
        ({"epochs": -1}, "epochs must be > 0"),
        ({"mfu": 1.5}, "mfu must be > 0 and <= 1"),
        ({"num_devices": 1.5}, "num_devices must be a whole number"),
        ({"num_devices": 0}, "num_devices must be >= 1"),
        ({"pue": 0.9}, "pue must be >= 1"),
        ({"training_samples": "many"}, "training_samples must be a number"),
        ({"training_flops": True}, "training_flops must be a number"),
        ({"training_flops": float("inf")}, "training_flops must be a finite number"),
        ({"training_precision": "fp8"}, "training_precision must be one of"),
        ({"training_utilisation": 2}, "training_utilisation must be >= 0 and <= 1"),
    ],
)
def test_invalid_settings_name_the_key(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tr.estimate_training(extra, device=device(), forward_flops=1e9)


def test_numeric_strings_are_accepted() -> None:
    est = tr.estimate_training({"epochs": "2", "training_samples": "10"}, device=device(), forward_flops=1.0)
    assert est.flops == pytest.approx(3 * 10 * 2)


def test_default_precision_and_pue_of_catalogue_devices() -> None:
    cat = hardware()
    assert tr.training_precision(cat.get("A100")) == "bf16"
    assert tr.training_precision(cat.get("T4")) == "fp16"  # no bf16 path
    assert tr.training_precision(cat.get("local-cpu")) == "fp32"
    assert tr.training_precision(cat.get("T4"), "int8") == "int8"
    assert tr.default_pue("cloud") == tr.default_pue("server-cpu") == tr.default_pue("pim") == 1.56
    assert all(tr.default_pue(c) == 1.0 for c in ("edge", "mobile", "embedded", "fpga", "local"))
    assert tr.default_pue(None) == tr.default_pue("quantum") == 1.56


def test_training_energy_helper_matches_the_estimate() -> None:
    d = device()
    est = tr.estimate_training({"num_devices": 3}, device=d, forward_flops=2e9, maximum_samples=10_000)
    again = tr.training_energy_wh(
        est.effective_flops, d, precision="bf16", mfu=0.3, utilisation=1.0, pue=1.56
    )
    assert again == pytest.approx(est.energy_wh)  # more devices: shorter, same energy
    assert est.energy_wh == pytest.approx(0.26)


SEQ2SEQ = {
    "kind": "encoder-decoder",
    "encoder_layers": 1,
    "decoder_layers": 1,
    "hidden": 4,
    "heads": 2,
    "ffn": 8,
    "vocab": 10,
    "context": 16,
    "norm": "rmsnorm",
}


def test_encoder_decoder_flops_count_each_stack_on_its_own_tokens() -> None:
    # By hand: attention 4 x 4 x 4 = 64 weights, feed-forward 2 x 4 x 8 = 64, RMS norm 4.
    # Encoder layer 64 + 64 + 2 x 4 = 136; decoder layer 2 x 64 + 64 + 3 x 4 = 204, of which the
    # cross-attention k, v projections (2 x 4 x 4 = 32) see the input tokens.
    # Per input token 136 + 32 + final norm 4 = 172; per target token 204 - 32 + 4 + head 40 = 216.
    spec = transformer.from_architecture(SEQ2SEQ)
    assert spec.seq2seq_training_flops(100, 20) == pytest.approx(6 * (172 * 100 + 216 * 20))
    est = tr.estimate_training(
        {"architecture": SEQ2SEQ, "training_tokens": 100, "target_tokens": 20},
        device=device(),
        forward_flops=None,
    )
    assert est.flops == pytest.approx(6 * (172 * 100 + 216 * 20)) and est.flops_source == "transformer"
    assert est.assumptions["target_tokens"].source == "user"
    # Fewer FLOPs than 6·N·D on the whole model whenever the decoder sees fewer tokens.
    assert est.flops is not None and est.flops < 6 * spec.parameters() * 100


def test_encoder_decoder_target_tokens_default_to_the_input_tokens() -> None:
    est = tr.estimate_training(
        {"training_tokens": 100},
        device=device(),
        forward_flops=None,
        architecture=transformer.from_architecture(SEQ2SEQ),
    )
    assert est.flops == pytest.approx(6 * (172 + 216) * 100)
    assert est.assumptions["target_tokens"].source == "default"
    assert "target_tokens" in est.assumptions["target_tokens"].reference


def test_a_bad_architecture_in_extra_data_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"extra_data\.architecture\.decoder_layers"):
        tr.estimate_training(
            {"architecture": {**SEQ2SEQ, "decoder_layers": 0}, "training_tokens": 100},
            device=device(),
            forward_flops=None,
        )


def test_transformer_mfu_by_hardware_group() -> None:
    v100 = hardware().get("V100-SXM2")
    mfu, (low, high), ref, realised = tr.transformer_mfu(v100)
    assert (mfu, low, high, realised) == (0.24, 0.2, 0.3, False) and "1909.08053" in ref
    fits = calibration.fits()
    for name, group in (
        ("A100-80GB", calibration.EARLIER),
        ("TPU-v3", calibration.EARLIER),
        ("H100-SXM", calibration.HOPPER),
        ("B200", calibration.HOPPER),
    ):
        default = tr.transformer_mfu(hardware().get(name), 8e9)
        fit = fits[group]
        assert (default.mfu, default.range, default.realised) == (fit.mfu(8e9), fit.mfu_range(8e9), True)
        assert fit.runs[0] in default.reference
    # On the H100 class a larger model realises more of the peak; the A100 class shows no trend.
    h100 = hardware().get("H100-SXM")
    assert tr.transformer_mfu(h100, 1e9).mfu < tr.transformer_mfu(h100, 30e9).mfu
    a100 = hardware().get("A100-80GB")
    assert tr.transformer_mfu(a100, 1e9).mfu == tr.transformer_mfu(a100, 30e9).mfu
    # Forecast on a V100: the time follows the lower MFU; a stated MFU wins with no range.
    est = tr.estimate_training(
        {"model_parameters": 1e9, "training_tokens": 1e9}, device=v100, forward_flops=None
    )
    assert est.mfu == 0.24 and est.time_s == pytest.approx(6e18 / (v100.peak(est.precision) * 0.24))
    given = tr.estimate_training(
        {"model_parameters": 1e9, "training_tokens": 1e9, "mfu": 0.3, "pue": 1.2},
        device=v100,
        forward_flops=None,
    )
    assert given.mfu == 0.3 and given.energy_wh_high == pytest.approx(given.energy_wh * 1.1)


def test_restart_overhead_widens_only_the_high_end_of_a_transformer_forecast() -> None:
    est = tr.estimate_training(
        {"model_parameters": 1e9, "training_tokens": 1e9, "mfu": 0.4, "pue": 1.2},
        device=device(),
        forward_flops=None,
    )
    assert est.energy_wh_high == pytest.approx(est.energy_wh * (1 + tr.RESTART_OVERHEAD_HIGH))
    assert est.assumptions["restart_overhead_high"].reference.startswith("interruptions")
    timed = tr.estimate_training(
        {"training_device_hours": 10, "pue": 1.2}, device=device(), forward_flops=None
    )
    assert "restart_overhead_high" not in timed.assumptions and timed.energy_wh_high == timed.energy_wh
