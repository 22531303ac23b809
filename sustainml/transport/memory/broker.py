"""``MemoryBroker``: routing, queues, dead-lettering, expiry and dispatch to consumers, all under
one lock; and ``MemoryDelivery``, a message handed to a consumer."""

from __future__ import annotations

import copy
import heapq
import itertools
import logging
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from sustainml.transport.base import (
    Binding,
    Delivery,
    ExchangeSpec,
    Message,
    QueueSpec,
    TransportError,
    Unroutable,
)
from sustainml.transport.memory.state import (
    EXCHANGE_TYPES,
    PREDECLARED,
    ConsumerState,
    Entry,
    ExchangeState,
    QueueArgs,
    QueueNotFound,
    QueueState,
    Scheduler,
    topic_matches,
)

if TYPE_CHECKING:
    from sustainml.transport.memory.transport import MemoryTransport

log = logging.getLogger(__name__)


class MemoryBroker:
    """Exchanges and queues shared by any number of ``MemoryTransport`` connections."""

    def __init__(self, name: str = "memory-broker") -> None:
        self.name = name
        self._cond = threading.Condition(threading.RLock())
        self._exchanges: dict[str, ExchangeState] = {"": ExchangeState("", "direct")}
        for ex_name, ex_type in PREDECLARED:
            self._exchanges[ex_name] = ExchangeState(ex_name, ex_type)
        self._queues: dict[str, QueueState] = {}
        self._dirty: set[QueueState] = set()
        self._seq = itertools.count()
        self._tags = itertools.count(1)
        self._timers = Scheduler(f"{name}-timers")

    def transport(self, name: str = "memory") -> MemoryTransport:
        """A new, connected transport on this broker."""
        from sustainml.transport.memory.transport import MemoryTransport  # it imports this module

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
        if spec.type not in EXCHANGE_TYPES:
            raise TransportError(f"COMMAND_INVALID - unknown exchange type {spec.type!r}")
        existing = self._exchanges.get(spec.name)
        if existing is None:
            self._exchanges[spec.name] = ExchangeState(spec.name, spec.type, spec.durable)
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
        args = QueueArgs.of(spec)
        q = self._queues.get(spec.name)
        if q is None:
            q = QueueState(spec.name, args)
            self._queues[spec.name] = q
        elif q.args != args:
            raise TransportError(
                f"PRECONDITION_FAILED - inequivalent arg for queue {spec.name!r}: declared "
                f"{q.args}, requested {args}"
            )
        self._mark_unused(q)  # (re-)declaration counts as use for x-expires
        for b in spec.bindings:
            self._bind(q, b)

    def _bind(self, q: QueueState, binding: Binding) -> None:
        if binding.exchange == "":
            raise TransportError(f"ACCESS_REFUSED - queue {q.name!r} cannot be bound to the default exchange")
        ex = self._exchanges.get(binding.exchange)
        if ex is None:
            raise TransportError(f"NOT_FOUND - no exchange {binding.exchange!r} to bind queue {q.name!r} to")
        ex.bindings.setdefault(q.name, set()).add(binding.routing_key)

    def _queue(self, name: str) -> QueueState:
        q = self._queues.get(name)
        if q is None:
            raise QueueNotFound(f"NOT_FOUND - no queue {name!r} in memory broker {self.name!r}")
        return q

    def _delete_queue(self, q: QueueState, why: str) -> int:
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

    def _route(self, ex: ExchangeState, routing_key: str) -> list[QueueState]:
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

    def _enqueue(self, q: QueueState, message: Message, exchange: str, routing_key: str) -> None:
        ttls = [t for t in (message.expiration_ms, q.args.message_ttl_ms) if t is not None]
        expires_at = time.monotonic() + max(0, min(ttls)) / 1000.0 if ttls else None
        entry = Entry(next(self._seq), message, exchange, routing_key, expires_at)
        heapq.heappush(q.ready, (entry.seq, entry))
        limit = q.args.max_length
        if limit is not None:
            # RabbitMQ's default overflow behaviour: drop (or dead-letter) from the head.
            while len(q.ready) > max(0, limit):
                _, head = heapq.heappop(q.ready)
                self._dead_letter(q, head, "maxlen")
        self._dirty.add(q)

    def _return(self, q: QueueState, entry: Entry) -> None:
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

    def _dead_letter(self, q: QueueState, entry: Entry, reason: str) -> None:
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
    def _with_death(q: QueueState, entry: Entry, reason: str) -> Message:
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

    def _pump(self, q: QueueState) -> None:
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
    def _next_consumer(q: QueueState) -> ConsumerState | None:
        n = len(q.consumers)
        for i in range(n):
            c = q.consumers[(q.rr + i) % n]
            if c.has_capacity():
                q.rr = (q.rr + i + 1) % n
                return c
        return None

    def _deliver(self, consumer: ConsumerState, entry: Entry) -> None:
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

    def _arm_expiry(self, q: QueueState) -> None:
        if not q.ready:
            return
        at = q.ready[0][1].expires_at
        if at is None or (q.expiry_timer_at is not None and q.expiry_timer_at <= at):
            return
        q.expiry_timer_at = at
        self._timers.call_at(at, partial(self._on_expiry_timer, q, at))

    def _on_expiry_timer(self, q: QueueState, at: float) -> None:
        with self._cond:
            if q.expiry_timer_at == at:
                q.expiry_timer_at = None
            if not q.deleted:
                self._dirty.add(q)
                self._drain()

    def _mark_unused(self, q: QueueState) -> None:
        """Restart the x-expires clock of a queue without consumers."""
        q.last_used = time.monotonic()
        if q.args.expires_ms is not None and not q.consumers:
            self._timers.call_at(q.last_used + q.args.expires_ms / 1000.0, partial(self._on_queue_expiry, q))

    def _on_queue_expiry(self, q: QueueState) -> None:
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
        consumer: ConsumerState,
        entry: Entry,
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
