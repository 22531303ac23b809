"""``create_app(settings, orchestrator)``: the FastAPI application.

The orchestrator is an ``OrchestratorService`` (orchestrator/service.py): the running
``Orchestrator`` of this process (the server lives beside it) or a remote ``Client``; every
handler calls that interface only. Blocking calls (TaskDB reads, publishes with confirms,
configuration RPCs) run in the thread pool; long-polls and SSE wait on the event hub without
holding a thread.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic_core import PydanticSerializationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sustainml import __version__
from sustainml.api import compat, v1
from sustainml.api.deps import ApiContext, field_path, validation_errors
from sustainml.api.events import EventHub
from sustainml.api.metrics import ApiMetrics
from sustainml.api.security import BodyLimit, RequestCounter, SiteGuard, TokenCheck
from sustainml.config import Settings
from sustainml.messages import MessageError
from sustainml.orchestrator.service import OrchestratorService, SubmitError, TransportError

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
UPLOAD_PATH = "/v1/datasets"
THREADS = 100  # blocking handlers at once (the default 40 is low beside slow configuration RPCs)


def create_app(
    settings: Settings,
    orchestrator: OrchestratorService,
    *,
    on_terminate: Callable[[], None] | None = None,
    bound_hosts: tuple[str, ...] = (),
) -> FastAPI:
    """The API of a started orchestrator. ``on_terminate`` is what ``POST /terminate`` calls (the
    CLI stops the orchestrator and the server; default: ``orchestrator.stop``). ``bound_hosts``:
    the address the server listens on, also accepted as ``Host``."""
    metrics = ApiMetrics(orchestrator)
    hub = EventHub(orchestrator, observe_stage=metrics.observe_stage, count_event=metrics.count_event)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        await hub.start()
        try:
            yield
        finally:
            await hub.close()

    app = FastAPI(
        title="sustainml",
        version=__version__,
        summary="Propose an ML model, its hardware and its energy/carbon footprint for a problem.",
        description="See docs/api.md. Mutating routes need `Authorization: Bearer <token>` when "
        "SUSTAINML_API_TOKEN is set.",
        lifespan=lifespan,
    )
    app.state.ctx = ApiContext(
        settings=settings,
        orch=orchestrator,
        hub=hub,
        metrics=metrics,
        auth=TokenCheck(settings.api_token),
        on_terminate=on_terminate or orchestrator.stop,
    )

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = validation_errors(list(exc.errors())) or [{"loc": ["body"], "msg": "invalid"}]
        message = f"{field_path(detail[0]['loc'])}: {detail[0]['msg']}"
        return JSONResponse({"error": message, "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        body = detail if isinstance(detail, dict) else {"error": str(detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(MessageError)
    async def on_message_error(request: Request, exc: MessageError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(UnicodeError)
    @app.exception_handler(PydanticSerializationError)
    async def on_unicode_error(request: Request, exc: Exception) -> JSONResponse:
        # Only input can carry such text (JSON allows "\ud800"; UTF-8 cannot encode it), so
        # an answer that cannot be encoded because of it is the request's fault, not the server's.
        if not isinstance(exc, UnicodeError) and "surrogates not allowed" not in str(exc):
            log.error("%s %s: response not serialisable: %s", request.method, request.url.path, exc)
            return JSONResponse({"error": "internal error: the answer could not be encoded"}, status_code=500)
        return JSONResponse(
            {"error": "the request holds text that is not valid Unicode (a lone surrogate such as \\ud800)"},
            status_code=422,
        )

    @app.exception_handler(SubmitError)
    async def on_submit_error(request: Request, exc: SubmitError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(TransportError)
    async def on_transport_error(request: Request, exc: TransportError) -> JSONResponse:
        log.error("%s %s: broker error: %s", request.method, request.url.path, exc)
        return JSONResponse({"error": f"broker unavailable: {exc}"}, status_code=503)

    app.include_router(compat.router)
    app.include_router(v1.router)
    app.add_middleware(RequestCounter, counter=metrics.requests)
    # Before anything reads the body, an oversized one (413) or an upload without the token (401)
    # is refused. Only CORS sits outside it (it reads no body), so a browser on another allowed
    # origin can read those refusals too.
    app.add_middleware(
        BodyLimit,
        limit=settings.api_max_body,
        upload_limit=settings.upload_max_bytes,
        upload_paths=(UPLOAD_PATH,),
        auth=app.state.ctx.auth,
    )
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    app.add_middleware(
        SiteGuard,
        allowed_hosts=(*settings.host_allowlist, *bound_hosts),
        cors_origins=tuple(origins),
        upload_paths=(UPLOAD_PATH,),
    )
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "content-type"],
            allow_credentials="*" not in origins,
        )
    if STATIC_DIR.is_dir():
        app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")
    return app
