"""The TaskDB's writes: id allocation, task creation (once per idempotency key), state changes
and their rules, stage outputs (once each), node statuses and task events in batches. Every write
is one committed transaction (see ``taskdb`` for the concurrency guarantees)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from sustainml.messages import TaskId
from sustainml.messages import headers as H
from sustainml.messages.tasks import TaskState, check_submission_key
from sustainml.orchestrator.taskdb_schema import (
    Created,
    Outcome,
    StatusUpdate,
    StoredOutput,
    TaskDBBase,
    _aware_or_now,
    _now,
    problems,
    submissions,
    task_id,
    tasks,
)

log = logging.getLogger(__name__)


class TaskWrites(TaskDBBase):
    def _bump_problem_counter(self, conn: Connection) -> int:
        return int(conn.execute(self._bump_problem_stmt).scalar_one())

    @staticmethod
    def _bump_iteration(conn: Connection, problem_id: int) -> int:
        value = conn.execute(
            problems.update()
            .where(problems.c.problem_id == problem_id)
            .values(last_iteration=problems.c.last_iteration + 1)
            .returning(problems.c.last_iteration)
        ).scalar_one_or_none()
        if value is None:
            raise KeyError(f"unknown problem {problem_id}")
        return int(value)

    def stop_automatic(self, problem_id: int) -> None:
        """No automatic iteration of ``problem_id`` starts from now on (its tasks are cancelled)."""
        with self._write() as conn:
            conn.execute(problems.update().where(problems.c.problem_id == problem_id).values(auto_stopped=1))

    def _insert_task(
        self,
        conn: Connection,
        key: TaskId,
        user_input: bytes,
        base: int | None,
        now: datetime,
        state: TaskState,
        current_stage: str | None,
    ) -> None:
        if state.is_terminal:
            raise ValueError(f"a task is created queued or running, not {state.value}")
        conn.execute(
            self._insert_task_stmt,
            {
                "problem_id": key.problem_id,
                "iteration_id": key.iteration_id,
                "state": state.value,
                "user_input": bytes(user_input),
                "base_iteration": base,
                "current_stage": current_stage,
                "created_at": now,
                "updated_at": now,
            },
        )

    def create_problem(
        self,
        user_input: bytes,
        *,
        state: TaskState | str = TaskState.QUEUED,
        current_stage: str | None = None,
    ) -> TaskId:
        """A new problem with its first task ``{p, 1}`` in ``state`` (``queued`` or ``running``:
        the orchestrator creates a task it starts at once as running, in one transaction)."""
        return self.submit_problem(user_input, state=state, current_stage=current_stage).key

    def submit_problem(
        self,
        user_input: bytes,
        *,
        idempotency_key: str | None = None,
        state: TaskState | str = TaskState.QUEUED,
        current_stage: str | None = None,
    ) -> Created:
        """``create_problem`` with an optional idempotency key: when the key is already stored,
        nothing is created and the earlier task is returned (``fresh=False``)."""
        now = _now()
        task_state = TaskState(state)

        def create(conn: Connection) -> TaskId:
            key = task_id(self._bump_problem_counter(conn), 1)
            conn.execute(
                self._insert_problem_stmt,
                {"problem_id": key.problem_id, "last_iteration": 1, "created_at": now},
            )
            self._insert_task(conn, key, user_input, None, now, task_state, current_stage)
            return key

        return self._create_once(idempotency_key, create, now)

    def submit_problems(
        self,
        items: list[tuple[bytes, str | None]],
        *,
        state: TaskState | str = TaskState.QUEUED,
        current_stage: str | None = None,
    ) -> list[Created]:
        """Many ``submit_problem`` calls (user input, idempotency key) in ONE transaction: the
        problem counter advanced by the number of new tasks in one ``UPDATE ... RETURNING``, every
        row inserted with one statement per table. A key already stored (or repeated in ``items``)
        creates nothing and gives the earlier task (``fresh=False``). Two writers racing on a key
        (PostgreSQL) make the batch fail on the key's primary key: it is then done item by item."""
        for _, key in items:
            if key is not None:
                check_submission_key(key)
        now = _now()
        task_state = TaskState(state)
        if task_state.is_terminal:
            raise ValueError(f"a task is created queued or running, not {task_state.value}")
        try:
            with self._write() as conn:
                return self._create_many(conn, items, now, task_state, current_stage)
        except IntegrityError:
            log.debug("a submission of the batch was created concurrently; one by one")
            return [
                self.submit_problem(ui, idempotency_key=key, state=task_state, current_stage=current_stage)
                for ui, key in items
            ]

    def _create_many(
        self,
        conn: Connection,
        items: list[tuple[bytes, str | None]],
        now: datetime,
        state: TaskState,
        current_stage: str | None,
    ) -> list[Created]:
        keys = sorted({k for _, k in items if k is not None})
        known: dict[str, TaskId] = {}
        if keys:
            rows = conn.execute(
                select(submissions.c.key, submissions.c.problem_id, submissions.c.iteration_id).where(
                    submissions.c.key.in_(keys)
                )
            )
            known = {str(r[0]): task_id(int(r[1]), int(r[2])) for r in rows}
        new = [n for n, (_, k) in enumerate(items) if k is None or k not in known]
        # A key given twice in the batch: its first item creates the task, the others get it.
        first_of: dict[str, int] = {}
        fresh = [n for n in new if items[n][1] is None or first_of.setdefault(str(items[n][1]), n) == n]
        answers: list[Created | None] = [None] * len(items)
        if fresh:
            last = int(conn.execute(self._bump_problems_stmt, {"b_n": len(fresh)}).scalar_one())
            ids = range(last - len(fresh) + 1, last + 1)
            conn.execute(
                self._insert_problem_stmt,
                [{"problem_id": p, "last_iteration": 1, "created_at": now} for p in ids],
            )
            conn.execute(
                self._insert_task_stmt,
                [
                    {
                        "problem_id": p,
                        "iteration_id": 1,
                        "state": state.value,
                        "user_input": bytes(items[n][0]),
                        "base_iteration": None,
                        "current_stage": current_stage,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n, p in zip(fresh, ids, strict=True)
                ],
            )
            for n, p in zip(fresh, ids, strict=True):
                answers[n] = Created(task_id(p, 1), True)
            keyed = [
                {"key": items[n][1], "problem_id": p, "iteration_id": 1, "created_at": now}
                for n, p in zip(fresh, ids, strict=True)
                if items[n][1] is not None
            ]
            if keyed:
                conn.execute(submissions.insert(), keyed)
        for n, (_, k) in enumerate(items):
            if answers[n] is None:
                assert k is not None  # only keyed items are left: known, or repeated in the batch
                earlier = known.get(k)
                answers[n] = Created(earlier if earlier is not None else _key_of(answers[first_of[k]]), False)
        return [a for a in answers if a is not None]

    def submit_iteration(
        self,
        problem_id: int,
        user_input: bytes,
        base_iteration: int,
        *,
        idempotency_key: str | None = None,
        state: TaskState | str = TaskState.QUEUED,
        current_stage: str | None = None,
    ) -> Created:
        """The next free iteration of ``problem_id``, branched from ``base_iteration``, in ``state``
        (as for ``create_problem``), with an optional idempotency key (as ``submit_problem``).

        ``KeyError`` if the problem is unknown; ``ValueError`` if ``base_iteration`` was never
        allocated for it. The id is allocated in the database, so it never collides, also across
        restarts and several orchestrators."""
        now = _now()
        task_state = TaskState(state)

        def create(conn: Connection) -> TaskId:
            iteration = self._bump_iteration(conn, problem_id)
            if not 1 <= base_iteration < iteration:
                raise ValueError(
                    f"problem {problem_id} has no iteration {base_iteration} to branch from "
                    f"(latest is {iteration - 1})"
                )
            key = task_id(problem_id, iteration)
            self._insert_task(conn, key, user_input, base_iteration, now, task_state, current_stage)
            return key

        return self._create_once(idempotency_key, create, now)

    def _create_once(
        self, idempotency_key: str | None, create: Callable[[Connection], TaskId], now: datetime
    ) -> Created:
        """Run ``create`` in one write transaction, unless ``idempotency_key`` is already stored.
        The key row is inserted in the same transaction, so the task and its key commit together.
        Two writers racing on one key (PostgreSQL; SQLite serialises writers) meet on the primary
        key: the loser's transaction rolls back and it returns the winner's task."""
        if idempotency_key is not None:
            check_submission_key(idempotency_key)
        for _ in range(2):
            try:
                with self._write() as conn:
                    if idempotency_key is not None:
                        existing = self._find_submission(conn, idempotency_key)
                        if existing is not None:
                            return Created(existing, False)
                    key = create(conn)
                    if idempotency_key is not None:
                        conn.execute(
                            submissions.insert(),
                            {
                                "key": idempotency_key,
                                "problem_id": key.problem_id,
                                "iteration_id": key.iteration_id,
                                "created_at": now,
                            },
                        )
                    return Created(key, True)
            except IntegrityError:
                if idempotency_key is None:
                    raise
                log.debug("submission %s created concurrently; returning that task", idempotency_key)
        raise RuntimeError(f"submission {idempotency_key!r}: could not create nor find its task")

    def set_state(
        self,
        key: TaskId,
        state: TaskState | str,
        error: str | None = None,
        current_stage: str | None = None,
    ) -> bool:
        """Move a task to ``state``; ``error``/``current_stage`` are updated when not ``None``.

        Rules: ``cancelled`` is final; any other terminal state is never replaced by a
        non-terminal one. Entering a terminal state sets ``finished_at``. Returns False when a
        rule refused the change; ``KeyError`` if the task does not exist.
        """
        with self._write() as conn:
            return self._apply_state(conn, key, TaskState(state), error, current_stage)[0]

    def _apply_state(
        self,
        conn: Connection,
        key: TaskId,
        new: TaskState,
        error: str | None,
        current_stage: str | None,
        *,
        note: str | None = None,
        keep: frozenset[str] = frozenset(),
    ) -> tuple[bool, RowMapping]:
        """(applied, the task's state columns after); ``KeyError`` if the task does not exist.
        One UPDATE ... RETURNING; a second statement only when it touched no row, to tell a
        refused change from an unknown task."""
        now = _now()
        params: dict[str, Any] = {
            **self._key_params(key),
            "b_state": new.value,
            "b_now": now,
            "b_error": error,
            "b_stage": current_stage,
            "b_note": note,
        }
        if new.is_terminal:
            params["b_finished"] = now
        row = conn.execute(self._state_update_stmt(new.is_terminal, keep), params).one_or_none()
        if row is not None:
            return True, row._mapping
        current = conn.execute(self._task_snapshot_stmt, self._key_params(key)).one_or_none()
        if current is None:
            raise KeyError(f"unknown task {key}")
        log.debug("task %s: state %s kept, %s refused", key, current.state, new.value)
        return False, current._mapping

    def set_note(self, key: TaskId, note: str) -> None:
        """Attach a human-readable note to a task (replaces the previous one)."""
        with self._write() as conn:
            result = conn.execute(
                tasks.update().where(self._task_where(key)).values(note=note, updated_at=_now())
            )
        if result.rowcount != 1:
            raise KeyError(f"unknown task {key}")

    def store_stage_output(
        self,
        task: TaskId,
        kind: str,
        record: bytes,
        message_id: str | None,
        *,
        state: TaskState | str,
        current_stage: str | None = None,
        error: str | None = None,
        note: str | None = None,
        keep: frozenset[TaskState] | frozenset[str] = frozenset(),
    ) -> StoredOutput:
        """The orchestrator's write per stage output, in one transaction: store the output once
        and, for a first copy, move the task to ``state`` unless the task is in one of ``keep``
        (or a ``set_state`` rule refuses it); ``note`` is set with the change. The answer carries
        the task's state after it, so the caller needs no ``get_task`` before or after.
        ``KeyError`` (and nothing stored) if the task does not exist."""
        new = TaskState(state)
        keep_values = frozenset(TaskState(s).value for s in keep)
        with self._write() as conn:
            fresh = self._insert_output(conn, task, kind, record, message_id)
            if fresh:
                applied, m = self._apply_state(
                    conn, task, new, error, current_stage, note=note, keep=keep_values
                )
            else:
                applied = False
                found = conn.execute(self._task_snapshot_stmt, self._key_params(task)).one_or_none()
                if found is None:
                    raise KeyError(f"unknown task {task}")
                m = found._mapping
        return _stored(fresh, applied, m)

    def store_outcomes(
        self, outcomes: list[Outcome], keep: frozenset[TaskState] | frozenset[str] = frozenset()
    ) -> list[StoredOutput | None]:
        """Many task outcomes in ONE transaction (group commit): for each, its own output is
        inserted first; a first copy then stores every other record of the task and moves it to
        the outcome's state (the rules of ``store_stage_output``, ``keep`` included). A redelivered
        outcome stores nothing twice (``fresh=False``). ``None`` for an unknown task (nothing of it
        stored); the others still commit."""
        keep_values = frozenset(TaskState(s).value for s in keep)
        answers: list[StoredOutput | None] = []
        with self._write() as conn:
            # The records that came with the outcomes go in one statement at the end: one round
            # trip per batch instead of one per task.
            others: list[dict[str, Any]] = []
            for o in outcomes:
                answers.append(self._store_outcome(conn, o, keep_values, others))
            if others:
                conn.execute(self._insert_outputs_stmt, others)
        return answers

    def _store_outcome(
        self, conn: Connection, o: Outcome, keep: frozenset[str], others: list[dict[str, Any]]
    ) -> StoredOutput | None:
        """Store ``o``'s own output and state; the task's other records are appended to ``others``
        for the caller to insert."""
        own = o.records[o.kind]
        if not self._insert_output(conn, o.task, o.kind, own, o.message_id):
            found = conn.execute(self._task_snapshot_stmt, self._key_params(o.task)).one_or_none()
            return None if found is None else _stored(False, False, found._mapping)
        try:
            applied, m = self._apply_state(
                conn, o.task, o.state, o.error, o.current_stage, note=o.note, keep=keep
            )
        except KeyError:
            conn.execute(self._delete_outputs_stmt, self._key_params(o.task))
            return None
        now = _now()
        others += [
            {
                "problem_id": o.task.problem_id,
                "iteration_id": o.task.iteration_id,
                "kind": kind,
                "record": bytes(record),
                "received_at": now,
                "message_id": H.stage_message_id(o.task.key, kind),
            }
            for kind, record in o.records.items()
            if kind != o.kind
        ]
        return _stored(True, applied, m)

    def record_progress(self, stages: dict[TaskId, str]) -> None:
        """The stage each running task is at now, in one statement (a finished task is left
        alone). The orchestrator writes progress behind, coalesced: this moves ``updated_at``, the
        stage-deadline clock, as each stage hands the task on."""
        if not stages:
            return
        now = _now()
        params = [
            {"b_p": key.problem_id, "b_i": key.iteration_id, "b_stage": stage, "b_now": now}
            for key, stage in stages.items()
        ]
        with self._write() as conn:
            conn.execute(self._progress_stmt, params)

    def _insert_output(
        self, conn: Connection, task: TaskId, kind: str, record: bytes, message_id: str | None
    ) -> bool:
        params = {
            "problem_id": task.problem_id,
            "iteration_id": task.iteration_id,
            "kind": kind,
            "record": bytes(record),
            "received_at": _now(),
            "message_id": message_id,
        }
        # RETURNING rather than rowcount: it is reliable on every driver.
        return conn.execute(self._insert_output_stmt, params).scalar_one_or_none() is not None

    def record_statuses(self, updates: list[StatusUpdate]) -> None:
        """Many replica statuses (and their per-task events) in one short transaction: the
        orchestrator writes heartbeats behind, in batches, so they never compete with task outputs
        for fsyncs. Only the latest status of each replica in the batch is written (the row keeps
        one status per replica anyway); every task event is appended, in order, with one
        executemany. The rows are built before the write lock is taken."""
        if not updates:
            return
        latest: dict[tuple[str, str], StatusUpdate] = {}
        for u in updates:
            latest.pop((u.node_name, u.replica_id), None)  # re-insert: keeps arrival order
            latest[(u.node_name, u.replica_id)] = u
        statuses = [
            self._node_status_params(
                u.node_name, u.replica_id, u.status, u.task_status, u.task, u.error_description, u.at
            )
            for u in latest.values()
        ]
        events = [
            self._task_event_params(
                u.task, u.node_name, u.replica_id, u.status, u.task_status, u.error_description, u.at
            )
            for u in updates
            if u.task_event and u.task is not None
        ]
        with self._write() as conn:
            conn.execute(self._upsert_status_stmt, statuses)
            if events:
                conn.execute(self._insert_event_stmt, events)

    @staticmethod
    def _node_status_params(
        node_name: str,
        replica_id: str,
        status: int,
        task_status: int,
        task: TaskId | None,
        error_description: str,
        last_seen: datetime | None,
    ) -> dict[str, Any]:
        return {
            "node_name": node_name,
            "replica_id": replica_id,
            "status": int(status),
            "task_status": int(task_status),
            "task_problem_id": None if task is None else task.problem_id,
            "task_iteration_id": None if task is None else task.iteration_id,
            "error_description": error_description,
            "last_seen": _aware_or_now(last_seen),
        }

    @staticmethod
    def _task_event_params(
        task: TaskId,
        node_name: str,
        replica_id: str,
        status: int,
        task_status: int,
        error_description: str,
        at: datetime | None,
    ) -> dict[str, Any]:
        return {
            "problem_id": task.problem_id,
            "iteration_id": task.iteration_id,
            "node_name": node_name,
            "replica_id": replica_id,
            "status": int(status),
            "task_status": int(task_status),
            "error_description": error_description,
            "at": _aware_or_now(at),
        }


def _stored(fresh: bool, applied: bool, m: RowMapping) -> StoredOutput:
    return StoredOutput(
        fresh=fresh,
        applied=applied,
        state=TaskState(m["state"]),
        error=m["error"],
        current_stage=m["current_stage"],
        note=m["note"],
        created_at=m["created_at"],
        finished_at=m["finished_at"],
    )


def _key_of(created: Created | None) -> TaskId:
    assert created is not None  # the first item of a repeated key is created before the others
    return created.key
