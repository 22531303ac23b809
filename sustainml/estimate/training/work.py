"""How much work a training run is: training FLOPs given, forecast as 6·N·D for a transformer
(with the attention term, per stack for an encoder-decoder) or 3 x forward FLOPs x samples x
epochs, and the MFU that turns them into time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from sustainml.catalogue.schema import HardwareEntry
from sustainml.estimate.training.calibration import EARLIER, fit_for, fits
from sustainml.estimate.training.calibration import reference as calibration_reference
from sustainml.estimate.training.defaults import (
    DEFAULT_EPOCHS,
    DEFAULT_SEQUENCE_LENGTH,
    DEFAULT_TRAINING_SAMPLES,
    REF_EPOCHS_DEFAULT,
    REF_FORWARD_FLOPS,
    REF_SAMPLES_DEFAULT,
    REF_SEQ2SEQ_FLOPS,
    REF_SEQUENCE_DEFAULT,
    REF_TARGET_TOKENS,
    REF_TRAINING_FACTOR,
    REF_TRANSFORMER_FLOPS,
    REF_VOLTA_MFU,
    TRAINING_FLOPS_FACTOR,
    TRANSFORMER_FLOPS_PER_PARAM_TOKEN,
    VOLTA_PREFIXES,
    VOLTA_TRANSFORMER_MFU,
    VOLTA_TRANSFORMER_MFU_RANGE,
)
from sustainml.estimate.training.inputs import Assumption, _num, fmt, number_setting
from sustainml.estimate.transformer import TransformerSpec, from_architecture


def _work(
    extra: Mapping[str, Any],
    assumptions: dict[str, Assumption],
    lines: list[str],
    forward_flops: float | None,
    forward_source: str,
    maximum_samples: int,
    minimum_samples: int,
    active_parameters: float | None,
    spec: TransformerSpec | None = None,
) -> tuple[float | None, str]:
    """(training FLOPs or None, how they were counted)."""
    given_flops = number_setting(extra, "training_flops")
    if given_flops is not None:
        assumptions["training_flops"] = Assumption(given_flops, "user", "extra_data.training_flops")
        lines.append(f"training FLOPs = {fmt(given_flops)} FLOP (extra_data.training_flops)")
        return given_flops, "training_flops"
    tokens = number_setting(extra, "training_tokens")
    params = (
        number_setting(extra, "active_parameters")
        or active_parameters
        or number_setting(extra, "model_parameters")
    )
    if params is None and spec is not None:
        params = float(spec.active_parameters())
    if params is not None and tokens is None:
        samples = number_setting(extra, "training_samples")
        per_sample = number_setting(extra, "input_tokens")
        if samples is not None and per_sample is not None:
            epochs = number_setting(extra, "epochs") or DEFAULT_EPOCHS
            tokens = samples * epochs * per_sample
            lines.append(
                f"training tokens = {fmt(samples)} samples x {fmt(epochs)} epochs x {fmt(per_sample)} "
                f"tokens = {fmt(tokens)}"
            )
    if spec is not None and spec.kind == "encoder-decoder" and tokens is not None:
        return _seq2seq_work(extra, assumptions, lines, spec, tokens), "transformer"
    if params is not None and tokens is not None:
        where = (
            "extra_data.active_parameters"
            if extra.get("active_parameters") is not None
            else ("model architecture (active parameters)" if active_parameters else "model_parameters")
        )
        assumptions["model_parameters"] = Assumption(_num(params), where, REF_TRANSFORMER_FLOPS)
        assumptions["training_tokens"] = Assumption(_num(tokens), "user", "training_tokens")
        flops = TRANSFORMER_FLOPS_PER_PARAM_TOKEN * params * tokens
        lines.append(
            f"training FLOPs = 6 x {fmt(params)} parameters x {fmt(tokens)} tokens = {fmt(flops)} FLOP"
        )
        if spec is not None:
            flops += _attention_work(extra, assumptions, lines, spec, tokens)
        return flops, "transformer"
    if forward_flops is not None and forward_flops > 0:
        samples_f, samples_source, samples_ref = _samples(extra, maximum_samples, minimum_samples)
        epochs_v = number_setting(extra, "epochs")
        assumptions["forward_flops_per_sample"] = Assumption(forward_flops, forward_source, REF_FORWARD_FLOPS)
        assumptions["training_flops_factor"] = Assumption(
            TRAINING_FLOPS_FACTOR, "default", REF_TRAINING_FACTOR
        )
        assumptions["training_samples"] = Assumption(_num(samples_f), samples_source, samples_ref)
        assumptions["epochs"] = (
            Assumption(_num(epochs_v), "user", "extra_data.epochs")
            if epochs_v is not None
            else Assumption(_num(DEFAULT_EPOCHS), "default", REF_EPOCHS_DEFAULT)
        )
        epochs = DEFAULT_EPOCHS if epochs_v is None else epochs_v
        flops = TRAINING_FLOPS_FACTOR * forward_flops * samples_f * epochs
        lines.append(
            f"training FLOPs = {fmt(TRAINING_FLOPS_FACTOR)} x {fmt(forward_flops)} FLOP/sample x "
            f"{fmt(samples_f)} samples x {fmt(epochs)} epochs = {fmt(flops)} FLOP"
        )
        return flops, "forward"
    return None, ""


def _architecture(extra: Mapping[str, Any], given: TransformerSpec | None) -> TransformerSpec | None:
    """``extra_data.architecture`` (ValueError naming the field if unusable), else ``given``."""
    raw = extra.get("architecture")
    if raw is None:
        return given
    return from_architecture(raw, where="extra_data.architecture")


def _attention_work(
    extra: Mapping[str, Any],
    assumptions: dict[str, Assumption],
    lines: list[str],
    spec: TransformerSpec,
    tokens: float,
) -> float:
    """Attention-score FLOPs of a decoder's training on ``tokens``, when its shape is known."""
    given = number_setting(extra, "sequence_length", minimum=1, strict_minimum=False, integer=True)
    sequence = min(spec.context, DEFAULT_SEQUENCE_LENGTH) if given is None else int(given)
    assumptions["sequence_length"] = (
        Assumption(sequence, "user", "extra_data.sequence_length")
        if given is not None
        else Assumption(sequence, "architecture", REF_SEQUENCE_DEFAULT)
    )
    d_attn = spec.heads * spec.dim_head
    per_token = TRANSFORMER_FLOPS_PER_PARAM_TOKEN * spec.layers * sequence * d_attn
    lines.append(
        f"attention FLOPs = 6 x {spec.layers} layers x {sequence} sequence x {d_attn} attention width x "
        f"{fmt(tokens)} tokens = {fmt(per_token * tokens)} FLOP (Kaplan et al. 2020; causal)"
    )
    return per_token * tokens


def _seq2seq_work(
    extra: Mapping[str, Any],
    assumptions: dict[str, Assumption],
    lines: list[str],
    spec: TransformerSpec,
    tokens: float,
) -> float:
    """Training FLOPs of an encoder-decoder on ``tokens`` input tokens and its target tokens."""
    target = number_setting(extra, "target_tokens", strict_minimum=False)
    assumptions["training_tokens"] = Assumption(_num(tokens), "user", "training_tokens (encoder input)")
    if target is None:
        target = tokens
        assumptions["target_tokens"] = Assumption(_num(target), "default", REF_TARGET_TOKENS)
    else:
        assumptions["target_tokens"] = Assumption(_num(target), "user", "extra_data.target_tokens")
    assumptions["architecture"] = Assumption(spec.describe(), "architecture", REF_SEQ2SEQ_FLOPS)
    flops = spec.seq2seq_training_flops(tokens, target)
    lines.append(
        f"training FLOPs = 6 x (encoder-side weights x {fmt(tokens)} input tokens + decoder-side weights x "
        f"{fmt(target)} target tokens) = {fmt(flops)} FLOP ({spec.describe()})"
    )
    return flops


def _mfu_assumption(mfu: float, given: float | None, reference: str) -> Assumption:
    if given is not None:
        return Assumption(mfu, "user", "extra_data.mfu")
    return Assumption(mfu, "default", reference)


class MfuDefault(NamedTuple):
    """The MFU a transformer forecast assumes on a device, its range and source; ``realised``
    when it is measured over whole published runs (restarts and idle time included)."""

    mfu: float
    range: tuple[float, float]
    reference: str
    realised: bool


def transformer_mfu(device: HardwareEntry | None, parameters: float | None = None) -> MfuDefault:
    """The MFU of a transformer training run of a model of ``parameters`` (active) on ``device``:
    the realised MFU of published runs on its hardware group (``calibration``), or on V100 (Volta,
    no calibration run) the sustained throughput of Megatron-LM (see the module docstring). An
    unknown device takes the A100 group's."""
    if device is not None and device.name.upper().startswith(VOLTA_PREFIXES):
        return MfuDefault(VOLTA_TRANSFORMER_MFU, VOLTA_TRANSFORMER_MFU_RANGE, REF_VOLTA_MFU, False)
    fit = fit_for(device) if device is not None else fits()[EARLIER]
    return MfuDefault(
        fit.mfu(parameters), fit.mfu_range(parameters), calibration_reference(fit, parameters), True
    )


def model_size(assumptions: Mapping[str, Assumption], spec: TransformerSpec | None) -> float | None:
    """The (active) parameter count the work was counted with, else the architecture's."""
    counted = assumptions.get("model_parameters")
    if counted is not None and isinstance(counted.value, int | float):
        return float(counted.value)
    return float(spec.active_parameters()) if spec is not None else None


def _samples(extra: Mapping[str, Any], maximum_samples: int, minimum_samples: int) -> tuple[float, str, str]:
    given = number_setting(extra, "training_samples")
    if given is not None:
        return given, "user", "extra_data.training_samples"
    if maximum_samples > 0:
        return float(maximum_samples), "user_input.maximum_samples", "UserInput.maximum_samples"
    if minimum_samples > 0:
        return (
            float(minimum_samples),
            "user_input.minimum_samples",
            "UserInput.minimum_samples (no maximum given)",
        )
    return float(DEFAULT_TRAINING_SAMPLES), "default", REF_SAMPLES_DEFAULT
