"""Requests to the orchestrator over the broker, and the shape of a task's result.

Request body (msgpack map) sent to the ``<ns>.orchestrator.requests`` queue with ``reply_to`` and
``correlation_id``::

    {"schema_version": 1, "op": "submit", "user_input": {<UserInput wire record>}}
    {"schema_version": 1, "op": "result", "task_id": {"problem_id": 1, "iteration_id": 1}}
    {"schema_version": 1, "op": "status"}
    {"schema_version": 1, "op": "cancel", "task_id": {...} | None}
    {"schema_version": 1, "op": "list", "state": None, "problem_id": None, "limit": 50, "offset": 0}

A submission may name a ``watch_queue`` header: the task's events go to that queue from the first
one on. With the ``watch_mode`` header set to ``"direct"`` the orchestrator publishes them
straight to it through the default exchange (no binding: nothing to make before the task starts
or to remove after it); without it, it binds the queue to the task's events on ``<ns>.tasks``
and unbinds it once the task is over (see docs/wire-format.md §9.8).

Every reply is ``{"ok": true, "schema_version": 1, ...}`` or
``{"ok": false, "schema_version": 1, "error": "<what went wrong>"}``; every request is answered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import msgpack

from sustainml.messages import (
    RECORD_TYPES,
    SCHEMA_VERSION,
    MessageError,
    Record,
    TaskId,
    UserInput,
    from_wire,
    to_json_dict,
    to_wire,
)
from sustainml.messages.kinds import USER_INPUT
from sustainml.topology import PIPELINE, STAGES_BY_KIND

OPS = ("submit", "result", "status", "cancel", "list")
H_WATCH_MODE = "watch_mode"  # submission header: how the watch_queue gets the task's events
WATCH_DIRECT = "direct"  # ... straight through the default exchange (the other mode: "bind")
WATCH_BIND = "bind"
TERMINAL_STATES = ("succeeded", "failed", "cancelled")
TASK_STATES = ("queued", "running", *TERMINAL_STATES)


class RequestError(ValueError):
    """A request the orchestrator refuses; the message is returned to the caller."""


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


def pack(obj: dict[str, Any]) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes) -> dict[str, Any]:
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise RequestError(f"body: not a msgpack map ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise RequestError("body: not a msgpack map")
    return obj


def task_id_from(obj: Any, name: str = "task_id") -> TaskId:
    if not isinstance(obj, dict):
        raise RequestError(f"{name}: expected {{problem_id, iteration_id}}")
    try:
        return from_wire(TaskId, obj)
    except MessageError as exc:
        raise RequestError(f"{name}: {exc}") from None


@dataclass
class TaskResult:
    """Everything known about one task: its input, state and every stage output so far."""

    task_id: TaskId
    state: str
    user_input: UserInput | None
    outputs: dict[str, Record] = field(default_factory=dict)  # by record kind
    error: str | None = None
    current_stage: str | None = None
    note: str | None = None  # e.g. how an automatic carbon optimisation ended
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    def to_wire(self) -> dict[str, Any]:
        return {
            "task_id": to_wire(self.task_id),
            "state": self.state,
            "error": self.error,
            "current_stage": self.current_stage,
            "note": self.note,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "user_input": to_wire(self.user_input) if self.user_input else None,
            "outputs": {kind: to_wire(rec) for kind, rec in self.outputs.items()},
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> TaskResult:
        outputs = {kind: from_wire(RECORD_TYPES[kind], rec) for kind, rec in (d.get("outputs") or {}).items()}
        ui = d.get("user_input")
        return cls(
            task_id=task_id_from(d.get("task_id")),
            state=str(d.get("state")),
            user_input=from_wire(UserInput, ui) if ui else None,
            outputs=outputs,
            error=d.get("error"),
            current_stage=d.get("current_stage"),
            note=d.get("note"),
            created_at=datetime.fromisoformat(d["created_at"]) if d.get("created_at") else None,
            finished_at=datetime.fromisoformat(d["finished_at"]) if d.get("finished_at") else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The complete result as JSON: task id, state, the user input and the six outputs keyed by
        the original framework's node names, every field, lists as arrays, extra_data as objects."""
        out: dict[str, Any] = {
            "task_id": to_json_dict(self.task_id),
            "state": self.state,
            "error": self.error,
            "note": self.note,
            "USER_INPUT": to_json_dict(self.user_input) if self.user_input else None,
        }
        for stage in PIPELINE:
            rec = self.outputs.get(stage.kind)
            out[stage.node] = to_json_dict(rec) if rec is not None else None
        out["created_at"] = self.created_at.isoformat() if self.created_at else None
        out["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return out


def node_of(kind: str) -> str:
    return "ORCHESTRATOR" if kind == USER_INPUT else STAGES_BY_KIND[kind].node


def request(op: str, **fields: Any) -> bytes:
    return pack({"schema_version": SCHEMA_VERSION, "op": op, **fields})
