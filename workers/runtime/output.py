"""A task's output as it goes on the wire: the record the callback filled (with the error in its
extra_data when the task failed) in the next envelope, routed by ``<problem_id>.<iteration_id>``
(``failed.<problem_id>.<iteration_id>`` when the task failed, so that the orchestrator's durable
queue receives it), with a message id derived from the task and stage so that a redone task's
output is a duplicate, and the task's watch headers copied from the input."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sustainml.messages import RECORD_TYPES, SCHEMA_VERSION, MessageError, Record, TaskEnvelope, encode_task
from sustainml.messages import headers as H
from sustainml.topology import Stage, failed_routing_key
from sustainml.transport.base import Message

from .outcome import Outcome


def output_message(
    stage: Stage,
    envelope: TaskEnvelope,
    output: Record,
    outcome: Outcome,
    input_headers: Mapping[str, Any],
) -> tuple[Message, Outcome]:
    """The message carrying ``output``, and the outcome it reports: ``outcome`` itself, unless the
    wire format rejected what the callback filled in (then a minimal failed output says why)."""
    node_name = stage.node
    task_id = envelope.task_id
    error = outcome.error
    if error:
        try:
            output.update_extra(error=error)
        except MessageError:
            # The callback left extra_data unusable: replace it so the error still travels.
            output.extra_data = b""
            output.update_extra(error=error)
    output.task_id = task_id  # whatever the callback did, the output belongs to this task

    headers: dict[str, Any] = {H.H_STAGE: node_name}
    for name in H.TASK_HEADERS:  # the watch queue travels with the task (any orchestrator announces)
        value = input_headers.get(name)
        if value is not None:
            headers[name] = value
    if error:
        headers[H.H_FAILED] = f"{node_name}: {error}"
    trace = H.trace_id_of(input_headers.get(H.H_TRACEPARENT))
    routing_key = task_id.key
    try:
        body = encode_task(envelope.next(stage.kind, output))
    except MessageError as exc:
        # The callback filled the output with something the wire format rejects (e.g. an
        # oversized field): still tell the pipeline, with a minimal error output.
        outcome = replace(outcome, error=f"output rejected by the codec: {exc}")
        headers[H.H_FAILED] = f"{node_name}: {outcome.error}"
        output = RECORD_TYPES[stage.kind](task_id=task_id)
        output.update_extra(error=outcome.error)
        body = encode_task(envelope.next(stage.kind, output))
    msg = H.build_message(
        body,
        type_name=type(output).__name__,
        app_id=node_name,
        schema_version=SCHEMA_VERSION,
        message_id=H.stage_message_id(routing_key, stage.kind),
        correlation_id=routing_key,
        traceparent=H.new_traceparent(trace),
        extra_headers=headers,
    )
    return msg, outcome


def output_routing_key(task_key: str, outcome: Outcome) -> str:
    """``p.i``, or ``failed.p.i`` for a failed output (the orchestrator stores only outcomes)."""
    return failed_routing_key(task_key) if outcome.error else task_key
