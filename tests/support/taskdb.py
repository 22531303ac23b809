"""TaskDB reads and writes only the tests need (the orchestrator has no use for them): counts,
the stored node statuses and task events, single writes that bypass the orchestrator's paths."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from sustainml.messages import TaskId
from sustainml.orchestrator.taskdb import TaskDB, TaskState
from sustainml.orchestrator.taskdb_schema import node_status, outputs, problems, task_events


@dataclass(frozen=True)
class NodeStatusRow:
    node_name: str
    replica_id: str
    status: int
    task_status: int
    task: TaskId | None
    error_description: str
    last_seen: datetime


@dataclass(frozen=True)
class TaskEventRow:
    id: int
    task: TaskId
    node_name: str
    replica_id: str
    status: int
    task_status: int
    error_description: str
    at: datetime


def _tid(p: int, i: int) -> TaskId:
    return TaskId(problem_id=p, iteration_id=i)


def count_outputs(db: TaskDB, key: TaskId | None = None) -> int:
    """Number of stored outputs, of one task or of all."""
    query = select(func.count()).select_from(outputs)
    if key is not None:
        query = query.where(db._output_where(key))
    with db._read() as conn:
        return int(conn.execute(query).scalar_one())


def get_output(db: TaskDB, key: TaskId, kind: str) -> bytes | None:
    return db.get_outputs(key).get(kind)


def store_output(db: TaskDB, task: TaskId, kind: str, record: bytes, message_id: str | None = None) -> bool:
    """Store a stage output once, leaving the task's state alone; False for a redelivery."""
    with db._write() as conn:
        return db._insert_output(conn, task, kind, record, message_id)


def next_problem_id(db: TaskDB) -> int:
    """Allocate a problem id without creating the problem."""
    with db._write() as conn:
        return db._bump_problem_counter(conn)


def next_iteration_id(db: TaskDB, problem_id: int) -> int:
    with db._write() as conn:
        return db._bump_iteration(conn, problem_id)


def create_iteration(
    db: TaskDB,
    problem_id: int,
    user_input: bytes,
    base_iteration: int,
    *,
    state: TaskState | str = TaskState.QUEUED,
    current_stage: str | None = None,
) -> TaskId:
    return db.submit_iteration(
        problem_id, user_input, base_iteration, state=state, current_stage=current_stage
    ).key


def problem_exists(db: TaskDB, problem_id: int) -> bool:
    with db._read() as conn:
        found = conn.execute(select(problems.c.problem_id).where(problems.c.problem_id == problem_id))
        return found.first() is not None


def upsert_node_status(
    db: TaskDB,
    node_name: str,
    replica_id: str,
    status: int,
    task_status: int,
    task: TaskId | None = None,
    error_description: str = "",
    last_seen: datetime | None = None,
) -> None:
    params = db._node_status_params(
        node_name, replica_id, status, task_status, task, error_description, last_seen
    )
    with db._write() as conn:
        conn.execute(db._upsert_status_stmt, params)


def list_node_status(db: TaskDB, node_name: str | None = None) -> list[NodeStatusRow]:
    query = select(node_status).order_by(node_status.c.node_name, node_status.c.replica_id)
    if node_name is not None:
        query = query.where(node_status.c.node_name == node_name)
    with db._read() as conn:
        rows = conn.execute(query).all()
    result = []
    for r in rows:
        m = r._mapping
        p, i = m["task_problem_id"], m["task_iteration_id"]
        result.append(
            NodeStatusRow(
                node_name=m["node_name"],
                replica_id=m["replica_id"],
                status=int(m["status"]),
                task_status=int(m["task_status"]),
                task=None if p is None or i is None else _tid(int(p), int(i)),
                error_description=m["error_description"],
                last_seen=m["last_seen"],
            )
        )
    return result


def add_task_event(
    db: TaskDB,
    task: TaskId,
    node_name: str,
    replica_id: str,
    status: int,
    task_status: int,
    error_description: str = "",
    at: datetime | None = None,
) -> int:
    """Append a per-task status event; returns its id."""
    params = db._task_event_params(
        task, node_name, replica_id, status, task_status, error_description, at or datetime.now(UTC)
    )
    with db._write() as conn:
        return int(
            conn.execute(task_events.insert().values(**params).returning(task_events.c.id)).scalar_one()
        )


def list_task_events(db: TaskDB, task: TaskId) -> list[TaskEventRow]:
    """Events of one task, oldest first."""
    query = (
        select(task_events)
        .where(
            (task_events.c.problem_id == task.problem_id) & (task_events.c.iteration_id == task.iteration_id)
        )
        .order_by(task_events.c.id)
    )
    with db._read() as conn:
        rows = conn.execute(query).all()
    return [
        TaskEventRow(
            id=int(m["id"]),
            task=task,
            node_name=m["node_name"],
            replica_id=m["replica_id"],
            status=int(m["status"]),
            task_status=int(m["task_status"]),
            error_description=m["error_description"],
            at=m["at"],
        )
        for m in (r._mapping for r in rows)
    ]
