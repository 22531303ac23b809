"""The TaskDB's queries: tasks, their outputs, problems and submissions, counts."""

from __future__ import annotations

from sqlalchemy import func, select

from sustainml.messages import TaskId
from sustainml.messages.tasks import TaskState
from sustainml.orchestrator.taskdb_schema import TaskDBBase, TaskRow, outputs, problems, tasks


class TaskQueries(TaskDBBase):
    def latest_iteration(self, problem_id: int) -> int | None:
        """The highest iteration id allocated for the problem, ``None`` if the problem is unknown."""
        with self._read() as conn:
            value = conn.execute(
                select(problems.c.last_iteration).where(problems.c.problem_id == problem_id)
            ).scalar_one_or_none()
        return None if value is None else int(value)

    def automatic_stopped(self, problem_id: int) -> bool:
        with self._read() as conn:
            value = conn.execute(
                select(problems.c.auto_stopped).where(problems.c.problem_id == problem_id)
            ).scalar_one_or_none()
        return bool(value)

    def find_submission(self, idempotency_key: str) -> TaskId | None:
        """The task a submission with this idempotency key created, ``None`` if there is none."""
        with self._read() as conn:
            return self._find_submission(conn, idempotency_key)

    def get_task(self, key: TaskId) -> TaskRow | None:
        with self._read() as conn:
            row = conn.execute(self._get_task_stmt, self._key_params(key)).one_or_none()
        return None if row is None else self._task_row(row)

    def list_tasks(
        self,
        state: TaskState | str | None = None,
        problem_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[TaskRow]:
        """Tasks newest first (creation time, then id), optionally filtered, one page at a time."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")
        query = select(tasks)
        if state is not None:
            query = query.where(tasks.c.state == TaskState(state).value)
        if problem_id is not None:
            query = query.where(tasks.c.problem_id == problem_id)
        query = (
            query.order_by(tasks.c.created_at.desc(), tasks.c.problem_id.desc(), tasks.c.iteration_id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self._read() as conn:
            return [self._task_row(r) for r in conn.execute(query)]

    def latest_task(self) -> TaskId | None:
        """The most recently created task, ``None`` when there is none."""
        rows = self.list_tasks(limit=1)
        return rows[0].key if rows else None

    def get_outputs(self, key: TaskId) -> dict[str, bytes]:
        """Every stored output of the task, kind -> record bytes, in arrival order."""
        query = (
            select(outputs.c.kind, outputs.c.record)
            .where(self._output_where(key))
            .order_by(outputs.c.received_at, outputs.c.kind)
        )
        with self._read() as conn:
            return {str(kind): bytes(record) for kind, record in conn.execute(query)}

    def count_by_state(self) -> dict[str, int]:
        """Number of tasks in each state present (one GROUP BY; states with no task are absent)."""
        query = select(tasks.c.state, func.count()).group_by(tasks.c.state)
        with self._read() as conn:
            return {str(state): int(n) for state, n in conn.execute(query)}
