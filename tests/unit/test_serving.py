"""Per-answer serving estimates: arithmetic by hand, scenario inputs, and HW_RESOURCES' analytic path."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pytest

from sustainml.catalogue import HardwareEntry
from sustainml.estimate import power as pw
from sustainml.estimate import serving as sv
from sustainml.estimate import transformer as tf
from sustainml.messages.types import AppRequirements, HWConstraints, HWResource, MLModel, NodeStatus
from sustainml.workers.logic import hw_resources

#: A made-up decoder with round numbers.
TINY = {"layers": 2, "hidden": 64, "heads": 4, "ffn": 256, "vocab": 1000, "context": 512}
LLAMA31_8B = {
    "layers": 32,
    "hidden": 4096,
    "heads": 32,
    "kv_heads": 8,
    "ffn": 14336,
    "vocab": 128256,
    "context": 131072,
    "ffn_kind": "swiglu",
    "tied_embeddings": False,
    "norm": "rmsnorm",
}
WHISPER_TINYISH = {
    "kind": "encoder-decoder",
    "layers": 8,
    "encoder_layers": 4,
    "decoder_layers": 4,
    "hidden": 384,
    "heads": 6,
    "ffn": 1536,
    "vocab": 51865,
    "context": 448,
    "encoder_context": 1500,
    "bias": True,
    "positions": "learned",
}


def device(**overrides: Any) -> HardwareEntry:
    base = HardwareEntry(
        name="test-gpu",
        device_class="cloud",
        description="made up",
        peak_flops={"fp32": 10e12, "fp16": 100e12},
        memory_bandwidth_gbs=1000.0,
        memory_gb=40.0,
        tdp_w=300.0,
        idle_w=50.0,
        source="test",
    )
    return replace(base, **overrides)


def test_llm_prefill_and_decode_by_hand() -> None:
    spec = sv.spec_of(TINY)
    hw = device()
    sc = sv.Scenario(input_tokens=100, output_tokens=11, batch_size=4, engine="vllm")
    est = sv.estimate_llm(spec, hw, sc)
    eng = sv.ENGINES["vllm"]
    prefill_flops = spec.prefill_flops(100) * 4
    weights = spec.weights_bytes("fp16")
    t_prefill = max(prefill_flops / (100e12 * eng.compute), weights / (1000e9 * eng.memory))
    step = spec.decode_step(100 + 5, batch=4, precision="fp16")  # mean context of 11 steps
    t_step = max(step.flops / (100e12 * eng.compute), step.bytes / (1000e9 * eng.memory))
    fixed = 2 * eng.step_overhead_per_layer_s + 4 * eng.step_overhead_per_sequence_s
    assert est.phases[0].seconds == pytest.approx(t_prefill)
    assert est.phases[1].seconds == pytest.approx(11 * (t_step + fixed))
    assert est.phases[1].overhead_s == pytest.approx(11 * fixed)
    assert est.latency_per_inference_s == pytest.approx(t_prefill + 11 * (t_step + fixed))
    # utilisation weighted by time: compute-bound prefill, memory-bound decode, fixed costs
    u = sv.UTILISATION_BY_BOUND
    busy = (
        t_prefill * u[est.phases[0].bound] + 11 * t_step * u["memory"] + 11 * fixed * u["overhead"]
    ) / est.latency_per_inference_s
    assert est.utilisation == pytest.approx(busy)
    power = pw.device_power_w(hw, busy)
    assert est.power_w == pytest.approx(power)
    assert est.energy_per_inference_j == pytest.approx(power * est.latency_per_inference_s / 4)
    assert est.phases[1].bound == "memory"


def test_batch_amortises_weight_reads_and_tensor_parallel_adds_communication() -> None:
    spec = sv.spec_of(LLAMA31_8B)
    hw = device(memory_gb=80.0)
    one = sv.estimate_llm(spec, hw, sv.Scenario(output_tokens=100, batch_size=1))
    many = sv.estimate_llm(spec, hw, sv.Scenario(output_tokens=100, batch_size=32))
    assert many.energy_per_inference_j < one.energy_per_inference_j / 10
    assert many.latency_per_inference_s > one.latency_per_inference_s
    two = sv.estimate_llm(spec, hw, sv.Scenario(output_tokens=100, batch_size=1, num_devices=2))
    assert two.power_w == pytest.approx(2 * pw.device_power_w(hw, two.utilisation))
    # decode halves its memory time and adds 2 all-reduces per layer and step plus the engine's
    # cost per extra device
    eng = sv.ENGINES["vllm"]
    comm = 2 * 32 * (sv.ALLREDUCE_LATENCY_S + 2 * 0.5 * 4096 * 2.0 / sv.LINK_BANDWIDTH_BYTES_S)
    assert two.phases[1].overhead_s == pytest.approx(
        one.phases[1].overhead_s + 100 * (comm + eng.step_overhead_per_extra_device_s)
    )
    step_one = one.phases[1].seconds - one.phases[1].overhead_s
    step_two = two.phases[1].seconds - two.phases[1].overhead_s
    assert step_two == pytest.approx(step_one / 2)


def test_eager_engine_is_slower_than_optimised_servers() -> None:
    spec = sv.spec_of(LLAMA31_8B)
    hw = device(memory_gb=80.0)
    times = {
        e: sv.estimate_llm(spec, hw, sv.Scenario(output_tokens=50, engine=e)).latency_per_inference_s
        for e in ("eager", "vllm", "tensorrt-llm")
    }
    assert times["eager"] > times["vllm"] > times["tensorrt-llm"]
    assert sv.resolve_engine("TensorRT-LLM").name == "tensorrt-llm"
    assert sv.resolve_engine("transformers").name == "eager"


def test_diffusion_scales_with_steps_resolution_and_guidance() -> None:
    model = sv.DiffusionModel(denoiser_macs=1e12, denoiser_parameters=1e9, reference_latent=128)
    hw = device()
    base = sv.estimate_diffusion(
        model, hw, sv.Scenario("diffusion", diffusion_steps=20, image_resolution=1024, engine="eager")
    )
    # 2 x 1e12 MACs x 2 passes (guidance) / (100e12 x eta_c) per step, compute-bound, + launches
    per_step = 2 * 1e12 * 2 / (100e12 * sv.ENGINES["eager"].compute)
    per_step += sv.KERNELS_PER_DENOISER_PASS * sv.ENGINES["eager"].op_overhead_s
    assert base.latency_per_inference_s == pytest.approx(20 * per_step)
    double = sv.estimate_diffusion(
        model, hw, sv.Scenario("diffusion", diffusion_steps=40, image_resolution=1024, engine="eager")
    )
    assert double.latency_per_inference_s == pytest.approx(2 * base.latency_per_inference_s)
    half = sv.estimate_diffusion(
        model, hw, sv.Scenario("diffusion", diffusion_steps=20, image_resolution=512, engine="eager")
    )

    def work(e: sv.ServingEstimate) -> float:  # time beyond the per-kernel launches
        return e.phases[0].seconds - e.phases[0].overhead_s

    assert half.phases[0].overhead_s == pytest.approx(base.phases[0].overhead_s)
    assert work(half) == pytest.approx(work(base) / 4)
    plain = sv.estimate_diffusion(
        model,
        hw,
        sv.Scenario("diffusion", diffusion_steps=20, image_resolution=1024, guidance=False, engine="eager"),
    )
    assert work(plain) == pytest.approx(work(base) / 2)


def test_speech_recognition_counts_30_second_windows() -> None:
    spec = sv.spec_of(WHISPER_TINYISH)
    hw = device()
    hour = sv.estimate_asr(spec, hw, sv.Scenario("asr", audio_seconds=3600.0, engine="eager"))
    window = sv.estimate_asr(spec, hw, sv.Scenario("asr", audio_seconds=30.0, engine="eager"))
    assert hour.latency_per_inference_s == pytest.approx(120 * window.latency_per_inference_s)
    assert "120 window" in hour.notes[0]
    with pytest.raises(ValueError, match="encoder-decoder"):
        sv.estimate_asr(sv.spec_of(TINY), hw, sv.Scenario("asr"))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("output_tokens", -1, "extra_data.output_tokens"),
        ("batch_size", 0, "extra_data.batch_size"),
        ("batch_size", "32", "extra_data.batch_size"),
        ("image_resolution", 1001, "extra_data.image_resolution"),
        ("audio_seconds", -3, "extra_data.audio_seconds"),
        ("serving_engine", "warp-drive", "extra_data.serving_engine"),
        ("precision", "fp7", "extra_data.precision"),
        ("guidance", "yes", "extra_data.guidance"),
    ],
)
def test_bad_inputs_name_the_field(key: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        sv.read_inputs({key: value}, {})


def test_explicit_inputs_win_over_the_requirements_and_defaults_are_listed() -> None:
    inputs = sv.read_inputs({"output_tokens": 500}, {"output_tokens": 100, "batch_size": 8.0})
    assert inputs["output_tokens"] == (500, "extra_data.output_tokens")
    assert inputs["batch_size"] == (8, "requirements.batch_size")
    sc = sv.build_scenario("llm", inputs, device(), goal="summarization")
    assert (sc.input_tokens, sc.output_tokens, sc.batch_size) == (1024, 500, 8)
    assert "input_tokens" in sc.assumed and "output_tokens" not in sc.assumed
    assert sc.engine == "vllm"  # cloud default
    assert sv.build_scenario("llm", {}, device(device_class="edge")).engine == "eager"
    with pytest.raises(ValueError, match="num_devices"):
        sv.build_scenario("llm", sv.read_inputs({"num_devices": 4, "tensor_parallel": 2}, {}), device())
    tp = sv.build_scenario(
        "llm", sv.read_inputs({"tensor_parallel": 2, "pipeline_parallel": 2}, {}), device()
    )
    assert tp.num_devices == 4


def test_daily_audio_volume_is_one_request_when_no_length_is_given() -> None:
    inputs = sv.read_inputs({}, {"audio_seconds_per_day": 3600.0})
    assert inputs["audio_seconds"][0] == 3600.0 and "the day's audio" in inputs["audio_seconds"][1]


def test_architecture_of_generating_catalogue_graphs_matches_their_parameters() -> None:
    from sustainml.catalogue import models

    for name in ("gpt2", "gpt2-medium", "distilgpt2"):
        entry = models().get(name)
        arch = sv.architecture_from_builder(entry.builder, entry.builder_args)
        assert arch is not None
        assert tf.from_architecture(arch).parameters() == pytest.approx(entry.parameters, rel=0.02)
    assert sv.architecture_from_builder("resnet", {}) is None


# -------------------------------------------------------------------------------------------------
# HW_RESOURCES
# -------------------------------------------------------------------------------------------------


def run(model: str, hardware: str, props: dict[str, Any] | None = None, reqs: dict[str, Any] | None = None,
        **extra: Any) -> HWResource:  # fmt: skip
    cons = HWConstraints(max_memory_footprint=0, hardware_required=[hardware])
    cons.set_extra(extra)
    app = AppRequirements()
    if reqs is not None:
        app.set_extra({"requirements": reqs})
    out = HWResource()
    record = MLModel(model=model, model_properties=json.dumps(props or {}))
    hw_resources.task_callback(record, app, cons, NodeStatus(), out)
    return out


def test_hw_resources_costs_an_architecture_per_answer() -> None:
    out = run("Llama-3.1-8B-Instruct", "H100-SXM", architecture=LLAMA31_8B, output_tokens=500, batch_size=32)
    extra = out.get_extra()
    assert extra["kind"] == "llm" and extra["engine"] == "vllm" and extra["batch_size"] == 32
    assert extra["latency_per_inference_s"] == pytest.approx(out.latency)
    assert extra["energy_per_inference_j"] == pytest.approx(out.power_consumption * out.latency / 32)
    assert extra["energy_per_batch_j"] == pytest.approx(out.power_consumption * out.latency)
    assert extra["scenario_sources"]["output_tokens"] == "extra_data.output_tokens"
    assert "input_tokens" in extra["assumed_defaults"]
    assert extra["units"]["energy_per_inference_j"] == "J per answer"
    # the weights of an 8 B model at fp16 and the KV cache fit one 80 GB device
    assert 16_000 < out.memory_footprint_of_ml_model < 80_000 and extra["constraints_met"] is True


def test_hw_resources_reads_the_extracted_requirements() -> None:
    out = run("Mixtral-8x7B", "H100-SXM", reqs={"num_devices": 4, "output_tokens": 100}, architecture={
        **LLAMA31_8B, "vocab": 32000, "experts": 8, "experts_active": 2})  # fmt: skip
    extra = out.get_extra()
    assert extra["num_devices"] == 4 and out.hw_description == "4 x H100-SXM"
    assert extra["scenario_sources"]["num_devices"] == "requirements.num_devices"
    assert extra["scenario"]["output_tokens"] == 100


def test_a_training_runs_devices_serve_on_the_fewest_that_hold_the_model() -> None:
    # "fine-tune ... on 8 A100s for 3 days": the 8 devices are the training run's
    training = {"num_devices": 8, "training_hours": 72}
    small = run("Llama-3.1-8B", "A100-80GB", reqs=training, architecture=LLAMA31_8B)
    assert small.get_extra()["num_devices"] == 1 and small.hw_description == "A100-80GB"
    assert "training run's 8 devices" in small.get_extra()["scenario_sources"]["num_devices"]
    # a 70B model needs more than one 80 GB device at bf16: the fewest power of two that holds it
    seventy = {**LLAMA31_8B, "layers": 80, "hidden": 8192, "heads": 64, "ffn": 28672}
    big = run("Llama-3.1-70B", "A100-80GB", reqs=training, architecture=seventy)
    assert big.get_extra()["num_devices"] == 2
    # a count stated for serving (no training facts) is the tensor-parallel degree, as written
    served = run("Llama-3.1-8B", "A100-80GB", reqs={"num_devices": 8}, architecture=LLAMA31_8B)
    assert served.get_extra()["num_devices"] == 8


def test_hw_resources_generating_graph_model_is_costed_per_generated_token() -> None:
    ten = run("gpt2", "A100", output_tokens=10).get_extra()
    hundred = run("gpt2", "A100", output_tokens=100).get_extra()
    # the catalogue entry's architecture, or the shape of its graph builder
    assert ten["kind"] == "llm" and ten["model_source"].startswith("catalogue gpt2")
    assert hundred["latency_per_inference_s"] > 5 * ten["latency_per_inference_s"]


def test_hw_resources_request_rate_sets_the_batch() -> None:
    out = run("Llama-3.1-8B-Instruct", "H100-SXM", architecture=LLAMA31_8B, requests_per_s=20.0)
    extra = out.get_extra()
    assert extra["batch_size"] == math.ceil(20.0 * out.latency) or extra["batch_size"] > 1


def test_hw_resources_bad_scenario_input_fails_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"extra_data\.output_tokens"):
        run("gpt2", "A100", output_tokens=-5)
    with pytest.raises(ValueError, match=r"extra_data\.diffusion_model\.denoiser_macs"):
        run("sdxl", "L4", diffusion_model={"denoiser_parameters": 2.6e9, "reference_latent": 128})


def test_hw_resources_diffusion_from_explicit_denoiser() -> None:
    model = {"denoiser_macs": 1e12, "denoiser_parameters": 2.6e9, "reference_latent": 128}
    out = run("sdxl", "L4", diffusion_model=model, diffusion_steps=30, image_resolution=1024)
    extra = out.get_extra()
    assert extra["kind"] == "diffusion" and extra["scenario"]["diffusion_steps"] == 30
    assert extra["latency_per_inference_s"] > 0 and extra["energy_per_inference_j"] > 0


def test_graph_models_report_per_answer_figures_too() -> None:
    out = run("mlp-higgs", "T4")
    extra = out.get_extra()
    assert extra["latency_per_inference_s"] == pytest.approx(out.latency)
    eager = run("mlp-higgs", "T4", serving_engine="pytorch").get_extra()
    assert eager["engine"] == "eager" and extra["engine"] == "compiled"


def test_diffusion_pipeline_from_catalogue_components() -> None:
    from types import SimpleNamespace as C

    parts = [
        C(name="U-Net", parameters=2_567_000_000, runs="per-step", macs=3_000_000_000_000, architecture=None),
        C(name="text encoder (CLIP)", parameters=123_000_000, runs="once", macs=0, architecture=TINY),
        C(name="VAE", parameters=84_000_000, runs="once", macs=4_960_000_000_000, architecture=None),
    ]
    model = sv.diffusion_from_components(parts, (1, 4, 128, 128), "sdxl")
    assert model is not None
    assert (model.denoiser_macs, model.reference_latent, model.vae_decoder_macs) == (3e12, 128, 4.96e12)
    assert model.text_encoder_macs == pytest.approx(sv.spec_of(TINY).prefill_flops(77) / 2)
    assert model.other_parameters == 123_000_000 + 84_000_000
    assert sv.diffusion_from_components(parts[1:], (1, 4, 128, 128)) is None  # nothing runs per step


def test_graph_audio_model_runs_once_per_window_of_the_requested_audio() -> None:
    one = run("wav2vec2-base-960h", "T4")
    hour = run("wav2vec2-base-960h", "T4", reqs={"audio_seconds_per_day": 3600.0})
    extra = hour.get_extra()
    assert extra["audio_windows"]["windows"] == 360  # 10 s of 16 kHz audio per pass
    assert hour.latency == pytest.approx(one.latency)  # the seed field stays one pass
    assert extra["latency_per_inference_s"] == pytest.approx(360 * one.get_extra()["latency_per_inference_s"])
    assert extra["energy_per_inference_j"] == pytest.approx(360 * one.get_extra()["energy_per_inference_j"])
    assert "audio_windows" not in one.get_extra()
