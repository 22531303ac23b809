"""Fault-injection fixtures: a private RabbitMQ node per test module (never the shared one), and a
``Rig`` that runs a deployment against it: the orchestrator in this process (or as a process),
workers as real processes with a no-op callback (so they can be SIGKILLed), and clean-up."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sustainml.config import Settings
from sustainml.messages import TaskId
from sustainml.orchestrator.core import Orchestrator
from sustainml.orchestrator.taskdb import TaskDB
from sustainml.topology import Topology, delete_all
from sustainml.transport.amqp import AmqpTransport
from tests.support.batch import batch_input
from tests.support.private_broker import PrivateBroker, PrivateBrokerError, rabbitmq_available

NOOP_WORKER = Path(__file__).with_name("noop_worker.py")


@pytest.fixture(scope="module")
def private_broker(request: pytest.FixtureRequest) -> Iterator[PrivateBroker]:
    """One private RabbitMQ node per test module: tests here may stop, restart or alarm it."""
    if not rabbitmq_available():
        if os.environ.get("CI"):
            pytest.fail("RabbitMQ is not installed: the faults suite cannot start a private node")
        pytest.skip("RabbitMQ is not installed: no private node for fault tests")
    name = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "")
    try:
        broker = PrivateBroker(name, 0).start()
    except PrivateBrokerError as exc:
        pytest.fail(f"private RabbitMQ node did not start: {exc}")
    try:
        yield broker
    finally:
        broker.close()


class Rig:
    """A deployment on the private broker; everything it starts is stopped by ``close``."""

    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self.settings = settings
        self.tmp_path = tmp_path
        self.db_url = settings.db_url or f"sqlite:///{tmp_path / 'taskdb.sqlite3'}"
        self.orchestrator: Orchestrator | None = None
        self.workers: dict[str, list[subprocess.Popen[bytes]]] = {}
        self.processes: list[subprocess.Popen[bytes]] = []
        self._db: TaskDB | None = None
        self.markers = tmp_path / "in-flight"  # noop_worker.py marks running callbacks here
        self.markers.mkdir(exist_ok=True)

    def in_flight(self, pid: int) -> int:
        """Callbacks the worker process ``pid`` is running right now."""
        return sum(1 for _ in self.markers.glob(f"{pid}-*"))

    @property
    def db(self) -> TaskDB:
        """A TaskDB handle of the test's own (works whether the orchestrator runs here or not)."""
        if self._db is None:
            self._db = TaskDB(self.db_url)
        return self._db

    def env(self, **extra: str) -> dict[str, str]:
        s = self.settings
        env = dict(
            os.environ,
            SUSTAINML_BROKER_URL=s.broker_url,
            SUSTAINML_NAMESPACE=s.namespace,
            SUSTAINML_HEARTBEAT_INTERVAL=str(s.heartbeat_interval),
            SUSTAINML_CONCURRENCY=str(s.concurrency),
            SUSTAINML_PREFETCH=str(s.prefetch),
            SUSTAINML_AMQP_HEARTBEAT=str(s.amqp_heartbeat),
            SUSTAINML_MAX_ATTEMPTS=str(s.max_attempts),
            SUSTAINML_RETRY_BACKOFF=str(s.retry_backoff),
            SUSTAINML_STAGE_DEADLINE=str(s.stage_deadline),
            SUSTAINML_RPC_TIMEOUT=str(s.rpc_timeout),
            SUSTAINML_DB_URL=self.db_url,
            SUSTAINML_DATA_DIR=str(self.tmp_path),
            SUSTAINML_HTTP="off",
            SUSTAINML_LOG_LEVEL="WARNING",
            SML_FAULTS_MARKERS=str(self.markers),
        )
        env.update(extra)
        return env

    # -- orchestrator in this process -----------------------------------------------------------
    def start_orchestrator(self) -> Orchestrator:
        transport = AmqpTransport(
            self.settings.broker_url,
            name=f"{self.settings.namespace}-orch",
            heartbeat=self.settings.amqp_heartbeat,
        )
        orch = Orchestrator(self.settings, transport=transport, db=TaskDB(self.db_url))
        orch.start()
        self.orchestrator = orch
        return orch

    def stop_orchestrator(self) -> None:
        orch, self.orchestrator = self.orchestrator, None
        if orch is not None:
            orch.close()
            orch.transport.close(timeout=10.0)
            orch.db.close()

    # -- processes -------------------------------------------------------------------------------
    def spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp_path / f"{log_name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(args, env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp_path)
        log.close()  # the child holds its own descriptor
        self.processes.append(proc)
        return proc

    def start_worker(self, node: str, seconds: float = 0.05) -> subprocess.Popen[bytes]:
        proc = self.spawn([sys.executable, str(NOOP_WORKER), node, str(seconds)], f"worker-{node}")
        self.workers.setdefault(node, []).append(proc)
        return proc

    def submit(self, batch: str, n: int, first: int = 0) -> list[TaskId]:
        assert self.orchestrator is not None
        return [self.orchestrator.submit(batch_input(batch, first + i)) for i in range(n)]

    def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        self.stop_orchestrator()
        if self._db is not None:
            self._db.close()


@pytest.fixture
def make_settings(private_broker: PrivateBroker, tmp_path: Path) -> Callable[..., Settings]:
    def factory(**overrides: object) -> Settings:
        base = Settings(
            broker_url=private_broker.url,
            namespace=f"f-{uuid.uuid4().hex[:8]}",
            data_dir=tmp_path,
            heartbeat_interval=0.5,
            rpc_timeout=5.0,
            concurrency=2,
            prefetch=8,
            amqp_heartbeat=10,
            http="off",
        )
        return base.with_overrides(**overrides)

    return factory


@pytest.fixture
def rig_factory(private_broker: PrivateBroker, tmp_path: Path) -> Iterator[Callable[[Settings], Rig]]:
    rigs: list[Rig] = []

    def factory(settings: Settings) -> Rig:
        rig = Rig(settings, tmp_path)
        rigs.append(rig)
        return rig

    yield factory
    for rig in rigs:
        rig.close()
        try:
            with AmqpTransport(private_broker.url, name="cleanup", connect_timeout=20.0) as t:
                delete_all(t, Topology.of(rig.settings))
        except Exception as exc:  # the broker is private and deleted with the module anyway
            print(f"cleanup of {rig.settings.namespace} failed: {exc}")
