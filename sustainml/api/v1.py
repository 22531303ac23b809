"""The versioned API (``/v1``), plus ``/healthz`` and ``/metrics``. docs/api.md describes every
route and the server-sent event format."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import (
    APIRouter,
    Body,
    File,
    HTTPException,
    Query,
    Request,
    UploadFile,
)
from fastapi import (
    Path as PathParam,
)
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError

from sustainml.api import views
from sustainml.api.deps import (
    AUTH,
    BROKER,
    INVALID,
    NOT_FOUND,
    TOO_LARGE,
    Auth,
    Ctx,
    IdempotencyKey,
    Responses,
    field_path,
    validation_errors,
)
from sustainml.api.events import replica_json
from sustainml.api.metrics import CONTENT_TYPE
from sustainml.api.schemas import (
    LONG_POLL_MAX_S,
    DatasetAnswer,
    ErrorBody,
    HealthAnswer,
    NodeConfigAnswer,
    NodeConfigBody,
    NodesAnswer,
    TaskAccepted,
    TaskBatchAccepted,
    TaskBatchBody,
    TaskDetail,
    TaskList,
    TaskStateName,
    V1UserInputBody,
)
from sustainml.api.security import prune_uploads
from sustainml.datasets import allowed_data_dirs, dataset_formats
from sustainml.messages import MessageError, TaskId, UserInput
from sustainml.messages.tasks import TaskState
from sustainml.orchestrator.service import SubmitRefused

log = logging.getLogger(__name__)

router = APIRouter()
ProblemId = Annotated[int, PathParam(ge=1, le=2**32 - 1)]
IterationId = Annotated[int, PathParam(ge=1, le=2**32 - 1)]
Route = TypeVar("Route", bound=Callable[..., Any])
UNSUPPORTED: Responses = {415: {"model": ErrorBody, "description": "unsupported file type"}}
UNKNOWN_NODE: Responses = {404: {"model": ErrorBody, "description": "unknown node"}}
COPY_CHUNK = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _tid(p: int, i: int) -> TaskId:
    return TaskId(problem_id=p, iteration_id=i)


# -- tasks -----------------------------------------------------------------------------------------
def _creates_tasks(path: str, answer: type[BaseModel], responses: Responses) -> Callable[[Route], Route]:
    """A route that creates tasks: ``201`` with ``answer``, token required."""
    return router.post(
        path, status_code=201, response_model=answer, dependencies=[Auth], tags=["tasks"], responses=responses
    )


@_creates_tasks("/v1/tasks", TaskAccepted, {**INVALID, **AUTH, **BROKER, **TOO_LARGE})
def submit_task(ctx: Ctx, body: V1UserInputBody, idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Submit a problem (the body of the original `POST /user_input`). With an `Idempotency-Key`
    header, a retry with the same key returns the task the first request created."""
    ui = views.user_input_from_body(body.model_dump(exclude_none=True))
    task_id = ctx.orch.submit(ui, idempotency_key=f"http-{idempotency_key}" if idempotency_key else None)
    return {"task_id": views.task_id_json(task_id), "state": ctx.orch.task(task_id).state.value}


@_creates_tasks(
    "/v1/tasks/batch",
    TaskBatchAccepted,
    {
        **AUTH,
        **BROKER,
        **TOO_LARGE,
        422: {"model": TaskBatchAccepted, "description": "bad body, or all refused"},
    },
)
def submit_batch(ctx: Ctx, body: TaskBatchBody, idempotency_key: IdempotencyKey = None) -> Any:
    """Submit many problems at once: each item is checked as `POST /v1/tasks` checks its body,
    and every valid one is submitted even when others are refused. With an
    `Idempotency-Key` header, a retry of the same batch returns the tasks the first created."""
    outcomes: list[dict[str, Any]] = [
        {"index": i, "task_id": None, "error": None} for i in range(len(body.tasks))
    ]
    accepted: list[tuple[int, UserInput]] = []
    for index, item in enumerate(body.tasks):
        try:
            accepted.append((index, _batch_item(index, item)))
        except ValueError as exc:  # MessageError and ValidationError too
            outcomes[index]["error"] = str(exc)
    keys = [f"http-batch-{idempotency_key}-{index}" for index, _ in accepted] if idempotency_key else None
    submitted = ctx.orch.submit_many([ui for _, ui in accepted], idempotency_keys=keys) if accepted else []
    for (index, _), outcome in zip(accepted, submitted, strict=True):
        if isinstance(outcome, SubmitRefused):
            outcomes[index]["error"] = f"tasks[{index}]: {outcome.error}"
        else:
            outcomes[index]["task_id"] = views.task_id_json(outcome)
    errors = [o["error"] for o in outcomes if o["error"] is not None]
    answer = {
        "submitted": len(outcomes) - len(errors),
        "refused": len(errors),
        "tasks": outcomes,
        "error": errors[0] if errors else None,
    }
    return JSONResponse(answer, status_code=201 if answer["submitted"] else 422)


def _batch_item(index: int, item: dict[str, Any]) -> UserInput:
    """Item ``index`` of a batch as a UserInput; ``ValueError`` naming ``tasks[index]`` and the field."""
    try:
        body = V1UserInputBody.model_validate(item)
    except ValidationError as exc:
        first = validation_errors(list(exc.errors()))[0]
        raise ValueError(f"tasks[{index}].{field_path(first['loc'])}: {first['msg']}") from None
    try:
        return views.user_input_from_body(body.model_dump(exclude_none=True))
    except MessageError as exc:
        raise ValueError(f"tasks[{index}]: {exc}") from None


@router.get("/v1/tasks", response_model=TaskList, tags=["tasks"], responses={**INVALID})
def list_tasks(
    ctx: Ctx,
    state: TaskStateName | None = None,
    problem_id: Annotated[int | None, Query(ge=1, le=2**32 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    summary: Annotated[
        bool, Query(description="include each task's goal, model, hardware and figures (`summary`)")
    ] = True,
) -> dict[str, Any]:
    """Tasks, newest first, optionally filtered by state and problem, one page at a time; each with
    its headline figures unless `summary=false`."""
    rows = ctx.orch.tasks(TaskState(state) if state else None, problem_id, limit, offset)
    # Only the four records a summary needs are decoded; an unreadable one leaves its figures out.
    tasks = [
        views.task_summary(
            r, views.task_figures(ctx.orch.outputs(r.task_id, views.SUMMARY_KINDS)) if summary else None
        )
        for r in rows
    ]
    return {"tasks": tasks, "limit": limit, "offset": offset, "count": len(tasks)}


@router.get(
    "/v1/tasks/{p}/{i}", response_model=TaskDetail, tags=["tasks"], responses={**NOT_FOUND, **INVALID}
)
async def get_task(
    ctx: Ctx,
    p: ProblemId,
    i: IterationId,
    wait: Annotated[
        float,
        Query(ge=0, le=LONG_POLL_MAX_S, description="seconds to hold the answer for the task's end, max 300"),
    ] = 0.0,
    omit: Annotated[
        str | None,
        Query(
            max_length=200, description="record fields to leave out, comma-separated: input_batch,raw_model"
        ),
    ] = None,
) -> Any:
    """The complete result; with `wait` > 0, held until the task finishes or `wait` s pass."""
    try:
        res, _ = await ctx.wait_result(_tid(p, i), lambda r: r.done, wait)
    except KeyError:
        raise HTTPException(404, f"task {p}.{i} does not exist") from None
    return views.omit_fields(views.task_detail(res), (omit or "").split(","))


@_creates_tasks(
    "/v1/tasks/{p}/{i}/iterate", TaskAccepted, {**NOT_FOUND, **INVALID, **AUTH, **BROKER, **TOO_LARGE}
)
def iterate_task(
    ctx: Ctx, p: ProblemId, i: IterationId, body: Annotated[V1UserInputBody | None, Body()] = None
) -> dict[str, Any]:
    """A new iteration branched from task {p, i}: inherits its input (the body's fields override
    it) and gets its outputs as baselines."""
    try:
        ctx.orch.task(_tid(p, i))
    except KeyError:
        raise HTTPException(404, f"task {p}.{i} does not exist") from None
    raw = body.model_dump(exclude_none=True) if body is not None else {}
    extra = raw.get("extra_data")
    if isinstance(extra, str):
        extra = json.loads(extra) if extra.strip() else {}
    if extra is not None and not isinstance(extra, dict):
        raise HTTPException(422, "UserInput.extra_data: must be an object")
    raw["extra_data"] = {**(extra or {}), "previous_problem_id": p}
    raw["previous_iteration"] = i
    ui = views.user_input_from_body(raw)
    if "num_outputs" not in (extra or {}):  # inherit the base's unless the body sets it
        merged = ui.get_extra()
        merged.pop("num_outputs", None)
        if "type" not in raw and "model_family" not in (extra or {}):
            merged.pop("model_family", None)
        ui.set_extra(merged)
    task_id = ctx.orch.submit(ui)
    return {"task_id": views.task_id_json(task_id), "state": ctx.orch.task(task_id).state.value}


@router.post(
    "/v1/tasks/{p}/{i}/cancel",
    response_model=TaskAccepted,
    dependencies=[Auth],
    tags=["tasks"],
    responses={**NOT_FOUND, **INVALID, **AUTH, **BROKER},
)
def cancel_task(ctx: Ctx, p: ProblemId, i: IterationId) -> dict[str, Any]:
    """Cancel the task; one that had already finished keeps (and reports) its state."""
    try:
        ctx.orch.cancel(_tid(p, i))
    except KeyError:
        raise HTTPException(404, f"task {p}.{i} does not exist") from None
    return {"task_id": {"problem_id": p, "iteration_id": i}, "state": ctx.orch.task(_tid(p, i)).state.value}


@router.get(
    "/v1/tasks/{p}/{i}/export",
    tags=["tasks"],
    responses={
        **NOT_FOUND,
        **INVALID,
        200: {"content": {"application/json": {}, "text/csv": {}}, "description": "the result as a file"},
    },
)
def export_task(ctx: Ctx, p: ProblemId, i: IterationId, format: Literal["json", "csv"] = "json") -> Response:
    """Download the result: `json` (as `GET /v1/tasks/{p}/{i}`) or `csv` (`node,field,value`)."""
    try:
        detail = views.task_detail(ctx.orch.result(_tid(p, i)))
    except KeyError:
        raise HTTPException(404, f"task {p}.{i} does not exist") from None
    name = f"sustainml-task-{p}.{i}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "csv":
        return Response(views.export_csv(detail), media_type="text/csv; charset=utf-8", headers=headers)
    return JSONResponse(detail, headers=headers)


# -- nodes -----------------------------------------------------------------------------------------
@router.get("/v1/nodes", response_model=NodesAnswer, tags=["nodes"])
def nodes(ctx: Ctx) -> dict[str, Any]:
    """Status per node type and per live replica."""
    report = ctx.orch.nodes()
    return {
        "nodes": {name: s.name for name, s in report.nodes.items()},
        "replicas": [replica_json(r) for r in report.replicas],
    }


@router.post(
    "/v1/nodes/{node}/config",
    response_model=NodeConfigAnswer,
    dependencies=[Auth],
    tags=["nodes"],
    responses={**UNKNOWN_NODE, **INVALID, **AUTH, **BROKER, **TOO_LARGE},
)
def node_config(ctx: Ctx, node: str, body: NodeConfigBody) -> dict[str, Any]:
    """A configuration request to one node type; the node's own answer comes back."""
    try:
        answer = ctx.orch.config_request(node, body.configuration, body.timeout)
    except KeyError as exc:  # the service names no such node
        raise HTTPException(404, str(exc.args[0])) from None
    return views.config_v1(answer)


# -- datasets --------------------------------------------------------------------------------------
def _safe_name(filename: str) -> tuple[str, str]:
    """(stem, extension) of an uploaded file name, reduced to safe characters; the directory part
    and leading dots are dropped, so the name can never leave the upload folder."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = _UNSAFE.sub("_", stem).strip("._-")[:80] or "dataset"
    return stem, "." + ext.casefold() if ext else ""


@router.post(
    "/v1/datasets",
    status_code=201,
    response_model=DatasetAnswer,
    dependencies=[Auth],
    tags=["datasets"],
    responses={**INVALID, **AUTH, **TOO_LARGE, **UNSUPPORTED},
)
def upload_dataset(
    ctx: Ctx, file: Annotated[UploadFile, File(description="the dataset file")]
) -> dict[str, Any]:
    """Store an uploaded dataset under the first allowed data directory and profile it through
    ML_MODEL_METADATA's `dataset_path` configuration request."""
    formats = dataset_formats()
    stem, ext = _safe_name(file.filename or "")
    if ext not in formats:
        raise HTTPException(
            415, f"file: unsupported type {ext or '(none)'!r}; supported: {', '.join(sorted(formats))}"
        )
    folder = allowed_data_dirs(ctx.settings)[0] / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    removed = prune_uploads(
        folder,
        quota_bytes=ctx.settings.upload_quota_bytes,
        incoming_bytes=ctx.settings.upload_max_bytes,
        retention_s=ctx.settings.upload_retention_days * 86_400,
    )
    if removed:
        log.info("uploads: removed %d old dataset(s) (retention / quota)", len(removed))
    target = folder / f"{stem}-{uuid.uuid4().hex[:8]}{ext}"
    size = _copy_limited(file, target, ctx.settings.upload_max_bytes)
    answer = ctx.orch.config_request("ML_MODEL_METADATA", f"dataset_path, {target}")
    parsed = views.config_v1(answer)["parsed"]
    profile = parsed if answer.success and isinstance(parsed, dict) else None
    error = None
    if profile is None:
        error = (
            str(parsed.get("error"))
            if isinstance(parsed, dict) and parsed.get("error")
            else answer.configuration
        )
    return {
        "path": str(target),
        "name": target.name,
        "size_bytes": size,
        "profile": profile,
        "profile_error": error,
    }


def _copy_limited(file: UploadFile, target: Path, limit: int) -> int:
    size = 0
    try:
        with target.open("xb") as out:
            while chunk := file.file.read(COPY_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"file: larger than {limit} bytes")
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return size


# -- events, health, metrics -------------------------------------------------------------------------
def _sse(event_id: int, name: str, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data, separators=(', ', ': '))}\n\n"


@router.get(
    "/v1/events",
    tags=["events"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}, **INVALID},
)
async def events(
    ctx: Ctx,
    request: Request,
    task: Annotated[str | None, Query(pattern=r"^[0-9]+\.[0-9]+$", description="only this task: P.I")] = None,
    nodes: bool = True,
) -> StreamingResponse:
    """Server-sent events: `snapshot` first, then `task` (state changes and stage outputs) and
    `node` (status changes) as they happen; `: ping` every 15 s."""
    hub = ctx.hub
    sub = hub.subscribe(task, nodes)
    snapshot = await ctx.call(hub.snapshot)

    async def body() -> AsyncIterator[str]:
        try:
            yield _sse(hub.next_id(), "snapshot", snapshot)
            async for event in hub.stream(sub):
                if event is None:
                    yield ": ping\n\n"
                else:
                    yield _sse(event.id, event.name, event.data)
        finally:
            hub.unsubscribe(sub)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


@router.get(
    "/healthz",
    response_model=HealthAnswer,
    tags=["operations"],
    responses={503: {"model": HealthAnswer, "description": "broker or TaskDB down"}},
)
def healthz(ctx: Ctx) -> Any:
    health = ctx.orch.health()
    body = {
        "status": "ok" if health.ok else "unavailable",
        "broker": health.broker,
        "database": health.database,
        "orchestrator": ctx.orch.id,
    }
    return JSONResponse(body, status_code=200 if health.ok else 503)


@router.get(
    "/metrics",
    tags=["operations"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(ctx: Ctx) -> Response:
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)
