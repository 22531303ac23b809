"""ML_MODEL: candidates, constraints with reasons, the quality-versus-energy ranking, NO_MODEL,
model_selected and users' own ONNX files, input_batch, raw_model and configuration requests."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sustainml.catalogue import hardware, models
from sustainml.config import EstimationSettings, environment_settings
from sustainml.estimate import power as pw
from sustainml.estimate import roofline as rl
from sustainml.messages import limits as msg_limits
from sustainml.messages.types import (
    AppRequirements,
    ErrorCode,
    HWConstraints,
    MLModel,
    MLModelMetadata,
    NodeStatus,
    RequestType,
    ResponseType,
)
from sustainml.workers.logic import hw_resources, ml_model

SMALL = "mlp-higgs"


def run(
    goal: str,
    hardware_required: list[str] | None = None,
    max_mb: int = 0,
    reqs: list[str] | None = None,
    meta_extra: dict[str, Any] | None = None,
    settings: EstimationSettings | None = None,
    **extra: Any,
) -> MLModel:
    meta = MLModelMetadata(ml_model_metadata=[goal] if goal else [])
    meta.set_extra(meta_extra or {})
    cons = HWConstraints(max_memory_footprint=max_mb, hardware_required=hardware_required or ["T4"])
    cons.set_extra(extra)
    out = MLModel()
    reqs_record = AppRequirements(app_requirements=reqs or [])
    ml_model.task_callback(meta, reqs_record, cons, None, None, None, NodeStatus(), out, settings=settings)
    return out


def configure(text: str) -> tuple[ResponseType, Any]:
    res = ResponseType()
    ml_model.configuration_callback(RequestType(node_id=5, transaction_id=8, configuration=text), res)
    assert (res.node_id, res.transaction_id) == (5, 8)
    return res, json.loads(res.configuration)


def excluded(out: MLModel) -> dict[str, dict[str, str]]:
    return {e["model"]: e for e in out.get_extra()["excluded"]}


# -------------------------------------------------------------------------------------------------
# ranking
# -------------------------------------------------------------------------------------------------


def expected_ranking(goal: str, device: str, weight: float = 0.5) -> list[tuple[str, float]]:
    """The documented score recomputed here from catalogue figures (single device, no limits)."""
    hw = hardware().get(device)
    power = pw.device_power_w(hw, pw.default_utilisation(hw.device_class))
    rows = []
    eff = rl.efficiency_for(hw)  # the device class's default engine (compiled on GPUs)
    for m in filter(ml_model.costable, models().for_goal(goal)):  # the others are never ranked
        latency = max(
            2 * m.macs / (hw.peak() * eff.compute),
            m.parameters * 4 / (hw.memory_bandwidth_gbs * 1e9 * eff.memory),
        )
        rows.append((m, math.log10(power * latency)))
    groups: dict[tuple[str, str], list[float]] = {}  # one scale: the metric AND dataset most report
    for m, _ in rows:
        key = (m.quality.metric.casefold(), m.quality.dataset.casefold())
        groups.setdefault(key, []).append(m.quality.value)
    reference = min(groups, key=lambda k: (-len(groups[k]), k))
    lo_e, hi_e = min(e for _, e in rows), max(e for _, e in rows)
    scored = []
    for m, e in rows:
        key = (m.quality.metric.casefold(), m.quality.dataset.casefold())
        vals = groups[reference]
        span = max(max(vals) - min(vals), 0.1 * max(vals))  # higher-is-better accuracies here
        q = 0.5 if key != reference else max(0.0, 1 - (max(vals) - m.quality.value) / span)
        scored.append((m.name, q - weight * (e - lo_e) / (hi_e - lo_e)))
    return sorted(scored, key=lambda t: -t[1])


def test_ranking_follows_the_documented_score_by_hand() -> None:
    out = run("image-classification", ["A100"])
    expected = expected_ranking("image-classification", "A100")
    got = [(c["name"], c["score"]) for c in out.get_extra()["candidates"]]
    assert [n for n, _ in got] == [n for n, _ in expected[:5]]
    for (_, s), (_, e) in zip(got, expected, strict=False):
        assert s == pytest.approx(e, abs=1e-6)
    assert out.model == expected[0][0]
    first = out.get_extra()["candidates"][0]
    assert first["rank"] == 1 and first["why"].startswith("best score")
    assert first["device"] == "A100" and first["quality"]["metric"] == "top-1 accuracy"
    second = out.get_extra()["candidates"][1]
    assert "below #1" in second["why"]


def test_ranking_is_deterministic_and_the_energy_weight_matters() -> None:
    a = run("image-classification", ["T4"])
    b = run("image-classification", ["T4"])
    assert a.model_dump() == b.model_dump()
    frugal = run("image-classification", ["T4"], priority="energy")
    assert frugal.get_extra()["energy_weight"] == 1.0
    assert [c["name"] for c in frugal.get_extra()["candidates"]] == [
        n for n, _ in expected_ranking("image-classification", "T4", 1.0)[:5]
    ]
    quality_only = run("image-classification", ["T4"], energy_weight=0)
    assert quality_only.model == "convnext-tiny"  # the best top-1 accuracy of the catalogue
    with pytest.raises(ValueError, match="priority"):
        run("image-classification", priority="cheapest")


# -------------------------------------------------------------------------------------------------
# constraints
# -------------------------------------------------------------------------------------------------


def test_memory_and_parameter_limits_exclude_with_reasons() -> None:
    out = run("image-classification", ["T4"], max_mb=30)
    ex = excluded(out)
    assert ex["resnet-50"]["constraint"] == "memory"
    assert "102.2 MB > limit 30 MB (hw_constraints.max_memory_footprint)" in ex["resnet-50"]["reason"]
    heavy = {
        m.name
        for m in filter(ml_model.costable, models().for_goal("image-classification"))
        if m.parameters * 4 / 1e6 > 30
    }
    assert {"resnet-18", "resnet-50", "vit-b-16", "convnext-tiny"} <= heavy  # 47, 102, 346, 114 MB
    assert {name for name, e in ex.items() if e["constraint"] == "memory"} == heavy
    assert out.get_extra()["limits"]["memory_limit_mb"] == 30.0
    out = run("image-classification", ["T4"], reqs=["max_parameters=5000000"])
    ex = excluded(out)
    assert ex["efficientnet-b0"]["constraint"] == "max_parameters"
    assert "5.29 M parameters > max_parameters 5 M" in ex["efficientnet-b0"]["reason"]
    names = {c["name"] for c in out.get_extra()["candidates"]}
    assert names == {"mobilenet-v2", "mobilenet-v3-small"}
    size = run("image-classification", ["T4"], max_mb=100, reqs=["max_model_size_mb=20"])
    assert size.get_extra()["limits"]["memory_limit_source"] == "app_requirements.max_model_size_mb"


def test_latency_requirement_uses_the_quick_roofline_on_the_hardware() -> None:
    out = run("image-classification", ["Raspberry-Pi-5"], reqs=["max_latency_ms=50"])
    ex = excluded(out)
    pi = hardware().get("Raspberry-Pi-5")
    for entry in filter(ml_model.costable, models().for_goal("image-classification")):
        quick = rl.quick_estimate(entry.macs, entry.parameters, pi)
        if quick.latency_s > 0.05:
            assert ex[entry.name]["constraint"] == "latency"
            assert "Raspberry-Pi-5" in ex[entry.name]["reason"]
        else:
            assert entry.name not in ex
    assert out.target_latency == pytest.approx(0.05)


def test_quality_requirement_excludes_comparable_models_only() -> None:
    out = run("image-classification", ["T4"], reqs=["min_accuracy=0.8"])
    # ViT-H/14 (88.6 % at 518 px) also meets it; CLIP (published figures only) is never ranked
    assert {c["name"] for c in out.get_extra()["candidates"]} == {"vit-b-16", "convnext-tiny", "vit-h-14"}
    assert excluded(out)["resnet-18"]["constraint"] == "quality"
    detection = run("object-detection", ["T4"], reqs=["min_accuracy=0.99"])  # mAP is not accuracy
    assert all(e["constraint"] == "costing" for e in excluded(detection).values())


def test_deployment_class_excludes_models_no_allowed_device_can_hold() -> None:
    out = run(
        "image-classification",
        ["auto"],
        reqs=["deployment=embedded"],
        allowed_hardware=["STM32H7", "Arduino-Nano-33-BLE-Sense"],
    )
    assert out.model == "NO_MODEL"
    for e in out.get_extra()["excluded"]:
        if e["constraint"] != "costing":  # published-figures-only entries are never ranked
            assert e["constraint"] == "deployment" and "embedded device" in e["reason"]


def test_auto_hardware_gives_each_model_its_lowest_energy_device() -> None:
    allowed = ["Jetson-Orin-Nano", "Raspberry-Pi-5", "T4"]
    out = run("image-classification", ["auto"], reqs=["max_latency_ms=30"], allowed_hardware=allowed)
    for c in out.get_extra()["candidates"]:
        entry = models().get(c["name"])
        options = []
        for name in allowed:
            hw = hardware().get(name)
            q = rl.quick_estimate(entry.macs, entry.parameters, hw)
            if q.latency_s <= 0.03:
                options.append((pw.device_power_w(hw, 0.5) * q.latency_s, name))
        assert c["device"] == min(options)[1]


def test_modality_filter_and_restrains() -> None:
    out = run("anomaly-detection", ["T4"], meta_extra={"modality": "tabular"})
    assert out.model == "dagmm-kddcup99"
    assert excluded(out)["patchcore-wrn50"]["constraint"] == "modality"
    cover_tag = run("anomaly-detection", ["T4"], meta_extra={"modality": "cv"})
    assert cover_tag.model == "patchcore-wrn50"
    ignored = run("object-detection", ["T4"], meta_extra={"modality": "video"})
    assert ignored.model != "NO_MODEL"
    assert any("modality filter ignored" in w for w in ignored.get_extra()["warnings"])
    first = run("image-classification", ["T4"])
    second = run("image-classification", ["T4"], meta_extra={"model_restrains": [first.model]})
    assert second.model != first.model
    assert excluded(second)[first.model]["constraint"] == "model_restrains"


# -------------------------------------------------------------------------------------------------
# NO_MODEL
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("goal", "max_mb", "why"),
    [
        ("summarization", 100, "by memory"),
        ("protein-folding", 0, "no model for goal 'protein-folding'"),
    ],
)
def test_no_model_sentinel_with_the_explanation(goal: str, max_mb: int, why: str) -> None:
    out = run(goal, ["PIM_AI_1chip"], max_mb=max_mb)
    assert (out.model, out.model_path, out.model_properties, out.target_latency) == (
        "NO_MODEL",
        "N/A",
        "",
        0.0,
    )
    extra = out.get_extra()
    assert extra["error_code"] == "NO_MODEL"
    assert extra["error"] == "No suitable model found for the given problem."
    assert why in extra["explanation"]
    assert out.input_batch == []
    assert set(extra["no_model"]) == {"message", "binding_constraint", "relaxation"}


# -------------------------------------------------------------------------------------------------
# model_selected and users' models
# -------------------------------------------------------------------------------------------------


def test_model_selected_catalogue_name_wins_and_breaks_constraints_only_with_warnings() -> None:
    out = run("image-classification", ["T4"], max_mb=10, model_selected="ResNet 50")
    assert out.model == "resnet-50" and out.get_extra()["selected_by"] == "model_selected"
    assert any("resnet-50" in w and "memory" in w.lower() for w in out.get_extra()["warnings"])
    restrained = run(
        "image-classification",
        ["T4"],
        meta_extra={"model_selected": "resnet-50", "model_restrains": ["resnet-50"]},
    )
    assert restrained.model != "resnet-50"
    assert excluded(restrained)["resnet-50"]["constraint"] == "model_restrains"
    # A name the catalogue does not know is refused, naming the field and the closest names:
    # silently proposing the ranking's choice instead would hide the user's typo.
    with pytest.raises(ValueError, match=r"extra_data.model_selected: 'my-private-net'.*closest"):
        run("image-classification", ["T4"], model_selected="my-private-net")
    with pytest.raises(ValueError, match="llama-2-7b-chat"):
        run("text-generation", ["A100"], model_selected="llama-2-7b-chatt")


@pytest.fixture
def user_models(tmp_path: Path) -> EstimationSettings:
    """A deployment that reads user models from one directory (the rest as the environment's)."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    return replace(environment_settings().estimation, model_dirs=(allowed,))


def small_bytes() -> bytes:
    return hw_resources.catalogue_file(models().get(SMALL)).read_bytes()


def test_user_onnx_inside_the_allowed_directory_is_analysed(user_models: EstimationSettings) -> None:
    model_dir = user_models.model_dirs[0]
    (model_dir / "mine.onnx").write_bytes(small_bytes())
    out = run(
        "tabular-classification",
        ["T4"],
        settings=user_models,
        model_path="mine.onnx",
        batch_size=3,
        include_input_batch=True,
    )
    assert out.model == "mine" and out.model_path == str((model_dir / "mine.onnx").resolve())
    props = json.loads(out.model_properties)
    assert props["synthetic"] is False and props["family"] == "user"
    assert props["parameters"] == models().get(SMALL).parameters
    assert props["quality"] is None and props["batch_size"] == 3
    assert [a.shape for a in out.input_arrays()] == [(3, 28)]
    assert out.get_extra()["selected_by"] == "extra_data.model_path"
    selected = str(model_dir / "mine.onnx")
    by_selected = run("tabular-classification", ["T4"], settings=user_models, model_selected=selected)
    assert (
        by_selected.model == "mine" and by_selected.get_extra()["selected_by"] == "extra_data.model_selected"
    )
    # HW_RESOURCES accepts the file: it lies in an allowed directory
    from sustainml.messages.types import HWResource

    hw = HWResource()
    cons = HWConstraints(hardware_required=["T4"])
    hw_resources.task_callback(out, AppRequirements(), cons, NodeStatus(), hw, settings=user_models)
    assert hw.get_extra()["model_file"]["origin"] == "user file" and hw.latency > 0


def test_user_paths_outside_the_allowed_directories_are_refused(
    user_models: EstimationSettings, tmp_path: Path
) -> None:
    model_dir = user_models.model_dirs[0]
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(small_bytes())
    with pytest.raises(ValueError, match="outside the allowed directories"):
        run("tabular-classification", settings=user_models, model_path=str(outside))
    with pytest.raises(ValueError):
        run("tabular-classification", settings=user_models, model_path="../outside.onnx")
    (model_dir / "link.onnx").symlink_to(outside)
    with pytest.raises(ValueError, match="outside the allowed directories"):
        run("tabular-classification", settings=user_models, model_path="link.onnx")
    (model_dir / "junk.onnx").write_bytes(b"definitely not protobuf")
    with pytest.raises(ValueError):
        run("tabular-classification", settings=user_models, model_path="junk.onnx")


def test_raw_model_bytes_are_validated_stored_and_analysed(user_models: EstimationSettings) -> None:
    out = run(
        "tabular-classification", ["T4"], settings=user_models, raw_model=small_bytes(), model_name="uploaded"
    )
    assert out.model == "uploaded" and Path(out.model_path).is_file()
    assert json.loads(out.model_properties)["source"] == "extra_data.raw_model"
    with pytest.raises(ValueError):
        run("tabular-classification", settings=user_models, raw_model=b"\x00\x01 nope")


# -------------------------------------------------------------------------------------------------
# outputs
# -------------------------------------------------------------------------------------------------


def test_outputs_of_a_catalogue_model() -> None:
    out = run(
        "image-classification",
        ["T4"],
        meta_extra={"model_selected": "mobilenet-v2"},
        batch_size=4,
        include_input_batch=True,
    )
    assert out.model == "mobilenet-v2"
    path = Path(out.model_path)
    assert path.is_file() and path.suffix == ".onnx"
    props = json.loads(out.model_properties)
    entry = models().get("mobilenet-v2")
    assert props["parameters"] == entry.parameters and props["macs"] == entry.macs
    assert props["flops"] == 2 * entry.macs
    assert props["synthetic"] is True and props["weights"] == "random_seeded"
    assert props["quality"]["metric"] == "top-1 accuracy" and props["licence"] == entry.licence
    assert props["family"] == entry.family and props["source"] == entry.source
    assert props["batch_size"] == 4
    arrays = out.input_arrays()
    assert [a.shape for a in arrays] == [(4, 3, 224, 224)] and arrays[0].dtype == np.float32
    assert "input_batch_note" not in out.get_extra()
    assert out.raw_model == b""


@pytest.mark.parametrize("flag", [None, False, "true", 1])
def test_input_batch_only_on_request(flag: Any) -> None:
    # Megabytes of seeded arrays HW_RESOURCES can regenerate: sent only with include_input_batch = true.
    options = {} if flag is None else {"include_input_batch": flag}
    out = run("image-classification", ["T4"], model_selected="mobilenet-v2", batch_size=4, **options)
    assert out.model == "mobilenet-v2" and out.input_batch == []
    assert json.loads(out.model_properties)["batch_size"] == 4  # HW_RESOURCES's batch, without arrays
    assert "include_input_batch = true" in out.get_extra()["input_batch_note"]
    user = run("tabular-classification", ["T4"], raw_model=small_bytes(), **options)
    assert user.input_batch == [] and "input_batch_note" in user.get_extra()


def test_the_sent_input_batch_is_the_seeded_one() -> None:
    sent = run("tabular-classification", ["T4"], model_selected=SMALL, batch_size=3, include_input_batch=True)
    again, samples = ml_model.input_arrays(Path(sent.model_path), 3)
    assert samples == 3 and [a.tobytes() for a in sent.input_arrays()] == [a.tobytes() for a in again]


def test_text_models_get_token_ids_below_the_vocabulary() -> None:
    out = run(
        "text-classification",
        ["A100"],
        model_selected="distilbert-sst2",
        batch_size=2,
        include_input_batch=True,
    )
    (ids,) = out.input_arrays()[:1]
    assert ids.shape == (2, 128) and ids.dtype == np.int64
    assert ids.min() >= 0 and ids.max() < 30_522  # DistilBERT's vocabulary


def test_a_big_batch_is_sent_in_part_within_the_message_limit() -> None:
    out = run(
        "image-classification", ["T4"], model_selected="mobilenet-v2", batch_size=32, include_input_batch=True
    )
    arrays = out.input_arrays()
    sent = arrays[0].shape[0]
    assert 1 <= sent < 32 and sum(a.nbytes for a in arrays) <= msg_limits.MAX_INPUT_BATCH_BYTES
    props = json.loads(out.model_properties)
    assert props["batch_size"] == 32 and props["input_batch_samples"] == sent
    assert "input_batch holds" in out.get_extra()["input_batch_note"]
    with pytest.raises(ValueError, match="batch_size"):
        run("image-classification", batch_size=0)


def test_raw_model_only_on_request_and_under_the_limit() -> None:
    out = run("tabular-classification", ["T4"], model_selected=SMALL, include_raw_model=True)
    assert out.raw_model == Path(out.model_path).read_bytes()
    big = run("image-classification", ["T4"], model_selected="resnet-50", include_raw_model=True)
    assert big.raw_model == b"" and "above the raw_model limit" in big.get_extra()["raw_model_omitted"]


# -------------------------------------------------------------------------------------------------
# configuration requests
# -------------------------------------------------------------------------------------------------


def test_model_from_goal() -> None:
    res, body = configure("model_from_goal, image-classification")
    names = sorted(m.name for m in models().for_goal("image-classification"))
    assert res.success is True and body == {"models": ", ".join(names)}
    res, body = configure("model_from_goal, tabular-classification, STM32H7")
    assert body == {
        "models": "mlp-higgs"
    }  # 0.56 MB of fp32 weights fit its 1 MB; ft-transformer's 3.6 MB not
    res, body = configure("model_from_goal, image-classification, STM32H7")
    assert res.success is False and "STM32H7" in body["error"]
    res, body = configure("model_from_goal, summarization, A100, Transformers")
    a100 = hardware().get("A100").memory_gb * 1000
    fitting = sorted(
        m.name
        for m in models().for_goal("summarization")
        if "transformer" in m.family.casefold()
        and m.parameters * rl.PRECISION_BYTES[m.default_precision] / 1e6 <= a100
    )
    assert {"bart-large-cnn", "t5-small"} <= set(fitting)
    assert body == {"models": ", ".join(fitting)}
    res, body = configure("model_from_goal, holography")
    assert res.success is False and res.err_code == ErrorCode.INTERNAL_ERROR and "holography" in body["error"]
    res, body = configure("model_from_goal, U_NET_MODELS")
    assert body == {"models": "unet"}


def test_models_and_unsupported_requests() -> None:
    res, body = configure("models")
    assert body["models"].split(", ") == sorted(m.name for m in models())
    res, body = configure("goal")
    assert res.success is False
    assert body == {"models": "", "error": "Unsupported configuration request: goal"}


def test_hf_search_answers_offline_in_the_upstream_shape() -> None:
    res, body = configure("hf_search, transcribe recorded phone calls to text, 3")
    assert res.success is True
    assert set(body) >= {"models", "task", "pipeline_tag", "candidates"}
    assert len(body["models"]) == 3
    card = body["models"][0]
    keys = {"model_id", "author", "downloads", "likes", "pipeline_tag", "library_name", "tags", "cardData",
            "card_text", "sha", "lastModified", "url", "score", "tooltip"}  # fmt: skip
    assert set(card) == keys
    assert models().get(card["model_id"]).goals == ("automatic-speech-recognition",)
    scores = [m["score"] for m in body["models"]]
    assert scores == sorted(scores, reverse=True)
    res, body = configure("hf_search, __MODEL_CONFIG__:resnet-50, 1")
    assert body["model_id"] == "resnet-50" and "25.6 M parameters" in body["tooltip"]
    res, body = configure("hf_search, __MODEL_CONFIG__:nobody/nothing, 1")
    assert "error" in body
    res, body = configure("hf_search, , 5")
    assert body["models"] == [] and "error" in body


def test_every_goal_of_the_catalogue_yields_a_model_without_limits() -> None:
    goals = sorted({g for m in models() for g in m.goals})
    for goal in goals:
        out = run(goal, ["H100"])
        assert out.model != "NO_MODEL", goal
        assert goal in models().get(out.model).goals
