"""One broker subscription fanned out to many HTTP clients.

The hub holds one ``watch`` subscription of the orchestrator service: a private queue bound to the
``<ns>.tasks`` topic exchange (every TaskEvent the orchestrator publishes after storing a change)
and to the ``<ns>.status`` fanout (NodeStatus heartbeats). Each event is turned into a JSON-ready
one on the transport's thread and handed to the asyncio loop, which copies it into every
subscriber's bounded queue (SSE streams), wakes the long-polls waiting on that task, and feeds
the stage-latency histogram.

Node heartbeats arrive every couple of seconds per replica; only changes become ``node`` events
(a replica appears, leaves or changes status, or a node type's summary status changes). A replica
that stops without saying so is noticed by a periodic sweep of the hub's own registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool

from sustainml.api.views import BULKY_FIELDS
from sustainml.messages import MessageError, NodeStatus, Status
from sustainml.messages import to_json_dict as record_json
from sustainml.messages.tasks import TERMINAL_STATES, ReplicaInfo, TaskEvent
from sustainml.orchestrator.service import EventSubscription, LiveFact, NodeRegistry, OrchestratorService

log = logging.getLogger(__name__)

# Per SSE client: a client is cut when its oldest unread event has waited MAX_LAG_S seconds (it
# stopped reading), or when SUBSCRIBER_QUEUE events wait (the memory bound). A burst of events
# larger than a count-only bound would cut clients that read perfectly well.
SUBSCRIBER_QUEUE = 10_000
MAX_LAG_S = 30.0
SWEEP_INTERVAL = 1.0
LATENCY_TRACKED_MAX = 10_000  # tasks whose last event time is remembered (stage latency)

TaskKeyStr = str  # "p.i"
TERMINAL_STATE_NAMES = frozenset(s.value for s in TERMINAL_STATES)


@dataclass(frozen=True)
class HubEvent:
    id: int
    name: str  # "task" | "node"
    data: dict[str, Any]
    task: TaskKeyStr | None = None


@dataclass(eq=False)  # identity: kept in a set
class Subscription:
    task: TaskKeyStr | None
    nodes: bool
    queue: asyncio.Queue[HubEvent | None] = field(default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE))
    dropped: bool = False
    last_read: float = field(default_factory=time.monotonic)  # when the client last took an event

    def wants(self, event: HubEvent) -> bool:
        if event.name == "node":
            return self.nodes
        return self.task is None or event.task == self.task


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def replica_json(r: ReplicaInfo) -> dict[str, Any]:
    return {
        "node_name": r.node_name,
        "replica_id": r.replica_id,
        "status": r.status.name,
        "age_s": r.age_s,
        "in_flight": r.in_flight,
        "processed": r.processed,
        "error_description": r.error_description,
        "task_id": r.task_id,
    }


class EventHub:
    def __init__(
        self, orchestrator: OrchestratorService, observe_stage: Any = None, count_event: Any = None
    ) -> None:
        self._orch = orchestrator
        self._observe_stage = observe_stage  # callable(node, seconds) or None
        self._count_event = count_event  # callable(state) or None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: set[Subscription] = set()
        self._waiters: dict[TaskKeyStr, set[asyncio.Event]] = {}
        self._ids = itertools.count(1)
        self._registry = NodeRegistry(orchestrator.settings.heartbeat_interval)
        self._summary: dict[str, Status] = {}
        self._last_event_at: dict[TaskKeyStr, float] = {}
        self._subscription: EventSubscription | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.closing = False

    # -- lifecycle (on the event loop) -------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._summary = self._registry.node_status()
        self._subscription = await run_in_threadpool(self._orch.watch, self._on_fact)
        self._sweeper = asyncio.create_task(self._sweep())

    def request_close(self) -> None:
        """Thread-safe: end every SSE stream and long-poll now (server shutdown)."""
        self.closing = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for sub in list(self._subs):
            self._offer(sub, None)
        for events in self._waiters.values():
            for ev in events:
                ev.set()

    async def close(self) -> None:
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        self._wake_all()
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await run_in_threadpool(subscription.close)

    # -- broker side (transport thread) ------------------------------------------------------------
    def _on_fact(self, fact: LiveFact) -> None:
        try:
            if isinstance(fact, TaskEvent):
                item: tuple[str, Any, TaskKeyStr | None] = ("task", self._task_data(fact), fact.task_id.key)
            else:
                item = ("status", fact, None)
        except (MessageError, KeyError, TypeError, ValueError) as exc:
            log.warning("unreadable TaskEvent on the API event queue: %s", exc)
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop is shutting down
            loop.call_soon_threadsafe(self._dispatch, *item)

    @staticmethod
    def _task_data(ev: TaskEvent) -> dict[str, Any]:
        output = None
        omitted: list[str] = []
        if ev.completed and ev.record is not None:
            # Megabytes of model and sample bytes do not belong in a live stream that every
            # client receives: they stay in the TaskDB (GET /v1/tasks/{p}/{i}).
            omitted = [name for name in BULKY_FIELDS if ev.record.get(name)]
            record = ev.output(leave_out=BULKY_FIELDS)
            output = record_json(record) if record is not None else None
            for name in BULKY_FIELDS:
                if output is not None:
                    output.pop(name, None)
        return {
            "task_id": {"problem_id": ev.task_id.problem_id, "iteration_id": ev.task_id.iteration_id},
            "state": ev.state.value,
            "stage": ev.stage,
            "completed": ev.completed,
            "error": ev.error,
            "output": output,
            "omitted": omitted,
            "at": _now_iso(),
        }

    # -- loop side ---------------------------------------------------------------------------------
    def _dispatch(self, kind: str, payload: Any, task: TaskKeyStr | None) -> None:
        if kind == "task":
            self._on_task(payload, task)
        else:
            self._on_status(payload)

    def _on_task(self, data: dict[str, Any], task: TaskKeyStr | None) -> None:
        assert task is not None
        now = time.monotonic()
        previous = self._last_event_at.get(task)
        if data["completed"] and previous is not None and self._observe_stage is not None:
            self._observe_stage(data["completed"], now - previous)
        if data["state"] in TERMINAL_STATE_NAMES:
            self._last_event_at.pop(task, None)
        else:
            if len(self._last_event_at) >= LATENCY_TRACKED_MAX:  # tasks that never finished
                self._last_event_at.pop(next(iter(self._last_event_at)))
            self._last_event_at[task] = now
        if self._count_event is not None:
            self._count_event(data["state"])
        self._publish(HubEvent(next(self._ids), "task", data, task))
        for ev in self._waiters.get(task, ()):
            ev.set()

    def _on_status(self, status: NodeStatus) -> None:
        key = (status.node_name, status.replica_id)
        before = {(r.node_name, r.replica_id): r.status for r in self._registry.replicas()}
        self._registry.update(status)
        after = {(r.node_name, r.replica_id): r.status for r in self._registry.replicas()}
        summary = self._registry.node_status()
        changed_replica = before.get(key) != after.get(key)
        changed_summary = summary.get(status.node_name) != self._summary.get(status.node_name)
        self._summary = summary
        if not (changed_replica or changed_summary):
            return
        data = {
            "node": status.node_name,
            "status": summary.get(status.node_name, Status.INACTIVE).name,
            "replica_id": status.replica_id,
            "replica_status": Status(status.node_status).name,
            "event": status.event,
            "task_id": (
                {"problem_id": status.task_id.problem_id, "iteration_id": status.task_id.iteration_id}
                if status.task_id
                else None
            ),
            "error_description": status.error_description,
            "in_flight": status.in_flight,
            "processed": status.processed,
            "at": _now_iso(),
        }
        self._publish(HubEvent(next(self._ids), "node", data))

    async def _sweep(self) -> None:
        """Replicas that vanished without a goodbye: their node's summary changes when they go
        stale, and nothing else would announce it."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            summary = self._registry.node_status()  # forgets replicas whose heartbeats stopped
            for node, status in summary.items():
                if self._summary.get(node) != status:
                    data = {
                        "node": node,
                        "status": status.name,
                        "replica_id": "",
                        "replica_status": Status.INACTIVE.name,
                        "event": "offline",
                        "task_id": None,
                        "error_description": "no heartbeat",
                        "in_flight": 0,
                        "processed": 0,
                        "at": _now_iso(),
                    }
                    self._publish(HubEvent(next(self._ids), "node", data))
            self._summary = summary

    def _publish(self, event: HubEvent) -> None:
        for sub in list(self._subs):
            if sub.wants(event):
                self._offer(sub, event)

    def _offer(self, sub: Subscription, event: HubEvent | None) -> None:
        lag = time.monotonic() - sub.last_read
        if event is not None and not sub.queue.empty() and lag > MAX_LAG_S:
            # Events have waited since the client last read one: it stopped reading.
            log.warning("SSE client %s read nothing for %.0f s; closing its stream", id(sub), lag)
            self._drop(sub)
            return
        try:
            sub.queue.put_nowait(event)
        except asyncio.QueueFull:
            # A client that does not read cannot hold the server's memory: end its stream.
            log.warning("SSE client %s fell %d events behind; closing its stream", id(sub), SUBSCRIBER_QUEUE)
            self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        sub.dropped = True
        self._subs.discard(sub)
        with contextlib.suppress(asyncio.QueueFull):
            sub.queue.put_nowait(None)  # wakes its stream if it waits

    # -- API used by the routes (on the loop) ----------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        report = self._orch.nodes()
        return {
            "nodes": {name: s.name for name, s in report.nodes.items()},
            "replicas": [replica_json(r) for r in report.replicas],
        }

    def subscribe(self, task: TaskKeyStr | None = None, nodes: bool = True) -> Subscription:
        sub = Subscription(task, nodes)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def next_id(self) -> int:
        return next(self._ids)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @contextlib.contextmanager
    def watch(self, task: TaskKeyStr) -> Iterator[asyncio.Event]:
        """An event set when ``task`` changes; register before reading the TaskDB, so a change
        between the read and the wait is not missed."""
        ev = asyncio.Event()
        self._waiters.setdefault(task, set()).add(ev)
        try:
            yield ev
        finally:
            waiting = self._waiters.get(task)
            if waiting is not None:
                waiting.discard(ev)
                if not waiting:
                    del self._waiters[task]

    async def stream(self, sub: Subscription, ping_every: float = 15.0) -> AsyncIterator[HubEvent | None]:
        """Events of one subscription; ``None`` = time for a keep-alive comment. Ends on close."""
        while not self.closing and not sub.dropped:
            try:
                event = await asyncio.wait_for(sub.queue.get(), ping_every)
            except TimeoutError:
                sub.last_read = time.monotonic()  # nothing waiting: not behind
                yield None
                continue
            sub.last_read = time.monotonic()
            if event is None:
                return
            yield event
