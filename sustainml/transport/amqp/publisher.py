"""The publishing part of the AMQP transport: one confirm-mode channel and a bounded window of
publishes awaiting their confirm.

``publish`` may be called from any thread; it only schedules the ``basic.publish`` on the I/O thread
(the only thread that touches pika) and returns a Future resolved by ``basic.ack`` /
``basic.nack``. A mandatory message that is returned (``basic.return`` always precedes its ack on
the channel) fails with ``Unroutable``; the return is matched to its publish through a private
header (``x-sustainml-pubseq``) that the consumer side strips again. Every method marked
"(I/O thread)" runs there only.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pika.exceptions
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from sustainml.transport.amqp.callbacks import resolve, shielded
from sustainml.transport.amqp.connection import BLOCKED_CONNECTION_TIMEOUT, Connection
from sustainml.transport.amqp.failures import ChannelError, close_reason
from sustainml.transport.base import ConnectionLost, Message, PublishNacked, TransportError, Unroutable

log = logging.getLogger(__name__)

# Private header correlating a basic.return with the publish it belongs to (stripped on consume).
PUBSEQ_HEADER = "x-sustainml-pubseq"


def to_properties(message: Message, user_id: str | None) -> BasicProperties:
    return BasicProperties(
        user_id=user_id,
        content_type=message.content_type,
        headers=dict(message.headers),
        delivery_mode=2 if message.persistent else 1,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        expiration=str(message.expiration_ms) if message.expiration_ms is not None else None,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


@dataclass
class _PendingPublish:
    future: Future[None]
    exchange: str
    routing_key: str
    returned: str | None = None  # reply text of a basic.return, if any


_Buffered = tuple[str, str, BasicProperties, bytes, bool, Future[None]]


class Publisher:
    """Publisher confirms on one channel, reopened when the broker closes it."""

    def __init__(self, link: Connection, max_in_flight: int) -> None:
        self._link = link
        self._max_in_flight = max(1, max_in_flight)
        # Publishing stays possible while close() drains handlers (their outputs must go out).
        self.stopped = False
        self._closed = False  # set last by close(): wakes publishers waiting for the window

        # I/O-thread state.
        self._channel: Channel | None = None
        self._reopening = False
        self._seq = 0
        self._pending: dict[int, _PendingPublish] = {}
        self._buffer: list[_Buffered] = []

        # Publish window (caller threads block while it is full, except the I/O thread).
        self._window_cv = threading.Condition()
        self._in_flight = 0

    def publish(self, exchange: str, routing_key: str, message: Message, *, mandatory: bool) -> Future[None]:
        fut: Future[None] = Future()
        if self.stopped or not self._link.started:
            fut.set_exception(ConnectionLost(f"publish to {exchange!r}: the transport is not connected"))
            return fut
        props = to_properties(message, self._link.user_id)
        # The window bounds memory and confirm latency; the I/O thread itself must never wait.
        if not self._link.on_io_thread():
            with self._window_cv:
                if not self._window_cv.wait_for(
                    lambda: self._in_flight < self._max_in_flight or self._closed,
                    BLOCKED_CONNECTION_TIMEOUT * 2,
                ):
                    fut.set_exception(TransportError(f"publish to {exchange!r}: confirm window stayed full"))
                    return fut
                self._in_flight += 1
        else:
            with self._window_cv:
                self._in_flight += 1
        fut.add_done_callback(self._release_window)
        try:
            self._link.call_soon(
                lambda: self._do_publish(exchange, routing_key, props, message.body, mandatory, fut)
            )
        except ConnectionLost as exc:
            resolve(fut, exc=exc)
        return fut

    def _release_window(self, _fut: Future[None]) -> None:
        with self._window_cv:
            self._in_flight -= 1
            self._window_cv.notify_all()

    def _do_publish(
        self,
        exchange: str,
        routing_key: str,
        props: BasicProperties,
        body: bytes,
        mandatory: bool,
        fut: Future[None],
    ) -> None:
        """(I/O thread) Send one message on the confirm channel and track its delivery tag."""
        if fut.done():
            return
        ch = self._channel
        if ch is None or not ch.is_open:
            conn = self._link.conn
            if self._reopening and conn is not None and conn.is_open:
                self._buffer.append((exchange, routing_key, props, body, mandatory, fut))
            else:
                resolve(
                    fut,
                    exc=ConnectionLost(f"publish to {exchange!r}: not connected to {self._link.safe_url}"),
                )
            return
        seq = self._seq + 1
        if mandatory:
            props.headers = dict(props.headers or {})
            props.headers[PUBSEQ_HEADER] = seq
        try:
            ch.basic_publish(exchange, routing_key, body, props, mandatory=mandatory)
        except Exception as exc:
            resolve(fut, exc=TransportError(f"publish to {exchange!r} failed: {exc!r}"))
            return
        self._seq = seq
        self._pending[seq] = _PendingPublish(fut, exchange, routing_key)

    def _on_return(self, ch: Channel, method: Basic.Return, props: BasicProperties, _body: bytes) -> None:
        seq = (props.headers or {}).get(PUBSEQ_HEADER)
        pending = self._pending.get(seq) if isinstance(seq, int) and ch is self._channel else None
        if pending is None:
            log.warning(
                "basic.return for an unknown publish (exchange=%r, routing_key=%r, %s)",
                method.exchange,
                method.routing_key,
                method.reply_text,
            )
            return
        pending.returned = f"{method.reply_code} {method.reply_text}"

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tag: int = method.delivery_tag
        # multiple=True confirms everything up to the tag; dict order is publish order.
        seqs = list(itertools.takewhile(lambda s: s <= tag, self._pending)) if method.multiple else [tag]
        nacked = isinstance(method, Basic.Nack)
        for seq in seqs:
            p = self._pending.pop(seq, None)
            if p is None:
                continue
            if nacked:
                resolve(
                    p.future,
                    exc=PublishNacked(
                        f"broker refused the message to {p.exchange!r} / {p.routing_key!r} (basic.nack)"
                    ),
                )
            elif p.returned is not None:
                resolve(
                    p.future,
                    exc=Unroutable(
                        f"no queue bound for exchange {p.exchange!r}, routing key {p.routing_key!r} "
                        f"({p.returned})"
                    ),
                )
            else:
                resolve(p.future, None)
        if nacked:
            self._reset_after_nack()

    def _reset_after_nack(self) -> None:
        """(I/O thread) A nack means a queue refused the message (full with reject-publish, or a
        quorum queue that could not commit). After the node leading quorum queues stopped,
        RabbitMQ 3.10 was seen refusing a channel's publishes for minutes although every bound
        queue had its new leader and majority online (docs/reliability.md): reopen the channel,
        so that its state does not keep a transient refusal going. Publishes in flight on it fail
        with ConnectionLost and are retried by their owners like any lost channel's."""
        ch = self._channel
        if ch is None or self._reopening or not ch.is_open:
            return
        log.warning(
            "publish channel on %s: the broker refused a publish (basic.nack); reopening it",
            self._link.safe_url,
        )
        ch.close()

    # ------------------------------------------------------------------ the confirm channel
    def open_channel(self, conn: SelectConnection, on_ready: Callable[[], None] | None = None) -> None:
        """(I/O thread) Open the confirm-mode publish channel; flush buffered publishes once ready."""
        self._reopening = True
        self._seq = 0

        def on_close(ch: Channel, reason: Exception) -> None:
            self._on_channel_closed(ch, reason)

        def on_select_ok(_frame: Any, ch: Channel) -> None:
            if ch.is_closed:
                return
            self._channel = ch
            self._reopening = False
            buffered, self._buffer = self._buffer, []
            for item in buffered:
                self._do_publish(*item)
            if on_ready is not None:
                on_ready()

        def on_open(ch: Channel) -> None:
            ch.add_on_return_callback(shielded(self._on_return))
            ch.confirm_delivery(
                shielded(self._on_confirm), callback=shielded(functools.partial(on_select_ok, ch=ch))
            )

        ch = conn.channel(on_open_callback=shielded(on_open))
        ch.add_on_close_callback(shielded(on_close))

    def _on_channel_closed(self, ch: Channel, reason: Exception) -> None:
        if ch is not self._channel and not self._reopening:
            return
        self._channel = None
        self._reopening = False
        lost = ConnectionLost(f"publish channel closed before the confirm: {close_reason(reason)}")
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker) and reason.reply_code == 404:
            # The broker names the missing exchange: publishes to it get a precise error; the
            # innocent ones in flight on the same channel only lost their channel.
            pending, self._pending = self._pending, {}
            for p in pending.values():
                if f"no exchange '{p.exchange}'" in reason.reply_text:
                    resolve(p.future, exc=ChannelError(f"publish to {p.exchange!r}", 404, reason.reply_text))
                else:
                    resolve(p.future, exc=lost)
        self.fail_pending(lost)
        conn = self._link.conn
        if conn is not None and conn.is_open and not self._link.closing:
            # A publish to a missing exchange (404), or closed here after a nack; the connection
            # is fine, reopen.
            log.warning(
                "publish channel on %s closed (%s); reopening",
                self._link.safe_url,
                close_reason(reason),
            )
            self.open_channel(conn)

    def connection_lost(self, exc: ConnectionLost) -> None:
        """(I/O thread) The connection is gone: so is the channel, and every publish waiting on it."""
        self._channel = None
        self._reopening = False
        self.fail_pending(exc)

    def fail_pending(self, exc: TransportError) -> None:
        pending, self._pending = self._pending, {}
        buffered, self._buffer = self._buffer, []
        for p in pending.values():
            resolve(p.future, exc=exc)
        for item in buffered:
            resolve(item[5], exc=exc)

    @property
    def waiting(self) -> int:
        """Publishes sent and not yet confirmed."""
        return len(self._pending)

    # ------------------------------------------------------------------ shutdown
    def wait_confirms(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the outstanding publishes' confirms."""
        with self._window_cv:
            if not self._window_cv.wait_for(lambda: self._in_flight <= 0, max(0.0, timeout)):
                log.warning(
                    "close: %d publishes still unconfirmed; they fail with ConnectionLost", self._in_flight
                )

    def close_window(self) -> None:
        """Wake every publisher waiting for room in the window (the transport is closed)."""
        with self._window_cv:
            self._closed = True
            self._window_cv.notify_all()
