"""What a replica reports about itself on the fanout status exchange.

INITIALIZING on start, IDLE when ready, per-task events, a NodeStatus heartbeat every
``heartbeat_interval`` seconds, TERMINATING on shutdown. Per-task events go out in order from a
status thread of their own, **coalesced**: a replica publishes at most one routine task event per
``COALESCE_INTERVAL``. The first event after a quiet interval (a task's RUNNING, or its
completion if the callback has already returned) goes out at once; completions that follow
within the interval are merged into the latest one, published when the interval ends with the
replica's counters (``processed`` counts every task). Two kinds of event are never merged: a
failed task's completion (its error is a fact of that task) and the RUNNING event of a callback
still running ``RUNNING_AFTER`` seconds after it started (long tasks are seen running); any other
RUNNING event whose callback returns before it is due is dropped. Status is best effort: a lost message
is repeated by the next heartbeat.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal

from sustainml.messages import SCHEMA_VERSION, ErrorCode, NodeStatus, Status, TaskId, TaskStatus, encode
from sustainml.messages import headers as H
from sustainml.topology import Stage, Topology
from sustainml.transport.base import Message, Transport, TransportError

log = logging.getLogger(__name__)

StatusEvent = Literal["online", "heartbeat", "task", "offline"]

#: At most one routine task event per replica per this many seconds: at hundreds of tasks a
#: second, one event per task and stage would cost the orchestrator more than the tasks' outputs.
COALESCE_INTERVAL = 0.25
#: A callback still running this long after it started has its RUNNING event published.
RUNNING_AFTER = 0.05


class NodeState:
    """A replica's state and counters, as its status messages report them (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.status = Status.INACTIVE
        self.paused = False
        self.last_error = ""
        self.in_flight: dict[TaskId, float] = {}
        self.processed = 0

    def set(self, status: Status) -> None:
        with self._lock:
            self.status = status

    def begin(self, task_id: TaskId, started: float) -> None:
        with self._lock:
            self.in_flight[task_id] = started
            if not self.paused:
                self.status = Status.RUNNING

    def forget(self, task_id: TaskId) -> None:
        """The task left this replica unsettled (redelivered): no longer in flight here."""
        with self._lock:
            self.in_flight.pop(task_id, None)

    def attempt_failed(self, task_id: TaskId, error: str) -> None:
        """An attempt that will be retried: the task is no longer in flight here."""
        with self._lock:
            self.in_flight.pop(task_id, None)
            self.last_error = error
            if not self.paused:
                self.status = Status.RUNNING if self.in_flight else Status.IDLE

    def done(self, task_id: TaskId, error: str) -> tuple[Status, int, int]:
        """The task's input is settled for good: the status its completion event reports (IDLE
        or ERROR, whatever the replica's own status), then the in-flight and processed counters
        as they are now."""
        final = Status.ERROR if error else Status.IDLE
        with self._lock:
            self.in_flight.pop(task_id, None)
            self.processed += 1
            self.last_error = error
            if not self.paused:
                self.status = final if not self.in_flight else Status.RUNNING
            return final, len(self.in_flight), self.processed

    def refresh(self) -> None:
        """On a heartbeat: RUNNING or IDLE from the tasks in flight (a pause, an ERROR waiting for
        a reset and TERMINATING stay)."""
        with self._lock:
            if not self.paused and self.status not in (Status.ERROR, Status.TERMINATING):
                self.status = Status.RUNNING if self.in_flight else Status.IDLE

    def pause(self) -> bool:
        """True when the replica was not paused yet."""
        with self._lock:
            if self.paused:
                return False
            self.paused = True
            self.status = Status.INACTIVE
            return True

    def resume(self) -> bool:
        """True when the replica was paused."""
        with self._lock:
            if not self.paused:
                return False
            self.paused = False
            self.status = Status.IDLE
            return True

    def reset(self) -> None:
        with self._lock:
            self.last_error = ""
            if self.status == Status.ERROR:
                self.status = Status.IDLE

    def snapshot(self) -> tuple[Status, TaskId | None, str, int, int]:
        """The status, a task in flight (None when idle), the last error, and the in-flight and
        processed counters, read together."""
        with self._lock:
            current = next(iter(self.in_flight), None)
            return self.status, current, self.last_error, len(self.in_flight), self.processed


class _Running:
    """A queued RUNNING event; ``returned`` is set by the handler thread when the callback returns."""

    __slots__ = ("at", "due", "returned", "task_id")

    def __init__(self, task_id: TaskId) -> None:
        self.task_id = task_id
        self.at = time.time()
        self.due = time.monotonic() + RUNNING_AFTER  # published then if the callback still runs
        self.returned = False


@dataclass(frozen=True, slots=True)
class _Finished:
    """A queued completion event, with the node's counters as they were when the task settled."""

    task_id: TaskId
    status: Status
    task_status: TaskStatus
    error: str
    in_flight: int
    processed: int
    at: float


class StatusReporter:
    """Publishes one replica's NodeStatus messages: lifecycle events, heartbeats and, from a
    thread of its own, the coalesced per-task events (see the module docstring). Handler threads
    (and the confirm callbacks) only queue the task events."""

    def __init__(
        self,
        *,
        stage: Stage,
        replica_id: str,
        heartbeat_interval: float,
        state: NodeState,
        transport: Transport,
        topology: Topology,
        sign: Callable[[Message], Message],
        stopped: threading.Event,
    ) -> None:
        self.node_name = stage.node
        self._replica_id = replica_id
        self._node_id = int(stage.node_id)
        self._heartbeat_interval = heartbeat_interval
        self._state = state
        self._transport = transport
        self._topology = topology
        self._sign = sign
        self._stopped = stopped
        self._cv = threading.Condition()
        self._queue: deque[_Running | _Finished] = deque()
        self._closing = False
        self._thread: threading.Thread | None = None

    # -- lifecycle and heartbeats ----------------------------------------------------------
    def publish(self, event: StatusEvent, record: NodeStatus | None = None) -> None:
        """Publish ``record``, by default the replica's current state as ``event``."""
        status = record or self._current(event)
        msg = H.build_message(
            encode(status),
            type_name="NodeStatus",
            app_id=self.node_name,
            schema_version=SCHEMA_VERSION,
            persistent=False,
        )
        try:
            msg = self._sign(msg)
            fut = self._transport.publish(
                self._topology.status_exchange, self.node_name, msg, mandatory=False
            )
            fut.add_done_callback(_log_lost_status)
        except TransportError as exc:  # status is best effort: the next heartbeat repeats it
            log.debug("%s: status not published: %s", self.node_name, exc)

    def heartbeat(self) -> None:
        """Publish a heartbeat, then again every ``heartbeat_interval`` until the node stops."""
        if self._stopped.is_set():
            return
        self._state.refresh()
        self.publish("heartbeat")
        self._transport.call_later(self._heartbeat_interval, self.heartbeat)

    # -- per-task events --------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread that publishes the per-task events."""
        with self._cv:
            if self._thread is not None:
                return
            self._closing = False
            self._thread = threading.Thread(
                target=self._run, name=f"{self.node_name}-task-events", daemon=True
            )
        self._thread.start()

    def running(self, task_id: TaskId) -> _Running:
        """Queue the RUNNING event of a task; set ``returned`` on it once its callback returns."""
        event = _Running(task_id)
        self._put(event)
        return event

    def finished(self, task_id: TaskId, error: str) -> None:
        """Settle the task in the node's state and queue its completion event."""
        final, in_flight, processed = self._state.done(task_id, error)
        task_status = TaskStatus.ERROR if error else TaskStatus.SUCCEEDED
        self._put(_Finished(task_id, final, task_status, error, in_flight, processed, time.time()))

    def _put(self, event: _Running | _Finished) -> None:
        with self._cv:
            self._queue.append(event)
            self._cv.notify()

    def close(self, timeout: float) -> None:
        """Publish what is queued, then stop the thread (waits up to ``timeout`` seconds)."""
        with self._cv:
            self._closing = True
            self._cv.notify()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(max(0.0, timeout))
            if thread.is_alive():
                log.warning("%s: task status events still queued at shutdown", self.node_name)

    def _run(self) -> None:
        coalescer = _Coalescer()
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    wait = coalescer.next_wakeup(time.monotonic())
                    if wait is not None and wait <= 0:
                        break
                    self._cv.wait(wait)
                events = list(self._queue)
                self._queue.clear()
                closing = self._closing
            for event in coalescer.due(events, time.monotonic(), closing):
                self._publish_task_event(event)
            if closing:
                return

    def _publish_task_event(self, event: _TaskEvent) -> None:
        try:
            if isinstance(event, _Running):
                record = self._task_record(event.task_id, Status.RUNNING, TaskStatus.RUNNING, at=event.at)
            else:
                record = self._task_record(
                    event.task_id,
                    event.status,
                    event.task_status,
                    event.error,
                    in_flight=event.in_flight,
                    processed=event.processed,
                    at=event.at,
                )
            self.publish("task", record)
        except Exception:  # keep reporting the next tasks; this one is in the log
            log.exception("%s: could not publish the status event of task %s", self.node_name, event.task_id)

    def _current(self, event: StatusEvent) -> NodeStatus:
        status, current, last_error, in_flight, processed = self._state.snapshot()
        failed = status == Status.ERROR
        return NodeStatus(
            node_status=status,
            task_status=TaskStatus.RUNNING if current else TaskStatus.WAITING,
            error_code=ErrorCode.INTERNAL_ERROR if failed else ErrorCode.NO_ERROR,
            task_id=current,
            error_description=last_error if failed else "",
            node_name=self.node_name,
            replica_id=self._replica_id,
            node_id=self._node_id,
            event=event,
            heartbeat_interval=self._heartbeat_interval,
            in_flight=in_flight,
            processed=processed,
            timestamp=time.time(),
        )

    def _task_record(
        self,
        task_id: TaskId,
        status: Status,
        task_status: TaskStatus,
        error: str = "",
        *,
        in_flight: int | None = None,
        processed: int | None = None,
        at: float,
    ) -> NodeStatus:
        state = self._state
        return NodeStatus(
            node_status=status,
            task_status=task_status,
            error_code=ErrorCode.INTERNAL_ERROR if error else ErrorCode.NO_ERROR,
            task_id=task_id,
            error_description=error,
            node_name=self.node_name,
            replica_id=self._replica_id,
            node_id=self._node_id,
            event="task",
            heartbeat_interval=self._heartbeat_interval,
            in_flight=len(state.in_flight) if in_flight is None else in_flight,
            processed=state.processed if processed is None else processed,
            timestamp=at,
        )


_TaskEvent = _Running | _Finished


class _Coalescer:
    """Which queued task events to publish now (the status thread's decisions, kept apart from
    its locking): the first event after a quiet interval at once, then RUNNING events when due
    and completions merged until the interval ends."""

    def __init__(self) -> None:
        self.running: list[_Running] = []  # callbacks not yet returned, RUNNING not yet published
        self.held: _Finished | None = None  # the latest merged completion, due when the interval ends
        self.last_publish = -math.inf  # time.monotonic() of the last task event published

    def next_wakeup(self, now: float) -> float | None:
        """Seconds until an event falls due (None: nothing pending)."""
        times = [r.due for r in self.running if not r.returned]
        if self.held is not None:
            times.append(self.last_publish + COALESCE_INTERVAL)
        return min(times) - now if times else None

    def due(
        self, events: list[_Running | _Finished], now: float, closing: bool
    ) -> list[_Running | _Finished]:
        out: list[_Running | _Finished] = []
        # After a quiet interval the first event goes out at once: a replica's idle -> running ->
        # idle is seen whenever tasks are sparse; under load the interval merges the rest.
        free = self.held is None and now - self.last_publish >= COALESCE_INTERVAL
        for event in events:
            if isinstance(event, _Running):
                if free and not event.returned:
                    out.append(event)
                    free = False
                else:
                    self.running.append(event)
            elif event.error or free:
                out.append(event)  # a failure is never merged
                free = False
            else:
                self.held = event
        still: list[_Running] = []
        for r in self.running:
            if r.returned:
                continue  # over before it was due: its completion event stands for it
            if closing or now >= r.due:
                out.append(r)
            else:
                still.append(r)
        self.running = still
        if self.held is not None and (closing or now - self.last_publish >= COALESCE_INTERVAL):
            out.append(self.held)
            self.held = None
        if out:
            self.last_publish = now
        return out


def _log_lost_status(fut: Future[None]) -> None:
    if fut.exception() is not None:
        log.debug("status message lost: %s", fut.exception())
