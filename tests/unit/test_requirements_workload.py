"""The workload facts of a description: hardware and counts, region, training scale, tokens, model
size, batch size, diffusion steps, image resolution, audio length; explicit values win."""

from __future__ import annotations

from typing import Any

import pytest

from sustainml.messages.types import AppRequirements, NodeStatus, UserInput
from sustainml.workers.logic import app_requirements
from sustainml.workers.logic.requirements import KEYS, extract, extract_text
from sustainml.workers.logic.requirements.evaluate import BLIND, DEVELOPMENT, evaluate, load_cases


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Fine-tune on 8 A100s for 3 days.", {"hardware": "A100", "num_devices": 8, "training_hours": 72.0}),
        ("It runs on a Jetson Orin.", {"hardware": "Jetson Orin", "num_devices": 1, "deployment": "edge"}),
        ("It has to run on our laptops' CPUs.", {"hardware": "laptop CPU", "gpu": "none"}),
        ("Classify photos on phones.", {"deployment": "mobile"}),
        ("Serve it on one H100.", {"hardware": "H100", "num_devices": 1}),
        ("Host it on an L4.", {"hardware": "L4", "num_devices": 1}),
        ("The servers are in Germany.", {"region": "Germany"}),
        ("It runs on a server in Spain.", {"region": "Spain"}),
        ("Our API is deployed in us-east-1.", {"region": "us-east-1", "deployment": "cloud"}),
        ("Pre-training takes two weeks.", {"training_hours": 336.0}),
        ("Pre-train on 2 trillion tokens.", {"training_tokens": 2_000_000_000_000}),
        ("Fine-tune a 7B model.", {"model_parameters": 7_000_000_000}),
        ("Fine-tune Llama-2-7b on our FAQ.", {}),
        ("Train on 50k images for 10 epochs.", {"training_samples": 50_000, "epochs": 10}),
        ("Prompts of 2,000 tokens, 500-token answers.", {"input_tokens": 2000, "output_tokens": 500}),
        ("Run with batch 32.", {"batch_size": 32}),
        ("Generate 1024x1024 images with 30 steps.", {"image_resolution": 1024, "diffusion_steps": 30}),
        ("Transcribe 30-second voice notes.", {"audio_seconds": 30.0}),
        ("We get one hour of audio a day.", {"audio_seconds_per_day": 3600.0}),
        ("Forecast the next 3 days of demand in Italy.", {}),
    ],
)
def test_workload_facts(text: str, expected: dict[str, Any]) -> None:
    assert extract_text(text).requirements == expected


def test_counts_are_ints_and_every_fact_has_its_span() -> None:
    text = "Pre-train a 1B model on 300B tokens using 64 H100s in us-east-1 for 10 days."
    found = extract_text(text)
    req = found.requirements
    assert req["num_devices"] == 64 and isinstance(req["num_devices"], int)
    assert req["model_parameters"] == 1_000_000_000 and isinstance(req["model_parameters"], int)
    assert req["training_tokens"] == 300_000_000_000
    assert req["training_hours"] == 240.0
    assert req["region"] == "us-east-1"
    for key in req:
        span = found.evidence[key]
        assert text[span.start : span.end] == span.text and span.source == "description"
    assert found.evidence["num_devices"].text == "64 H100s"


def test_explicit_values_win_and_the_text_is_kept_as_overridden() -> None:
    found = extract(
        "Fine-tune on 8 A100s in Spain.", extra={"hardware": "H100", "num_devices": "2", "region": "France"}
    )
    assert found.requirements["hardware"] == "H100"
    assert found.requirements["num_devices"] == 2
    assert found.requirements["region"] == "France"
    assert found.overridden["hardware"][0] == "A100"
    assert found.overridden["num_devices"][0] == 8


def test_geo_location_region_wins_over_extra_data_and_text() -> None:
    found = extract("The servers are in Spain.", extra={"region": "France"}, region="Portugal")
    assert found.requirements["region"] == "Portugal"
    assert found.evidence["region"].field == "geo_location_region"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"num_devices": 2.5}, "extra_data.num_devices must be a whole number"),
        ({"num_devices": "many"}, "extra_data.num_devices must be a number"),
        ({"hardware": ""}, "extra_data.hardware must be a non-empty string"),
        ({"region": 3}, "extra_data.region must be a non-empty string"),
        ({"training_hours": -1}, "extra_data.training_hours must be a finite number >= 0"),
    ],
)
def test_bad_explicit_values_name_the_field(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        extract("anything", extra=extra)


def test_edge_deployment_on_a_datacentre_gpu_is_a_contradiction() -> None:
    found = extract_text("An edge deployment on an A100.")
    (contradiction,) = found.contradictions
    assert contradiction.key == "deployment/hardware"
    assert contradiction.values == ["edge", "A100"]
    # the same GPU named for training, the device for inference: no contradiction
    assert extract_text("Train on 8 A100s, then deploy on phones.").contradictions == []
    # an explicit data-centre device with an edge deployment in the text
    assert [c.key for c in extract("Runs on a drone.", extra={"hardware": "H100"}).contradictions] == [
        "deployment/hardware"
    ]


def test_two_different_devices_are_reported_first_one_kept() -> None:
    found = extract_text("Train on V100s, then serve on a Raspberry Pi 5.")
    assert found.requirements["hardware"] == "V100"
    assert "num_devices" not in found.requirements  # the count belongs to the first device only
    assert [c.key for c in found.contradictions] == ["hardware"]


def test_app_requirements_publishes_the_facts_and_the_geo_region() -> None:
    ui = UserInput(problem_short_description="Fine-tune a 7B model on 4 H100s in Germany for 2 days")
    ui.geo_location_region = "Sweden"
    out = AppRequirements()
    app_requirements.task_callback(ui, NodeStatus(), out)
    extra = out.get_extra()
    assert extra["requirements"]["hardware"] == "H100"
    assert extra["requirements"]["num_devices"] == 4
    assert extra["requirements"]["training_hours"] == 48.0
    assert extra["requirements"]["model_parameters"] == 7_000_000_000
    assert extra["requirements"]["region"] == "Sweden"
    assert extra["overridden"]["region"]["value"] == "Germany"
    assert "hardware=H100" in out.app_requirements and "num_devices=4" in out.app_requirements


def test_schema_lists_every_workload_key_with_unit_and_description() -> None:
    for key in (
        "hardware", "num_devices", "region", "training_hours", "training_tokens", "model_parameters",
        "training_samples", "epochs", "input_tokens", "output_tokens", "batch_size", "diffusion_steps",
        "image_resolution", "audio_seconds", "audio_seconds_per_day",
    ):  # fmt: skip
        spec = KEYS[key]
        assert spec.kind in ("count", "quantity", "text") and spec.unit and spec.description


def test_blind_table_is_separate_large_and_covers_the_workload_keys() -> None:
    blind = load_cases(BLIND)
    development = load_cases(DEVELOPMENT)
    assert len(blind) >= 150
    texts = {c.description for c in development}
    assert not [c.id for c in blind if c.description in texts]  # no blind case was copied in
    covered = {k for c in blind for k in c.expected}
    assert covered >= {"hardware", "num_devices", "region", "training_hours", "training_tokens",
                       "model_parameters", "training_samples", "epochs", "input_tokens", "output_tokens",
                       "batch_size", "diffusion_steps", "image_resolution", "audio_seconds"}  # fmt: skip
    report = evaluate(BLIND)
    assert report.cases == len(blind) and report.title == BLIND
    assert report.micro.tp + report.micro.fn == sum(len(c.expected) for c in blind)
