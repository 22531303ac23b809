"""Serving a diffusion model: ``steps x denoiser`` at the latent of the requested resolution (the
denoiser's MACs at its reference latent, scaled by the pixel ratio: convolutions and linear layers
scale with the pixels; attention's quadratic part is not scaled up, so large resolutions are
optimistic), x 2 for classifier-free guidance (two denoiser passes per step, Ho & Salimans 2022,
arXiv:2207.12598), plus one text-encoder and one VAE-decoder pass when their MACs are known; each at
``max(compute, weights)`` with the engine's compute efficiency, plus the engine's cost per kernel x
the kernels of one U-Net pass per step (``KERNELS_PER_DENOISER_PASS`` unless stated: eager diffusers
at batch 1 on an H100 is launch-bound)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sustainml.catalogue.schema import HardwareEntry
from sustainml.estimate import transformer as tf
from sustainml.estimate.serving.phases import (
    Phase,
    ServingEstimate,
    peak_rates,
    power_and_utilisation,
    roofline_phase,
)
from sustainml.estimate.serving.scenario import Scenario, resolve_engine

#: Classifier-free guidance: two denoiser passes per step.
CFG_PASSES: Final = 2
#: Kernels of one U-Net pass when not stated: the SD 2.1 U-Net graph built by sustainml.onnxgraphs
#: has 1,296 operators that do work (pays the engine's per-kernel cost once per step: guidance
#: runs both passes as one batch of 2).
KERNELS_PER_DENOISER_PASS: Final = 1296


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
    peak, bw = peak_rates(hw, sc.precision)
    n, b = sc.num_devices, sc.batch_size
    latent = sc.image_resolution / model.vae_factor
    scale = (latent / model.reference_latent) ** 2
    passes = CFG_PASSES if sc.guidance else 1
    wb = tf.bytes_per_value(sc.precision)
    step_flops = 2.0 * model.denoiser_macs * scale * passes * b
    one = roofline_phase("denoiser step", step_flops, model.denoiser_parameters * wb, n, peak, bw, eng)
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
            roofline_phase("text encoder", 2.0 * model.text_encoder_macs * passes * b, 0.0, n, peak, bw, eng)
        )
    if model.vae_decoder_macs:
        phases.append(
            roofline_phase("VAE decoder", 2.0 * model.vae_decoder_macs * scale * b, 0.0, n, peak, bw, eng)
        )
    total = sum(p.seconds for p in phases)
    power, u = power_and_utilisation(hw, sc, phases)
    weights = (model.denoiser_parameters + model.other_parameters) * wb / 1e9
    notes = (
        "attention's quadratic cost is scaled like the convolutions (optimistic above the reference size)",
    )
    return ServingEstimate(sc, hw.name, n, eng, tuple(phases), total, power, u, weights, 0.0, notes)


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
