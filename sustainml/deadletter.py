"""Dead-lettering: move a message that cannot be processed to its queue's dead-letter queue, with
the reason, so nothing is ever dropped silently.

The copy goes through ``<ns>.dlx`` (routing key = the queue it was taken from) into
``<queue>.dlq`` with every original property and header, plus the reason and where it came from.
Only once the copy is confirmed is the original acked; if the copy cannot be published, the
original is rejected without requeue so the queue's own dead-letter exchange still keeps it.
"""

from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace

from sustainml.messages import headers as H
from sustainml.topology import Topology
from sustainml.transport.base import Delivery, Transport, TransportError

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT = 30.0
MAX_REASON_CHARS = 2000


def dead_letter(
    transport: Transport, topology: Topology, delivery: Delivery, reason: str, *, by: str
) -> None:
    """Dead-letter ``delivery`` with ``reason``; ``by`` names the component (for the log)."""
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
        transport.publish(topology.dead_letter_exchange, delivery.queue, copy).result(CONFIRM_TIMEOUT)
    except (TransportError, FutureTimeout) as exc:
        log.error("%s: dead-letter copy not confirmed (%s); rejecting to the queue's DLX", by, exc)
        delivery.reject(requeue=False)
        return
    delivery.ack()
