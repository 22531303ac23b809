"""APP_REQUIREMENTS: extraction of every category, unit arithmetic, evidence spans, extra_data
precedence, contradictions, negations, the shipped table of phrasings and the configuration request."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sustainml.messages.types import (
    AppRequirements,
    ErrorCode,
    NodeStatus,
    RequestType,
    ResponseType,
    UserInput,
    pack_extra,
)
from sustainml.workers.logic import app_requirements, tables
from sustainml.workers.logic.common import parse_requirements
from sustainml.workers.logic.requirements import (
    KEYS,
    Extraction,
    describe,
    evaluate,
    extract,
    extract_text,
    load_cases,
    units,
)

# -------------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------------


def strings(text: str) -> list[str]:
    return extract_text(text).strings()


def run(description: str = "", definition: str = "", extra: dict[str, Any] | None = None) -> AppRequirements:
    out = AppRequirements()
    ui = UserInput(
        problem_short_description=description,
        problem_definition=definition,
        extra_data=pack_extra(extra or {}),
    )
    app_requirements.task_callback(ui, NodeStatus(), out)
    return out


def source_text(found: Extraction, key: str, sources: dict[str, str]) -> str:
    """The characters the evidence of ``key`` points at, taken from the original source text."""
    ev = found.evidence[key]
    name = ev.source if ev.field is None else f"{ev.source}.{ev.field}"
    return sources[name][ev.start : ev.end]


def configure(text: str, node_id: int = 5, transaction_id: int = 41) -> tuple[ResponseType, Any]:
    res = ResponseType()
    app_requirements.configuration_callback(
        RequestType(node_id=node_id, transaction_id=transaction_id, configuration=text), res
    )
    assert (res.node_id, res.transaction_id) == (node_id, transaction_id)
    return res, json.loads(res.configuration)


# -------------------------------------------------------------------------------------------------
# every category
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # latency
        ("Answers must arrive under 50 ms", ["max_latency_ms=50"]),
        ("The inference latency should be 0.5 s at most", ["max_latency_ms=500"]),
        ("must answer in 200 µs or less", ["max_latency_ms=0.2"]),
        ("within 800 microseconds", ["max_latency_ms=0.8"]),
        ("A real-time assistant", ["max_latency_ms=100"]),
        ("The dashboard must be interactive", ["max_latency_ms=1000"]),
        ("Results should come back within a second", ["max_latency_ms=1000"]),
        ("Sub-second search", ["max_latency_ms=1000"]),
        ("Reply in less than half a second", ["max_latency_ms=500"]),
        ("latency below 2,5 s", ["max_latency_ms=2500"]),
        # frame rate -> throughput and, with no latency, the frame period
        ("Process video at 20 frames per second", ["max_latency_ms=50", "min_throughput_per_s=20"]),
        ("Process video at 30 fps", ["max_latency_ms=33.333", "min_throughput_per_s=30"]),
        # throughput
        ("Serve 200 requests per second", ["min_throughput_per_s=200"]),
        ("Tag 7,200 images per hour", ["min_throughput_per_s=2"]),
        ("86.4k queries per day", ["min_throughput_per_s=1"]),
        ("at least 50 rps", ["min_throughput_per_s=50"]),
        # deployment
        ("Runs on the edge", ["deployment=edge"]),
        ("Served from the cloud", ["deployment=cloud"]),
        ("Hosted on-premise", ["deployment=on-premise"]),
        ("An app for mobile phones", ["deployment=mobile"]),
        ("A feature of our smartphone app", ["deployment=mobile"]),
        ("Firmware for an embedded microcontroller", ["deployment=embedded"]),
        ("Runs on an MCU", ["deployment=embedded"]),
        ("Runs in the browser", ["deployment=browser"]),
        ("A web app running client-side with WebAssembly", ["deployment=browser"]),
        # privacy
        ("For privacy everything runs on-device", ["deployment=edge", "privacy=on-device"]),
        ("We cannot use any cloud: no cloud at all", ["privacy=no-cloud"]),
        ("The service must be GDPR compliant", ["privacy=gdpr"]),
        ("Data must not leave the hospital", ["privacy=on-premise"]),
        ("Recordings never leave the device", ["privacy=on-device"]),
        ("Data must stay within the EU", ["privacy=data-residency"]),
        # accuracy targets
        ("at least 95% accuracy", ["min_accuracy=0.95"]),
        ("F1 above 0.9", ["min_f1=0.9"]),
        ("a mAP of 0.5", ["min_map=0.5"]),
        ("precision of at least 90 percent", ["min_precision=0.9"]),
        ("WER below 12%", ["max_wer=0.12"]),
        # model size
        ("The model must fit in 2 GB", ["max_model_size_mb=2048"]),
        ("Keep the model under 500 MB", ["max_model_size_mb=500"]),
        ("with less than 10M parameters", ["max_parameters=10000000"]),
        ("fits in 512 KB of flash", ["max_model_size_mb=0.5"]),
        # power, battery
        ("Power budget under 5 W", ["max_power_w=5"]),
        ("draws at most 250 mW", ["max_power_w=0.25"]),
        ("Battery powered", ["power_source=battery"]),
        ("It runs a day on battery", ["min_battery_life_h=24", "power_source=battery"]),
        ("Solar-powered station", ["power_source=solar"]),
        # energy, carbon
        ("use under 1 kWh per day", ["max_energy_wh_per_day=1000"]),
        ("below 10 kg CO2", ["max_carbon_kg=10"]),
        ("under 2 Wh per inference", ["max_energy_wh_per_inference=2"]),
        ("at most 1 g CO2e per request", ["max_carbon_kg_per_inference=0.001"]),
        # languages
        ("Classify German and French reviews", ["languages=de,fr"]),
        ("A multilingual chatbot", ["languages=multilingual"]),
        # batch vs streaming
        ("A real-time stream of sensor readings", ["max_latency_ms=100", "processing=streaming"]),
        ("Nightly batch scoring", ["processing=batch"]),
        # explainability
        ("Decisions must be explainable", ["explainability=required"]),
        ("An interpretable model", ["explainability=required"]),
        ("The model must justify every refusal", ["explainability=required"]),
        # GPU
        ("No GPU on the target", ["gpu=none"]),
        ("Inference on a GPU", ["gpu=available"]),
    ],
)
def test_each_category(text: str, expected: list[str]) -> None:
    assert strings(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Classify photos of birds",
        "Forecast sales for 300 stores for the next 12 weeks",
        "Edge detection on X-ray images",
        "A cutting-edge sentiment model",
        "Segment point clouds from a lidar",
        "Transcribe phone calls",
        "Breed classifier for German shepherds",
        "Precision agriculture from drone images",
        "Predict congestion in a 5G network",
        "",
    ],
)
def test_nothing_found_means_nothing_invented(text: str) -> None:
    found = extract_text(text)
    assert found.strings() == []
    assert found.extra() == {"requirements": {}, "evidence": {}, "contradictions": [], "overridden": {}}


# -------------------------------------------------------------------------------------------------
# numbers and units
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("50", 50.0),
        ("0.5", 0.5),
        ("0,5", 0.5),  # decimal comma
        ("1,5", 1.5),
        ("1,000", 1000.0),  # thousands separator: three digits after the comma
        ("10,000,000", 1e7),
        ("40 000", 40_000.0),
        ("10k", 10_000.0),
        ("1.2M", 1.2e6),
        ("1.5B", 1.5e9),
        ("3 million", 3e6),
        ("half a", 0.5),
        ("twenty", 20.0),
    ],
)
def test_parse_number(written: str, value: float) -> None:
    assert units.parse_number(written) == pytest.approx(value)


def test_parse_number_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a number"):
        units.parse_number("fast")


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("under 50 ms", "max_latency_ms", 50.0),
        ("within 0.5 s", "max_latency_ms", 500.0),
        ("within 2 minutes", "max_latency_ms", 120_000.0),
        ("under 250 µs", "max_latency_ms", 0.25),
        ("at 20 frames per second", "max_latency_ms", 1000.0 / 20),
        ("at 20 frames per second", "min_throughput_per_s", 20.0),
        ("at 24 fps", "max_latency_ms", 1000.0 / 24),
        ("90,000 requests per hour", "min_throughput_per_s", 90_000 / 3600),
        ("3M images per month", "min_throughput_per_s", 3e6 / (30 * 86_400)),
        ("fits in 2 GB", "max_model_size_mb", 2 * 1024.0),
        ("fits in 1.5 GB", "max_model_size_mb", 1.5 * 1024.0),
        ("under 64 KB of RAM", "max_model_size_mb", 64 / 1024),
        ("under 1 TB of memory", "max_model_size_mb", 1024.0 * 1024.0),
        ("less than 2.5B parameters", "max_parameters", 2.5e9),
        ("under 500 mW", "max_power_w", 0.5),
        ("under 1.2 kW", "max_power_w", 1200.0),
        ("under 1 kWh per day", "max_energy_wh_per_day", 1000.0),
        ("under 3 kWh per week", "max_energy_wh_per_day", 3000.0 / 7),
        ("under 30 kWh per month", "max_energy_wh_per_day", 1000.0),
        ("under 5 MJ per day", "max_energy_wh_per_day", 5e6 / 3600),
        ("under 100 Wh per hour", "max_energy_wh_per_day", 2400.0),
        ("below 5 tonnes CO2e per year", "max_carbon_kg_per_day", 5000.0 / 365),
        ("below 500 g CO2 per day", "max_carbon_kg_per_day", 0.5),
        ("below 2 t CO2", "max_carbon_kg", 2000.0),
        ("lasts 3 days on a single charge", "min_battery_life_h", 72.0),
        ("a battery life of 2 weeks", "min_battery_life_h", 336.0),
        ("at least 87.5% accuracy", "min_accuracy", 0.875),
        ("accuracy of 0.8", "min_accuracy", 0.8),
        ("accuracy of 80", "min_accuracy", 0.8),
    ],
)
def test_normalisation_arithmetic(text: str, key: str, value: float) -> None:
    found = extract_text(text).requirements
    assert isinstance(found[key], float)
    assert found[key] == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize(
    ("template", "units_written", "key"),
    [
        (
            "latency under 5 {}",
            "ms,msec,msecs,millisecond,milliseconds,milli-seconds,µs,μs,us,microsecond,microseconds,ns,"
            "nanoseconds,s,sec,secs,second,seconds,min,mins,minute,minutes,h,hr,hrs,hour,hours",
            "max_latency_ms",
        ),
        (
            "must fit in 5 {}",
            "KB,kB,KiB,kb,MB,MiB,GB,GiB,TB,Kilobytes,megabytes,Gigabyte,terabytes",
            "max_model_size_mb",
        ),
        ("power under 5 {}", "mW,W,kW,MW,milliwatts,Watts,watt,Kilowatts,megawatt", "max_power_w"),
        (
            "use under 5 {}",
            "mWh,Wh,kWh,MWh,GWh,J,kJ,MJ,GJ,joules,Kilojoules,megajoule,watt-hours,kilowatt-hours,"
            "Kilowatt hours,megawatt-hour",
            "max_energy_wh",
        ),
        ("emit under 5 {} CO2", "g,grams,kg,kilograms,kilos,t,tonnes,tons,metric tons", "max_carbon_kg"),
    ],
)
def test_every_unit_spelling_converts(template: str, units_written: str, key: str) -> None:
    for unit in units_written.split(","):
        value = extract_text(template.format(unit)).requirements.get(key)
        assert isinstance(value, float) and value > 0, unit


def test_us_in_capitals_is_not_microseconds() -> None:
    assert strings("Respond to users from 50 US states") == []


def test_gigabyte_is_the_shared_binary_convention() -> None:
    # common.py's readers and tables.SIZE_UNIT_MB use 1 GB = 1024 MB; so must the extractor.
    assert units.SIZE_MB["gb"] == tables.SIZE_UNIT_MB["gb"] == 1024.0
    assert units.REALTIME_MS == tables.REALTIME_LATENCY_MS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p99 latency between 20 and 40 ms", 40.0),  # an upper limit takes the range's upper end
        ("latency 50-100 ms", 100.0),
        ("respond in 1 to 2 seconds", 2000.0),
    ],
)
def test_latency_ranges_take_the_upper_end(text: str, expected: float) -> None:
    assert extract_text(text).requirements["max_latency_ms"] == pytest.approx(expected)


def test_ranges_of_lower_limits_and_of_throughput() -> None:
    assert extract_text("accuracy between 90 and 95%").requirements["min_accuracy"] == pytest.approx(0.9)
    # a throughput range describes the load: its peak is required
    assert extract_text("between 100 and 200 QPS").requirements["min_throughput_per_s"] == 200.0


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (50.0, "50"),
        (1000 / 30, "33.333"),
        (0.5, "0.5"),
        (5000 / 86_400, "0.0578704"),
        (1e7, "10000000"),
        (0.0, "0"),
    ],
)
def test_number_format_of_key_value_strings(value: float, text: str) -> None:
    assert units.format_value(value) == text


# -------------------------------------------------------------------------------------------------
# evidence spans
# -------------------------------------------------------------------------------------------------


def test_spans_point_at_the_text_they_came_from() -> None:
    description = "Detect defects in real-time on a Jetson at the edge, latency under 40 ms."
    definition = "The model has to fit within 1.5 GB of memory and reach at least 95% accuracy."
    found = extract(description, definition)
    sources = {"description": description, "definition": definition}
    expected = {
        "max_latency_ms": ("description", "under 40 ms"),
        "deployment": ("description", "Jetson"),
        "hardware": ("description", "Jetson"),
        "num_devices": ("description", "a Jetson"),
        "max_model_size_mb": ("definition", "fit within 1.5 GB"),
        "min_accuracy": ("definition", "at least 95% accuracy"),
    }
    assert set(found.evidence) == set(expected)
    for key, (source, text) in expected.items():
        ev = found.evidence[key]
        assert (ev.source, ev.text) == (source, text)
        assert source_text(found, key, sources) == text


def test_evidence_in_extra_data_record() -> None:
    out = run("Count birds", extra={"constraints": "it is battery powered and must stay under 2 W"})
    evidence = out.get_extra()["evidence"]
    text = "it is battery powered and must stay under 2 W"
    assert evidence["max_power_w"] == {
        "text": "under 2 W",
        "start": text.index("under 2 W"),
        "end": len(text),
        "source": "extra_data",
        "field": "constraints",
    }
    ev = evidence["power_source"]
    assert text[ev["start"] : ev["end"]] == "battery powered"


def test_derived_and_default_values_point_at_their_phrase() -> None:
    text = "Track players at 25 fps"
    ev = extract_text(text).evidence["max_latency_ms"]
    assert text[ev.start : ev.end] == ev.text == "25 fps"
    text = "A near real-time alerting system"
    found = extract_text(text)
    assert found.requirements["max_latency_ms"] == units.INTERACTIVE_MS
    assert found.evidence["max_latency_ms"].text == "near real-time"


# fmt: off
_VOCABULARY = (
    "under", "50", "ms", "0,5", "s", "fps", "20", "frames", "per", "second", "GB", "2", "fits",
    "in", "the", "cloud", "edge", "not", "no", "GPU", "real-time", "at", "least", "95%",
    "accuracy", "F1", "kWh", "day", "kg", "CO2", "battery", "powered", "W", "mW", "German",
    "English", "stream", "nightly", "batch", "explainable", "phone", "on-device", "GDPR",
    "10k", "requests", ",", ".", ";", "-", "between", "and", "100", "1.5", "MB", "µs",
    "data", "must", "never", "leave", "device", "trained", "doesn't", "need", "to", "be",
    "8", "A100s", "a", "Jetson", "Orin", "days", "tokens", "7B", "model", "epochs", "1024x1024",
    "steps", "Germany", "us-east-1", "server", "30-second", "clips", "audio", "images", "50k",
)
# fmt: on


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_VOCABULARY), max_size=40))
def test_any_text_gives_valid_requirements_and_exact_spans(tokens: list[str]) -> None:
    text = " ".join(tokens)
    found = extract_text(text)
    for key, value in found.requirements.items():
        spec = KEYS[key]
        ev = found.evidence[key]
        assert text[ev.start : ev.end] == ev.text
        if spec.kind == "count":
            assert isinstance(value, int) and value >= 0
        elif spec.numeric:
            assert isinstance(value, float) and math.isfinite(value) and value >= 0
        elif spec.kind == "set":
            assert isinstance(value, list) and value == sorted(value) and set(value) <= set(spec.values)
        elif spec.kind == "text":
            assert isinstance(value, str) and value.strip()
        else:
            assert value in spec.values
    assert found.strings() == sorted(found.strings())
    assert extract_text(text).extra() == found.extra()  # deterministic


# -------------------------------------------------------------------------------------------------
# extra_data precedence
# -------------------------------------------------------------------------------------------------


def test_explicit_extra_data_wins_over_text_and_the_override_is_recorded() -> None:
    out = run("Respond under 50 ms from the cloud", extra={"max_latency_ms": 20, "deployment": "Mobile"})
    assert out.app_requirements == ["deployment=mobile", "max_latency_ms=20"]
    extra = out.get_extra()
    assert extra["requirements"] == {"max_latency_ms": 20.0, "deployment": "mobile"}
    assert extra["evidence"]["max_latency_ms"] == {
        "text": "max_latency_ms=20",
        "start": 0,
        "end": len("max_latency_ms=20"),
        "source": "extra_data",
        "field": "max_latency_ms",
    }
    assert extra["overridden"]["max_latency_ms"]["value"] == 50.0
    assert extra["overridden"]["max_latency_ms"]["evidence"]["text"] == "under 50 ms"
    assert extra["overridden"]["deployment"]["value"] == "cloud"
    assert extra["contradictions"] == []


def test_explicit_value_equal_to_text_is_not_an_override() -> None:
    extra = run("must fit in 2 GB", extra={"max_model_size_mb": "2048"}).get_extra()
    assert extra["requirements"] == {"max_model_size_mb": 2048.0}
    assert extra["overridden"] == {}


def test_nested_requirements_dict_list_and_text_fields() -> None:
    found = extract(
        "Sentiment of product reviews",
        extra={
            "requirements": {"languages": ["English", "de"], "min_accuracy": 92},
            "notes": ["nightly batch is fine", "must be explainable"],
        },
    )
    assert found.requirements == {
        "min_accuracy": 0.92,  # a percentage given for a fraction key
        "languages": ["de", "en"],
        "processing": "batch",
        "explainability": "required",
    }
    assert found.evidence["languages"].field == "requirements.languages"
    assert found.evidence["processing"].field == "notes[0]"

    listed = extract(extra={"requirements": ["max_model_size_mb=100", "runs on a phone"]})
    assert listed.requirements == {"max_model_size_mb": 100.0, "deployment": "mobile"}
    assert listed.evidence["max_model_size_mb"].text == "max_model_size_mb=100"
    assert listed.evidence["deployment"].field == "requirements[1]"


def test_top_level_key_beats_nested_requirements() -> None:
    found = extract(extra={"deployment": "edge", "requirements": {"deployment": "cloud"}})
    assert found.requirements == {"deployment": "edge"}
    assert found.evidence["deployment"].field == "deployment"


def test_unrelated_extra_data_is_ignored() -> None:
    # HW_CONSTRAINTS' keys and the orchestrator's are not requirements
    extra = {"max_memory_footprint": 512, "hardware_required": "PIM_AI_1chip", "num_outputs": 2}
    assert run("Classify birds", extra=extra).app_requirements == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"max_latency_ms": "fast"}, "extra_data.max_latency_ms must be a number (ms)"),
        ({"max_latency_ms": True}, "extra_data.max_latency_ms must be a number"),
        ({"max_latency_ms": -5}, "extra_data.max_latency_ms must be a finite number >= 0"),
        ({"min_accuracy": 250}, "extra_data.min_accuracy must be a fraction 0-1"),
        ({"deployment": "mars"}, "extra_data.deployment: unknown value 'mars'; accepted: embedded, mobile"),
        ({"languages": ["en", "klingon"]}, "extra_data.languages: unknown value 'klingon'"),
        ({"requirements": {"speed": 3}}, "extra_data.requirements.speed: unknown requirement key"),
        ({"requirements": 5}, "extra_data.requirements must be an object, a string or a list"),
        ({"constraints": {"a": 1}}, "extra_data.constraints must be a string or a list of strings"),
    ],
)
def test_invalid_explicit_values_fail_naming_the_field(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as err:
        run("anything", extra=extra)
    assert message in str(err.value)


# -------------------------------------------------------------------------------------------------
# contradictions
# -------------------------------------------------------------------------------------------------


def test_two_latency_targets_report_both_spans_and_keep_the_stricter() -> None:
    text = "Latency under 200 ms for the API; the UI must respond within 50 ms"
    out = run(text)
    extra = out.get_extra()
    assert out.app_requirements == ["max_latency_ms=50"]
    [contradiction] = extra["contradictions"]
    assert contradiction["key"] == "max_latency_ms"
    assert contradiction["values"] == [200.0, 50.0]
    assert contradiction["chosen"] == 50.0
    assert "stricter" in contradiction["rule"]
    spans = [(e["text"], text[e["start"] : e["end"]]) for e in contradiction["evidence"]]
    assert spans == [("under 200 ms", "under 200 ms"), ("within 50 ms", "within 50 ms")]


def test_edge_and_cloud_contradict_and_the_most_constraining_wins() -> None:
    found = extract_text("Deploy in the cloud and on edge devices")
    assert found.requirements["deployment"] == "edge"
    [c] = found.contradictions
    assert (c.key, c.values, c.chosen) == ("deployment", ["cloud", "edge"], "edge")
    assert [s.text for s in c.spans] == ["cloud", "on edge devices"]


def test_lower_limits_contradict_towards_the_larger_value() -> None:
    found = extract_text("At least 90% accuracy; the target is 95% accuracy")
    assert found.requirements["min_accuracy"] == pytest.approx(0.95)
    assert [c.key for c in found.contradictions] == ["min_accuracy"]


@pytest.mark.parametrize(
    "text",
    [
        "Runs on the edge, on Android phones",  # edge is subsumed by the more specific mobile
        "Trained in the cloud, deployed on smartphones",  # training location is not deployment
        "Real-time: latency under 40 ms",  # the real-time default yields to the number
        "30 fps with end-to-end latency under 100 ms",  # frame period yields to a stated latency
        "under 50 ms, i.e. 20 fps",  # the same target twice
    ],
)
def test_not_contradictions(text: str) -> None:
    assert extract_text(text).contradictions == []


def test_explicit_value_resolves_a_contradiction() -> None:
    found = extract("under 50 ms, or at most 80 ms", extra={"max_latency_ms": 60})
    assert found.requirements == {"max_latency_ms": 60.0}
    assert found.contradictions == []


# -------------------------------------------------------------------------------------------------
# negations
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It doesn't need to be real-time", []),
        ("It does not need to be real time; reports run overnight", ["processing=batch"]),
        ("Non-real-time analysis of scans", []),
        ("Real-time is not required", []),
        ("Must run on our own servers, not in the cloud", ["deployment=on-premise", "privacy=no-cloud"]),
        ("It must never send photos to the cloud", ["privacy=no-cloud"]),
        (
            "Cloud deployment is not an option; it runs on a Raspberry Pi",
            ["deployment=edge", "hardware=Raspberry Pi", "num_devices=1", "privacy=no-cloud"],
        ),
        ("The model does not need to run on mobile", []),
        ("No GPU available", ["gpu=none"]),
        ("Runs without a GPU", ["gpu=none"]),
        ("We train on GPUs but inference runs on CPUs", ["gpu=none"]),
        ("No need for explainability", []),
        ("Explainability is not needed", []),
        ("The model must not be a black box", ["explainability=required"]),
        ("Flag non-English tweets", []),
        ("No data leaves the phone", ["deployment=mobile", "privacy=on-device"]),
        ("no more than 50 ms", ["max_latency_ms=50"]),  # a bound, not a negation
    ],
)
def test_negations(text: str, expected: list[str]) -> None:
    assert strings(text) == expected


# -------------------------------------------------------------------------------------------------
# the shipped table of phrasings
# -------------------------------------------------------------------------------------------------


def test_cases_table_is_large_varied_and_valid() -> None:
    cases = load_cases()
    assert len(cases) >= 80
    assert sum(1 for c in cases if not c.expected) >= 15  # negatives: nothing to find
    assert sum(1 for c in cases if c.contradictions) >= 5
    assert sum(1 for c in cases if c.extra) >= 5
    covered = {key for c in cases for key in c.expected}
    assert covered >= set(KEYS) - {"max_cer"}
    for c in cases:
        assert set(c.expected) <= set(KEYS), c.id
        # a cross-key contradiction is named "a/b" after both keys
        assert {k for name in c.contradictions for k in name.split("/")} <= set(c.expected), c.id


def test_cases_table_precision_and_recall() -> None:
    report = evaluate()
    print(report.render())  # the misses, visible with -s or when the assertions fail
    assert report.cases == len(load_cases())
    assert report.micro.precision is not None and report.micro.precision >= 0.9
    assert report.micro.recall is not None and report.micro.recall >= 0.9
    assert report.contradictions.recall == 1.0 and report.contradictions.precision == 1.0
    body = report.to_json()
    assert body["micro"]["tp"] == report.micro.tp
    assert set(body["per_key"]) <= set(KEYS)
    assert [m["id"] for m in body["misses"]] == [m.case_id for m in report.misses]
    assert len(report.misses) == report.cases - report.exact
    text = report.render()
    assert f"{report.cases} cases" in text and "precision" in text and "max_latency_ms" in text


def test_evaluate_scores_wrong_values_as_both_errors(tmp_path: Any) -> None:
    table = tmp_path / "cases.jsonl"
    rows = [
        {"id": "right", "description": "under 50 ms", "expected": {"max_latency_ms": 50}},
        {"id": "wrong", "description": "under 50 ms", "expected": {"max_latency_ms": 60}},
        {"id": "missed", "description": "hello", "expected": {"deployment": "edge"}},
        {"id": "invented", "description": "runs in the cloud", "expected": {}},
    ]
    table.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = evaluate(table)
    assert (report.micro.tp, report.micro.fp, report.micro.fn) == (1, 2, 2)
    assert report.micro.precision == pytest.approx(1 / 3)
    assert report.micro.recall == pytest.approx(1 / 3)
    assert report.exact == 1
    assert [m.case_id for m in report.misses] == ["wrong", "missed", "invented"]
    assert report.misses[0].missing == {"max_latency_ms": 60} and report.misses[0].unexpected == {
        "max_latency_ms": 50.0
    }
    assert report.per_key["deployment"].precision == 0.0


def test_load_cases_rejects_a_broken_table(tmp_path: Any) -> None:
    table = tmp_path / "cases.jsonl"
    table.write_text('{"id": "a", "expected": {}}\n{"id": "a", "expected": {}}\n')
    with pytest.raises(ValueError, match="duplicate case id 'a'"):
        load_cases(table)
    table.write_text('{"id": "b"}\n')
    with pytest.raises(ValueError, match=r"cases.jsonl:1: not a valid case"):
        load_cases(table)


# -------------------------------------------------------------------------------------------------
# the node: output record, compatibility with the readers, configuration
# -------------------------------------------------------------------------------------------------


def test_task_output_sorted_strings_typed_dict_and_evidence() -> None:
    out = run(
        "Detect pedestrians in dashcam video at 30 fps on a Jetson; the model must fit in 2 GB",
        definition="object detection",
    )
    assert out.app_requirements == [
        "deployment=edge",
        "hardware=Jetson",
        "max_latency_ms=33.333",
        "max_model_size_mb=2048",
        "min_throughput_per_s=30",
        "num_devices=1",
    ]
    extra = out.get_extra()
    assert extra["requirements"] == {
        "max_latency_ms": pytest.approx(1000 / 30),
        "min_throughput_per_s": 30.0,
        "deployment": "edge",
        "max_model_size_mb": 2048.0,
        "hardware": "Jetson",
        "num_devices": 1,
    }
    assert isinstance(extra["requirements"]["num_devices"], int)
    assert set(extra["evidence"]) == set(extra["requirements"])
    assert extra["contradictions"] == [] and extra["overridden"] == {}


def test_output_reads_back_through_common_parse_requirements() -> None:
    out = run("Under 40 ms, fits in 1.5 GB, GDPR, German and English, at least 95% accuracy, on a phone")
    parsed = parse_requirements(out)
    assert parsed["max_latency_ms"] == 40.0
    assert parsed["max_model_size_mb"] == 1536.0
    assert parsed["min_accuracy"] == 0.95
    assert parsed["deployment"] == "mobile"
    assert parsed["languages"] == "de,en"
    assert parsed["privacy"] == "gdpr"


def test_every_limit_is_a_max_or_min_key() -> None:
    # common.parse_requirements turns exactly the max_/min_ keys into floats; the workload counts
    # and quantities are read typed from extra_data["requirements"]
    for key, spec in KEYS.items():
        assert (spec.kind in ("max", "min")) == key.startswith(("max_", "min_")), key


def test_configuration_request_lists_keys_units_and_extra_data_keys() -> None:
    res, body = configure("requirements")
    assert res.success is True and res.err_code == ErrorCode.NO_ERROR
    assert body == json.loads(json.dumps(describe()))
    assert sorted(body["keys"]) == sorted(KEYS)  # the reply is JSON with sorted keys
    assert body["keys"]["max_latency_ms"]["unit"] == "ms"
    assert body["keys"]["max_model_size_mb"]["unit"] == "MB (1 GB = 1024 MB)"
    assert body["keys"]["deployment"]["values"] == [
        "embedded",
        "mobile",
        "browser",
        "edge",
        "on-premise",
        "cloud",
    ]
    for spec in body["keys"].values():
        assert spec["description"] and spec["kind"] in (
            "max",
            "min",
            "enum",
            "set",
            "count",
            "quantity",
            "text",
        )
    assert body["extra_data"]["explicit_keys"] == list(KEYS)
    assert body["extra_data"]["text_fields"] == ["constraints", "requirements_text", "notes"]
    assert body["defaults_ms"]["real-time"] == 100.0


@pytest.mark.parametrize("request_text", ["param1", "requirements, all", "", "keys"])
def test_other_configuration_requests_fail_as_upstream(request_text: str) -> None:
    res, body = configure(request_text)
    assert res.success is False and res.err_code == ErrorCode.INTERNAL_ERROR
    assert body == {"error": f"Unsupported configuration request: {request_text}"}


def test_a_public_data_set_trained_on_gives_its_training_split() -> None:
    from sustainml.workers.logic.requirements.datasets import DATASETS

    found = extract("Train a ResNet-50 on ImageNet on 8 V100 GPUs for 90 epochs.")
    assert found.requirements["training_samples"] == 1_281_167 and found.requirements["epochs"] == 90
    assert extract("fine-tune BERT-base on SQuAD v2.0").requirements["training_samples"] == 130_319
    # a count written in the text wins over the data set's size; a data set not trained on is not a size
    assert extract("Fine-tune BERT on 20k images from COCO.").requirements["training_samples"] == 20_000
    assert "training_samples" not in extract("We evaluate on ImageNet only.").requirements
    assert "training_samples" not in extract("train a classifier for objects like those in coco").requirements
    for dataset in DATASETS:
        assert dataset.train_samples > 0 and dataset.source and dataset.spellings, dataset.name
