"""TaskDB on SQLite (temporary file, and memory where it applies) and on the local PostgreSQL.

PostgreSQL tests get a fresh database each (``sustainml_test_<uuid8>``), dropped afterwards. They
are skipped when the server does not answer, except under ``CI`` where that is a failure.
Server: ``SUSTAINML_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``,
the maintenance database the test databases are created from).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, update
from sqlalchemy.engine import make_url

from sustainml.messages import TaskId, from_wire, to_wire
from sustainml.orchestrator.taskdb import (
    SCHEMA_VERSION,
    Outcome,
    StatusUpdate,
    TaskDB,
    TaskState,
    _normalise_url,
    schema_version_table,
)
from tests.support.taskdb import (
    add_task_event,
    count_outputs,
    create_iteration,
    get_output,
    list_node_status,
    list_task_events,
    next_iteration_id,
    next_problem_id,
    problem_exists,
    store_output,
    upsert_node_status,
)

PG_ADMIN_URL = os.environ.get(
    "SUSTAINML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


# -- PostgreSQL plumbing -------------------------------------------------------------------------
def _libpq_conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@cache
def _postgres_error() -> str | None:
    """None when the server answers, else why not (probed once per test session)."""
    try:
        with psycopg.connect(_libpq_conninfo(PG_ADMIN_URL), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__
    return None


def _require_postgres() -> None:
    error = _postgres_error()
    if error is None:
        return
    message = f"PostgreSQL at {make_url(PG_ADMIN_URL).render_as_string()} is not reachable: {error}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    _require_postgres()
    name = f"sustainml_test_{uuid.uuid4().hex[:8]}"
    admin = _libpq_conninfo(PG_ADMIN_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            # FORCE: a connection leaked by a failing test must not keep the database alive.
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- fixtures ------------------------------------------------------------------------------------
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'taskdb.sqlite3'}"  # parent dir does not exist yet
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture
def open_db(db_url: str) -> Iterator[Callable[[], TaskDB]]:
    """Opens TaskDBs on the test's URL ("restarts"); all are closed at teardown."""
    opened: list[TaskDB] = []

    def _open() -> TaskDB:
        db = TaskDB(db_url)
        opened.append(db)
        return db

    yield _open
    for db in opened:
        db.close()


@pytest.fixture
def db(open_db: Callable[[], TaskDB]) -> TaskDB:
    return open_db()


def _run_concurrently(n_threads: int, fn: Callable[[int], list[Any]]) -> list[Any]:
    """Run ``fn(thread_index)`` on n threads released together; concatenated results."""
    barrier = threading.Barrier(n_threads)

    def _body(index: int) -> list[Any]:
        barrier.wait(timeout=30)
        return fn(index)

    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        results = list(pool.map(_body, range(n_threads)))
    return [item for chunk in results for item in chunk]


def _state(db: TaskDB, key: TaskId) -> TaskState:
    row = db.get_task(key)
    assert row is not None, f"task {key} missing"
    return row.state


# -- ids -----------------------------------------------------------------------------------------
def test_problem_ids_start_at_one_and_increase(db: TaskDB) -> None:
    assert db.latest_task() is None
    assert db.create_problem(b"u1") == TaskId(problem_id=1, iteration_id=1)
    assert next_problem_id(db) == 2  # allocated without a problem row
    assert db.create_problem(b"u3") == TaskId(problem_id=3, iteration_id=1)
    assert problem_exists(db, 1)
    assert not problem_exists(db, 2)
    assert db.latest_iteration(3) == 1
    assert db.latest_iteration(2) is None

    row = db.get_task(TaskId(problem_id=3, iteration_id=1))
    assert row is not None
    assert row.state is TaskState.QUEUED
    assert row.user_input == b"u3"
    assert row.base_iteration is None
    assert row.finished_at is None


def test_iterations_increase_and_survive_restart(open_db: Callable[[], TaskDB]) -> None:
    first = open_db()
    p = first.create_problem(b"base").problem_id
    assert create_iteration(first, p, b"it2", base_iteration=1) == TaskId(problem_id=p, iteration_id=2)
    # Branching from an older iteration takes the next free number, never an existing one.
    assert create_iteration(first, p, b"it3", base_iteration=1) == TaskId(problem_id=p, iteration_id=3)
    assert next_iteration_id(first, p) == 4
    first.close()

    second = open_db()  # a restarted orchestrator
    assert second.latest_iteration(p) == 4
    assert create_iteration(second, p, b"it5", base_iteration=2) == TaskId(problem_id=p, iteration_id=5)
    assert second.create_problem(b"next") == TaskId(problem_id=p + 1, iteration_id=1)
    row = second.get_task(TaskId(problem_id=p, iteration_id=5))
    assert row is not None
    assert (row.user_input, row.base_iteration) == (b"it5", 2)
    assert (
        second.get_task(TaskId(problem_id=p, iteration_id=4)) is None
    )  # allocated by next_iteration_id, no task row
    assert [t.iteration_id for t in second.list_tasks(problem_id=p)] == [5, 3, 2, 1]


def test_unknown_problem_raises_key_error(db: TaskDB) -> None:
    with pytest.raises(KeyError):
        next_iteration_id(db, 42)
    with pytest.raises(KeyError):
        create_iteration(db, 42, b"x", base_iteration=1)
    assert db.list_tasks() == []
    assert db.create_problem(b"x") == TaskId(
        problem_id=1, iteration_id=1
    )  # the failed calls consumed no problem id


def test_bad_base_iteration_rolls_back(db: TaskDB) -> None:
    p = db.create_problem(b"x").problem_id
    for bad in (0, 2, 7):
        with pytest.raises(ValueError):
            create_iteration(db, p, b"y", base_iteration=bad)
    # The iteration counter bump happened in the same transaction and was rolled back.
    assert db.latest_iteration(p) == 1
    assert create_iteration(db, p, b"y", base_iteration=1) == TaskId(problem_id=p, iteration_id=2)


def test_concurrent_allocation_from_threads_is_unique(db: TaskDB) -> None:
    def allocate(index: int) -> list[int]:
        ids = []
        for n in range(50):
            # Mix bare allocation with full problem creation (allocation + inserts in one tx).
            ids.append(db.create_problem(b"t").problem_id if (index + n) % 2 else next_problem_id(db))
        return ids

    ids = _run_concurrently(8, allocate)
    assert sorted(ids) == list(range(1, 401))


def test_concurrent_iterations_from_threads_are_unique(db: TaskDB) -> None:
    p = db.create_problem(b"base").problem_id

    def branch(_: int) -> list[int]:
        return [create_iteration(db, p, b"b", base_iteration=1).iteration_id for _ in range(20)]

    iterations = _run_concurrently(8, branch)
    assert sorted(iterations) == list(range(2, 162))
    assert db.latest_iteration(p) == 161
    assert len(db.list_tasks(problem_id=p, limit=1000)) == 161


# Child process body: its own TaskDB (own engine and pool). It runs from ``python -c`` so it only
# imports sustainml, whatever import mode pytest uses; it starts allocating once the go-file exists.
_CHILD_SCRIPT = """
import json, os, sys, time
from sustainml.orchestrator.taskdb import TaskDB
url, problem_id, go_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
db = TaskDB(url)
print("ready", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(go_file):
    if time.monotonic() > deadline:
        sys.exit("go-file never appeared")
    time.sleep(0.001)
problems = [db.create_problem(b"proc").problem_id for _ in range(60)]
iterations = [db.submit_iteration(problem_id, b"proc", 1).key.iteration_id for _ in range(60)]
db.close()
print(json.dumps([problems, iterations]), flush=True)
"""


@pytest.mark.slow
def test_concurrent_allocation_from_two_processes_is_unique(db: TaskDB, db_url: str, tmp_path: Any) -> None:
    p = db.create_problem(b"shared").problem_id
    go_file = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD_SCRIPT, db_url, str(p), str(go_file)],
            cwd=str(tmp_path),  # not the checkout: the child must import the installed package
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        go_file.touch()  # both have their engine and schema: release them together
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    collected = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    problems = [pid for chunk, _ in collected for pid in chunk]
    iterations = [it for _, chunk in collected for it in chunk]
    assert sorted(problems) == list(range(p + 1, p + 121))
    assert sorted(iterations) == list(range(2, 122))
    assert db.latest_iteration(p) == 121


# -- outputs -------------------------------------------------------------------------------------
def test_duplicate_output_is_stored_once(db: TaskDB) -> None:
    key = db.create_problem(b"u")
    assert store_output(db, key, "ml_model", b"first", "msg-1") is True
    assert store_output(db, key, "ml_model", b"second", "msg-2") is False  # redelivery
    assert store_output(db, key, "hw_resources", b"hw", None) is True
    other = create_iteration(db, key.problem_id, b"u2", 1)
    assert store_output(db, other, "ml_model", b"other", "msg-3") is True  # same kind, other task

    assert get_output(db, key, "ml_model") == b"first"  # first copy wins
    assert db.get_outputs(key) == {"ml_model": b"first", "hw_resources": b"hw"}
    assert get_output(db, key, "carbon_footprint") is None
    assert db.get_outputs(TaskId(problem_id=99, iteration_id=1)) == {}
    assert count_outputs(db) == 3
    assert count_outputs(db, key) == 2
    assert count_outputs(db, other) == 1


def test_concurrent_duplicate_outputs_have_one_winner(db: TaskDB) -> None:
    key = db.create_problem(b"u")

    def deliver(index: int) -> list[tuple[int, bool]]:
        payload = f"copy-{index}".encode()
        return [(index, store_output(db, key, "carbon_footprint", payload, f"m{index}"))]

    outcomes = _run_concurrently(8, deliver)
    winners = [index for index, stored in outcomes if stored]
    assert len(winners) == 1
    assert get_output(db, key, "carbon_footprint") == f"copy-{winners[0]}".encode()
    assert count_outputs(db, key) == 1


# -- states --------------------------------------------------------------------------------------
def test_state_transition_rules(db: TaskDB) -> None:
    key = db.create_problem(b"u")
    created = db.get_task(key)
    assert created is not None

    assert db.set_state(key, TaskState.RUNNING, current_stage="ml_model_metadata")
    running = db.get_task(key)
    assert running is not None
    assert (running.state, running.current_stage, running.finished_at) == (
        "running",
        "ml_model_metadata",
        None,
    )
    assert running.updated_at >= created.updated_at

    assert db.set_state(key, "running", current_stage="ml_model")  # progress within running
    assert db.set_state(key, "succeeded")
    done = db.get_task(key)
    assert done is not None
    assert done.state is TaskState.SUCCEEDED and done.is_terminal
    assert done.current_stage == "ml_model"  # None leaves the column unchanged
    assert done.finished_at is not None

    # Terminal is never replaced by non-terminal.
    assert db.set_state(key, "running") is False
    assert db.set_state(key, "queued") is False
    assert _state(db, key) is TaskState.SUCCEEDED

    # A terminal state may replace another one, except cancelled.
    assert db.set_state(key, "failed", error="late failure")
    assert db.set_state(key, "running", error="ignored") is False
    failed = db.get_task(key)
    assert failed is not None
    assert (failed.state, failed.error) == ("failed", "late failure")

    assert db.set_state(key, "cancelled")
    for state in TaskState:
        assert db.set_state(key, state, error="nope") is False
    cancelled = db.get_task(key)
    assert cancelled is not None
    assert (cancelled.state, cancelled.error) == ("cancelled", "late failure")


def test_cancel_from_queued_sets_finished_at(db: TaskDB) -> None:
    key = db.create_problem(b"u")
    before = datetime.now(UTC)
    assert db.set_state(key, "cancelled")
    row = db.get_task(key)
    assert row is not None and row.finished_at is not None
    assert before - timedelta(seconds=5) <= row.finished_at <= datetime.now(UTC) + timedelta(seconds=5)


def test_set_state_errors(db: TaskDB) -> None:
    with pytest.raises(KeyError):
        db.set_state(TaskId(problem_id=1, iteration_id=1), "running")
    key = db.create_problem(b"u")
    with pytest.raises(ValueError):
        db.set_state(key, "exploded")
    with pytest.raises(ValueError):
        db.list_tasks(state="exploded")


def test_timestamps_are_utc_aware(db: TaskDB) -> None:
    before = datetime.now(UTC)
    key = db.create_problem(b"u")
    db.set_state(key, "failed", error="boom")
    after = datetime.now(UTC)
    row = db.get_task(key)
    assert row is not None
    for stamp in (row.created_at, row.updated_at, row.finished_at):
        assert stamp is not None
        assert stamp.utcoffset() == timedelta(0)
        assert before <= stamp <= after
    assert row.error == "boom"


# -- listing -------------------------------------------------------------------------------------
def test_list_filter_and_paginate(db: TaskDB) -> None:
    a = db.create_problem(b"a")
    b = db.create_problem(b"b")
    a2 = create_iteration(db, a.problem_id, b"a2", 1)
    c = db.create_problem(b"c")
    db.set_state(b, "running")
    db.set_state(c, "succeeded")

    newest_first = [c, a2, b, a]
    assert [t.key for t in db.list_tasks()] == newest_first
    assert db.latest_task() == c
    assert [t.key for t in db.list_tasks(state="queued")] == [a2, a]
    assert [t.key for t in db.list_tasks(state=TaskState.RUNNING)] == [b]
    assert [t.key for t in db.list_tasks(problem_id=a.problem_id)] == [a2, a]
    assert [t.key for t in db.list_tasks(state="queued", problem_id=a.problem_id, limit=1)] == [a2]
    assert db.list_tasks(state="cancelled") == []

    pages = [db.list_tasks(limit=3, offset=o) for o in (0, 3, 6)]
    assert [len(p) for p in pages] == [3, 1, 0]
    assert [t.key for page in pages for t in page] == newest_first
    with pytest.raises(ValueError):
        db.list_tasks(limit=-1)


# -- node status and events ----------------------------------------------------------------------
def test_node_status_upsert(db: TaskDB) -> None:
    seen = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    upsert_node_status(db, "ML_MODEL", "r1", status=2, task_status=0, last_seen=seen)
    upsert_node_status(
        db,
        "ML_MODEL",
        "r1",
        status=3,
        task_status=1,
        task=TaskId(problem_id=4, iteration_id=2),
        error_description="",
    )
    upsert_node_status(
        db,
        "ML_MODEL",
        "r2",
        status=4,
        task_status=2,
        task=TaskId(problem_id=4, iteration_id=3),
        error_description="oom",
    )
    upsert_node_status(db, "HW_RESOURCES", "r1", status=2, task_status=0, last_seen=seen)

    rows = list_node_status(db)
    assert [(r.node_name, r.replica_id) for r in rows] == [
        ("HW_RESOURCES", "r1"),
        ("ML_MODEL", "r1"),
        ("ML_MODEL", "r2"),
    ]
    hw, r1, r2 = rows
    assert (hw.status, hw.task, hw.last_seen) == (2, None, seen)
    assert (r1.status, r1.task_status, r1.task) == (
        3,
        1,
        TaskId(problem_id=4, iteration_id=2),
    )  # replaced, not appended
    assert r1.last_seen > seen - timedelta(days=36500) and r1.last_seen.utcoffset() == timedelta(0)
    assert (r2.error_description, r2.task) == ("oom", TaskId(problem_id=4, iteration_id=3))

    # Clearing the task of a replica that went idle.
    upsert_node_status(db, "ML_MODEL", "r2", status=2, task_status=0, task=None, last_seen=seen)
    assert [(r.status, r.task, r.error_description) for r in list_node_status(db, "ML_MODEL")] == [
        (3, TaskId(problem_id=4, iteration_id=2), ""),
        (2, None, ""),
    ]
    with pytest.raises(ValueError):
        upsert_node_status(db, "ML_MODEL", "r3", 2, 0, last_seen=datetime(2030, 1, 1))  # naive


def test_task_events_are_appended_in_order(db: TaskDB) -> None:
    key = db.create_problem(b"u")
    first = add_task_event(db, key, "ML_MODEL", "r1", status=3, task_status=1)
    second = add_task_event(db, key, "ML_MODEL", "r1", status=4, task_status=2, error_description="bad input")
    add_task_event(db, TaskId(problem_id=9, iteration_id=9), "HW_RESOURCES", "r1", status=3, task_status=1)
    assert second > first
    events = list_task_events(db, key)
    assert [(e.id, e.task_status, e.error_description) for e in events] == [
        (first, 1, ""),
        (second, 2, "bad input"),
    ]
    assert all(e.task == key and e.at.utcoffset() == timedelta(0) for e in events)


# -- schema and lifecycle ------------------------------------------------------------------------
def test_schema_version_recorded_and_newer_schema_refused(db: TaskDB, db_url: str) -> None:
    db.create_problem(b"u")
    engine = create_engine(_normalise_url(db_url))
    try:
        with engine.begin() as conn:
            version = conn.execute(schema_version_table.select()).all()
            assert [tuple(r) for r in version] == [(1, SCHEMA_VERSION)]
            conn.execute(update(schema_version_table).values(version=SCHEMA_VERSION + 1))
    finally:
        engine.dispose()
    with pytest.raises(RuntimeError, match="newer"):
        TaskDB(db_url)


def test_closed_db_refuses_use(db_url: str) -> None:
    db = TaskDB(db_url)
    db.close()
    db.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        db.create_problem(b"u")


# -- SQLite specifics and URL handling ------------------------------------------------------------
def test_sqlite_file_uses_wal(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'wal.sqlite3'}"
    with TaskDB(url) as db:
        db.create_problem(b"u")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_memory_database_is_shared_across_threads(url: str) -> None:
    with TaskDB(url) as db:
        assert db.dialect == "sqlite"
        ids = _run_concurrently(8, lambda _: [db.create_problem(b"m").problem_id for _ in range(25)])
        assert sorted(ids) == list(range(1, 201))
        key = TaskId(problem_id=ids[0], iteration_id=1)
        assert store_output(db, key, "ml_model", b"x") is True
        assert store_output(db, key, "ml_model", b"y") is False
        assert len(db.list_tasks(limit=500)) == 200
    with TaskDB(url) as fresh:  # memory is per object: a new one starts empty
        assert fresh.latest_task() is None


def test_url_normalisation_and_unsupported_backend() -> None:
    assert _normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert _normalise_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert _normalise_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(ValueError, match="SQLite and PostgreSQL"):
        TaskDB("mysql://u@h/db")


def test_task_id_wire_form() -> None:
    key = TaskId(problem_id=3, iteration_id=7)
    assert to_wire(key) == {"problem_id": 3, "iteration_id": 7}
    assert from_wire(TaskId, {"problem_id": 3, "iteration_id": 7}) == key
    assert str(key) == "3.7"
    assert sorted(
        [
            TaskId(problem_id=2, iteration_id=1),
            TaskId(problem_id=1, iteration_id=10),
            TaskId(problem_id=1, iteration_id=2),
        ]
    ) == [
        TaskId(problem_id=1, iteration_id=2),
        TaskId(problem_id=1, iteration_id=10),
        TaskId(problem_id=2, iteration_id=1),
    ]


def test_schema_1_database_is_migrated_and_notes_work(tmp_path: Any) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    db = TaskDB(url)
    key = db.create_problem(b"ui")
    db.close()
    con = sqlite3.connect(tmp_path / "old.sqlite3")  # make it look like a version-1 database
    con.execute("ALTER TABLE sustainml_tasks DROP COLUMN note")
    con.execute("UPDATE sustainml_schema_version SET version = 1")
    con.commit()
    con.close()
    db = TaskDB(url)
    try:
        row = db.get_task(key)
        assert row is not None and row.note is None
        db.set_note(key, "target met at iteration 2")
        row = db.get_task(key)
        assert row is not None and row.note == "target met at iteration 2"
        with pytest.raises(KeyError):
            db.set_note(TaskId(problem_id=99, iteration_id=1), "x")
    finally:
        db.close()


# -- the orchestrator's fast path ----------------------------------------------------------------
KEPT = frozenset({TaskState.CANCELLED, TaskState.FAILED})


def test_tasks_can_be_created_running_in_one_call(db: TaskDB) -> None:
    key = db.create_problem(b"u", state="running", current_stage="ML_MODEL_METADATA")
    row = db.get_task(key)
    assert row is not None
    assert (row.state, row.current_stage, row.finished_at) == ("running", "ML_MODEL_METADATA", None)
    nxt = create_iteration(db, key.problem_id, b"u2", 1, state=TaskState.RUNNING, current_stage="X")
    again = db.get_task(nxt)
    assert again is not None and (again.state, again.current_stage, again.base_iteration) == (
        "running",
        "X",
        1,
    )
    assert _state(db, db.create_problem(b"q")) is TaskState.QUEUED  # the default is unchanged
    with pytest.raises(ValueError):
        db.create_problem(b"u", state="succeeded")  # a task is never born finished
    assert db.latest_iteration(key.problem_id) == 2


def test_store_stage_output_returns_the_task_after_the_change(db: TaskDB) -> None:
    key = db.create_problem(b"u", state="running", current_stage="A")
    first = db.store_stage_output(
        key, "ml_model_metadata", b"m", "id-1", state="running", current_stage="B", keep=KEPT
    )
    assert (first.fresh, first.applied, first.state, first.current_stage) == (True, True, "running", "B")
    assert first.finished_at is None and first.note is None and first.error is None
    row = db.get_task(key)
    assert row is not None and first.created_at == row.created_at

    dup = db.store_stage_output(
        key, "ml_model_metadata", b"other", "id-2", state="failed", error="x", keep=KEPT
    )
    assert (dup.fresh, dup.applied, dup.state, dup.current_stage) == (False, False, "running", "B")
    assert get_output(db, key, "ml_model_metadata") == b"m"  # first copy kept, state untouched

    done = db.store_stage_output(
        key,
        "carbon_footprint",
        b"c",
        "id-3",
        state="succeeded",
        current_stage="C",
        note="target met",
        keep=KEPT,
    )
    assert (done.fresh, done.applied, done.state, done.note, done.current_stage) == (
        True,
        True,
        "succeeded",
        "target met",
        "C",
    )
    assert done.finished_at is not None and done.finished_at.utcoffset() == timedelta(0)
    stored = db.get_task(key)
    assert stored is not None
    assert (stored.state, stored.note, stored.finished_at) == ("succeeded", "target met", done.finished_at)


def test_store_stage_output_keeps_cancelled_and_failed_tasks(db: TaskDB) -> None:
    cancelled = db.create_problem(b"u", state="running", current_stage="A")
    assert db.set_state(cancelled, "cancelled", error="cancelled by request")
    late = db.store_stage_output(
        cancelled, "ml_model", b"late", None, state="running", current_stage="B", keep=KEPT
    )
    assert (late.fresh, late.applied, late.state, late.error, late.current_stage) == (
        True,
        False,
        "cancelled",
        "cancelled by request",
        "A",
    )
    assert get_output(db, cancelled, "ml_model") == b"late"  # kept for the record

    failed = db.create_problem(b"u", state="running", current_stage="A")
    assert db.set_state(failed, "failed", error="deadline")
    final = db.store_stage_output(failed, "carbon_footprint", b"c", None, state="succeeded", keep=KEPT)
    assert (final.applied, final.state, final.error) == (False, "failed", "deadline")
    # Without ``keep`` the set_state rules alone apply: failed -> succeeded is a terminal change.
    other = db.create_problem(b"u", state="running")
    assert db.set_state(other, "failed", error="e")
    assert db.store_stage_output(other, "carbon_footprint", b"c", None, state="succeeded").applied
    assert _state(db, other) is TaskState.SUCCEEDED


def test_store_stage_output_for_an_unknown_task_stores_nothing(db: TaskDB) -> None:
    with pytest.raises(KeyError):
        db.store_stage_output(
            TaskId(problem_id=41, iteration_id=1), "ml_model", b"x", None, state="running", keep=KEPT
        )
    assert count_outputs(db) == 0


SIX = ("ml_model_metadata", "app_requirements", "hw_constraints", "ml_model", "hw_resources")


def _final(key: TaskId, **kw: Any) -> Outcome:
    records = {kind: kind.encode() for kind in SIX} | {"carbon_footprint": b"final"}
    args: dict[str, Any] = {"state": TaskState.SUCCEEDED, "current_stage": "CARBON_FOOTPRINT"} | kw
    return Outcome(key, "carbon_footprint", records, f"{key.key}:carbon_footprint", **args)


def test_store_outcomes_stores_every_record_of_a_task_once_with_its_final_state(db: TaskDB) -> None:
    key = db.create_problem(b"u", state="running", current_stage="ML_MODEL_METADATA")
    other = db.create_problem(b"v", state="running", current_stage="ML_MODEL_METADATA")
    first = db.store_outcomes([_final(key, note="target met"), _final(other)], keep=KEPT)
    assert [(a.fresh, a.applied, a.state) for a in first if a is not None] == [
        (True, True, "succeeded"),
        (True, True, "succeeded"),
    ]
    assert first[0] is not None and first[0].note == "target met" and first[0].finished_at is not None
    assert count_outputs(db, key) == 6 and count_outputs(db, other) == 6
    assert get_output(db, key, "carbon_footprint") == b"final"
    assert get_output(db, key, "ml_model") == b"ml_model"
    before = db.get_task(key)

    # A redelivered final outcome: nothing stored twice, the task untouched.
    again = db.store_outcomes([_final(key, state=TaskState.FAILED, error="late")], keep=KEPT)
    assert again[0] is not None and (again[0].fresh, again[0].applied, again[0].state) == (
        False,
        False,
        "succeeded",
    )
    after = db.get_task(key)
    assert before is not None and after is not None
    assert (after.state, after.updated_at, after.finished_at) == (
        before.state,
        before.updated_at,
        before.finished_at,
    )
    assert count_outputs(db, key) == 6


def test_store_outcomes_a_failure_stores_the_records_so_far_and_keeps_cancelled_tasks(db: TaskDB) -> None:
    failing = db.create_problem(b"u", state="running", current_stage="ML_MODEL")
    records = {"ml_model_metadata": b"m", "app_requirements": b"a", "hw_constraints": b"h", "ml_model": b"x"}
    failed = Outcome(
        failing,
        "ml_model",
        records,
        f"{failing.key}:ml_model",
        TaskState.FAILED,
        "ML_MODEL",
        "ML_MODEL: boom",
    )
    cancelled = db.create_problem(b"u", state="running", current_stage="HW_RESOURCES")
    assert db.set_state(cancelled, "cancelled", error="cancelled by request")
    unknown = _final(TaskId(problem_id=999, iteration_id=1))
    answers = db.store_outcomes([failed, unknown, _final(cancelled)], keep=KEPT)
    assert answers[1] is None  # an unknown task: nothing of it stored; the others commit
    assert answers[0] is not None and (answers[0].state, answers[0].error) == ("failed", "ML_MODEL: boom")
    assert count_outputs(db, failing) == 4
    assert answers[2] is not None and (answers[2].fresh, answers[2].applied, answers[2].state) == (
        True,
        False,
        "cancelled",
    )
    assert count_outputs(db, cancelled) == 6  # kept for the record
    assert count_outputs(db, TaskId(problem_id=999, iteration_id=1)) == 0


def test_submit_problems_allocates_every_id_in_one_transaction_once_per_key(db: TaskDB) -> None:
    earlier = db.submit_problem(b"e", idempotency_key="k-earlier").key
    items: list[tuple[bytes, str | None]] = [
        (b"a", "k-a"),
        (b"b", None),
        (b"again", "k-earlier"),  # stored before: the earlier task, nothing created
        (b"a2", "k-a"),  # repeated in the batch: the first one's task
        (b"c", "k-c"),
    ]
    created = db.submit_problems(items, state="running", current_stage="ML_MODEL_METADATA")
    assert [c.fresh for c in created] == [True, True, False, False, True]
    assert created[2].key == earlier and created[3].key == created[0].key
    fresh = [c.key for c in created if c.fresh]
    assert [k.problem_id for k in fresh] == [earlier.problem_id + n for n in (1, 2, 3)]
    assert all(k.iteration_id == 1 for k in fresh)
    row = db.get_task(created[4].key)
    assert row is not None and (row.state, row.current_stage, row.user_input) == (
        "running",
        "ML_MODEL_METADATA",
        b"c",
    )
    assert db.find_submission("k-a") == created[0].key and db.find_submission("k-c") == created[4].key
    assert db.submit_problem(b"next").key.problem_id == earlier.problem_id + 4  # the counter moved by 3


def test_record_progress_moves_running_tasks_only(db: TaskDB) -> None:
    running = db.create_problem(b"u", state="running", current_stage="ML_MODEL_METADATA")
    done = db.create_problem(b"u", state="running", current_stage="ML_MODEL_METADATA")
    assert db.set_state(done, "succeeded", current_stage="CARBON_FOOTPRINT")
    before = db.get_task(running)
    db.record_progress({running: "HW_CONSTRAINTS", done: "ML_MODEL"})
    moved, kept = db.get_task(running), db.get_task(done)
    assert before is not None and moved is not None and kept is not None
    assert (moved.state, moved.current_stage) == ("running", "HW_CONSTRAINTS")
    assert moved.updated_at > before.updated_at  # the stage-deadline clock restarts
    assert (kept.state, kept.current_stage) == ("succeeded", "CARBON_FOOTPRINT")


def test_record_statuses_keeps_the_latest_status_per_replica_and_every_event(db: TaskDB) -> None:
    key, other = TaskId(problem_id=3, iteration_id=1), TaskId(problem_id=3, iteration_id=2)
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    updates = [
        StatusUpdate("ML_MODEL", "r1", 3, 1, key, "", t0, True),
        StatusUpdate("ML_MODEL", "r2", 2, 0, None, "", t0, False),
        StatusUpdate("ML_MODEL", "r1", 2, 2, key, "", t0 + timedelta(seconds=1), True),
        StatusUpdate("HW_RESOURCES", "r1", 3, 1, other, "", t0 + timedelta(seconds=2), True),
        StatusUpdate("ML_MODEL", "r1", 2, 0, None, "", t0 + timedelta(seconds=3), False),  # heartbeat
        StatusUpdate("HW_RESOURCES", "r1", 4, 3, other, "oom", t0 + timedelta(seconds=4), True),
    ]
    db.record_statuses(updates)
    rows = {(r.node_name, r.replica_id): r for r in list_node_status(db)}
    assert set(rows) == {("ML_MODEL", "r1"), ("ML_MODEL", "r2"), ("HW_RESOURCES", "r1")}
    r1 = rows[("ML_MODEL", "r1")]
    assert (r1.status, r1.task_status, r1.task, r1.last_seen) == (2, 0, None, t0 + timedelta(seconds=3))
    hw = rows[("HW_RESOURCES", "r1")]
    assert (hw.status, hw.error_description, hw.task) == (4, "oom", other)
    assert [(e.node_name, e.task_status, e.at) for e in list_task_events(db, key)] == [
        ("ML_MODEL", 1, t0),
        ("ML_MODEL", 2, t0 + timedelta(seconds=1)),
    ]
    assert [(e.task_status, e.error_description) for e in list_task_events(db, other)] == [
        (1, ""),
        (3, "oom"),
    ]
    db.record_statuses([])  # nothing to do
    db.record_statuses([StatusUpdate("ML_MODEL", "r2", 3, 1, None, "", t0, False)])  # no event rows
    assert {(r.replica_id, r.status) for r in list_node_status(db, "ML_MODEL")} == {("r1", 2), ("r2", 3)}


def test_writers_from_many_threads_all_commit(db: TaskDB) -> None:
    """Outputs, statuses and new tasks written together from threads (on a SQLite file they
    queue on the in-process write lock): every write lands once."""
    keys = [db.create_problem(b"u", state="running") for _ in range(8)]
    kinds = ["ml_model_metadata", "app_requirements", "hw_constraints", "ml_model", "hw_resources"]

    def work(index: int) -> list[bool]:
        key = keys[index]
        done = []
        for kind in kinds:
            done.append(db.store_stage_output(key, kind, b"r", None, state="running", keep=KEPT).fresh)
            db.record_statuses([StatusUpdate("N", f"r{index}", 3, 1, key, "", datetime.now(UTC), True)])
        done.append(db.create_problem(b"v").problem_id > 0)
        return done

    results = _run_concurrently(8, work)
    assert results == [True] * (8 * (len(kinds) + 1))
    assert all(count_outputs(db, k) == len(kinds) for k in keys)
    assert all(len(list_task_events(db, k)) == len(kinds) for k in keys)
    assert len(list_node_status(db, "N")) == 8
    assert len({k.problem_id for k in keys}) == 8 and db.count_by_state() == {"running": 8, "queued": 8}
