"""Counting what happened to a batch of tasks, from the TaskDB alone.

Fault tests submit N tasks, inject a fault, wait, and then ask the TaskDB (the system of record)
what became of them. Every task of a batch carries ``extra_data = {"fault_batch": <name>,
"item": <i>}`` in its UserInput, so a submission that was stored twice (e.g. a request replayed
after a crash) shows up as two task rows with the same item.

- ``submitted``: items the test submitted (and got a task id for);
- ``completed``: items with a task in state ``succeeded`` holding all six stage outputs;
- ``failed``: items whose task ended ``failed``/``cancelled`` (with the errors, for the message);
- ``lost``: items that did not complete (never stored, still running at the deadline, failed);
- ``duplicated``: extra task rows for an already-seen item, plus extra output rows for one
  (task, stage) - the TaskDB's primary key makes the latter impossible, it is counted anyway;
- ``reprocessed``: (task, stage) pairs that a node reported as SUCCEEDED more than once in the
  task-event history. At-least-once delivery allows that after a crash (the redelivered input is
  redone); the TaskDB still stores one output. Reported, never asserted to be zero.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sustainml.messages import TaskId, TaskStatus, UserInput, decode
from sustainml.orchestrator.taskdb import TaskDB, TaskRow
from sustainml.topology import PIPELINE
from tests.support.taskdb import count_outputs, list_task_events

BATCH_KEY = "fault_batch"
ITEM_KEY = "item"
TERMINAL = ("succeeded", "failed", "cancelled")


def batch_input(batch: str, item: int) -> UserInput:
    """The UserInput of item ``item`` of batch ``batch`` (cheap for the no-op stage callbacks)."""
    ui = UserInput(problem_short_description=f"fault batch {batch} item {item}", modality="image")
    ui.set_extra({BATCH_KEY: batch, ITEM_KEY: item})
    return ui


@dataclass
class BatchCounts:
    submitted: int
    completed: int
    failed: int
    lost: int
    duplicated: int
    reprocessed: int
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"submitted={self.submitted} completed={self.completed} failed={self.failed} "
            f"lost={self.lost} duplicated={self.duplicated} reprocessed={self.reprocessed}"
        )

    def assert_clean(self) -> None:
        """The issue's acceptance rule: completed == submitted, lost == 0, duplicates == 0."""
        detail = f"{self.summary()}; first errors: {self.errors[:3]}"
        assert self.completed == self.submitted, detail
        assert self.lost == 0, detail
        assert self.duplicated == 0, detail


def _all_tasks(db: TaskDB) -> list[TaskRow]:
    rows: list[TaskRow] = []
    page = 1000
    while True:
        chunk = db.list_tasks(limit=page, offset=len(rows))
        rows += chunk
        if len(chunk) < page:
            return rows


def batch_rows(db: TaskDB, batch: str) -> dict[int, list[TaskRow]]:
    """Task rows of the batch, by item."""
    by_item: dict[int, list[TaskRow]] = {}
    for row in _all_tasks(db):
        extra = decode(row.user_input, UserInput).get_extra() if row.user_input else {}
        if extra.get(BATCH_KEY) == batch:
            by_item.setdefault(int(extra[ITEM_KEY]), []).append(row)
    return by_item


def wait_terminal(db: TaskDB, ids: Iterable[TaskId], timeout: float) -> float:
    """Poll the TaskDB until every task is succeeded/failed/cancelled or ``timeout`` passes;
    returns the seconds waited (the caller's counts then show what is missing)."""
    keys = [TaskId(problem_id=t.problem_id, iteration_id=t.iteration_id) for t in ids]
    began = time.monotonic()
    pending = set(keys)
    while pending and time.monotonic() - began < timeout:
        for key in list(pending):
            row = db.get_task(key)
            if row is not None and row.state.value in TERMINAL:
                pending.discard(key)
        if pending:
            time.sleep(0.1)
    return time.monotonic() - began


def count_batch(db: TaskDB, batch: str, submitted: int) -> BatchCounts:
    by_item = batch_rows(db, batch)
    completed = failed = duplicated = reprocessed = 0
    errors: list[str] = []
    for rows in by_item.values():
        duplicated += len(rows) - 1
        for row in rows:
            outputs = db.get_outputs(row.key)
            duplicated += max(0, count_outputs(db, row.key) - len(outputs))
            done_events = Counter(
                e.node_name
                for e in list_task_events(db, row.key)
                if e.task_status == int(TaskStatus.SUCCEEDED)
            )
            reprocessed += sum(n - 1 for n in done_events.values() if n > 1)
        best = rows[0]
        if any(r.state.value == "succeeded" and len(db.get_outputs(r.key)) == len(PIPELINE) for r in rows):
            completed += 1
        elif best.state.value in ("failed", "cancelled"):
            failed += 1
            errors.append(f"{best.key}: {best.state.value}: {best.error}")
        else:
            errors.append(f"{best.key}: still {best.state.value} at {best.current_stage}")
    lost = submitted - completed
    return BatchCounts(submitted, completed, failed, lost, duplicated, reprocessed, errors)
