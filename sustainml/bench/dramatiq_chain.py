"""Part 3b: the six-stage chain as Dramatiq actors on the same broker (idiomatic Dramatiq).

Six actors ``s1``..``s6`` on queues of their own (``RabbitmqBroker``: durable queues, persistent
messages, ack after the actor ran); each sends the next one a payload of our encoded message size
for that hop, ``s6`` sends a ``done`` message to a queue no worker consumes, read by the submitter
with pika (Dramatiq has no result backend on RabbitMQ). One ``dramatiq --processes 6 --threads 2``
worker (as our six stage processes with two handler threads). Variants: ``reliable``
(``confirm_delivery=True``: publisher confirms, the main row) and ``defaults`` (no confirms).

The worker loads this module (``python -m dramatiq sustainml.bench.dramatiq_chain``) with
``SUSTAINML_BENCH_PREFIX``, ``SUSTAINML_BENCH_BROKER``, ``SUSTAINML_BENCH_SIZES`` and
``SUSTAINML_BENCH_RELIABLE`` set.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from sustainml.bench.common import WARMUP_TASKS, BenchError, Children, SystemResult, child_env, unique_name

STAGES = 6
PROCESSES = 6
THREADS = 2
PREFIX_ENV = "SUSTAINML_BENCH_PREFIX"


def queue_prefix(prefix: str) -> str:
    return prefix.replace("-", "_")  # Dramatiq queue names: letters, digits, '_', '.', '-' (no leading '-')


def stage_queues(prefix: str) -> list[str]:
    return [f"{queue_prefix(prefix)}_s{i}" for i in range(1, STAGES + 1)]


def done_queue(prefix: str) -> str:
    return f"{queue_prefix(prefix)}_done"


def _define_actors(prefix: str, sizes: list[int]) -> None:
    """Register s1..s6 and done on the current broker (worker side)."""
    queues = stage_queues(prefix)

    def finished(task_id: str) -> None:
        """Never runs: no worker consumes this queue, the submitter reads it."""

    done: Any = dramatiq.actor(actor_name="done", queue_name=done_queue(prefix))(finished)
    nxt: Any = done
    for i in range(STAGES, 0, -1):
        payload = "x" * sizes[i]

        def stage(task_id: str, body: str, _next: Any = nxt, _payload: str = payload) -> None:
            if _next is done:
                _next.send(task_id)
            else:
                _next.send(task_id, _payload)

        nxt = dramatiq.actor(actor_name=f"s{i}", queue_name=queues[i - 1], max_retries=0)(stage)


if PREFIX_ENV in os.environ:  # the worker process
    dramatiq.set_broker(
        RabbitmqBroker(
            url=os.environ["SUSTAINML_BENCH_BROKER"],
            confirm_delivery=os.environ.get("SUSTAINML_BENCH_RELIABLE", "1") == "1",
        )
    )
    _define_actors(os.environ[PREFIX_ENV], [int(s) for s in os.environ["SUSTAINML_BENCH_SIZES"].split(",")])


def run(
    url: str, tasks: int, latency_tasks: int, sizes: list[int], log_dir: Path, *, reliable: bool
) -> SystemResult:
    from sustainml.bench.barepika import _wait_consumers, delete

    prefix = unique_name("bench-dramatiq")
    queues = stage_queues(prefix)
    variant = "publisher confirms" if reliable else "defaults (no confirms)"
    res = SystemResult(
        name="Dramatiq" if reliable else "Dramatiq (defaults)",
        setup=f"6 actors, 1 worker --processes {PROCESSES} --threads {THREADS}; ack after run; {variant}",
    )
    res.extra["queues"] = [n for q in [*queues, done_queue(prefix)] for n in (q, f"{q}.DQ", f"{q}.XQ")]
    broker = RabbitmqBroker(url=url, confirm_delivery=reliable)
    for q in [*queues, done_queue(prefix)]:
        broker.declare_queue(q, ensure=True)
    env = child_env(
        SUSTAINML_BENCH_PREFIX=prefix,
        SUSTAINML_BENCH_BROKER=url,
        SUSTAINML_BENCH_SIZES=",".join(str(s) for s in sizes),
        SUSTAINML_BENCH_RELIABLE="1" if reliable else "0",
    )
    children = Children(log_dir)
    sub: _DoneCollector | None = None
    try:
        children.spawn(
            "dramatiq-worker",
            [
                "-m", "dramatiq", "sustainml.bench.dramatiq_chain",
                "--processes", str(PROCESSES), "--threads", str(THREADS), "--queues", *queues,
            ],
            env,
        )  # fmt: skip
        _wait_consumers(url, queues, children, timeout=120)
        # The submitter's pika connection only consumes the done queue; tasks go in through Dramatiq.
        sub = _DoneCollector(url, done_queue(prefix))

        def send(task_id: str) -> None:
            msg: dramatiq.Message[Any] = dramatiq.Message(
                queue_name=queues[0], actor_name="s1", args=(task_id, "x" * sizes[0]), kwargs={}, options={}
            )
            broker.enqueue(msg)

        samples: list[float] = []
        for i in range(latency_tasks + WARMUP_TASKS):
            tid = f"lat-{i}"
            start = time.perf_counter()
            send(tid)
            sub.wait_for([tid], 60)
            if i >= WARMUP_TASKS:
                samples.append(sub.done[tid] - start)
        res.set_latencies(samples)
        ids = [f"tp-{i}" for i in range(tasks)]
        start = time.perf_counter()
        for tid in ids:
            send(tid)
        sub.wait_for(ids, 600)
        res.throughput = tasks / (max(sub.done[t] for t in ids) - start)
        res.tasks = tasks
        if sub.error is not None:
            raise BenchError(f"Dramatiq: {sub.error}")
    finally:
        if sub is not None:
            sub.close()
        children.stop()
        broker.close()
        names = [*queues, done_queue(prefix)]
        delete(url, [n for q in names for n in (q, f"{q}.DQ", f"{q}.XQ")])
    return res


class _DoneCollector:
    """Records when each task's ``done`` message (a Dramatiq JSON message) arrives."""

    def __init__(self, url: str, queue: str) -> None:
        import json
        import threading

        import pika

        self.done: dict[str, float] = {}
        self.error: BaseException | None = None
        self.cv = threading.Condition()
        self._stop = threading.Event()
        self._conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = self._conn.channel()
        ch.basic_qos(prefetch_count=1000)

        def on_done(c: Any, method: Any, _props: Any, body: bytes) -> None:
            now = time.perf_counter()
            c.basic_ack(method.delivery_tag)
            task_id = str(json.loads(body)["args"][0])
            with self.cv:
                self.done[task_id] = now
                self.cv.notify_all()

        ch.basic_consume(queue, on_done)

        def loop() -> None:
            try:
                while not self._stop.is_set():
                    self._conn.process_data_events(time_limit=0.05)
            except Exception as exc:
                self.error = exc
                with self.cv:
                    self.cv.notify_all()

        self._thread = threading.Thread(target=loop, name="dramatiq-done", daemon=True)
        self._thread.start()

    def wait_for(self, ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cv:
            while not all(i in self.done for i in ids):
                if self.error is not None:
                    raise BenchError(f"Dramatiq done collector failed: {self.error!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError(f"Dramatiq: {sum(i not in self.done for i in ids)} tasks not done")
                self.cv.wait(min(remaining, 0.5))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()
