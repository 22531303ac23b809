"""``MemoryTransport``: one connection to a ``MemoryBroker``, the Transport contract in process."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal

from sustainml.transport.base import (
    Binding,
    ExchangeSpec,
    Handler,
    Message,
    QueueSpec,
    Transport,
    TransportError,
)
from sustainml.transport.memory.broker import MemoryBroker, MemoryDelivery
from sustainml.transport.memory.state import ConsumerState, Scheduler

log = logging.getLogger(__name__)

# Set on a handler thread while it runs a handler, so close() called from inside a handler does
# not wait for itself.
_tls = threading.local()

_State = Literal["new", "open", "closing", "closed"]


class MemoryTransport(Transport):
    """One connection to a ``MemoryBroker`` (a private broker when none is given).

    Share a broker between components with ``MemoryTransport(broker)`` or ``broker.transport()``.
    """

    def __init__(self, broker: MemoryBroker | None = None, name: str = "memory") -> None:
        if broker is not None and not isinstance(broker, MemoryBroker):
            raise TypeError(
                f"MemoryTransport(broker=...) expects a MemoryBroker, got {type(broker).__name__}; "
                "pass the transport name as name=..."
            )
        self._broker = broker if broker is not None else MemoryBroker()
        self.name = name
        self._state: _State = "new"
        self._consumers: dict[str, ConsumerState] = {}
        self._unacked: dict[int, MemoryDelivery] = {}
        self._ctags = itertools.count(1)
        self._timers = Scheduler(f"{name}-call-later")

    @property
    def broker(self) -> MemoryBroker:
        return self._broker

    @property
    def is_open(self) -> bool:
        return self._state == "open"

    def _check_open(self) -> None:
        if self._state == "new":
            raise TransportError(f"memory transport {self.name!r} is not connected: call connect() first")
        if self._state != "open":
            raise TransportError(f"memory transport {self.name!r} is closed")

    def connect(self) -> None:
        with self._broker._cond:
            if self._state == "new":
                self._state = "open"
            elif self._state != "open":
                raise TransportError(f"memory transport {self.name!r} is closed; create a new one")

    def declare_exchange(self, spec: ExchangeSpec) -> None:
        with self._broker._cond:
            self._check_open()
            self._broker._declare_exchange(spec)

    def declare_queue(self, spec: QueueSpec) -> None:
        with self._broker._cond:
            self._check_open()
            self._broker._declare_queue(spec)

    def bind(self, queue: str, binding: Binding) -> None:
        with self._broker._cond:
            self._check_open()
            self._broker._bind(self._broker._queue(queue), binding)

    def unbind(self, queue: str, binding: Binding) -> None:
        b = self._broker
        with b._cond:
            self._check_open()
            ex = b._exchanges.get(binding.exchange)
            keys = ex.bindings.get(queue) if ex is not None else None
            if keys is not None:
                keys.discard(binding.routing_key)
                if not keys:
                    del ex.bindings[queue]  # type: ignore[union-attr]

    def delete_queue(self, name: str) -> None:
        b = self._broker
        with b._cond:
            self._check_open()
            q = b._queues.get(name)
            if q is None:
                log.debug("delete_queue(%r): no such queue (nothing to do, as in AMQP)", name)
                return
            dropped = b._delete_queue(q, "deleted")
            log.debug("queue %r deleted with %d ready messages", name, dropped)
            b._cond.notify_all()

    def delete_exchange(self, name: str) -> None:
        b = self._broker
        with b._cond:
            self._check_open()
            if name and b._exchanges.pop(name, None) is None:
                log.debug("delete_exchange(%r): no such exchange (nothing to do, as in AMQP)", name)

    def purge_queue(self, name: str) -> int:
        b = self._broker
        with b._cond:
            self._check_open()
            q = b._queue(name)
            count = len(q.ready)
            q.ready.clear()
            return count

    def queue_counts(self, name: str) -> tuple[int, int]:
        b = self._broker
        with b._cond:
            self._check_open()
            q = b._queue(name)
            b._dirty.add(q)
            b._drain()  # let expired heads go first, as the real queue would have by now
            return len(q.ready), len(q.consumers)

    def publish(
        self, exchange: str, routing_key: str, message: Message, *, mandatory: bool = True
    ) -> Future[None]:
        fut: Future[None] = Future()
        try:
            with self._broker._cond:
                self._check_open()
                self._broker._publish(exchange, routing_key, message, mandatory)
        except TransportError as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(None)
        return fut

    def consume(self, queue: str, handler: Handler, *, prefetch: int = 8, concurrency: int = 1) -> str:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        b = self._broker
        with b._cond:
            self._check_open()
            q = b._queue(queue)
            tag = f"{self.name}.ctag-{next(self._ctags)}"
            executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"{self.name}:{queue}")
            consumer = ConsumerState(tag, q, handler, prefetch, self, executor)
            q.consumers.append(consumer)
            self._consumers[tag] = consumer
            b._dirty.add(q)
            b._drain()
            return tag

    def cancel(self, consumer_tag: str) -> None:
        b = self._broker
        with b._cond:
            consumer = self._consumers.pop(consumer_tag, None)
            if consumer is None:
                log.debug("cancel(%r): no such consumer on transport %r", consumer_tag, self.name)
                return
            self._detach(consumer)
        # Calls already queued still run, so handed-out deliveries get handled and settled.
        consumer.executor.shutdown(wait=False)

    def _detach(self, consumer: ConsumerState) -> None:
        consumer.active = False
        q = consumer.queue
        if consumer in q.consumers:
            q.consumers.remove(consumer)
            q.rr = q.rr % len(q.consumers) if q.consumers else 0
            if not q.deleted:
                self._broker._mark_unused(q)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        if not self.is_open:
            log.debug("call_later(%r) ignored: transport %r is not open", fn, self.name)
            return
        self._timers.call_at(time.monotonic() + max(0.0, delay), fn)

    def close(self, timeout: float = 10.0) -> None:
        b = self._broker
        with b._cond:
            if self._state in ("closing", "closed"):
                return
            if self._state == "new":
                self._state = "closed"
                return
            self._state = "closing"
            consumers = list(self._consumers.values())
            self._consumers.clear()
            for c in consumers:
                c.discard_pending = True
                self._detach(c)
        deadline = time.monotonic() + max(0.0, timeout)
        self._timers.stop(timeout)
        for c in consumers:
            c.executor.shutdown(wait=False)
        own = 1 if getattr(_tls, "consumer", None) in consumers else 0
        with b._cond:
            done = b._cond.wait_for(
                lambda: sum(c.inflight for c in consumers) <= own, max(0.0, deadline - time.monotonic())
            )
            if not done:
                log.warning(
                    "transport %r closed with %d handler(s) still running after %.1fs; messages requeued",
                    self.name,
                    sum(c.inflight for c in consumers) - own,
                    timeout,
                )
            # Like a closed AMQP connection: everything still unacked goes back to its queue.
            orphans = sorted(self._unacked.values(), key=lambda d: d._entry.seq)
            for d in orphans:
                d._orphaned = True
                b._release(d)
                b._return(d._queue, d._entry)
            if orphans:
                log.debug("transport %r closed: requeued %d unacked deliveries", self.name, len(orphans))
            self._state = "closed"
            b._drain()

    def _run_handler(self, consumer: ConsumerState, delivery: MemoryDelivery) -> None:
        b = self._broker
        with b._cond:
            skip = consumer.discard_pending
        if skip:
            # close() requeues the delivery; running the handler now would only duplicate work.
            with b._cond:
                consumer.inflight -= 1
                b._cond.notify_all()
            return
        _tls.consumer = consumer
        try:
            consumer.handler(delivery)
        except Exception:
            log.exception(
                "handler of consumer %s failed on message %r from queue %r; rejecting it without requeue",
                consumer.tag,
                delivery.message.message_id,
                delivery.queue,
            )
            b._settle(delivery, "reject", False, quiet=True)
        finally:
            _tls.consumer = None
            with b._cond:
                consumer.inflight -= 1
                b._cond.notify_all()
