"""ML_MODEL: assessing one candidate: the memory it needs, its screening latency and energy on
the allowed devices, and the constraint that excludes it."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from sustainml.catalogue import HardwareEntry, ModelEntry
from sustainml.estimate import memo
from sustainml.estimate import power as pw
from sustainml.estimate import roofline as rl
from sustainml.estimate import transformer as tfm
from sustainml.estimate.efficiency import Efficiency
from sustainml.workers.logic.ml_model.reasons import why
from sustainml.workers.logic.ml_model.rules import (
    DEFAULT_OUTPUT_TOKENS,
    DEFAULT_TRAINING_SEQUENCE,
    QUALITY_REQUIREMENTS,
    TRAINING_UNSUITED_CLASSES,
    generative,
)

if TYPE_CHECKING:
    from sustainml.workers.logic.ml_model.context import Context


@dataclass(frozen=True)
class DeviceFit:
    hw: HardwareEntry
    latency_s: float
    power_w: float
    fits_memory: bool
    method: str = "whole-model roofline from catalogue MACs (HW_RESOURCES refines per operator)"

    @property
    def energy_per_batch_j(self) -> float:
        return self.power_w * self.latency_s


@dataclass
class Assessment:
    entry: ModelEntry
    weights_mb: float
    device: DeviceFit | None  # the model's device (lowest energy among feasible ones)
    batch: int
    exclusion: tuple[str, str] | None  # (constraint, reason)
    quality_norm: float = 0.0
    energy_norm: float = 0.0
    score: float = 0.0
    precision: str = "fp32"
    memory_mb: float = 0.0  # what must fit the devices: training state, or weights (+ KV cache)
    memory_what: str = "weights"
    per: str = "inference"  # what the energy is per: inference, or answer (generated)
    relax: dict[str, Any] = field(default_factory=dict)  # need/limit of the exclusion, for NO_MODEL
    comparable: bool = False  # its quality figure is on the ranking's reference scale

    @property
    def energy_j(self) -> float:
        """Energy per inference (J) on the model's device."""
        return self.device.energy_per_batch_j / self.batch if self.device is not None else math.inf

    def figures(self) -> dict[str, Any]:
        q = self.entry.quality
        out: dict[str, Any] = {
            "parameters": self.entry.parameters,
            "macs": self.entry.macs,
            "weights_mb": self.weights_mb,
            "precision": self.precision,
            "memory_mb": self.memory_mb,
            "memory_counted": self.memory_what,
            "quality": {"metric": q.metric, "value": q.value, "dataset": q.dataset},
        }
        if self.entry.active_parameters:
            out["active_parameters"] = self.entry.active_parameters
        if self.device is not None:
            out.update(
                {
                    "device": self.device.hw.name,
                    "quick_latency_s": self.device.latency_s,
                    "power_w": self.device.power_w,
                    "energy_per_inference_j": self.energy_j,
                    "energy_per": self.per,
                    "method": self.device.method,
                }
            )
        return out

    def to_json(self, rank: int, top: Assessment) -> dict[str, Any]:
        return {
            "rank": rank,
            "name": self.entry.name,
            "family": self.entry.family,
            "score": round(self.score, 6),
            "quality_norm": round(self.quality_norm, 6),
            "energy_norm": round(self.energy_norm, 6),
            **self.figures(),
            "why": why(self, rank, top),
        }


def assess(entry: ModelEntry, ctx: Context) -> Assessment:
    precision = ctx.precision_for(entry)
    weights_mb = entry.parameters * rl.PRECISION_BYTES[precision] / 1e6
    a = Assessment(entry, weights_mb, None, ctx.batch, None, precision=precision)
    a.memory_mb, a.memory_what = memory_needed_mb(entry, ctx, precision)
    a.per = "answer" if generative(entry, ctx.goal) else "inference"
    if ctx.max_parameters is not None and entry.parameters > ctx.max_parameters:
        a.exclusion = (
            "max_parameters",
            f"{entry.parameters / 1e6:.3g} M parameters > max_parameters {ctx.max_parameters / 1e6:.3g} M",
        )
        a.relax = {"_need": float(entry.parameters), "_limit": ctx.max_parameters, "_unit": "parameters"}
        return a
    if ctx.memory_limit_mb is not None and weights_mb > ctx.memory_limit_mb:
        a.exclusion = (
            "memory",
            f"{precision} weights {weights_mb:.1f} MB > limit {ctx.memory_limit_mb:g} MB "
            f"({ctx.memory_source})",
        )
        a.relax = {"_need": weights_mb, "_limit": ctx.memory_limit_mb, "_unit": "MB"}
        return a
    quality = quality_violation(entry, ctx.quality_limits)
    if quality is not None:
        a.exclusion = quality
        return a
    if not ctx.devices:
        return a
    fits = device_fits(entry, ctx, precision, a.memory_mb)
    in_memory = [f for f in fits if f.fits_memory]
    if not in_memory:
        largest = relaxation_device(ctx)
        constraint = "deployment" if ctx.auto and ctx.deployment else "device memory"
        where = (
            f"any {ctx.deployment} device"
            if constraint == "deployment"
            else "the memory of any allowed device"
        )
        count = f"{ctx.num_devices} x " if ctx.num_devices > 1 else ""
        a.exclusion = (
            constraint,
            f"{a.memory_what} {a.memory_mb:.1f} MB do not fit {where} (largest: {count}{largest.name}, "
            f"{ctx.num_devices * largest.memory_gb * 1000:g} MB)",
        )
        a.relax = {
            "_need": a.memory_mb,
            "_limit": ctx.num_devices * largest.memory_gb * 1000.0,
            "_unit": "MB",
            "_device": largest.name,
            "_device_mb": largest.memory_gb * 1000.0,
        }
        return a
    meeting = in_memory
    if ctx.max_latency_s is not None:
        meeting = [f for f in in_memory if f.latency_s <= ctx.max_latency_s]
        if not meeting:
            fastest = min(in_memory, key=lambda f: (f.latency_s, f.hw.name))
            a.exclusion = (
                "latency",
                f"estimated {fastest.latency_s * 1000:.3g} ms for a batch of {ctx.batch} on "
                f"{fastest.hw.name} (fastest allowed device) > max_latency_ms {ctx.max_latency_s * 1000:g}",
            )
            a.relax = {"_need": fastest.latency_s * 1000, "_limit": ctx.max_latency_s * 1000, "_unit": "ms"}
            return a
    if ctx.max_power_w is not None:
        within = [f for f in meeting if f.power_w <= ctx.max_power_w]
        if not within:
            frugal = min(meeting, key=lambda f: (f.power_w, f.hw.name))
            a.exclusion = (
                "power",
                f"{frugal.power_w:.3g} W on {frugal.hw.name} > max_power_w {ctx.max_power_w:g}",
            )
            a.relax = {"_need": frugal.power_w, "_limit": ctx.max_power_w, "_unit": "W"}
            return a
        meeting = within
    a.device = min(meeting, key=lambda f: (f.energy_per_batch_j, f.latency_s, f.hw.name))
    return a


def relaxation_device(ctx: Context) -> HardwareEntry:
    """The device a memory relaxation counts in: the allowed device with the most memory (the
    fewest devices). For training, among accelerators only: a CPU's large memory would make "3 x
    EPYC" the smallest change for pre-training a 175B model, which nobody would run."""
    pool = [d for d in ctx.devices if d.device_class not in TRAINING_UNSUITED_CLASSES] if ctx.training else []
    return max(pool or ctx.devices, key=lambda d: d.memory_gb)


def memory_needed_mb(entry: ModelEntry, ctx: Context, precision: str) -> tuple[float, str]:
    """(MB that must fit the devices, what it counts). Training: mixed-precision Adam state plus
    activations (``TransformerSpec.training_memory``; 16 bytes per parameter for other models).
    Inference: the weights, plus the KV cache of one batch for a generative transformer."""
    spec = entry.transformer
    if ctx.training:
        if spec is not None:
            seq = min(spec.context, ctx.input_tokens or DEFAULT_TRAINING_SEQUENCE)
            mem = spec.training_memory(batch=ctx.batch, sequence=max(seq, 1))
            return mem.total / 1e6, "training memory (weights, gradients, Adam states, activations)"
        return (
            entry.parameters * tfm.ADAM_MIXED_BYTES_PER_PARAM / 1e6,
            "training memory (16 bytes per parameter)",
        )
    weights = entry.parameters * rl.PRECISION_BYTES[precision] / 1e6
    if spec is not None and generative(entry, ctx.goal):
        tokens = (ctx.input_tokens or entry.input_shape[-1]) + (
            ctx.output_tokens or DEFAULT_OUTPUT_TOKENS.get(ctx.goal, 128)
        )
        tokens = min(tokens, spec.context) if spec.kind == "decoder" else tokens
        kv = spec.kv_cache_bytes_per_token(precision) * tokens * ctx.batch / 1e6
        return weights + kv, f"{precision} weights + KV cache of {tokens} tokens x batch {ctx.batch}"
    return weights, f"{precision} weights"


def answer_seconds(
    entry: ModelEntry, hw: HardwareEntry, ctx: Context, precision: str, eff: Efficiency | None = None
) -> tuple[float, str]:
    """Screening latency of one batch on ``ctx.num_devices`` x ``hw`` (ideal sharding), and the method.

    Generative transformers: prefill of the input, then one decode step per generated token at the
    middle context, each step bounded by compute or by reading the weights and KV cache (the
    transformer module's figures). Pipelines (diffusion): the parts run once plus the per-step part
    x ``diffusion_steps``. Everything else: the whole-model roofline of the catalogue MACs."""
    eff = eff or rl.efficiency_for(hw, ctx.estimation.data_dir)
    peak, bandwidth = rl.device_rates(hw, precision)
    peak *= ctx.num_devices
    bandwidth *= ctx.num_devices
    spec = entry.transformer
    if spec is not None and generative(entry, ctx.goal):
        n_out = ctx.output_tokens or DEFAULT_OUTPUT_TOKENS.get(ctx.goal, 128)
        if spec.kind == "encoder-decoder" and spec.encoder_context:
            n_in = spec.encoder_context  # speech: 30 s of audio frames per window
        else:
            n_in = ctx.input_tokens or entry.input_shape[-1]
            if spec.kind == "decoder":
                n_in = min(n_in, spec.context)
        weights = spec.weights_bytes(precision, active=spec.experts > 1)
        prefill = max(
            spec.prefill_flops(n_in) * ctx.batch / (peak * eff.compute), weights / (bandwidth * eff.memory)
        )
        mid = (n_in if spec.kind == "decoder" else 1) + n_out // 2
        step = spec.decode_step(
            mid,
            batch=ctx.batch,
            precision=precision,
            encoder_tokens=n_in if spec.kind == "encoder-decoder" else 0,
        )
        decode = max(step.flops / (peak * eff.compute), step.bytes / (bandwidth * eff.memory))
        once = (
            sum(c.macs for c in entry.components if c.runs == "once") * 2.0 * ctx.batch / (peak * eff.compute)
        )
        return prefill + n_out * decode + once, (
            f"per answer: prefill {n_in} tokens + {n_out} generated tokens (memory-bound decode), "
            f"{precision}, {ctx.num_devices} x {hw.name}"
        )
    macs = float(entry.macs)
    method = "whole-model roofline from catalogue MACs (HW_RESOURCES refines per operator)"
    if any(c.runs == "per-step" for c in entry.components):
        once_macs = sum(c.macs for c in entry.components if c.runs == "once")
        step_macs = sum(c.macs for c in entry.components if c.runs == "per-step")
        macs = once_macs + step_macs * ctx.diffusion_steps
        method = f"per image: {ctx.diffusion_steps} denoising steps + text encoders and VAE once"
    quick = rl.quick_estimate(macs, entry.parameters, hw, ctx.batch, precision, eff)
    return quick.latency_s / ctx.num_devices if ctx.num_devices > 1 else quick.latency_s, method


#: Screening fits of (model, the task's devices, precision, memory need, task shape): the same
#: catalogue models are screened on the same devices task after task.
_fits: Final = memo.Memo[tuple[DeviceFit, ...]]("ml_model.device_fits", 4096)


def device_fits(entry: ModelEntry, ctx: Context, precision: str, memory_mb: float) -> tuple[DeviceFit, ...]:
    """``device_fit`` on each of the task's devices, in their order (memoised)."""
    # Every input of answer_seconds and of the power and memory checks, nothing else.
    key = (precision, memory_mb, ctx.screening_key())
    return _fits.get(
        key,
        lambda: tuple(
            _fit(entry, d, ctx, precision, memory_mb, eff)
            for d, eff in zip(ctx.devices, ctx.efficiencies, strict=True)
        ),
        (entry, *ctx.devices),
    )


def device_fit(
    entry: ModelEntry,
    device: HardwareEntry,
    ctx: Context,
    precision: str | None = None,
    memory_mb: float | None = None,
) -> DeviceFit:
    precision = precision or ctx.precision_for(entry)
    need = memory_mb if memory_mb is not None else memory_needed_mb(entry, ctx, precision)[0]
    return _fit(entry, device, ctx, precision, need, None)


def _fit(
    entry: ModelEntry,
    device: HardwareEntry,
    ctx: Context,
    precision: str,
    need: float,
    eff: Efficiency | None,
) -> DeviceFit:
    latency, method = answer_seconds(entry, device, ctx, precision, eff)
    power = pw.device_power_w(device, pw.default_utilisation(device.device_class)) * ctx.num_devices
    return DeviceFit(device, latency, power, need <= ctx.num_devices * device.memory_gb * 1000.0, method)


def _comparable_value(metric: str, value: float, words_: tuple[str, ...]) -> float | None:
    tokens = set(re.findall(r"[a-z0-9]+", metric.casefold()))
    if not tokens & set(words_):
        return None
    return value / 100.0 if value > 1.0 else value


def quality_violation(entry: ModelEntry, limits: Mapping[str, float]) -> tuple[str, str] | None:
    q = entry.quality
    for key, bound in sorted(limits.items()):
        words_, lower_better = QUALITY_REQUIREMENTS[key]
        value = _comparable_value(q.metric, q.value, words_)
        if value is None:
            continue
        if (lower_better and value > bound) or (not lower_better and value < bound):
            return "quality", f"{q.metric} {q.value:g} on {q.dataset} does not meet {key}={bound:g}"
    return None
