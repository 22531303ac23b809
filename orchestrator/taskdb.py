"""TaskDB: the orchestrator's persistent store of problems, tasks, stage outputs and node status.

SQLAlchemy 2 Core on SQLite (file or memory) or PostgreSQL (psycopg 3). Records are stored as
opaque bytes (the codec's msgpack wire form), so it decodes no record; task ids and states are the
protocol's (``TaskId``, ``TaskState``).

In parts: ``taskdb_schema`` (tables, engine, migrations), ``taskdb_writes``, ``taskdb_queries``.

Concurrency:
- Every id is allocated with ``UPDATE ... SET value = value + 1 RETURNING value`` inside the
  transaction that uses it. On PostgreSQL the row lock serialises concurrent allocators (several
  orchestrators on one database never get the same id); on SQLite write transactions start with
  ``BEGIN IMMEDIATE`` and wait up to ``busy_timeout`` for the database write lock, so several
  processes sharing one file are safe too.
- A submission may carry an idempotency key: the key is stored with the task it created, in the
  same transaction (primary key: unique), so a redelivered or retried submission finds its task
  instead of creating a second one (``submit_problem``/``submit_iteration`` return ``fresh=False``).
- Stage outputs are inserted with ``ON CONFLICT DO NOTHING``: a redelivered output is stored once,
  the first copy wins, and the caller learns it was a duplicate.
- One ``TaskDB`` object may be used from many threads (engine connection pool). An in-memory SQLite
  database lives in a single shared connection, so its operations are serialised by a lock. On a
  SQLite file, the writers of one process queue on an in-process lock before ``BEGIN IMMEDIATE``:
  a thread waiting there wakes as soon as the lock is free, where SQLite's busy handler would
  sleep (up to 100 ms per retry). Other processes still meet on ``busy_timeout``.

Speed: the statements of the orchestrator's per-task path are built once, with bound parameters,
so each call only binds values (SQLAlchemy finds the compiled form in its cache).
"""

from __future__ import annotations

from sustainml.messages.tasks import TERMINAL_STATES, TaskState, check_submission_key
from sustainml.orchestrator.taskdb_queries import TaskQueries
from sustainml.orchestrator.taskdb_schema import (
    SCHEMA_VERSION,
    Created,
    Outcome,
    StatusUpdate,
    StoredOutput,
    TaskRow,
    _normalise_url,
    metadata,
    schema_version_table,
)
from sustainml.orchestrator.taskdb_writes import TaskWrites


class TaskDB(TaskWrites, TaskQueries):
    """Persistent task store. See the module docstring for the concurrency guarantees."""


__all__ = [
    "SCHEMA_VERSION",
    "TERMINAL_STATES",
    "Created",
    "Outcome",
    "StatusUpdate",
    "StoredOutput",
    "TaskDB",
    "TaskRow",
    "TaskState",
    "_normalise_url",
    "check_submission_key",
    "metadata",
    "schema_version_table",
]
