"""Node statuses: the in-memory heartbeat registry is updated at once, the TaskDB copy is written
behind, in one transaction every ``STATUS_FLUSH_INTERVAL`` seconds, so heartbeats never compete
with task outputs for the database."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from sustainml.messages import NodeStatus
from sustainml.orchestrator.registry import NodeRegistry
from sustainml.orchestrator.taskdb import StatusUpdate, TaskDB
from sustainml.transport.base import Transport

log = logging.getLogger(__name__)

STATUS_FLUSH_INTERVAL = 0.5  # seconds between batched writes of node statuses


class StatusBuffer:
    def __init__(self, db: TaskDB, registry: NodeRegistry, transport: Transport) -> None:
        self._db = db
        self._registry = registry
        self._transport = transport
        self._lock = threading.Lock()
        self._backlog: list[StatusUpdate] = []
        self._running = False

    def start(self) -> None:
        self._running = True
        self._transport.call_later(STATUS_FLUSH_INTERVAL, self._tick)

    def stop(self) -> None:
        """No more timed flushes; what is buffered is written now."""
        self._running = False
        self.flush()

    def add(self, status: NodeStatus) -> None:
        self._registry.update(status)
        task = status.task_id
        update = StatusUpdate(
            node_name=status.node_name,
            replica_id=status.replica_id,
            status=int(status.node_status),
            task_status=int(status.task_status),
            task=task,
            error_description=status.error_description,
            at=datetime.now(UTC),
            task_event=status.event == "task" and task is not None,
        )
        with self._lock:
            self._backlog.append(update)

    def flush(self) -> None:
        """Write the buffered statuses in one transaction."""
        with self._lock:
            batch, self._backlog = self._backlog, []
        try:
            self._db.record_statuses(batch)
        except Exception:  # the in-memory registry stays right; the DB copy is history
            log.exception("could not store %d node status updates", len(batch))

    def _tick(self) -> None:
        self.flush()
        if self._running:
            self._transport.call_later(STATUS_FLUSH_INTERVAL, self._tick)
