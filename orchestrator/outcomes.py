"""Each task's outcome, stored once: the durable ``<ns>.orchestrator.results`` queue (the final
stage's outputs and the failed outputs of every stage, docs/wire-format.md §4, §5).

The final stage's message carries every record of the task (the envelope's ``context``), so one
transaction stores them all with the task's final state; a failed output likewise stores the
records so far and the failure. A redelivered outcome stores nothing twice (the outcome's own
output is inserted first, by its message id; a duplicate stops there).

Group commit: the consumer's handler checks and decodes each delivery and hands it to the writer
thread, which takes every outcome waiting, writes them in one transaction, then acks them and
publishes their TaskEvents. At low load a batch holds one outcome (no added latency); under load
one commit serves many tasks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sustainml.attribution import Unattributed
from sustainml.messages import RECORD_TYPES, SCHEMA_VERSION, MessageError, TaskEnvelope, decode_task_raw
from sustainml.messages import headers as H
from sustainml.messages.packing import packb
from sustainml.messages.tasks import TERMINAL_STATES, TaskEvent, TaskState
from sustainml.orchestrator import iteration
from sustainml.orchestrator.batching import BatchQueue
from sustainml.orchestrator.taskdb import Outcome, StoredOutput
from sustainml.orchestrator.watchers import Watch
from sustainml.topology import FINAL_STAGE, PIPELINE, STAGES_BY_KIND, Stage
from sustainml.transport.base import Delivery

if TYPE_CHECKING:
    from sustainml.orchestrator.core import Orchestrator

log = logging.getLogger(__name__)

# An output never moves a task out of these states (a cancelled task stays cancelled, a task failed
# by its stage deadline stays failed when a late output turns up).
KEPT_ON_OUTPUT = frozenset({TaskState.CANCELLED, TaskState.FAILED})
MAX_BATCH = 256  # outcomes per transaction (the consumer's prefetch bounds it too)


@dataclass(frozen=True)
class _Received:
    """A checked, decoded outcome waiting for the writer."""

    delivery: Delivery
    envelope: TaskEnvelope
    stage: Stage
    outcome: Outcome
    record: object  # the output's record map, as it came (the event carries it)
    context: dict[str, Any]  # the records before it, wire maps as they came
    plan: iteration.AutoPlan | None
    watch: Watch | None


class OutcomeWriter:
    """The results consumer's handler and the group-commit writer behind it."""

    def __init__(self, orch: Orchestrator) -> None:
        self._orch = orch
        self._queue = BatchQueue[_Received](f"orchestrator-{orch.id}-outcomes", self._write, MAX_BATCH)

    def start(self) -> None:
        self._queue.start()

    def close(self) -> None:
        """Write every outcome received so far, then stop the thread."""
        self._queue.close()

    # -- the consumer's handler ----------------------------------------------------------------
    def on_result(self, delivery: Delivery) -> None:
        orch = self._orch
        try:  # nothing is stored that cannot be attributed to a worker (or an operator's replay)
            orch.signer().require(delivery.message, {"worker", "operator"}, "a stage output")
        except Unattributed as exc:
            orch._dead_letter(delivery, str(exc))
            return
        try:
            received = self._receive(delivery)
        except MessageError as exc:
            orch._dead_letter(delivery, f"invalid message: {exc}")
            return
        self._queue.put(received)

    def _receive(self, delivery: Delivery) -> _Received:
        # Validates every record (MessageError); ``raw``: the wire maps, stored as they came.
        envelope, raw = decode_task_raw(delivery.message.body)
        task_id = envelope.task_id
        stage = STAGES_BY_KIND[envelope.kind]
        failed = delivery.message.headers.get(H.H_FAILED)
        plan: iteration.AutoPlan | None = None
        if failed:
            state, error, at_stage = TaskState.FAILED, str(failed), stage.node
        elif stage is FINAL_STAGE:
            state, error, at_stage = TaskState.SUCCEEDED, None, stage.node
            # Decided before the store, so its note is written with the final state and rides on
            # the final event.
            plan = self._orch._auto_iteration_plan(task_id, envelope)
        else:  # an intermediate output replayed into the results queue: stored as before
            state, error, at_stage = TaskState.RUNNING, None, PIPELINE[PIPELINE.index(stage) + 1].node
        context = raw.get("context") or {}  # absent = empty (decode_task accepted it)
        records = {kind: _standalone(kind, wire) for kind, wire in context.items() if kind in STAGES_BY_KIND}
        records[envelope.kind] = _standalone(envelope.kind, raw["record"])
        outcome = Outcome(
            task_id,
            envelope.kind,
            records,
            delivery.message.message_id or "",
            state,
            current_stage=at_stage,
            error=error,
            note=plan.note if plan else None,
        )
        watch = self._orch.watchers.of_message(delivery.message.headers)
        return _Received(delivery, envelope, stage, outcome, raw["record"], context, plan, watch)

    # -- the writer ----------------------------------------------------------------------------
    def _write(self, batch: list[_Received]) -> None:
        try:
            answers = self._orch.db.store_outcomes([r.outcome for r in batch], keep=KEPT_ON_OUTPUT)
        except Exception as exc:
            if len(batch) > 1:  # one bad outcome must not fail the others: write them one by one
                log.warning("storing %d outcomes together failed (%s); one by one", len(batch), exc)
                for r in batch:
                    self._write([r])
                return
            log.exception("task %s: outcome not stored", batch[0].outcome.task)
            self._orch._dead_letter(batch[0].delivery, f"could not be stored: {exc}")
            return
        for r, stored in zip(batch, answers, strict=True):
            try:
                self._after_store(r, stored)
            except Exception:  # stored already: one failed announcement must not stop the others
                log.exception("task %s: announcing its outcome failed", r.outcome.task)
        self._orch.notify()

    def _after_store(self, r: _Received, stored: StoredOutput | None) -> None:
        orch = self._orch
        task_id = r.outcome.task
        if stored is None:
            orch._dead_letter(r.delivery, f"output for unknown task {task_id}")
            return
        r.delivery.ack()  # only after the outcome is stored
        if not stored.applied and stored.state in KEPT_ON_OUTPUT:
            # Kept for the record; a replica that missed the cancel worked on it: tell them again.
            orch.broadcast_cancel(task_id)
        if not stored.fresh:
            return  # a redelivered duplicate: stored once, announced once
        state, error, plan = r.outcome.state, r.outcome.error, r.plan
        if not stored.applied:  # the task was already over: announce what it is
            state, error, plan = stored.state, stored.error, None
        final = state in TERMINAL_STATES
        watch = orch.watchers.resolve(task_id, r.watch)
        if final:  # the stages' running events not announced yet go first
            orch.progress.finished(task_id, PIPELINE.index(r.stage), r.context, watch)
        event = TaskEvent(
            task_id,
            state,
            r.outcome.current_stage,
            completed=r.stage.node,
            error=error,
            record=r.record if isinstance(r.record, dict) else None,
            note=stored.note if final else None,
            created_at=stored.created_at if final else None,
            finished_at=stored.finished_at if final else None,
        )
        announced = orch.watchers.announce(event, watch)
        if final:
            if watch is not None and not watch[1]:
                # Unbound once the final event is confirmed: off this thread, which must not wait.
                orch.run_later(lambda: orch.watchers.forget(task_id, announced, watch))
            else:
                orch.watchers.forget(task_id, None, watch)
        if plan is not None and plan.iterates:
            user_input, changes, context = plan.user_input, plan.changes or {}, r.envelope.context
            assert user_input is not None
            # Off this thread: its confirmed publish may wait through a broker outage.
            orch.run_later(lambda: orch._start_next_iteration(task_id, user_input, changes, context))


def _standalone(kind: str, wire: object) -> bytes:
    """The codec's standalone body of a record map that ``decode_task`` validated."""
    return packb({"schema_version": SCHEMA_VERSION, "type": RECORD_TYPES[kind].__name__, "record": wire})
