"""The consuming part of the AMQP transport: consumers, their deliveries, and their retirement.

Each consumer has its own channel (so its prefetch applies to it alone) and a pool of
``concurrency`` handler threads; handlers never run on the I/O thread, so AMQP heartbeats keep
flowing whatever a handler does. pika delivers on the I/O thread (the only thread that touches
pika); a delivery is settled from any thread by handing the ack/reject back to it. A consumer
survives reconnects (same tag, new channel); a cancelled one is *retired*: its queued deliveries go
back, its running handlers finish and settle, then its channel closes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from sustainml.transport.amqp.callbacks import WRONG_STATE, resolve, shielded
from sustainml.transport.amqp.connection import Connection
from sustainml.transport.amqp.declarer import Declarer
from sustainml.transport.amqp.failures import ChannelError, close_reason, map_channel_close
from sustainml.transport.amqp.publisher import PUBSEQ_HEADER
from sustainml.transport.base import ConnectionLost, Delivery, Handler, Message, TransportError

log = logging.getLogger(__name__)

# The delivery a handler thread is working on (close() called from a handler must not wait for it).
_current = threading.local()

# How long a cancelled consumer's channel stays open for late settlements of its deliveries.
RETIRE_TIMEOUT = 60.0


def to_message(props: BasicProperties, body: bytes) -> Message:
    headers = dict(props.headers or {})
    headers.pop(PUBSEQ_HEADER, None)
    expiration: int | None = None
    if props.expiration is not None:
        try:
            expiration = int(props.expiration)
        except ValueError:
            log.warning("ignoring non-numeric expiration %r on a delivery", props.expiration)
    return Message(
        body=body,
        headers=headers,
        message_id=props.message_id,
        correlation_id=props.correlation_id,
        reply_to=props.reply_to,
        type=props.type,
        app_id=props.app_id,
        timestamp=props.timestamp,
        expiration_ms=expiration,
        persistent=props.delivery_mode == 2,
        content_type=props.content_type or "",
        user_id=props.user_id,
    )


class _Consumer:
    """A consume() registration; survives reconnects (same tag, new channel)."""

    def __init__(
        self, tag: str, queue: str, handler: Handler, prefetch: int, concurrency: int, prefix: str
    ) -> None:
        self.tag = tag
        self.queue = queue
        self.handler = handler
        self.prefetch = prefetch
        self.concurrency = concurrency
        self.executor = ThreadPoolExecutor(concurrency, thread_name_prefix=f"{prefix}-{queue}")
        self.active = True
        self.channel: Channel | None = None  # I/O thread writes; others only read is_open
        self.channel_generation = -1
        self.start_lock = threading.Lock()  # serialises (re)starts of this consumer
        self.cv = threading.Condition()
        self.unsettled = 0  # deliveries received and not yet settled (or skipped)

    def delivery_done(self) -> None:
        with self.cv:
            self.unsettled -= 1
            self.cv.notify_all()

    def wait_settled(self, deadline: float, allow: int = 0) -> bool:
        """Wait until at most ``allow`` deliveries are unsettled (``allow`` = the caller's own)."""
        with self.cv:
            return self.cv.wait_for(lambda: self.unsettled <= allow, max(0.0, deadline - time.monotonic()))


class AmqpDelivery(Delivery):
    """A delivery from a consumer channel; settle it from any thread."""

    def __init__(
        self,
        consumers: Consumers,
        consumer: _Consumer,
        channel: Channel,
        generation: int,
        delivery_tag: int,
        message: Message,
        exchange: str,
        routing_key: str,
        redelivered: bool,
    ) -> None:
        self.message = message
        self.exchange = exchange
        self.routing_key = routing_key
        self.redelivered = redelivered
        self.queue = consumer.queue
        self.delivery_tag = delivery_tag
        self._consumers = consumers
        self._consumer = consumer
        self._channel = channel
        self._generation = generation
        self._lock = threading.Lock()
        self._settled: str | None = None

    @property
    def settled(self) -> bool:
        return self._settled is not None

    @property
    def stale(self) -> bool:
        """True when the channel it came on is gone: settling it can no longer reach the broker."""
        return self._generation != self._consumers.generation or not self._channel.is_open

    def ack(self) -> None:
        self._settle("ack", requeue=False)

    def reject(self, requeue: bool = False) -> None:
        self._settle("reject", requeue=requeue)

    def _mark(self, action: str) -> bool:
        with self._lock:
            if self._settled is not None:
                log.warning(
                    "delivery %d of queue %r (message_id=%r) already settled with %s; ignoring %s",
                    self.delivery_tag,
                    self.queue,
                    self.message.message_id,
                    self._settled,
                    action,
                )
                return False
            self._settled = action
        self._consumer.delivery_done()
        return True

    def _settle(self, action: str, *, requeue: bool) -> None:
        if not self._mark(action):
            return
        self._consumers.settle(self, action, requeue)

    def _own(self, consumer: _Consumer) -> int:
        """1 when this delivery, of ``consumer``, is still unsettled (its handler is the caller)."""
        return 1 if self._consumer is consumer and not self.settled else 0


class Consumers:
    """Every consumer of one transport, re-issued after a reconnect."""

    def __init__(self, link: Connection, declarer: Declarer) -> None:
        self._link = link
        self._declarer = declarer
        self._lock = threading.Lock()
        self._consumers: dict[str, _Consumer] = {}
        self._retiring: set[_Consumer] = set()  # cancelled consumers whose handlers may still run
        self._retirers: list[threading.Thread] = []

    @property
    def generation(self) -> int:
        return self._link.generation

    def consume(self, queue: str, handler: Handler, *, prefetch: int, concurrency: int) -> str:
        if prefetch < 1 or concurrency < 1:
            raise ValueError("prefetch and concurrency must be >= 1")
        self._link.wait_ready_for("consume", self._link.op_timeout)
        name = self._link.name
        tag = f"{name}.{queue}.{uuid.uuid4().hex[:8]}"
        c = _Consumer(tag, queue, handler, prefetch, concurrency, name)
        with self._lock:
            self._consumers[tag] = c
        try:
            self._ensure(c)
        except ConnectionLost:
            pass  # stays registered: the reconnect re-issues it
        except Exception:
            with self._lock:
                self._consumers.pop(tag, None)
            c.active = False
            c.executor.shutdown(wait=False)
            raise
        return tag

    def _ensure(self, c: _Consumer) -> None:
        """Start the consumer on a fresh channel unless it already runs on the current connection."""
        link = self._link
        with c.start_lock:
            if not c.active:
                return
            ch = c.channel
            if ch is not None and ch.is_open and c.channel_generation == link.generation:
                return

            def start(fut: Future[None]) -> None:
                conn = link.conn
                if conn is None or not conn.is_open:
                    resolve(fut, exc=ConnectionLost(f"consume {c.queue!r}: not connected"))
                    return
                generation = link.generation

                def on_close(closed: Channel, reason: Exception) -> None:
                    if not fut.done():
                        resolve(fut, exc=map_channel_close(f"consume {c.queue!r}", reason))
                    else:
                        self._on_channel_closed(c, closed, reason)

                def on_consume_ok(_frame: object, ch: Channel) -> None:
                    if not c.active or fut.done():  # cancelled, or the caller gave up waiting
                        ch.close()
                        return
                    c.channel = ch
                    c.channel_generation = generation
                    resolve(fut, None)

                def on_qos_ok(_frame: object, ch: Channel) -> None:
                    ch.basic_consume(
                        c.queue,
                        shielded(functools.partial(self._on_message, c, generation)),
                        auto_ack=False,
                        consumer_tag=c.tag,
                        callback=shielded(functools.partial(on_consume_ok, ch=ch), fut),
                    )

                def on_open(ch: Channel) -> None:
                    ch.add_on_cancel_callback(shielded(functools.partial(self._on_broker_cancel, c, ch)))
                    # One channel per consumer, so this prefetch applies to this consumer only.
                    ch.basic_qos(
                        prefetch_count=c.prefetch,
                        callback=shielded(functools.partial(on_qos_ok, ch=ch), fut),
                    )

                new = conn.channel(on_open_callback=shielded(on_open, fut))
                new.add_on_close_callback(shielded(on_close))

            link.io_call(f"consume {c.queue!r}", start, wait_ready=False)

    def _on_message(
        self,
        c: _Consumer,
        generation: int,
        ch: Channel,
        method: Basic.Deliver,
        props: BasicProperties,
        body: bytes,
    ) -> None:
        """(I/O thread) Hand a delivery to the consumer's pool."""
        tag = int(method.delivery_tag or 0)
        if not c.active:
            ch.basic_reject(tag, requeue=True)  # cancelled: give it back now
            return
        delivery = AmqpDelivery(
            self,
            c,
            ch,
            generation,
            tag,
            to_message(props, body),
            method.exchange or "",
            method.routing_key or "",
            bool(method.redelivered),
        )
        with c.cv:
            c.unsettled += 1
        try:
            task = c.executor.submit(self._run_handler, c, delivery)
        except RuntimeError:  # pool shut down by cancel()/close() a moment ago
            c.delivery_done()
            ch.basic_reject(tag, requeue=True)
            return

        def on_task_done(t: Future[None]) -> None:
            if t.cancelled():  # never started (close/cancel): the channel close requeues it
                c.delivery_done()

        task.add_done_callback(on_task_done)

    def _run_handler(self, c: _Consumer, d: AmqpDelivery) -> None:
        if d.stale:
            # Its channel died before we started: the broker redelivers it elsewhere.
            log.debug("skipping delivery %d of %r from a closed channel", d.delivery_tag, c.queue)
            d._mark("skip")
            return
        _current.delivery = d
        try:
            c.handler(d)
        except Exception:
            log.exception(
                "handler for queue %r failed on message_id=%r; dead-lettering it",
                c.queue,
                d.message.message_id,
            )
            if not d.settled:
                d.reject(requeue=False)
        finally:
            _current.delivery = None

    def settle(self, d: AmqpDelivery, action: str, requeue: bool) -> None:
        def run() -> None:
            if d.stale:
                log.debug(
                    "%s of delivery %d on %r is a no-op: its channel is gone (broker redelivers)",
                    action,
                    d.delivery_tag,
                    d.queue,
                )
                return
            try:
                if action == "ack":
                    d._channel.basic_ack(d.delivery_tag)
                else:
                    d._channel.basic_reject(d.delivery_tag, requeue=requeue)
            except WRONG_STATE:  # the channel started closing since the check: same as stale
                log.debug(
                    "%s of delivery %d on %r raced with its channel closing", action, d.delivery_tag, d.queue
                )

        if self._link.on_io_thread():
            run()  # e.g. an ack from a publish's confirm callback: no need for another loop turn
            return
        try:
            self._link.call_soon(run)
        except ConnectionLost:
            log.debug("%s of delivery %d on %r after close: no-op", action, d.delivery_tag, d.queue)

    def _on_channel_closed(self, c: _Consumer, ch: Channel, reason: Exception) -> None:
        """(I/O thread) A consumer channel closed after it was started."""
        if ch is not c.channel:
            return
        c.channel = None
        conn = self._link.conn
        if self._link.closing or not c.active or conn is None or not conn.is_open:
            return  # closing, cancelled, or the reconnect re-issues it
        log.warning(
            "consumer channel of queue %r closed by the broker (%s); re-consuming",
            c.queue,
            close_reason(reason),
        )
        self._link.submit_maint(functools.partial(self._recover, c, redeclare=False))

    def _on_broker_cancel(self, c: _Consumer, ch: Channel, _frame: object) -> None:
        """(I/O thread) basic.cancel from the broker: usually the queue was deleted."""
        if self._link.closing or not c.active or ch is not c.channel:
            return
        known, deleted = self._declarer.queue_state(c.queue)
        if not known:
            if deleted:
                log.info("consumer %s stopped: queue %r was deleted through this transport", c.tag, c.queue)
            else:
                log.error(
                    "consumer %s on queue %r was cancelled by the broker and the queue is not "
                    "declared by this transport; not re-consuming",
                    c.tag,
                    c.queue,
                )
            c.active = False
            with self._lock:
                self._consumers.pop(c.tag, None)
            self._retire(c, ch)
            return
        log.warning("consumer on queue %r cancelled by the broker; re-declaring and re-consuming", c.queue)
        c.channel = None
        ch.close()  # its deliveries cannot be settled on a deleted queue anyway
        self._link.submit_maint(functools.partial(self._recover, c, redeclare=True))

    def _recover(self, c: _Consumer, *, redeclare: bool) -> None:
        """(maintenance thread) Re-declare the queue if asked, then re-consume."""
        if not c.active or self._link.closing:
            return
        try:
            if redeclare:
                self._declarer.redeclare_queue(c.queue)
            self._ensure(c)
            log.warning("consumer on queue %r re-established", c.queue)
        except ConnectionLost:
            pass  # the reconnect loop re-issues it
        except Exception:
            log.exception("could not re-establish the consumer on queue %r", c.queue)

    def cancel(self, consumer_tag: str) -> None:
        with self._lock:
            c = self._consumers.pop(consumer_tag, None)
        if c is None:
            log.warning("cancel: unknown consumer tag %r", consumer_tag)
            return
        c.active = False
        ch = c.channel
        if ch is not None:
            self._basic_cancel(c, ch)
        self._retire(c, ch)

    def _basic_cancel(self, c: _Consumer, ch: Channel, timeout: float | None = None) -> None:
        def start(fut: Future[None]) -> None:
            # A consumer the broker cancelled already (its queue was deleted) is unknown to pika,
            # which then logs "consumer not found" and never calls back: nothing left to cancel.
            if not ch.is_open or c.tag not in ch.consumer_tags:
                resolve(fut, None)
                return
            ch.basic_cancel(c.tag, callback=shielded(lambda _f: resolve(fut, None)))

        try:
            self._link.io_call(f"cancel consumer on {c.queue!r}", start, wait_ready=False, timeout=timeout)
        except TransportError as exc:
            log.debug("basic.cancel of %s: %s", c.tag, exc)

    def _retire(self, c: _Consumer, ch: Channel | None) -> None:
        """Let queued-but-unstarted deliveries go back, wait for settlements, then close the channel."""
        c.executor.shutdown(wait=False, cancel_futures=True)
        link = self._link

        def run() -> None:
            deadline = time.monotonic() + RETIRE_TIMEOUT
            while not link.closing and not c.wait_settled(min(deadline, time.monotonic() + 0.5)):
                if time.monotonic() >= deadline:
                    log.warning(
                        "consumer on %r: %d deliveries still unsettled after %.0f s; closing its "
                        "channel (the broker redelivers them)",
                        c.queue,
                        c.unsettled,
                        RETIRE_TIMEOUT,
                    )
                    break
            if ch is not None and not link.closing:
                with contextlib.suppress(ConnectionLost):
                    link.call_soon(lambda: ch.close() if ch.is_open else None)

        def run_then_forget() -> None:
            try:
                run()
            finally:
                with self._lock:
                    self._retiring.discard(c)

        t = threading.Thread(target=run_then_forget, name=f"{link.name}-retire-{c.queue}", daemon=True)
        with self._lock:
            self._retirers = [r for r in self._retirers if r.is_alive()]
            self._retiring.add(c)  # close() still waits for its running handlers
            # Started before close() can see it: joining a thread not yet started raises.
            t.start()
            self._retirers.append(t)

    # ------------------------------------------------------------------ connection events
    def restore(self) -> None:
        """(maintenance thread) Re-issue every active consumer on the new connection."""
        with self._lock:
            consumers = [c for c in self._consumers.values() if c.active]
        for c in consumers:
            try:
                self._ensure(c)
            except ChannelError as exc:
                log.error("re-consuming queue %r failed: %s", c.queue, exc)

    def connection_lost(self) -> None:
        """(I/O thread) Every consumer lost its channel with the connection."""
        with self._lock:
            for c in self._consumers.values():
                c.channel = None

    # ------------------------------------------------------------------ shutdown
    def take_all(self) -> list[_Consumer]:
        """Forget every consumer (close() stops them)."""
        with self._lock:
            consumers = list(self._consumers.values())
            self._consumers.clear()
        return consumers

    def stop(self, consumers: list[_Consumer], deadline: float, timeout: float) -> None:
        """close(): stop deliveries, then wait until running handlers have settled what they hold."""
        # 1. Stop deliveries; unstarted work goes back to the queue when the channel closes.
        for c in consumers:
            c.active = False
            ch = c.channel
            if ch is not None:
                self._basic_cancel(c, ch, timeout=max(0.1, min(5.0, deadline - time.monotonic())))
            c.executor.shutdown(wait=False, cancel_futures=True)
        # 2. Running handlers finish and settle (acks may wait for their output's confirm).
        mine = getattr(_current, "delivery", None)  # close() called from a handler
        for c in consumers:
            own = mine._own(c) if isinstance(mine, AmqpDelivery) else 0
            if not c.wait_settled(deadline, allow=own):
                log.warning(
                    "close: %d deliveries of %r still unsettled after %.1f s; the broker redelivers them",
                    c.unsettled,
                    c.queue,
                    timeout,
                )
        # Consumers cancelled earlier may still be running handlers: they finish and settle too
        # (a node cancels its stage consumer before closing; its in-flight task must complete).
        with self._lock:
            retiring = list(self._retiring)
        for c in retiring:
            own = mine._own(c) if isinstance(mine, AmqpDelivery) else 0
            if not c.wait_settled(deadline, allow=own):
                log.warning(
                    "close: %d deliveries of cancelled consumer on %r still unsettled", c.unsettled, c.queue
                )

    def join_retirers(self, deadline: float) -> None:
        for t in list(self._retirers):
            t.join(max(0.0, deadline - time.monotonic()))
