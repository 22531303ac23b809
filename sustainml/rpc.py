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

import logging
import threading
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from sustainml.topology import Topology
from sustainml.transport.base import Delivery, Message, Transport, TransportError, Unroutable

log = logging.getLogger(__name__)


DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


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
    """A request could not be answered; the message says why and what to do."""


class RpcTimeout(RpcError):
    pass


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
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        timeout: float,
        type: str | None = None,
        target: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> Message:
        """Send a request and wait for its reply; raises ``RpcTimeout``/``RpcError`` naming ``target``."""
        target = target or routing_key
        corr = uuid.uuid4().hex
        fut: Future[Message] = Future()
        with self._lock:
            self._pending[corr] = fut
        try:
            msg = Message(
                body,
                headers=dict(headers or {}),
                correlation_id=corr,
                reply_to=self.reply_queue,
                type=type,
                expiration_ms=max(1, int(timeout * 1000)),
                persistent=False,
            )
            try:
                self._transport.publish(exchange, routing_key, msg, mandatory=True).result(timeout)
            except Unroutable:
                raise RpcError(f"no queue is bound for {target}: is the deployment declared?") from None
            except FutureTimeout:
                raise RpcTimeout(
                    f"{target}: the broker did not confirm the request within {timeout:g} s"
                ) from None
            except TransportError as exc:
                raise RpcError(f"{target}: request could not be sent: {exc}") from exc
            try:
                return fut.result(timeout)
            except FutureTimeout:
                raise RpcTimeout(
                    f"{target} did not answer within {timeout:g} s: is a replica running? "
                    f"(start one with `sustainml worker ...` or `sustainml up`)"
                ) from None
        finally:
            with self._lock:
                self._pending.pop(corr, None)

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
