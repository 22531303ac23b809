"""Energy and latency per answer of a served generative model, costed analytically (no graph).

A *serving scenario* (``Scenario``) states what one request is and how it is served: input and
output tokens, batch (requests served together), devices (tensor parallel), precision and the
serving engine; for diffusion, steps and image resolution; for speech recognition, seconds of
audio. ``estimate_llm``, ``estimate_diffusion`` and ``estimate_asr`` return the latency of one
answer and the energy of one answer (the batch's energy divided by the batch), with every
intermediate figure.

**Language models** (decoder or encoder-decoder; ``sustainml.estimate.transformer`` gives the
FLOPs and bytes from the architecture):

- prefill of ``batch`` prompts: compute-bound, ``max(FLOPs / (n x peak x eta_c),
  weights / (n x bandwidth x eta_m))``;
- decode of ``output_tokens`` steps: each step reads the weights once for the whole batch plus
  every sequence's KV cache (growing with the context) and is memory-bound at serving batches
  (Pope et al. 2022, arXiv:2211.05102): ``max(FLOPs / (n x peak x eta_c), bytes / (n x bandwidth x
  eta_m)) + step overhead``, evaluated at the mean context (exact for the bytes, which are linear
  in the context);
- tensor parallelism over ``n`` devices splits FLOPs and bytes evenly and adds two all-reduces of
  the activations per layer and step (Megatron-LM, Shoeybi et al. 2019, arXiv:1909.08053):
  ``2 x layers x (ALLREDUCE_LATENCY_S + 2 (n-1)/n x batch x hidden x 2 B / LINK_BANDWIDTH)``; the
  latency term (~10 us per NCCL all-reduce of a small message on NVLink) and 300 GB/s per GPU are
  stated assumptions.

**Diffusion**: ``steps x denoiser`` at the latent of the requested resolution (the denoiser's
MACs at its reference latent, scaled by the pixel ratio: convolutions and linear layers scale with
the pixels; attention's quadratic part is not scaled up, so large resolutions are optimistic), x 2
for classifier-free guidance (two denoiser passes per step, Ho & Salimans 2022, arXiv:2207.12598),
plus one text-encoder and one VAE-decoder pass when their MACs are known; each at
``max(compute, weights)`` with the engine's compute efficiency, plus the engine's cost per kernel
x the kernels of one U-Net pass per step (``KERNELS_PER_DENOISER_PASS`` unless stated: eager
diffusers at batch 1 on an H100 is launch-bound).

**Speech recognition** (Whisper-style encoder-decoder): ``ceil(audio_seconds / 30)`` windows of
30 s (Whisper pads every input to 30 s, Radford et al. 2022, arXiv:2212.04356); per window one
encoder pass over the ``encoder_context`` audio frames and decoder steps for the transcript at
``TOKENS_PER_AUDIO_SECOND`` (~150 spoken words per minute x ~1.3 tokens per word, an assumption).

**Engines** (``ENGINES``): the fraction of peak compute in compute-bound phases (``eta_c``), of
peak bandwidth in decode (``eta_m``), and fixed costs per decode step (per layer, per sequence in
the batch, per extra tensor-parallel GPU) and per kernel of a denoiser pass:

- ``tensorrt-llm``: 0.7, 0.85; 5 us per layer, 20 us per sequence, 0.5 ms per extra GPU, 2 us per
  kernel (fused kernels, CUDA graphs, in-flight batching in C++; the fixed costs are assumptions);
- ``vllm``: 0.6, 0.75; 10 us per layer, 0.45 ms per sequence, 6 ms per extra GPU, 2 us per kernel
  (Kwon et al. 2023, arXiv:2309.06180). The per-sequence and per-GPU costs were fitted on the
  fitting rows of our ML.ENERGY benchmark v2 table (vLLM 0.5, continuous batching: they hold the
  scheduler, sampler and interleaved prefills, which the vLLM v0.6 release notes report as the
  dominant cost of that version; newer releases are faster, so the figures are conservative);
- ``eager`` (PyTorch eager, Hugging Face ``generate``, diffusers): 0.45, 0.7; 0.6 ms per layer and
  step of Python dispatch and launches (fitted on the ML.ENERGY leaderboard v1 rows; PyTorch's
  "gpt-fast" post, Nov. 2023, implies ~0.9 ms: Llama-2-7B at 25.5 tokens/s eager vs 107 compiled
  on an A100-80GB, where compiled decode reads its 13.5 GB of weights at ~0.7 of the peak
  bandwidth), 15 us per kernel (PyTorch eager dispatch and launch).

**Power and energy**: each device draws ``idle + u x (TDP - idle)`` (``power.device_power_w``)
with ``u`` the time-weighted utilisation of the phases (``UTILISATION_BY_BOUND``: 0.85 while
compute-bound, 0.65 while memory-bound, 0.45 while waiting on fixed costs; the last two fitted on
the fitting rows of the ML.ENERGY table, the first from its diffusion rows: a compute-bound U-Net
batch draws near TDP), unless the caller gives one; energy of the batch = power x devices x
(prefill + decode) time; per answer = / batch. **Latency per answer** = the batch's time (every
request of a static batch finishes with the batch).

Defaults (``DEFAULTS``, stated in every result): chat / text generation 256 input and 256 output
tokens; summarisation 1024 in, 128 out; translation 128 in, 128 out; batch 1; one device;
fp16; engine ``vllm`` on cloud GPUs, ``eager`` elsewhere; diffusion 30 steps at 1024 px (SDXL's
default resolution; 512 px for SD 1.x/2.x), guidance on; speech recognition 30 s of audio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Final, Literal

from sustainml.catalogue.schema import HardwareEntry
from sustainml.estimate import power as pw
from sustainml.estimate import transformer as tf

Kind = Literal["llm", "diffusion", "asr"]


@dataclass(frozen=True)
class Engine:
    name: str
    compute: float  # fraction of peak FLOP/s in compute-bound phases
    memory: float  # fraction of peak bandwidth in decode
    step_overhead_per_layer_s: float  # fixed cost per decode step and layer (kernel launches)
    step_overhead_per_sequence_s: float  # cost per decode step and sequence in the batch (scheduling)
    step_overhead_per_extra_device_s: float  # cost per decode step and tensor-parallel device beyond one
    op_overhead_s: float  # per kernel of a denoiser pass (diffusion)
    source: str


ENGINES: Final[dict[str, Engine]] = {
    "tensorrt-llm": Engine(
        "tensorrt-llm",
        0.7,
        0.85,
        5e-6,
        20e-6,
        0.5e-3,
        2e-6,
        "TensorRT-LLM / TensorRT: fused kernels, CUDA graphs, in-flight batching in C++ "
        "(per-sequence cost 20 us, assumption)",
    ),
    "vllm": Engine(
        "vllm",
        0.6,
        0.75,
        10e-6,
        0.45e-3,
        6e-3,
        2e-6,
        "vLLM (Kwon et al. 2023, arXiv:2309.06180): paged attention, CUDA graphs; 0.45 ms per sequence "
        "and step (scheduling, sampling, prefills interleaved by continuous batching) and 6 ms per step "
        "and extra tensor-parallel GPU, fitted on the fitting rows of our ML.ENERGY benchmark v2 table "
        "(vLLM 0.5, whose CPU overhead the vLLM v0.6 release notes report as dominant; newer releases "
        "are faster, so these figures are conservative)",
    ),
    "eager": Engine(
        "eager",
        0.45,
        0.7,
        0.6e-3,
        0.0,
        0.0,
        15e-6,
        "PyTorch eager / HF generate / diffusers: 0.6 ms per layer and step of Python dispatch and "
        "launches, fitted on the ML.ENERGY leaderboard v1 rows (the gpt-fast post, PyTorch blog Nov. 2023, "
        "implies ~0.9: Llama-2-7B on A100 at 25.5 tok/s eager vs 107 compiled); 15 us per kernel",
    ),
}
#: Aliases users write for the engines.
ENGINE_ALIASES: Final[dict[str, str]] = {
    "trt-llm": "tensorrt-llm",
    "tensorrt_llm": "tensorrt-llm",
    "tensorrt": "tensorrt-llm",
    "trt": "tensorrt-llm",
    "triton": "tensorrt-llm",
    "compiled": "tensorrt-llm",
    "tgi": "vllm",
    "sglang": "vllm",
    "pytorch": "eager",
    "transformers": "eager",
    "huggingface": "eager",
    "hf": "eager",
    "diffusers": "eager",
}

#: All-reduce latency per call and link bandwidth per GPU for tensor parallelism (assumptions).
ALLREDUCE_LATENCY_S: Final = 10e-6
LINK_BANDWIDTH_BYTES_S: Final = 300e9
#: Transcript tokens per second of speech: ~150 words per minute x ~1.3 tokens per word.
TOKENS_PER_AUDIO_SECOND: Final = 150 / 60 * 1.3
WHISPER_WINDOW_S: Final = 30.0
#: Classifier-free guidance: two denoiser passes per step.
CFG_PASSES: Final = 2
#: Kernels of one U-Net pass when not stated: the SD 2.1 U-Net graph built by sustainml.onnxgraphs
#: has 1,296 operators that do work (pays the engine's per-kernel cost once per step: guidance
#: runs both passes as one batch of 2).
KERNELS_PER_DENOISER_PASS: Final = 1296

#: Default tokens per request by goal (input, output).
TOKENS_BY_GOAL: Final[dict[str, tuple[int, int]]] = {
    "text-generation": (256, 256),
    "conversational": (256, 256),
    "chat": (256, 256),
    "summarization": (1024, 128),
    "translation": (128, 128),
    "text2text-generation": (256, 128),
    "question-answering": (512, 32),
}
DEFAULTS: Final[dict[str, Any]] = {
    "input_tokens": 256,
    "output_tokens": 256,
    "batch_size": 1,
    "num_devices": 1,
    "precision": "fp16",
    "engine_cloud": "vllm",
    "engine_other": "eager",
    "diffusion_steps": 30,
    "image_resolution": 1024,
    "audio_seconds": 30.0,
    "guidance": True,
    "tokens_by_goal": {k: {"input_tokens": v[0], "output_tokens": v[1]} for k, v in TOKENS_BY_GOAL.items()},
}


def resolve_engine(name: str) -> Engine:
    key = name.strip().lower().replace(" ", "-")
    key = ENGINE_ALIASES.get(key, key)
    if key not in ENGINES:
        raise ValueError(
            f"serving_engine: unknown engine {name!r}; choose one of {', '.join(ENGINES)} "
            f"(or {', '.join(sorted(ENGINE_ALIASES))})"
        )
    return ENGINES[key]


def default_engine(hw: HardwareEntry) -> str:
    return str(DEFAULTS["engine_cloud"] if hw.device_class == "cloud" else DEFAULTS["engine_other"])


@dataclass(frozen=True)
class Scenario:
    """One serving scenario; ``validated()`` raises ``ValueError`` naming the field."""

    kind: Kind = "llm"
    input_tokens: int = 256
    output_tokens: int = 256
    batch_size: int = 1
    num_devices: int = 1
    precision: str = "fp16"
    engine: str = "vllm"
    diffusion_steps: int = 30
    image_resolution: int = 1024
    audio_seconds: float = 30.0
    guidance: bool = True
    utilisation: float | None = None
    assumed: tuple[str, ...] = ()  # fields taken from the defaults

    def validated(self) -> Scenario:
        if self.kind not in ("llm", "diffusion", "asr"):
            raise ValueError(f"kind: expected llm, diffusion or asr, got {self.kind!r}")
        for name in ("input_tokens", "batch_size", "num_devices", "diffusion_steps", "image_resolution"):
            _whole(name, getattr(self, name), 1)
        _whole("output_tokens", self.output_tokens, 0)
        if self.image_resolution % 8:
            raise ValueError(f"image_resolution: must be a multiple of 8 pixels, got {self.image_resolution}")
        if isinstance(self.audio_seconds, bool) or not (
            isinstance(self.audio_seconds, int | float) and 0 < self.audio_seconds < 1e7
        ):
            raise ValueError(
                f"audio_seconds: expected a positive number of seconds, got {self.audio_seconds!r}"
            )
        tf.bytes_per_value(self.precision)  # raises naming the precision
        resolve_engine(self.engine)
        if self.utilisation is not None and not 0 <= self.utilisation <= 1:
            raise ValueError(f"utilisation: expected a number between 0 and 1, got {self.utilisation!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The fields that apply to this kind of request (no token counts for an image, ...)."""
        d = asdict(self)
        d["assumed"] = list(self.assumed)
        return {k: v for k, v in d.items() if _relevant(self.kind, k)}


def _whole(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: expected a whole number >= {low}, got {value!r}")


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    flops: float
    bytes: float
    bound: str
    overhead_s: float = 0.0  # part of ``seconds`` spent on fixed costs (launches, scheduling)


@dataclass(frozen=True)
class ServingEstimate:
    scenario: Scenario
    device: str
    num_devices: int
    engine: Engine
    phases: tuple[Phase, ...]
    batch_seconds: float
    power_w: float  # all devices together
    utilisation: float
    weights_gb: float
    kv_cache_gb: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def latency_per_inference_s(self) -> float:
        return self.batch_seconds

    @property
    def energy_per_batch_j(self) -> float:
        return self.power_w * self.batch_seconds

    @property
    def energy_per_inference_j(self) -> float:
        return self.energy_per_batch_j / self.scenario.batch_size

    @property
    def memory_gb(self) -> float:
        return self.weights_gb + self.kv_cache_gb

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "analytic serving estimate (sustainml.estimate.serving)",
            "scenario": self.scenario.to_dict(),
            "device": self.device,
            "num_devices": self.num_devices,
            "engine": asdict(self.engine),
            "phases": [asdict(p) for p in self.phases],
            "batch_seconds": self.batch_seconds,
            "latency_per_inference_s": self.latency_per_inference_s,
            "energy_per_inference_j": self.energy_per_inference_j,
            "energy_per_batch_j": self.energy_per_batch_j,
            "power_w_all_devices": self.power_w,
            "utilisation": self.utilisation,
            "weights_gb": self.weights_gb,
            "kv_cache_gb": self.kv_cache_gb,
            "memory_gb_per_device": self.memory_gb / self.num_devices,
            "notes": list(self.notes),
        }


def _rates(hw: HardwareEntry, precision: str) -> tuple[float, float]:
    peak_precision = {"fp8": "int8"}.get(precision, precision)
    peak = float(hw.peak_flops.get(peak_precision) or hw.peak_flops.get("fp16") or hw.peak_flops["fp32"])
    return peak, float(hw.memory_bandwidth_gbs) * 1e9


def _phase(name: str, flops: float, nbytes: float, n: int, peak: float, bw: float, eng: Engine) -> Phase:
    t_c = flops / (n * peak * eng.compute)
    t_m = nbytes / (n * bw * eng.memory)
    return Phase(name, max(t_c, t_m), flops, nbytes, "compute" if t_c >= t_m else "memory")


def _allreduce_s(layers: int, batch_tokens: int, hidden: int, n: int) -> float:
    if n <= 1:
        return 0.0
    message = batch_tokens * hidden * 2.0
    return 2 * layers * (ALLREDUCE_LATENCY_S + 2 * (n - 1) / n * message / LINK_BANDWIDTH_BYTES_S)


#: Utilisation of the idle-to-TDP range while the device is compute-bound, memory-bound, or
#: waiting on fixed costs (launches, scheduling); the serving estimate weights them by time.
UTILISATION_BY_BOUND: Final[dict[str, float]] = {"compute": 0.85, "memory": 0.65, "overhead": 0.45}


def utilisation_of(phases: tuple[Phase, ...] | list[Phase]) -> float:
    """Time-weighted utilisation of ``phases`` (``UTILISATION_BY_BOUND``)."""
    total = sum(p.seconds for p in phases)
    if total <= 0:
        return UTILISATION_BY_BOUND["memory"]
    busy = sum(
        (p.seconds - p.overhead_s) * UTILISATION_BY_BOUND[p.bound]
        + p.overhead_s * UTILISATION_BY_BOUND["overhead"]
        for p in phases
    )
    return busy / total


def _power(hw: HardwareEntry, sc: Scenario, phases: tuple[Phase, ...] | list[Phase]) -> tuple[float, float]:
    u = sc.utilisation if sc.utilisation is not None else utilisation_of(phases)
    return pw.device_power_w(hw, u) * sc.num_devices, u


def estimate_llm(spec: tf.TransformerSpec, hw: HardwareEntry, sc: Scenario) -> ServingEstimate:
    """Prefill + decode of a language model (``spec``) for ``sc`` on ``sc.num_devices`` x ``hw``."""
    sc = sc.validated()
    eng = resolve_engine(sc.engine)
    peak, bw = _rates(hw, sc.precision)
    n, b = sc.num_devices, sc.batch_size
    w_bytes = spec.weights_bytes(sc.precision)
    prefill = _phase("prefill", spec.prefill_flops(sc.input_tokens) * b, w_bytes, n, peak, bw, eng)
    layers = spec.n_decoder_layers or spec.layers
    comm = _allreduce_s(layers, b * sc.input_tokens, spec.hidden, n)
    prefill = Phase(prefill.name, prefill.seconds + comm, prefill.flops, prefill.bytes, prefill.bound, comm)
    phases = [prefill]
    kv_gb = 0.0
    if sc.output_tokens:
        encoder_tokens = sc.input_tokens if spec.kind == "encoder-decoder" else 0
        start = 1 if spec.kind == "encoder-decoder" else sc.input_tokens
        mean_context = start + (sc.output_tokens - 1) // 2
        step = spec.decode_step(mean_context, batch=b, precision=sc.precision, encoder_tokens=encoder_tokens)
        one = _phase("decode step", step.flops, step.bytes, n, peak, bw, eng)
        fixed = (
            layers * eng.step_overhead_per_layer_s
            + b * eng.step_overhead_per_sequence_s
            + (n - 1) * eng.step_overhead_per_extra_device_s
            + _allreduce_s(layers, b, spec.hidden, n)
        )
        phases.append(
            Phase(
                f"decode ({sc.output_tokens} steps)",
                (one.seconds + fixed) * sc.output_tokens,
                step.flops * sc.output_tokens,
                step.bytes * sc.output_tokens,
                one.bound,
                fixed * sc.output_tokens,
            )
        )
        kv_gb = spec.kv_cache_bytes_per_token(sc.precision) * b * (start + sc.output_tokens) / 1e9
    total = sum(p.seconds for p in phases)
    power, u = _power(hw, sc, phases)
    return ServingEstimate(sc, hw.name, n, eng, tuple(phases), total, power, u, w_bytes / 1e9, kv_gb)


@dataclass(frozen=True)
class DiffusionModel:
    """MACs of one denoiser pass at ``reference_latent`` pixels (side), plus optional parts."""

    denoiser_macs: float
    denoiser_parameters: float
    reference_latent: int  # latent side the MACs are given at (e.g. 128 for SDXL at 1024 px)
    vae_factor: int = 8  # image pixels per latent pixel (side)
    text_encoder_macs: float = 0.0
    vae_decoder_macs: float = 0.0  # at the reference latent
    other_parameters: float = 0.0
    kernels_per_pass: int = KERNELS_PER_DENOISER_PASS


def estimate_diffusion(model: DiffusionModel, hw: HardwareEntry, sc: Scenario) -> ServingEstimate:
    sc = sc.validated()
    eng = resolve_engine(sc.engine)
    peak, bw = _rates(hw, sc.precision)
    n, b = sc.num_devices, sc.batch_size
    latent = sc.image_resolution / model.vae_factor
    scale = (latent / model.reference_latent) ** 2
    passes = CFG_PASSES if sc.guidance else 1
    wb = tf.bytes_per_value(sc.precision)
    step_flops = 2.0 * model.denoiser_macs * scale * passes * b
    one = _phase("denoiser step", step_flops, model.denoiser_parameters * wb, n, peak, bw, eng)
    launches = model.kernels_per_pass * eng.op_overhead_s
    phases = [
        Phase(
            f"denoise ({sc.diffusion_steps} steps)",
            (one.seconds + launches) * sc.diffusion_steps,
            step_flops * sc.diffusion_steps,
            one.bytes * sc.diffusion_steps,
            one.bound,
            launches * sc.diffusion_steps,
        )
    ]
    if model.text_encoder_macs:
        phases.append(
            _phase("text encoder", 2.0 * model.text_encoder_macs * passes * b, 0.0, n, peak, bw, eng)
        )
    if model.vae_decoder_macs:
        phases.append(_phase("VAE decoder", 2.0 * model.vae_decoder_macs * scale * b, 0.0, n, peak, bw, eng))
    total = sum(p.seconds for p in phases)
    power, u = _power(hw, sc, phases)
    weights = (model.denoiser_parameters + model.other_parameters) * wb / 1e9
    notes = (
        "attention's quadratic cost is scaled like the convolutions (optimistic above the reference size)",
    )
    return ServingEstimate(sc, hw.name, n, eng, tuple(phases), total, power, u, weights, 0.0, notes)


def estimate_asr(spec: tf.TransformerSpec, hw: HardwareEntry, sc: Scenario) -> ServingEstimate:
    """Whisper-style transcription of ``sc.audio_seconds`` per request."""
    sc = sc.validated()
    if spec.kind != "encoder-decoder":
        raise ValueError("architecture.kind: speech recognition needs an encoder-decoder architecture")
    windows = max(1, math.ceil(sc.audio_seconds / WHISPER_WINDOW_S - 1e-9))
    tokens = max(1, round(min(sc.audio_seconds, WHISPER_WINDOW_S) * TOKENS_PER_AUDIO_SECOND))
    frames = spec.encoder_context or 1500
    per_window = estimate_llm(
        spec,
        hw,
        Scenario(
            "llm",
            frames,
            tokens,
            sc.batch_size,
            sc.num_devices,
            sc.precision,
            sc.engine,
            utilisation=sc.utilisation,
        ),
    )
    phases = tuple(
        Phase(
            f"{p.name} x {windows} windows",
            p.seconds * windows,
            p.flops * windows,
            p.bytes * windows,
            p.bound,
        )
        for p in per_window.phases
    )
    total = per_window.batch_seconds * windows
    notes = (
        f"{windows} window(s) of {WHISPER_WINDOW_S:g} s; {tokens} transcript tokens per window "
        f"({TOKENS_PER_AUDIO_SECOND:.2f} tokens per second of speech, assumption)",
    )
    return ServingEstimate(
        sc,
        hw.name,
        sc.num_devices,
        per_window.engine,
        phases,
        total,
        per_window.power_w,
        per_window.utilisation,
        per_window.weights_gb,
        per_window.kv_cache_gb,
        notes,
    )


_llm_memo: dict[tuple[tf.TransformerSpec, str, Scenario], ServingEstimate] = {}
_MEMO_SIZE: Final = 256


def cached_llm(spec: tf.TransformerSpec, hw: HardwareEntry, sc: Scenario) -> ServingEstimate:
    """``estimate_llm`` memoised on (model, device name, scenario)."""
    key = (spec, hw.name, sc)
    hit = _llm_memo.get(key)
    if hit is None:
        hit = estimate_llm(spec, hw, sc)
        if len(_llm_memo) >= _MEMO_SIZE:
            _llm_memo.pop(next(iter(_llm_memo)))
        _llm_memo[key] = hit
    return hit


def spec_of(architecture: Mapping[str, Any], where: str = "architecture") -> tf.TransformerSpec:
    return _spec_cached(tuple(sorted((k, _freeze(v)) for k, v in architecture.items())), where)


def _freeze(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


@lru_cache(maxsize=128)
def _spec_cached(items: tuple[tuple[str, Any], ...], where: str) -> tf.TransformerSpec:
    return tf.from_architecture(dict(items), where=where)


# ------------------------------------------------------------------------------------------------
# Inputs of a scenario, as HW_RESOURCES reads them
# ------------------------------------------------------------------------------------------------

_INT_KEYS: Final = (
    "input_tokens",
    "output_tokens",
    "batch_size",
    "num_devices",
    "tensor_parallel",
    "pipeline_parallel",
    "diffusion_steps",
    "image_resolution",
)
#: Scenario keys read from the explicit ``extra_data`` and from the extracted requirements.
INPUT_KEYS: Final = (
    *_INT_KEYS,
    "precision",
    "serving_engine",
    "audio_seconds",
    "audio_seconds_per_day",
    "requests_per_s",
    "guidance",
)


def read_inputs(explicit: Mapping[str, Any], requirements: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """The scenario keys present, each as ``(value, where it came from)``: ``explicit``
    (``extra_data``) wins over ``requirements`` (extracted from the text). Raises ``ValueError``
    naming the key on a value of the wrong type or range."""
    out: dict[str, tuple[Any, str]] = {}
    for key in INPUT_KEYS:
        for source, where in ((explicit, "extra_data"), (requirements, "requirements")):
            if key in source and source[key] is not None:
                out[key] = (_checked(key, source[key], f"{where}.{key}"), f"{where}.{key}")
                break
    if "audio_seconds" not in out and "audio_seconds_per_day" in out:
        # a daily volume and no request length: the day's audio is costed as one request
        value, where = out["audio_seconds_per_day"]
        out["audio_seconds"] = (value, f"{where} (the day's audio as one request)")
    return out


def _checked(key: str, value: Any, where: str) -> Any:
    if key in _INT_KEYS:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        low = 0 if key == "output_tokens" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{where}: expected a whole number >= {low}, got {value!r}")
        if key == "image_resolution" and value % 8:
            raise ValueError(f"{where}: must be a multiple of 8 pixels, got {value}")
        return value
    if key in ("audio_seconds", "audio_seconds_per_day", "requests_per_s"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
            raise ValueError(f"{where}: expected a positive number, got {value!r}")
        return float(value)
    if key == "guidance":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if key == "precision":
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a precision name, got {value!r}")
        try:
            tf.bytes_per_value(value)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        return value.lower()
    if key == "serving_engine":
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected an engine name, got {value!r}")
        try:
            return resolve_engine(value).name
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return value


def build_scenario(
    kind: Kind,
    inputs: Mapping[str, tuple[Any, str]],
    hw: HardwareEntry,
    goal: str = "",
    utilisation: float | None = None,
) -> Scenario:
    """A validated ``Scenario`` from ``read_inputs``' result, defaults filled and listed in
    ``assumed``. ``num_devices`` is the tensor-parallel degree (``tensor_parallel`` x
    ``pipeline_parallel`` when those are given: pipeline stages are costed like tensor-parallel
    shards, an optimistic simplification stated in the notes)."""
    assumed: list[str] = []

    def get(key: str, default: Any) -> Any:
        if key in inputs:
            return inputs[key][0]
        assumed.append(key)
        return default

    tokens_in, tokens_out = TOKENS_BY_GOAL.get(goal, (DEFAULTS["input_tokens"], DEFAULTS["output_tokens"]))
    devices = inputs["num_devices"][0] if "num_devices" in inputs else None
    tp = inputs["tensor_parallel"][0] if "tensor_parallel" in inputs else None
    pp = inputs["pipeline_parallel"][0] if "pipeline_parallel" in inputs else 1
    if tp is not None or "pipeline_parallel" in inputs:
        parallel = (tp or 1) * pp
        if devices is not None and devices != parallel:
            raise ValueError(
                f"num_devices: {devices} devices but tensor_parallel x pipeline_parallel = {parallel}"
            )
        devices = parallel
    if devices is None:
        assumed.append("num_devices")
        devices = 1
    return Scenario(
        kind=kind,
        input_tokens=get("input_tokens", tokens_in),
        output_tokens=get("output_tokens", tokens_out if kind == "llm" else 0),
        batch_size=get("batch_size", DEFAULTS["batch_size"]),
        num_devices=devices,
        precision=get("precision", DEFAULTS["precision"]),
        engine=get("serving_engine", default_engine(hw) if kind == "llm" else "eager"),
        diffusion_steps=get("diffusion_steps", DEFAULTS["diffusion_steps"]) if kind == "diffusion" else 30,
        image_resolution=get("image_resolution", DEFAULTS["image_resolution"])
        if kind == "diffusion"
        else 1024,
        audio_seconds=get("audio_seconds", DEFAULTS["audio_seconds"]) if kind == "asr" else 30.0,
        guidance=get("guidance", DEFAULTS["guidance"]) if kind == "diffusion" else True,
        utilisation=utilisation,
        assumed=tuple(k for k in assumed if _relevant(kind, k)),
    ).validated()


def _relevant(kind: Kind, key: str) -> bool:
    if key in ("diffusion_steps", "image_resolution", "guidance"):
        return kind == "diffusion"
    if key == "audio_seconds":
        return kind == "asr"
    if key in ("input_tokens", "output_tokens"):
        return kind == "llm"
    return True


def architecture_from_builder(builder: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
    """The transformer shape of a catalogue graph builder's arguments (GPT-2, Whisper, BART), so
    a graph model that generates is costed per answer too; ``None`` for other builders. Defaults
    are the builders' own (GPT-2 small, Whisper tiny)."""
    if builder == "gpt2":
        dim = int(args.get("dim", 768))
        return {
            "layers": int(args.get("layers", 12)),
            "hidden": dim,
            "heads": int(args.get("heads", 12)),
            "ffn": 4 * dim,
            "vocab": int(args.get("vocab", 50257)),
            "context": int(args.get("max_pos", 1024)),
            "ffn_kind": "gelu",
            "bias": True,
            "positions": "learned",
        }
    if builder == "whisper":
        dim, layers = int(args.get("dim", 384)), int(args.get("layers", 4))
        return {
            "kind": "encoder-decoder",
            "layers": 2 * layers,
            "encoder_layers": layers,
            "decoder_layers": layers,
            "hidden": dim,
            "heads": int(args.get("heads", 6)),
            "ffn": 4 * dim,
            "vocab": int(args.get("vocab", 51865)),
            "context": int(args.get("max_target", 448)),
            "encoder_context": 1500,
            "ffn_kind": "gelu",
            "bias": True,
            "positions": "learned",
        }
    if builder == "bart" and "enc_layers" in args:
        enc, dec = int(args["enc_layers"]), int(args["dec_layers"])
        return {
            "kind": "encoder-decoder",
            "layers": enc + dec,
            "encoder_layers": enc,
            "decoder_layers": dec,
            "hidden": int(args["dim"]),
            "heads": int(args["heads"]),
            "ffn": int(args["ff"]),
            "vocab": int(args["vocab"]),
            "context": int(args.get("max_pos", 1024)),
            "ffn_kind": "gelu",
            "bias": True,
            "positions": "learned",
        }
    return None


def diffusion_model_of(spec: Mapping[str, Any], where: str = "diffusion_model") -> DiffusionModel:
    """A ``DiffusionModel`` from an object with ``denoiser_macs``, ``denoiser_parameters``,
    ``reference_latent`` and optionally ``vae_factor``, ``text_encoder_macs``,
    ``vae_decoder_macs``, ``other_parameters``; ``ValueError`` naming the field."""
    known = {f for f in DiffusionModel.__dataclass_fields__}
    unknown = sorted(set(spec) - known - {"source", "note"})
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for name in known:
        if name not in spec:
            continue
        v = spec[name]
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
            raise ValueError(f"{where}.{name}: expected a non-negative number, got {v!r}")
        values[name] = int(v) if name in ("reference_latent", "vae_factor", "kernels_per_pass") else float(v)
    for name in ("denoiser_macs", "denoiser_parameters", "reference_latent"):
        if not values.get(name):
            raise ValueError(f"{where}.{name}: required (a positive number)")
    return DiffusionModel(**values)


def diffusion_from_components(
    components: Sequence[Any], input_shape: Sequence[int], name: str = ""
) -> DiffusionModel | None:
    """A ``DiffusionModel`` from a catalogue pipeline's components (objects with ``name``,
    ``parameters``, ``runs`` = per-step / once, ``macs`` at the entry's reference input, and an
    optional transformer ``architecture``); ``None`` when no component runs per step. The
    reference latent is the last dimension of ``input_shape`` (``(1, channels, side, side)``); a
    text encoder with an architecture and no MACs is costed over 77 tokens."""
    per_step = [c for c in components if getattr(c, "runs", "") == "per-step" and getattr(c, "macs", 0)]
    if not per_step or len(input_shape) != 4:
        return None
    denoiser = per_step[0]
    text_macs = vae_macs = other = 0.0
    for c in components:
        if c is denoiser:
            continue
        other += float(c.parameters)
        label = str(getattr(c, "name", "")).casefold()
        macs = float(getattr(c, "macs", 0) or 0)
        arch = getattr(c, "architecture", None)
        if "vae" in label or ("decoder" in label and "text" not in label):
            vae_macs += macs
        elif "text" in label:
            if not macs and isinstance(arch, Mapping):
                macs = tf.from_architecture(arch, where=f"{name} {label}").prefill_flops(77) / 2
            text_macs += macs
    return DiffusionModel(
        denoiser_macs=float(denoiser.macs),
        denoiser_parameters=float(denoiser.parameters),
        reference_latent=int(input_shape[-1]),
        text_encoder_macs=text_macs,
        vae_decoder_macs=vae_macs,
        other_parameters=other,
    )


__all__ = [
    "DEFAULTS",
    "ENGINES",
    "ENGINE_ALIASES",
    "INPUT_KEYS",
    "TOKENS_BY_GOAL",
    "DiffusionModel",
    "Engine",
    "Phase",
    "Scenario",
    "ServingEstimate",
    "architecture_from_builder",
    "build_scenario",
    "cached_llm",
    "default_engine",
    "diffusion_from_components",
    "diffusion_model_of",
    "estimate_asr",
    "estimate_diffusion",
    "estimate_llm",
    "read_inputs",
    "resolve_engine",
    "spec_of",
]
