"""The TaskDB's schema: its tables and column types, the rows it returns, the engine (SQLite
locking, PostgreSQL driver), schema creation and migrations, and the base every part of the
TaskDB builds on (connections, the statements of the hot paths, built once)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Self

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
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from sustainml.messages import TaskId
from sustainml.messages.tasks import MAX_SUBMISSION_KEY_CHARS, TERMINAL_STATES, Snapshot, TaskState

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 3  # 2: tasks.note; 3: submissions (idempotency keys), problems.auto_stopped
PREFIX: Final = "sustainml_"
PROBLEM_COUNTER: Final = "problem_id"
# Arbitrary constant key of the PostgreSQL advisory lock that serialises schema creation.
_PG_SCHEMA_LOCK_KEY: Final = 0x5A17_4D4C
_SQLITE_BUSY_TIMEOUT_S: Final = 30.0
_WRITE_OPTION: Final = "sustainml_write"


def task_id(problem_id: int, iteration_id: int) -> TaskId:
    return TaskId(problem_id=problem_id, iteration_id=iteration_id)


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
    def key(self) -> TaskId:
        return task_id(self.problem_id, self.iteration_id)

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.state, self.error, self.current_stage, self.note, self.created_at, self.finished_at
        )


@dataclass(frozen=True)
class Created:
    """What a create call did: the task's id, and whether this call created it (False: the
    idempotency key was already stored, ``key`` is the task the earlier submission created)."""

    key: TaskId
    fresh: bool


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
class Outcome:
    """What ``TaskDB.store_outcomes`` writes for one task: its records (``kind`` -> the codec's
    standalone body; the one of ``kind`` is the outcome's own output, the others came with it) and
    the state they move it to, as for ``store_stage_output``."""

    task: TaskId
    kind: str
    records: dict[str, bytes]
    message_id: str | None
    state: TaskState
    current_stage: str | None = None
    error: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class StatusUpdate:
    """One NodeStatus as the TaskDB stores it (see ``TaskDB.record_statuses``)."""

    node_name: str
    replica_id: str
    status: int
    task_status: int
    task: TaskId | None
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


def _normalise_url(url: str) -> URL:
    parsed = make_url(url)
    # Plain "postgresql://" would pick psycopg2, which we do not ship: use psycopg 3.
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_memory_sqlite(url: URL) -> bool:
    db = url.database or ""
    return db in ("", ":memory:") or "mode=memory" in db or url.query.get("mode") == "memory"


class TaskDBBase:
    """Engine, connections and prepared statements; ``TaskDB`` adds the writes and queries."""

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
        # n ids in one round trip: the counter's new value is the last of them.
        self._bump_problems_stmt = (
            counters.update()
            .where(counters.c.name == PROBLEM_COUNTER)
            .values(value=counters.c.value + bindparam("b_n", type_=Integer))
            .returning(counters.c.value)
        )
        self._insert_output_stmt = self._insert_ignore(outputs).returning(outputs.c.kind)
        self._insert_outputs_stmt = self._insert_ignore(outputs)  # executemany: no RETURNING
        self._delete_outputs_stmt = outputs.delete().where(
            and_(outputs.c.problem_id == p, outputs.c.iteration_id == i)
        )
        # Progress: a running task moves on to a stage, never back (an older stage is not written).
        self._progress_stmt = (
            tasks.update()
            .where(
                and_(
                    self._task_key_where,
                    tasks.c.state == literal_column(f"'{TaskState.RUNNING.value}'"),
                )
            )
            .values(
                current_stage=bindparam("b_stage", type_=String),
                updated_at=bindparam("b_now", type_=UTCDateTime()),
            )
        )
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared helpers ---------------------------------------------------------------------------
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
    def _task_where(key: TaskId) -> Any:
        return (tasks.c.problem_id == key.problem_id) & (tasks.c.iteration_id == key.iteration_id)

    @staticmethod
    def _output_where(key: TaskId) -> Any:
        return (outputs.c.problem_id == key.problem_id) & (outputs.c.iteration_id == key.iteration_id)

    @staticmethod
    def _key_params(key: TaskId) -> dict[str, int]:
        return {"b_p": key.problem_id, "b_i": key.iteration_id}

    @staticmethod
    def _find_submission(conn: Connection, idempotency_key: str) -> TaskId | None:
        row = conn.execute(
            select(submissions.c.problem_id, submissions.c.iteration_id).where(
                submissions.c.key == idempotency_key
            )
        ).one_or_none()
        return None if row is None else task_id(int(row[0]), int(row[1]))
