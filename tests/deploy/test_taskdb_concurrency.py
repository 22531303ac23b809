"""TaskDB on PostgreSQL under concurrent writers: what two (or more) orchestrator replicas do.

Mechanism under test (orchestrator/taskdb.py): every id is allocated by
``UPDATE counters SET value = value + 1 ... RETURNING value`` (problem ids) or
``UPDATE problems SET last_iteration = last_iteration + 1 ... RETURNING`` (iteration ids) inside
the transaction that inserts the task. PostgreSQL row-locks the updated row until commit; a
concurrent allocator waits, then re-reads the committed row (READ COMMITTED re-check) and adds one
to the new value. So no two transactions, in any process, get the same id, and a rolled-back
allocation releases its number (no gaps either, unlike a SEQUENCE). Stage outputs are inserted with
``ON CONFLICT DO NOTHING ... RETURNING``: of two orchestrators storing the same redelivered output,
exactly one sees it as fresh and applies the state change.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest

from sustainml.messages import TaskId
from sustainml.orchestrator.taskdb import TaskDB, TaskState
from tests.support.taskdb import count_outputs, create_iteration, next_problem_id

pytestmark = pytest.mark.postgres

REPLICA = Path(__file__).with_name("taskdb_replica.py")


def _load_replica() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_taskdb_replica", REPLICA)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


allocate: Callable[[TaskDB, int, int, int | None], list[tuple[int, int]]] = _load_replica().allocate
# (the same allocation loop the replica processes run)

THREADS = 12
PER_THREAD = 25


def _hammer(url: str, n_threads: int, per_thread: int, problem: int | None) -> list[tuple[int, int]]:
    """Allocate ids from many threads of one TaskDB (one orchestrator process)."""
    db = TaskDB(url)
    try:
        return allocate(db, n_threads, per_thread, problem)
    finally:
        db.close()


def test_threads_of_one_orchestrator_never_share_an_id(postgres_url: str) -> None:
    keys = _hammer(postgres_url, THREADS, PER_THREAD, None)
    problems = [p for p, _ in keys]
    assert len(set(problems)) == len(problems) == THREADS * PER_THREAD
    assert all(i == 1 for _, i in keys)
    # not required, but the row-lock counter gives a dense sequence: report it if that ever changes
    print("problem ids gap-free:", sorted(problems) == list(range(1, len(problems) + 1)))


def test_two_orchestrator_processes_never_allocate_the_same_id(postgres_url: str) -> None:
    with TaskDB(postgres_url) as db:
        shared = db.create_problem(b"\x80").problem_id  # both replicas add iterations to it
    threads, per_thread = THREADS // 2, PER_THREAD
    start_at = f"{time.time() + 3.0:.3f}"  # both processes are importing by then
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(REPLICA),
                postgres_url,
                str(shared),
                start_at,
                str(threads),
                str(per_thread),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    problems = [tuple(k) for r in results for k in r["problems"]]
    iterations = [tuple(k) for r in results for k in r["iterations"]]
    per_replica = threads * per_thread
    assert len(problems) == 2 * per_replica
    assert len(set(problems)) == len(problems), Counter(problems).most_common(3)
    assert {k[0] for k in iterations} == {shared}
    its = [i for _, i in iterations]
    assert len(set(its)) == len(its) == 2 * per_replica, Counter(its).most_common(3)
    assert min(its) == 2  # iteration 1 was created with the problem
    first = sorted(k[0] for k in results[0]["problems"])
    second = sorted(k[0] for k in results[1]["problems"])
    # the two replicas' ids interleave: they really raced on the same counter row
    assert first[0] < second[-1] and second[0] < first[-1], (first[:3], second[:3])
    with TaskDB(postgres_url) as db:
        assert db.latest_iteration(shared) == 1 + 2 * per_replica
        assert len(db.list_tasks(limit=10_000)) == 1 + 2 * per_replica + 2 * per_replica


def test_a_rolled_back_allocation_is_not_lost_or_reused(postgres_url: str) -> None:
    with TaskDB(postgres_url) as db:
        key = db.create_problem(b"\x80")
        with pytest.raises(ValueError):
            create_iteration(db, key.problem_id, b"\x80", 7)  # bad base: the transaction rolls back
        assert create_iteration(db, key.problem_id, b"\x80", 1) == TaskId(
            problem_id=key.problem_id, iteration_id=2
        )


def test_the_same_output_stored_by_two_orchestrators_is_applied_once(postgres_url: str) -> None:
    """A redelivered stage output reaching both replicas at the same moment: one wins."""
    dbs = [TaskDB(postgres_url), TaskDB(postgres_url)]
    try:
        keys = [dbs[0].create_problem(b"\x80") for _ in range(20)]
        barrier = threading.Barrier(8)

        def store(args: tuple[int, TaskId]) -> bool:
            i, key = args
            barrier.wait()
            return dbs[i % 2].store_stage_output(
                key, "ml_model", f"copy-{i}".encode(), f"{key}:ml_model", state=TaskState.RUNNING,
                current_stage="HW_RESOURCES",
            ).fresh  # fmt: skip

        for key in keys:
            with ThreadPoolExecutor(8) as pool:
                fresh = list(pool.map(store, [(i, key) for i in range(8)]))
            assert fresh.count(True) == 1, fresh
            assert count_outputs(dbs[1], key) == 1
            row = dbs[1].get_task(key)
            assert row is not None and row.state == TaskState.RUNNING and row.current_stage == "HW_RESOURCES"
    finally:
        for db in dbs:
            db.close()


def test_terminal_state_survives_a_late_output_from_the_other_replica(postgres_url: str) -> None:
    """Replica A stores the final output (succeeded); replica B then stores an earlier stage's
    output it received late: the task stays succeeded."""
    a, b = TaskDB(postgres_url), TaskDB(postgres_url)
    try:
        key = a.create_problem(b"\x80")
        assert a.store_stage_output(key, "carbon_footprint", b"x", "m1", state=TaskState.SUCCEEDED).fresh
        assert b.store_stage_output(
            key, "hw_resources", b"y", "m2", state=TaskState.RUNNING, current_stage="X"
        ).fresh
        row = b.get_task(key)
        assert row is not None and row.state == TaskState.SUCCEEDED
    finally:
        a.close()
        b.close()


def test_allocation_under_contention_is_fast_enough(postgres_url: str) -> None:
    with TaskDB(postgres_url) as db:
        t0 = time.perf_counter()
        _hammer(postgres_url, 8, 20, None)
        elapsed = time.perf_counter() - t0
        print(f"160 problems from 8 threads in {elapsed * 1000:.0f} ms ({elapsed / 160 * 1000:.2f} ms each)")
        assert next_problem_id(db) == 161
