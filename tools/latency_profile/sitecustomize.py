"""Timeline tracer for ``tools/latency_profile/run.py`` (not part of the package).

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; with ``SUSTAINML_TRACE_DIR`` set,
this one wraps the transport (publish until its confirm, delivery on the I/O thread, handler,
settle), the node runtime, the orchestrator, the TaskDB and the client, and writes one
``<pid>.tsv`` of ``start end pid thread event`` lines (wall clock) when the process exits.
It patches private methods: it is a measuring tool, kept in step with the code by hand.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

_events: list[tuple[float, float, str, str]] = []
_lock = threading.Lock()


def record(event: str, start: float, end: float) -> None:
    with _lock:
        _events.append((start, end, threading.current_thread().name, event))


def flush() -> None:
    directory = os.environ.get("SUSTAINML_TRACE_DIR")
    if not directory or not os.path.isdir(directory):  # the driver already collected and cleaned up
        return
    with _lock, open(os.path.join(directory, f"{os.getpid()}.tsv"), "a") as f:
        for start, end, thread, event in _events:
            f.write(f"{start:.6f}\t{end:.6f}\t{os.getpid()}\t{thread}\t{event}\n")
        _events.clear()


def _timed(owner: Any, name: str, label: str) -> None:
    if not hasattr(owner, name):
        return
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.time()
        try:
            return original(*args, **kwargs)
        finally:
            record(label, start, time.time())

    setattr(owner, name, wrapper)


def _tail(name: str) -> str:
    return name.split(".")[-1]


def install() -> None:
    from sustainml import rpc
    from sustainml.orchestrator import (
        client,
        core,
        handlers,
        outcomes,
        progress,
        submissions,
        taskdb,
        watchers,
    )
    from sustainml.transport.amqp import AmqpTransport
    from sustainml.transport.amqp.consumer import Consumers
    from sustainml.transport.amqp.declarer import Declarer
    from sustainml.workers.runtime import intake, output
    from sustainml.workers.runtime.node import Node

    publish = AmqpTransport.publish

    def traced_publish(self: AmqpTransport, exchange: str, routing_key: str, message: Any, **kw: Any) -> Any:
        start = time.time()
        fut = publish(self, exchange, routing_key, message, **kw)
        mode = "P" if message.persistent else "T"
        label = (
            f"publish[{mode}] {message.type or ''} -> {_tail(exchange) or _tail(routing_key)} (until confirm)"
        )
        fut.add_done_callback(lambda _f: record(label, start, time.time()))
        return fut

    on_message = Consumers._on_message

    def traced_on_message(
        self: Consumers, c: Any, generation: int, ch: Any, method: Any, props: Any, body: bytes
    ) -> None:
        now = time.time()
        record(f"deliver {_tail(c.queue)} [{props.type}]", now, now)
        on_message(self, c, generation, ch, method, props, body)

    run_handler = Consumers._run_handler

    def traced_run_handler(self: Consumers, c: Any, d: Any) -> None:
        start = time.time()
        try:
            run_handler(self, c, d)
        finally:
            record(f"handler {_tail(c.queue)} [{d.message.type}]", start, time.time())

    AmqpTransport.publish = traced_publish  # type: ignore[method-assign]
    Consumers._on_message = traced_on_message  # type: ignore[method-assign]
    Consumers._run_handler = traced_run_handler  # type: ignore[method-assign]
    _timed(Declarer, "_channel_op", "sync channel op (bind/unbind/declare...)")
    _timed(Node, "_run_task", "Node._run_task")
    _timed(intake, "decode_task", "worker decode_task")
    _timed(output, "encode_task", "worker encode_task")
    for name in ("submit", "_start_or_fail", "result"):
        _timed(core.Orchestrator, name, f"Orchestrator.{name}")
    _timed(submissions.Submissions, "run", "Submissions.run")
    _timed(outcomes.OutcomeWriter, "on_result", "OutcomeWriter.on_result")
    _timed(outcomes.OutcomeWriter, "_write", "OutcomeWriter._write")
    _timed(progress.Progress, "on_progress", "Progress.on_progress")
    _timed(handlers, "on_request", "orchestrator on_request")
    for name in ("add", "forget"):
        _timed(watchers.Watchers, name, f"Watchers.{name}")
    for name in (
        "submit_problems",
        "set_state",
        "get_task",
        "get_outputs",
        "record_statuses",
        "record_progress",
        "store_outcomes",
    ):
        _timed(taskdb.TaskDB, name, f"TaskDB.{name}")
    for name in ("submit", "wait", "result"):
        _timed(client.Client, name, f"Client.{name}")
    _timed(rpc.RpcClient, "call", "RpcClient.call")
    atexit.register(flush)


if os.environ.get("SUSTAINML_TRACE_DIR"):
    install()
