"""Task events and the queues that watch a task (docs/wire-format.md §9.7, §9.8).

Every change of a task is announced as a ``TaskEvent`` on ``<ns>.tasks`` (routing key ``p.i``).
A submission may name a watch queue: a *direct* watcher gets a copy of each of the task's events
straight through the default exchange (nothing to bind or unbind); any other gets one binding to
the task's key, made before the task starts and removed once it is over.

The watch queue and its mode travel with the task: the orchestrator puts them on the task's start
message and every worker copies them onto its output (``watch_queue``/``watch_mode`` headers), so
whichever orchestrator replica handles an output can announce to a direct watcher and unbind a
bound one. The replica that started the task also remembers them, for the events no stage message
carries (a cancel, a stage deadline, a failed start).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from sustainml.messages import SCHEMA_VERSION, TaskId
from sustainml.messages import headers as H
from sustainml.messages.tasks import TASK_EVENT, TaskEvent
from sustainml.orchestrator.node_calls import PUBLISH_TIMEOUT
from sustainml.orchestrator.protocol import WATCH_BIND, WATCH_DIRECT
from sustainml.rpc import ForeignQueue, check_own_queue
from sustainml.topology import Topology
from sustainml.transport.base import Binding, Transport, TransportError

log = logging.getLogger(__name__)

Watch = tuple[str, bool]  # (watch queue, direct)

# Watchers remembered by this replica; another replica may finish the task (and forget it there),
# so the oldest entries go once there are this many.
MAX_REMEMBERED = 100_000


def _log_event_failure(fut: Future[None]) -> None:
    if fut.exception() is not None:
        log.warning("task event not published: %s", fut.exception())


def watch_headers(queue: str, direct: bool) -> dict[str, Any]:
    """The headers that make a task's stage messages carry its watch queue."""
    return {H.H_WATCH_QUEUE: queue, H.H_WATCH_MODE: WATCH_DIRECT if direct else WATCH_BIND}


def watch_of(headers: Mapping[str, Any]) -> Watch | None:
    """The (queue, direct) that ``headers`` (a request's or a stage message's) carry, unchecked."""
    queue = headers.get(H.H_WATCH_QUEUE)
    return (str(queue), headers.get(H.H_WATCH_MODE) == WATCH_DIRECT) if queue else None


class Watchers:
    """The watch queue of each watched task, and the publishing of task events."""

    def __init__(self, transport: Transport, topology: Topology) -> None:
        self._transport = transport
        self._topology = topology
        self._lock = threading.Lock()
        self._watchers: dict[TaskId, Watch] = {}

    def of_message(self, headers: Mapping[str, Any]) -> Watch | None:
        """The watch a stage message carries (None without one, or naming a foreign queue: the
        headers are not signed, so a queue outside the namespace is never written to)."""
        watch = watch_of(headers)
        if watch is None:
            return None
        try:
            check_own_queue(self._topology, watch[0], "watch_queue")
        except ForeignQueue as exc:
            log.warning("ignoring a stage message's watch queue: %s", exc)
            return None
        return watch

    def add(self, task_id: TaskId, queue: str, *, direct: bool) -> None:
        """Send the task's events to ``queue`` from now on (a bound watcher is bound here)."""
        if not direct:
            # One binding per task: its events carry every stage output (record included).
            self._transport.bind(queue, Binding(self._topology.task_exchange, task_id.key))
        with self._lock:
            self._watchers[task_id] = (queue, direct)
            if len(self._watchers) > MAX_REMEMBERED:
                self._watchers.pop(next(iter(self._watchers)))

    def resolve(self, task_id: TaskId, watch: Watch | None) -> Watch | None:
        """``watch`` (the one a message carried), else the one this replica remembers."""
        if watch is not None:
            return watch
        with self._lock:
            return self._watchers.get(task_id)

    def forget(
        self, task_id: TaskId, announced: Future[None] | None = None, watch: Watch | None = None
    ) -> None:
        """Stop sending a finished task's events to its watch queue (``watch``: the one its
        message carried, else the one remembered). A direct watcher is only forgotten; a bound one
        is unbound (once ``announced``, the final event, is routed, or the watcher could miss it),
        so bindings do not pile up in a long-running orchestrator (and are not re-applied after
        every reconnect)."""
        with self._lock:
            remembered = self._watchers.pop(task_id, None)
        watcher = watch or remembered
        if watcher is None:
            return
        queue, direct = watcher
        if direct:
            return
        if announced is not None:
            with contextlib.suppress(TransportError, FutureTimeout):
                announced.result(PUBLISH_TIMEOUT)
        try:
            self._transport.unbind(queue, Binding(self._topology.task_exchange, task_id.key))
        except TransportError as exc:  # the queue expires on its own (x-expires)
            log.debug("watch queue %s not unbound: %s", queue, exc)

    def announce(self, event: TaskEvent, watch: Watch | None = None) -> Future[None]:
        """Publish a change on the tasks exchange (listeners follow a task through its routing
        key); a direct watcher (``watch``, else the one remembered) gets a copy first."""
        return self.publish(event.task_id.key, event.encode(), self.resolve(event.task_id, watch))

    def publish(self, task_key: str, body: bytes, watch: Watch | None) -> Future[None]:
        """Publish an encoded TaskEvent of task ``task_key`` (to ``watch`` first when direct)."""
        msg = H.build_message(
            body, type_name=TASK_EVENT, app_id="ORCHESTRATOR", schema_version=SCHEMA_VERSION, persistent=False
        )
        if watch is not None and watch[1]:
            # Before the exchange copy: a direct watcher must not learn less than a listener.
            direct = self._transport.publish("", watch[0], msg, mandatory=False)
            direct.add_done_callback(_log_event_failure)
        fut = self._transport.publish(self._topology.task_exchange, task_key, msg, mandatory=False)
        fut.add_done_callback(_log_event_failure)
        return fut

    def announce_and_forget(self, event: TaskEvent, timeout: float = PUBLISH_TIMEOUT) -> None:
        """A final event published outside the flow of outputs (a failed start, a deadline): waited
        for (a broker error is logged, the change is stored), then the watcher is forgotten."""
        try:
            self.announce(event).result(timeout)
        except (TransportError, FutureTimeout) as exc:
            log.warning("task %s: %s event not announced: %s", event.task_id, event.state, exc)
        self.forget(event.task_id)
