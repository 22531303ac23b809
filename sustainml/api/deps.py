"""What every route module shares: the per-application context (the orchestrator service, the
event hub, metrics, the token check), the dependencies that fetch it, and the documented error
answers (with the one-entry-per-field view of a validation error). Route modules import this,
never ``app`` (which imports them)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from sustainml.api.events import EventHub
from sustainml.api.metrics import ApiMetrics
from sustainml.api.schemas import ErrorBody
from sustainml.api.security import TokenCheck
from sustainml.config import Settings
from sustainml.messages import TaskId
from sustainml.messages.tasks import TaskResult
from sustainml.orchestrator.service import OrchestratorService


@dataclass
class ApiContext:
    settings: Settings
    orch: OrchestratorService
    hub: EventHub
    metrics: ApiMetrics
    auth: TokenCheck
    on_terminate: Callable[[], None]

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(fn, *args, **kwargs)

    async def wait_result(
        self, task_id: TaskId, ready: Callable[[TaskResult], bool], timeout: float
    ) -> tuple[TaskResult, bool]:
        """Poll the stored result until ``ready`` (or the task is finished, or ``timeout``);
        woken by the task's events, re-checked at least every second. ``KeyError`` if unknown."""
        deadline = time.monotonic() + timeout
        while True:
            with self.hub.watch(task_id.key) as changed:
                res: TaskResult = await self.call(self.orch.result, task_id)
                if ready(res):
                    return res, True
                remaining = deadline - time.monotonic()
                if res.done or remaining <= 0 or self.hub.closing:
                    return res, False
                with suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(remaining, 1.0))


def field_path(loc: Any) -> str:
    """A validation error's location as the answer names it: ``body.extra_data.hardware``."""
    return ".".join(str(p) for p in loc)


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "bytes", "none", "list", "dict"})


def _is_union_tag(part: Any) -> bool:
    """Pydantic names the member of a union in the error location (``extra_data.dict[str,any]``):
    that is a type, not a field the client can act on."""
    return isinstance(part, str) and (part in _TYPE_TAGS or "[" in part or part.startswith("function-"))


def validation_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """One entry per field: union tags dropped from locations, the union members' messages merged
    ("Input should be a valid dictionary or a valid string")."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in errors:
        loc = tuple(p for p in e.get("loc", ()) if not _is_union_tag(p))
        msg = str(e.get("msg", "invalid"))
        if loc in merged:
            alternative = msg.removeprefix("Input should be ")
            if alternative not in merged[loc]["msg"]:
                merged[loc]["msg"] += f" or {alternative}"
        else:
            merged[loc] = {"loc": list(loc), "msg": msg}
    return list(merged.values())


def context(request: Request) -> ApiContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, ApiContext)
    return ctx


def _auth(request: Request) -> None:
    context(request).auth(request)


Ctx = Annotated[ApiContext, Depends(context)]
Auth = Depends(_auth)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=100,
        description="a retry with the same key returns the task the first request created",
    ),
]

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "unknown task"}}
INVALID: Responses = {422: {"model": ErrorBody, "description": "invalid body"}}
AUTH: Responses = {401: {"model": ErrorBody, "description": "token missing or wrong"}}
BROKER: Responses = {503: {"model": ErrorBody, "description": "broker unavailable"}}
TOO_LARGE: Responses = {413: {"model": ErrorBody, "description": "body too large"}}
NOT_READY: Responses = {
    504: {"model": ErrorBody, "description": "the output(s) did not arrive within `timeout`"}
}
