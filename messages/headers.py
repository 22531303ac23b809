"""AMQP properties and headers of sustainml messages (the envelope around the msgpack body).

docs/wire-format.md documents every name here; keep them in sync.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

CONTENT_TYPE = "application/msgpack"


@dataclass(frozen=True)
class Message:
    """An AMQP message: body bytes plus the properties we use. The transports carry it; it lives
    here, beside the header names, so that the message model depends on no transport."""

    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    type: str | None = None
    app_id: str | None = None
    timestamp: int | None = None  # seconds since the epoch (AMQP timestamp)
    expiration_ms: int | None = None
    persistent: bool = True
    content_type: str = CONTENT_TYPE
    # AMQP user-id: on a publish the AMQP transport always sets its own login (RabbitMQ refuses a
    # message whose user-id is not the connection's user), so on a delivery it is the sender's
    # broker-validated identity (None when the sender left it unset).
    user_id: str | None = None


H_SCHEMA_VERSION = "schema_version"
H_TRACEPARENT = "traceparent"
H_STAGE = "stage"  # node that produced the message
H_FAILED = "x-sustainml-failed"  # "<NODE>: <reason>" on a stage output whose task failed there
H_DEAD_REASON = "x-sustainml-dead-reason"  # why a message was dead-lettered
H_DEAD_QUEUE = "x-sustainml-dead-queue"  # queue it was taken from
H_DEAD_EXCHANGE = "x-sustainml-dead-exchange"  # exchange it was published to
H_DEAD_ROUTING_KEY = "x-sustainml-dead-routing-key"  # with this routing key
H_WATCH_QUEUE = "watch_queue"  # submission, and the task's stage messages: the task's watch queue
H_WATCH_MODE = "watch_mode"  # with H_WATCH_QUEUE: "direct" (default exchange) or "bind"
# Headers a worker copies from its input onto its output, so they travel with the task.
TASK_HEADERS = (H_WATCH_QUEUE, H_WATCH_MODE)
H_ROLE = "x-sustainml-role"  # role of the sender (worker, orchestrator, operator, publisher)
H_SIGNATURE = "x-sustainml-signature"  # "v1=<hex HMAC-SHA256>", see sustainml/attribution.py


def new_traceparent(trace_id: str | None = None) -> str:
    """W3C trace context: keep the task's trace id, new span id per hop."""
    # Identifiers, not secrets: the PRNG avoids a getrandom() syscall per published message.
    trace = trace_id or f"{random.getrandbits(128):032x}"
    return f"00-{trace}-{random.getrandbits(64):016x}-01"


def trace_id_of(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def stage_message_id(routing_key: str, kind: str) -> str:
    """Idempotency key of a stage output: the same task and stage always give the same id."""
    return f"{routing_key}:{kind}"


def build_message(
    body: bytes,
    *,
    type_name: str,
    app_id: str,
    schema_version: int,
    message_id: str | None = None,
    correlation_id: str | None = None,
    reply_to: str | None = None,
    traceparent: str | None = None,
    extra_headers: dict[str, Any] | None = None,
    persistent: bool = True,
    expiration_ms: int | None = None,
) -> Message:
    headers: dict[str, Any] = {H_SCHEMA_VERSION: schema_version}
    if traceparent:
        headers[H_TRACEPARENT] = traceparent
    if extra_headers:
        headers.update(extra_headers)
    return Message(
        body,
        headers=headers,
        message_id=message_id,
        correlation_id=correlation_id,
        reply_to=reply_to,
        type=type_name,
        app_id=app_id,
        timestamp=int(time.time()),
        persistent=persistent,
        expiration_ms=expiration_ms,
        content_type=CONTENT_TYPE,
    )
