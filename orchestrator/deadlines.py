"""Per-stage deadlines: a task that waits longer than ``SUSTAINML_STAGE_DEADLINE`` seconds on one
stage is marked failed with a reason that names the stage and its node's state, instead of
waiting forever (a stage with no replica, a stuck callback, a lost message).

The clock is the task row's ``updated_at`` in the TaskDB, which moves whenever an output is
stored (the task then waits on the next stage), so the deadline also holds across orchestrator
restarts. The sweeper runs on the orchestrator's transport timer thread every
``min(deadline / 4, 5 s)``; once a task is failed, every node is told to stop working on it
(``CMD_STOP_TASK``), so a late output cannot resurrect it.
"""

from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sustainml.messages import CmdTask, Status, TaskId
from sustainml.messages.tasks import TaskEvent, TaskState
from sustainml.orchestrator.taskdb import TaskRow
from sustainml.topology import ALL_NODES_KEY
from sustainml.transport.base import TransportError

if TYPE_CHECKING:
    from sustainml.orchestrator.core import Orchestrator

log = logging.getLogger(__name__)

MAX_INTERVAL = 5.0
MIN_INTERVAL = 0.2
PAGE = 500
EVENT_TIMEOUT = 10.0


def deadline_reason(stage: str | None, deadline: float, node_state: Status | None) -> str:
    """The error a task failed by its deadline carries, e.g.
    ``no output from HW_RESOURCES within 600 s; node INACTIVE``."""
    where = stage or "the pipeline"
    state = f"; node {node_state.name}" if node_state is not None else ""
    return f"no output from {where} within {deadline:g} s{state}"


class DeadlineSweeper:
    """Fails running tasks stuck on one stage for longer than ``deadline`` seconds."""

    def __init__(self, orchestrator: Orchestrator, deadline: float, interval: float | None = None) -> None:
        if deadline <= 0:
            raise ValueError("a stage deadline must be > 0 seconds (0 disables the sweeper)")
        self.orchestrator = orchestrator
        self.deadline = deadline
        self.interval = interval or max(MIN_INTERVAL, min(deadline / 4, MAX_INTERVAL))
        self.expired = 0  # tasks failed by this sweeper (for logs and tests)

    def start(self) -> None:
        self.orchestrator.transport.call_later(self.interval, self._tick)

    def _tick(self) -> None:
        orch = self.orchestrator
        if orch.stopped:
            return
        try:
            self.sweep()
        except Exception:  # the sweeper must survive a DB hiccup; the next tick tries again
            log.exception("stage-deadline sweep failed")
        finally:
            if not orch.stopped:
                orch.transport.call_later(self.interval, self._tick)

    def overdue(self, now: datetime | None = None) -> list[TaskRow]:
        """Running tasks whose current stage has had them for longer than the deadline."""
        now = now or datetime.now(UTC)
        db = self.orchestrator.db
        late: list[TaskRow] = []
        offset = 0
        while True:
            rows = db.list_tasks(state=TaskState.RUNNING, limit=PAGE, offset=offset)
            late += [r for r in rows if (now - r.updated_at).total_seconds() > self.deadline]
            if len(rows) < PAGE:
                return late
            offset += PAGE

    def sweep(self, now: datetime | None = None) -> list[TaskId]:
        """Fail every overdue task; returns their ids."""
        orch = self.orchestrator
        statuses = orch.status()
        failed: list[TaskId] = []
        for row in self.overdue(now):
            reason = deadline_reason(row.current_stage, self.deadline, statuses.get(row.current_stage or ""))
            # set_state refuses if the task finished meanwhile (a terminal state is never replaced).
            task_id = row.key
            if not orch.db.set_state(task_id, TaskState.FAILED, error=reason):
                continue
            log.warning("task %s failed: %s", task_id, reason)
            self.expired += 1
            failed.append(task_id)
            try:
                fut = orch.watchers.announce(
                    TaskEvent(task_id, TaskState.FAILED, row.current_stage, error=reason)
                )
                with suppress(FutureTimeout):
                    fut.result(EVENT_TIMEOUT)
                orch.control(ALL_NODES_KEY, cmd_task=CmdTask.CMD_STOP_TASK, task_id=task_id)
            except (TransportError, FutureTimeout) as exc:  # stored already; watchers poll the DB too
                log.warning("task %s: deadline failure not announced: %s", task_id, exc)
            orch.watchers.forget(task_id)
        if failed:
            orch.notify()
        return failed
