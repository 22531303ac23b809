"""Hardware names as people write them: nvidia-smi names, model-card power notes, cloud instance
types, TPU slices, device counts and ambiguous names resolved per task with a note."""

from __future__ import annotations

from typing import Any

import pytest

from sustainml.catalogue import hardware
from sustainml.catalogue.schema import instances
from sustainml.estimate import hardware_choice
from sustainml.estimate import hardware_names as hn
from sustainml.messages.types import HWConstraints, NodeStatus, UserInput, pack_extra
from sustainml.workers.logic import hw_constraints as hc


@pytest.mark.parametrize(
    ("written", "device", "count"),
    [
        ("NVIDIA A100-SXM4-40GB", "A100-SXM4-40GB", None),
        ("NVIDIA A100-SXM4-80GB", "A100-80GB", None),
        ("NVIDIA A100-PCIE-40GB", "A100", None),
        ("NVIDIA H100 80GB HBM3", "H100-SXM", None),
        ("NVIDIA H100 PCIe", "H100", None),
        ("NVIDIA H100 NVL", "H100-NVL", None),
        ("Tesla V100-SXM2-16GB", "V100-SXM2", None),
        ("NVIDIA A10G", "A10G", None),
        ("NVIDIA GeForce RTX 4090", "RTX-4090", None),
        ("p4d.24xlarge", "A100-SXM4-40GB", 8),
        ("p5.48xlarge", "H100-SXM", 8),
        ("a2-highgpu-8g", "A100-SXM4-40GB", 8),
        ("Standard_ND96asr_v4", "A100-SXM4-40GB", 8),
        ("ND96asr_v4", "A100-SXM4-40GB", 8),
        ("g5.xlarge", "A10G", 1),
        ("g6.xlarge", "L4", 1),
        ("trn1.32xlarge", "Trainium", 16),
        ("inf2.48xlarge", "Inferentia2", 12),
        ("TPU v4-8", "TPU-v4", 4),  # slices count TensorCores, 2 per chip
        ("v3-512", "TPU-v3", 256),
        ("v5litepod-16", "TPU-v5e", 16),  # v5e slices count chips
        ("8 x H100 SXM", "H100-SXM", 8),
        ("16 A10Gs", "A10G", 16),
        ("H100_x8", "H100_x8", None),  # upstream's aggregate name stays itself
    ],
)
def test_names_people_see(written: str, device: str, count: int | None) -> None:
    spec = hn.parse_hardware(written, "training")
    assert (spec.device, spec.count) == (device, count)


def test_every_instance_names_a_catalogue_device_and_cites_its_page() -> None:
    table = list(instances())
    assert len(table) >= 50
    for row in table:
        assert hardware().get(row.device).name == row.device
        assert row.source.startswith("https://") and row.provider in ("aws", "gcp", "azure")


@pytest.mark.parametrize(
    ("written", "training", "inference"),
    [
        ("A100", "A100-80GB", "A100-SXM4-40GB"),
        ("NVIDIA A100", "A100-80GB", "A100-SXM4-40GB"),
        ("A100 40GB", "A100-SXM4-40GB", "A100-SXM4-40GB"),
        ("H100", "H100-SXM", "H100-SXM"),
        ("V100", "V100-SXM2", "V100"),
        ("Jetson Orin", "Jetson-AGX-Orin", "Jetson-AGX-Orin"),
        ("laptop CPU", "Core-Ultra-7-155H", "Core-Ultra-7-155H"),
        ("TPU", "TPU-v4", "TPU-v5e"),
        ("iPhone", "A17Pro", "A17Pro"),
        ("Android phone", "Snapdragon8gen3", "Snapdragon8gen3"),
    ],
)
def test_an_ambiguous_name_takes_the_common_variant_for_the_task_and_says_so(
    written: str, training: str, inference: str
) -> None:
    for task, expected in (("training", training), ("inference", inference)):
        spec = hn.parse_hardware(written, task)  # type: ignore[arg-type]
        assert spec.device == expected
        assert f"is ambiguous: {expected} assumed for {task}" in spec.note


@pytest.mark.parametrize(
    ("written", "device", "power"),
    [
        ("H100-80GB (TDP of 700W)", "H100-SXM", 700.0),  # Llama 3 model card
        ("A100-80GB (TDP of 350-400W)", "A100-80GB", 400.0),  # Llama 2 model card
        ("H100 (350 W)", "H100", 350.0),
        ("A100 (250W)", "A100", 250.0),
    ],
)
def test_a_model_card_power_note_picks_the_variant_and_is_the_stated_power(
    written: str, device: str, power: float
) -> None:
    spec = hn.parse_hardware(written, "training")
    assert (spec.device, spec.stated_power_w) == (device, power)
    assert f"stated power {power:g} W" in spec.note


def test_unknown_names_still_list_the_closest() -> None:
    with pytest.raises(hn.UnknownHardwareError, match=r"unknown hardware 'H1000'.*closest known: H100"):
        hn.parse_hardware("H1000")
    with pytest.raises(hn.UnknownHardwareError, match="closest known"):
        hn.parse_hardware("8 x Jetsen Orin Nano")


@pytest.mark.parametrize(
    ("text", "values", "task"),
    [
        ("fine-tune a 7B chat model", {}, "training"),
        ("classify support emails", {}, "inference"),
        ("classify support emails", {"training_hours": 72}, "training"),
        ("pretraining a language model", {}, "training"),
    ],
)
def test_task_of(text: str, values: dict[str, Any], task: str) -> None:
    assert hn.task_of(text, values) == task


def _run(description: str, **extra: Any) -> HWConstraints:
    out = HWConstraints()
    record = UserInput(problem_short_description=description, extra_data=pack_extra(extra))
    hc.task_callback(record, NodeStatus(), out)
    return out


def test_a_training_run_on_eight_a100s_gets_their_memory_and_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware_choice, "_external_extractor", lambda: None)
    out = _run("fine-tune a 7B chat model on 8 A100s for 3 days in Germany", hardware="8 A100s")
    assert out.hardware_required == ["A100-80GB"]
    assert out.max_memory_footprint == 8 * 80 * 1000
    extra = out.get_extra()
    assert extra["num_devices"] == 8
    assert "A100-80GB assumed for training" in extra[hc.NOTES_KEY][0]
    assert extra[hc.SOURCES_KEY]["num_devices"] == "UserInput.extra_data.hardware ('8 A100s')"


def test_explicit_keys_win_over_the_requirement_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware_choice, "_external_extractor", lambda: None)
    out = _run("", hardware_required="p4d.24xlarge", hardware="T4", num_devices=16)
    assert out.hardware_required == ["A100-SXM4-40GB"]
    assert out.max_memory_footprint == 16 * 40 * 1000
    assert out.get_extra()["num_devices"] == 16  # the user's own key is forwarded untouched


def test_edge_deployment_on_a_data_centre_gpu_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware_choice, "_external_extractor", lambda: None)
    out = _run("count cars at the roadside on an edge box", hardware_required="H100")
    (warning,) = out.get_extra()[hc.WARNINGS_KEY]
    assert warning.startswith("H100-SXM is not classified for deployment=edge")


def test_laptops_are_a_deployment_target_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware_choice, "_external_extractor", lambda: None)
    out = _run("classify support emails on our laptops' CPUs")
    allowed = out.get_extra()[hc.ALLOWED_KEY]
    assert {"Apple-M3", "Core-Ultra-7-155H", "local-cpu"} <= set(allowed)
    assert "A100" not in allowed and "PIM_AI_1chip" not in allowed


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("train a ResNet-50 on ImageNet on a p4d.24xlarge in us-east-1", "p4d.24xlarge"),
        ("pretrain on TPU v4-32 for a week", "TPU v4-32"),
        ("a SageMaker ml.g5.xlarge endpoint", "g5.xlarge"),
        ("classify 3.5 x more emails", None),
    ],
)
def test_instance_types_and_tpu_slices_are_found_in_the_text(text: str, found: str | None) -> None:
    assert hn.hardware_in_text(text) == found


def test_an_instance_type_in_the_text_sets_device_and_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware_choice, "_external_extractor", lambda: None)
    out = _run("pretrain a 1B model on 20 billion tokens on TPU v4-32")
    assert out.hardware_required == ["TPU-v4"] and out.get_extra()["num_devices"] == 16


def test_hardware_info_reads_instance_types_and_says_how() -> None:
    import json

    from sustainml.messages.types import RequestType, ResponseType

    res = ResponseType()
    hc.configuration_callback(
        RequestType(node_id=1, transaction_id=2, configuration="hardware_info, p5.48xlarge"), res
    )
    body = json.loads(res.configuration)
    assert res.success and body["name"] == "H100-SXM" and body["count"] == 8
    assert body["read_as"].startswith("instance type p5.48xlarge: 8 x H100-SXM")


def test_a_device_from_the_text_that_is_unknown_falls_back_to_auto_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    def extract(description: str = "", definition: str = "", extra: Any = None) -> Any:
        return SimpleNamespace(requirements={"hardware": "K80"}, evidence={})

    monkeypatch.setattr(hardware_choice, "_external_extractor", lambda: extract)
    out = _run("train on a K80")
    assert out.hardware_required == ["auto"]
    (warning,) = out.get_extra()[hc.WARNINGS_KEY]
    assert "unknown hardware 'K80'" in warning and "considered instead" in warning
    # typed in the field, the same name is refused
    with pytest.raises(hn.UnknownHardwareError):
        _run("train", hardware_required="K80")
