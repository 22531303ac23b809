"""The orchestrator as a service: the one interface the in-process ``Orchestrator`` and the remote
``Client`` both implement, and the only thing the HTTP API uses.

``watch`` delivers the deployment's live facts (every ``TaskEvent`` and ``NodeStatus``) to a
callback through a private queue of the caller's own; ``EventSubscription`` is that subscription,
shared by both implementations, and ``NodeRegistry`` turns its ``NodeStatus`` facts into live
replicas. ``SubmitError`` and ``TransportError`` are the refusals and failures the service raises,
``SubmitRefused`` the refusal of one input of ``submit_many``; ``monitored_queues`` names the
shared queues whose depth ``queue_counts`` reports. Callers (the HTTP API) take these names from
here, not from the modules beneath.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from sustainml.config import Settings
from sustainml.messages import (
    CmdNode,
    CmdTask,
    MessageError,
    NodeStatus,
    Record,
    ResponseType,
    TaskId,
    UserInput,
    decode,
)
from sustainml.messages.tasks import (
    TASK_EVENT,
    NodeReport,
    RequestError,
    TaskEvent,
    TaskResult,
    TaskState,
    TaskSummary,
)
from sustainml.orchestrator.protocol import SubmitError
from sustainml.orchestrator.registry import NodeRegistry
from sustainml.topology import PIPELINE, Topology
from sustainml.transport.base import Binding, Delivery, QueueSpec, Transport, TransportError

__all__ = [
    "EventHandler",
    "EventSubscription",
    "Health",
    "LiveFact",
    "NodeRegistry",
    "OrchestratorService",
    "SubmitError",
    "SubmitRefused",
    "TransportError",
    "event_bindings",
    "monitored_queues",
]

log = logging.getLogger(__name__)

LiveFact = TaskEvent | NodeStatus
EventHandler = Callable[[LiveFact], None]


@dataclass(frozen=True)
class SubmitRefused:
    """One input of ``submit_many`` that the orchestrator refused: it created no task. ``error``
    names the field, as a refused ``submit`` says it."""

    error: str

    def __str__(self) -> str:
        return self.error


@dataclass(frozen=True)
class Health:
    broker: bool  # the broker connection is open
    database: bool  # the task store answers

    @property
    def ok(self) -> bool:
        return self.broker and self.database


def event_bindings(topology: Topology) -> tuple[Binding, ...]:
    """What a ``watch`` queue is bound to: every task event and every node status."""
    return (Binding(topology.task_exchange, "#"), Binding(topology.status_exchange, ""))


def monitored_queues(topology: Topology) -> list[str]:
    """The shared queues an operator watches: each stage's work queue and the orchestrator's
    results queue, its requests queue, then the dead-letter queue of each work queue."""
    work = [topology.stage_queue(s) for s in PIPELINE] + [topology.orchestrator_results_queue]
    return [*work, topology.orchestrator_requests_queue, *(topology.dead_letter_queue(q) for q in work)]


class EventSubscription:
    """A private queue (bound with ``event_bindings``) consumed by ``handler`` on the transport's
    thread. ``close`` cancels it and deletes the queue."""

    def __init__(self, transport: Transport, spec: QueueSpec) -> None:
        self._transport = transport
        self.spec = spec
        self._tag: str | None = None

    def start(self, handler: EventHandler) -> EventSubscription:
        def on_delivery(delivery: Delivery) -> None:
            delivery.ack()  # a live view; the TaskDB holds the durable facts
            msg = delivery.message
            try:
                if msg.type == TASK_EVENT:
                    fact: LiveFact = TaskEvent.decode(msg.body)
                elif msg.type == "NodeStatus":
                    fact = decode(msg.body, NodeStatus)
                else:
                    return
            except (RequestError, MessageError, KeyError, TypeError, ValueError) as exc:
                log.warning("unreadable %s message on %s: %s", msg.type, self.spec.name, exc)
                return
            handler(fact)

        self._transport.declare_queue(self.spec)
        self._tag = self._transport.consume(self.spec.name, on_delivery, prefetch=256, concurrency=1)
        return self

    def close(self) -> None:
        tag, self._tag = self._tag, None
        if not self._transport.is_open:
            return
        try:
            if tag is not None:
                self._transport.cancel(tag)
            self._transport.delete_queue(self.spec.name)
        except TransportError as exc:  # the queue expires on its own (x-expires)
            log.warning("event queue %s not removed: %s", self.spec.name, exc)


class OrchestratorService(Protocol):
    """What can be asked of an orchestrator. Unknown tasks raise ``KeyError``; a refused
    submission ``ValueError``; a broker failure ``TransportError`` (in process) or
    ``OrchestratorError`` (remote)."""

    @property
    def id(self) -> str: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def topology(self) -> Topology: ...

    def submit(self, user_input: UserInput, *, idempotency_key: str | None = None) -> TaskId:
        """Start a task (a new problem, or an iteration: ``previous_iteration`` and
        ``extra_data.previous_problem_id``); a retry with the same key returns the same task."""
        ...

    def submit_many(
        self, inputs: Sequence[UserInput], *, idempotency_keys: Sequence[str] | None = None
    ) -> list[TaskId | SubmitRefused]:
        """``submit`` of every input, in order: each one's task id, or the ``SubmitRefused``
        naming the field when that input was refused (the others are submitted all the same).
        ``idempotency_keys``, when given, holds one key per input."""
        ...

    def task(self, task_id: TaskId) -> TaskSummary:
        """The task's state, without its records."""
        ...

    def result(self, task_id: TaskId) -> TaskResult:
        """The task's state, input and every output stored so far."""
        ...

    def outputs(self, task_id: TaskId, kinds: Collection[str]) -> dict[str, Record | None]:
        """Every stored output of the task by kind; only those in ``kinds`` are decoded (the others,
        and any unreadable one, map to None)."""
        ...

    def wait(self, task_id: TaskId, timeout: float = 60.0) -> TaskResult:
        """The result once the task is over; ``TimeoutError`` after ``timeout`` seconds."""
        ...

    def tasks(
        self, state: TaskState | None = None, problem_id: int | None = None, limit: int = 50, offset: int = 0
    ) -> list[TaskSummary]:
        """Tasks, newest first, optionally filtered, one page at a time."""
        ...

    def latest(self) -> TaskId | None:
        """The most recently created task."""
        ...

    def cancel(self, task_id: TaskId | None = None) -> TaskId | None:
        """Cancel a task (default: the latest unfinished one); the id, or None if there was none."""
        ...

    def nodes(self) -> NodeReport:
        """Each node type's status and every live replica."""
        ...

    def config_request(self, node: str, configuration: str, timeout: float | None = None) -> ResponseType:
        """A configuration request to one node type, named as ``resolve_stage`` reads it (node
        name, record kind, node id, dashed form); the node's own answer. ``KeyError`` naming the
        valid nodes when ``node`` is none of them."""
        ...

    def control(
        self,
        target: str,
        *,
        cmd_node: CmdNode = CmdNode.NO_CMD,
        cmd_task: CmdTask = CmdTask.NO_CMD,
        task_id: TaskId | None = None,
    ) -> None:
        """A NodeControl to every replica of ``target`` (a node name, or ``all``)."""
        ...

    def watch(self, handler: EventHandler) -> EventSubscription:
        """Every task event and node status from now on, to ``handler`` (on a transport thread)."""
        ...

    def health(self) -> Health: ...

    def task_counts(self) -> dict[TaskState, int]:
        """Tasks per state, every state present."""
        ...

    def queue_counts(self, queue: str) -> tuple[int, int]:
        """(ready messages, consumers) of a queue; ``KeyError`` if it is not declared."""
        ...

    def stop(self) -> None:
        """Ask the orchestrator to stop (in process) or close the connection (remote)."""
        ...
