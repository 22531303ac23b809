"""ML_MODEL with the larger catalogue: named models, sizes and architectures honoured or refused,
languages and context lengths filtering, memory over several devices, training memory, quality
compared on the same metric and dataset only, and the NO_MODEL report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sustainml.catalogue import models
from sustainml.config import EstimationSettings
from sustainml.messages.types import AppRequirements, HWConstraints, MLModel, MLModelMetadata, NodeStatus
from sustainml.workers.logic import ml_model


def run(
    goal: str,
    hardware_required: list[str],
    *,
    keywords: list[str] | None = None,
    max_mb: int = 0,
    settings: EstimationSettings | None = None,
    **extra: Any,
) -> MLModel:
    meta = MLModelMetadata(ml_model_metadata=[goal], keywords=keywords or [])
    cons = HWConstraints(max_memory_footprint=max_mb, hardware_required=hardware_required)
    cons.set_extra(extra)
    out = MLModel()
    reqs = AppRequirements()
    ml_model.task_callback(meta, reqs, cons, None, None, None, NodeStatus(), out, settings=settings)
    return out


def props(out: MLModel) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(out.model_properties)
    return result


def test_fine_tune_a_7b_chat_model_on_8_a100s_proposes_a_7b_chat_model() -> None:
    out = run(
        "text-generation",
        ["A100"],
        keywords=["fine-tune", "chat", "llm"],
        model_parameters=7e9,
        num_devices=8,
        training_hours=72,
    )
    entry = models().get(out.model)
    assert 7e9 / ml_model.SIZE_BAND <= entry.parameters <= 7e9 * ml_model.SIZE_BAND
    assert {"chat", "instruct"} & set(entry.tags)
    p = props(out)
    assert p["mode"] == "training" and p["num_devices"] == 8
    assert out.model_path == "catalogue://" + entry.name  # analytic: no graph
    extra = out.get_extra()
    assert extra["selected_by"] == "model_parameters"
    # 16 bytes per parameter + activations do not fit one 80 GB A100, but fit eight
    assert extra["candidates"][0]["memory_mb"] > 80_000


def test_a_size_the_goal_does_not_have_is_refused_with_the_nearest_names() -> None:
    with pytest.raises(ValueError, match=r"model_parameters: .*nearest: .*llama-3.1-405b"):
        run("text-generation", ["H100"], model_parameters=1e12)


def test_a_70b_fits_eight_80gb_devices_not_one() -> None:
    one = run("text-generation", ["H100"], model_selected="llama-3.1-70b-instruct")
    assert any("memory" in w for w in one.get_extra()["warnings"])  # honoured, with the warning
    eight = run("text-generation", ["H100"], model_selected="llama-3.1-70b-instruct", num_devices=8)
    assert eight.model == "llama-3.1-70b-instruct"
    assert not eight.get_extra().get("warnings")


def test_named_aliases_are_honoured() -> None:
    for alias, name in (
        ("bert-large-uncased", "bert-large-uncased"),
        ("meta-llama/Llama-2-7b-chat-hf", "llama-2-7b-chat"),
        ("GPT-3 175B", "gpt-3-175b"),
        ("whisper-large-v3", "whisper-large-v3"),
    ):
        out = run("text-classification", ["H100"], model_selected=alias, num_devices=8)
        assert out.model == name and out.get_extra()["selected_by"] == "model_selected"


def test_spanish_audio_gets_a_multilingual_whisper() -> None:
    out = run("automatic-speech-recognition", ["A100"], languages=["es"])
    entry = models().get(out.model)
    assert entry.covers(["es"]) and "whisper" in entry.name
    reasons = {e["model"]: e for e in out.get_extra()["excluded"]}
    assert reasons["wav2vec2-base-960h"]["constraint"] == "languages"
    assert "does not cover es" in reasons["wav2vec2-base-960h"]["reason"]


def test_french_long_contracts_need_french_and_the_context() -> None:
    out = run("summarization", ["A100"], languages="fr", input_tokens=20_000)
    entry = models().get(out.model)
    assert entry.covers(["fr"]) and entry.context >= 20_000
    reasons = {e["model"]: e["constraint"] for e in out.get_extra()["excluded"]}
    assert reasons["bart-large-cnn"] == "languages"
    assert reasons["mt5-base"] == "context"


def test_no_model_names_the_binding_constraint_and_the_smallest_relaxation() -> None:
    out = run("summarization", ["A100"], languages="fr", input_tokens=10_000_000)
    extra = out.get_extra()
    assert out.model == "NO_MODEL"
    report = extra["no_model"]
    assert report["binding_constraint"] == "context"
    assert "131072 tokens" in report["relaxation"]
    small = run("text-generation", ["A100"], max_mb=50)
    report = small.get_extra()["no_model"]
    assert report["binding_constraint"] == "memory"
    # distilgpt2's 82 M fp32 parameters = 327.7 MB is the smallest step up from 50 MB
    assert "327.7 MB" in report["relaxation"] or "admits" in report["relaxation"]
    assert "admits" in report["relaxation"]


def test_quality_is_compared_on_the_same_metric_and_dataset_only() -> None:
    out = run("summarization", ["H100"], num_devices=8)
    extra = out.get_extra()
    assert "quality_note" in extra and "quality compared on" in extra["quality_note"]
    ranking = ml_model.rank(
        [
            ml_model.assess(models().get(n), _ctx("image-classification"))
            for n in ("vit-h-14", "resnet-50", "resnet-18")
        ],
        0.0,
    )
    norms = {a.entry.name: a.quality_norm for a in ranking}
    assert norms["vit-h-14"] == 0.5  # ImageNet at 518 px: no other candidate reports it
    # 76.13 vs 69.76 % top-1: span max(6.37, 10 % of 76.13) = 7.61 points
    assert norms["resnet-50"] == 1.0 and norms["resnet-18"] == pytest.approx(1 - 6.372 / 7.613, abs=1e-3)


def test_a_figure_measured_in_the_problems_domain_is_the_reference() -> None:
    """Tumour scans: U-Net's biomedical IoU is compared, not the COCO street-scene mIoU most
    segmentation models report; without the domain the common benchmark stays the reference."""
    medical = run("image-segmentation", ["T4"], keywords=["brain mri scans", "segment tumours"])
    assert medical.model == "unet"
    note = medical.get_extra()["quality_note"]
    assert "quality compared on iou on phc-u373" in note and "problem's domain (biomedical)" in note
    street = run("image-segmentation", ["T4"], keywords=["street scenes", "segment cars"])
    assert street.model != "unet"
    assert "quality compared on miou on coco" in street.get_extra()["quality_note"]


def test_a_training_relaxation_counts_accelerators_not_cpus() -> None:
    """Pre-training 175B needs ~2.3 TB of weights, gradients and optimiser state: a server CPU's
    768 GB would make "3 x EPYC" the smallest change, which nobody would train on."""
    devices = ["EPYC-9654", "A100-80GB"]
    training = run(
        "text-generation", ["auto"], allowed_hardware=devices, model_parameters=175e9, training_tokens=3e11
    )
    assert training.model == "NO_MODEL"
    relaxation = training.get_extra()["no_model"]["relaxation"]
    assert " x A100-80GB " in relaxation and "EPYC" not in relaxation
    # Serving a 405B model (810 GB of bf16 weights): the most memory is still the smallest change.
    serving = run("text-generation", ["auto"], allowed_hardware=devices, model_parameters=405e9)
    assert serving.model == "NO_MODEL"
    assert "2 x EPYC-9654 " in serving.get_extra()["no_model"]["relaxation"]


def _ctx(goal: str) -> ml_model.Context:
    return ml_model.Context.build(goal, {}, AppRequirements(), HWConstraints(hardware_required=["T4"]))


def test_architecture_object_is_costed_and_bad_fields_are_named() -> None:
    arch = {"layers": 32, "hidden": 4096, "heads": 32, "ffn": 11008, "vocab": 32000, "context": 4096,
            "ffn_kind": "swiglu", "norm": "rmsnorm", "tied_embeddings": False}  # fmt: skip
    out = run("text-generation", ["A100"], architecture=arch, model_name="my-llama")
    assert out.model == "my-llama" and out.get_extra()["selected_by"] == "architecture"
    assert props(out)["parameters"] == 6_738_415_616
    with pytest.raises(ValueError, match=r"extra_data.architecture.heads"):
        run("text-generation", ["A100"], architecture={**arch, "heads": 31})


def test_config_json_inside_the_allowed_directories(tmp_path: Path) -> None:
    allowed = tmp_path / "models"
    (allowed / "tiny-llama").mkdir(parents=True)
    settings = EstimationSettings(data_dir=tmp_path / "data", model_dirs=(allowed,))
    config = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
              "intermediate_size": 128, "vocab_size": 1000, "max_position_embeddings": 512,
              "hidden_act": "silu", "tie_word_embeddings": False}  # fmt: skip
    (allowed / "tiny-llama" / "config.json").write_text(json.dumps(config))
    out = run("text-generation", ["T4"], settings=settings, architecture="tiny-llama")
    assert out.model == "tiny-llama"
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="allowed model directories"):
        run("text-generation", ["T4"], settings=settings, architecture=str(outside))


def test_generative_models_are_costed_per_answer() -> None:
    out = run("text-generation", ["A100"], model_selected="llama-2-7b-chat", output_tokens=500)
    first = out.get_extra()["candidates"][0]
    assert first["energy_per"] == "answer"
    assert "500 generated tokens" in first["method"]
    short = run("text-generation", ["A100"], model_selected="llama-2-7b-chat", output_tokens=50)
    assert short.get_extra()["candidates"][0]["quick_latency_s"] < first["quick_latency_s"] / 5


def test_every_catalogue_model_can_be_screened_on_a_gpu_and_a_cpu() -> None:
    """Each entry, graph-built or analytic, gets a finite screening latency and memory figure."""
    from sustainml.catalogue import hardware

    ctx = _ctx("text-generation")
    for device in (hardware().get("H100"), hardware().get("T4")):
        for entry in models():
            for goal in entry.goals:
                ctx.goal = goal
                fit = ml_model.device_fit(entry, device, ctx)
                assert 0 < fit.latency_s < 1e6, (entry.name, goal, device.name)
                assert ml_model.memory_needed_mb(entry, ctx, entry.default_precision)[0] > 0, entry.name


def test_ml_model_proposes_only_what_hw_resources_can_cost() -> None:
    from dataclasses import replace

    assert all(ml_model.costable(m) for m in models())  # HW_RESOURCES costs every catalogue entry
    detr = models().get("detr-resnet-50")
    assert ml_model.costable(replace(detr, builder="", builder_args={}))  # published MACs only
    assert not ml_model.costable(replace(detr, builder="", builder_args={}, macs=0))  # nothing to cost
    trees = run("tabular-regression", ["EPYC-9654"], model_selected="catboost-california")
    assert trees.model == "catboost-california" and trees.model_path == "catalogue://catboost-california"


def test_a_model_named_in_the_description_is_honoured() -> None:
    out = run(
        "question-answering",
        ["H100"],
        problem_short_description="answer customer questions with Llama 2 7B chat on 4 H100s",
        num_devices=4,
    )
    assert out.model == "llama-2-7b-chat" and out.get_extra()["selected_by"] == "description"
    assert models().named_in_text("serve meta-llama/Llama-3.1-70B-Instruct") is models().get(
        "llama-3.1-70b-instruct"
    )
    assert models().named_in_text("transcribe what people whisper in a bloom of noise") is None
    assert models().named_in_text("fine-tune a 7B chat model on 8 A100s") is None
    # an acronym written in capitals is a name ("SDXL"), the same letters in a sentence are not
    assert models().named_in_text("SDXL at 1024x1024, 30 steps on an L4") is models().get(
        "stable-diffusion-xl-base-1.0"
    )


def test_one_quality_scale_and_figures_from_another_task_are_neutral() -> None:
    # Token classification: the backbones' MNLI/XNLI accuracies say nothing about NER
    ner = run("token-classification", ["T4"])
    extra = ner.get_extra()
    assert "figure measured on another task" in extra["quality_note"]
    for c in extra["candidates"]:
        if c["name"] in ("deberta-v3-large", "xlm-roberta-large"):
            assert c["quality_norm"] == ml_model.OTHER_TASK_QUALITY and "not comparable" in c["why"]
    assert ner.model == "bert-base-ner"  # the one model measured on NER
    # Text generation: MMLU is the scale most LLMs report; GPT-2's WikiText perplexity is not on it
    gen = run("text-generation", ["H100"], num_devices=8)
    norms = {c["name"]: c["quality_norm"] for c in gen.get_extra()["candidates"]}
    assert "quality compared on accuracy (5-shot) on mmlu" in gen.get_extra()["quality_note"]
    assert not norms.get("gpt2-xl") or norms["gpt2-xl"] == 0.5
    assert models().get(gen.model).quality.dataset == "MMLU"
