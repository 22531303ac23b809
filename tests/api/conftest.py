"""A running API server over a whole deployment: on the real broker (module-scoped, shared by the
integration tests of one module) or on the in-memory transport (fast unit-level checks). Both
serve HTTP on a free port through ``ApiServer`` (uvicorn in a thread) and are driven with httpx."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from sustainml.api import ApiServer
from sustainml.config import Settings
from sustainml.deployment import LocalDeployment, amqp_transports, memory_transports
from sustainml.topology import Topology, delete_all
from sustainml.transport.amqp import AmqpTransport
from tests.support.waiting import wait_until


@dataclass
class Running:
    settings: Settings
    deployment: LocalDeployment
    server: ApiServer
    client: httpx.Client
    data_dir: Path
    terminations: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url


def _all_idle(client: httpx.Client) -> bool:
    status = client.get("/status").json()["status"]
    return len(status) == 6 and all(s == "IDLE" for s in status.values())


def _start(
    settings: Settings, deployment: LocalDeployment, data_dir: Path, *, wait_idle: bool = True
) -> Running:
    deployment.start()
    assert deployment.orchestrator is not None
    terminations: list[float] = []
    server = ApiServer(
        settings,
        deployment.orchestrator,
        "127.0.0.1",
        0,
        on_terminate=lambda: terminations.append(time.monotonic()),
    ).start()
    client = httpx.Client(base_url=server.url, timeout=60.0)
    running = Running(settings, deployment, server, client, data_dir, terminations)
    if wait_idle:
        wait_until(lambda: _all_idle(client), 30.0, "all six nodes IDLE")
    return running


def _stop(running: Running) -> None:
    running.client.close()
    running.server.stop()
    running.deployment.stop()


@pytest.fixture(scope="module")
def broker_api(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Orchestrator, the six shipped workers and the API on the real broker, in a namespace of its
    own (deleted afterwards). Uploaded datasets go to a temporary allowed data directory."""
    base = tmp_path_factory.mktemp("api-broker")
    data_dir = base / "datasets"
    data_dir.mkdir()
    settings = Settings(
        broker_url=amqp_url,
        namespace=f"t-{uuid.uuid4().hex[:8]}",
        data_dir=base,
        heartbeat_interval=0.5,
        rpc_timeout=5.0,
        data_dirs=str(data_dir),
    )
    deployment = LocalDeployment(settings, amqp_transports(settings))
    try:
        running = _start(settings, deployment, data_dir)
        try:
            yield running
        finally:
            _stop(running)
    finally:
        with AmqpTransport(settings.broker_url, name="cleanup") as t:
            delete_all(t, Topology(settings.namespace))


def memory_api(tmp_path: Path, **overrides: object) -> Running:
    """The same on the in-memory transport (no broker); call ``_stop`` when done."""
    settings = Settings(
        namespace=f"t-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        heartbeat_interval=0.5,
        rpc_timeout=5.0,
        data_dirs=str(tmp_path),  # uploads stay in the test's tree
    ).with_overrides(**overrides)
    return _start(settings, LocalDeployment(settings, memory_transports()), tmp_path)


@pytest.fixture
def mem_api(tmp_path: Path) -> Iterator[Running]:
    running = memory_api(tmp_path)
    try:
        yield running
    finally:
        _stop(running)


@pytest.fixture
def make_memory_api(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """``make_memory_api(**settings_overrides)``: an in-memory server with other settings."""
    started: list[Running] = []

    def make(**overrides: object) -> Running:
        running = memory_api(tmp_path, **overrides)
        started.append(running)
        return running

    try:
        yield make
    finally:
        for running in started:
            _stop(running)
