"""Uvicorn in a background thread beside the orchestrator.

The thread never installs signal handlers (uvicorn only does so on the main thread): the process
owner — the CLI or a test — keeps SIGINT/SIGTERM and calls ``stop()``, which ends the SSE streams
and long-polls first (the hub closes), then lets uvicorn finish the requests in flight.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

import uvicorn

from sustainml.api.app import ApiContext, create_app
from sustainml.config import Settings
from sustainml.orchestrator.core import Orchestrator

log = logging.getLogger(__name__)

GRACEFUL_S = 5


class ApiServer:
    def __init__(
        self,
        settings: Settings,
        orchestrator: Orchestrator,
        host: str,
        port: int,
        *,
        on_terminate: Callable[[], None] | None = None,
        log_level: str = "warning",
    ) -> None:
        self.app = create_app(settings, orchestrator, on_terminate=on_terminate)
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
        config = uvicorn.Config(
            self.app,
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
