"""The transport contract: the few broker operations the runtime and orchestrator need.

Two implementations honour it: ``AmqpTransport`` (pika, a real RabbitMQ broker) and
``MemoryTransport`` (one process, same routing/ack/dead-letter semantics, for embedded runs and
fast tests). Code above this layer never imports pika.

Threading contract (both transports):
- ``publish`` may be called from any thread; it returns a Future that completes when the broker
  (or the in-memory router) has accepted the message (publisher confirm). It fails with
  ``Unroutable`` when a mandatory message reached no queue, ``PublishNacked`` when the broker
  refused it, ``ConnectionLost`` when the connection dropped before the confirm.
- ``consume`` runs the handler on a pool of ``concurrency`` threads owned by the transport, never
  on the I/O thread, so a slow handler cannot starve AMQP heartbeats.
- ``Delivery.ack``/``reject`` may be called from any thread, exactly once. After a reconnect, a
  delivery from the old connection can no longer be settled: the call is a no-op and the broker
  redelivers the message.
- After a connection loss the transport reconnects with backoff, re-declares everything it was
  asked to declare and re-issues every ``consume``.
- ``close`` may be called from another thread (or a signal handler's stop path) while ``connect``
  is still retrying, or while an operation waits for a reconnect: those give up at once with a
  ``TransportError`` instead of waiting for their timeout.
- Future callbacks (``add_done_callback``) of a publish may run on a transport thread (AMQP: the
  I/O thread) or at once in the publishing thread (memory): keep them short and non-blocking;
  settling a delivery or publishing from them is fine (the node runtime acks a task's input from
  its output's confirm callback).
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Literal

# The message shape belongs to the message model (the layer below); re-exported for the transports.
from sustainml.messages.headers import Message as Message

log = logging.getLogger(__name__)

ExchangeType = Literal["topic", "fanout", "direct"]
QueueType = Literal["classic", "quorum"]


class TransportError(Exception):
    """Base class of transport failures."""


class BrokerUnavailable(TransportError):
    """The broker could not be reached (initial connect failed)."""


class ConnectionLost(TransportError):
    """The connection dropped while an operation was pending."""


class Unroutable(TransportError):
    """A mandatory message was returned: no queue is bound for it."""


class PublishNacked(TransportError):
    """The broker refused the message (basic.nack)."""


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: ExchangeType = "topic"
    durable: bool = True


@dataclass(frozen=True)
class Binding:
    exchange: str
    routing_key: str = "#"


@dataclass(frozen=True)
class QueueSpec:
    """A queue and its bindings. ``expires_ms`` deletes the queue after that long unused (x-expires);
    ``dead_letter_exchange`` receives messages rejected without requeue."""

    name: str
    bindings: tuple[Binding, ...] = ()
    durable: bool = True
    queue_type: QueueType = "classic"
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    expires_ms: int | None = None
    message_ttl_ms: int | None = None
    max_length: int | None = None
    delivery_limit: int | None = None  # quorum queues only
    # quorum queues only: dead-letter at least once (the broker keeps a message until the target
    # queue confirms it), which needs x-overflow=reject-publish; for delay queues whose every
    # message is dead-lettered back into work
    dead_letter_at_least_once: bool = False


class Delivery(abc.ABC):
    """A consumed message. Settle it exactly once with ``ack`` or ``reject``."""

    message: Message
    exchange: str
    routing_key: str
    redelivered: bool
    queue: str

    @abc.abstractmethod
    def ack(self) -> None: ...

    @abc.abstractmethod
    def reject(self, requeue: bool = False) -> None:
        """Reject; without requeue the queue's dead-letter exchange (if any) receives it."""


Handler = Callable[[Delivery], None]


class Transport(abc.ABC):
    """See the module docstring for the threading contract."""

    @abc.abstractmethod
    def connect(self) -> None:
        """Connect (idempotent). Raises ``BrokerUnavailable`` when the broker cannot be reached, and
        ``TransportError`` when ``close()`` was called meanwhile (or before)."""

    @abc.abstractmethod
    def declare_exchange(self, spec: ExchangeSpec) -> None: ...

    @abc.abstractmethod
    def declare_queue(self, spec: QueueSpec) -> None:
        """Declare the queue and its bindings (idempotent); remembered and re-declared on reconnect."""

    @abc.abstractmethod
    def bind(self, queue: str, binding: Binding) -> None:
        """Add a binding to an existing queue; remembered and re-applied on reconnect."""

    @abc.abstractmethod
    def unbind(self, queue: str, binding: Binding) -> None:
        """Remove a binding added with ``bind`` (and forget it); no error if queue or binding is gone."""

    @abc.abstractmethod
    def delete_queue(self, name: str) -> None: ...

    @abc.abstractmethod
    def delete_exchange(self, name: str) -> None:
        """Delete an exchange (and its bindings) and forget it; no error if it does not exist."""

    @abc.abstractmethod
    def purge_queue(self, name: str) -> int: ...

    @abc.abstractmethod
    def queue_counts(self, name: str) -> tuple[int, int]:
        """(ready messages, consumers) of a queue; raises ``KeyError`` if it does not exist."""

    @abc.abstractmethod
    def publish(
        self, exchange: str, routing_key: str, message: Message, *, mandatory: bool = True
    ) -> Future[None]: ...

    @abc.abstractmethod
    def consume(self, queue: str, handler: Handler, *, prefetch: int = 8, concurrency: int = 1) -> str:
        """Start consuming; returns a consumer tag. Handlers run on transport-owned threads."""

    @abc.abstractmethod
    def cancel(self, consumer_tag: str) -> None:
        """Stop delivering to this consumer; deliveries already handed out may still be settled."""

    @abc.abstractmethod
    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` once after ``delay`` seconds on a transport thread (used for heartbeats)."""

    @abc.abstractmethod
    def close(self, timeout: float = 10.0) -> None:
        """Cancel consumers, wait up to ``timeout`` for running handlers and pending settlements,
        then close. Idempotent."""

    @property
    @abc.abstractmethod
    def is_open(self) -> bool: ...

    @property
    def user(self) -> str | None:
        """The broker login this transport publishes as (``Message.user_id`` of its messages);
        None when there is no broker account (in-memory) or it is not known (EXTERNAL auth)."""
        return None

    @property
    def blocked(self) -> bool:
        """True while the broker refuses to read this connection's publishes (resource alarm):
        publish futures then stay pending until it clears."""
        return False

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until the transport is connected (reconnects included);
        True when it is."""
        return self.is_open

    def __enter__(self) -> Transport:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_confirm(transport: Transport, fut: Future[None], timeout: float) -> None:
    """Wait for a publish confirm for up to ``timeout`` seconds, not counting the time the broker
    blocks publishing (a resource alarm queues the message, it does not lose it). Raises the
    publish's ``TransportError`` or ``TimeoutError``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fut.result(max(0.05, min(1.0, deadline - time.monotonic())))
            return
        except FutureTimeout:
            if transport.blocked:
                deadline = max(deadline, time.monotonic() + 1.0)
            elif time.monotonic() >= deadline:
                raise TimeoutError(f"no publisher confirm within {timeout:g} s") from None


def publish_confirmed(
    transport: Transport,
    exchange: str,
    routing_key: str,
    message: Message,
    *,
    timeout: float,
    mandatory: bool = True,
) -> None:
    """Publish and wait for the confirm (``wait_confirm``), riding out a reconnect: on
    ``ConnectionLost`` wait for the transport to reconnect and publish again, until ``timeout``
    seconds have passed. Delivery is at-least-once (the lost copy may have reached the broker), so
    use it for messages whose consumers deduplicate by ``message_id``. Raises the last
    ``TransportError`` or ``TimeoutError`` once the deadline passes; ``Unroutable`` and
    ``PublishNacked`` are not retried."""
    deadline = time.monotonic() + timeout
    while True:
        fut = transport.publish(exchange, routing_key, message, mandatory=mandatory)
        try:
            wait_confirm(transport, fut, max(0.0, deadline - time.monotonic()))
            return
        except ConnectionLost:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not transport.wait_ready(remaining):
                raise
            log.warning("publish to %r lost with its connection; publishing again", exchange)
