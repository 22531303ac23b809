"""The original framework's REST routes (its Flask backend), same bodies and shapes, with
its defects fixed: unknown task -> 404, bounded long-polls (504 "not ready" after ``timeout``),
lists as arrays, every field exposed, the node's own success/err_code, 422 naming the field."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from sustainml.api import hfcompat, views
from sustainml.api.deps import (
    AUTH,
    BROKER,
    INVALID,
    NOT_FOUND,
    NOT_READY,
    TOO_LARGE,
    ApiContext,
    Auth,
    Ctx,
    IdempotencyKey,
    Responses,
)
from sustainml.api.schemas import (
    LONG_POLL_MAX_S,
    CancelAnswer,
    CancelBody,
    ConfigRequestAccepted,
    ConfigRequestBody,
    ErrorBody,
    HfModelsCompareAnswer,
    HfModelsCompareBody,
    HfModelsInfoAnswer,
    HfModelsInfoBody,
    MessageBody,
    ResultsQuery,
    StatusAll,
    StatusOne,
    StatusQuery,
    UserInputAccepted,
    UserInputBody,
)
from sustainml.messages import TaskId
from sustainml.messages.kinds import KIND_OF_NODE, NodeID
from sustainml.messages.tasks import TaskResult, TaskState

log = logging.getLogger(__name__)

router = APIRouter(tags=["compatible (upstream REST)"])
HELLO = 'Hello world! Use "/terminate" route to stop Back-end node.'
NO_OUTPUT_YET = "Nodes have not reported any output yet.\n"


@router.get("/", response_model=MessageBody)
def hello() -> dict[str, str]:
    return {"message": HELLO}


@router.post(
    "/user_input",
    response_model=UserInputAccepted,
    dependencies=[Auth],
    responses={**INVALID, **AUTH, **BROKER, **TOO_LARGE},
)
def user_input(ctx: Ctx, body: UserInputBody, idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Submit a problem; answers once the task is published (follow it with `/results`). With an
    `Idempotency-Key` header, a retry with the same key returns the task the first one created."""
    raw = body.model_dump(exclude_none=True)
    key = f"http-{idempotency_key}" if idempotency_key else None
    task_id = ctx.orch.submit(views.user_input_from_body(raw), idempotency_key=key)
    return {"message": "User input data sent successfully.", "task_id": views.task_id_json(task_id)}


@router.post(
    "/config_request",
    response_model=ConfigRequestAccepted,
    dependencies=[Auth],
    responses={**INVALID, **AUTH, **BROKER, **TOO_LARGE},
)
def config_request(ctx: Ctx, body: ConfigRequestBody) -> dict[str, Any]:
    """A configuration request: to `node_id` when given, else routed on its keyword (§12.2).
    The node's own `success`/`err_code` are returned."""
    node = views.route_configuration(body.configuration, body.node_id)
    res = ctx.orch.config_request(node, body.configuration, body.timeout)
    return {"message": "Configuration request sent successfully.", "response": views.config_compat(res)}


@router.get("/status", response_model=StatusAll)
def status_all(ctx: Ctx) -> dict[str, Any]:
    return {"status": {name: s.name for name, s in ctx.orch.nodes().nodes.items()}}


@router.post("/status", response_model=StatusAll | StatusOne, responses={**INVALID, **TOO_LARGE})
def status_one(ctx: Ctx, body: Annotated[StatusQuery | None, Body()] = None) -> dict[str, Any]:
    """`{"node_id": n}` -> that node's status (unknown id: INACTIVE); `{}` -> all of them."""
    statuses = ctx.orch.nodes().nodes
    if body is None or body.node_id is None:
        return {"status": {name: s.name for name, s in statuses.items()}}
    return {"status": views.status_of(statuses, body.node_id)}


async def _latest(ctx: ApiContext) -> TaskId | None:
    latest: TaskId | None = await ctx.call(ctx.orch.latest)
    return latest


def _not_ready(res: TaskResult, what: str, timeout: float) -> JSONResponse:
    return JSONResponse(
        {
            "error": f"not ready: {what} for task {res.task_id.key} after {timeout:g} s (state {res.state})",
            "ready": False,
            "task_id": views.task_id_json(res.task_id),
            "state": res.state.value,
            "missing": views.missing_nodes(res),
        },
        status_code=504,
    )


async def _all_results(ctx: ApiContext, task_id: TaskId, timeout: float) -> Any:
    try:
        res, ready = await ctx.wait_result(task_id, lambda r: not views.missing_nodes(r), timeout)
    except KeyError:
        raise HTTPException(404, f"task {task_id.key} does not exist") from None
    if not ready and not res.done:
        return _not_ready(res, "the six outputs", timeout)
    return views.compat_all(res)


@router.get("/results", responses={**NOT_READY, 200: {"content": {"text/plain": {}}}})
async def results_latest(
    ctx: Ctx,
    timeout: Annotated[
        float, Query(ge=0, le=LONG_POLL_MAX_S, description="seconds to wait, at most 300")
    ] = 30.0,
) -> Any:
    """The latest task's six outputs (waits up to `timeout` s for them; 504 then)."""
    task_id = await _latest(ctx)
    if task_id is None:
        return PlainTextResponse(NO_OUTPUT_YET)
    return await _all_results(ctx, task_id, timeout)


@router.post("/results", responses={**NOT_FOUND, **NOT_READY, **INVALID, **TOO_LARGE})
async def results(ctx: Ctx, body: ResultsQuery) -> Any:
    """`node_id` 0-5: that node's output (long-poll); 7: the user input; 9: all six; 6, 8: no
    results. `task_id` defaults to the latest task; `timeout` (default 30 s) bounds the wait."""
    if body.task_id is not None:
        task_id = TaskId(problem_id=body.task_id.problem_id, iteration_id=body.task_id.iteration_id)
    else:
        latest = await _latest(ctx)
        if latest is None:
            raise HTTPException(404, "no task yet")
        task_id = latest
    node_id = body.node_id
    if node_id == 9:
        return await _all_results(ctx, task_id, body.timeout)
    if node_id in views.NODE_OF_ID:
        node = views.NODE_OF_ID[node_id]
        kind = KIND_OF_NODE[node]
        try:
            res, ready = await ctx.wait_result(task_id, lambda r: kind in r.outputs, body.timeout)
        except KeyError:
            raise HTTPException(404, f"task {task_id.key} does not exist") from None
        if not ready and not res.done:
            return _not_ready(res, f"{node} output", body.timeout)
        return {node: views.compat_record(res, node)}
    try:
        res = await ctx.call(ctx.orch.result, task_id)
    except KeyError:
        raise HTTPException(404, f"task {task_id.key} does not exist") from None
    if node_id == NodeID.ORCHESTRATOR:
        return {"ORCHESTRATOR": views.compat_user_input(res)}
    name = NodeID(node_id).name
    return {
        name: {
            "message": f"{name} node does not have any results to show.",
            "task_id": views.task_id_json(task_id),
        }
    }


@router.post(
    "/cancel",
    response_model=CancelAnswer,
    dependencies=[Auth],
    responses={404: {"model": CancelAnswer, "description": "no such task"}, **INVALID, **AUTH, **TOO_LARGE},
)
def cancel(ctx: Ctx, body: Annotated[CancelBody | None, Body()] = None) -> Any:
    """Empty body: the latest unfinished task; `{problem_id, iteration_id}`: that task."""
    task_id: TaskId | None = None
    if body is not None and (body.problem_id is not None or body.iteration_id is not None):
        if body.problem_id is None or body.iteration_id is None:
            raise HTTPException(422, "Either problem_id or iteration_id not selected")
        task_id = TaskId(problem_id=body.problem_id, iteration_id=body.iteration_id)
    try:
        cancelled = ctx.orch.cancel(task_id)
    except KeyError:
        return JSONResponse({"status": "not_found"}, status_code=404)
    if cancelled is None:
        return JSONResponse({"status": "not_found"}, status_code=404)
    state = ctx.orch.task(cancelled).state
    status = "cancelled" if state is TaskState.CANCELLED else "already_finished"
    return {"status": status, "task_id": views.task_id_json(cancelled), "state": state.value}


@router.post("/hf_models_info", response_model=HfModelsInfoAnswer, responses={**INVALID, **TOO_LARGE})
def hf_models_info(body: HfModelsInfoBody) -> dict[str, Any]:
    """Facts of catalogue models (offline; unknown ids get status 404 and the closest names)."""
    return hfcompat.models_info(body.model_ids)


@router.post("/hf_models_compare", response_model=HfModelsCompareAnswer, responses={**INVALID, **TOO_LARGE})
def hf_models_compare(body: HfModelsCompareBody) -> dict[str, Any]:
    """A deterministic comparison of the first five models, facts rebuilt from the catalogue."""
    return hfcompat.compare(body.models)


def _terminate(ctx: ApiContext, request: Request) -> dict[str, str]:
    ctx.auth.authorize_terminate(request)
    log.warning("terminate requested over HTTP by %s", request.client.host if request.client else "?")
    # After the answer is on its way: stopping first would cut this response.
    asyncio.get_running_loop().call_later(0.2, ctx.on_terminate)
    return {"message": "Terminating...<br>"}


FORBIDDEN: Responses = {403: {"model": ErrorBody, "description": "not from loopback"}}


@router.post("/terminate", response_model=MessageBody, responses={**AUTH, **FORBIDDEN})
async def terminate(ctx: Ctx, request: Request) -> dict[str, str]:
    """Stop the orchestrator and this server (token when set, else loopback clients only).
    POST only: upstream answered GET, which any web page could trigger with an image tag."""
    return _terminate(ctx, request)


@router.post("/shutdown", response_model=MessageBody, responses={**AUTH, **FORBIDDEN})
async def shutdown(ctx: Ctx, request: Request) -> dict[str, str]:
    """Same as `/terminate` (upstream's werkzeug shutdown hook)."""
    return _terminate(ctx, request)


GET_REFUSED: Responses = {405: {"model": ErrorBody, "description": "use POST"}}


@router.get("/terminate", status_code=405, responses=GET_REFUSED, include_in_schema=False)
@router.get("/shutdown", status_code=405, responses=GET_REFUSED, include_in_schema=False)
async def terminate_by_get(request: Request) -> JSONResponse:
    """Refused: a GET never changes state here (upstream's `GET /terminate` did)."""
    return JSONResponse(
        {"error": f"use POST {request.url.path}: a GET never changes state (unlike upstream)"},
        status_code=405,
        headers={"Allow": "POST"},
    )
