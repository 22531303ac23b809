"""Task events and the queues that watch a task (docs/wire-format.md §9.7, §9.8).

Every stored change of a task is announced as a ``TaskEvent`` on ``<ns>.tasks`` (routing key
``p.i``). A submission may name a watch queue: a *direct* watcher gets a copy of each of the
task's events straight through the default exchange (nothing to bind or unbind); any other gets
one binding to the task's key, made before the task starts and removed once it is over.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from sustainml.messages import SCHEMA_VERSION, TaskId
from sustainml.messages import headers as H
from sustainml.messages.tasks import TASK_EVENT, TaskEvent
from sustainml.orchestrator.node_calls import PUBLISH_TIMEOUT
from sustainml.topology import Topology
from sustainml.transport.base import Binding, Transport, TransportError

log = logging.getLogger(__name__)


def _log_event_failure(fut: Future[None]) -> None:
    if fut.exception() is not None:
        log.warning("task event not published: %s", fut.exception())


class Watchers:
    """The watch queue of each watched task, and the publishing of task events."""

    def __init__(self, transport: Transport, topology: Topology) -> None:
        self._transport = transport
        self._topology = topology
        self._lock = threading.Lock()
        # task -> (its watch queue, direct)
        self._watchers: dict[TaskId, tuple[str, bool]] = {}

    def add(self, task_id: TaskId, queue: str, *, direct: bool) -> None:
        """Send the task's events to ``queue`` from now on (a bound watcher is bound here)."""
        if not direct:
            # One binding per task: its events carry every stored stage output (record included).
            self._transport.bind(queue, Binding(self._topology.task_exchange, task_id.key))
        with self._lock:
            self._watchers[task_id] = (queue, direct)

    def forget(self, task_id: TaskId, announced: Future[None] | None = None) -> None:
        """Stop sending a finished task's events to its watch queue. A direct watcher is only
        forgotten; a bound one is unbound (once ``announced``, the final event, is routed, or the
        watcher could miss it), so bindings do not pile up in a long-running orchestrator (and are
        not re-applied after every reconnect)."""
        with self._lock:
            watcher = self._watchers.pop(task_id, None)
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

    def announce(self, event: TaskEvent) -> Future[None]:
        """Publish a stored change on the tasks exchange (listeners follow a task through its
        routing key); a direct watcher gets a copy straight to its queue first."""
        msg = H.build_message(
            event.encode(),
            type_name=TASK_EVENT,
            app_id="ORCHESTRATOR",
            schema_version=SCHEMA_VERSION,
            persistent=False,
        )
        with self._lock:
            watcher = self._watchers.get(event.task_id)
        if watcher is not None and watcher[1]:
            # Before the exchange copy: a direct watcher must not learn less than a listener.
            direct = self._transport.publish("", watcher[0], msg, mandatory=False)
            direct.add_done_callback(_log_event_failure)
        key = event.task_id.key
        fut = self._transport.publish(self._topology.task_exchange, key, msg, mandatory=False)
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
