"""What one request is and how it is served: ``Scenario``, the serving engines and the defaults.

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

Defaults (``DEFAULTS``, stated in every result): chat / text generation 256 input and 256 output
tokens; summarisation 1024 in, 128 out; translation 128 in, 128 out; batch 1; one device;
fp16; engine ``vllm`` on cloud GPUs, ``eager`` elsewhere; diffusion 30 steps at 1024 px (SDXL's
default resolution; 512 px for SD 1.x/2.x), guidance on; speech recognition 30 s of audio.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from sustainml.catalogue.schema import HardwareEntry
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
        return {k: v for k, v in d.items() if applies_to(self.kind, k)}


def _whole(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: expected a whole number >= {low}, got {value!r}")


def applies_to(kind: Kind, key: str) -> bool:
    if key in ("diffusion_steps", "image_resolution", "guidance"):
        return kind == "diffusion"
    if key == "audio_seconds":
        return kind == "asr"
    if key in ("input_tokens", "output_tokens"):
        return kind == "llm"
    return True
