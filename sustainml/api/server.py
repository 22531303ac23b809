"""Uvicorn in a background thread beside the orchestrator.

The thread never installs signal handlers (uvicorn only does so on the main thread): the process
owner — the CLI or a test — keeps SIGINT/SIGTERM and calls ``stop()``, which ends the SSE streams
and long-polls first (the hub closes), then lets uvicorn finish the requests in flight.

Exposure: the server refuses to listen beyond loopback without an API token unless told to
(``SUSTAINML_HTTP_ALLOW_REMOTE``). Each connection must deliver a request's headers within
``SUSTAINML_HTTP_HEADER_TIMEOUT`` seconds of its first byte (or of connecting) and may pause at
most that long between body chunks, else it is closed; at most ``SUSTAINML_HTTP_MAX_CONNECTIONS``
connections are open at once (more are closed at once). Idle keep-alive connections close after
uvicorn's keep-alive timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sustainml.api.app import create_app
from sustainml.api.deps import ApiContext
from sustainml.config import ConfigError, Settings
from sustainml.orchestrator.service import OrchestratorService

log = logging.getLogger(__name__)

GRACEFUL_S = 5


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a read deadline and a connection cap (see the module
    docstring); ``serving`` makes a subclass carrying one server's limits."""

    read_timeout: float = 10.0
    max_connections: int = 256

    @classmethod
    def serving(cls, read_timeout: float, max_connections: int) -> type[GuardedH11Protocol]:
        return type("GuardedH11", (cls,), {"read_timeout": read_timeout, "max_connections": max_connections})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            log.warning("HTTP connection refused: %d open already", self.max_connections)
            transport.close()
            return
        self._arm()  # the first request's headers are due

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm()  # headers in, the body arriving: the deadline restarts with every chunk
        elif state is h11.IDLE and self.conn.trailing_data[0]:
            if self._deadline is None:  # the start of a request's headers: due within the timeout
                self._arm()
        else:
            self._disarm()  # a whole request is in (being answered), or the connection is closing

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.read_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        waiting = self.conn.their_state is h11.SEND_BODY or (
            self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)
        )
        if waiting and not self.transport.is_closing():
            log.info("HTTP connection closed: no complete request within %g s", self.read_timeout)
            self.transport.close()


def check_exposure(settings: Settings, host: str) -> None:
    """Refuse to serve beyond loopback without a token unless explicitly allowed."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not settings.api_token and not settings.remote_http_allowed:
        raise ConfigError(
            f"refusing to serve HTTP on {host}: beyond loopback, anyone who can reach it could submit, "
            "cancel and stop tasks. Set SUSTAINML_API_TOKEN (mutating routes then need it), or "
            "SUSTAINML_HTTP_ALLOW_REMOTE=1 to serve without one on purpose"
        )


class ApiServer:
    def __init__(
        self,
        settings: Settings,
        orchestrator: OrchestratorService,
        host: str,
        port: int,
        *,
        on_terminate: Callable[[], None] | None = None,
        log_level: str = "warning",
    ) -> None:
        check_exposure(settings, host)
        bound = () if host in ("", "0.0.0.0", "::") else (host,)
        self.app = create_app(settings, orchestrator, on_terminate=on_terminate, bound_hosts=bound)
        self.host = host
        # Bound here, so port 0 gives a free port known before the thread starts and a busy port
        # fails at once with a clear error.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError:
            self._sock.close()
            raise
        self.port = int(self._sock.getsockname()[1])
        limits = (settings.http_header_timeout, settings.http_max_connections)
        protocol: Any = GuardedH11Protocol.serving(*limits)
        config = uvicorn.Config(
            self.app,
            http=protocol,
            log_level=log_level,
            timeout_graceful_shutdown=GRACEFUL_S,
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 15.0) -> ApiServer:
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="sustainml-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the HTTP server on {self.url} did not start (see the log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the HTTP server on {self.url} did not start within {timeout:g} s")
            time.sleep(0.02)
        log.info("HTTP API on %s", self.url)
        return self

    def stop(self, timeout: float = GRACEFUL_S + 5.0) -> None:
        ctx = self.app.state.ctx
        assert isinstance(ctx, ApiContext)
        ctx.hub.request_close()  # SSE streams and long-polls return now
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the HTTP server did not stop within %g s", timeout)
                self._server.force_exit = True
                self._thread.join(2.0)
        self._sock.close()

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
