"""Request/reply over the broker: configuration requests to nodes and requests to the orchestrator.

Requester side: one private reply queue per client (durable with x-expires, so it vanishes soon
after the client), a correlation id per call and a map of outstanding calls, so many requests may
be in flight at once. Every request carries ``expiration`` = the caller's timeout (a request that
nobody picks up in time is dropped by the broker instead of being executed late) and is published
``mandatory`` (no queue bound -> an immediate, clear error instead of a hang).

Responder side: ``reply`` publishes to the default exchange with the request's ``reply_to`` and
``correlation_id``. Replies are at-most-once (if the requester has gone, there is nobody to tell).
"""

from __future__ import annotations

import functools
import logging
import math
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from sustainml.topology import Topology
from sustainml.transport.base import Delivery, Message, Transport, TransportError, Unroutable

log = logging.getLogger(__name__)


DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
# Requests call_many sends before its first reply: the window grows from here by one per reply
# (doubling each round trip), so a slow responder never gets a whole large window at once.
START_WINDOW = 16


class ForeignQueue(ValueError):
    """A queue named by a message (reply_to, watch_queue, a replay target) lies outside the
    namespace: nothing is written to it."""


def check_own_queue(topology: Topology, name: str, field: str, *, direct_reply: bool = False) -> str:
    """``name`` if it is a queue of this namespace (``<ns>.<...>``), or RabbitMQ's direct reply-to
    pseudo-queue when ``direct_reply``; ``ForeignQueue`` naming ``field`` otherwise. Keeps a
    sender from making a node or the orchestrator write into another deployment's queues."""
    if direct_reply and (name == DIRECT_REPLY_TO or name.startswith(DIRECT_REPLY_TO + ".")):
        return name
    prefix = f"{topology.ns}."
    if not name.startswith(prefix) or len(name) <= len(prefix) or len(name) > 255:
        allowed = f"a queue named {prefix}*" + (f" or {DIRECT_REPLY_TO}" if direct_reply else "")
        raise ForeignQueue(
            f"{field}: {name!r:.120} is not a queue of namespace {topology.ns!r} (expected {allowed})"
        )
    return name


class RpcError(Exception):
    """A request could not be answered; the message says why and what to do. Raised by
    ``call_many``, it names the request (``index``) and holds the replies received until then
    (``replies``, in input order, None where none came)."""

    def __init__(
        self, message: str, index: int | None = None, replies: Sequence[Message | None] = ()
    ) -> None:
        super().__init__(message)
        self.index = index
        self.replies = list(replies)


class RpcTimeout(RpcError):
    pass


class CallsUnanswered(RpcTimeout):
    """A request of ``call_many`` stayed unanswered however often it was sent again."""


class PendingCall:
    """A request sent and not yet answered. ``reply`` resolves with the reply message, or with
    ``RpcError`` naming the target when the request could not be sent (no queue bound, a broker
    error); ``confirmed`` is the broker's publisher confirm."""

    def __init__(
        self, correlation_id: str, target: str, reply: Future[Message], confirmed: Future[None]
    ) -> None:
        self.correlation_id = correlation_id
        self.target = target
        self.reply = reply
        self.confirmed = confirmed

    def timeout_error(self, timeout: float) -> RpcTimeout:
        """What waiting ``timeout`` seconds for the reply without one means."""
        if not self.confirmed.done():
            return RpcTimeout(f"{self.target}: the broker did not confirm the request within {timeout:g} s")
        return RpcTimeout(
            f"{self.target} did not answer within {timeout:g} s: is a replica running? "
            f"(start one with `sustainml worker ...` or `sustainml up`)"
        )


class RpcClient:
    def __init__(self, transport: Transport, topology: Topology, owner_id: str | None = None) -> None:
        self._transport = transport
        self._owner_id = owner_id or uuid.uuid4().hex[:12]
        spec = topology.private_queue_spec("reply", self._owner_id)
        self.reply_queue = spec.name
        self._pending: dict[str, Future[Message]] = {}
        self._lock = threading.Lock()
        transport.declare_queue(spec)
        self._tag = transport.consume(self.reply_queue, self._on_reply, prefetch=64, concurrency=1)

    def call(
        self, exchange: str, routing_key: str, body: bytes, *, timeout: float, **options: Any
    ) -> Message:
        """Send a request and wait for its reply; raises ``RpcTimeout``/``RpcError`` naming the
        target. ``options``: those of ``send`` (type, target, headers)."""
        pending = self.send(exchange, routing_key, body, timeout=timeout, **options)
        try:
            return pending.reply.result(timeout)
        except FutureTimeout:
            raise pending.timeout_error(timeout) from None
        finally:
            self.forget(pending)

    def send(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        timeout: float,
        type: str | None = None,
        target: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> PendingCall:
        """Send a request without waiting: many may be in flight at once, each matched to its reply
        by its correlation id. ``timeout`` is the request's expiration (nobody executes it later).
        Call ``forget`` once its reply is in hand or no longer wanted."""
        target = target or routing_key
        corr = uuid.uuid4().hex
        answer: Future[Message] = Future()
        with self._lock:
            self._pending[corr] = answer
        msg = Message(
            body,
            headers=dict(headers or {}),
            correlation_id=corr,
            reply_to=self.reply_queue,
            type=type,
            expiration_ms=max(1, int(timeout * 1000)),
            persistent=False,
        )
        confirmed = self._transport.publish(exchange, routing_key, msg, mandatory=True)

        def on_confirm(fut: Future[None]) -> None:
            exc = fut.exception()
            if exc is None:
                return
            if isinstance(exc, Unroutable):
                error = RpcError(f"no queue is bound for {target}: is the deployment declared?")
            else:
                error = RpcError(f"{target}: request could not be sent: {exc}")
            with self._lock:
                waiting = self._pending.pop(corr, None)
            if waiting is not None:
                waiting.set_exception(error)

        confirmed.add_done_callback(on_confirm)
        return PendingCall(corr, target, answer, confirmed)

    def call_many(
        self,
        exchange: str,
        routing_key: str,
        bodies: Sequence[bytes],
        *,
        timeout: float,
        resend_for: float,
        window: int,
        target: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> list[Message]:
        """Send every body and return the replies in input order. At most ``window`` requests are
        unanswered at once (replies are matched by correlation id, so they may come in any order).
        A request unanswered after ``timeout`` s is sent again as it was (so only idempotent
        requests belong here), until ``resend_for`` s after it was first sent: then
        ``CallsUnanswered``. ``RpcError`` as soon as one cannot be sent. Both carry the replies
        received so far.

        The window adapts to the responder, so that no request waits in its queue until it
        expires (then to be sent again, and wait again): it starts at ``START_WINDOW`` and grows
        by one per reply; while the oldest request in flight has waited a quarter of its timeout
        (the responder is not keeping up) it stops growing, nothing is added, and it shrinks to
        what is in flight; a timeout halves it (once per ``timeout``)."""
        if window < 1:
            raise ValueError(f"window: expected at least 1 request in flight, got {window}")

        def send(body: bytes) -> PendingCall:
            return self.send(exchange, routing_key, body, timeout=timeout, target=target, headers=headers)

        pipeline = _Pipeline(bodies, send, self.forget, timeout=timeout, resend_for=resend_for, window=window)
        try:
            return pipeline.run()
        finally:
            for pending, _sent in pipeline.in_flight.values():
                self.forget(pending)

    def forget(self, pending: PendingCall) -> None:
        """Stop waiting for ``pending``'s reply (one arriving later is dropped)."""
        with self._lock:
            self._pending.pop(pending.correlation_id, None)

    def _on_reply(self, delivery: Delivery) -> None:
        corr = delivery.message.correlation_id or ""
        with self._lock:
            fut = self._pending.pop(corr, None)
        delivery.ack()
        if fut is None:
            log.debug("reply %s arrived after its caller gave up", corr)
            return
        fut.set_result(delivery.message)

    def close(self) -> None:
        self._transport.cancel(self._tag)
        try:
            self._transport.delete_queue(self.reply_queue)
        except TransportError as exc:  # the queue also expires on its own (x-expires)
            log.debug("could not delete reply queue %s: %s", self.reply_queue, exc)


@dataclass
class _Pipeline:
    """One ``call_many``: which request is in flight, answered, or waiting to be sent again."""

    bodies: Sequence[bytes]
    send: Callable[[bytes], PendingCall]
    forget: Callable[[PendingCall], None]
    timeout: float
    resend_for: float
    window: int
    limit: int = field(init=False)  # the window now: grown by replies, halved by a timeout
    last_cut: float = -math.inf
    replies: list[Message | None] = field(init=False)
    done: queue.SimpleQueue[tuple[int, PendingCall]] = field(default_factory=queue.SimpleQueue)
    # Index -> (its latest sending, when that was sent); insertion order is sending order, so the
    # first entry is always the next to time out.
    in_flight: dict[int, tuple[PendingCall, float]] = field(default_factory=dict)
    first_sent: dict[int, float] = field(default_factory=dict)
    to_resend: deque[int] = field(default_factory=deque)
    next_new: int = 0
    answered: int = 0

    def __post_init__(self) -> None:
        self.limit = min(self.window, START_WINDOW)
        self.replies = [None] * len(self.bodies)

    def run(self) -> list[Message]:
        while self.answered < len(self.bodies):
            self._fill()
            oldest, (oldest_call, sent_at) = next(iter(self.in_flight.items()))
            try:
                index, pending = self.done.get(timeout=max(0.0, sent_at + self.timeout - time.monotonic()))
            except queue.Empty:
                self._timed_out(oldest, oldest_call)
                continue
            if self.in_flight.get(index, (None, 0.0))[0] is pending:  # else: a sending given up on
                self._answered(index, pending)
        return [reply for reply in self.replies if reply is not None]

    def _fill(self) -> None:
        if self._backlogged():  # what is in flight is as much as the responder keeps up with
            self.limit = max(1, min(self.limit, len(self.in_flight)))
            return
        while len(self.in_flight) < self.limit and (self.to_resend or self.next_new < len(self.bodies)):
            if self.to_resend:
                index = self.to_resend.popleft()
            else:
                index, self.next_new = self.next_new, self.next_new + 1
            pending = self.send(self.bodies[index])
            now = time.monotonic()
            self.first_sent.setdefault(index, now)
            self.in_flight[index] = (pending, now)
            pending.reply.add_done_callback(functools.partial(_put_answered, self.done, index, pending))

    def _backlogged(self) -> bool:
        """The oldest request in flight has waited a quarter of its timeout: one sent now would
        queue behind every other and could expire there. (A quarter: while the window grows, the
        newest request waits about twice as long as the oldest has so far.)"""
        if not self.in_flight:
            return False
        _oldest, sent_at = next(iter(self.in_flight.values()))
        return time.monotonic() - sent_at > self.timeout / 4

    def _timed_out(self, index: int, pending: PendingCall) -> None:
        del self.in_flight[index]
        self.forget(pending)  # its reply, if it still comes, is dropped unread
        now = time.monotonic()
        if now - self.first_sent[index] >= self.resend_for:
            raise CallsUnanswered(str(pending.timeout_error(self.timeout)), index, self.replies)
        log.info("request %d to %s not answered; sending it again", index, pending.target)
        self.to_resend.append(index)
        if now - self.last_cut >= self.timeout:
            self.limit, self.last_cut = max(1, self.limit // 2), now

    def _answered(self, index: int, pending: PendingCall) -> None:
        del self.in_flight[index]
        error = pending.reply.exception()
        if error is not None:
            raise RpcError(str(error), index, self.replies)
        self.replies[index] = pending.reply.result()
        self.answered += 1
        if not self._backlogged():
            self.limit = min(self.window, self.limit + 1)


def _put_answered(
    done: queue.SimpleQueue[tuple[int, PendingCall]], index: int, pending: PendingCall, _fut: object
) -> None:
    done.put((index, pending))


def reply(
    transport: Transport,
    request: Delivery,
    body: bytes,
    *,
    topology: Topology,
    type: str | None = None,
) -> None:
    """Answer ``request`` (no-op with a debug log when it asked for no reply). The reply goes
    only to a queue of ``topology``'s namespace (or direct reply-to); any other ``reply_to`` is
    refused with a warning and nothing is written."""
    reply_to = request.message.reply_to
    if not reply_to:
        log.debug("request %s has no reply_to; not answering", request.message.correlation_id)
        return
    try:
        check_own_queue(topology, reply_to, "reply_to", direct_reply=True)
    except ForeignQueue as exc:
        log.warning("request %s not answered: %s", request.message.correlation_id, exc)
        return
    msg = Message(body, correlation_id=request.message.correlation_id, type=type, persistent=False)
    fut = transport.publish("", reply_to, msg, mandatory=False)
    fut.add_done_callback(_log_reply_failure)


def _log_reply_failure(fut: Future[None]) -> None:
    exc = fut.exception()
    if exc is not None:
        log.warning("reply could not be delivered: %s", exc)
