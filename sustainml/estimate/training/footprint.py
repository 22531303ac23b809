"""The training run on a device: how long (from FLOPs or a stated length), the power and PUE,
the energy and its low/high range (``estimate_training``), and the energy of a given amount of
work on another device (``training_energy_wh``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sustainml.catalogue.schema import HardwareEntry
from sustainml.estimate.power import device_power_w
from sustainml.estimate.pue import DATACENTRE_CLASSES, Pue
from sustainml.estimate.pue import default_for as pue_default_for
from sustainml.estimate.pue import setting as pue_setting
from sustainml.estimate.training.defaults import (
    DEFAULT_MFU,
    DEFAULT_NUM_DEVICES,
    MFU_RANGE,
    PUE_UNKNOWN,
    RATED_POWER_LOW_FRACTION,
    REF_DEVICES_DEFAULT,
    REF_MFU_DEFAULT,
    REF_POWER_MODEL,
    REF_POWER_RANGE,
    REF_PRECISION_DEFAULT,
    REF_PUE_DEFAULT,
    REF_RESTART_OVERHEAD,
    REF_UTILISATION_DEFAULT,
    RESTART_OVERHEAD_HIGH,
    TIME_KEYS,
    TRAINING_UTILISATION,
)
from sustainml.estimate.training.inputs import (
    Assumption,
    _num,
    default_pue,
    fmt,
    number_setting,
    precision_setting,
    training_precision,
)
from sustainml.estimate.training.work import (
    _architecture,
    _mfu_assumption,
    _work,
    model_size,
    transformer_mfu,
)
from sustainml.estimate.transformer import TransformerSpec


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
    spec = _architecture(extra, architecture)
    flops, flops_source = _work(
        extra, assumptions, lines, None if timed else forward_flops, forward_source, maximum_samples,
        minimum_samples, active_parameters, spec,
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
    default_mfu, default_range, mfu_ref, realised = (
        transformer_mfu(device, model_size(assumptions, spec))
        if transformer
        else (DEFAULT_MFU, MFU_RANGE, REF_MFU_DEFAULT, False)
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
    # given by its length and a realised MFU (measured over whole runs) already include.
    low = energy_wh * (power_low / power_w if power_w else 1.0) * (pue_low / pue) * (mfu / mfu_high)
    high = energy_wh * (pue_high / pue) * (mfu / mfu_low)
    if time_source == "flops" and transformer and not (realised and mfu_value is None):
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
