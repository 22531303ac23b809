"""Submissions at the orchestrator's door, and the names the orchestrator protocol is known by.

The protocol's types (requests, replies, TaskEvent, TaskResult, task states) live in
``sustainml.messages.tasks``; the names below are kept for callers that import them from here.
The watch headers of a submission are described in ``handlers`` and docs/wire-format.md §9.8.
"""

from __future__ import annotations

import math
from typing import Any, Final

from sustainml.messages import SCHEMA_VERSION, MessageError, UserInput
from sustainml.messages import headers as H
from sustainml.messages.tasks import (
    OPS,
    TERMINAL_STATES,
    RequestError,
    TaskResult,
    TaskState,
    pack,
    task_id_from,
    unpack,
)

H_WATCH_MODE = H.H_WATCH_MODE  # submission header: how the watch_queue gets the task's events
WATCH_DIRECT = "direct"  # ... straight through the default exchange (the other mode: "bind")
WATCH_BIND = "bind"

__all__ = [
    "H_WATCH_MODE",
    "OPS",
    "TERMINAL_STATES",
    "WATCH_BIND",
    "WATCH_DIRECT",
    "RequestError",
    "SubmissionInvalid",
    "SubmitError",
    "TaskResult",
    "TaskState",
    "pack",
    "request",
    "task_id_from",
    "unpack",
    "validate_submission",
]


class SubmitError(ValueError):
    """A submission the orchestrator refuses (bad iteration base, unknown problem...)."""


class SubmissionInvalid(ValueError):
    """A submission breaks a limit checked at the door; the message names the field."""


#: Deepest nesting of maps/lists inside a submitted ``extra_data`` (the stored task must stay
#: readable by every view, which wraps it in a few levels of its own).
MAX_EXTRA_DATA_DEPTH: Final = 32

# extra_data keys the pipeline reads as numbers: (integer only, smallest value allowed).
NUMERIC_EXTRA_KEYS: Final[dict[str, tuple[bool, float]]] = {
    "num_outputs": (True, 1),
    "max_memory_footprint": (True, 0),
    "previous_problem_id": (True, 1),
    "num_devices": (True, 1),
    "epochs": (False, 0),
    "batch_size": (True, 1),
    "diffusion_steps": (True, 1),
    "image_resolution": (True, 1),
    "training_hours": (False, 0),
    "training_tokens": (False, 0),
    "training_samples": (False, 0),
    "model_parameters": (False, 0),
    "input_tokens": (False, 0),
    "output_tokens": (False, 0),
    "audio_seconds": (False, 0),
    "max_latency_ms": (False, 0),
    "min_throughput_per_s": (False, 0),
    "desired_carbon_footprint": (False, 0),
    "pue": (False, 1),
    "inferences": (False, 0),
    "carbon_intensity": (False, 0),
}


def validate_submission(user_input: UserInput, max_num_outputs: int) -> None:
    """The checks at the door of every submission (CLI, API and broker alike): ``extra_data``
    decodes (no extension types) and nests at most ``MAX_EXTRA_DATA_DEPTH`` levels, the numeric
    fields the pipeline reads are finite numbers in range, and ``num_outputs`` is at most
    ``max_num_outputs``. ``SubmissionInvalid`` names the first offending field."""
    target = user_input.desired_carbon_footprint
    if not math.isfinite(target) or target < 0:
        raise SubmissionInvalid(f"desired_carbon_footprint: expected a number >= 0 kgCO2e, got {target!r}")
    if user_input.previous_iteration < -1:
        raise SubmissionInvalid(
            f"previous_iteration: expected -1, 0 or an iteration >= 1, got {user_input.previous_iteration}"
        )
    try:
        extra = user_input.get_extra()
    except (ValueError, MessageError) as exc:
        raise SubmissionInvalid(f"extra_data: {exc}") from None
    _check_depth(extra, "extra_data", 1)
    for key, (integer, minimum) in NUMERIC_EXTRA_KEYS.items():
        if key not in extra or extra[key] is None:
            continue
        value = extra[key]
        kind = "an integer" if integer else "a finite number"
        ok = (
            not isinstance(value, bool)
            and isinstance(value, int | float)
            and (not integer or isinstance(value, int) or (isinstance(value, float) and value.is_integer()))
            and math.isfinite(value)
            and value >= minimum
        )
        if not ok:
            raise SubmissionInvalid(f"extra_data.{key}: expected {kind} >= {minimum:g}, got {value!r:.60}")
    num_outputs = extra.get("num_outputs")
    if num_outputs is not None and num_outputs > max_num_outputs:
        raise SubmissionInvalid(
            f"extra_data.num_outputs: at most {max_num_outputs} alternative proposals "
            f"(SUSTAINML_MAX_NUM_OUTPUTS), got {num_outputs!r:.60}"
        )


def _check_depth(value: Any, path: str, depth: int) -> None:
    if isinstance(value, dict | list):
        if depth > MAX_EXTRA_DATA_DEPTH:
            raise SubmissionInvalid(f"{path}: nests more than {MAX_EXTRA_DATA_DEPTH} levels deep")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _check_depth(item, f"{path}.{key}" if isinstance(value, dict) else f"{path}[{key}]", depth + 1)


def request(op: str, **fields: Any) -> bytes:
    """A raw request body: ``op`` and any fields, valid or not (to test what the orchestrator
    refuses; well-formed requests are ``messages.tasks.encode_request``)."""
    return pack({"schema_version": SCHEMA_VERSION, "op": op, **fields})
