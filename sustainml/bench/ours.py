"""Part 1: our six-stage pipeline, each component in its own OS process, on the real broker.

The orchestrator is ``sustainml orchestrator`` (SQLite TaskDB in a temporary directory); each of the
six stages is one replica of a bench worker (``python -m sustainml.bench.ours NODE``): the real node
runtime (``sustainml.workers.nodes``) with a zero-cost task callback, default settings
(``SUSTAINML_CONCURRENCY`` 2 handler threads, ``SUSTAINML_PREFETCH`` 8), persistent messages,
publisher confirms, ack after the output is confirmed, status events and heartbeats, exactly as a
deployment runs. A stage can instead run the shipped logic (``sustainml worker NODE``, used by the
scaling part) or replay recorded outputs (``SUSTAINML_BENCH_TEMPLATES``), so the CPU-bound stage
sees realistic inputs without the cost of the stages before it.

Submissions go through the public ``Client`` (RPC to the orchestrator, which allocates the id,
stores the input and publishes it). Latency is ``Client.submit(watch=True)`` + ``Client.wait``
(the result fetched from the TaskDB); throughput submits every task from one thread with
``Client.submit_many`` (up to ``SUBMIT_WINDOW`` requests in flight, fewer while the orchestrator
lags; replies matched by correlation id), and its completions are the orchestrator's terminal
task events, seen on a queue bound to the tasks exchange.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sustainml.bench.common import (
    WARMUP_TASKS,
    BenchError,
    Children,
    SystemResult,
    child_env,
    unique_name,
)
from sustainml.config import Settings
from sustainml.topology import PIPELINE, Topology, delete_all, resolve_stage

log = logging.getLogger(__name__)

TEMPLATES_ENV = "SUSTAINML_BENCH_TEMPLATES"
SHIPPED_ENV = "SUSTAINML_BENCH_SHIPPED"  # stage kinds a bench worker runs with the shipped logic
TERMINAL = ("succeeded", "failed", "cancelled")


# -- the worker process ----------------------------------------------------------------------------
def _zero_cost(*_args: Any) -> None:
    """A stage callback that does nothing: the output record stays empty."""


def _replay_callback(records: list[Any]) -> Callable[..., None]:
    """A callback that fills the output with a recorded one (round-robin by problem id)."""

    def callback(*args: Any) -> None:
        output = args[-1]
        template = records[(output.task_id.problem_id if output.task_id else 0) % len(records)]
        for name in type(output).model_fields:
            if name != "task_id":
                setattr(output, name, getattr(template, name))

    return callback


def load_templates(path: str) -> dict[str, list[Any]]:
    import msgpack

    from sustainml.messages import RECORD_TYPES, from_wire

    raw = msgpack.unpackb(Path(path).read_bytes(), raw=False)
    return {kind: [from_wire(RECORD_TYPES[kind], r) for r in recs] for kind, recs in raw.items()}


def worker_main(node: str) -> None:
    """One bench replica of ``node``: zero-cost, or replaying ``SUSTAINML_BENCH_TEMPLATES``."""
    import os

    from sustainml.workers.nodes import NODE_CLASSES

    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stage = resolve_stage(node)
    callback: Callable[..., None] = _zero_cost
    path = os.environ.get(TEMPLATES_ENV)
    if stage.kind in os.environ.get(SHIPPED_ENV, "").split(","):
        callback = _shipped_without_memo(stage.kind)
    elif path:
        records = load_templates(path).get(stage.kind)
        if records:
            callback = _replay_callback(records)
    NODE_CLASSES[stage.node](callback=callback, settings=settings).spin()


def _shipped_without_memo(kind: str) -> Callable[..., None]:
    """The shipped logic of ``kind``, with its per-process analysis memo emptied before every task,
    so every task pays the full CPU cost whichever replica gets it (replicas would otherwise see
    different memo hit rates and scaling figures would measure the cache)."""
    import importlib

    logic = importlib.import_module(f"sustainml.workers.logic.{kind}")
    warm_up = getattr(logic, "warm_up", None)
    if callable(warm_up):
        warm_up()
    memo = getattr(logic, "_analysis_memo", None)
    lock = getattr(logic, "_analysis_lock", None)
    task_callback: Callable[..., None] = logic.task_callback

    def callback(*args: Any) -> None:
        if memo is not None and lock is not None:
            with lock:
                memo.clear()
        task_callback(*args)

    return callback


# -- a deployment of processes ---------------------------------------------------------------------
class ProcessDeployment:
    """The orchestrator and the six stages as child processes in a namespace of their own.

    ``shipped`` maps a node to its replica count running the shipped logic (``sustainml worker``);
    every other stage runs ``replicas`` (default 1) zero-cost, replaying or shipped-without-memo
    bench workers (``env`` may set ``SUSTAINML_BENCH_SHIPPED``)."""

    def __init__(
        self,
        url: str,
        *,
        shipped: dict[str, int] | None = None,
        replicas: dict[str, int] | None = None,
        templates: Path | None = None,
        bench_nodes: bool = True,
        env: dict[str, str] | None = None,
    ) -> None:
        self.namespace = unique_name("bench")
        self.tmp = tempfile.TemporaryDirectory(prefix="sustainml-bench-")
        self.dir = Path(self.tmp.name)
        self.settings = Settings.from_env().with_overrides(
            broker_url=url, namespace=self.namespace, data_dir=self.dir
        )
        self.shipped = {resolve_stage(k).node: v for k, v in (shipped or {}).items()}
        self.replicas = {resolve_stage(k).node: v for k, v in (replicas or {}).items()}
        self.templates = templates
        self.bench_nodes = bench_nodes
        self.extra_env = env or {}
        self.children = Children(self.dir)
        self.orchestrator_pid = 0
        self.worker_pids: dict[str, list[int]] = {}

    def env(self) -> dict[str, str]:
        extra = {
            "SUSTAINML_BROKER_URL": self.settings.broker_url,
            "SUSTAINML_NAMESPACE": self.namespace,
            "SUSTAINML_DB_URL": f"sqlite:///{self.dir / 'taskdb.sqlite3'}",
            "SUSTAINML_DATA_DIR": str(self.dir),  # one signing key for the whole deployment
            "SUSTAINML_LOG_LEVEL": "WARNING",
            **self.extra_env,
        }
        if self.templates is not None:
            extra[TEMPLATES_ENV] = str(self.templates)
        return child_env(**extra)

    def start(self, ready_timeout: float = 120.0) -> ProcessDeployment:
        env = self.env()
        orch = self.children.spawn("orchestrator", ["-m", "sustainml.cli", "orchestrator"], env)
        self.orchestrator_pid = orch.pid
        for stage in PIPELINE:
            replicas = self.shipped.get(stage.node)
            pids: list[int] = []
            if replicas:
                for i in range(replicas):
                    p = self.children.spawn(
                        f"{stage.kind}-{i + 1}", ["-m", "sustainml.cli", "worker", stage.kind], env
                    )
                    pids.append(p.pid)
            elif self.bench_nodes:
                for i in range(self.replicas.get(stage.node, 1)):
                    p = self.children.spawn(
                        f"bench-{stage.kind}-{i + 1}", ["-m", "sustainml.bench.ours", stage.kind], env
                    )
                    pids.append(p.pid)
            self.worker_pids[stage.node] = pids
        self.wait_ready(ready_timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        from sustainml.orchestrator.client import Client, OrchestratorError

        expected = {node: len(pids) for node, pids in self.worker_pids.items() if pids}
        deadline = time.monotonic() + timeout
        while True:
            self.children.check_alive()
            try:
                with Client(self.settings.with_overrides(rpc_timeout=2.0)) as client:
                    status = client.status()
                counts: dict[str, int] = {}
                for r in status["replicas"]:
                    if r["status"] in (2, 3):  # IDLE or RUNNING: consuming
                        counts[r["node_name"]] = counts.get(r["node_name"], 0) + 1
                if all(counts.get(n, 0) >= c for n, c in expected.items()):
                    return
            except (OrchestratorError, BenchError) as exc:
                log.debug("deployment not ready yet: %s", exc)
            except Exception as exc:  # the broker objects (e.g. the orchestrator queue not declared yet)
                log.debug("deployment not ready yet: %r", exc)
            if time.monotonic() > deadline:
                raise BenchError(f"deployment {self.namespace} not ready after {timeout:g} s")
            time.sleep(0.5)

    def stop(self) -> None:
        from sustainml.transport.amqp import AmqpTransport

        try:
            self.children.stop()
        finally:
            try:
                with AmqpTransport(self.settings.broker_url, name="bench-cleanup") as t:
                    delete_all(t, Topology(self.namespace))
            finally:
                self.tmp.cleanup()

    def __enter__(self) -> ProcessDeployment:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TaskEvents:
    """Terminal task events of a namespace, as the orchestrator announces them (time of arrival)."""

    def __init__(self, settings: Settings) -> None:
        from sustainml.transport import amqp_transport
        from sustainml.transport.base import Binding

        self.topology = Topology.of(settings)
        self.transport = amqp_transport(settings, "bench-events")
        self.transport.connect()
        spec = self.topology.private_queue_spec(
            "bench-events", unique_name("ev"), (Binding(self.topology.task_exchange, "#"),)
        )
        self.queue = spec.name
        self.transport.declare_queue(spec)
        self.done: dict[str, tuple[float, str]] = {}
        self.cv = threading.Condition()
        self._tag = self.transport.consume(self.queue, self._on_event, prefetch=512, concurrency=1)

    def _on_event(self, delivery: Any) -> None:
        from sustainml.orchestrator.protocol import unpack

        delivery.ack()
        now = time.perf_counter()
        ev = unpack(delivery.message.body)
        state = str(ev.get("state"))
        if state in TERMINAL:
            tid = ev.get("task_id") or {}
            key = f"{tid.get('problem_id')}.{tid.get('iteration_id')}"
            with self.cv:
                self.done.setdefault(key, (now, state))
                self.cv.notify_all()

    def wait_for(self, keys: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cv:
            while not all(k in self.done for k in keys):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = sum(1 for k in keys if k not in self.done)
                    raise BenchError(f"{missing} of {len(keys)} tasks not finished after {timeout:g} s")
                self.cv.wait(min(remaining, 0.5))

    def close(self) -> None:
        try:
            self.transport.cancel(self._tag)
            self.transport.delete_queue(self.queue)
        finally:
            self.transport.close()


def _user_input(i: int) -> Any:
    from sustainml.messages import UserInput

    return UserInput(
        problem_short_description=f"detect defects in photos of welded seams #{i}", modality="image"
    )


def measure_latency(settings: Settings, n: int, *, warmup: int = WARMUP_TASKS) -> tuple[list[float], int]:
    """``n`` single tasks one at a time: (submit -> result in hand seconds, failed count)."""
    from sustainml.orchestrator.client import Client

    samples: list[float] = []
    failed = 0
    with Client(settings) as client:
        for i in range(n + warmup):
            start = time.perf_counter()
            task_id = client.submit(_user_input(i), watch=True)
            res = client.wait(task_id, 60)
            elapsed = time.perf_counter() - start
            if i >= warmup:
                samples.append(elapsed)
                failed += res.state != "succeeded"
    return samples, failed


@dataclass(frozen=True)
class Throughput:
    tasks_per_s: float  # completed, from the first submission to the last terminal event
    submissions_per_s: float  # from the first submission until the last id was in hand
    failed: int


def measure_throughput(settings: Settings, n: int, *, timeout: float = 600.0) -> tuple[float, int]:
    """``submit_and_follow``'s (completed tasks/s, failed count)."""
    measured = submit_and_follow(settings, n, timeout=timeout)
    return measured.tasks_per_s, measured.failed


def submit_and_follow(settings: Settings, n: int, *, timeout: float = 600.0) -> Throughput:
    """``n`` zero-cost tasks through ``follow``."""
    return follow(settings, [_user_input(i) for i in range(n)], timeout=timeout)


def follow(settings: Settings, inputs: Sequence[Any], *, timeout: float = 600.0) -> Throughput:
    """``inputs`` submitted from one thread by one ``submit_many`` (its default window of
    ``orchestrator.client.SUBMIT_WINDOW`` requests in flight), followed to their terminal events."""
    from sustainml.messages import TaskId
    from sustainml.orchestrator.client import Client

    n = len(inputs)
    events = TaskEvents(settings)
    try:
        with Client(settings) as client:
            start = time.perf_counter()
            outcomes = client.submit_many(list(inputs))
            submitted = time.perf_counter() - start
            refused = [o for o in outcomes if not isinstance(o, TaskId)]
            if refused:
                raise BenchError(f"{len(refused)} of {n} submissions refused, e.g. {refused[0]}")
            ids = [o.key for o in outcomes if isinstance(o, TaskId)]
            events.wait_for(ids, timeout)
        last = max(events.done[k][0] for k in ids)
        failed = sum(1 for k in ids if events.done[k][1] != "succeeded")
        return Throughput(n / (last - start), n / submitted, failed)
    finally:
        events.close()


def run(url: str, tasks: int, latency_tasks: int) -> SystemResult:
    from sustainml.bench.common import cpu_seconds, vm_hwm_mb, vm_rss_mb
    from sustainml.orchestrator.client import SUBMIT_WINDOW

    res = SystemResult(
        name="sustainml",
        setup=(
            "orchestrator + 6 worker processes (1 replica each, 2 handler threads, prefetch 8), "
            "zero-cost callbacks; persistent, confirmed, ack after confirm; SQLite TaskDB; "
            f"throughput submitted by one thread through Client.submit_many (up to {SUBMIT_WINDOW} in flight)"
        ),
    )
    with ProcessDeployment(url) as dep:
        samples, failed_lat = measure_latency(dep.settings, latency_tasks)
        res.set_latencies(samples)
        pids = {"orchestrator": dep.orchestrator_pid}
        pids.update({node: p[0] for node, p in dep.worker_pids.items()})
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        measured = submit_and_follow(dep.settings, tasks)
        res.throughput, failed_tp = measured.tasks_per_s, measured.failed
        res.extra["submissions_per_s"] = round(measured.submissions_per_s, 1)
        wall = time.perf_counter() - started
        # Share of one core each process used during the throughput run: shows what bounds it.
        res.extra["cpu_percent_during_throughput"] = {
            name: round(100 * (cpu_seconds(pid) - cpu_before[name]) / wall) for name, pid in pids.items()
        }
        res.tasks = tasks
        res.failed = failed_lat + failed_tp
        res.extra["orchestrator_rss_mb"] = round(vm_rss_mb(dep.orchestrator_pid), 1)
        res.extra["orchestrator_peak_rss_mb"] = round(vm_hwm_mb(dep.orchestrator_pid), 1)
        first = dep.worker_pids[PIPELINE[0].node][0]
        res.extra["bench_worker_rss_mb"] = round(vm_rss_mb(first), 1)
        res.extra["queues"] = [q.name for q in Topology(dep.namespace).durable_queues()]
    return res


if __name__ == "__main__":
    worker_main(sys.argv[1])
