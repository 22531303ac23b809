"""Part 3a: the six-stage chain as a Celery ``chain`` on the same broker (idiomatic Celery).

``chain(s1.s(payload), s2.s(), ..., s6.s())``: each stage task returns the payload of the next hop
(our encoded message sizes), stage 6's return value is the chain's result. One queue per stage
(durable, persistent messages), routed with ``task_routes``; the worker is one
``celery worker -P prefork -c 6`` process consuming the six queues (six child processes, as our six
stage processes). Result backend ``rpc://`` (results come back as AMQP messages to the caller;
stages 1-5 ``ignore_result``). Two variants:

- ``reliable`` (the main row): ``task_acks_late`` (ack after the task ran, like ours) and publisher
  confirms (``confirm_publish``), the guarantees our pipeline gives;
- ``defaults``: Celery's defaults (ack before running, no publisher confirms).

The worker process is ``python -m celery -A sustainml.bench.celery_chain worker ...``; it reads
``SUSTAINML_BENCH_PREFIX``, ``SUSTAINML_BENCH_BROKER``, ``SUSTAINML_BENCH_SIZES`` and
``SUSTAINML_BENCH_RELIABLE``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Celery, chain

from sustainml.bench.common import WARMUP_TASKS, BenchError, Children, SystemResult, child_env, unique_name

STAGES = 6
CONCURRENCY = 6
PREFIX_ENV = "SUSTAINML_BENCH_PREFIX"


def queue_names(prefix: str) -> list[str]:
    return [f"{prefix}.s{i}" for i in range(1, STAGES + 1)]


def make_app(url: str, prefix: str, sizes: list[int], reliable: bool) -> Any:
    """The Celery app of one run: six stage tasks, each routed to its own queue."""
    app = Celery(prefix, broker=url.replace("amqp://", "pyamqp://", 1), backend="rpc://")
    names = queue_names(prefix)
    app.conf.update(
        task_routes={f"bench.s{i}": {"queue": names[i - 1]} for i in range(1, STAGES + 1)},
        task_default_queue=names[0],
        task_acks_late=reliable,
        broker_transport_options={"confirm_publish": True} if reliable else {},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        event_exchange=f"{prefix}.ev",
        control_exchange=f"{prefix}.ctl",
        broker_connection_retry_on_startup=True,
    )

    for i in range(1, STAGES + 1):
        out = "x" * sizes[i]

        def stage(payload: str, _out: str = out) -> str:
            return _out  # zero-cost: the next hop's payload

        app.task(name=f"bench.s{i}", ignore_result=i < STAGES, shared=False)(stage)
    return app


def _app_from_env() -> Any:
    if PREFIX_ENV not in os.environ:
        return None
    return make_app(
        os.environ["SUSTAINML_BENCH_BROKER"],
        os.environ[PREFIX_ENV],
        [int(s) for s in os.environ["SUSTAINML_BENCH_SIZES"].split(",")],
        os.environ.get("SUSTAINML_BENCH_RELIABLE", "1") == "1",
    )


app = _app_from_env()  # what `celery -A sustainml.bench.celery_chain worker` loads


def run(
    url: str, tasks: int, latency_tasks: int, sizes: list[int], log_dir: Path, *, reliable: bool
) -> SystemResult:
    from sustainml.bench.barepika import _wait_consumers, delete

    prefix = unique_name("bench-celery")
    names = queue_names(prefix)
    variant = "acks_late + publisher confirms" if reliable else "defaults (early ack, no confirms)"
    res = SystemResult(
        name="Celery" if reliable else "Celery (defaults)",
        setup=f"chain of 6 tasks, 1 worker -P prefork -c {CONCURRENCY}, rpc:// results; {variant}",
    )
    res.extra["queues"] = names
    client_app = make_app(url, prefix, sizes, reliable)
    env = child_env(
        SUSTAINML_BENCH_PREFIX=prefix,
        SUSTAINML_BENCH_BROKER=url,
        SUSTAINML_BENCH_SIZES=",".join(str(s) for s in sizes),
        SUSTAINML_BENCH_RELIABLE="1" if reliable else "0",
    )
    children = Children(log_dir)
    try:
        children.spawn(
            "celery-worker",
            [
                "-m", "celery", "-A", "sustainml.bench.celery_chain", "worker",
                "-P", "prefork", "-c", str(CONCURRENCY), "-Q", ",".join(names),
                "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING",
            ],
            env,
        )  # fmt: skip
        _wait_consumers(url, names, children, timeout=120)

        def one_chain() -> Any:
            sigs = [client_app.signature("bench.s1", args=("x" * sizes[0],))]
            sigs += [client_app.signature(f"bench.s{i}") for i in range(2, STAGES + 1)]
            return chain(*sigs).apply_async()

        samples: list[float] = []
        for i in range(latency_tasks + WARMUP_TASKS):
            start = time.perf_counter()
            result = one_chain().get(timeout=60)
            if i >= WARMUP_TASKS:
                samples.append(time.perf_counter() - start)
            if len(result) != sizes[STAGES]:
                raise BenchError("Celery chain returned an unexpected result")
        res.set_latencies(samples)
        start = time.perf_counter()
        pending = [one_chain() for _ in range(tasks)]
        for r in pending:
            r.get(timeout=600)
        res.throughput = tasks / (time.perf_counter() - start)
        res.tasks = tasks
    finally:
        children.stop()
        client_app.close()
        delete(url, names)
        _delete_exchanges(url, [*names, f"{prefix}.ev", f"{prefix}.ctl"])
    return res


def _delete_exchanges(url: str, names: list[str]) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        for name in names:
            ch.exchange_delete(name)  # RabbitMQ answers delete-ok for a missing exchange too
    finally:
        conn.close()
