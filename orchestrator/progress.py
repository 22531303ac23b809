"""Progress without the database: the intermediate outputs of every task, from
``<ns>.orchestrator.progress`` (docs/wire-format.md §4, §9.7).

Nothing is stored from this queue, so it is handled cheaply: no record is decoded into a model (the
task id comes from the routing key, the stage from the exchange, the record map from a raw msgpack
unpack of the envelope) and the ``running`` TaskEvent is published at once, to ``<ns>.tasks`` and
to the direct watcher the message names. The stage each task is at is kept in memory and written
to the TaskDB behind, coalesced: the latest stage of every task that moved, in one statement every
``FLUSH_INTERVAL`` seconds. That keeps ``current_stage`` and ``updated_at`` (the stage-deadline
clock) current, with that lag. The records so far of each running task (the latest message's
envelope) are kept in memory too, as wire maps, so ``result`` shows them before the outcome is
stored.

A message whose sender cannot be proven to be a worker (or an operator's replay) is dropped with a
warning: nothing is stored from it, and the outcome of its task still comes, attributed, on the
durable results queue.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sustainml.attribution import Unattributed
from sustainml.messages import TaskId
from sustainml.messages.packing import unpackb
from sustainml.messages.tasks import TaskEvent
from sustainml.orchestrator.watchers import Watch
from sustainml.topology import FINAL_STAGE, PIPELINE, STAGES_BY_KIND, Topology
from sustainml.transport.base import Delivery, TransportError

if TYPE_CHECKING:
    from sustainml.orchestrator.core import Orchestrator

log = logging.getLogger(__name__)

STAGE_KINDS = frozenset(STAGES_BY_KIND)

FLUSH_INTERVAL = 0.5  # seconds between two writes of the tasks' progress
# Running tasks whose records so far are kept in memory (the oldest go first: a task another
# replica finished is never ``finished`` here).
MAX_LIVE_TASKS = 50_000
# Tasks this replica finished lately: a progress message that comes after its task's outcome
# (the two queues are consumed apart) announces nothing.
RECENTLY_FINISHED = 10_000


class Progress:
    """The progress consumer of one orchestrator, and the coalesced writer of ``current_stage``."""

    def __init__(self, orch: Orchestrator) -> None:
        self._orch = orch
        topology: Topology = orch.topology
        # exchange -> pipeline position of the stage that produced the output
        self._stages: dict[str, int] = {
            topology.record_exchange(s.kind): n for n, s in enumerate(PIPELINE) if s is not FINAL_STAGE
        }
        self._kinds = [s.kind for s in PIPELINE]
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[int, str]] = {}  # task key -> (position, next node)
        # task key -> (position, its records so far as wire maps: the latest envelope's context)
        self._live: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()
        self._finished: set[str] = set()
        self._finished_order: deque[str] = deque()

    # -- consuming ---------------------------------------------------------------------------
    def on_progress(self, delivery: Delivery) -> None:
        delivery.ack()  # nothing is stored from it: a lost progress message costs one event
        position = self._stages.get(delivery.exchange)
        if position is None:
            return self._drop(delivery, f"not an intermediate stage's exchange ({delivery.exchange!r})")
        try:  # what the durable path dead-letters is only dropped here
            self._orch.signer().require(delivery.message, {"worker", "operator"}, "a stage output")
        except Unattributed as exc:
            return self._drop(delivery, str(exc))
        key = delivery.routing_key
        task_map, record, context = _envelope_parts(delivery.message.body)
        if task_map is None or _task_key(task_map) != key:
            return self._drop(delivery, "not a stage message of the task its routing key names")
        next_node = PIPELINE[position + 1].node
        watch = self._orch.watchers.of_message(delivery.message.headers)
        with self._lock:  # published under the lock: ``finished`` cannot slip in between
            if key in self._finished:
                return None
            previous = self._pending.get(key)
            if previous is None or previous[0] < position:
                self._pending[key] = (position, next_node)
            live = self._live.get(key)
            if live is None or live[0] < position:
                self._live[key] = (position, {**context, self._kinds[position]: record})
                self._live.move_to_end(key)
                if len(self._live) > MAX_LIVE_TASKS:
                    self._live.popitem(last=False)
            self._publish(key, task_map, position, record, watch)
        return None

    def _publish(
        self, key: str, task_map: dict[str, Any], position: int, record: Any, watch: Watch | None
    ) -> None:
        node, next_node = PIPELINE[position].node, PIPELINE[position + 1].node
        body = TaskEvent.encode_progress(task_map, next_node, node, record)
        try:
            self._orch.watchers.publish(key, body, watch)
        except TransportError as exc:  # best effort: the event is lost, the outcome is not
            log.debug("task %s: progress event not published: %s", key, exc)

    def _drop(self, delivery: Delivery, reason: str) -> None:
        log.warning(
            "progress message %s from %r dropped: %s", delivery.message.message_id, delivery.exchange, reason
        )

    def finished(self, task_id: TaskId, upto: int, context: dict[str, Any], watch: Watch | None) -> None:
        """The task's outcome (of the stage at pipeline position ``upto``) is stored: its progress
        is over, and late progress messages announce nothing. The ``running`` events of the stages
        before ``upto`` not announced yet (their messages are still queued behind, or went to
        another replica) are published now, from the outcome's ``context``, so a watcher gets
        every stage's event before the final one."""
        key = task_id.key
        with self._lock:
            self._pending.pop(key, None)
            live = self._live.pop(key, None)
            announced = live[0] if live is not None and key not in self._finished else -1
            if key not in self._finished:
                task_map = {"problem_id": task_id.problem_id, "iteration_id": task_id.iteration_id}
                for position in range(announced + 1, min(upto, len(PIPELINE) - 1)):
                    record = context.get(self._kinds[position])
                    if isinstance(record, dict):
                        self._publish(key, task_map, position, record, watch)
            if key not in self._finished:
                self._finished.add(key)
                self._finished_order.append(key)
                if len(self._finished_order) > RECENTLY_FINISHED:
                    self._finished.discard(self._finished_order.popleft())

    def records(self, key: str) -> dict[str, Any]:
        """The stage outputs of running task ``key`` this replica has seen (wire maps, by kind;
        the user input left out), or {}: what ``result`` shows before the outcome is stored."""
        with self._lock:
            live = self._live.get(key)
        if live is None:
            return {}
        return {kind: wire for kind, wire in live[1].items() if kind in STAGE_KINDS}

    # -- writing behind ----------------------------------------------------------------------
    def start(self, call_later: Callable[[float, Callable[[], None]], None]) -> None:
        self._call_later = call_later
        call_later(FLUSH_INTERVAL, self._tick)

    def _tick(self) -> None:
        if self._orch.stopped:
            return
        try:
            self.flush()
        except Exception:  # a DB hiccup: the next tick writes the (newer) progress
            log.exception("writing task progress failed")
        finally:
            if not self._orch.stopped:
                self._call_later(FLUSH_INTERVAL, self._tick)

    def flush(self) -> int:
        """Write the stage every task moved to since the last flush; returns how many tasks."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            stages = {_task_id(key): next_node for key, (_pos, next_node) in pending.items()}
            self._orch.db.record_progress(stages)
        return len(pending)


def _envelope_parts(body: bytes) -> tuple[dict[str, Any] | None, Any, dict[str, Any]]:
    """The envelope's ``task_id``, ``record`` and ``context`` maps, or (None, None, {}) if the body
    is not a stage message."""
    try:
        envelope = unpackb(body)
    except Exception:  # msgpack raises several unrelated types; all mean "not a message"
        return None, None, {}
    if not isinstance(envelope, dict):
        return None, None, {}
    task_map, record, context = envelope.get("task_id"), envelope.get("record"), envelope.get("context")
    if not isinstance(task_map, dict) or not isinstance(record, dict):
        return None, None, {}
    return task_map, record, context if isinstance(context, dict) else {}


def _task_key(task_map: dict[str, Any]) -> str | None:
    """``p.i`` of a task id map, or None unless both are integers >= 1."""
    p, i = task_map.get("problem_id"), task_map.get("iteration_id")
    if type(p) is not int or type(i) is not int or p < 1 or i < 1:
        return None
    return f"{p}.{i}"


def _task_id(key: str) -> TaskId:
    problem, iteration = key.split(".")
    return TaskId(problem_id=int(problem), iteration_id=int(iteration))
