"""The orchestrator's reading side of ``OrchestratorService`` (results, listings, counts, node
status, health, live events) and its calls to the nodes (configuration requests, NodeControl).
Everything here reads the TaskDB or the heartbeat registry; nothing starts or changes a task."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from typing import Any

from sustainml.attribution import Attribution
from sustainml.config import Settings
from sustainml.messages import (
    RECORD_TYPES,
    CmdNode,
    CmdTask,
    MessageError,
    Record,
    ResponseType,
    Status,
    TaskId,
    UserInput,
    decode,
    from_wire,
)
from sustainml.messages.tasks import NodeReport, ReplicaInfo, TaskResult, TaskState, TaskSummary
from sustainml.orchestrator.node_calls import config_call, publish_control
from sustainml.orchestrator.registry import NodeRegistry, ReplicaState
from sustainml.orchestrator.service import EventHandler, EventSubscription, Health, event_bindings
from sustainml.orchestrator.taskdb import TaskDB, TaskRow
from sustainml.rpc import RpcClient
from sustainml.topology import ALL_NODES_KEY, Topology, resolve_stage
from sustainml.transport.base import Transport

log = logging.getLogger(__name__)


def decode_user_input(blob: bytes | None) -> UserInput:
    return decode(blob, UserInput) if blob else UserInput()


def _record(kind: str, blob: bytes | dict[str, Any]) -> Record:
    """A stored output (standalone body) or a live one (wire map) as its record."""
    if isinstance(blob, dict):
        return from_wire(RECORD_TYPES[kind], blob)
    return decode(blob, RECORD_TYPES[kind])


def _description(blob: bytes) -> str:
    try:
        return decode(blob, UserInput).problem_short_description if blob else ""
    except MessageError as exc:  # an unreadable stored input must not hide the task from a list
        log.warning("stored user input unreadable: %s", exc)
        return ""


def summary_of(row: TaskRow) -> TaskSummary:
    return TaskSummary(
        task_id=row.key,
        state=row.state,
        error=row.error,
        current_stage=row.current_stage,
        created_at=row.created_at,
        finished_at=row.finished_at,
        note=row.note,
        base_iteration=row.base_iteration,
        description=_description(row.user_input),
    )


def replica_info(r: ReplicaState, now: float) -> ReplicaInfo:
    return ReplicaInfo(
        node_name=r.node_name,
        replica_id=r.replica_id,
        status=r.status,
        age_s=round(max(0.0, now - r.last_seen), 3),
        in_flight=r.in_flight,
        processed=r.processed,
        error_description=r.error_description,
        task_id=r.task_id,
    )


class Queries:
    """State shared by the orchestrator's parts, and the service methods that only read."""

    id: str
    _rpc: RpcClient | None

    def __init__(
        self, settings: Settings, topology: Topology, transport: Transport, db: TaskDB, registry: NodeRegistry
    ) -> None:
        self.settings = settings
        self.topology = topology
        self.transport = transport
        self.db = db
        self.registry = registry
        self._rpc = None
        self._changed = threading.Condition()
        self._transaction_id = 0
        self._tx_lock = threading.Lock()

    def signer(self) -> Attribution:
        raise NotImplementedError

    def notify(self) -> None:
        """Wake every ``wait`` (a task changed)."""
        with self._changed:
            self._changed.notify_all()

    # -- tasks ---------------------------------------------------------------------------------
    def _row(self, task_id: TaskId) -> TaskRow:
        row = self.db.get_task(task_id)
        if row is None:
            raise KeyError(f"task {task_id} does not exist")
        return row

    def task(self, task_id: TaskId) -> TaskSummary:
        return summary_of(self._row(task_id))

    def live_outputs(self, task_id: TaskId) -> dict[str, Any]:
        """The outputs of a running task seen so far but not stored (stored with its outcome):
        record wire maps by kind. None here; the orchestrator keeps them from its progress queue."""
        return {}

    def _stored_or_live(self, task_id: TaskId) -> dict[str, bytes | dict[str, Any]]:
        stored: dict[str, bytes | dict[str, Any]] = dict(self.db.get_outputs(task_id))
        return stored or dict(self.live_outputs(task_id))

    def result(self, task_id: TaskId) -> TaskResult:
        row = self._row(task_id)
        outputs = {kind: _record(kind, blob) for kind, blob in self._stored_or_live(task_id).items()}
        return TaskResult.assemble(task_id, decode_user_input(row.user_input), outputs, row.snapshot())

    def outputs(self, task_id: TaskId, kinds: Collection[str]) -> dict[str, Record | None]:
        records: dict[str, Record | None] = {}
        for kind, blob in self._stored_or_live(task_id).items():
            if kind not in kinds:
                records[kind] = None  # present: counts as a stage done
                continue
            try:
                records[kind] = _record(kind, blob)
            except MessageError as exc:  # one unreadable record must not hide the others
                log.warning("task %s: stored %s output unreadable: %s", task_id, kind, exc)
                records[kind] = None
        return records

    def wait(self, task_id: TaskId, timeout: float = 60.0) -> TaskResult:
        """Block until the task is succeeded, failed or cancelled; ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            res = self.result(task_id)
            if res.done:
                return res
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"task {task_id} not finished after {timeout:g} s (at {res.current_stage})"
                )
            with self._changed:
                self._changed.wait(min(remaining, 0.5))

    def tasks(
        self, state: TaskState | None = None, problem_id: int | None = None, limit: int = 50, offset: int = 0
    ) -> list[TaskSummary]:
        rows = self.db.list_tasks(state=state, problem_id=problem_id, limit=limit, offset=offset)
        return [summary_of(r) for r in rows]

    def latest(self) -> TaskId | None:
        return self.db.latest_task()

    def task_counts(self) -> dict[TaskState, int]:
        counts = self.db.count_by_state()
        return {state: counts.get(state.value, 0) for state in TaskState}

    # -- nodes and the deployment --------------------------------------------------------------
    def status(self) -> dict[str, Status]:
        return self.registry.node_status()

    def replicas(self) -> list[ReplicaState]:
        return self.registry.replicas()

    def nodes(self) -> NodeReport:
        now = time.monotonic()
        return NodeReport(self.status(), [replica_info(r, now) for r in self.replicas()])

    def health(self) -> Health:
        try:
            self.db.latest_task()
            database = True
        except Exception as exc:  # any database failure means "not healthy"; the log says which
            log.warning("health: TaskDB not readable: %s", exc)
            database = False
        return Health(broker=self.transport.is_open, database=database)

    def queue_counts(self, queue: str) -> tuple[int, int]:
        return self.transport.queue_counts(queue)

    def watch(self, handler: EventHandler) -> EventSubscription:
        spec = self.topology.private_queue_spec("api-events", self.id, event_bindings(self.topology))
        return EventSubscription(self.transport, spec).start(handler)

    # -- calls to the nodes --------------------------------------------------------------------
    def control(
        self,
        target: str,
        *,
        cmd_node: CmdNode = CmdNode.NO_CMD,
        cmd_task: CmdTask = CmdTask.NO_CMD,
        task_id: TaskId | None = None,
    ) -> None:
        """Publish a NodeControl to one node type (all its replicas) or to ``all``. A task command
        must name a task that exists (``KeyError`` otherwise)."""
        if task_id is not None and cmd_task != CmdTask.NO_CMD and self.db.get_task(task_id) is None:
            raise KeyError(f"task {task_id} does not exist")
        source, signer = "ORCHESTRATOR", self.signer()
        publish_control(self.transport, self.topology, target, cmd_node, cmd_task, task_id, source, signer)

    def broadcast_cancel(self, task_id: TaskId) -> None:
        self.control(ALL_NODES_KEY, cmd_task=CmdTask.CMD_STOP_TASK, task_id=task_id)

    def config_request(
        self, node: str | int, configuration: str, timeout: float | None = None
    ) -> ResponseType:
        """Send a configuration request to a node type; the node's own success/err_code come back.
        A node with no replica gives ``RpcTimeout`` after ``timeout`` (default SUSTAINML_RPC_TIMEOUT)."""
        if self._rpc is None:
            raise RuntimeError("orchestrator not started")
        stage = resolve_stage(str(node))
        return config_call(
            self._rpc,
            self.topology,
            stage,
            configuration,
            self._next_transaction(),
            timeout or self.settings.rpc_timeout,
        )

    def _next_transaction(self) -> int:
        with self._tx_lock:
            self._transaction_id += 1
            return self._transaction_id


__all__ = ["Queries", "decode_user_input", "replica_info", "summary_of"]
