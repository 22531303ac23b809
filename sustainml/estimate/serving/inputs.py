"""The inputs of a serving scenario as HW_RESOURCES reads them (``read_inputs``: the explicit
``extra_data`` over the requirements extracted from the text) and the ``Scenario`` they make
(``build_scenario``, defaults filled and listed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sustainml.catalogue.schema import HardwareEntry
from sustainml.estimate import transformer as tf
from sustainml.estimate.serving.scenario import (
    DEFAULTS,
    TOKENS_BY_GOAL,
    Kind,
    Scenario,
    applies_to,
    default_engine,
    resolve_engine,
)

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
        assumed=tuple(k for k in assumed if applies_to(kind, k)),
    ).validated()
