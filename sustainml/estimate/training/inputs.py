"""The inputs of a training estimate: the settings read from ``extra_data`` (each checked and
named in its error), the precision and default PUE of a device, and the ``Assumption`` that
records where every input came from."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sustainml.catalogue.schema import HardwareEntry
from sustainml.estimate.training.defaults import (
    PRECISIONS,
    PUE_BY_CLASS,
    PUE_UNKNOWN,
    TRAINING_PRECISION_PREFERENCE,
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


def _num(value: float) -> float | int:
    """Whole numbers as int in the JSON output (50000, not 50000.0)."""
    return int(value) if value.is_integer() and abs(value) < 2**63 else value
