"""In-process transport: a small broker with RabbitMQ's semantics for what sustainml uses.

``MemoryBroker`` holds exchanges and queues; every ``MemoryTransport`` on it behaves like one AMQP
connection, so an embedded run (orchestrator, six workers and a client in one process) gives each
component its own transport on one shared broker, and closing one transport requeues only *its*
unacknowledged deliveries, as closing an AMQP connection does.

Behaviour mirrored from RabbitMQ 3.10 (checked against a real broker):

- exchanges ``topic`` (``*`` = exactly one word, ``#`` = zero or more words; ``""`` is zero words),
  ``fanout``, ``direct``; the default exchange ``""`` routes to the queue named by the routing key
  and cannot be declared or bound; ``amq.direct``/``amq.fanout``/``amq.topic`` exist;
- a queue bound several times to one exchange receives one copy per publish;
- publishing to a missing exchange fails the future with ``TransportError`` (AMQP ``NOT_FOUND``);
  a mandatory message that reaches no queue fails it with ``Unroutable``;
- queues are FIFO; a requeued message (reject with requeue, or its transport closed) goes back to
  its original position, which for the usual single in-flight message is the head, and is
  flagged ``redelivered``;
- competing consumers get messages round robin among those with free prefetch; ``prefetch`` <= 0
  means unlimited (AMQP ``prefetch_count=0``);
- dead-lettering (reject without requeue, handler exception, message or queue TTL expiry at the
  head, ``max_length`` overflow which drops the head, quorum ``delivery_limit``) republishes to
  ``dead_letter_exchange`` with ``dead_letter_routing_key`` or the original key, adds ``x-death``
  (``count``, ``reason``, ``queue``, ``time``, ``exchange``, ``routing-keys``,
  ``original-expiration``) and ``x-first-death-*`` headers, and drops the ``expiration``; a
  missing dead-letter exchange drops the message (logged), and dead-letter cycles without a
  rejection are dropped;
- quorum queues add ``x-delivery-count`` (returns so far) to redeliveries and dead-letter with
  reason ``delivery_limit`` once a message was returned more than ``delivery_limit`` times;
- ``expires_ms`` (x-expires) deletes a queue that stayed without consumers and without being
  re-declared for that long;
- re-declaring an exchange or queue with different arguments fails (``PRECONDITION_FAILED``).

Not modelled: persistence (nothing survives the process), exclusive/auto-delete queues, headers
exchanges, exchange-to-exchange bindings, publisher flow control, consumer timeouts; ``max_length``
is enforced when messages are published or dead-lettered in, not when they are requeued.

Threading: one lock per broker guards all state. Routing and dispatch run under it on whichever
thread changed the state (publish, settle, consume, a timer); a dispatch only submits the delivery
to the consumer's own ``ThreadPoolExecutor`` of ``concurrency`` threads, so handlers never run on
the publisher's thread nor under the lock. TTL expiry, x-expires and ``call_later`` use timer
threads that sleep on a condition until the next due time (no polling).
"""

from __future__ import annotations

import copy
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

from sustainml.transport.base import (
    Binding,
    Delivery,
    ExchangeSpec,
    ExchangeType,
    Handler,
    Message,
    QueueSpec,
    Transport,
    TransportError,
    Unroutable,
)

__all__ = ["MemoryBroker", "MemoryDelivery", "MemoryTransport", "QueueNotFound", "topic_matches"]

log = logging.getLogger(__name__)

_EXCHANGE_TYPES: frozenset[str] = frozenset({"topic", "fanout", "direct"})
_PREDECLARED: tuple[tuple[str, ExchangeType], ...] = (
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
)

# Set on a handler thread while it runs a handler, so close() called from inside a handler does
# not wait for itself.
_tls = threading.local()


class QueueNotFound(TransportError, KeyError):
    """The queue does not exist (AMQP ``NOT_FOUND``). A ``KeyError`` too, as ``queue_counts``
    promises."""

    def __str__(self) -> str:
        # KeyError would render the message with quotes around it.
        return Exception.__str__(self)


# -- topic matching ----------------------------------------------------------------------------


def _words(key: str) -> list[str]:
    # RabbitMQ treats the empty key as zero words, and "a..b" as three (the middle one empty).
    return key.split(".") if key else []


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic match: ``*`` matches exactly one word, ``#`` zero or more words."""
    key = _words(routing_key)
    # reach[j]: the pattern words seen so far match the first j words of the key.
    reach = [True] + [False] * len(key)
    for word in _words(pattern):
        if word == "#":
            seen = False
            nxt = []
            for r in reach:
                seen = seen or r
                nxt.append(seen)
        elif word == "*":
            nxt = [False, *reach[:-1]]
        else:
            nxt = [False] + [reach[j] and key[j] == word for j in range(len(key))]
        reach = nxt
        if not any(reach):
            return False
    return reach[-1]


# -- timers ------------------------------------------------------------------------------------


class _Scheduler:
    """Runs callbacks at monotonic times on one lazily started daemon thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def call_at(self, when: float, fn: Callable[[], None]) -> bool:
        with self._cond:
            if self._stopped:
                return False
            heapq.heappush(self._heap, (when, next(self._seq), fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
            return True

    def stop(self, timeout: float) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout))
            if thread.is_alive():
                log.warning("timer thread %s still running a callback after %.1fs", self._name, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        fn = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(delay)
            try:
                fn()
            except Exception:
                log.exception("timer callback %r on %s failed", fn, self._name)


# -- broker state ------------------------------------------------------------------------------


@dataclass(eq=False)
class _Entry:
    """A message sitting in (or delivered from) one queue."""

    seq: int  # position in the queue; a requeued message returns to it
    message: Message  # private copy, never handed to a handler
    exchange: str
    routing_key: str
    expires_at: float | None = None  # monotonic
    redelivered: bool = False
    returns: int = 0  # times given back to the queue (quorum x-delivery-count)


@dataclass(eq=False)
class _Exchange:
    name: str
    type: ExchangeType
    durable: bool = True
    # queue name -> binding keys
    bindings: dict[str, set[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _QueueArgs:
    """The declare-time arguments RabbitMQ compares on re-declaration."""

    durable: bool
    queue_type: str
    dead_letter_exchange: str | None
    dead_letter_routing_key: str | None
    expires_ms: int | None
    message_ttl_ms: int | None
    max_length: int | None
    delivery_limit: int | None

    @classmethod
    def of(cls, spec: QueueSpec) -> _QueueArgs:
        return cls(
            spec.durable,
            spec.queue_type,
            spec.dead_letter_exchange,
            spec.dead_letter_routing_key,
            spec.expires_ms,
            spec.message_ttl_ms,
            spec.max_length,
            spec.delivery_limit,
        )


@dataclass(eq=False)
class _Queue:
    name: str
    args: _QueueArgs
    ready: list[tuple[int, _Entry]] = field(default_factory=list)  # heap ordered by seq
    consumers: list[_Consumer] = field(default_factory=list)
    rr: int = 0  # round-robin cursor into consumers
    unacked: int = 0
    deleted: bool = False
    last_used: float = field(default_factory=time.monotonic)
    expiry_timer_at: float | None = None


@dataclass(eq=False)
class _Consumer:
    tag: str
    queue: _Queue
    handler: Handler
    prefetch: int
    transport: MemoryTransport
    executor: ThreadPoolExecutor
    unacked: int = 0
    inflight: int = 0  # handler calls submitted and not finished
    active: bool = True
    discard_pending: bool = False  # set on close: queued handler calls are skipped

    def has_capacity(self) -> bool:
        return self.active and (self.prefetch <= 0 or self.unacked < self.prefetch)


class MemoryBroker:
    """Exchanges and queues shared by any number of ``MemoryTransport`` connections."""

    def __init__(self, name: str = "memory-broker") -> None:
        self.name = name
        self._cond = threading.Condition(threading.RLock())
        self._exchanges: dict[str, _Exchange] = {"": _Exchange("", "direct")}
        for ex_name, ex_type in _PREDECLARED:
            self._exchanges[ex_name] = _Exchange(ex_name, ex_type)
        self._queues: dict[str, _Queue] = {}
        self._dirty: set[_Queue] = set()
        self._seq = itertools.count()
        self._tags = itertools.count(1)
        self._timers = _Scheduler(f"{name}-timers")

    def transport(self, name: str = "memory") -> MemoryTransport:
        """A new, connected transport on this broker."""
        t = MemoryTransport(self, name=name)
        t.connect()
        return t

    def snapshot(self) -> dict[str, tuple[int, int, int]]:
        """Queue name -> (ready, unacked, consumers), for tests and debugging."""
        with self._cond:
            return {n: (len(q.ready), q.unacked, len(q.consumers)) for n, q in self._queues.items()}

    def close(self, timeout: float = 5.0) -> None:
        """Stop the broker's timer thread (TTL expiry, x-expires). Idempotent."""
        self._timers.stop(timeout)

    # -- declarations (all called with the lock held) ------------------------------------------

    def _declare_exchange(self, spec: ExchangeSpec) -> None:
        if spec.name == "" or spec.name.startswith("amq."):
            raise TransportError(
                f"ACCESS_REFUSED - exchange name {spec.name!r} is reserved (default or amq.*)"
            )
        if spec.type not in _EXCHANGE_TYPES:
            raise TransportError(f"COMMAND_INVALID - unknown exchange type {spec.type!r}")
        existing = self._exchanges.get(spec.name)
        if existing is None:
            self._exchanges[spec.name] = _Exchange(spec.name, spec.type, spec.durable)
            return
        if existing.type != spec.type or existing.durable != spec.durable:
            raise TransportError(
                f"PRECONDITION_FAILED - inequivalent arg for exchange {spec.name!r}: declared "
                f"type={existing.type} durable={existing.durable}, "
                f"requested type={spec.type} durable={spec.durable}"
            )

    def _declare_queue(self, spec: QueueSpec) -> None:
        if not spec.name:
            raise TransportError("server-named queues are not supported: give the queue a name")
        args = _QueueArgs.of(spec)
        q = self._queues.get(spec.name)
        if q is None:
            q = _Queue(spec.name, args)
            self._queues[spec.name] = q
        elif q.args != args:
            raise TransportError(
                f"PRECONDITION_FAILED - inequivalent arg for queue {spec.name!r}: declared "
                f"{q.args}, requested {args}"
            )
        self._mark_unused(q)  # (re-)declaration counts as use for x-expires
        for b in spec.bindings:
            self._bind(q, b)

    def _bind(self, q: _Queue, binding: Binding) -> None:
        if binding.exchange == "":
            raise TransportError(f"ACCESS_REFUSED - queue {q.name!r} cannot be bound to the default exchange")
        ex = self._exchanges.get(binding.exchange)
        if ex is None:
            raise TransportError(f"NOT_FOUND - no exchange {binding.exchange!r} to bind queue {q.name!r} to")
        ex.bindings.setdefault(q.name, set()).add(binding.routing_key)

    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            raise QueueNotFound(f"NOT_FOUND - no queue {name!r} in memory broker {self.name!r}")
        return q

    def _delete_queue(self, q: _Queue, why: str) -> int:
        q.deleted = True
        self._queues.pop(q.name, None)
        self._dirty.discard(q)
        for ex in self._exchanges.values():
            ex.bindings.pop(q.name, None)
        for c in list(q.consumers):
            # Like a broker-initiated basic.cancel: the consumer stops, handed-out deliveries
            # can still be settled (as no-ops).
            log.info("consumer %s cancelled: queue %r was %s", c.tag, q.name, why)
            c.active = False
            c.transport._consumers.pop(c.tag, None)
            c.executor.shutdown(wait=False)
        q.consumers.clear()
        count = len(q.ready)
        q.ready.clear()
        return count

    # -- routing -------------------------------------------------------------------------------

    def _route(self, ex: _Exchange, routing_key: str) -> list[_Queue]:
        if ex.name == "":
            q = self._queues.get(routing_key)
            return [q] if q is not None else []
        if ex.type == "fanout":
            names = list(ex.bindings)
        elif ex.type == "direct":
            names = [n for n, keys in ex.bindings.items() if routing_key in keys]
        else:
            names = [n for n, keys in ex.bindings.items() if any(topic_matches(k, routing_key) for k in keys)]
        return [self._queues[n] for n in names if n in self._queues]

    def _publish(self, exchange: str, routing_key: str, message: Message, mandatory: bool) -> None:
        ex = self._exchanges.get(exchange)
        if ex is None:
            raise TransportError(f"NOT_FOUND - no exchange {exchange!r} in memory broker {self.name!r}")
        targets = self._route(ex, routing_key)
        if not targets:
            if mandatory:
                raise Unroutable(
                    f"message {message.message_id!r} to exchange {exchange!r} with routing key "
                    f"{routing_key!r} reached no queue"
                )
            log.debug("dropped unroutable message %r to %r/%r", message.message_id, exchange, routing_key)
            return
        # One private copy shared by every target queue; handlers get their own copies.
        stored = replace(message, body=bytes(message.body), headers=copy.deepcopy(message.headers))
        for q in targets:
            self._enqueue(q, stored, exchange, routing_key)
        self._drain()

    def _enqueue(self, q: _Queue, message: Message, exchange: str, routing_key: str) -> None:
        ttls = [t for t in (message.expiration_ms, q.args.message_ttl_ms) if t is not None]
        expires_at = time.monotonic() + max(0, min(ttls)) / 1000.0 if ttls else None
        entry = _Entry(next(self._seq), message, exchange, routing_key, expires_at)
        heapq.heappush(q.ready, (entry.seq, entry))
        limit = q.args.max_length
        if limit is not None:
            # RabbitMQ's default overflow behaviour: drop (or dead-letter) from the head.
            while len(q.ready) > max(0, limit):
                _, head = heapq.heappop(q.ready)
                self._dead_letter(q, head, "maxlen")
        self._dirty.add(q)

    def _return(self, q: _Queue, entry: _Entry) -> None:
        """Give an unacked message back to its queue (reject with requeue, or its transport closed)."""
        if q.deleted:
            log.debug("message %r not requeued: queue %r was deleted", entry.message.message_id, q.name)
            return
        entry.redelivered = True
        entry.returns += 1
        limit = q.args.delivery_limit
        if q.args.queue_type == "quorum" and limit is not None and entry.returns > limit:
            self._dead_letter(q, entry, "delivery_limit")
            return
        heapq.heappush(q.ready, (entry.seq, entry))
        self._dirty.add(q)

    def _dead_letter(self, q: _Queue, entry: _Entry, reason: str) -> None:
        mid = entry.message.message_id
        dlx = q.args.dead_letter_exchange
        if q.deleted:
            log.debug("message %r from deleted queue %r dropped (%s)", mid, q.name, reason)
            return
        if dlx is None:
            log.debug("message %r dropped from %r (%s): no dead-letter exchange", mid, q.name, reason)
            return
        ex = self._exchanges.get(dlx)
        if ex is None:
            log.warning(
                "message %r dropped from %r (%s): dead-letter exchange %r does not exist",
                mid,
                q.name,
                reason,
                dlx,
            )
            return
        key = q.args.dead_letter_routing_key or entry.routing_key
        message = self._with_death(q, entry, reason)
        deaths: list[dict[str, Any]] = message.headers["x-death"]
        targets = [t for t in self._route(ex, key) if not _is_cycle(t.name, deaths)]
        if not targets:
            log.warning(
                "message %r dead-lettered from %r (%s) via %r with key %r reached no queue; dropped",
                mid,
                q.name,
                reason,
                dlx,
                key,
            )
            return
        for t in targets:
            self._enqueue(t, message, dlx, key)

    @staticmethod
    def _with_death(q: _Queue, entry: _Entry, reason: str) -> Message:
        old = entry.message
        headers = copy.deepcopy(old.headers)
        deaths = [d for d in headers.get("x-death") or [] if isinstance(d, dict)]
        now = datetime.now(UTC).replace(microsecond=0)
        for i, d in enumerate(deaths):
            if d.get("queue") == q.name and d.get("reason") == reason:
                # RabbitMQ bumps the count and moves the record to the front.
                record = deaths.pop(i)
                record["count"] = int(record.get("count", 0)) + 1
                record["time"] = now
                break
        else:
            record = {
                "count": 1,
                "reason": reason,
                "queue": q.name,
                "time": now,
                "exchange": entry.exchange,
                "routing-keys": [entry.routing_key],
            }
            if old.expiration_ms is not None:
                record["original-expiration"] = str(old.expiration_ms)
        deaths.insert(0, record)
        headers["x-death"] = deaths
        headers.setdefault("x-first-death-exchange", entry.exchange)
        headers.setdefault("x-first-death-queue", q.name)
        headers.setdefault("x-first-death-reason", reason)
        return replace(old, headers=headers, expiration_ms=None)

    # -- dispatch ------------------------------------------------------------------------------

    def _drain(self) -> None:
        """Deliver what can be delivered on every queue whose state changed."""
        while self._dirty:
            q = self._dirty.pop()
            if not q.deleted:
                self._pump(q)
        self._cond.notify_all()

    def _pump(self, q: _Queue) -> None:
        now = time.monotonic()
        while q.ready:
            head = q.ready[0][1]
            if head.expires_at is not None and head.expires_at <= now:
                heapq.heappop(q.ready)
                self._dead_letter(q, head, "expired")
                continue
            consumer = self._next_consumer(q)
            if consumer is None:
                break
            heapq.heappop(q.ready)
            self._deliver(consumer, head)
        self._arm_expiry(q)

    @staticmethod
    def _next_consumer(q: _Queue) -> _Consumer | None:
        n = len(q.consumers)
        for i in range(n):
            c = q.consumers[(q.rr + i) % n]
            if c.has_capacity():
                q.rr = (q.rr + i + 1) % n
                return c
        return None

    def _deliver(self, consumer: _Consumer, entry: _Entry) -> None:
        q = consumer.queue
        extra: dict[str, Any] = {}
        if q.args.queue_type == "quorum" and entry.returns > 0:
            # As RabbitMQ 3.10 does for consumers: the header appears from the first return on.
            extra["x-delivery-count"] = entry.returns
        delivery = MemoryDelivery(self, consumer, entry, next(self._tags), extra)
        consumer.unacked += 1
        q.unacked += 1
        consumer.transport._unacked[delivery.delivery_tag] = delivery
        consumer.inflight += 1
        try:
            consumer.executor.submit(consumer.transport._run_handler, consumer, delivery)
        except RuntimeError:
            # Only if the executor was shut down while the consumer still looked active.
            log.exception(
                "consumer %s could not take message %r; requeued", consumer.tag, delivery.message.message_id
            )
            consumer.inflight -= 1
            consumer.active = False
            self._release(delivery)
            self._return(q, entry)

    def _release(self, d: MemoryDelivery) -> None:
        """Forget an unacked delivery (settled or orphaned)."""
        d._consumer.transport._unacked.pop(d.delivery_tag, None)
        d._consumer.unacked -= 1
        d._queue.unacked -= 1
        self._dirty.add(d._queue)

    def _settle(
        self, d: MemoryDelivery, action: Literal["ack", "reject"], requeue: bool, *, quiet: bool
    ) -> None:
        with self._cond:
            if d._settled:
                if not quiet:
                    log.warning(
                        "delivery %d of message %r on queue %r settled twice; %s ignored",
                        d.delivery_tag,
                        d.message.message_id,
                        d.queue,
                        action,
                    )
                return
            d._settled = True
            if d._orphaned:
                log.info(
                    "%s of message %r on queue %r ignored: its transport closed and the broker requeued it",
                    action,
                    d.message.message_id,
                    d.queue,
                )
                return
            self._release(d)
            if action == "reject":
                if requeue:
                    self._return(d._queue, d._entry)
                else:
                    self._dead_letter(d._queue, d._entry, "rejected")
            self._drain()

    # -- timers --------------------------------------------------------------------------------

    def _arm_expiry(self, q: _Queue) -> None:
        if not q.ready:
            return
        at = q.ready[0][1].expires_at
        if at is None or (q.expiry_timer_at is not None and q.expiry_timer_at <= at):
            return
        q.expiry_timer_at = at
        self._timers.call_at(at, partial(self._on_expiry_timer, q, at))

    def _on_expiry_timer(self, q: _Queue, at: float) -> None:
        with self._cond:
            if q.expiry_timer_at == at:
                q.expiry_timer_at = None
            if not q.deleted:
                self._dirty.add(q)
                self._drain()

    def _mark_unused(self, q: _Queue) -> None:
        """Restart the x-expires clock of a queue without consumers."""
        q.last_used = time.monotonic()
        if q.args.expires_ms is not None and not q.consumers:
            self._timers.call_at(q.last_used + q.args.expires_ms / 1000.0, partial(self._on_queue_expiry, q))

    def _on_queue_expiry(self, q: _Queue) -> None:
        with self._cond:
            expires_ms = q.args.expires_ms
            if q.deleted or q.consumers or expires_ms is None:
                return
            if time.monotonic() - q.last_used < expires_ms / 1000.0:
                return  # used since; a later timer covers the new deadline
            log.info("queue %r deleted: unused for %d ms (x-expires)", q.name, expires_ms)
            self._delete_queue(q, "expired (x-expires)")
            self._cond.notify_all()


def _is_cycle(target: str, deaths: list[dict[str, Any]]) -> bool:
    """RabbitMQ drops a dead-lettered message that would re-enter a queue it already died in,
    unless one of the deaths in that cycle was a rejection."""
    for d in deaths:
        if d.get("reason") == "rejected":
            return False
        if d.get("queue") == target:
            return True
    return False


class MemoryDelivery(Delivery):
    """A delivery from the memory broker; settle it once with ``ack`` or ``reject``."""

    def __init__(
        self,
        broker: MemoryBroker,
        consumer: _Consumer,
        entry: _Entry,
        delivery_tag: int,
        extra_headers: dict[str, Any],
    ) -> None:
        stored = entry.message
        headers = copy.deepcopy(stored.headers)
        headers.update(extra_headers)
        self.message = replace(stored, headers=headers)
        self.exchange = entry.exchange
        self.routing_key = entry.routing_key
        self.redelivered = entry.redelivered
        self.queue = consumer.queue.name
        self.delivery_tag = delivery_tag
        self.consumer_tag = consumer.tag
        self._broker = broker
        self._consumer = consumer
        self._queue = consumer.queue
        self._entry = entry
        self._settled = False
        self._orphaned = False  # requeued by close(); settling it is a no-op

    @property
    def settled(self) -> bool:
        return self._settled

    def ack(self) -> None:
        self._broker._settle(self, "ack", False, quiet=False)

    def reject(self, requeue: bool = False) -> None:
        self._broker._settle(self, "reject", requeue, quiet=False)

    def __repr__(self) -> str:
        return (
            f"MemoryDelivery(queue={self.queue!r}, tag={self.delivery_tag}, "
            f"message_id={self.message.message_id!r}, redelivered={self.redelivered})"
        )


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
        self._consumers: dict[str, _Consumer] = {}
        self._unacked: dict[int, MemoryDelivery] = {}
        self._ctags = itertools.count(1)
        self._timers = _Scheduler(f"{name}-call-later")

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
            consumer = _Consumer(tag, q, handler, prefetch, self, executor)
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

    def _detach(self, consumer: _Consumer) -> None:
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

    def _run_handler(self, consumer: _Consumer, delivery: MemoryDelivery) -> None:
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
