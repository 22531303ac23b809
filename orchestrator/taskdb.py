"""TaskDB: the orchestrator's persistent store of problems, tasks, stage outputs and node status.

SQLAlchemy 2 Core on SQLite (file or memory) or PostgreSQL (psycopg 3). Records are stored as
opaque bytes (the codec's msgpack wire form), so this module depends on no message class.

Concurrency:
- Every id is allocated with ``UPDATE ... SET value = value + 1 RETURNING value`` inside the
  transaction that uses it. On PostgreSQL the row lock serialises concurrent allocators (several
  orchestrators on one database never get the same id); on SQLite write transactions start with
  ``BEGIN IMMEDIATE`` and wait up to ``busy_timeout`` for the database write lock, so several
  processes sharing one file are safe too.
- A submission may carry an idempotency key: the key is stored with the task it created, in the
  same transaction (primary key: unique), so a redelivered or retried submission finds its task
  instead of creating a second one (``create_problem``/``create_iteration`` return ``fresh=False``).
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

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    String,
    Table,
    Text,
    TypeDecorator,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, RowMapping, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 3  # 2: tasks.note; 3: submissions (idempotency keys), problems.auto_stopped
PREFIX: Final = "sustainml_"
PROBLEM_COUNTER: Final = "problem_id"
# Arbitrary constant key of the PostgreSQL advisory lock that serialises schema creation.
_PG_SCHEMA_LOCK_KEY: Final = 0x5A17_4D4C
_SQLITE_BUSY_TIMEOUT_S: Final = 30.0
_WRITE_OPTION: Final = "sustainml_write"
MAX_SUBMISSION_KEY_CHARS: Final = 128


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES: Final = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})


@dataclass(frozen=True, order=True)
class TaskKey:
    """A task id: ``{problem_id, iteration_id}``, both >= 1. Orders lexicographically."""

    problem_id: int
    iteration_id: int

    def to_wire(self) -> dict[str, int]:
        return {"problem_id": self.problem_id, "iteration_id": self.iteration_id}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> TaskKey:
        return cls(int(data["problem_id"]), int(data["iteration_id"]))

    def __str__(self) -> str:
        return f"{self.problem_id}.{self.iteration_id}"


@dataclass(frozen=True)
class TaskRow:
    problem_id: int
    iteration_id: int
    state: TaskState
    user_input: bytes
    base_iteration: int | None
    error: str | None
    current_stage: str | None
    note: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def key(self) -> TaskKey:
        return TaskKey(self.problem_id, self.iteration_id)

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal


@dataclass(frozen=True)
class Created:
    """What a create call did: the task's key, and whether this call created it (False: the
    idempotency key was already stored, ``key`` is the task the earlier submission created)."""

    key: TaskKey
    fresh: bool


@dataclass(frozen=True)
class NodeStatusRow:
    node_name: str
    replica_id: str
    status: int
    task_status: int
    task: TaskKey | None
    error_description: str
    last_seen: datetime


@dataclass(frozen=True)
class TaskEventRow:
    id: int
    task: TaskKey
    node_name: str
    replica_id: str
    status: int
    task_status: int
    error_description: str
    at: datetime


@dataclass(frozen=True)
class StoredOutput:
    """What ``TaskDB.store_stage_output`` did, and the task as it is after it."""

    fresh: bool  # the first copy of this output (False: a redelivered duplicate, nothing changed)
    applied: bool  # the requested state change was made (False: a rule refused it, or a duplicate)
    state: TaskState
    error: str | None
    current_stage: str | None
    note: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class StatusUpdate:
    """One NodeStatus as the TaskDB stores it (see ``TaskDB.record_statuses``)."""

    node_name: str
    replica_id: str
    status: int
    task_status: int
    task: TaskKey | None
    error_description: str
    at: datetime
    task_event: bool  # also append it to the task's event history


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive text, so the zone is
    normalised on the way in and re-attached on the way out)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: TaskDB stores timezone-aware UTC times")
        value = value.astimezone(UTC)
        # SQLite has no time zones: store the UTC wall time.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware_or_now(value: datetime | None) -> datetime:
    if value is None:
        return _now()
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass a timezone-aware time")
    return value


metadata = MetaData()

schema_version_table = Table(
    f"{PREFIX}schema_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)

counters = Table(
    f"{PREFIX}counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

problems = Table(
    f"{PREFIX}problems",
    metadata,
    Column("problem_id", Integer, primary_key=True, autoincrement=False),
    Column("last_iteration", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # Set when a task of the problem was cancelled: no further automatic iteration starts.
    Column("auto_stopped", Integer, nullable=True),
)

tasks = Table(
    f"{PREFIX}tasks",
    metadata,
    Column("problem_id", Integer, primary_key=True, autoincrement=False),
    Column("iteration_id", Integer, primary_key=True, autoincrement=False),
    Column("state", String(16), nullable=False),
    Column("user_input", LargeBinary, nullable=False),
    Column("base_iteration", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("current_stage", String(64), nullable=True),
    Column("note", Text, nullable=True),  # e.g. how an automatic carbon optimisation ended
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    CheckConstraint(
        "state IN (" + ", ".join(f"'{s.value}'" for s in TaskState) + ")",
        name=f"{PREFIX}tasks_state_valid",
    ),
    Index(f"{PREFIX}tasks_state_idx", "state"),
    Index(f"{PREFIX}tasks_created_idx", "created_at"),
)

outputs = Table(
    f"{PREFIX}outputs",
    metadata,
    Column("problem_id", Integer, primary_key=True, autoincrement=False),
    Column("iteration_id", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(64), primary_key=True),
    Column("record", LargeBinary, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("message_id", Text, nullable=True),
)

# Idempotency keys of submissions and the task each one created.
submissions = Table(
    f"{PREFIX}submissions",
    metadata,
    Column("key", String(MAX_SUBMISSION_KEY_CHARS), primary_key=True),
    Column("problem_id", Integer, nullable=False),
    Column("iteration_id", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

node_status = Table(
    f"{PREFIX}node_status",
    metadata,
    Column("node_name", String(64), primary_key=True),
    Column("replica_id", String(128), primary_key=True),
    Column("status", Integer, nullable=False),
    Column("task_status", Integer, nullable=False),
    Column("task_problem_id", Integer, nullable=True),
    Column("task_iteration_id", Integer, nullable=True),
    Column("error_description", Text, nullable=False, default=""),
    Column("last_seen", UTCDateTime(), nullable=False),
)

task_events = Table(
    f"{PREFIX}task_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("problem_id", Integer, nullable=False),
    Column("iteration_id", Integer, nullable=False),
    Column("node_name", String(64), nullable=False),
    Column("replica_id", String(128), nullable=False),
    Column("status", Integer, nullable=False),
    Column("task_status", Integer, nullable=False),
    Column("error_description", Text, nullable=False, default=""),
    Column("at", UTCDateTime(), nullable=False),
    Index(f"{PREFIX}task_events_task_idx", "problem_id", "iteration_id"),
)


def check_submission_key(key: object, name: str = "idempotency_key") -> str:
    """A valid idempotency key (1-128 printable ASCII characters) or ``ValueError`` naming it."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_SUBMISSION_KEY_CHARS:
        raise ValueError(
            f"{name}: expected a string of 1 to {MAX_SUBMISSION_KEY_CHARS} characters, got {key!r:.80}"
        )
    if not all(33 <= ord(c) < 127 for c in key):
        raise ValueError(f"{name}: only printable ASCII characters without spaces are allowed")
    return key


def _normalise_url(url: str) -> URL:
    parsed = make_url(url)
    # Plain "postgresql://" would pick psycopg2, which we do not ship: use psycopg 3.
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_memory_sqlite(url: URL) -> bool:
    db = url.database or ""
    return db in ("", ":memory:") or "mode=memory" in db or url.query.get("mode") == "memory"


class TaskDB:
    """Persistent task store. See the module docstring for the concurrency guarantees."""

    def __init__(self, url: str) -> None:
        self._url = _normalise_url(url)
        backend = self._url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"TaskDB supports SQLite and PostgreSQL URLs, not {backend!r}")
        self._sqlite = backend == "sqlite"
        self._lock: AbstractContextManager[Any] = nullcontext()
        # Writers of this process on a SQLite file (see the module docstring); PostgreSQL has row
        # locks and needs none.
        self._write_lock: AbstractContextManager[Any] = nullcontext()
        if self._sqlite:
            self._engine = self._create_sqlite_engine()
        else:
            # pre_ping: survive a server restart between two orchestrator operations.
            self._engine = create_engine(self._url, pool_pre_ping=True)
        self._closed = False
        self._build_statements()
        self._state_updates: dict[tuple[bool, frozenset[str]], Any] = {}
        self._init_schema()

    # -- engine / schema ----------------------------------------------------------------------
    def _create_sqlite_engine(self) -> Engine:
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT_S}
        memory = _is_memory_sqlite(self._url)
        if memory:
            # One connection holds the whole in-memory database; share it and serialise use.
            engine = create_engine(self._url, connect_args=connect_args, poolclass=StaticPool)
            self._lock = threading.RLock()
        else:
            Path(self._url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(self._url, connect_args=connect_args)
            self._write_lock = threading.Lock()

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control away from the sqlite3 module (it would not begin one
            # before DDL or SELECT) so that the "begin" hook below decides the locking mode.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            try:
                cur.execute(f"PRAGMA busy_timeout = {int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
                if not memory:
                    cur.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer
                    # WAL + NORMAL: a commit survives a crash of any process (it is in the WAL);
                    # only an OS crash or power cut can lose the last commits. It saves an fsync
                    # per commit (~4 ms here) on the orchestrator's critical path. Deployments that
                    # need more use PostgreSQL (SUSTAINML_DB_URL).
                    cur.execute("PRAGMA synchronous = NORMAL")
            finally:
                cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # A write transaction takes the write lock up front (waiting on busy_timeout) instead
            # of upgrading a read lock later, which SQLite answers with an immediate SQLITE_BUSY.
            write = conn.get_execution_options().get(_WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self._check_open()
        with self._lock, self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One committed transaction (rolled back if the body raises)."""
        self._check_open()
        with self._lock, self._write_lock, self._engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("TaskDB is closed")

    def _init_schema(self) -> None:
        with self._write() as conn:
            if not self._sqlite:
                # Two orchestrators starting together must not both run CREATE TABLE.
                conn.execute(select(func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK_KEY)))
            metadata.create_all(conn)
            version = conn.execute(
                select(schema_version_table.c.version).where(schema_version_table.c.id == 1)
            ).scalar_one_or_none()
            if version is None:
                conn.execute(schema_version_table.insert().values(id=1, version=SCHEMA_VERSION))
            elif version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"TaskDB at {self.url} has schema version {version}, newer than this "
                    f"sustainml ({SCHEMA_VERSION}); upgrade sustainml"
                )
            elif version < SCHEMA_VERSION:
                self._migrate(conn, version)
            conn.execute(self._insert_ignore(counters).values(name=PROBLEM_COUNTER, value=0))

    @staticmethod
    def _migrate(conn: Connection, version: int) -> None:
        """Bring an older TaskDB forward, one version at a time, in the schema transaction."""
        if version < 2:
            conn.exec_driver_sql(f"ALTER TABLE {tasks.name} ADD COLUMN note TEXT")
        if version < 3:  # the submissions table is new (create_all above made it)
            have = {c["name"] for c in inspect(conn).get_columns(problems.name)}
            if "auto_stopped" not in have:
                conn.exec_driver_sql(f"ALTER TABLE {problems.name} ADD COLUMN auto_stopped INTEGER")
        conn.execute(
            schema_version_table.update().where(schema_version_table.c.id == 1).values(version=SCHEMA_VERSION)
        )
        log.info("TaskDB migrated from schema %d to %d", version, SCHEMA_VERSION)

    def _build_statements(self) -> None:
        """The statements of the hot paths, built once; values are bound per call."""
        dialect_module = sqlite_dialect if self._sqlite else pg_dialect
        p, i = bindparam("b_p", type_=Integer), bindparam("b_i", type_=Integer)
        self._task_key_where = and_(tasks.c.problem_id == p, tasks.c.iteration_id == i)
        self._get_task_stmt = select(tasks).where(self._task_key_where)
        self._task_snapshot_cols = (
            tasks.c.state,
            tasks.c.error,
            tasks.c.current_stage,
            tasks.c.note,
            tasks.c.created_at,
            tasks.c.finished_at,
        )
        self._task_snapshot_stmt = select(*self._task_snapshot_cols).where(self._task_key_where)
        self._insert_task_stmt = tasks.insert()
        self._insert_problem_stmt = problems.insert()
        self._bump_problem_stmt = (
            counters.update()
            .where(counters.c.name == PROBLEM_COUNTER)
            .values(value=counters.c.value + 1)
            .returning(counters.c.value)
        )
        self._insert_output_stmt = self._insert_ignore(outputs).returning(outputs.c.kind)
        upsert = dialect_module.insert(node_status)
        self._upsert_status_stmt = upsert.on_conflict_do_update(
            index_elements=["node_name", "replica_id"],
            set_={
                name: upsert.excluded[name]
                for name in (
                    "status",
                    "task_status",
                    "task_problem_id",
                    "task_iteration_id",
                    "error_description",
                    "last_seen",
                )
            },
        )
        self._insert_event_stmt = task_events.insert()

    def _state_update_stmt(self, terminal: bool, keep: frozenset[str]) -> Any:
        """``UPDATE tasks ... RETURNING`` for one kind of transition, built on first use.

        The rules live in the WHERE clause so the check and the write are one atomic statement:
        ``cancelled`` is final; a terminal state is never replaced by a non-terminal one; states in
        ``keep`` are never left. ``error``, ``current_stage`` and ``note`` change only when bound
        to a value (COALESCE keeps the stored one for NULL)."""
        cached = self._state_updates.get((terminal, keep))
        if cached is not None:
            return cached
        never_left = {TaskState.CANCELLED.value} if terminal else {s.value for s in TERMINAL_STATES}
        refused = set(keep) | never_left
        # Literal states (enum constants): no expanding IN parameter to re-render on every call.
        allowed = and_(*(tasks.c.state != literal_column(f"'{s}'") for s in sorted(refused)))
        values: dict[str, Any] = {
            "state": bindparam("b_state", type_=String),
            "updated_at": bindparam("b_now", type_=UTCDateTime()),
            "error": func.coalesce(bindparam("b_error", type_=Text), tasks.c.error),
            "current_stage": func.coalesce(bindparam("b_stage", type_=String), tasks.c.current_stage),
            "note": func.coalesce(bindparam("b_note", type_=Text), tasks.c.note),
        }
        if terminal:
            values["finished_at"] = bindparam("b_finished", type_=UTCDateTime())
        stmt = (
            tasks.update()
            .where(and_(self._task_key_where, allowed))
            .values(**values)
            .returning(*self._task_snapshot_cols)
        )
        self._state_updates[(terminal, keep)] = stmt
        return stmt

    def _insert_ignore(self, table: Table) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING in the dialect at hand."""
        if self._sqlite:
            return sqlite_dialect.insert(table).on_conflict_do_nothing()
        return pg_dialect.insert(table).on_conflict_do_nothing()

    @property
    def url(self) -> str:
        """The database URL with any password masked (safe to log)."""
        return self._url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return "sqlite" if self._sqlite else "postgresql"

    def close(self) -> None:
        """Release every pooled connection. Idempotent."""
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> TaskDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ids ----------------------------------------------------------------------------------
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

    def next_problem_id(self) -> int:
        """Allocate a problem id (1, 2, ...) without creating the problem."""
        with self._write() as conn:
            return self._bump_problem_counter(conn)

    def next_iteration_id(self, problem_id: int) -> int:
        """Allocate the next iteration id of an existing problem (``KeyError`` if unknown)."""
        with self._write() as conn:
            return self._bump_iteration(conn, problem_id)

    def latest_iteration(self, problem_id: int) -> int | None:
        """The highest iteration id allocated for the problem, ``None`` if the problem is unknown."""
        with self._read() as conn:
            value = conn.execute(
                select(problems.c.last_iteration).where(problems.c.problem_id == problem_id)
            ).scalar_one_or_none()
        return None if value is None else int(value)

    def stop_automatic(self, problem_id: int) -> None:
        """No automatic iteration of ``problem_id`` starts from now on (its tasks are cancelled)."""
        with self._write() as conn:
            conn.execute(problems.update().where(problems.c.problem_id == problem_id).values(auto_stopped=1))

    def automatic_stopped(self, problem_id: int) -> bool:
        with self._read() as conn:
            value = conn.execute(
                select(problems.c.auto_stopped).where(problems.c.problem_id == problem_id)
            ).scalar_one_or_none()
        return bool(value)

    def problem_exists(self, problem_id: int) -> bool:
        return self.latest_iteration(problem_id) is not None

    # -- tasks --------------------------------------------------------------------------------
    def _insert_task(
        self,
        conn: Connection,
        key: TaskKey,
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
    ) -> TaskKey:
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

        def create(conn: Connection) -> TaskKey:
            key = TaskKey(self._bump_problem_counter(conn), 1)
            conn.execute(
                self._insert_problem_stmt,
                {"problem_id": key.problem_id, "last_iteration": 1, "created_at": now},
            )
            self._insert_task(conn, key, user_input, None, now, task_state, current_stage)
            return key

        return self._create_once(idempotency_key, create, now)

    def create_iteration(
        self,
        problem_id: int,
        user_input: bytes,
        base_iteration: int,
        *,
        state: TaskState | str = TaskState.QUEUED,
        current_stage: str | None = None,
    ) -> TaskKey:
        """The next free iteration of ``problem_id``, branched from ``base_iteration``, in
        ``state`` (as for ``create_problem``).

        ``KeyError`` if the problem is unknown; ``ValueError`` if ``base_iteration`` was never
        allocated for it. The id is allocated in the database, so it never collides, also across
        restarts and several orchestrators.
        """
        return self.submit_iteration(
            problem_id, user_input, base_iteration, state=state, current_stage=current_stage
        ).key

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
        """``create_iteration`` with an optional idempotency key (as ``submit_problem``)."""
        now = _now()
        task_state = TaskState(state)

        def create(conn: Connection) -> TaskKey:
            iteration = self._bump_iteration(conn, problem_id)
            if not 1 <= base_iteration < iteration:
                raise ValueError(
                    f"problem {problem_id} has no iteration {base_iteration} to branch from "
                    f"(latest is {iteration - 1})"
                )
            key = TaskKey(problem_id, iteration)
            self._insert_task(conn, key, user_input, base_iteration, now, task_state, current_stage)
            return key

        return self._create_once(idempotency_key, create, now)

    def _create_once(
        self, idempotency_key: str | None, create: Callable[[Connection], TaskKey], now: datetime
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

    @staticmethod
    def _find_submission(conn: Connection, idempotency_key: str) -> TaskKey | None:
        row = conn.execute(
            select(submissions.c.problem_id, submissions.c.iteration_id).where(
                submissions.c.key == idempotency_key
            )
        ).one_or_none()
        return None if row is None else TaskKey(int(row[0]), int(row[1]))

    def find_submission(self, idempotency_key: str) -> TaskKey | None:
        """The task a submission with this idempotency key created, ``None`` if there is none."""
        with self._read() as conn:
            return self._find_submission(conn, idempotency_key)

    @staticmethod
    def _task_row(row: Row[Any]) -> TaskRow:
        m = row._mapping
        return TaskRow(
            problem_id=int(m["problem_id"]),
            iteration_id=int(m["iteration_id"]),
            state=TaskState(m["state"]),
            user_input=bytes(m["user_input"]),
            base_iteration=m["base_iteration"],
            error=m["error"],
            current_stage=m["current_stage"],
            note=m["note"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            finished_at=m["finished_at"],
        )

    @staticmethod
    def _task_where(key: TaskKey) -> Any:
        return (tasks.c.problem_id == key.problem_id) & (tasks.c.iteration_id == key.iteration_id)

    @staticmethod
    def _key_params(key: TaskKey) -> dict[str, int]:
        return {"b_p": key.problem_id, "b_i": key.iteration_id}

    def get_task(self, key: TaskKey) -> TaskRow | None:
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

    def latest_task(self) -> TaskKey | None:
        """The most recently created task, ``None`` when there is none."""
        rows = self.list_tasks(limit=1)
        return rows[0].key if rows else None

    def set_state(
        self,
        key: TaskKey,
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
        key: TaskKey,
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

    def set_note(self, key: TaskKey, note: str) -> None:
        """Attach a human-readable note to a task (replaces the previous one)."""
        with self._write() as conn:
            result = conn.execute(
                tasks.update().where(self._task_where(key)).values(note=note, updated_at=_now())
            )
        if result.rowcount != 1:
            raise KeyError(f"unknown task {key}")

    # -- outputs ------------------------------------------------------------------------------
    def store_output(self, task: TaskKey, kind: str, record: bytes, message_id: str | None = None) -> bool:
        """Store a stage output once. Returns False when ``(task, kind)`` was already stored
        (a redelivery); the first stored copy is kept."""
        with self._write() as conn:
            return self._insert_output(conn, task, kind, record, message_id)

    def record_output(
        self,
        task: TaskKey,
        kind: str,
        record: bytes,
        message_id: str | None,
        *,
        state: TaskState | str,
        current_stage: str | None = None,
        error: str | None = None,
    ) -> bool:
        """``store_output`` and, for a first copy, ``set_state``, in one transaction (one fsync
        per stage output instead of two). Returns False for a duplicate (nothing changed)."""
        with self._write() as conn:
            fresh = self._insert_output(conn, task, kind, record, message_id)
            if fresh:
                self._apply_state(conn, task, TaskState(state), error, current_stage)
            return fresh

    def store_stage_output(
        self,
        task: TaskKey,
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

    def _insert_output(
        self, conn: Connection, task: TaskKey, kind: str, record: bytes, message_id: str | None
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

    @staticmethod
    def _output_where(key: TaskKey) -> Any:
        return (outputs.c.problem_id == key.problem_id) & (outputs.c.iteration_id == key.iteration_id)

    def get_outputs(self, key: TaskKey) -> dict[str, bytes]:
        """Every stored output of the task, kind -> record bytes, in arrival order."""
        query = (
            select(outputs.c.kind, outputs.c.record)
            .where(self._output_where(key))
            .order_by(outputs.c.received_at, outputs.c.kind)
        )
        with self._read() as conn:
            return {str(kind): bytes(record) for kind, record in conn.execute(query)}

    def get_output(self, key: TaskKey, kind: str) -> bytes | None:
        query = select(outputs.c.record).where(self._output_where(key) & (outputs.c.kind == kind))
        with self._read() as conn:
            record = conn.execute(query).scalar_one_or_none()
        return None if record is None else bytes(record)

    def count_by_state(self) -> dict[str, int]:
        """Number of tasks in each state present (one GROUP BY; states with no task are absent)."""
        query = select(tasks.c.state, func.count()).group_by(tasks.c.state)
        with self._read() as conn:
            return {str(state): int(n) for state, n in conn.execute(query)}

    def count_outputs(self, key: TaskKey | None = None) -> int:
        """Number of stored outputs, of one task or of all."""
        query = select(func.count()).select_from(outputs)
        if key is not None:
            query = query.where(self._output_where(key))
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    # -- node status --------------------------------------------------------------------------
    def upsert_node_status(
        self,
        node_name: str,
        replica_id: str,
        status: int,
        task_status: int,
        task: TaskKey | None = None,
        error_description: str = "",
        last_seen: datetime | None = None,
    ) -> None:
        """Record the latest status of one replica of a node (insert or replace)."""
        params = self._node_status_params(
            node_name, replica_id, status, task_status, task, error_description, last_seen
        )
        with self._write() as conn:
            conn.execute(self._upsert_status_stmt, params)

    @staticmethod
    def _node_status_params(
        node_name: str,
        replica_id: str,
        status: int,
        task_status: int,
        task: TaskKey | None,
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

    def list_node_status(self, node_name: str | None = None) -> list[NodeStatusRow]:
        query = select(node_status).order_by(node_status.c.node_name, node_status.c.replica_id)
        if node_name is not None:
            query = query.where(node_status.c.node_name == node_name)
        with self._read() as conn:
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
                    task=None if p is None or i is None else TaskKey(int(p), int(i)),
                    error_description=m["error_description"],
                    last_seen=m["last_seen"],
                )
            )
        return result

    def add_task_event(
        self,
        task: TaskKey,
        node_name: str,
        replica_id: str,
        status: int,
        task_status: int,
        error_description: str = "",
        at: datetime | None = None,
    ) -> int:
        """Append a per-task status event; returns its id."""
        stmt = self._task_event_stmt(task, node_name, replica_id, status, task_status, error_description, at)
        with self._write() as conn:
            return int(conn.execute(stmt.returning(task_events.c.id)).scalar_one())

    @staticmethod
    def _task_event_stmt(
        task: TaskKey,
        node_name: str,
        replica_id: str,
        status: int,
        task_status: int,
        error_description: str,
        at: datetime | None,
    ) -> Any:
        params = TaskDB._task_event_params(
            task, node_name, replica_id, status, task_status, error_description, at
        )
        return task_events.insert().values(**params)

    @staticmethod
    def _task_event_params(
        task: TaskKey,
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

    def list_task_events(self, task: TaskKey) -> list[TaskEventRow]:
        """Events of one task, oldest first."""
        query = (
            select(task_events)
            .where(
                (task_events.c.problem_id == task.problem_id)
                & (task_events.c.iteration_id == task.iteration_id)
            )
            .order_by(task_events.c.id)
        )
        with self._read() as conn:
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


__all__ = [
    "SCHEMA_VERSION",
    "TERMINAL_STATES",
    "NodeStatusRow",
    "StatusUpdate",
    "StoredOutput",
    "TaskDB",
    "TaskEventRow",
    "TaskKey",
    "TaskRow",
    "TaskState",
    "metadata",
]
