"""Energy of training a model on a device: FLOPs, time, power and PUE, every assumption shown.

The CARBON_FOOTPRINT node's headline figure (the original framework's purpose: warn about the
footprint of *training* the proposed model on the proposed hardware). Units: FLOP, FLOP/s,
seconds, W, Wh.

    training FLOPs = extra_data.training_flops, else
                     6 x N x D for a transformer whose size N (model_parameters; active_parameters
                     for a mixture of experts) and tokens D (training_tokens, or training_samples x
                     epochs x input_tokens) are given, else
                     3 x forward FLOPs per sample x training samples x epochs
    time [s]       = device-hours x 3600 / num_devices when the run is described by its length:
                     training_device_hours, or num_devices x wall clock (training_hours, or
                     training_days x 24); else
                     training FLOPs / (num_devices x peak FLOP/s at the training precision x MFU)
    energy [Wh]    = num_devices x training power [W] x time [s] x PUE / 3600

Every figure has a low/high range (``energy_wh_low``/``energy_wh_high``): the product of the
ranges of its inputs (power, PUE, MFU for a forecast); a value the user states has no range.

Why each default (all overridable through ``UserInput.extra_data``; docs/estimation.md lists them
with their sources):

- **3 x forward**: the backward pass costs about twice the forward pass (gradients with respect
  to activations and to weights), so one training step on a sample is ~3 forward passes. For a
  transformer with N parameters this is the 6·N FLOPs per token of Kaplan et al. 2020
  (arXiv:2001.08361); docs/estimation.md ("CNN training = 3 x forward FLOPs x
  samples x epochs"). Forward FLOPs = 2 x MACs (section 1). Optimizer updates, data loading and
  evaluation passes are not counted.
- **Training samples**: ``extra_data.training_samples``, else ``UserInput.maximum_samples``, else
  ``UserInput.minimum_samples``, else ``DEFAULT_TRAINING_SAMPLES`` = 50,000, the size of the
  CIFAR-10 training split (Krizhevsky 2009), a typical small supervised data set. An assumption:
  tell the node your data-set size.
- **Epochs**: 1. Real runs use more; the result scales linearly.
- **Power**: a measured average (``training_power_w``), else a power cap (``power_cap_w``, at most
  the device's TDP), else the power the hardware text states (``H100-80GB (TDP of 700W)``), else
  the rated figure below. Range of a rated figure: 0.6-1.0 x TDP: Patterson et al. 2021
  (arXiv:2104.10350, table 4) measured TPU v3 training runs at 245-310 W per chip against a 450 W
  TDP (54-69 %), while GPU systems measured at or above the GPU's TDP (GPT-3 on V100: 330 W per
  300 W GPU, host included).
- **MFU for a transformer forecast (6·N·D)**, by hardware generation: 0.4, range 0.3-0.5, on
  A100, H100 and TPUs: Megatron-Turing NLG 30.2 % on A100 and PaLM 46.2 % on TPU v4 (Chowdhery et
  al. 2022, table 3), 36-46 % on H100 in bf16 at 2-4k context (MosaicML llm-foundry benchmarks,
  scripts/train/benchmarking/README.md) and up to 47 % (Megatron-Core, NVIDIA Megatron-LM
  README). On V100 (Volta): 0.24, range 0.2-0.3: Megatron-LM sustained 29.5 TFLOP/s per GPU on
  512 V100 (24 % of the 125 TFLOP/s peak) from 30 % on one GPU (Shoeybi et al. 2019,
  arXiv:1909.08053, section 5.1).
- **Encoder-decoder** (T5, BART, NLLB, Whisper), when the architecture is known: 6 FLOPs per
  weight and token *through that weight*: input tokens through the encoder and the decoder's
  cross-attention keys/values, target tokens (``target_tokens``, default as many as the input)
  through the rest of the decoder and the output head; 6·N·D on the whole model would count
  every token through both stacks.
- **Attention scores**, when the architecture is known (model catalogue or
  ``extra_data.architecture``): + 6 x layers x sequence length x attention width FLOPs per token
  (Kaplan et al. 2020, table 1: the causal count), sequence length ``sequence_length`` else the
  architecture's context up to 4,096 (long-context models pre-train mostly at 4,096 tokens and
  extend at the end: Qwen2.5 technical report, arXiv:2412.15115). The MFU sources above count
  attention FLOPs too (PaLM, appendix B; MosaicML, over the full square), so omitting them would
  understate the work those MFUs were measured on.
- **Interruptions and restarts** of a forecast run: up to +10 % time on the high end of the
  range (Meta reports more than 90 % effective training time with 466 interruptions in 54 days
  on 16k GPUs, Llama 3 paper, arXiv:2407.21783, section 3.3.4); the point figure assumes none.
- **MFU** (model FLOPs utilisation, achieved / peak) otherwise: 0.3, range 0.2-0.4. Published
  large training runs reach 0.21-0.46 (GPT-3 21.3 %, Megatron-Turing NLG 30.2 %, Gopher 32.5 %,
  PaLM 46.2 %: Chowdhery et al. 2022, arXiv:2204.02311, table 3); docs/estimation.md quotes up to 0.5 for
  large-scale training (llm-analysis README). 0.3 is the typical published value; a lower MFU
  gives a longer, costlier run, so the default errs towards warning.
- **Precision**: mixed precision (Micikevicius et al. 2018, arXiv:1710.03740), the default of
  current training recipes: bf16 where the device has a bf16 path, else fp16, else fp32; the peak
  is the hardware catalogue's dense figure at that precision.
- **Devices**: 1.
- **Power**: ``sustainml.estimate.power.device_power_w(hw, u)`` = idle + u x (TDP - idle) with
  u = 1.0: training keeps the device saturated, so it draws about its rated power; Green
  Algorithms' default usage factor is 1.0 (Lannelongue et al. 2021, doi:10.1002/advs.202100707)
  and the ML CO2 Impact calculator uses TDP (Lacoste et al. 2019, arXiv:1910.09700),
  docs/estimation.md
- **PUE**: ``extra_data.pue``, else ``extra_data.pue_setting`` (``sustainml.estimate.pue``:
  hyperscale, aws, gcp, azure, typical, on-premises, on-device; each with its source and range),
  else the provider's when the location is a cloud region, else 1.56 for devices that live in a
  data centre (``cloud``, ``server-cpu``, ``pim``: the
  PIM/CXL-PIM parts are server memory modules), the Uptime Institute 2024 global average used by
  Green Algorithms; 1.0 for on-device targets (``edge``, ``mobile``, ``embedded``, ``fpga``
  boards, ``local`` = this machine), docs/estimation.md Unknown device: 1.56
  (Green Algorithms' "unknown" default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sustainml.catalogue.schema import HardwareEntry
from sustainml.estimate.power import device_power_w
from sustainml.estimate.pue import DATACENTRE_CLASSES, Pue
from sustainml.estimate.pue import default_for as pue_default_for
from sustainml.estimate.pue import setting as pue_setting
from sustainml.estimate.transformer import TransformerSpec, from_architecture

DEFAULT_TRAINING_SAMPLES: Final = 50_000
DEFAULT_EPOCHS: Final = 1.0
DEFAULT_MFU: Final = 0.3
MFU_RANGE: Final = (0.2, 0.4)
#: MFU of a transformer run forecast from 6·N·D (see the module docstring), and its range.
TRANSFORMER_MFU: Final = 0.4
TRANSFORMER_MFU_RANGE: Final = (0.3, 0.5)
#: The same on V100 (Volta) GPUs, whose published large-run utilisation is lower.
VOLTA_TRANSFORMER_MFU: Final = 0.24
VOLTA_TRANSFORMER_MFU_RANGE: Final = (0.2, 0.3)
#: Device-name prefixes of the Volta generation in the hardware catalogue.
VOLTA_PREFIXES: Final = ("V100",)
#: Training sequence length when none is stated: the architecture's context, at most this.
DEFAULT_SEQUENCE_LENGTH: Final = 4096
#: Upper end of the time lost to interruptions and restarts of a forecast run (fraction of the
#: forecast time): widens the high end of the range only.
RESTART_OVERHEAD_HIGH: Final = 0.1
#: Fraction of a rated power a training run draws, low end (see the module docstring).
RATED_POWER_LOW_FRACTION: Final = 0.6
#: Training FLOPs per parameter and token of a transformer (forward 2 + backward 4).
TRANSFORMER_FLOPS_PER_PARAM_TOKEN: Final = 6.0
DEFAULT_NUM_DEVICES: Final = 1
#: Fraction of the idle-to-TDP range drawn while training.
TRAINING_UTILISATION: Final = 1.0
#: Training FLOPs per sample and epoch, in forward passes (forward + backward = 1 + 2).
TRAINING_FLOPS_FACTOR: Final = 3.0
#: Inputs that give the run's length.
TIME_KEYS: Final = ("training_device_hours", "training_hours", "training_days")
#: Training precision when none is given: the first the device has a faster path for.
TRAINING_PRECISION_PREFERENCE: Final = ("bf16", "fp16")
PRECISIONS: Final = ("fp32", "tf32", "fp16", "bf16", "int8", "int4")

PUE_DATACENTRE: Final = 1.56
PUE_ON_DEVICE: Final = 1.0
PUE_BY_CLASS: Final[dict[str, float]] = {
    "cloud": PUE_DATACENTRE,
    "server-cpu": PUE_DATACENTRE,
    "desktop": PUE_ON_DEVICE,
    "pim": PUE_DATACENTRE,
    "edge": PUE_ON_DEVICE,
    "mobile": PUE_ON_DEVICE,
    "embedded": PUE_ON_DEVICE,
    "fpga": PUE_ON_DEVICE,
    "local": PUE_ON_DEVICE,
}
PUE_UNKNOWN: Final = PUE_DATACENTRE

# The public source of each default, as it travels in extra_data.assumptions.
REF_FORWARD_FLOPS: Final = "FLOPs = 2 x MACs (one multiply-accumulate is 2 operations; docs/estimation.md)"
REF_TRAINING_FACTOR: Final = (
    "training step = forward + backward (~2 x forward) = 3 x forward FLOPs per sample; the 6*N*D rule "
    "of Kaplan et al. 2020 (arXiv:2001.08361), docs/estimation.md; optimizer and evaluation passes "
    "not counted"
)
REF_SAMPLES_DEFAULT: Final = (
    "assumption: 50,000 = size of the CIFAR-10 training split (Krizhevsky 2009), a typical small "
    "supervised data set; set extra_data.training_samples or UserInput.maximum_samples"
)
REF_EPOCHS_DEFAULT: Final = "one pass over the data (default); set extra_data.epochs"
REF_MFU_DEFAULT: Final = (
    "typical published model FLOPs utilisation: GPT-3 21.3 %, MT-NLG 30.2 %, Gopher 32.5 %, PaLM 46.2 % "
    "(Chowdhery et al. 2022, arXiv:2204.02311, table 3); up to 0.5 for large-scale training "
    "(docs/estimation.md)"
)
REF_PRECISION_DEFAULT: Final = (
    "mixed-precision training (Micikevicius et al. 2018, arXiv:1710.03740): bf16 if the device has it, "
    "else fp16, else fp32; dense peak from the hardware catalogue"
)
REF_DEVICES_DEFAULT: Final = "one device; set extra_data.num_devices"
REF_TRANSFORMER_FLOPS: Final = (
    "6 FLOPs per parameter and token (2 forward + 4 backward; Kaplan et al. 2020, arXiv:2001.08361); "
    "a mixture of experts counts its active parameters"
)
REF_TRANSFORMER_MFU: Final = (
    "transformer training MFU on A100/H100/TPU v4: Megatron-Turing NLG 530B 30.2 % on A100 and PaLM 540B "
    "46.2 % on TPU v4 (Chowdhery et al. 2022, arXiv:2204.02311, table 3); MosaicML llm-foundry benchmarks "
    "(scripts/train/benchmarking/README.md) 36-46 % on H100 bf16 at 2-4k context; Megatron-Core up to "
    "47 % on H100 (NVIDIA Megatron-LM README): 0.4, range 0.3-0.5"
)
REF_VOLTA_MFU: Final = (
    "V100: Megatron-LM 8.3B sustained 15.1 PFLOP/s on 512 V100 = 29.5 TFLOP/s per GPU, 24 % of the "
    "125 TFLOP/s fp16 peak, from 39 TFLOP/s (30 %) on one GPU (Shoeybi et al. 2019, arXiv:1909.08053, "
    "section 5.1): 0.24, range 0.2-0.3"
)
REF_RESTART_OVERHEAD: Final = (
    "interruptions and restarts: Meta reports 466 job interruptions in a 54-day snapshot of a 16k-GPU "
    "run and more than 90 % effective training time (Llama 3 paper, arXiv:2407.21783, section 3.3.4): "
    "up to +10 % time, high end of the range only"
)
REF_SEQ2SEQ_FLOPS: Final = (
    "encoder-decoder: 6 FLOPs per weight and token through it; input tokens pass the encoder and the "
    "cross-attention keys/values, target tokens the rest of the decoder and the output head "
    "(sustainml.estimate.transformer.seq2seq_training_flops)"
)
REF_SEQUENCE_DEFAULT: Final = (
    "training sequence length = the architecture's context, at most 4,096: long-context models are "
    "pre-trained mostly at 4,096 tokens and extended at the end (Qwen2.5 technical report, "
    "arXiv:2412.15115, section 3); set extra_data.sequence_length"
)
REF_TARGET_TOKENS: Final = (
    "assumption: as many target (decoder) tokens as input tokens, as in translation; span-corruption "
    "pre-training has fewer (T5: about 0.22 per input token); set extra_data.target_tokens"
)
REF_POWER_RANGE: Final = (
    "a rated power is an upper bound: measured training runs drew 54-69 % of TPU v3's 450 W TDP per chip "
    "(Patterson et al. 2021, table 4): range 0.6-1.0 x rated"
)
REF_UTILISATION_DEFAULT: Final = (
    "training saturates the device: usage factor 1.0 as Green Algorithms' default (Lannelongue et al. "
    "2021) and TDP as the ML CO2 Impact calculator (Lacoste et al. 2019); docs/estimation.md"
)
REF_POWER_MODEL: Final = (
    "P = idle_w + utilisation x (tdp_w - idle_w) (Cloud Carbon Footprint form, docs/estimation.md; "
    "sustainml.estimate.power)"
)
REF_PUE_DEFAULT: Final = (
    "PUE 1.56 for data-centre devices (cloud, server-cpu, pim; Uptime Institute 2024 global average via "
    "Green Algorithms), 1.0 on-device (edge, mobile, embedded, fpga, local); docs/estimation.md"
)


@dataclass(frozen=True)
class Assumption:
    """One input of an estimate: its value, where the value came from (``user``, ``default``,
    ``user_input.maximum_samples``, ``model_properties``, ...) and the public reference behind it."""

    value: float | int | str
    source: str
    reference: str

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source, "reference": self.reference}


@dataclass(frozen=True)
class TrainingEstimate:
    """A training run; ``flops`` is None when the time came from device-hours and the forward
    FLOPs are unknown. ``effective_flops`` is the work the time stands for at the device's
    peak x MFU (equal to ``flops`` unless the time was given in device-hours): the quantity other
    devices are compared on."""

    flops: float | None
    effective_flops: float
    num_devices: int
    precision: str
    peak_flops: float  # per device at ``precision``, FLOP/s (0 when the device is unknown)
    mfu: float
    time_s: float  # wall clock
    power_w: float  # per device
    utilisation: float
    pue: float
    energy_wh: float
    time_source: str  # "flops" | "device_hours" | "inference_rate"
    assumptions: dict[str, Assumption] = field(default_factory=dict)
    breakdown: list[str] = field(default_factory=list)
    energy_wh_low: float = 0.0
    energy_wh_high: float = 0.0
    power_source: str = "rated"  # rated | stated | cap | measured | hw_resources
    flops_source: str = ""  # training_flops | transformer | forward | "" (unknown)
    pue_low: float = 0.0
    pue_high: float = 0.0

    @property
    def device_hours(self) -> float:
        return self.num_devices * self.time_s / 3600.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "flops": self.flops,
            "effective_flops": self.effective_flops,
            "num_devices": self.num_devices,
            "precision": self.precision,
            "peak_flops_per_device": self.peak_flops,
            "mfu": self.mfu,
            "time_s": self.time_s,
            "time_h": self.time_s / 3600.0,
            "device_hours": self.device_hours,
            "time_source": self.time_source,
            "power_w_per_device": self.power_w,
            "utilisation": self.utilisation,
            "pue": self.pue,
            "energy_wh": self.energy_wh,
            "energy_wh_low": self.energy_wh_low,
            "energy_wh_high": self.energy_wh_high,
            "power_source": self.power_source,
            "flops_source": self.flops_source,
            "pue_low": self.pue_low,
            "pue_high": self.pue_high,
        }


def fmt(value: float) -> str:
    """Numbers in the human-readable breakdown: 6 significant digits, enough to redo the sums."""
    return f"{value:.6g}"


def number_setting(
    extra: Mapping[str, Any],
    key: str,
    *,
    minimum: float = 0.0,
    maximum: float = math.inf,
    strict_minimum: bool = True,
    integer: bool = False,
) -> float | None:
    """``extra[key]`` as a finite number in range, ``None`` when absent or null; ``ValueError``
    naming the key otherwise. Numeric strings are accepted (REST forms send text)."""
    raw = extra.get(key)
    if raw is None:
        return None
    what = f"user_input extra_data.{key}"
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"{what} must be a number, got {raw!r}")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {raw!r}")
    below = value <= minimum if strict_minimum else value < minimum
    if below or value > maximum:
        low = f"> {minimum:g}" if strict_minimum else f">= {minimum:g}"
        high = "" if math.isinf(maximum) else f" and <= {maximum:g}"
        raise ValueError(f"{what} must be {low}{high}, got {raw!r}")
    if integer and not value.is_integer():
        raise ValueError(f"{what} must be a whole number, got {raw!r}")
    return value


def precision_setting(extra: Mapping[str, Any], key: str = "training_precision") -> str | None:
    raw = extra.get(key)
    if raw is None or raw == "":
        return None
    text = str(raw).strip().lower()
    if text not in PRECISIONS:
        raise ValueError(f"user_input extra_data.{key} must be one of {', '.join(PRECISIONS)}, got {raw!r}")
    return text


def training_precision(device: HardwareEntry, requested: str | None = None) -> str:
    """The precision a training run uses on ``device``: ``requested`` if given, else the first of
    bf16/fp16 the device has a faster path for, else fp32."""
    if requested:
        return requested
    return next((p for p in TRAINING_PRECISION_PREFERENCE if device.peak_flops.get(p)), "fp32")


def default_pue(device_class: str | None) -> float:
    if device_class is None:
        return PUE_UNKNOWN
    return PUE_BY_CLASS.get(device_class, PUE_UNKNOWN)


def training_energy_wh(
    effective_flops: float,
    device: HardwareEntry,
    *,
    precision: str,
    mfu: float,
    utilisation: float,
    pue: float,
) -> float:
    """Energy of ``effective_flops`` of training work on ``device`` (any device count: more devices
    finish sooner at the same energy): FLOPs / (peak x MFU) x P x PUE / 3600."""
    peak = device.peak(precision)
    if peak <= 0:
        raise ValueError(f"hardware {device.name!r} has no peak FLOP/s at {precision}")
    return effective_flops / (peak * mfu) * device_power_w(device, utilisation) * pue / 3600.0


def estimate_training(
    extra: Mapping[str, Any],
    *,
    device: HardwareEntry | None,
    forward_flops: float | None,
    forward_source: str = "",
    maximum_samples: int = 0,
    minimum_samples: int = 0,
    fallback_power_w: float = 0.0,
    fallback_rate: float = 0.0,
    stated_power_w: float | None = None,
    default_pue_setting: Pue | None = None,
    active_parameters: float | None = None,
    architecture: TransformerSpec | None = None,
) -> TrainingEstimate:
    """The training run described by ``extra`` (the UserInput's extra_data, with the requirement keys
    of the problem text merged under it) on ``device``.

    ``forward_flops``: FLOPs of one forward pass on one sample (None if unknown). ``device`` None
    (not in the hardware catalogue): the power is ``fallback_power_w`` (HW_RESOURCES' figure) and
    the speed ``fallback_rate`` FLOP/s (forward FLOPs / HW_RESOURCES latency), both labelled as such.
    ``stated_power_w``: the power the hardware text gave ("TDP of 700W"). ``default_pue_setting``:
    the PUE the location implies (a cloud provider's), used when the user states none.
    ``active_parameters``: the model's active parameters when known from its architecture.
    ``architecture``: the model's shape (model catalogue); ``extra_data.architecture`` wins. An
    encoder-decoder's training FLOPs are counted per stack (``seq2seq_training_flops``)."""
    assumptions: dict[str, Assumption] = {}
    lines: list[str] = []

    # -- how much work ------------------------------------------------------------------------
    # A run given by its length needs no FLOP count; the default sample count would only add a
    # made-up figure next to it, so the forward-pass count is used only without one.
    timed = any(extra.get(k) is not None for k in TIME_KEYS)
    flops, flops_source = _work(
        extra, assumptions, lines, None if timed else forward_flops, forward_source, maximum_samples,
        minimum_samples, active_parameters, _architecture(extra, architecture),
    )  # fmt: skip

    # -- on what ------------------------------------------------------------------------------
    devices_value = number_setting(extra, "num_devices", minimum=1, strict_minimum=False, integer=True)
    num_devices = DEFAULT_NUM_DEVICES if devices_value is None else int(devices_value)
    assumptions["num_devices"] = (
        Assumption(num_devices, "user", "extra_data.num_devices")
        if devices_value is not None
        else Assumption(num_devices, "default", REF_DEVICES_DEFAULT)
    )
    mfu_value = number_setting(extra, "mfu", maximum=1.0)
    transformer = flops_source == "transformer"
    default_mfu, default_range, mfu_ref = (
        transformer_mfu(device) if transformer else (DEFAULT_MFU, MFU_RANGE, REF_MFU_DEFAULT)
    )
    mfu = mfu_value if mfu_value is not None else default_mfu
    mfu_low, mfu_high = (mfu, mfu) if mfu_value is not None else default_range
    requested_precision = precision_setting(extra)
    util_value = number_setting(extra, "training_utilisation", maximum=1.0, strict_minimum=False)
    utilisation = TRAINING_UTILISATION if util_value is None else util_value
    pue, pue_low, pue_high = _pue(extra, device, default_pue_setting, assumptions)

    if device is not None:
        precision = training_precision(device, requested_precision)
        peak = device.peak(precision)
        assumptions["training_precision"] = (
            Assumption(precision, "user", "extra_data.training_precision")
            if requested_precision
            else Assumption(precision, "default", REF_PRECISION_DEFAULT)
        )
        assumptions["peak_flops_per_device"] = Assumption(
            peak, "hardware catalogue", f"{device.name}: {device.source}"
        )
        power_w, power_low, power_source = _power(
            extra, device, utilisation, util_value, stated_power_w, assumptions
        )
    else:
        precision = requested_precision or "fp32"
        peak = 0.0
        power_w = power_low = fallback_power_w
        power_source = "hw_resources"
        assumptions["training_power_w"] = Assumption(
            power_w, "hw_resources", "device not in the hardware catalogue: HW_RESOURCES' power_consumption"
        )

    # -- how long -----------------------------------------------------------------------------
    device_hours = _device_hours(extra, num_devices, assumptions, lines)
    time_source: str
    if device_hours is not None:
        time_s = device_hours * 3600.0 / num_devices
        time_source = "device_hours"
        # The work those hours stand for on this device, to compare other devices on equal terms.
        rate = peak * mfu if device is not None else fallback_rate
        effective = num_devices * rate * time_s
        mfu_low = mfu_high = mfu  # the time is given: MFU does not move the energy
        if device is not None:
            assumptions["mfu"] = _mfu_assumption(mfu, mfu_value, mfu_ref)
    elif flops is None:
        raise ValueError(
            "cannot estimate training: the model's forward FLOPs are unknown (no MACs in model_properties, "
            "not in the model catalogue); give extra_data.training_flops, model_parameters with "
            "training_tokens, training_device_hours, or training_hours"
        )
    elif device is not None:
        if peak <= 0:
            raise ValueError(f"hardware {device.name!r} has no peak FLOP/s at {precision}")
        time_s = flops / (num_devices * peak * mfu)
        time_source = "flops"
        effective = flops
        assumptions["mfu"] = _mfu_assumption(mfu, mfu_value, mfu_ref)
        lines.append(
            f"training time = {fmt(flops)} FLOP / ({num_devices} device(s) x {fmt(peak)} FLOP/s "
            f"{precision} peak x {fmt(mfu)} MFU) = {fmt(time_s)} s ({fmt(time_s / 3600.0)} h)"
        )
    else:
        if fallback_rate <= 0:
            raise ValueError(
                "cannot estimate training: the hardware is not in the catalogue and HW_RESOURCES gave no "
                "latency to derive its speed from; give extra_data.training_device_hours"
            )
        time_s = flops / (num_devices * fallback_rate)
        time_source = "inference_rate"
        effective = flops
        mfu_low = mfu_high = mfu
        assumptions["achieved_flops_per_s"] = Assumption(
            fallback_rate,
            "hw_resources",
            "device not in the hardware catalogue: forward FLOPs / HW_RESOURCES latency (rate achieved at "
            "inference; no peak or MFU applied)",
        )
        lines.append(
            f"training time = {fmt(flops)} FLOP / ({num_devices} device(s) x {fmt(fallback_rate)} FLOP/s "
            f"achieved at inference) = {fmt(time_s)} s ({fmt(time_s / 3600.0)} h)"
        )

    energy_wh = num_devices * power_w * time_s * pue / 3600.0
    # Low: less power, lower PUE, higher MFU (shorter); high: the opposite, and for a transformer
    # forecast (large multi-device runs) the time lost to interruptions and restarts, which a run
    # given by its length already includes.
    low = energy_wh * (power_low / power_w if power_w else 1.0) * (pue_low / pue) * (mfu / mfu_high)
    high = energy_wh * (pue_high / pue) * (mfu / mfu_low)
    if time_source == "flops" and transformer:
        high *= 1.0 + RESTART_OVERHEAD_HIGH
        assumptions["restart_overhead_high"] = Assumption(
            RESTART_OVERHEAD_HIGH, "default", REF_RESTART_OVERHEAD
        )
    lines.append(
        f"training energy = {num_devices} device(s) x {fmt(power_w)} W x {fmt(time_s)} s x PUE {fmt(pue)} "
        f"/ 3600 = {fmt(energy_wh)} Wh (range {fmt(low)}-{fmt(high)} Wh)"
    )
    return TrainingEstimate(
        flops=flops,
        effective_flops=effective,
        num_devices=num_devices,
        precision=precision,
        peak_flops=peak,
        mfu=mfu,
        time_s=time_s,
        power_w=power_w,
        utilisation=utilisation,
        pue=pue,
        energy_wh=energy_wh,
        time_source=time_source,
        assumptions=assumptions,
        breakdown=lines,
        energy_wh_low=low,
        energy_wh_high=high,
        power_source=power_source,
        flops_source=flops_source,
        pue_low=pue_low,
        pue_high=pue_high,
    )


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


def _device_hours(
    extra: Mapping[str, Any], num_devices: int, assumptions: dict[str, Assumption], lines: list[str]
) -> float | None:
    """Device-hours of the run when its length is given, else None."""
    given = number_setting(extra, "training_device_hours")
    if given is not None:
        assumptions["training_device_hours"] = Assumption(given, "user", "extra_data.training_device_hours")
        lines.append(
            f"training time = {fmt(given)} device-hours / {num_devices} device(s) = "
            f"{fmt(given / num_devices)} h = {fmt(given * 3600.0 / num_devices)} s "
            "(extra_data.training_device_hours)"
        )
        return given
    hours = number_setting(extra, "training_hours")
    key = "training_hours"
    if hours is None:
        days = number_setting(extra, "training_days")
        if days is None:
            return None
        hours, key = days * 24.0, "training_days"
    assumptions[key] = Assumption(_num(hours), "user", f"{key} (wall clock)")
    device_hours = hours * num_devices
    lines.append(
        f"training time = {fmt(hours)} h wall clock ({key}) x {num_devices} device(s) = "
        f"{fmt(device_hours)} device-hours"
    )
    return device_hours


def _power(
    extra: Mapping[str, Any],
    device: HardwareEntry,
    utilisation: float,
    util_value: float | None,
    stated_power_w: float | None,
    assumptions: dict[str, Assumption],
) -> tuple[float, float, str]:
    """(power per device W, its low end, where it came from)."""
    measured = number_setting(extra, "training_power_w")
    if measured is not None:
        assumptions["training_power_w"] = Assumption(
            measured, "user", "extra_data.training_power_w (measured average)"
        )
        return measured, measured, "measured"
    cap = number_setting(extra, "power_cap_w")
    if cap is not None:
        power = min(cap, device.tdp_w)
        assumptions["training_power_w"] = Assumption(
            power, "user", f"extra_data.power_cap_w ({fmt(cap)} W; at most the TDP {fmt(device.tdp_w)} W)"
        )
        return power, power * RATED_POWER_LOW_FRACTION, "cap"
    if stated_power_w is not None:
        assumptions["training_power_w"] = Assumption(
            stated_power_w, "hardware text", f"power stated with the hardware name; {REF_POWER_RANGE}"
        )
        return stated_power_w, stated_power_w * RATED_POWER_LOW_FRACTION, "stated"
    power = device_power_w(device, utilisation)
    assumptions["training_utilisation"] = (
        Assumption(utilisation, "user", "extra_data.training_utilisation")
        if util_value is not None
        else Assumption(utilisation, "default", REF_UTILISATION_DEFAULT)
    )
    assumptions["training_power_w"] = Assumption(
        power,
        "hardware catalogue",
        f"{REF_POWER_MODEL}; {device.name}: idle {fmt(device.idle_w)} W, TDP {fmt(device.tdp_w)} W; "
        f"{REF_POWER_RANGE}",
    )
    return power, power * RATED_POWER_LOW_FRACTION, "rated"


def _pue(
    extra: Mapping[str, Any],
    device: HardwareEntry | None,
    location_default: Pue | None,
    assumptions: dict[str, Assumption],
) -> tuple[float, float, float]:
    """(PUE, low, high) and its assumption."""
    given = number_setting(extra, "pue", minimum=1.0, strict_minimum=False)
    if given is not None:
        assumptions["pue"] = Assumption(given, "user", "extra_data.pue")
        return given, given, given
    named = extra.get("pue_setting")
    if isinstance(named, str) and named.strip():
        chosen = pue_setting(named)
        source = "user"
    elif device is None:
        assumptions["pue"] = Assumption(PUE_UNKNOWN, "default", REF_PUE_DEFAULT + "; unknown device: 1.56")
        typical = pue_setting("typical")
        return PUE_UNKNOWN, typical.low, typical.high
    elif location_default is not None and device.device_class in DATACENTRE_CLASSES:
        chosen, source = location_default, "location"
    else:
        chosen = pue_default_for(device.device_class)
        assumptions["pue"] = Assumption(
            default_pue(device.device_class),
            "default",
            f"{REF_PUE_DEFAULT}; setting {chosen.setting}: {chosen.source}",
        )
        return default_pue(device.device_class), chosen.low, chosen.high
    assumptions["pue"] = Assumption(chosen.value, source, f"setting {chosen.setting}: {chosen.source}")
    return chosen.value, chosen.low, chosen.high


def _mfu_assumption(mfu: float, given: float | None, reference: str) -> Assumption:
    if given is not None:
        return Assumption(mfu, "user", "extra_data.mfu")
    return Assumption(mfu, "default", reference)


def transformer_mfu(device: HardwareEntry | None) -> tuple[float, tuple[float, float], str]:
    """(MFU, its range, its source) of a transformer training run on ``device``, by generation:
    V100 (Volta) lower than A100, H100 and TPUs (see the module docstring)."""
    if device is not None and device.name.upper().startswith(VOLTA_PREFIXES):
        return VOLTA_TRANSFORMER_MFU, VOLTA_TRANSFORMER_MFU_RANGE, REF_VOLTA_MFU
    return TRANSFORMER_MFU, TRANSFORMER_MFU_RANGE, REF_TRANSFORMER_MFU


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


def _num(value: float) -> float | int:
    """Whole numbers as int in the JSON output (50000, not 50000.0)."""
    return int(value) if value.is_integer() and abs(value) < 2**63 else value


__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_MFU",
    "DEFAULT_NUM_DEVICES",
    "DEFAULT_TRAINING_SAMPLES",
    "PUE_BY_CLASS",
    "PUE_DATACENTRE",
    "PUE_ON_DEVICE",
    "PUE_UNKNOWN",
    "RESTART_OVERHEAD_HIGH",
    "TRAINING_FLOPS_FACTOR",
    "TRAINING_UTILISATION",
    "Assumption",
    "TrainingEstimate",
    "default_pue",
    "estimate_training",
    "fmt",
    "number_setting",
    "precision_setting",
    "training_energy_wh",
    "training_precision",
    "transformer_mfu",
]
