"""The declaring part of the AMQP transport: exchanges, queues and bindings, remembered and declared
again on every reconnect (``replay``), and the queue operations (delete, purge, inspect).

Every operation runs synchronously on a throwaway channel (``Declarer._channel_op``), so a refused
one closes only that channel; the pika calls themselves run on the I/O thread, the only thread
that touches pika. Never call these from the I/O thread (they raise ``RuntimeError``).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from pika.channel import Channel

from sustainml.transport.amqp.callbacks import resolve, shielded
from sustainml.transport.amqp.connection import Connection
from sustainml.transport.amqp.failures import ChannelError, map_channel_close
from sustainml.transport.base import Binding, ConnectionLost, ExchangeSpec, QueueSpec

log = logging.getLogger(__name__)


def queue_arguments(spec: QueueSpec) -> dict[str, Any]:
    """The ``x-`` arguments a queue is declared with (what the broker compares on re-declaring)."""
    args: dict[str, Any] = {"x-queue-type": spec.queue_type}
    if spec.dead_letter_exchange is not None:
        args["x-dead-letter-exchange"] = spec.dead_letter_exchange
    if spec.dead_letter_routing_key is not None:
        args["x-dead-letter-routing-key"] = spec.dead_letter_routing_key
    if spec.expires_ms is not None:
        args["x-expires"] = spec.expires_ms
    if spec.message_ttl_ms is not None:
        args["x-message-ttl"] = spec.message_ttl_ms
    if spec.max_length is not None:
        args["x-max-length"] = spec.max_length
    if spec.dead_letter_at_least_once and spec.queue_type == "quorum":
        args["x-dead-letter-strategy"] = "at-least-once"
        args["x-overflow"] = "reject-publish"
    if spec.delivery_limit is not None:
        if spec.queue_type == "quorum":
            args["x-delivery-limit"] = spec.delivery_limit
        else:
            log.warning(
                "queue %r: delivery_limit=%d ignored, only quorum queues honour x-delivery-limit",
                spec.name,
                spec.delivery_limit,
            )
    return args


class ChannelOp:
    """One operation on a throwaway channel (I/O thread)."""

    def __init__(self, channel: Channel, fut: Future[Any]) -> None:
        self.channel = channel
        self.fut = fut

    def then(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        """A pika reply callback running ``fn(frame)``; its errors fail the operation."""
        return shielded(fn, self.fut)

    def done(self, result: Any = None) -> None:
        resolve(self.fut, result)
        if self.channel.is_open:
            self.channel.close()


class Declarer:
    """Declarations of one transport, replayed after every reconnect."""

    def __init__(self, link: Connection) -> None:
        self._link = link
        # Everything declared, re-applied after a reconnect (insertion order = declaration order).
        self._lock = threading.Lock()
        self._exchanges: dict[str, ExchangeSpec] = {}
        self._queues: dict[str, QueueSpec] = {}
        self._extra_bindings: dict[str, list[Binding]] = {}
        self._deleted_queues: set[str] = set()

    def _wait_ready(self, what: str) -> None:
        self._link.wait_ready_for(what, self._link.op_timeout)

    # ------------------------------------------------------------------ on the broker
    def _channel_op(self, what: str, action: Callable[[ChannelOp], None]) -> Any:
        """Run ``action(op)`` on a throwaway channel: a refused operation closes only that channel.
        The action chains pika calls with ``op.then(...)`` callbacks and finishes with ``op.done``."""

        def start(fut: Future[Any]) -> None:
            conn = self._link.conn
            if conn is None or not conn.is_open:
                resolve(fut, exc=ConnectionLost(f"{what}: not connected to {self._link.safe_url}"))
                return

            def on_close(_ch: Channel, reason: Exception) -> None:
                resolve(fut, exc=map_channel_close(what, reason))

            def on_open(ch: Channel) -> None:
                action(ChannelOp(ch, fut))

            ch = conn.channel(on_open_callback=shielded(on_open, fut))
            ch.add_on_close_callback(shielded(on_close))

        return self._link.io_call(what, start, wait_ready=False)

    def _declare_exchange_now(self, spec: ExchangeSpec) -> None:
        def action(op: ChannelOp) -> None:
            op.channel.exchange_declare(
                spec.name, spec.type, durable=spec.durable, callback=op.then(lambda _f: op.done())
            )

        self._channel_op(f"declare exchange {spec.name!r}", action)

    def _declare_queue_now(self, spec: QueueSpec) -> None:
        for b in spec.bindings:
            if not b.exchange:
                raise ValueError(f"queue {spec.name!r}: cannot bind to the default exchange")
        args = queue_arguments(spec)

        def action(op: ChannelOp) -> None:
            bindings = list(spec.bindings)

            def next_binding(_frame: Any) -> None:
                if not bindings:
                    op.done()
                    return
                b = bindings.pop(0)
                op.channel.queue_bind(
                    spec.name, b.exchange, routing_key=b.routing_key, callback=op.then(next_binding)
                )

            op.channel.queue_declare(
                spec.name, durable=spec.durable, arguments=args, callback=op.then(next_binding)
            )

        self._channel_op(f"declare queue {spec.name!r}", action)

    def _bind_now(self, queue: str, binding: Binding) -> None:
        def action(op: ChannelOp) -> None:
            op.channel.queue_bind(
                queue,
                binding.exchange,
                routing_key=binding.routing_key,
                callback=op.then(lambda _f: op.done()),
            )

        self._channel_op(f"bind queue {queue!r} to {binding.exchange!r}", action)

    # ------------------------------------------------------------------ the Transport operations
    def declare_exchange(self, spec: ExchangeSpec) -> None:
        self._wait_ready("declare_exchange")
        with self._lock:
            previous = self._exchanges.get(spec.name)
            self._exchanges[spec.name] = spec  # remembered first: a reconnect mid-call re-declares it
        try:
            self._declare_exchange_now(spec)
        except ChannelError:
            with self._lock:
                if previous is None:
                    self._exchanges.pop(spec.name, None)
                else:
                    self._exchanges[spec.name] = previous
            raise

    def declare_queue(self, spec: QueueSpec) -> None:
        self._wait_ready("declare_queue")
        with self._lock:
            previous = self._queues.get(spec.name)
            self._queues[spec.name] = spec
            self._deleted_queues.discard(spec.name)
        try:
            self._declare_queue_now(spec)
        except (ChannelError, ValueError):
            with self._lock:
                if previous is None:
                    self._queues.pop(spec.name, None)
                else:
                    self._queues[spec.name] = previous
            raise

    def bind(self, queue: str, binding: Binding) -> None:
        if not binding.exchange:
            raise ValueError(f"queue {queue!r}: cannot bind to the default exchange")
        self._wait_ready("bind")
        self._bind_now(queue, binding)
        with self._lock:
            known = self._extra_bindings.setdefault(queue, [])
            if binding not in known:
                known.append(binding)

    def unbind(self, queue: str, binding: Binding) -> None:
        with self._lock:
            known = self._extra_bindings.get(queue)
            if known and binding in known:
                known.remove(binding)
                if not known:
                    del self._extra_bindings[queue]
        self._wait_ready("unbind")

        def action(op: ChannelOp) -> None:
            op.channel.queue_unbind(
                queue, binding.exchange, binding.routing_key, callback=op.then(lambda _f: op.done())
            )

        try:
            self._channel_op(f"unbind {queue!r} from {binding.exchange!r}", action)
        except ChannelError as exc:
            if exc.reply_code != 404:  # the queue or exchange is gone already: nothing to undo
                raise

    def delete_queue(self, name: str) -> None:
        self._wait_ready("delete_queue")
        with self._lock:
            self._queues.pop(name, None)
            self._extra_bindings.pop(name, None)
            self._deleted_queues.add(name)

        def action(op: ChannelOp) -> None:
            op.channel.queue_delete(name, callback=op.then(lambda _f: op.done()))

        self._channel_op(f"delete queue {name!r}", action)

    def delete_exchange(self, name: str) -> None:
        self._wait_ready("delete_exchange")
        with self._lock:
            self._exchanges.pop(name, None)

        def action(op: ChannelOp) -> None:
            op.channel.exchange_delete(name, callback=op.then(lambda _f: op.done()))

        self._channel_op(f"delete exchange {name!r}", action)

    def purge_queue(self, name: str) -> int:
        self._wait_ready("purge_queue")

        def action(op: ChannelOp) -> None:
            op.channel.queue_purge(name, callback=op.then(lambda f: op.done(f.method.message_count)))

        try:
            return int(self._channel_op(f"purge queue {name!r}", action))
        except ChannelError as exc:
            if exc.reply_code == 404:
                raise KeyError(name) from None
            raise

    def queue_counts(self, name: str) -> tuple[int, int]:
        self._wait_ready("queue_counts")

        def action(op: ChannelOp) -> None:
            # Passive declare: a missing queue closes the (throwaway) channel with 404.
            op.channel.queue_declare(
                name,
                passive=True,
                callback=op.then(lambda f: op.done((f.method.message_count, f.method.consumer_count))),
            )

        try:
            ready, consumers = self._channel_op(f"inspect queue {name!r}", action)
        except ChannelError as exc:
            if exc.reply_code == 404:
                raise KeyError(name) from None
            raise
        return int(ready), int(consumers)

    # ------------------------------------------------------------------ after a reconnect
    def replay(self) -> None:
        """(maintenance thread) Declare again every exchange, queue and binding remembered; one the
        broker now refuses is logged and forgotten."""
        with self._lock:
            exchanges = list(self._exchanges.values())
            queues = list(self._queues.values())
            extra = [(q, b) for q, bs in self._extra_bindings.items() for b in bs]
        for ex in exchanges:
            if not self._redeclared(
                f"exchange {ex.name!r}", functools.partial(self._declare_exchange_now, ex)
            ):
                with self._lock:
                    self._exchanges.pop(ex.name, None)
        for q in queues:
            if not self._redeclared(f"queue {q.name!r}", functools.partial(self._declare_queue_now, q)):
                with self._lock:
                    self._queues.pop(q.name, None)
        for queue, binding in extra:
            try:
                self._bind_now(queue, binding)
            except ChannelError as exc:
                log.error("re-binding %r to %r failed: %s", queue, binding.exchange, exc)

    @staticmethod
    def _redeclared(what: str, declare: Callable[[], None]) -> bool:
        """Run ``declare``; False (logged) when the broker now refuses it."""
        try:
            declare()
        except ChannelError as exc:
            log.error("re-declaring %s failed, forgetting it: %s", what, exc)
            return False
        return True

    def queue_state(self, queue: str) -> tuple[bool, bool]:
        """(declared by this transport, deleted through it) for ``queue``."""
        with self._lock:
            return queue in self._queues, queue in self._deleted_queues

    def redeclare_queue(self, queue: str) -> None:
        """Declare ``queue`` again if this transport declared it (a consumer's queue was deleted)."""
        with self._lock:
            spec = self._queues.get(queue)
        if spec is not None:
            self._declare_queue_now(spec)
