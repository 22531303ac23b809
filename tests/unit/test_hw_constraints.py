"""HW_CONSTRAINTS: hardware name resolution, "auto" with deployment filtering, memory limits and their
sources, the requirements-extractor adapter, configuration requests. Records built directly: no
broker, no runtime."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from sustainml.catalogue import hardware
from sustainml.estimate import hardware_choice
from sustainml.estimate import hardware_names as hn
from sustainml.messages.types import (
    ErrorCode,
    HWConstraints,
    NodeStatus,
    RequestType,
    ResponseType,
    UserInput,
    pack_extra,
)
from sustainml.workers.logic import hw_constraints as hc
from sustainml.workers.logic import hw_resources as hr


def sorted_names(names: Iterable[str]) -> list[str]:
    """The order HardwareNames.names() and so allowed_hardware use: case-insensitive."""
    return sorted(names, key=lambda n: (n.casefold(), n))


def of_classes(*classes: str) -> list[str]:
    """Catalogue devices of the given device classes, in allowed_hardware order."""
    assert set(classes) <= set(hn.CLASS_DEPLOYMENTS), classes  # a typo here would pass vacuously
    return sorted_names(h.name for h in hardware() if h.device_class in classes)


ALL_DEVICES = sorted_names(h.name for h in hardware())
#: What "auto" may offer without extra_data.allow_research_hardware: no PIM / CXL-PIM parts.
BUYABLE = sorted_names(h.name for h in hardware() if h.device_class != "pim")


@pytest.fixture
def fallback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pin the built-in extractor, so text-derived expectations do not depend on whether the
    requirements package (written separately) is installed."""
    monkeypatch.setattr(hardware_choice, "_external_extractor", lambda: None)
    yield


def ui(description: str = "", **extra: Any) -> UserInput:
    return UserInput(problem_short_description=description, extra_data=pack_extra(extra))


def run(record: UserInput) -> HWConstraints:
    out = HWConstraints()
    hc.task_callback(record, NodeStatus(), out)
    return out


def configure(text: str) -> tuple[ResponseType, Any]:
    res = ResponseType()
    hc.configuration_callback(RequestType(node_id=2, transaction_id=4, configuration=text), res)
    assert (res.node_id, res.transaction_id) == (2, 4)
    return res, json.loads(res.configuration)


# -------------------------------------------------------------------------------------------------
# name resolution
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("PIM_AI_1chip", "PIM_AI_1chip"),
        ("PIM-AI-1chip", "PIM_AI_1chip"),
        ("pim ai 1chip", "PIM_AI_1chip"),
        ("  Pim.Ai.1CHIP ", "PIM_AI_1chip"),
        ("UPMEM PIM-AI 1chip", "PIM_AI_1chip"),  # vendor word before the name
        ("nvidia a100", "A100"),
        ("A100", "A100"),
        ("NVIDIA T4", "T4"),
        ("Tesla T4", "T4"),
        ("T4 GPU", "T4"),  # generic word after the name
        ("jetson orin nano", "Jetson-Orin-Nano"),
        ("NVIDIA Jetson Orin Nano", "Jetson-Orin-Nano"),
        ("raspberry pi 5", "Raspberry-Pi-5"),
        ("rpi5", "Raspberry-Pi-5"),
        ("CPU", "local-cpu"),
        ("a10", "A10"),  # a device of its own, not a typo of A100
        ("Qualcomm Snapdragon 8 Gen 3", "Snapdragon8gen3"),
        ("AMD EPYC 9654", "EPYC-9654"),
        ("Google Coral", "Coral-Edge-TPU"),
        ("arduino nano 33 ble sense", "Arduino-Nano-33-BLE-Sense"),
    ],
)
def test_catalogue_spellings_resolve_to_the_canonical_name(spelling: str, canonical: str) -> None:
    assert hn.resolve(spelling) == canonical


@pytest.mark.parametrize(
    ("typo", "closest"),
    [
        ("A1000", "A100"),
        ("jetson nano", "Jetson-Orin-Nano"),
        ("raspbery pi 4", "Raspberry-Pi-4"),
        ("T-40", "T4"),
        ("Dimensty 9300", "Dimensity9300"),
        ("Snapdragon 8 gen 4", "Snapdragon8gen3"),
    ],
)
def test_unknown_name_is_an_error_listing_the_closest_known_names(typo: str, closest: str) -> None:
    with pytest.raises(hn.UnknownHardwareError) as info:
        hn.resolve(typo, where="somewhere.hardware")
    assert isinstance(info.value, ValueError)
    assert info.value.name == typo
    assert info.value.suggestions[0] == closest
    message = str(info.value)
    assert message.startswith("somewhere.hardware: unknown hardware")
    assert repr(typo) in message and f"closest known: {closest}" in message


def test_unknown_name_with_nothing_close_lists_the_known_names() -> None:
    with pytest.raises(hn.UnknownHardwareError) as info:
        hn.resolve("Quantum Toaster 9000")
    assert info.value.suggestions == []
    assert len(ALL_DEVICES) > 20  # so the listing is cut, and says so
    listed = "nothing close; known hardware: " + ", ".join(ALL_DEVICES[:20]) + ", ...;"
    assert listed in str(info.value)
    # A short list is given whole.
    small = hn.HardwareNames([("A", ()), ("B", ())])
    with pytest.raises(hn.UnknownHardwareError, match=r"nothing close; known hardware: A, B; "):
        small.resolve("Quantum Toaster 9000")


def test_resolution_works_over_any_entry_list() -> None:
    # The source is a plain (canonical name, aliases) list: a later catalogue swaps it in.
    names = hn.HardwareNames([("Cortex-M4", ("stm32f4", "arm m4")), ("Coral-Edge-TPU", ("coral", "edgetpu"))])
    assert names.resolve("STM32-F4") == "Cortex-M4"
    assert names.resolve("ARM Cortex M4") == "Cortex-M4"  # vendor word dropped
    assert names.resolve("google coral") == "Coral-Edge-TPU"
    assert names.names() == ["Coral-Edge-TPU", "Cortex-M4"]
    assert names.lookup("A100") is None
    assert names.closest("cortex m7") == ["Cortex-M4"]


def test_a_spelling_claimed_by_two_devices_is_a_catalogue_error() -> None:
    with pytest.raises(ValueError, match="claimed by 'A' and 'B'"):
        hn.HardwareNames([("A", ("shared-name",)), ("B", ("Shared Name",))])
    with pytest.raises(ValueError, match="listed twice"):
        hn.HardwareNames([("A", ()), ("A", ())])


def test_catalogue_names_come_from_the_hardware_catalogue() -> None:
    catalogue = list(hardware())
    assert hn.catalogue_names().names() == ALL_DEVICES
    assert len(ALL_DEVICES) == len(catalogue) >= 80
    assert hn.catalogue_entries() == [(h.name, h.aliases) for h in catalogue]
    # Every catalogued device's class has deployment targets (else "auto" could never offer it
    # under a target), and each device gets exactly its class's.
    assert {h.device_class for h in catalogue} <= set(hn.CLASS_DEPLOYMENTS)
    assert set(hn.DEVICE_DEPLOYMENTS) == {h.name for h in catalogue}
    for h in catalogue:
        assert hn.DEVICE_DEPLOYMENTS[h.name] == hn.CLASS_DEPLOYMENTS[h.device_class] != ()
    for targets in hn.CLASS_DEPLOYMENTS.values():
        assert set(targets) <= set(hn.DEPLOYMENT_TARGETS)
    # Every target is served by some device.
    assert {t for targets in hn.DEVICE_DEPLOYMENTS.values() for t in targets} == set(hn.DEPLOYMENT_TARGETS)
    assert hn.DEVICE_DEPLOYMENTS["T4"] == ("cloud", "on-premise")
    assert hn.DEVICE_DEPLOYMENTS["EPYC-9654"] == ("cloud", "on-premise")
    assert hn.DEVICE_DEPLOYMENTS["PIM_AI_1chip"] == ("mobile", "edge")
    assert hn.DEVICE_DEPLOYMENTS["Snapdragon8gen3"] == ("mobile",)
    assert hn.DEVICE_DEPLOYMENTS["STM32H7"] == ("embedded",)
    assert hn.DEVICE_DEPLOYMENTS["local-cpu"] == ("on-premise", "browser", "desktop")
    assert hn.DEVICE_DEPLOYMENTS["Apple-M3"] == ("desktop", "browser")


# -------------------------------------------------------------------------------------------------
# hardware_required in the callback
# -------------------------------------------------------------------------------------------------


def test_no_hardware_named_is_auto_among_server_devices_and_the_extra_data_is_forwarded(
    fallback_only: None,
) -> None:
    # Not the template's PIM_AI_1chip / 100 MB any more: a research part and a 100 MB limit left
    # most realistic problems with no model. Server devices people rent, memory of the largest.
    out = run(ui(hf_token="hf_x", model_family="CNNs", nested={"a": [1, 2]}, goal="object-detection"))
    assert out.hardware_required == ["auto"]
    largest = max((hardware().get(n) for n in of_classes("cloud", "server-cpu")), key=lambda h: h.memory_gb)
    assert out.max_memory_footprint == largest.memory_gb * 1000
    extra = out.get_extra()
    assert {k: extra[k] for k in ("hf_token", "model_family", "nested", "goal")} == {
        "hf_token": "hf_x",
        "model_family": "CNNs",
        "nested": {"a": [1, 2]},
        "goal": "object-detection",
    }
    sources = extra[hc.SOURCES_KEY]
    assert sources["hardware_required"].startswith("no hardware named")
    assert sources["max_memory_footprint"].startswith(f"memory of the largest allowed device: {largest.name}")
    assert sources["requirements_extractor"] == hc.FALLBACK_EXTRACTOR
    assert extra[hc.ALLOWED_KEY] == of_classes("cloud", "server-cpu")
    assert "no deployment stated: deployment=cloud assumed" in sources[hc.ALLOWED_KEY]
    assert hc.WARNINGS_KEY not in extra


def test_names_are_resolved_deduplicated_and_the_renaming_is_explained(fallback_only: None) -> None:
    # A bare "A100" is ambiguous: for inference the SXM4 40 GB part, and a note says so.
    out = run(ui(hardware_required=["nvidia a100", "T4", "a100"]))
    assert out.hardware_required == ["A100-SXM4-40GB", "T4"]
    source = out.get_extra()[hc.SOURCES_KEY]["hardware_required"]
    assert source == (
        "UserInput.extra_data.hardware_required ('nvidia a100' -> A100-SXM4-40GB; 'a100' -> A100-SXM4-40GB)"
    )
    notes = out.get_extra()[hc.NOTES_KEY]
    assert len(notes) == 2 and "'nvidia a100' is ambiguous: A100-SXM4-40GB assumed for inference" in notes[0]
    # The incoming value itself is forwarded untouched.
    assert out.get_extra()["hardware_required"] == ["nvidia a100", "T4", "a100"]


def test_a_comma_separated_string_is_several_devices(fallback_only: None) -> None:
    assert run(ui(hardware_required="rpi5, jetson orin nano")).hardware_required == [
        "Raspberry-Pi-5",
        "Jetson-Orin-Nano",
    ]


def test_an_unknown_name_fails_the_callback_with_the_closest_names(fallback_only: None) -> None:
    with pytest.raises(ValueError) as info:
        run(ui(hardware_required=["T4", "Jetsen Orin Nano"]))
    message = str(info.value)
    assert "UserInput.extra_data.hardware_required" in message
    assert "'Jetsen Orin Nano'" in message and "closest known: Jetson-Orin-Nano" in message


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (["T4", 4], r"hardware_required\[1\] must be a device name"),
        (42, "must be a device name or a list"),
        ({"name": "T4"}, "must be a device name or a list"),
        (["auto", "T4"], "'auto' cannot be combined"),
    ],
)
def test_malformed_hardware_required_is_an_error(value: Any, match: str, fallback_only: None) -> None:
    with pytest.raises(ValueError, match=match):
        run(ui(hardware_required=value))


@pytest.mark.parametrize("value", ["auto", "AUTO", " Auto ", "", "  ", [], ["auto"], ["", "auto"]])
def test_auto_or_empty_lets_hw_resources_choose_among_server_devices(value: Any, fallback_only: None) -> None:
    out = run(ui("classify photos of leaves", hardware_required=value))
    assert out.hardware_required == ["auto"]
    extra = out.get_extra()
    assert extra[hc.ALLOWED_KEY] == of_classes("cloud", "server-cpu")
    assert "no deployment stated: deployment=cloud assumed" in extra[hc.SOURCES_KEY][hc.ALLOWED_KEY]


def test_research_parts_are_offered_only_when_allowed(fallback_only: None) -> None:
    out = run(ui("a phone app that recognises birds", allow_research_hardware=True))
    assert out.get_extra()[hc.ALLOWED_KEY] == of_classes("mobile", "pim")
    named = run(ui("a phone app that recognises birds", hardware_required="PIM_AI_1chip"))
    assert named.hardware_required == ["PIM_AI_1chip"] and named.max_memory_footprint == 2000


@pytest.mark.parametrize(
    ("description", "target", "classes", "members", "outsiders"),
    [
        (
            "a phone app that recognises birds",
            "mobile",
            ("mobile",),
            {"Snapdragon8gen3", "A17Pro", "Dimensity9300"},
            {"A100", "T4", "Raspberry-Pi-5", "local-cpu", "STM32H7", "PIM_AI_1chip"},
        ),
        (
            "count cars on a Jetson at the roadside (edge)",
            "edge",
            ("edge", "fpga"),
            {"Jetson-Orin-Nano", "Raspberry-Pi-5", "Coral-Edge-TPU", "Ultra96-V2"},
            {"A100", "T4", "Snapdragon8gen3", "EPYC-9654", "local-cpu", "PIM_AI_1chip"},
        ),
        (
            "batch scoring in the cloud",
            "cloud",
            ("cloud", "server-cpu"),
            {"A100", "T4", "H100", "MI300X", "EPYC-9654", "Xeon-Platinum-8480+", "Graviton3"},
            {"local-cpu", "Jetson-Orin-Nano", "PIM_AI_1chip", "Snapdragon8gen3", "Ultra96-V2"},
        ),
        (
            "runs on our own servers",
            "on-premise",
            ("cloud", "server-cpu", "fpga", "local"),
            {"A100", "T4", "EPYC-9654", "local-cpu", "Zynq UltraScale+ ZCU102"},
            {"Snapdragon8gen3", "PIM_AI_1chip", "Raspberry-Pi-5", "STM32H7"},
        ),
        (
            "runs client-side in the browser",
            "browser",
            ("local", "desktop"),
            {"local-cpu", "Apple-M1"},
            {"A100", "Snapdragon8gen3"},
        ),
        (
            "keyword spotting on a microcontroller",
            "embedded",
            ("embedded",),
            {"Arduino-Nano-33-BLE-Sense", "STM32H7"},
            {"Raspberry-Pi-5", "PIM_AI_1chip", "local-cpu"},
        ),
    ],
)
def test_auto_is_restricted_by_the_deployment_target(
    description: str,
    target: str,
    classes: tuple[str, ...],
    members: set[str],
    outsiders: set[str],
    fallback_only: None,
) -> None:
    out = run(ui(description, hardware_required="auto"))
    assert out.hardware_required == ["auto"]
    extra = out.get_extra()
    allowed = extra[hc.ALLOWED_KEY]
    assert allowed == of_classes(*classes)
    assert members <= set(allowed) and not outsiders & set(allowed)
    why = extra[hc.SOURCES_KEY][hc.ALLOWED_KEY]
    assert why.startswith(f"devices that serve deployment={target}")
    assert "from the problem text" in why


def test_auto_with_a_target_no_device_serves_offers_every_device_and_says_so(
    fallback_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shipped catalogue serves every target: take the microcontrollers' target away.
    without = {n: d for n, d in hn.DEVICE_DEPLOYMENTS.items() if "embedded" not in d}
    assert len(without) < len(hn.DEVICE_DEPLOYMENTS)
    monkeypatch.setattr(hn, "DEVICE_DEPLOYMENTS", without)
    out = run(ui("keyword spotting on a microcontroller", hardware_required="auto"))
    extra = out.get_extra()
    assert extra[hc.ALLOWED_KEY] == BUYABLE
    assert "no catalogued device serves deployment=embedded" in extra[hc.SOURCES_KEY][hc.ALLOWED_KEY]


def test_explicit_deployment_key_wins_over_the_text(fallback_only: None) -> None:
    out = run(ui("batch scoring in the cloud", hardware_required="auto", deployment="mobile"))
    extra = out.get_extra()
    assert extra[hc.ALLOWED_KEY] == of_classes("mobile")
    assert "UserInput.extra_data.deployment" in extra[hc.SOURCES_KEY][hc.ALLOWED_KEY]


def test_explicit_hardware_off_target_is_kept_with_a_warning(fallback_only: None) -> None:
    out = run(ui("an app for smartphones", hardware_required="A100"))
    assert out.hardware_required == ["A100-SXM4-40GB"]
    (warning,) = out.get_extra()[hc.WARNINGS_KEY]
    assert warning.startswith("A100-SXM4-40GB is not classified for deployment=mobile")


def test_a_stale_allowed_hardware_from_the_user_is_not_forwarded_as_ours(fallback_only: None) -> None:
    out = run(ui(hardware_required="T4", allowed_hardware=["A100"]))
    assert hc.ALLOWED_KEY not in out.get_extra()


def test_allowed_hardware_normalises_target_spellings() -> None:
    assert hn.allowed_hardware("on-prem").deployment == "on-premise"
    assert hn.allowed_hardware("Data Center").devices == of_classes("cloud", "server-cpu")
    assert hn.allowed_hardware("smartphone").deployment == "mobile"
    assert hn.allowed_hardware("MCU").devices == ["Arduino-Nano-33-BLE-Sense", "STM32H7"]
    unknown = hn.allowed_hardware("space station")
    assert unknown.devices == ALL_DEVICES and unknown.deployment is None
    assert "unknown deployment target 'space station'" in unknown.note


# -------------------------------------------------------------------------------------------------
# max_memory_footprint
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "extra", "expected", "source"),
    [
        ("", {}, 768000, "memory of the largest allowed device: EPYC-9654 768 GB"),
        ("", {"hardware_required": "T4"}, 16000, "memory of the chosen hardware: T4 16 GB = 16000 MB"),
        ("", {"hardware_required": "p4d.24xlarge"}, 320000, "A100-SXM4-40GB 8 x 40 GB = 320000 MB"),
        ("", {"hardware_required": "A100", "num_devices": 2}, 80000, "A100-SXM4-40GB 2 x 40 GB"),
        ("", {"max_memory_footprint": 0}, 0, "UserInput.extra_data.max_memory_footprint=0 (no limit)"),
        ("", {"max_memory_footprint": 512}, 512, "UserInput.extra_data.max_memory_footprint"),
        ("", {"max_memory_footprint": "2048"}, 2048, "UserInput.extra_data.max_memory_footprint"),
        ("", {"max_memory_footprint": "2 GB"}, 2048, "UserInput.extra_data.max_memory_footprint"),
        ("", {"max_memory_footprint": 512.9}, 512, "UserInput.extra_data.max_memory_footprint"),  # int()
        # the text's limit alone replaces the default (the default is for "nothing stated")
        (
            "the model must fit in 2 GB",
            {},
            2048,
            "app requirement max_model_size_mb=2048 from the problem text",
        ),
        # the smaller non-zero limit wins, either way round
        ("the model must fit in 50 MB", {"max_memory_footprint": 200}, 50, "app requirement"),
        ("the model must fit in 2 GB", {"max_memory_footprint": 300}, 300, "UserInput.extra_data"),
        # 0 = no limit is not "smaller"
        ("the model must fit in 50 MB", {"max_memory_footprint": 0}, 50, "app requirement"),
        # an explicit extra_data size key wins over the text
        ("fits in 2 GB", {"max_model_size_mb": 64}, 64, "UserInput.extra_data.max_model_size_mb"),
        # fractions round down, but never to 0 (= no limit)
        ("weights under 1.5 MB", {}, 1, "max_model_size_mb=1.5"),
        ("weights under 0.25 MB", {}, 1, "max_model_size_mb=0.25"),
        # a size that is not a limit
        ("we have a 2 GB dataset of photos", {}, 768000, "memory of the largest allowed device"),
    ],
)
def test_memory_limit_and_where_it_came_from(
    description: str, extra: dict[str, Any], expected: int, source: str, fallback_only: None
) -> None:
    out = run(ui(description, **extra))
    assert out.max_memory_footprint == expected
    assert source in out.get_extra()[hc.SOURCES_KEY]["max_memory_footprint"]


def test_memory_limit_source_names_the_losing_limit(fallback_only: None) -> None:
    out = run(ui("the model must fit in 50 MB", max_memory_footprint=200))
    source = out.get_extra()[hc.SOURCES_KEY]["max_memory_footprint"]
    assert source == (
        "app requirement max_model_size_mb=50 from the problem text ('fit in 50 MB'); "
        "smaller than UserInput.extra_data.max_memory_footprint"
    )


@pytest.mark.parametrize("value", ["lots", -5, True, [1], float("inf"), 2**32, "12 parsecs"])
def test_a_memory_that_is_not_a_size_is_an_error(value: Any, fallback_only: None) -> None:
    with pytest.raises(ValueError, match="max_memory_footprint"):
        run(ui(max_memory_footprint=value))


# -------------------------------------------------------------------------------------------------
# the requirements-extractor adapter
# -------------------------------------------------------------------------------------------------


def _with_extractor(monkeypatch: pytest.MonkeyPatch, extract: Callable[..., Any]) -> None:
    monkeypatch.setattr(hardware_choice, "_external_extractor", lambda: extract)


def _span(text: str, source: str, field: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(text=text, source=source, field=field)


def test_the_extractors_requirements_and_evidence_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def extract(description: str = "", definition: str = "", extra: Any = None) -> Any:
        calls.append({"description": description, "definition": definition, "extra": extra})
        return SimpleNamespace(
            requirements={"deployment": "edge", "max_model_size_mb": 300.0, "max_latency_ms": 50.0},
            evidence={
                "deployment": _span("on a drone", "description"),
                "max_model_size_mb": _span("max_model_size_mb=300", "extra_data", "max_model_size_mb"),
            },
        )

    _with_extractor(monkeypatch, extract)
    record = ui("spot poachers on a drone", hardware_required="auto", max_model_size_mb=300)
    record.problem_definition = "object detection"
    out = run(record)
    assert calls == [
        {
            "description": "spot poachers on a drone",
            "definition": "object detection",
            "extra": {"hardware_required": "auto", "max_model_size_mb": 300},
        }
    ]
    assert out.max_memory_footprint == 300
    extra = out.get_extra()
    assert extra[hc.ALLOWED_KEY] == of_classes("edge", "fpga")
    sources = extra[hc.SOURCES_KEY]
    assert sources["requirements_extractor"] == "sustainml.workers.logic.requirements.extract"
    assert "from UserInput.extra_data.max_model_size_mb" in sources["max_memory_footprint"]
    assert "from the problem description ('on a drone')" in sources[hc.ALLOWED_KEY]


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [("raise", "RuntimeError: model file missing"), ("shape", "AttributeError: ")],
)
def test_a_failing_extractor_falls_back_and_says_so(
    behaviour: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def extract(description: str = "", definition: str = "", extra: Any = None) -> Any:
        if behaviour == "raise":
            raise RuntimeError("model file missing")
        return {"deployment": "cloud"}  # not an Extraction

    _with_extractor(monkeypatch, extract)
    out = run(ui("an app for phones that fits in 20 MB", hardware_required="auto"))
    assert out.max_memory_footprint == 20
    extra = out.get_extra()
    assert extra[hc.ALLOWED_KEY] == of_classes("mobile")
    assert extra[hc.SOURCES_KEY]["requirements_extractor"] == hc.FALLBACK_EXTRACTOR
    (warning,) = extra[hc.WARNINGS_KEY]
    assert warning.startswith(f"sustainml.workers.logic.requirements.extract failed ({reason}")
    assert warning.endswith("used the fallback")


def test_an_invalid_explicit_requirement_is_the_users_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def extract(description: str = "", definition: str = "", extra: Any = None) -> Any:
        raise ValueError("extra_data.deployment: must be one of embedded, mobile, ...")

    _with_extractor(monkeypatch, extract)
    with pytest.raises(ValueError, match=r"extra_data\.deployment"):
        run(ui(deployment="mars"))


def test_the_installed_requirements_extractor_is_used_without_falling_back() -> None:
    if hardware_choice._external_extractor() is None:
        pytest.skip("sustainml.workers.logic.requirements.extract is not installed yet")
    out = run(ui("An Android phone app; the model must fit in 50 MB", hardware_required="auto"))
    extra = out.get_extra()
    assert extra[hc.SOURCES_KEY]["requirements_extractor"] == "sustainml.workers.logic.requirements.extract"
    assert hc.WARNINGS_KEY not in extra, extra.get(hc.WARNINGS_KEY)
    assert out.max_memory_footprint == 50
    assert extra[hc.ALLOWED_KEY] == of_classes("mobile")


# -------------------------------------------------------------------------------------------------
# configuration requests
# -------------------------------------------------------------------------------------------------


def test_configuration_hardwares_has_the_hw_resources_shape() -> None:
    res, body = configure("hardwares")
    assert res.success is True and res.err_code == ErrorCode.NO_ERROR
    # Byte for byte HW_RESOURCES's reply to the same request.
    theirs = ResponseType()
    hr.configuration_callback(RequestType(node_id=2, transaction_id=4, configuration="hardwares"), theirs)
    assert res.configuration == theirs.configuration
    assert body == {"hardwares": ", ".join(hr.hardware_names())}
    listed = body["hardwares"].split(", ")
    assert sorted_names(listed) == ALL_DEVICES  # every catalogue device, once
    assert listed[:3] == ["A17Pro", "A6000", "A800"]  # upstream's names first, in upstream's order


def test_configuration_hardware_info_resolves_the_name() -> None:
    res, body = configure("hardware_info, nvidia t4")
    assert res.success is True
    # HW_RESOURCES's entry, plus the deployment targets this node filters by.
    assert body == {**hr.hardware_info(hr.resolve_device("T4")), "deployments": "cloud, on-premise"}
    assert body["name"] == "T4" and body["device_class"] == "cloud"
    assert body["memory_gb"] == 16.0 and body["tdp_w"] == 70.0
    assert "NVIDIA T4" in body["aliases"].split(", ")
    _, body = configure("hardware_info, Qualcomm Snapdragon 8 Gen 3")
    assert (body["name"], body["deployments"]) == ("Snapdragon8gen3", "mobile")


@pytest.mark.parametrize(
    ("request_text", "error"),
    [
        ("hardware_info, A1000", "unknown hardware 'A1000' (closest known: A100"),
        ("hardware_info", "hardware_info needs a device name"),
        ("modality", "Unsupported configuration request: modality"),
        ("hardwares, extra", "Unsupported configuration request: hardwares, extra"),
    ],
)
def test_configuration_failures_keep_the_upstream_convention(request_text: str, error: str) -> None:
    res, body = configure(request_text)
    assert res.success is False and res.err_code == ErrorCode.INTERNAL_ERROR
    assert set(body) == {"error"} and body["error"].startswith(error)
