"""Node registry: which replicas of which node are alive, built from NodeStatus heartbeats.

A replica is alive while its last heartbeat is younger than ``STALE_AFTER_INTERVALS`` times its
announced interval; an ``offline`` event removes it at once. Per node type the status is the
most useful summary for a user deciding whether a task can run:
IDLE if any live replica is idle, else RUNNING if any runs, else ERROR, else INITIALIZING,
else INACTIVE (no live replica, or every live replica paused).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sustainml.messages import NodeStatus, Status
from sustainml.topology import NODE_NAMES

STALE_AFTER_INTERVALS = 3.0


@dataclass
class ReplicaState:
    node_name: str
    replica_id: str
    status: Status
    last_seen: float  # time.monotonic()
    interval: float
    in_flight: int
    processed: int
    error_description: str
    task_id: str | None

    def alive(self, now: float) -> bool:
        return now - self.last_seen <= STALE_AFTER_INTERVALS * max(self.interval, 0.1)


_PRECEDENCE = (Status.IDLE, Status.RUNNING, Status.ERROR, Status.INITIALIZING)


class NodeRegistry:
    def __init__(self, default_interval: float = 2.0) -> None:
        self._replicas: dict[tuple[str, str], ReplicaState] = {}
        self._lock = threading.Lock()
        self._default_interval = default_interval

    def update(self, status: NodeStatus, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        key = (status.node_name, status.replica_id)
        with self._lock:
            if status.event == "offline" or status.node_status == Status.TERMINATING:
                self._replicas.pop(key, None)
                return
            prev = self._replicas.get(key)
            self._replicas[key] = ReplicaState(
                node_name=status.node_name,
                replica_id=status.replica_id,
                status=Status(status.node_status),
                last_seen=now,
                interval=status.heartbeat_interval or (prev.interval if prev else self._default_interval),
                in_flight=status.in_flight,
                processed=status.processed,
                error_description=status.error_description,
                task_id=status.task_id.key if status.task_id else None,
            )

    def replicas(self, now: float | None = None) -> list[ReplicaState]:
        """Live replicas (stale ones are forgotten)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in [k for k, r in self._replicas.items() if not r.alive(now)]:
                del self._replicas[key]
            return sorted(self._replicas.values(), key=lambda r: (r.node_name, r.replica_id))

    def node_status(self, now: float | None = None) -> dict[str, Status]:
        """Summary status per node type, every pipeline node listed."""
        by_node: dict[str, list[Status]] = {name: [] for name in NODE_NAMES}
        for replica in self.replicas(now):
            by_node.setdefault(replica.node_name, []).append(replica.status)
        summary: dict[str, Status] = {}
        for name, statuses in by_node.items():
            summary[name] = next((s for s in _PRECEDENCE if s in statuses), Status.INACTIVE)
        return summary
