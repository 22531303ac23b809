"""Dead-lettering and retries: what happens to a message that cannot be processed, so nothing is
ever dropped silently and nothing loops.

Dead-lettering: the copy goes through ``<ns>.dlx`` (routing key = the queue it was taken from)
into ``<queue>.dlq`` with every original property and header, plus the reason and where it came
from. Only once the copy is confirmed is the original acked; if the copy cannot be published, the
original is rejected without requeue so the queue's own dead-letter exchange still keeps it.

Retries (a stage callback raised an unexpected exception): ``retry_later`` publishes a copy of the
input, with the attempt number in ``x-sustainml-attempts``, to the stage's delay queue for that
attempt (``Topology.retry_queue``); the broker dead-letters it back into the stage queue after
``retry_backoff * 2**(attempt-1)`` seconds. The original is acked once the copy is confirmed.
After ``max_attempts`` attempts the runtime dead-letters the input with ``dead_letter``.
"""

from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any

from sustainml.messages import headers as H
from sustainml.topology import Stage, Topology
from sustainml.transport.base import Delivery, Transport, TransportError

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT = 30.0
MAX_REASON_CHARS = 2000
# Attempt number of a stage input (1 when absent): set by retry_later on each copy.
H_ATTEMPTS = "x-sustainml-attempts"
# Why the previous attempt failed (for operators reading a delay queue or a DLQ).
H_LAST_ERROR = "x-sustainml-last-error"
# Broker-added dead-letter bookkeeping: never copied onto a retry, or RabbitMQ's cycle detection
# could drop the copy when it expires into a queue it "already died in".
_BROKER_DEATH_HEADERS = (
    "x-death",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-first-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-last-death-exchange",
    "x-delivery-count",
)


def attempt_of(delivery: Delivery) -> int:
    """The attempt this delivery is (1 for a first delivery; a malformed header counts as 1)."""
    raw: Any = delivery.message.headers.get(H_ATTEMPTS, 1)
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        log.warning("ignoring malformed %s header %r", H_ATTEMPTS, raw)
        return 1
    return max(1, value)


def dead_letter(
    transport: Transport,
    topology: Topology,
    delivery: Delivery,
    reason: str,
    *,
    by: str,
    route: str | None = None,
) -> None:
    """Dead-letter ``delivery`` with ``reason``; ``by`` names the component (for the log).
    ``route``: the DLQ's origin name when it is not the delivery's queue (a private queue has no
    DLQ of its own; refused senders go to ``topology.unattributed_route``)."""
    original = delivery.message
    log.warning("%s: dead-lettering message %s from %s: %s", by, original.message_id, delivery.queue, reason)
    headers = dict(original.headers)
    headers.update(
        {
            H.H_DEAD_REASON: reason[:MAX_REASON_CHARS],
            H.H_DEAD_QUEUE: delivery.queue,
            H.H_DEAD_EXCHANGE: delivery.exchange,
            H.H_DEAD_ROUTING_KEY: delivery.routing_key,
        }
    )
    # Expiration is dropped: a dead letter must wait for a human, not vanish.
    copy = replace(original, headers=headers, expiration_ms=None, persistent=True)
    try:
        dlx = topology.dead_letter_exchange
        transport.publish(dlx, route or delivery.queue, copy).result(CONFIRM_TIMEOUT)
    except (TransportError, FutureTimeout) as exc:
        log.error("%s: dead-letter copy not confirmed (%s); rejecting to the queue's DLX", by, exc)
        delivery.reject(requeue=False)
        return
    delivery.ack()


def retry_later(
    transport: Transport,
    topology: Topology,
    stage: Stage,
    delivery: Delivery,
    attempt: int,
    reason: str,
    *,
    by: str,
) -> bool:
    """Schedule attempt ``attempt + 1`` of ``delivery`` through the stage's delay queue and ack the
    original. Returns False (original left unsettled) when the copy was not confirmed: the caller
    then leaves it to a redelivery, which repeats this attempt instead of losing it."""
    original = delivery.message
    queue = topology.retry_queue(stage, attempt)
    headers = {k: v for k, v in original.headers.items() if k not in _BROKER_DEATH_HEADERS}
    headers[H_ATTEMPTS] = attempt + 1
    headers[H_LAST_ERROR] = reason[:MAX_REASON_CHARS]
    copy = replace(original, headers=headers, expiration_ms=None, persistent=True)
    try:
        # Default exchange: routed to the delay queue by name; mandatory, so a missing queue is an
        # error here instead of a silent drop.
        transport.publish(topology.rpc_exchange, queue, copy).result(CONFIRM_TIMEOUT)
    except (TransportError, FutureTimeout) as exc:
        log.error(
            "%s: retry %d of message %s not scheduled (%s); left for redelivery",
            by,
            attempt + 1,
            original.message_id,
            exc,
        )
        return False
    log.warning(
        "%s: attempt %d of message %s failed (%s); retrying in %.3g s (attempt %d of %d)",
        by,
        attempt,
        original.message_id,
        reason,
        topology.retry_delay_ms(attempt) / 1000,
        attempt + 1,
        topology.max_attempts,
    )
    delivery.ack()
    return True
