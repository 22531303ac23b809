"""Part 2: the same six-stage chain with bare pika (no framework): the practical limit.

Six stage processes (``python -m sustainml.bench.barepika STAGE PREFIX URL SIZES``), one
single-threaded pika ``SelectConnection`` each, one confirm-mode channel with prefetch 64 that
consumes the stage's durable queue and publishes the next message (persistent, default exchange)
to the next stage's queue; a delivery is acked only once the publish it caused is confirmed
(``multiple`` acks, as confirms arrive in publish order). Stage 6 publishes to a ``done`` queue the
submitter consumes. Payloads have the sizes of our encoded messages at each hop. The submitter
publishes with pipelined confirms from its own I/O thread.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections import OrderedDict
from typing import Any

import pika
import pika.exceptions
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from sustainml.bench.common import WARMUP_TASKS, BenchError, Children, SystemResult, child_env, unique_name

PREFETCH = 64
STAGES = 6


def queue_names(prefix: str) -> list[str]:
    """s1..s6 then done."""
    return [f"{prefix}.s{i}" for i in range(1, STAGES + 1)] + [f"{prefix}.done"]


# -- a stage process -------------------------------------------------------------------------------
class Stage:
    def __init__(self, index: int, prefix: str, url: str, size: int) -> None:
        names = queue_names(prefix)
        self.queue = names[index - 1]
        self.next_queue = names[index]
        self.body = b"x" * size
        self.params = pika.URLParameters(url)
        self.channel: Channel | None = None
        self.seq = 0
        self.pending: OrderedDict[int, int] = OrderedDict()  # publish seq -> delivery tag
        self.conn = SelectConnection(self.params, on_open_callback=self._on_open)

    def _on_open(self, conn: SelectConnection) -> None:
        conn.channel(on_open_callback=self._on_channel)

    def _on_channel(self, ch: Channel) -> None:
        self.channel = ch
        ch.confirm_delivery(
            self._on_confirm, callback=lambda _f: ch.basic_qos(prefetch_count=PREFETCH, callback=self._on_qos)
        )

    def _on_qos(self, _frame: Any) -> None:
        assert self.channel is not None
        self.channel.basic_consume(self.queue, self._on_message, callback=self._on_consuming)

    def _on_consuming(self, _frame: Any) -> None:
        print("ready", flush=True)

    def _on_message(self, ch: Channel, method: Basic.Deliver, props: BasicProperties, _body: bytes) -> None:
        ch.basic_publish(
            "",
            self.next_queue,
            self.body,
            BasicProperties(
                delivery_mode=2, correlation_id=props.correlation_id, content_type="application/octet-stream"
            ),
        )
        self.seq += 1
        self.pending[self.seq] = int(method.delivery_tag or 0)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        assert self.channel is not None
        if isinstance(method, Basic.Nack):
            raise RuntimeError("broker nacked a publish")
        last_tag = 0
        tag = int(method.delivery_tag)
        while self.pending:
            seq = next(iter(self.pending))
            if seq > tag or (not method.multiple and seq != tag):
                break
            last_tag = self.pending.pop(seq)
        if last_tag:
            self.channel.basic_ack(last_tag, multiple=True)

    def run(self) -> None:
        self.conn.ioloop.start()


def stage_main(argv: list[str]) -> None:
    index, prefix, url, sizes = int(argv[0]), argv[1], argv[2], [int(s) for s in argv[3].split(",")]
    Stage(index, prefix, url, sizes[index]).run()


# -- the submitter ---------------------------------------------------------------------------------
class Submitter:
    """Publishes tasks to stage 1 (pipelined confirms) and records when each reaches ``done``."""

    def __init__(self, prefix: str, url: str, size: int) -> None:
        names = queue_names(prefix)
        self.first, self.done_queue = names[0], names[-1]
        self.body = b"x" * size
        self.ready = threading.Event()
        self.cv = threading.Condition()
        self.done: dict[str, float] = {}
        self.unconfirmed = 0
        self.error: BaseException | None = None
        self.channel: Channel | None = None
        self.conn = SelectConnection(
            pika.URLParameters(url), on_open_callback=self._on_open, on_open_error_callback=self._on_error
        )
        self.thread = threading.Thread(target=self.conn.ioloop.start, name="barepika-submitter", daemon=True)
        self.thread.start()
        if not self.ready.wait(15):
            raise BenchError(f"bare pika submitter could not connect: {self.error!r}")

    def _on_error(self, _conn: Any, exc: BaseException) -> None:
        self.error = exc

    def _on_open(self, conn: SelectConnection) -> None:
        conn.channel(on_open_callback=self._on_channel)

    def _on_channel(self, ch: Channel) -> None:
        self.channel = ch
        ch.confirm_delivery(
            self._on_confirm, callback=lambda _f: ch.basic_qos(prefetch_count=1000, callback=self._on_qos)
        )

    def _on_qos(self, _frame: Any) -> None:
        assert self.channel is not None
        self.channel.basic_consume(self.done_queue, self._on_done, callback=lambda _f: self.ready.set())

    def _on_confirm(self, frame: Any) -> None:
        if isinstance(frame.method, Basic.Nack):
            self.error = RuntimeError("broker nacked a submission")

    def _on_done(self, ch: Channel, method: Basic.Deliver, props: BasicProperties, _body: bytes) -> None:
        now = time.perf_counter()
        ch.basic_ack(int(method.delivery_tag or 0))
        with self.cv:
            self.done[str(props.correlation_id)] = now
            self.cv.notify_all()

    def submit(self, task_id: str) -> None:
        def publish() -> None:
            assert self.channel is not None
            self.channel.basic_publish(
                "", self.first, self.body, BasicProperties(delivery_mode=2, correlation_id=task_id)
            )

        self.conn.ioloop.add_callback_threadsafe(publish)

    def wait_for(self, ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cv:
            while not all(i in self.done for i in ids):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BenchError(f"bare pika: {sum(i not in self.done for i in ids)} tasks not done")
                self.cv.wait(min(remaining, 0.5))

    def close(self) -> None:
        self.conn.ioloop.add_callback_threadsafe(self.conn.close)
        self.conn.ioloop.add_callback_threadsafe(
            functools.partial(self.conn.ioloop.call_later, 0.5, self.conn.ioloop.stop)
        )
        self.thread.join(5)


def declare(url: str, names: list[str]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        for name in names:
            ch.queue_declare(name, durable=True)
    finally:
        conn.close()


def delete(url: str, names: list[str]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        for name in names:
            ch.queue_delete(name)
    finally:
        conn.close()


def run(url: str, tasks: int, latency_tasks: int, sizes: list[int], log_dir: Any) -> SystemResult:
    prefix = unique_name("bench-pika")
    names = queue_names(prefix)
    res = SystemResult(
        name="bare pika",
        setup=(
            f"6 stage processes, 1 SelectConnection each, prefetch {PREFETCH}; persistent, confirmed, "
            "ack after confirm; no framework"
        ),
    )
    res.extra["queues"] = names
    declare(url, names)
    children = Children(log_dir)
    try:
        env = child_env()
        size_arg = ",".join(str(s) for s in sizes)
        for i in range(1, STAGES + 1):
            children.spawn(
                f"pika-s{i}", ["-m", "sustainml.bench.barepika", str(i), prefix, url, size_arg], env
            )
        _wait_consumers(url, names[:-1], children)
        sub = Submitter(prefix, url, sizes[0])
        try:
            samples: list[float] = []
            for i in range(latency_tasks + WARMUP_TASKS):
                tid = f"lat-{i}"
                start = time.perf_counter()
                sub.submit(tid)
                sub.wait_for([tid], 60)
                if i >= WARMUP_TASKS:
                    samples.append(sub.done[tid] - start)
            res.set_latencies(samples)
            ids = [f"tp-{i}" for i in range(tasks)]
            start = time.perf_counter()
            for tid in ids:
                sub.submit(tid)
            sub.wait_for(ids, 600)
            res.throughput = tasks / (max(sub.done[t] for t in ids) - start)
            res.tasks = tasks
            if sub.error is not None:
                raise BenchError(f"bare pika: {sub.error}")
        finally:
            sub.close()
    finally:
        children.stop()
        delete(url, names)
    return res


def _wait_consumers(url: str, names: list[str], children: Children, timeout: float = 60.0) -> None:
    """Until every queue has a consumer (the stage processes are up)."""
    # A queue not declared yet closes the probing channel (404), which pika logs as a warning.
    pika_log = logging.getLogger("pika")
    level = pika_log.level
    pika_log.setLevel(logging.ERROR)
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        deadline = time.monotonic() + timeout
        while True:
            children.check_alive()
            try:
                if all(ch.queue_declare(n, passive=True).method.consumer_count > 0 for n in names):
                    return
            except pika.exceptions.ChannelClosedByBroker:  # not declared yet (404): ask again
                ch = conn.channel()
            if time.monotonic() > deadline:
                raise BenchError(f"stage consumers not up after {timeout:g} s")
            time.sleep(0.1)
    finally:
        pika_log.setLevel(level)
        conn.close()


if __name__ == "__main__":
    stage_main(sys.argv[1:])
