"""Part 5: memory (RSS) of the shipped processes, and the TaskDB ingest rate.

- RSS (``VmRSS`` of /proc/<pid>/status) of each of the six shipped workers started with
  ``sustainml worker NODE`` (on this machine's graph cache and encoder export) and of
  ``sustainml orchestrator``, once idle (ready, no task yet), then
  the peak sampled every 50 ms while ``busy_tasks`` real tasks (shipped logic, catalogue models, no
  measured-latency run) flow through them;
- TaskDB ingest: the orchestrator's write path per task (the submission stored as running by
  ``submit_problems``, then the outcome with its six records by ``store_outcomes``), from one
  thread, on a SQLite file (WAL, synchronous=NORMAL, the default) and on the local PostgreSQL (a
  throwaway database), in stored records per second: once with the group commit a busy
  orchestrator makes (``INGEST_BATCH`` tasks per transaction), once a task per transaction (what
  a lone task costs).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sustainml.bench.common import BenchError, vm_rss_mb
from sustainml.bench.ours import ProcessDeployment, measure_throughput
from sustainml.topology import PIPELINE

POSTGRES_ADMIN_ENV = "SUSTAINML_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
#: Tasks per transaction in the batched ingest figure: about what the orchestrator's submission and
#: outcome writers gather per commit while hundreds of tasks are in flight.
INGEST_BATCH = 32


def worker_rss(url: str, busy_tasks: int) -> dict[str, Any]:
    """Idle and busy RSS (MB) of the six shipped workers and the orchestrator."""
    from sustainml.bench.shipped_logic import warm_caches

    shipped = {stage.kind: 1 for stage in PIPELINE}
    # This machine's graph cache and encoder export: the busy figures are a deployment's that has
    # run before, not a first task training the encoder.
    with ProcessDeployment(url, shipped=shipped, bench_nodes=False, env=warm_caches()) as dep:
        pids = {"orchestrator": dep.orchestrator_pid}
        for node, node_pids in dep.worker_pids.items():
            pids[node] = node_pids[0]
        time.sleep(1.0)  # settle after the readiness probe (heartbeats only from here on)
        idle = {name: round(vm_rss_mb(pid), 1) for name, pid in pids.items()}
        peak = dict(idle)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for name, pid in pids.items():
                    # A process that is exiting keeps its last sample.
                    with contextlib.suppress(OSError, BenchError):
                        peak[name] = max(peak[name], round(vm_rss_mb(pid), 1))
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
        sampler.start()
        try:
            rate, failed = measure_throughput(dep.settings, busy_tasks)
        finally:
            stop.set()
            sampler.join(5)
    return {
        "idle_mb": idle,
        "busy_peak_mb": peak,
        "busy_tasks": busy_tasks,
        "busy_rate": round(rate, 2),
        "busy_failed": failed,
    }


def _ingest(url: str, tasks: int) -> dict[str, float]:
    batched = _ingest_rate(url, tasks, INGEST_BATCH, "b")
    single = _ingest_rate(url, tasks, 1, "s")
    return {
        "tasks": tasks,
        "batch": INGEST_BATCH,
        "records_per_s": batched["records_per_s"],
        "tasks_per_s": batched["tasks_per_s"],
        "records_per_s_unbatched": single["records_per_s"],
    }


def _ingest_rate(url: str, tasks: int, batch: int, tag: str) -> dict[str, float]:
    from sustainml.messages.tasks import TaskState
    from sustainml.orchestrator.taskdb import Outcome, TaskDB

    db = TaskDB(url)
    try:
        blob = os.urandom(1500)  # about a stored stage output
        final = PIPELINE[-1]
        start = time.perf_counter()
        for first in range(0, tasks, batch):
            n = min(batch, tasks - first)
            created = db.submit_problems(
                [(blob[:600], None)] * n, state=TaskState.RUNNING, current_stage=PIPELINE[0].node
            )
            db.store_outcomes(
                [
                    Outcome(
                        task=c.key,
                        kind=final.kind,
                        records={stage.kind: blob for stage in PIPELINE},
                        message_id=f"{tag}.{c.key}",
                        state=TaskState.SUCCEEDED,
                        current_stage=final.node,
                    )
                    for c in created
                ]
            )
        elapsed = time.perf_counter() - start
    finally:
        db.close()
    records = tasks * (1 + len(PIPELINE))
    return {"records_per_s": round(records / elapsed, 1), "tasks_per_s": round(tasks / elapsed, 1)}


def taskdb_ingest(tasks: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sustainml-ingest-") as tmp:
        out["sqlite"] = _ingest(f"sqlite:///{Path(tmp) / 'taskdb.sqlite3'}", tasks)
    out["postgresql"] = _postgres_ingest(tasks)
    return out


def _postgres_ingest(tasks: int) -> dict[str, Any]:
    import sqlalchemy as sa

    admin_url = os.environ.get(POSTGRES_ADMIN_ENV, DEFAULT_POSTGRES_ADMIN)
    name = f"sustainml_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        return {"error": f"PostgreSQL not reachable at {admin_url.split('@')[-1]}: {type(exc).__name__}"}
    try:
        return _ingest(admin_url.rsplit("/", 1)[0] + f"/{name}", tasks)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(url: str, busy_tasks: int, ingest_tasks: int) -> dict[str, Any]:
    return {"rss": worker_rss(url, busy_tasks), "taskdb": taskdb_ingest(ingest_tasks)}
