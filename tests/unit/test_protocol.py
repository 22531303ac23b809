"""The orchestrator protocol's types (messages/tasks.py): each one is exactly the map
docs/wire-format.md §9 documents, reads back to itself, and names the field it refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgpack
import pytest

from sustainml.messages import SCHEMA_VERSION, MLModel, Status, TaskId, UserInput, to_wire
from sustainml.messages.tasks import (
    CancelReply,
    CancelRequest,
    ErrorReply,
    ListReply,
    ListRequest,
    NodeReport,
    ReplicaInfo,
    RequestError,
    ResultRequest,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
    TaskEvent,
    TaskResult,
    TaskState,
    TaskSummary,
    decode_request,
    encode_reply,
    encode_request,
)
from sustainml.orchestrator.client import Client
from sustainml.orchestrator.core import Orchestrator
from sustainml.orchestrator.service import OrchestratorService

TID = TaskId(problem_id=3, iteration_id=2)
T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def _raw(body: bytes) -> list[tuple[str, Any]]:
    """The map's entries in wire order (the byte form depends on it)."""
    return list(msgpack.unpackb(body, raw=False).items())


def test_requests_are_the_documented_maps_in_order() -> None:
    ui = UserInput(problem_short_description="count cars")
    assert _raw(encode_request(SubmitRequest(ui, "client-1"))) == [
        ("schema_version", SCHEMA_VERSION),
        ("op", "submit"),
        ("user_input", to_wire(ui)),
        ("idempotency_key", "client-1"),
    ]
    assert _raw(encode_request(ResultRequest(TID)))[2:] == [("task_id", {"problem_id": 3, "iteration_id": 2})]
    assert _raw(encode_request(StatusRequest())) == [("schema_version", SCHEMA_VERSION), ("op", "status")]
    assert _raw(encode_request(CancelRequest()))[2:] == [("task_id", None)]
    assert _raw(encode_request(ListRequest(TaskState.RUNNING, limit=5)))[2:] == [
        ("state", "running"),
        ("limit", 5),
        ("offset", 0),
    ]


@pytest.mark.parametrize(
    "request_",
    [
        SubmitRequest(UserInput(modality="image"), "k"),
        SubmitRequest(UserInput()),
        ResultRequest(TID),
        StatusRequest(),
        CancelRequest(TID),
        CancelRequest(),
        ListRequest(TaskState.FAILED, problem_id=7, limit=1000, offset=3),
    ],
)
def test_every_request_reads_back_to_itself(request_: Any) -> None:
    assert decode_request(encode_request(request_)) == request_


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"schema_version": 99, "op": "status"}, "schema_version: expected an integer from 1 to"),
        ({"schema_version": True, "op": "status"}, "schema_version"),
        ({"schema_version": 1, "op": "frobnicate"}, "op: unknown operation 'frobnicate'"),
        ({"schema_version": 1, "op": "submit", "user_input": 5}, "user_input: expected a UserInput record"),
        (
            {"schema_version": 1, "op": "result", "task_id": "1.1"},
            "task_id: expected {problem_id, iteration_id}",
        ),
        ({"schema_version": 1, "op": "list", "state": "lost"}, "state: expected one of queued, running"),
        (
            {"schema_version": 1, "op": "list", "limit": 0},
            "limit: expected an integer >= 1 and <= 1000, got 0",
        ),
        ({"schema_version": 1, "op": "list", "offset": False}, "offset: expected an integer >= 0"),
    ],
)
def test_a_bad_request_names_its_field(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(RequestError, match=error.replace("{", r"\{").replace("}", r"\}")):
        decode_request(msgpack.packb(fields))


def test_a_bad_idempotency_key_is_refused() -> None:
    body = msgpack.packb({"schema_version": 1, "op": "submit", "user_input": {}, "idempotency_key": "a b"})
    with pytest.raises(ValueError, match="idempotency_key: only printable ASCII"):
        decode_request(body)


def test_replies_put_ok_first_and_the_schema_version_last() -> None:
    replica = ReplicaInfo("ML_MODEL", "r1", Status.IDLE, 0.5, 0, 3, "", None)
    replies: list[SubmitReply | CancelReply | NodeReport | ListReply] = [
        SubmitReply(TID),
        CancelReply(None),
        NodeReport({"ML_MODEL": Status.IDLE}, [replica]),
        ListReply([TaskSummary(TID, TaskState.QUEUED, None, "APP_REQUIREMENTS", T0, None)]),
    ]
    for reply in replies:
        entries = _raw(encode_reply(reply))
        assert entries[0] == ("ok", True) and entries[-1] == ("schema_version", SCHEMA_VERSION)
        assert type(reply).from_wire(dict(entries)) == reply
    assert _raw(encode_reply(ErrorReply("task 9.1 does not exist"))) == [
        ("ok", False),
        ("error", "task 9.1 does not exist"),
        ("schema_version", SCHEMA_VERSION),
    ]
    assert dict(_raw(encode_reply(replies[2])))["nodes"] == {"ML_MODEL": int(Status.IDLE)}


def test_task_event_carries_its_output_and_a_final_event_the_task_snapshot() -> None:
    model = MLModel(model="resnet-50", task_id=TID)
    start = TaskEvent(TID, TaskState.RUNNING, "ML_MODEL_METADATA")
    assert list(start.to_wire()) == [
        "schema_version", "type", "task_id", "state", "stage", "completed", "error", "record", "note",
        "created_at", "finished_at",
    ]  # fmt: skip
    assert start.snapshot() is None and start.output() is None
    final = TaskEvent(
        TID,
        TaskState.SUCCEEDED,
        "CARBON_FOOTPRINT",
        completed="ML_MODEL",
        record=to_wire(model),
        note="done",
        created_at=T0,
        finished_at=T0,
    )
    back = TaskEvent.decode(final.encode())
    assert back == final and back.kind == "ml_model" and back.output() == model
    assert back.to_wire()["created_at"] == T0.isoformat()
    snapshot = back.snapshot()
    assert snapshot is not None and snapshot.state is TaskState.SUCCEEDED and snapshot.note == "done"
    slim = back.output(leave_out=("model",))
    assert isinstance(slim, MLModel) and slim.model == MLModel().model


def test_a_result_is_assembled_with_its_id_stamped_and_reads_back_from_the_wire() -> None:
    ui = UserInput(problem_short_description="count cars")
    snapshot = TaskEvent(
        TID, TaskState.FAILED, "ML_MODEL", error="ML_MODEL: no model", created_at=T0
    ).snapshot()
    assert snapshot is not None
    res = TaskResult.assemble(TID, ui, {"ml_model": MLModel(model="x")}, snapshot)
    assert res.user_input is not None and res.user_input.task_id == TID
    assert res.done and res.error == "ML_MODEL: no model" and res.current_stage == "ML_MODEL"
    assert TaskResult.from_wire(res.to_wire()) == res
    assert res.to_json()["state"] == "failed"


def test_the_orchestrator_and_the_client_are_both_the_service() -> None:
    def services(orchestrator: Orchestrator, client: Client) -> list[OrchestratorService]:
        return [orchestrator, client]  # checked by mypy: both implement every member

    members = [m for m in vars(OrchestratorService) if not m.startswith("_")]
    assert {"submit", "result", "tasks", "watch", "cancel", "nodes"} <= set(members)
    for cls in (Orchestrator, Client):
        missing = [m for m in members if not hasattr(cls, m) and m not in ("id", "settings", "topology")]
        assert missing == [], cls
