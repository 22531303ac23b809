"""The shipped per-stage logic (``sustainml.workers.logic``), called directly with constructed
records: no broker, no runtime. Arithmetic is checked against values worked out by hand here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from sustainml.messages.types import (
    AppRequirements,
    CO2Footprint,
    ErrorCode,
    HWConstraints,
    HWResource,
    MLModel,
    MLModelMetadata,
    NodeStatus,
    RequestType,
    ResponseType,
    UserInput,
    pack_extra,
)
from sustainml.workers.logic import (
    app_requirements,
    carbon_footprint,
    hw_constraints,
    hw_resources,
    ml_model,
    ml_model_metadata,
    tables,
)

# -------------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_grid_override(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # A developer's SUSTAINML_GRID_CI must not change the expected intensities.
    monkeypatch.delenv(tables.GRID_CI_ENV, raising=False)
    yield


def user_input(
    description: str = "",
    *,
    modality: str = "",
    definition: str = "",
    extra: dict[str, Any] | None = None,
    region: str = "",
    continent: str = "",
) -> UserInput:
    return UserInput(
        modality=modality,
        problem_short_description=description,
        problem_definition=definition,
        geo_location_region=region,
        geo_location_continent=continent,
        extra_data=pack_extra(extra or {}),
    )


def run_metadata(ui: UserInput) -> MLModelMetadata:
    out = MLModelMetadata()
    ml_model_metadata.task_callback(ui, NodeStatus(), out)
    return out


def run_requirements(text: str) -> AppRequirements:
    out = AppRequirements()
    app_requirements.task_callback(user_input(text), NodeStatus(), out)
    return out


def run_constraints(ui: UserInput) -> HWConstraints:
    out = HWConstraints()
    hw_constraints.task_callback(ui, NodeStatus(), out)
    return out


def metadata(goal: str, **extra: Any) -> MLModelMetadata:
    return MLModelMetadata(ml_model_metadata=[goal], extra_data=pack_extra(extra))


def constraints(max_mb: int = 0, hardware: str = "PIM_AI_1chip") -> HWConstraints:
    return HWConstraints(max_memory_footprint=max_mb, hardware_required=[hardware])


def run_model(
    meta: MLModelMetadata, reqs: AppRequirements | None = None, cons: HWConstraints | None = None
) -> MLModel:
    out = MLModel()
    ml_model.task_callback(
        meta,
        reqs if reqs is not None else AppRequirements(),
        cons if cons is not None else constraints(),
        None,
        None,
        None,
        NodeStatus(),
        out,
    )
    return out


def catalogue_model(name: str) -> MLModel:
    """An MLModel as ML_MODEL fills it for catalogue model ``name``."""
    spec = next(m for m in tables.MODEL_CATALOGUE if m.name == name)
    return MLModel(
        model=name,
        model_path=tables.MODEL_PATH_SCHEME + name,
        model_properties=json.dumps(ml_model.model_properties(spec)),
    )


def run_hw(model: MLModel, hardware: str, reqs: AppRequirements | None = None, max_mb: int = 0) -> HWResource:
    out = HWResource()
    hw_resources.task_callback(
        model,
        reqs if reqs is not None else AppRequirements(),
        constraints(max_mb, hardware),
        NodeStatus(),
        out,
    )
    return out


def run_co2(model: MLModel, ui: UserInput, hw: HWResource) -> CO2Footprint:
    out = CO2Footprint()
    carbon_footprint.task_callback(model, ui, hw, NodeStatus(), out)
    return out


def configure(module: Any, text: str, node_id: int = 3, transaction_id: int = 17) -> tuple[ResponseType, Any]:
    res = ResponseType()
    module.configuration_callback(
        RequestType(node_id=node_id, transaction_id=transaction_id, configuration=text), res
    )
    assert res.node_id == node_id
    assert res.transaction_id == transaction_id
    return res, json.loads(res.configuration)


# -------------------------------------------------------------------------------------------------
# tables
# -------------------------------------------------------------------------------------------------


def test_every_goal_has_triggers_a_modality_and_a_catalogue_model() -> None:
    for goal in tables.GOALS:
        assert tables.GOAL_TRIGGERS[goal], goal
        assert any(goal in goals for goals in tables.MODALITY_GOALS.values()), goal
        assert any(goal in m.goals for m in tables.MODEL_CATALOGUE), goal
    for model in tables.MODEL_CATALOGUE:
        assert set(model.goals) <= set(tables.GOALS), model.name
        assert model.parameters > 0 and model.macs > 0 and model.source


def test_computed_catalogue_entries_match_their_stated_configuration() -> None:
    # 2-layer LSTM, hidden 64, 8 inputs, PyTorch's two bias vectors, linear head 64 -> 24, 168 steps.
    h, x, steps, horizon = 64, 8, 168, 24
    lstm_params = 4 * (h * x + h * h + 2 * h) + 4 * (h * h + h * h + 2 * h) + (h * horizon + horizon)
    lstm_macs = steps * (4 * h * (x + h) + 4 * h * (h + h)) + h * horizon
    # MLP 64-256-256-2 with biases.
    mlp_params = (64 * 256 + 256) + (256 * 256 + 256) + (256 * 2 + 2)
    mlp_macs = 64 * 256 + 256 * 256 + 256 * 2
    by_name = {m.name: m for m in tables.MODEL_CATALOGUE}
    assert (by_name["lstm-forecaster"].parameters, by_name["lstm-forecaster"].macs) == (
        lstm_params,
        lstm_macs,
    )
    assert (by_name["tabular-mlp"].parameters, by_name["tabular-mlp"].macs) == (mlp_params, mlp_macs)


def test_hardware_names_and_aliases_are_unambiguous() -> None:
    from sustainml.workers.logic.common import norm_key

    # Every spelling normalises to a key of its own (no redundant alias, no clash between devices).
    keys = [norm_key(alias) for hw in tables.HARDWARE for alias in (hw.name, *hw.aliases)]
    assert len(keys) == len(set(keys))
    for hw in tables.HARDWARE:
        assert 0 <= hw.idle_w < hw.tdp_w and hw.peak_fp32_flops > 0 and hw.memory_gb > 0


# -------------------------------------------------------------------------------------------------
# HW_CONSTRAINTS (seed template behaviour)
# -------------------------------------------------------------------------------------------------


def test_hw_constraints_defaults_without_extra_data() -> None:
    out = run_constraints(user_input("anything"))
    assert out.max_memory_footprint == 100
    assert out.hardware_required == ["PIM_AI_1chip"]
    assert out.get_extra() == {}


def test_hw_constraints_reads_values_and_forwards_the_whole_extra_data() -> None:
    extra = {
        "max_memory_footprint": 512,
        "hardware_required": "Jetson-Orin-Nano",
        "hf_token": "hf_abc",
        "model_family": "CNNs",
        "goal": "object-detection",
        "nested": {"a": [1, 2]},
    }
    out = run_constraints(user_input(extra=extra))
    assert out.max_memory_footprint == 512
    assert out.hardware_required == ["Jetson-Orin-Nano"]
    assert out.get_extra() == extra


def test_hw_constraints_accepts_a_list_and_numeric_strings() -> None:
    out = run_constraints(
        user_input(extra={"hardware_required": ["T4", "A100"], "max_memory_footprint": "2048"})
    )
    assert out.hardware_required == ["T4", "A100"]
    assert out.max_memory_footprint == 2048
    # The GUI sends 0 when the field is disabled: 0 means "no limit" downstream, not the default.
    assert run_constraints(user_input(extra={"max_memory_footprint": 0})).max_memory_footprint == 0


def test_hw_constraints_rejects_a_memory_that_is_not_a_number() -> None:
    with pytest.raises(ValueError, match="max_memory_footprint"):
        run_constraints(user_input(extra={"max_memory_footprint": "lots"}))
    with pytest.raises(ValueError, match="max_memory_footprint"):
        run_constraints(user_input(extra={"max_memory_footprint": -5}))


def test_hw_constraints_configuration_is_unsupported() -> None:
    res, body = configure(hw_constraints, "hardwares", node_id=2, transaction_id=9)
    assert res.success is False
    assert res.err_code == ErrorCode.INTERNAL_ERROR
    assert body == {"error": "Unsupported configuration request: hardwares"}


# -------------------------------------------------------------------------------------------------
# ML_MODEL_METADATA
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "modality", "goal"),
    [
        ("Classify photos of plant leaves into disease categories", "Image", "image-classification"),
        ("Detect and count cars in parking-lot camera footage", "video", "object-detection"),
        ("Segment tumours in MRI scans pixel by pixel", "image", "image-segmentation"),
        ("Sentiment analysis of product reviews", "text", "text-classification"),
        ("Summarize long legal documents into a few key points", "text", "summarization"),
        ("Translate customer emails from Spanish to English", "text", "translation"),
        ("A chatbot that writes short stories for children", "text", "text-generation"),
        ("Transcribe spoken meeting recordings", "audio", "automatic-speech-recognition"),
        (
            "Forecast hourly electricity demand for the next 24 hours",
            "time series",
            "time-series-forecasting",
        ),
        ("Predict customer churn from a CSV of account records", "tabular", "tabular-classification"),
    ],
)
def test_metadata_infers_the_goal_from_the_description(description: str, modality: str, goal: str) -> None:
    out = run_metadata(user_input(description, modality=modality))
    assert out.ml_model_metadata == [goal]
    extra = out.get_extra()
    assert extra["goal"] == goal
    assert extra["goal_source"] == "keywords"
    assert extra["reason"].startswith("keywords '")
    assert max(extra["goal_scores"], key=extra["goal_scores"].get) == goal


def test_metadata_modality_breaks_a_shared_keyword() -> None:
    # "classify" is a weak cue of three goals; the modality decides between them.
    assert run_metadata(user_input("Classify the items", modality="image")).ml_model_metadata == [
        "image-classification"
    ]
    assert run_metadata(user_input("Classify the items", modality="text")).ml_model_metadata == [
        "text-classification"
    ]
    assert run_metadata(user_input("Classify the items", modality="tabular")).ml_model_metadata == [
        "tabular-classification"
    ]


def test_metadata_without_any_keyword_guesses_from_the_modality_and_says_so() -> None:
    out = run_metadata(user_input("Help with our meeting project", modality="audio"))
    assert out.ml_model_metadata == ["automatic-speech-recognition"]
    assert out.get_extra()["goal_source"] == "modality_default"
    assert "best guess for modality audio" in out.get_extra()["reason"]

    out = run_metadata(user_input("Help with our project", modality="holograms"))
    assert out.ml_model_metadata == [tables.FALLBACK_GOAL]
    assert out.get_extra()["goal_source"] == "fallback"
    assert out.get_extra()["modality"] == ""


def test_metadata_user_goal_overrides_inference() -> None:
    out = run_metadata(
        user_input("Summarize news articles", modality="text", extra={"goal": " Translation "})
    )
    assert out.ml_model_metadata == ["translation"]
    assert out.get_extra()["goal_source"] == "user"


def test_metadata_passes_upstream_keys_through() -> None:
    out = run_metadata(
        user_input(
            "Summarize reports",
            extra={"model_selected": "t5-small", "type": "Transformers", "model_restrains": ["gpt2"], "x": 1},
        )
    )
    extra = out.get_extra()
    assert extra["model_selected"] == "t5-small"
    assert extra["type"] == "Transformers"
    assert extra["model_restrains"] == ["gpt2"]
    assert extra["problem_short_description"] == "Summarize reports"
    # Without them: model_restrains defaults to [], empty model_selected/type are not forwarded.
    extra = run_metadata(
        user_input("Summarize reports", extra={"model_selected": "", "type": ""})
    ).get_extra()
    assert extra["model_restrains"] == []
    assert "model_selected" not in extra and "type" not in extra


def test_metadata_keywords_drop_stopwords_and_rank_by_frequency_then_first_appearance() -> None:
    text = "We want to detect cracks. Cracks appear on bridges; bridges and cracks need a model for drones."
    out = run_metadata(user_input(text))
    # cracks x3, bridges x2, then detect, appear, drones once each in order of appearance.
    assert out.keywords == ["cracks", "bridges", "detect", "appear", "drones"]
    many = " ".join(f"word{chr(97 + i)}alpha" for i in range(15))
    assert len(run_metadata(user_input(many)).keywords) == tables.MAX_KEYWORDS


def test_metadata_configuration_modality_and_unsupported() -> None:
    res, body = configure(ml_model_metadata, "modality", node_id=4)
    assert res.success is True and res.err_code == ErrorCode.NO_ERROR
    assert body["modalities"] == "audio, cv, nlp, tabular"
    assert body["goals"] == ", ".join(sorted(tables.GOALS))

    res, body = configure(ml_model_metadata, "metrics, all: x", node_id=4)
    assert res.success is False and res.err_code == ErrorCode.INTERNAL_ERROR
    assert body == {"error": "Unsupported configuration request: metrics, all: x"}


# -------------------------------------------------------------------------------------------------
# APP_REQUIREMENTS
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answers must arrive under 50 ms", ["max_latency_ms=50"]),
        ("The inference latency should be 0.5 s at most", ["max_latency_ms=500"]),
        ("Process video at 20 fps", ["max_latency_ms=50", "min_fps=20"]),
        ("Process video at 30 frames per second", ["max_latency_ms=33.333", "min_fps=30"]),
        ("A real-time assistant", ["max_latency_ms=100"]),
        ("Respond within 2 seconds, ideally under 800 ms", ["max_latency_ms=800"]),
        ("The model must fit in 2 GB", ["max_model_size_mb=2048"]),
        ("Keep the model under 500 MB", ["max_model_size_mb=500"]),
        ("Runs on the edge", ["deployment=edge"]),
        ("Served from the cloud", ["deployment=cloud"]),
        ("An app for mobile phones", ["deployment=mobile"]),
        ("Firmware for an embedded microcontroller", ["deployment=embedded"]),
        ("Hosted on-premise", ["deployment=on-premise"]),
        ("Runs in the browser", ["deployment=browser"]),
    ],
)
def test_requirements_extraction(text: str, expected: list[str]) -> None:
    assert run_requirements(text).app_requirements == expected


def test_requirements_combined_sorted_and_typed_in_extra_data() -> None:
    out = run_requirements(
        "Detect defects on a factory line in real-time on a Jetson at the edge, "
        "latency under 40 ms, the model has to fit within 1.5 GB of memory; training happens in the cloud."
    )
    assert out.app_requirements == ["deployment=edge", "max_latency_ms=40", "max_model_size_mb=1536"]
    extra = out.get_extra()
    assert extra["requirements"] == {
        "max_latency_ms": 40.0,
        "deployment": "edge",
        "max_model_size_mb": 1536.0,
    }
    assert extra["evidence"]["max_latency_ms"] == "under 40 ms"


def test_requirements_finds_nothing_in_plain_text_and_invents_nothing() -> None:
    out = run_requirements("Summarize 30 seconds audio clips from a 10 GB dataset of podcasts")
    assert out.app_requirements == []
    assert out.get_extra() == {"requirements": {}, "evidence": {}}


def test_requirements_configuration_is_unsupported() -> None:
    res, body = configure(app_requirements, "param1", node_id=0)
    assert res.success is False
    assert body == {"error": "Unsupported configuration request: param1"}


# -------------------------------------------------------------------------------------------------
# ML_MODEL
# -------------------------------------------------------------------------------------------------


def test_model_picks_the_smallest_macs_model_for_the_goal() -> None:
    out = run_model(metadata("image-classification"))
    assert out.model == "mobilenet-v2"  # 0.30 GMAC < efficientnet-b0 0.39 < resnet-18 1.81 < resnet-50 4.09
    assert out.model_path == "catalogue://mobilenet-v2"
    props = json.loads(out.model_properties)
    assert props["parameters"] == 3_504_872 and props["macs"] == 0.30e9
    assert props["family"] == "CNN (MobileNet)" and props["source"]
    extra = out.get_extra()
    assert [c["name"] for c in extra["candidates"]] == [
        "mobilenet-v2",
        "efficientnet-b0",
        "resnet-18",
        "resnet-50",
    ]
    assert out.target_latency == 0.0


def test_model_memory_limit_and_restrains_exclude_with_reasons() -> None:
    # 100 MB: resnet-50 (25.56 M params x 4 B = 102.2 MB) no longer fits.
    out = run_model(metadata("image-classification", model_restrains=["mobilenet-v2"]), cons=constraints(100))
    assert out.model == "efficientnet-b0"
    excluded = out.get_extra()["excluded"]
    assert excluded["mobilenet-v2"] == "in model_restrains"
    assert excluded["resnet-50"] == "fp32 weights 102.228 MB > limit 100 MB"


def test_model_requirement_size_limit_and_target_latency() -> None:
    reqs = AppRequirements(app_requirements=["max_latency_ms=50", "max_model_size_mb=30"])
    out = run_model(
        metadata("image-classification", model_restrains=["mobilenet-v2", "efficientnet-b0"]), reqs
    )
    # resnet-18 needs 46.8 MB of fp32 weights > 30 MB, resnet-50 too: nothing fits.
    assert out.model == tables.NO_MODEL
    out = run_model(metadata("image-classification"), reqs)
    assert out.model == "mobilenet-v2"
    assert out.target_latency == pytest.approx(0.05)
    assert out.get_extra()["memory_limit_mb"] == 30.0
    assert out.get_extra()["memory_limit_source"] == "app_requirements.max_model_size_mb"


def test_model_honours_model_selected_unless_restrained() -> None:
    out = run_model(metadata("image-classification", model_selected="ResNet 50"))
    assert out.model == "resnet-50"
    assert out.get_extra()["selected_by"] == "model_selected"
    out = run_model(
        metadata("image-classification", model_selected="resnet-50", model_restrains=["resnet-50"])
    )
    assert out.model == "mobilenet-v2"
    assert "model_restrains" in out.get_extra()["excluded"]["resnet-50"]
    out = run_model(metadata("image-classification", model_selected="my-private-net"))
    assert out.model == "mobilenet-v2"
    assert "not a catalogue model" in out.get_extra()["excluded"]["my-private-net"]


@pytest.mark.parametrize(
    ("meta", "cons"),
    [
        (metadata("summarization"), constraints(100)),  # t5-small is 242 MB of fp32 weights
        (metadata("protein-folding"), constraints(0)),  # no catalogue model for that goal
        (metadata("text-generation", model_restrains=["gpt2"]), constraints(0)),
    ],
)
def test_model_no_candidate_gives_the_upstream_sentinel(meta: MLModelMetadata, cons: HWConstraints) -> None:
    out = run_model(meta, cons=cons)
    assert out.model == "NO_MODEL"
    assert out.model_path == "N/A"
    extra = out.get_extra()
    assert extra["error_code"] == "NO_MODEL"
    assert extra["error"] == "No suitable model found for the given problem."


def test_model_configuration() -> None:
    res, body = configure(ml_model, "model_from_goal, image-classification", node_id=5)
    assert res.success is True
    assert body == {"models": "efficientnet-b0, mobilenet-v2, resnet-18, resnet-50"}
    res, body = configure(ml_model, "model_from_goal, summarization, PIM_AI_1chip, Transformers", node_id=5)
    assert body == {"models": "t5-small"}
    res, body = configure(ml_model, "model_from_goal, holography", node_id=5)
    assert res.success is False and "holography" in body["error"]
    res, body = configure(ml_model, "goal", node_id=5)
    assert res.success is False and res.err_code == ErrorCode.INTERNAL_ERROR
    assert body == {"error": "Unsupported configuration request: goal"}


# -------------------------------------------------------------------------------------------------
# HW_RESOURCES
# -------------------------------------------------------------------------------------------------


def test_hw_estimates_by_hand_resnet18_on_t4() -> None:
    out = run_hw(catalogue_model("resnet-18"), "T4")
    # latency = 2 x 1.81e9 MAC / (8.1e12 FLOP/s x 0.5) = 3.62e9 / 4.05e12 s
    assert out.latency == pytest.approx(3.62e9 / 4.05e12)
    # power = 10 W idle + 0.5 x (70 - 10) W = 40 W
    assert out.power_consumption == pytest.approx(40.0)
    # memory = 11,689,512 x 4 B = 46.758048 MB + 20 % activation allowance (9.3516096 MB)
    assert out.memory_footprint_of_ml_model == pytest.approx(46.758048 * 1.2)
    assert out.max_hw_memory_footprint == pytest.approx(16_000.0)
    assert out.hw_description == "T4"
    extra = out.get_extra()
    assert extra["units"]["latency"] == "s"
    assert extra["energy_per_inference_j"] == pytest.approx(40.0 * 3.62e9 / 4.05e12)
    assert extra["fits_in_device_memory"] is True


def test_hw_small_model_gets_the_activation_floor_and_latency_check() -> None:
    reqs = AppRequirements(app_requirements=["max_latency_ms=1"])
    out = run_hw(catalogue_model("tabular-mlp"), "Raspberry Pi 5", reqs, max_mb=100)
    # 82,946 x 4 B = 0.331784 MB of weights; 20 % of that is below the 4 MB floor.
    assert out.memory_footprint_of_ml_model == pytest.approx(0.331784 + 4.0)
    # 2 x 82,432 / (153.6e9 x 0.5) s = 2.147 us, far under 1 ms
    assert out.latency == pytest.approx(2 * 82_432 / 76.8e9)
    assert out.get_extra()["meets_latency_requirement"] is True
    assert out.get_extra()["within_max_memory_footprint"] is True
    assert out.hw_description == "Raspberry-Pi-5"


@pytest.mark.parametrize("spelling", ["PIM_AI_1chip", "PIM-AI-1chip", "pim ai 1CHIP", " pim_ai_1chip "])
def test_hw_resolves_hardware_names_case_and_punctuation_insensitively(spelling: str) -> None:
    out = run_hw(catalogue_model("unet"), spelling)
    assert out.hw_description == "PIM_AI_1chip"
    # 2 x 6.84e9 / (5e12 x 0.5) s
    assert out.latency == pytest.approx(13.68e9 / 2.5e12)
    # 0.28 + 0.5 x (2.78 - 0.28) W
    assert out.power_consumption == pytest.approx(1.53)


def test_hw_unknown_hardware_raises_listing_the_known_names() -> None:
    with pytest.raises(ValueError) as info:
        run_hw(catalogue_model("resnet-18"), "Quantum Toaster 9000")
    message = str(info.value)
    assert "Quantum Toaster 9000" in message
    for hw in tables.HARDWARE:
        assert hw.name in message


def test_hw_no_model_sentinel() -> None:
    out = run_hw(MLModel(model="NO_MODEL", model_path="N/A"), "Some-Unlisted-Board")
    assert out.hw_description == "Some-Unlisted-Board"
    assert (
        out.latency,
        out.power_consumption,
        out.memory_footprint_of_ml_model,
        out.max_hw_memory_footprint,
    ) == (
        0.0,
        0.0,
        0.0,
        0.0,
    )
    assert out.get_extra()["error_code"] == "NO_MODEL"


def test_hw_model_size_falls_back_to_the_catalogue_and_refuses_unknown_models() -> None:
    out = run_hw(MLModel(model="gpt2"), "A100")
    assert out.get_extra()["model_size_source"] == "catalogue"
    assert out.latency == pytest.approx(2 * 16.1e9 / (19.5e12 * 0.5))
    with pytest.raises(ValueError, match="cannot estimate"):
        run_hw(MLModel(model="someone/unknown-model"), "A100")
    with pytest.raises(ValueError, match="not JSON"):
        run_hw(MLModel(model="gpt2", model_properties="{broken"), "A100")


def test_hw_configuration_lists_hardware() -> None:
    res, body = configure(hw_resources, "hardwares")
    assert res.success is True and res.err_code == ErrorCode.NO_ERROR
    assert body == {"hardwares": "A100, Jetson-Orin-Nano, local-cpu, PIM_AI_1chip, Raspberry-Pi-5, T4"}
    res, body = configure(hw_resources, "hardware_info, T4")
    assert res.success is False
    assert body == {"error": "Unsupported configuration request: hardware_info, T4"}


# -------------------------------------------------------------------------------------------------
# CARBON_FOOTPRINT
# -------------------------------------------------------------------------------------------------


def hw_record(power_w: float, latency_s: float) -> HWResource:
    return HWResource(hw_description="T4", power_consumption=power_w, latency=latency_s)


def test_carbon_unit_arithmetic_by_hand() -> None:
    ui = user_input(region="France", extra={"inferences": 3600})
    out = run_co2(MLModel(model="resnet-18"), ui, hw_record(10.0, 0.1))
    # 10 W x 0.1 s = 1 J = 1/3600 Wh per inference; x 3600 inferences = 1 Wh.
    assert out.energy_consumption == pytest.approx(1.0)
    assert out.carbon_intensity == pytest.approx(41.4)  # France, Ember via OWID
    # 1 Wh = 0.001 kWh x 41.4 g/kWh = 0.0414 g = 4.14e-5 kg.
    assert out.carbon_footprint == pytest.approx(4.14e-5)
    extra = out.get_extra()
    assert extra["mode"] == "estimate"
    assert extra["units"] == {
        "carbon_footprint": "kgCO2e",
        "energy_consumption": "Wh",
        "carbon_intensity": "gCO2e/kWh",
    }
    assumptions = extra["assumptions"]
    assert assumptions["energy_per_inference_wh"] == pytest.approx(1 / 3600)
    assert assumptions["inferences"] == 3600 and assumptions["inferences_source"] == "user"
    assert (assumptions["ci_source"], assumptions["ci_key"]) == ("region", "FR")


def test_carbon_default_inferences_and_world_default() -> None:
    out = run_co2(MLModel(model="resnet-18"), user_input(), hw_record(10.0, 0.1))
    # 1000 x 1/3600 Wh
    assert out.energy_consumption == pytest.approx(1000 / 3600)
    assert out.carbon_intensity == pytest.approx(458.29)
    assert out.carbon_footprint == pytest.approx(1000 / 3600 / 1000 * 458.29 / 1000)
    assumptions = out.get_extra()["assumptions"]
    assert assumptions["inferences"] == 1000 and assumptions["inferences_source"] == "default"
    assert assumptions["ci_source"] == "world_default"


@pytest.mark.parametrize(
    ("region", "continent", "intensity", "source"),
    [
        ("ES", "Europe", 153.6, "region"),
        ("esp", "", 153.6, "region"),
        ("Madrid, Spain", "", 153.6, "region"),
        ("ES-MD", "", 153.6, "region"),
        ("united kingdom", "", 217.4, "region"),
        ("Atlantis", "Europe", 238.0, "continent"),
        ("", "south america", 260.0, "continent"),
        ("Atlantis", "Mu", 458.29, "world_default"),
    ],
)
def test_carbon_intensity_lookup_order(region: str, continent: str, intensity: float, source: str) -> None:
    out = run_co2(MLModel(model="gpt2"), user_input(region=region, continent=continent), hw_record(5.0, 1.0))
    assert out.carbon_intensity == pytest.approx(intensity)
    assert out.get_extra()["assumptions"]["ci_source"] == source


def test_carbon_env_override_and_invalid_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tables.GRID_CI_ENV, "100")
    out = run_co2(MLModel(model="gpt2"), user_input(region="France"), hw_record(36.0, 100.0))
    assert out.carbon_intensity == 100.0
    # 36 W x 100 s / 3600 = 1 Wh per inference, x 1000 = 1000 Wh = 1 kWh x 100 g/kWh = 0.1 kg
    assert out.energy_consumption == pytest.approx(1000.0)
    assert out.carbon_footprint == pytest.approx(0.1)
    assert out.get_extra()["assumptions"]["ci_source"] == "env"
    monkeypatch.setenv(tables.GRID_CI_ENV, "dirty")
    with pytest.raises(ValueError, match=tables.GRID_CI_ENV):
        run_co2(MLModel(model="gpt2"), user_input(), hw_record(1.0, 1.0))


def test_carbon_restrains_and_num_outputs() -> None:
    ui = user_input(extra={"model_restrains": ["resnet-50", "resnet-18", "resnet-50"], "num_outputs": 3})
    extra = run_co2(MLModel(model="resnet-18"), ui, hw_record(1.0, 1.0)).get_extra()
    assert extra["model_restrains"] == ["resnet-18", "resnet-50"]  # current first, de-duplicated
    assert extra["num_outputs"] == 3
    extra = run_co2(MLModel(model="resnet-18"), user_input(), hw_record(1.0, 1.0)).get_extra()
    assert extra["model_restrains"] == ["resnet-18"]
    assert extra["num_outputs"] == 1


def test_carbon_no_model_gives_zeros() -> None:
    ui = user_input(region="France", extra={"model_restrains": ["gpt2"], "num_outputs": 2})
    hw = HWResource(hw_description="PIM_AI_1chip", extra_data=pack_extra({"error_code": "NO_MODEL"}))
    out = run_co2(MLModel(model="NO_MODEL", model_path="N/A"), ui, hw)
    assert (out.carbon_footprint, out.energy_consumption, out.carbon_intensity) == (0.0, 0.0, 0.0)
    extra = out.get_extra()
    assert extra["mode"] == "no_model"
    assert extra["model_restrains"] == ["gpt2"]
    assert extra["num_outputs"] == 2


def test_carbon_hw_error_gives_zeros_with_the_reason() -> None:
    hw = HWResource(hw_description="Error", extra_data=pack_extra({"error": "Unknown hardware 'x'"}))
    out = run_co2(MLModel(model="gpt2"), user_input(), hw)
    assert out.carbon_footprint == 0.0
    assert out.get_extra()["mode"] == "error"
    assert "Unknown hardware" in out.get_extra()["error"]


def test_carbon_configuration_is_unsupported() -> None:
    res, body = configure(carbon_footprint, "anything", node_id=1)
    assert res.success is False
    assert body == {"error": "Unsupported configuration request: anything"}


# -------------------------------------------------------------------------------------------------
# the six stages chained
# -------------------------------------------------------------------------------------------------


def run_chain(
    ui: UserInput,
) -> tuple[MLModelMetadata, AppRequirements, HWConstraints, MLModel, HWResource, CO2Footprint]:
    meta = run_metadata(ui)
    reqs = AppRequirements()
    app_requirements.task_callback(ui, NodeStatus(), reqs)
    cons = run_constraints(ui)
    model = run_model(meta, reqs, cons)
    hw = HWResource()
    hw_resources.task_callback(model, reqs, cons, NodeStatus(), hw)
    co2 = run_co2(model, ui, hw)
    return meta, reqs, cons, model, hw, co2


def test_chain_edge_detection_problem_end_to_end() -> None:
    ui = user_input(
        "Detect pedestrians in dashcam video at 30 fps on a Jetson; the model must fit in 2 GB",
        modality="video",
        extra={"hardware_required": "jetson orin nano", "max_memory_footprint": 0, "num_outputs": 2},
        region="DE",
    )
    meta, reqs, cons, model, hw, co2 = run_chain(ui)
    assert meta.ml_model_metadata == ["object-detection"]
    assert reqs.app_requirements == [
        "deployment=edge",
        "max_latency_ms=33.333",
        "max_model_size_mb=2048",
        "min_fps=30",
    ]
    assert cons.hardware_required == ["jetson orin nano"]
    assert model.model == "yolov5s"
    assert model.target_latency == pytest.approx(1 / 30, rel=1e-4)
    # 2 x 8.25e9 / (1.28e12 x 0.5) = 25.78 ms at 3 + 0.5 x 12 = 9 W
    assert hw.hw_description == "Jetson-Orin-Nano"
    assert hw.latency == pytest.approx(16.5e9 / 0.64e12)
    assert hw.power_consumption == pytest.approx(9.0)
    assert hw.get_extra()["meets_latency_requirement"] is True
    energy_wh = 9.0 * (16.5e9 / 0.64e12) / 3600 * 1000
    assert co2.energy_consumption == pytest.approx(energy_wh)
    assert co2.carbon_footprint == pytest.approx(energy_wh / 1000 * 329.7 / 1000)
    assert co2.get_extra()["model_restrains"] == ["yolov5s"]
    assert co2.get_extra()["num_outputs"] == 2


def test_chain_with_upstream_defaults_propagates_no_model() -> None:
    # No extra_data: 100 MB and PIM_AI_1chip (upstream defaults); t5-small's 242 MB does not fit.
    _, _, cons, model, hw, co2 = run_chain(user_input("Summarize long reports", modality="text"))
    assert (cons.max_memory_footprint, cons.hardware_required) == (100, ["PIM_AI_1chip"])
    assert model.model == "NO_MODEL"
    assert hw.hw_description == "PIM_AI_1chip" and hw.latency == 0.0
    assert co2.get_extra()["mode"] == "no_model" and co2.carbon_footprint == 0.0


def test_chain_is_deterministic() -> None:
    ui = user_input(
        "Translate support tickets from French to English in real-time in the cloud",
        modality="text",
        extra={"hardware_required": "A100", "max_memory_footprint": 0, "inferences": 250},
        continent="Europe",
    )
    first = [r.model_dump() for r in run_chain(ui)]
    second = [r.model_dump() for r in run_chain(ui)]
    assert first == second
