"""``AmqpTransport``: the Transport contract over RabbitMQ, a facade over its four parts.

- ``Connection`` (connection.py): the I/O thread, the broker connection and its reconnection;
- ``Declarer`` (declarer.py): declarations, replayed after a reconnect;
- ``Publisher`` (publisher.py): the confirm channel and the publish window;
- ``Consumers`` (consumer.py): consumers, their deliveries and their retirement.

The facade forwards the contract's calls to them, tells them about the connection's events, and
orders ``close``. Only the I/O thread touches pika objects; the parts hand work to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future

from pika.adapters.select_connection import SelectConnection

from sustainml.transport import TlsFiles
from sustainml.transport.amqp.connection import Connection
from sustainml.transport.amqp.consumer import Consumers
from sustainml.transport.amqp.declarer import Declarer
from sustainml.transport.amqp.publisher import Publisher
from sustainml.transport.base import (
    Binding,
    ConnectionLost,
    ExchangeSpec,
    Handler,
    Message,
    QueueSpec,
    Transport,
)

log = logging.getLogger(__name__)


class _Events:
    """How the connection's events reach the other parts (``ConnectionEvents``)."""

    _declarer: Declarer
    _publisher: Publisher
    _consumers: Consumers

    def wire(self, declarer: Declarer, publisher: Publisher, consumers: Consumers) -> None:
        self._declarer = declarer
        self._publisher = publisher
        self._consumers = consumers

    def connection_opened(self, conn: SelectConnection, ready: Callable[[], None]) -> None:
        self._publisher.open_channel(conn, ready)

    def connection_lost(self, exc: ConnectionLost) -> None:
        self._publisher.connection_lost(exc)
        self._consumers.connection_lost()

    def restore(self) -> None:
        """Re-declare everything, then re-issue every active consumer."""
        self._declarer.replay()
        self._consumers.restore()

    def publishes_waiting(self) -> int:
        return self._publisher.waiting


class AmqpTransport(Transport):
    """RabbitMQ transport (pika ``SelectConnection`` on a dedicated I/O thread)."""

    def __init__(
        self,
        url: str,
        *,
        heartbeat: int = 30,
        name: str = "sustainml",
        connect_timeout: float = 10.0,
        op_timeout: float = 30.0,
        max_in_flight: int = 1000,
        tls: TlsFiles | None = None,
        retry_refused: bool = True,
    ) -> None:
        """``retry_refused``: keep retrying a refused or unresolvable address until
        ``connect_timeout`` (a process waiting for a broker that starts); False for commands, which
        report it at once."""
        events = _Events()
        self._link = Connection(
            url,
            events,
            heartbeat=heartbeat,
            name=name,
            connect_timeout=connect_timeout,
            op_timeout=op_timeout,
            tls=tls,
            retry_refused=retry_refused,
        )
        self._declarer = Declarer(self._link)
        self._publisher = Publisher(self._link, max_in_flight)
        self._consumers = Consumers(self._link, self._declarer)
        events.wire(self._declarer, self._publisher, self._consumers)

    # ------------------------------------------------------------------ properties
    @property
    def user(self) -> str | None:
        """The broker login this transport publishes as (its messages' user-id)."""
        return self._link.user_id

    @property
    def url(self) -> str:
        """The broker URL without credentials."""
        return self._link.safe_url

    @property
    def name(self) -> str:
        return self._link.name

    @property
    def generation(self) -> int:
        """How many connections this transport has opened: grows by one on every reconnect."""
        return self._link.generation

    @property
    def is_open(self) -> bool:
        return self._link.is_open

    @property
    def blocked(self) -> bool:
        """True while the broker blocks this connection's publishes (memory or disk alarm)."""
        return self._link.blocked

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the transport to be connected (e.g. after a reconnect)."""
        return self._link.ready.wait(timeout) and not self._link.closing

    # ------------------------------------------------------------------ the contract
    def connect(self) -> None:
        self._link.connect()

    def declare_exchange(self, spec: ExchangeSpec) -> None:
        self._declarer.declare_exchange(spec)

    def declare_queue(self, spec: QueueSpec) -> None:
        self._declarer.declare_queue(spec)

    def bind(self, queue: str, binding: Binding) -> None:
        self._declarer.bind(queue, binding)

    def unbind(self, queue: str, binding: Binding) -> None:
        self._declarer.unbind(queue, binding)

    def delete_queue(self, name: str) -> None:
        self._declarer.delete_queue(name)

    def delete_exchange(self, name: str) -> None:
        self._declarer.delete_exchange(name)

    def purge_queue(self, name: str) -> int:
        return self._declarer.purge_queue(name)

    def queue_counts(self, name: str) -> tuple[int, int]:
        return self._declarer.queue_counts(name)

    def publish(
        self, exchange: str, routing_key: str, message: Message, *, mandatory: bool = True
    ) -> Future[None]:
        return self._publisher.publish(exchange, routing_key, message, mandatory=mandatory)

    def consume(self, queue: str, handler: Handler, *, prefetch: int = 8, concurrency: int = 1) -> str:
        return self._consumers.consume(queue, handler, prefetch=prefetch, concurrency=concurrency)

    def cancel(self, consumer_tag: str) -> None:
        self._consumers.cancel(consumer_tag)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self._link.call_later(delay, fn)

    def close(self, timeout: float = 10.0) -> None:
        link = self._link
        link.check_not_io_thread("close()")
        if not link.begin_close() or not link.started:
            return
        consumers = self._consumers.take_all()
        deadline = time.monotonic() + timeout
        # 1-2. Stop deliveries; running handlers finish and settle.
        self._consumers.stop(consumers, deadline, timeout)
        # 3. Outstanding publishes get their confirms.
        self._publisher.wait_confirms(deadline - time.monotonic())
        # 4-5. Flush what was handed to the I/O thread, close the connection, stop the threads, then
        # fail what is left.
        self._publisher.stopped = True
        link.shut_down(deadline)
        self._publisher.fail_pending(ConnectionLost("the transport was closed"))
        self._consumers.join_retirers(deadline)
        self._publisher.close_window()
        link.closed = True
        link.ready.clear()
        log.info("closed connection to %s", link.safe_url)
