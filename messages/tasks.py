"""The orchestrator's protocol: task states, the TaskEvent it announces, the requests it answers on
``<ns>.orchestrator.requests`` and their replies, and the result of a task.

Every body is a msgpack map (docs/wire-format.md §9): a request is ``{"schema_version": 1,
"op": "<op>", ...op fields}``, a reply ``{"ok": true, ..., "schema_version": 1}`` or
``{"ok": false, "error": "<what went wrong>", "schema_version": 1}``.

Each type here turns into exactly the map the wire format documents (``to_wire``) and is read back
from it with the field named on any error (``from_wire``, ``RequestError``), so the orchestrator,
the remote client and the HTTP API's event hub share one reading of every message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Final

import msgpack

from sustainml.messages.codec import from_wire, to_json_dict, to_wire
from sustainml.messages.kinds import KIND_OF_NODE, NODE_OF_KIND
from sustainml.messages.types import (
    RECORD_TYPES,
    SCHEMA_VERSION,
    MessageError,
    Record,
    Status,
    TaskId,
    UserInput,
)

TASK_EVENT: Final = "TaskEvent"  # AMQP ``type`` of a task event
REPLY_TYPE: Final = "OrchestratorReply"  # AMQP ``type`` of a reply
MAX_SUBMISSION_KEY_CHARS: Final = 128
MAX_LIST_LIMIT: Final = 1000


class TaskState(StrEnum):
    """The state of a task, as stored and as sent (its value is the wire string)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES: Final = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})


class RequestError(ValueError):
    """A request or message that breaks the protocol; the message names the field."""


def pack(obj: Mapping[str, Any]) -> bytes:
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


def check_submission_key(key: object, name: str = "idempotency_key") -> str:
    """A valid idempotency key (1-128 printable ASCII characters) or ``ValueError`` naming it."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_SUBMISSION_KEY_CHARS:
        raise ValueError(
            f"{name}: expected a string of 1 to {MAX_SUBMISSION_KEY_CHARS} characters, got {key!r:.80}"
        )
    if not all(33 <= ord(c) < 127 for c in key):
        raise ValueError(f"{name}: only printable ASCII characters without spaces are allowed")
    return key


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RequestError(f"{name}: expected an ISO 8601 time, got {value!r:.60}")
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise RequestError(f"{name}: {exc}") from None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _state(value: Any, name: str = "state") -> TaskState:
    try:
        return TaskState(value)
    except ValueError:
        raise RequestError(f"{name}: expected one of {', '.join(TaskState)}, got {value!r}") from None


# -- what is known of a task -------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """A task's stored state columns: a TaskDB row and the final TaskEvent of a stored output
    both carry them."""

    state: TaskState
    error: str | None
    current_stage: str | None
    note: str | None
    created_at: datetime | None
    finished_at: datetime | None


@dataclass
class TaskResult:
    """Everything known about one task: its input, state and every stage output so far."""

    task_id: TaskId
    state: TaskState
    user_input: UserInput | None
    outputs: dict[str, Record] = field(default_factory=dict)  # by record kind
    error: str | None = None
    current_stage: str | None = None
    note: str | None = None  # e.g. how an automatic carbon optimisation ended
    created_at: datetime | None = None
    finished_at: datetime | None = None

    def __post_init__(self) -> None:
        self.state = TaskState(self.state)  # also when given as its wire string

    @classmethod
    def assemble(
        cls, task_id: TaskId, user_input: UserInput, outputs: Mapping[str, Record], snapshot: Snapshot
    ) -> TaskResult:
        """The one way a result is put together, from the database or from a task's events: the
        input (stamped with the id, which did not exist when it was stored or sent), the outputs
        by kind and the task's state columns."""
        user_input.task_id = task_id
        return cls(
            task_id=task_id,
            state=snapshot.state,
            user_input=user_input,
            outputs=dict(outputs),
            error=snapshot.error,
            current_stage=snapshot.current_stage,
            note=snapshot.note,
            created_at=snapshot.created_at,
            finished_at=snapshot.finished_at,
        )

    @property
    def done(self) -> bool:
        return self.state.is_terminal

    def to_wire(self) -> dict[str, Any]:
        return {
            "task_id": to_wire(self.task_id),
            "state": self.state.value,
            "error": self.error,
            "current_stage": self.current_stage,
            "note": self.note,
            "created_at": _iso(self.created_at),
            "finished_at": _iso(self.finished_at),
            "user_input": to_wire(self.user_input) if self.user_input else None,
            "outputs": {kind: to_wire(rec) for kind, rec in self.outputs.items()},
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> TaskResult:
        outputs = {kind: from_wire(RECORD_TYPES[kind], rec) for kind, rec in (d.get("outputs") or {}).items()}
        ui = d.get("user_input")
        return cls(
            task_id=task_id_from(d.get("task_id")),
            state=_state(d.get("state")),
            user_input=from_wire(UserInput, ui) if ui else None,
            outputs=outputs,
            error=d.get("error"),
            current_stage=d.get("current_stage"),
            note=d.get("note"),
            created_at=_time(d.get("created_at"), "created_at"),
            finished_at=_time(d.get("finished_at"), "finished_at"),
        )

    def to_json(self) -> dict[str, Any]:
        """The complete result as JSON: task id, state, the user input and the six outputs keyed by
        the original framework's node names, every field, lists as arrays, extra_data as objects."""
        out: dict[str, Any] = {
            "task_id": to_json_dict(self.task_id),
            "state": self.state.value,
            "error": self.error,
            "note": self.note,
            "USER_INPUT": to_json_dict(self.user_input) if self.user_input else None,
        }
        for kind, node in NODE_OF_KIND.items():  # pipeline order
            rec = self.outputs.get(kind)
            out[node] = to_json_dict(rec) if rec is not None else None
        out["created_at"] = _iso(self.created_at)
        out["finished_at"] = _iso(self.finished_at)
        return out


@dataclass(frozen=True)
class TaskSummary:
    """One task of a listing. Over the broker only the first six fields travel (§9.6); the
    in-process orchestrator also fills the note, the base iteration and the description."""

    task_id: TaskId
    state: TaskState
    error: str | None
    current_stage: str | None
    created_at: datetime | None
    finished_at: datetime | None
    note: str | None = None
    base_iteration: int | None = None
    description: str | None = None  # the input's problem_short_description

    def to_wire(self) -> dict[str, Any]:
        return {
            "task_id": {"problem_id": self.task_id.problem_id, "iteration_id": self.task_id.iteration_id},
            "state": self.state.value,
            "error": self.error,
            "current_stage": self.current_stage,
            "created_at": _iso(self.created_at),
            "finished_at": _iso(self.finished_at),
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> TaskSummary:
        return cls(
            task_id=task_id_from(d.get("task_id")),
            state=_state(d.get("state")),
            error=_opt_str(d.get("error")),
            current_stage=_opt_str(d.get("current_stage")),
            created_at=_time(d.get("created_at"), "created_at"),
            finished_at=_time(d.get("finished_at"), "finished_at"),
        )


# -- TaskEvent ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskEvent:
    """A stored change of a task (§9.7). ``record`` is the wire map of the output just stored (it
    stays a map: a live view that does not need the bulky fields never decodes them); ``note``
    and the timestamps are set on the final event of a stored output only."""

    task_id: TaskId
    state: TaskState
    stage: str | None
    completed: str | None = None
    error: str | None = None
    record: dict[str, Any] | None = None
    note: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "type": TASK_EVENT,
            "task_id": to_wire(self.task_id),
            "state": self.state.value,
            "stage": self.stage,
            "completed": self.completed,
            "error": self.error,
            "record": self.record,
            "note": self.note,
            "created_at": _iso(self.created_at),
            "finished_at": _iso(self.finished_at),
        }

    def encode(self) -> bytes:
        return pack(self.to_wire())

    @staticmethod
    def encode_progress(task_id: Mapping[str, Any], stage: str, completed: str, record: Any) -> bytes:
        """The ``running`` event of an intermediate output, built from wire maps as they came in
        (no record is decoded): the same bytes ``TaskEvent(..., record=to_wire(r)).encode()`` gives
        for a well-formed output."""
        return pack(
            {
                "schema_version": SCHEMA_VERSION,
                "type": TASK_EVENT,
                "task_id": task_id,
                "state": TaskState.RUNNING.value,
                "stage": stage,
                "completed": completed,
                "error": None,
                "record": record,
                "note": None,
                "created_at": None,
                "finished_at": None,
            }
        )

    @classmethod
    def decode(cls, body: bytes) -> TaskEvent:
        """``RequestError`` or ``MessageError`` when the body is not a TaskEvent."""
        d = unpack(body)
        completed = d.get("completed")
        raw = d.get("record")
        return cls(
            task_id=from_wire(TaskId, d.get("task_id")),
            state=_state(d.get("state")),
            stage=_opt_str(d.get("stage")),
            completed=str(completed) if completed else None,
            error=_opt_str(d.get("error")),
            record=raw if completed and isinstance(raw, dict) else None,
            note=_opt_str(d.get("note")),
            created_at=_time(d.get("created_at"), "created_at"),
            finished_at=_time(d.get("finished_at"), "finished_at"),
        )

    @property
    def kind(self) -> str | None:
        """The record kind of the completed stage's output (``KeyError`` for an unknown node)."""
        if not self.completed:
            return None
        node = self.completed.strip().replace("-", "_").upper()
        if node not in KIND_OF_NODE:
            raise KeyError(f"unknown node {self.completed!r}; expected one of: {', '.join(KIND_OF_NODE)}")
        return KIND_OF_NODE[node]

    def output(self, leave_out: tuple[str, ...] = ()) -> Record | None:
        """The stored output, decoded; fields in ``leave_out`` are dropped before decoding."""
        kind = self.kind
        if kind is None or self.record is None:
            return None
        raw = {k: v for k, v in self.record.items() if k not in leave_out} if leave_out else self.record
        return from_wire(RECORD_TYPES[kind], raw)

    def snapshot(self) -> Snapshot | None:
        """The task's state columns, carried by the final event of a stored output (None on every
        other event: ask for the result then)."""
        if not self.state.is_terminal or self.created_at is None:
            return None
        return Snapshot(self.state, self.error, self.stage, self.note, self.created_at, self.finished_at)


# -- requests ----------------------------------------------------------------------------------------
def _int_field(
    req: dict[str, Any], name: str, default: int | None, *, minimum: int, maximum: int | None = None
) -> Any:
    value = req.get(name, default)
    if value is None:
        return default
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bound = f" and <= {maximum}" if maximum is not None else ""
        raise RequestError(f"{name}: expected an integer >= {minimum}{bound}, got {value!r}")
    return value


@dataclass(frozen=True)
class SubmitRequest:
    op: ClassVar[str] = "submit"
    user_input: UserInput
    idempotency_key: str | None = None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"user_input": to_wire(self.user_input)}
        if self.idempotency_key is not None:
            out["idempotency_key"] = self.idempotency_key
        return out

    @classmethod
    def from_wire(cls, req: dict[str, Any]) -> SubmitRequest:
        raw = req.get("user_input")
        if not isinstance(raw, dict):
            raise RequestError("user_input: expected a UserInput record (map)")
        user_input = from_wire(UserInput, raw)
        key = req.get("idempotency_key")
        return cls(user_input, check_submission_key(key) if key is not None else None)


@dataclass(frozen=True)
class ResultRequest:
    op: ClassVar[str] = "result"
    task_id: TaskId

    def fields(self) -> dict[str, Any]:
        return {"task_id": to_wire(self.task_id)}

    @classmethod
    def from_wire(cls, req: dict[str, Any]) -> ResultRequest:
        return cls(task_id_from(req.get("task_id")))


@dataclass(frozen=True)
class StatusRequest:
    op: ClassVar[str] = "status"

    def fields(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_wire(cls, req: dict[str, Any]) -> StatusRequest:
        return cls()


@dataclass(frozen=True)
class CancelRequest:
    op: ClassVar[str] = "cancel"
    task_id: TaskId | None = None  # None: the latest unfinished task

    def fields(self) -> dict[str, Any]:
        return {"task_id": to_wire(self.task_id) if self.task_id else None}

    @classmethod
    def from_wire(cls, req: dict[str, Any]) -> CancelRequest:
        raw = req.get("task_id")
        return cls(task_id_from(raw) if raw is not None else None)


@dataclass(frozen=True)
class ListRequest:
    op: ClassVar[str] = "list"
    state: TaskState | None = None
    problem_id: int | None = None
    limit: int = 50
    offset: int = 0

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state.value if self.state else None,
            "limit": self.limit,
            "offset": self.offset,
        }
        if self.problem_id is not None:
            out["problem_id"] = self.problem_id
        return out

    @classmethod
    def from_wire(cls, req: dict[str, Any]) -> ListRequest:
        state = req.get("state")
        return cls(
            state=_state(state) if state is not None else None,
            problem_id=_int_field(req, "problem_id", None, minimum=1),
            limit=_int_field(req, "limit", 50, minimum=1, maximum=MAX_LIST_LIMIT),
            offset=_int_field(req, "offset", 0, minimum=0),
        )


Request = SubmitRequest | ResultRequest | StatusRequest | CancelRequest | ListRequest
REQUEST_TYPES: Final[dict[str, type[Request]]] = {
    t.op: t for t in (SubmitRequest, ResultRequest, StatusRequest, CancelRequest, ListRequest)
}
OPS: Final = tuple(REQUEST_TYPES)


def encode_request(req: Request) -> bytes:
    return pack({"schema_version": SCHEMA_VERSION, "op": req.op, **req.fields()})


def decode_request(body: bytes) -> Request:
    """The request in ``body``; ``RequestError``/``MessageError``/``ValueError`` name what is wrong."""
    req = unpack(body)
    version = req.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
        raise RequestError(f"schema_version: expected an integer from 1 to {SCHEMA_VERSION}, got {version!r}")
    op = req.get("op")
    kind = REQUEST_TYPES.get(op) if isinstance(op, str) else None
    if kind is None:
        raise RequestError(f"op: unknown operation {op!r}")
    return kind.from_wire(req)


# -- replies -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplicaInfo:
    """One live replica of a node, as the orchestrator's heartbeat registry sees it (§9.4)."""

    node_name: str
    replica_id: str
    status: Status
    age_s: float  # seconds since its last status message
    in_flight: int
    processed: int
    error_description: str
    task_id: str | None  # "p.i" of the task it works on

    def to_wire(self) -> dict[str, Any]:
        return {
            "node_name": self.node_name,
            "replica_id": self.replica_id,
            "status": int(self.status),
            "age_s": self.age_s,
            "in_flight": self.in_flight,
            "processed": self.processed,
            "error_description": self.error_description,
            "task_id": self.task_id,
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> ReplicaInfo:
        return cls(
            node_name=str(d["node_name"]),
            replica_id=str(d["replica_id"]),
            status=Status(d["status"]),
            age_s=float(d["age_s"]),
            in_flight=int(d["in_flight"]),
            processed=int(d["processed"]),
            error_description=str(d.get("error_description") or ""),
            task_id=_opt_str(d.get("task_id")),
        )


@dataclass(frozen=True)
class SubmitReply:
    task_id: TaskId

    def to_wire(self) -> dict[str, Any]:
        return {"ok": True, "task_id": to_wire(self.task_id)}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> SubmitReply:
        return cls(from_wire(TaskId, d["task_id"]))


@dataclass(frozen=True)
class ResultReply:
    result: TaskResult

    def to_wire(self) -> dict[str, Any]:
        return {"ok": True, "result": self.result.to_wire()}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> ResultReply:
        return cls(TaskResult.from_wire(d["result"]))


@dataclass(frozen=True)
class NodeReport:
    """The reply to ``status``: each node type's summary status and every live replica."""

    nodes: dict[str, Status]
    replicas: list[ReplicaInfo]

    def to_wire(self) -> dict[str, Any]:
        return {
            "ok": True,
            "nodes": {name: int(s) for name, s in self.nodes.items()},
            "replicas": [r.to_wire() for r in self.replicas],
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> NodeReport:
        return cls(
            nodes={str(name): Status(v) for name, v in d["nodes"].items()},
            replicas=[ReplicaInfo.from_wire(r) for r in d["replicas"]],
        )


@dataclass(frozen=True)
class CancelReply:
    task_id: TaskId | None  # None: there was nothing to cancel

    def to_wire(self) -> dict[str, Any]:
        return {"ok": True, "task_id": to_wire(self.task_id) if self.task_id else None}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> CancelReply:
        raw = d.get("task_id")
        return cls(from_wire(TaskId, raw) if raw else None)


@dataclass(frozen=True)
class ListReply:
    tasks: list[TaskSummary]

    def to_wire(self) -> dict[str, Any]:
        return {"ok": True, "tasks": [t.to_wire() for t in self.tasks]}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> ListReply:
        return cls([TaskSummary.from_wire(t) for t in d["tasks"]])


@dataclass(frozen=True)
class ErrorReply:
    error: str

    def to_wire(self) -> dict[str, Any]:
        return {"ok": False, "error": self.error}


Reply = SubmitReply | ResultReply | NodeReport | CancelReply | ListReply | ErrorReply


def encode_reply(reply: Reply) -> bytes:
    return pack({**reply.to_wire(), "schema_version": SCHEMA_VERSION})
