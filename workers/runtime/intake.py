"""Whether a stage delivery is work for the callback, and the callback's inputs when it is.

Bad input (undecodable, the wrong record kind, a sender without the right role, missing task
context) is dead-lettered with the reason in a header; a cancelled task, or one an earlier stage
already failed, is acked and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Container
from dataclasses import dataclass

from sustainml.attribution import Attribution, Unattributed
from sustainml.deadletter import attempt_of
from sustainml.messages import RECORD_TYPES, MessageError, Record, TaskEnvelope, TaskId, decode_task
from sustainml.messages import headers as H
from sustainml.messages.kinds import BASELINE_SUFFIX, USER_INPUT
from sustainml.topology import Stage
from sustainml.transport.base import Delivery

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Work:
    """A task for the callback: its envelope and the callback's inputs, in the stage's order."""

    envelope: TaskEnvelope
    inputs: list[Record]


@dataclass(frozen=True, slots=True)
class Refused:
    """Not work: dead-letter the input with ``reason``, or (``skip``) ack it and move on."""

    reason: str
    skip: bool = False


def admit(
    delivery: Delivery, stage: Stage, attribution: Attribution, cancelled: Container[TaskId]
) -> Work | Refused:
    try:
        envelope = decode_task(delivery.message.body)
    except MessageError as exc:
        return Refused(f"invalid message: {exc}")
    if envelope.kind != stage.input_kind:
        return Refused(f"{stage.node} expects {stage.input_kind} records, got {envelope.kind}")
    try:
        check_sender(delivery, envelope.kind, attribution)
    except Unattributed as exc:
        return Refused(f"{stage.node} input {exc}")
    task_id = envelope.task_id
    if task_id in cancelled:
        log.info("%s: task %s was cancelled; not processing it", stage.node, task_id)
        return Refused("cancelled", skip=True)
    failed = delivery.message.headers.get(H.H_FAILED)
    if failed:
        # An earlier stage failed this task and the orchestrator already recorded why; later
        # stages do not work on it.
        log.info("%s: task %s failed upstream (%s); skipping", stage.node, task_id, failed)
        return Refused("failed upstream", skip=True)
    try:
        inputs = callback_inputs(stage, envelope)
    except KeyError as exc:
        return Refused(f"incomplete task context: missing {exc.args[0]}")
    return Work(envelope, inputs)


def check_sender(delivery: Delivery, kind: str, attribution: Attribution) -> None:
    """Only the orchestrator starts a task and only workers produce stage outputs (an operator
    may replay either). A retry copy is republished by a replica of this stage, so under per-role
    accounts a retried task start comes from the worker role."""
    if kind == USER_INPUT:
        allowed = {"orchestrator", "operator"}
        if attempt_of(delivery) > 1:
            allowed.add("worker")
        attribution.require(delivery.message, allowed, "a task start (user_input)")
    else:
        attribution.require(delivery.message, {"worker", "operator"}, f"a {kind} output")


def callback_inputs(stage: Stage, envelope: TaskEnvelope) -> list[Record]:
    """The records the stage's callback takes, in order (``KeyError`` names a missing one)."""
    records = envelope.records()
    inputs: list[Record] = []
    for name in stage.callback_inputs:
        if name.endswith(BASELINE_SUFFIX):
            kind = name[: -len(BASELINE_SUFFIX)]
            baseline = envelope.baselines.get(kind)
            # Iteration 1 has no previous records: hand the callback an empty one, as upstream.
            inputs.append(baseline if baseline is not None else RECORD_TYPES[kind](task_id=envelope.task_id))
        else:
            if name not in records:
                raise KeyError(name)
            inputs.append(records[name])
    return inputs
