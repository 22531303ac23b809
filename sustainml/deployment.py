"""A whole deployment inside one process: the orchestrator and the six shipped nodes as threads.

Used by ``sustainml submit --embedded`` (on the in-memory transport, no broker at all) and by the
pipeline tests, which run the same scenarios on the in-memory transport and on a real broker.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from sustainml.config import Settings
from sustainml.orchestrator.client import Client
from sustainml.orchestrator.core import Orchestrator
from sustainml.orchestrator.taskdb import TaskDB
from sustainml.topology import PIPELINE, resolve_stage
from sustainml.transport import amqp_transport
from sustainml.transport.base import Transport
from sustainml.workers.runtime import Node, ServiceCallback, TaskCallback
from sustainml.workers.shipped import shipped_node

TransportFactory = Callable[[str], Transport]


def memory_transports() -> TransportFactory:
    """Transports that share one fresh in-memory broker."""
    from sustainml.transport.memory import MemoryBroker, MemoryTransport

    broker = MemoryBroker()
    return lambda name: MemoryTransport(broker, name=name)


def amqp_transports(settings: Settings) -> TransportFactory:
    return lambda name: amqp_transport(settings, name)


class LocalDeployment:
    """Start with ``start()`` (or as a context manager); ``client()`` talks to it like a remote user."""

    def __init__(
        self,
        settings: Settings,
        transports: TransportFactory,
        *,
        db_url: str | None = None,
        replicas: dict[str, int] | None = None,
        callbacks: dict[str, TaskCallback] | None = None,
        service_callbacks: dict[str, ServiceCallback] | None = None,
        with_orchestrator: bool = True,
    ) -> None:
        self.settings = settings
        self._transports = transports
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if db_url is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sustainml-")
            db_url = f"sqlite:///{Path(self._tmp.name) / 'taskdb.sqlite3'}"
        self.db_url = db_url
        self._replicas = {resolve_stage(k).node: v for k, v in (replicas or {}).items()}
        self._callbacks = {resolve_stage(k).node: v for k, v in (callbacks or {}).items()}
        self._service_callbacks = {resolve_stage(k).node: v for k, v in (service_callbacks or {}).items()}
        self._with_orchestrator = with_orchestrator
        self.orchestrator: Orchestrator | None = None
        self.nodes: list[Node] = []
        self._transports_opened: list[Transport] = []
        self._clients: list[Client] = []

    def _transport(self, name: str) -> Transport:
        t = self._transports(name)
        self._transports_opened.append(t)
        return t

    def start(self) -> LocalDeployment:
        if self._with_orchestrator:
            self.orchestrator = Orchestrator(
                self.settings, transport=self._transport("ORCHESTRATOR"), db=TaskDB(self.db_url)
            )
            self.orchestrator.start()
        for stage in PIPELINE:
            for i in range(self._replicas.get(stage.node, 1)):
                self.start_node(stage.node, replica_id=f"{stage.node.lower()}-{i + 1}")
        return self

    def start_node(self, node: str, *, replica_id: str | None = None) -> Node:
        """Start one more replica of ``node`` (shipped logic unless a callback was given)."""
        stage = resolve_stage(node)
        n = shipped_node(
            stage.node, settings=self.settings, transport=self._transport(stage.node), replica_id=replica_id
        )
        if stage.node in self._callbacks:
            n.callback = self._callbacks[stage.node]
        if stage.node in self._service_callbacks:
            n.service_callback = self._service_callbacks[stage.node]
        n.run_in_thread()
        self.nodes.append(n)
        return n

    def stop_node(self, node: Node) -> None:
        node.stop()
        if node in self.nodes:
            self.nodes.remove(node)

    def client(self) -> Client:
        c = Client(self.settings, transport=self._transport("client"))
        self._clients.append(c)
        return c

    def stop(self) -> None:
        for c in self._clients:
            c.close()
        for n in self.nodes:
            n.stop()
        if self.orchestrator is not None:
            self.orchestrator.close()
        # Closing a transport waits for its running handlers, so the TaskDB closes after them.
        for t in self._transports_opened:
            t.close(timeout=10.0)
        if self.orchestrator is not None:
            self.orchestrator.db.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> LocalDeployment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
