"""AMQP properties and headers of sustainml messages (the envelope around the msgpack body).

docs/wire-format.md documents every name here; keep them in sync.
"""

from __future__ import annotations

import random
import time
from typing import Any

from sustainml.transport.base import Message

CONTENT_TYPE = "application/msgpack"

H_SCHEMA_VERSION = "schema_version"
H_TRACEPARENT = "traceparent"
H_STAGE = "stage"  # node that produced the message
H_FAILED = "x-sustainml-failed"  # "<NODE>: <reason>" on a stage output whose task failed there
H_DEAD_REASON = "x-sustainml-dead-reason"  # why a message was dead-lettered
H_DEAD_QUEUE = "x-sustainml-dead-queue"  # queue it was taken from
H_DEAD_EXCHANGE = "x-sustainml-dead-exchange"  # exchange it was published to
H_DEAD_ROUTING_KEY = "x-sustainml-dead-routing-key"  # with this routing key
H_WATCH_QUEUE = "watch_queue"  # submission: queue the orchestrator binds to the task's events
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
