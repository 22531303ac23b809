"""The shipped per-stage logic (``sustainml.workers.logic``), called directly with constructed
records: no broker, no runtime. Arithmetic is checked against values worked out by hand here."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sustainml.config import Settings
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
)

# -------------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------------


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


def run_co2(model: MLModel, ui: UserInput, hw: HWResource) -> CO2Footprint:
    out = CO2Footprint()
    # the stage as a deployment without a grid override runs it (a developer's environment plays no part)
    carbon_footprint.for_settings(Settings()).task_callback(model, ui, hw, NodeStatus(), out)
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


# -------------------------------------------------------------------------------------------------
# HW_CONSTRAINTS (seed template behaviour)
# -------------------------------------------------------------------------------------------------


def test_hw_constraints_defaults_without_extra_data() -> None:
    # No longer the template's PIM_AI_1chip / 100 MB (a research part and a limit that left most
    # problems with no model): "auto" among rentable server devices, their largest memory.
    out = run_constraints(user_input("anything"))
    assert out.hardware_required == ["auto"]
    assert out.max_memory_footprint == 768_000  # EPYC-9654's 768 GB, the largest allowed device
    # Nothing came in; only the explanation of the defaults goes out (tests/unit/test_hw_constraints.py).
    assert set(out.get_extra()) == {"constraint_sources", "allowed_hardware"}


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
    forwarded = out.get_extra()
    assert {k: forwarded[k] for k in extra} == extra  # everything received, plus constraint_sources


def test_hw_constraints_accepts_a_list_and_numeric_strings() -> None:
    out = run_constraints(
        user_input(extra={"hardware_required": ["T4", "A100"], "max_memory_footprint": "2048"})
    )
    assert out.hardware_required == ["T4", "A100-SXM4-40GB"]  # a bare "A100" is the SXM4 40 GB part
    assert out.max_memory_footprint == 2048
    # The GUI sends 0 when the field is disabled: 0 means "no limit" downstream, not the default.
    assert run_constraints(user_input(extra={"max_memory_footprint": 0})).max_memory_footprint == 0


def test_hw_constraints_rejects_a_memory_that_is_not_a_number() -> None:
    with pytest.raises(ValueError, match="max_memory_footprint"):
        run_constraints(user_input(extra={"max_memory_footprint": "lots"}))
    with pytest.raises(ValueError, match="max_memory_footprint"):
        run_constraints(user_input(extra={"max_memory_footprint": -5}))


def test_hw_constraints_unknown_configuration_is_unsupported() -> None:
    res, body = configure(hw_constraints, "modality", node_id=2, transaction_id=9)
    assert res.success is False
    assert res.err_code == ErrorCode.INTERNAL_ERROR
    assert body == {"error": "Unsupported configuration request: modality"}


# -------------------------------------------------------------------------------------------------
# ML_MODEL_METADATA
# -------------------------------------------------------------------------------------------------
# The shipped encoder in depth: tests/unit/test_encoder.py, test_encoder_backends.py and
# test_dataset_profile.py. Here: the node-level contract the other stages rely on.


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
    assert extra["goal_source"] == "builtin"
    assert extra["top_goals"][0]["goal"] == goal
    assert goal in extra["reason"]


def test_metadata_modality_breaks_a_shared_keyword() -> None:
    # "classify" fits several goals; the modality decides between them.
    assert run_metadata(user_input("Classify the items", modality="image")).ml_model_metadata == [
        "image-classification"
    ]
    assert run_metadata(user_input("Classify the items", modality="text")).ml_model_metadata == [
        "text-classification"
    ]
    assert run_metadata(user_input("Classify the items", modality="tabular")).ml_model_metadata == [
        "tabular-classification"
    ]


def test_metadata_vague_description_answers_and_asks_for_clarification() -> None:
    out = run_metadata(user_input("Help with our meeting project", modality="audio"))
    extra = out.get_extra()
    assert out.ml_model_metadata == [extra["goal"]] and extra["modality"] == "audio"
    assert extra["needs_clarification"]["alternatives"][0] == extra["goal"]

    out = run_metadata(user_input("Help with our project", modality="holograms"))
    extra = out.get_extra()
    assert "needs_clarification" in extra
    assert extra["warnings"] == ["modality 'holograms' is not a known modality or alias; ignored"]


def test_metadata_unclear_text_naming_a_model_takes_the_models_task() -> None:
    out = run_metadata(user_input("SDXL at 1024x1024, 30 steps on an L4"))
    extra = out.get_extra()
    assert out.ml_model_metadata == ["text-to-image"] and extra["goal_source"] == "named model"
    assert "stable-diffusion-xl-base-1.0 is named in the description" in extra["reason"]
    assert "needs_clarification" not in extra
    # a named model with no clear text, through model_selected
    out = run_metadata(user_input("Try it on 4 H100s", extra={"model_selected": "Mixtral-8x7B"}))
    assert out.ml_model_metadata == ["text-generation"]
    # a confident goal is kept even when a model of another task is named
    out = run_metadata(user_input("Summarise long news articles with Llama-3.1-8B-Instruct", modality="text"))
    assert out.ml_model_metadata == ["summarization"] and out.get_extra()["goal_source"] != "named model"
    # ... but not a confident goal on another modality than the named model's ("12 hours" read as
    # a time series)
    out = run_metadata(user_input("fine-tune Mistral 7B on 8 H100s for 12 hours in us-east-1"))
    extra = out.get_extra()
    assert out.ml_model_metadata == ["text-generation"] and extra["goal_source"] == "named model"
    assert "mistral-7b takes text" in extra["reason"]


def test_metadata_user_goal_overrides_inference() -> None:
    out = run_metadata(
        user_input("Summarize news articles", modality="text", extra={"goal": " Translation "})
    )
    assert out.ml_model_metadata == ["translation"]
    assert out.get_extra()["goal_source"] == "user"
    with pytest.raises(ValueError, match="not a known goal"):
        run_metadata(user_input("Summarize news articles", extra={"goal": "sumarisation-x"}))


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


def test_metadata_keywords_are_key_phrases_without_stopwords() -> None:
    text = "We want to detect cracks. Cracks appear on bridges; bridges and cracks need a model for drones."
    out = run_metadata(user_input(text))
    # Runs of content words between stopwords and punctuation, rarest (against the corpus) first;
    # "cracks" alone is left out because better phrases already contain it.
    assert out.keywords == ["cracks appear", "bridges", "detect cracks", "drones"]  # rarity from the corpus
    assert out.keywords == run_metadata(user_input(text)).keywords  # deterministic
    many = " ".join(f"word{chr(97 + i)}alpha," for i in range(15))
    assert len(run_metadata(user_input(many)).keywords) == 10


def test_metadata_configuration_modality_and_unsupported() -> None:
    res, body = configure(ml_model_metadata, "modality", node_id=4)
    assert res.success is True and res.err_code == ErrorCode.NO_ERROR
    assert body["modalities"] == "audio, image, tabular, text, time-series, video"
    assert "image-classification" in body["goals"].split(", ")

    res, body = configure(ml_model_metadata, "metrics, problem: translation", node_id=4)
    assert res.success is True and "bleu" in body["metrics"]

    res, body = configure(ml_model_metadata, "hardwares", node_id=4)
    assert res.success is False and res.err_code == ErrorCode.INTERNAL_ERROR
    assert body == {"error": "Unsupported configuration request: hardwares"}


# -------------------------------------------------------------------------------------------------
# APP_REQUIREMENTS
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answers must arrive under 50 ms", ["max_latency_ms=50"]),
        ("The inference latency should be 0.5 s at most", ["max_latency_ms=500"]),
        ("Process video at 20 fps", ["max_latency_ms=50", "min_throughput_per_s=20"]),
        ("Process video at 30 frames per second", ["max_latency_ms=33.333", "min_throughput_per_s=30"]),
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
    assert out.app_requirements == [
        "deployment=edge",
        "hardware=Jetson",
        "max_latency_ms=40",
        "max_model_size_mb=1536",
        "num_devices=1",
    ]
    extra = out.get_extra()
    assert extra["requirements"] == {
        "max_latency_ms": 40.0,
        "deployment": "edge",
        "max_model_size_mb": 1536.0,
        "hardware": "Jetson",
        "num_devices": 1,
    }
    assert extra["evidence"]["max_latency_ms"]["text"] == "under 40 ms"


def test_requirements_finds_nothing_in_plain_text_and_invents_nothing() -> None:
    out = run_requirements("Summarize audio clips from a 10 GB dataset of podcasts")
    assert out.app_requirements == []
    assert out.get_extra() == {"requirements": {}, "evidence": {}, "contradictions": [], "overridden": {}}


def test_requirements_configuration_is_unsupported() -> None:
    res, body = configure(app_requirements, "param1", node_id=0)
    assert res.success is False
    assert body == {"error": "Unsupported configuration request: param1"}


# -------------------------------------------------------------------------------------------------
# ML_MODEL and HW_RESOURCES: tests/unit/test_ml_model.py, test_hw_resources.py and test_roofline.py
# -------------------------------------------------------------------------------------------------


# -------------------------------------------------------------------------------------------------
# CARBON_FOOTPRINT
# -------------------------------------------------------------------------------------------------


def hw_record(power_w: float, latency_s: float) -> HWResource:
    return HWResource(hw_description="T4", power_consumption=power_w, latency=latency_s)


# The training and inference footprint, the intensity chain and overrides, the greener
# alternatives and the configuration requests: tests/unit/test_carbon.py and test_training.py.


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
        "hardware=Jetson",
        "max_latency_ms=33.333",
        "max_model_size_mb=2048",
        "min_throughput_per_s=30",
        "num_devices=1",
        "region=DE",
    ]
    assert cons.hardware_required == ["Jetson-Orin-Nano"]  # resolved to the catalogue name
    # ML_MODEL: the object-detection models meeting 33.3 ms on the Jetson (quick roofline), ranked by
    # quality against energy; ssd300-vgg16 (34.9 GMACs) is too slow there (tests/unit/test_ml_model.py)
    assert model.model == "yolov8n"
    assert {e["model"]: e["constraint"] for e in model.get_extra()["excluded"]} == {
        "ssd300-vgg16": "latency",
        "yolov8s": "latency",
        "detr-resnet-50": "latency",
        "detr-resnet-101": "latency",
        "retinanet-resnet50-fpn-v2": "latency",
    }
    assert model.target_latency == pytest.approx(1 / 30, rel=1e-4)
    # HW_RESOURCES: per-operator roofline of the graph (tests/unit/test_hw_resources.py);
    # power = 3.8 W idle + 0.5 x (15 - 3.8) W
    assert hw.hw_description == "Jetson-Orin-Nano"
    assert 0 < hw.latency <= 1 / 30
    assert hw.power_consumption == pytest.approx(9.4)
    assert hw.get_extra()["constraints_met"] is True
    # Training run (CARBON_FOOTPRINT's headline): 3 x 2 x MACs x 50,000 samples (default) x 1 epoch
    # at 10e12 fp16 (Jetson-Orin-Nano, no bf16) x 0.3 MFU, 15 W (TDP), PUE 1.0 (edge); Germany.
    macs = json.loads(model.model_properties)["macs"]
    energy_wh = 3 * 2 * macs * 50_000 / (10e12 * 0.3) * 15.0 / 3600
    assert co2.energy_consumption == pytest.approx(energy_wh)
    assert co2.carbon_intensity == pytest.approx(329.65)
    assert co2.carbon_footprint == pytest.approx(energy_wh / 1000 * 329.65 / 1000)
    assert co2.get_extra()["model_restrains"] == ["yolov8n"]
    assert co2.get_extra()["num_outputs"] == 2


def test_chain_with_the_templates_values_propagates_no_model() -> None:
    # The upstream template's values stated explicitly: 100 MB on PIM_AI_1chip; t5-small's 242 MB
    # does not fit.
    extra = {"hardware_required": "PIM_AI_1chip", "max_memory_footprint": 100}
    _, _, cons, model, hw, co2 = run_chain(user_input("Summarize long reports", modality="text", extra=extra))
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
