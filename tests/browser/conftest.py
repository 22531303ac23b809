"""Fixtures of the dashboard tests: a real deployment on the test broker, the HTTP API on a free
port, and Debian's headless Chromium driven by Playwright (never a downloaded browser).

One deployment per module keeps the suite short; every test makes its own problems, so tests do
not depend on each other's tasks. ML_MODEL_METADATA runs the shipped logic, except that a task
whose description contains ``HOLD_MARKER`` waits on a gate first: that gives the cancel test a
task that is really running when the user presses "Stop current task".
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from sustainml.config import Settings
from sustainml.messages import MLModelMetadata, NodeStatus, UserInput
from sustainml.topology import PIPELINE, Topology, delete_all
from sustainml.transport.amqp import AmqpTransport
from tests.support.waiting import wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOLD_MARKER = "[hold]"
GATE_TIMEOUT_S = 60.0
SCREENSHOTS_ENV = "SUSTAINML_SCREENSHOTS"

VIEWPORT: ViewportSize = {"width": 1440, "height": 900}  # a laptop screen
# Assertions retry until this deadline; generous because other suites may load the 2 cores.
expect.set_options(timeout=15_000)


@dataclass
class Gate:
    """Holds ML_MODEL_METADATA for tasks marked with HOLD_MARKER until released."""

    release: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)
    error: list[str] = field(default_factory=list)


@dataclass
class Dashboard:
    url: str  # http://127.0.0.1:<port>
    settings: Settings
    gate: Gate
    data_dir: Path
    shots: Path

    def http(self, method: str, path: str, body: Any = None, timeout: float = 70.0) -> tuple[int, Any]:
        """(status, decoded JSON) of one request to the API (errors included, not raised)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str) -> Any:
        status, body = self.http("GET", path)
        assert status == 200, f"GET {path}: {status} {body}"
        return body

    def submit(self, user_input: dict[str, Any]) -> tuple[int, int]:
        status, body = self.http("POST", "/v1/tasks", user_input)
        assert status == 201, f"POST /v1/tasks: {status} {body}"
        return int(body["task_id"]["problem_id"]), int(body["task_id"]["iteration_id"])

    def finished(self, p: int, i: int, timeout: float = 40.0) -> dict[str, Any]:
        """The task once finished (the API's long-poll), failing the test on a deadline."""
        deadline = time.monotonic() + timeout
        while True:
            task: dict[str, Any] = self.get(f"/v1/tasks/{p}/{i}?wait=20")
            if task["state"] in ("succeeded", "failed", "cancelled"):
                return task
            assert time.monotonic() < deadline, f"task {p}.{i} still {task['state']} after {timeout} s"

    def shot(self, page: Page, name: str, *, full_page: bool = False) -> Path:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path


def _held_metadata(gate: Gate) -> Any:
    from sustainml.workers.logic.ml_model_metadata import task_callback as shipped

    def callback(user_input: UserInput, node_status: NodeStatus, out: MLModelMetadata) -> None:
        if HOLD_MARKER in user_input.problem_short_description:
            gate.held.set()
            if not gate.release.wait(GATE_TIMEOUT_S):
                gate.error.append("the test never released the gate")
                raise RuntimeError("test gate not released within 60 s")
        shipped(user_input, node_status, out)

    return callback


def _wait_nodes_idle(dash: Dashboard, timeout: float = 30.0) -> None:
    last: list[Any] = [None]

    def idle() -> bool:
        status, body = dash.http("GET", "/v1/nodes")
        last[0] = body
        return status == 200 and all(body["nodes"].get(s.node) == "IDLE" for s in PIPELINE)

    wait_until(idle, timeout, "the nodes to be IDLE", interval=0.1, detail=lambda: f": {last[0]}")


@pytest.fixture(scope="module")
def dashboard(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    from sustainml.api import ApiServer
    from sustainml.deployment import LocalDeployment, amqp_transports

    tmp = tmp_path_factory.mktemp("dashboard")
    data_dir = tmp / "datasets"
    data_dir.mkdir()
    shots_env = os.environ.get(SCREENSHOTS_ENV, "").strip()
    shots = Path(shots_env) if shots_env else tmp / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        broker_url=amqp_url,
        namespace=f"t-{uuid.uuid4().hex[:8]}",
        data_dir=tmp,
        heartbeat_interval=0.5,
        rpc_timeout=5.0,
        data_dirs=str(data_dir),  # uploads go to the first allowed data directory: the test's tree
    )
    gate = Gate()
    deployment = LocalDeployment(
        settings, amqp_transports(settings), callbacks={"ML_MODEL_METADATA": _held_metadata(gate)}
    )
    try:
        deployment.start()
        assert deployment.orchestrator is not None
        server = ApiServer(settings, deployment.orchestrator, "127.0.0.1", 0).start()
        try:
            dash = Dashboard(server.url, settings, gate, data_dir, shots)
            _wait_nodes_idle(dash)
            yield dash
        finally:
            server.stop()
    finally:
        gate.release.set()
        deployment.stop()
        with AmqpTransport(settings.broker_url, name="cleanup") as t:
            delete_all(t, Topology(settings.namespace))
    assert not gate.error, gate.error


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium); the dashboard tests drive it")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught exceptions and console errors of the page; a test may remove the ones it caused."""
    return []


@pytest.fixture
def page(chromium: Browser, dashboard: Dashboard, page_errors: list[str]) -> Iterator[Page]:
    """A fresh tab on a laptop-sized screen; any page error left at the end fails the test.
    (``chromium`` comes first: without the browser the test is skipped before any deployment.)"""
    context = chromium.new_context(viewport=VIEWPORT, accept_downloads=True)
    pg = context.new_page()
    pg.on("pageerror", lambda exc: page_errors.append(f"uncaught: {exc}"))
    pg.on("console", lambda msg: page_errors.append(msg.text) if msg.type == "error" else None)
    try:
        yield pg
    finally:
        context.close()
    assert not page_errors, f"errors in the page: {page_errors}"
