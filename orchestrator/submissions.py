"""Submissions of new problems, in batches (group commit on the request path).

The request consumer hands every ``submit`` of a new problem (``previous_iteration`` 0) to one
thread, which takes all the submissions waiting, allocates their ids and stores them in ONE
transaction (the problem counter advanced by their number in one ``UPDATE ... RETURNING``), then
publishes all their task starts and waits for the confirms together, and only then acks and
answers each request. At low load a batch holds one submission (no added latency); under load one
commit and one confirm round trip serve many. Idempotency keys keep working: a key stored before
(or repeated in the batch) creates nothing and answers with its task (``Orchestrator._resubmitted``).

Iterations (``previous_iteration`` != 0) read their base first and keep the one-by-one path.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sustainml.messages import TaskId, UserInput, encode
from sustainml.messages.kinds import USER_INPUT
from sustainml.messages.tasks import REPLY_TYPE, Reply, SubmitReply, encode_reply
from sustainml.orchestrator.batching import BatchQueue
from sustainml.orchestrator.node_calls import PUBLISH_TIMEOUT
from sustainml.orchestrator.protocol import SubmissionInvalid, SubmitError, validate_submission
from sustainml.orchestrator.replies import error_reply
from sustainml.orchestrator.taskdb import check_submission_key
from sustainml.orchestrator.watchers import Watch
from sustainml.rpc import ForeignQueue, check_own_queue, reply
from sustainml.topology import PIPELINE
from sustainml.transport.base import Delivery, Message

if TYPE_CHECKING:
    from sustainml.orchestrator.core import Orchestrator

log = logging.getLogger(__name__)

MAX_BATCH = 128  # submissions per transaction


@dataclass
class Submission:
    """One new problem to start; ``delivery`` is the request to answer (None in-process)."""

    user_input: UserInput
    idempotency_key: str | None = None
    watch: Watch | None = None
    delivery: Delivery | None = None
    outcome: TaskId | Exception | None = field(default=None, init=False)


class Submissions:
    """The batching thread of one orchestrator's submissions."""

    def __init__(self, orch: Orchestrator) -> None:
        self._orch = orch
        name = f"orchestrator-{orch.id}-submissions"
        self._queue = BatchQueue[Submission](name, self._run_and_answer, MAX_BATCH)

    def start(self) -> None:
        self._queue.start()

    def close(self) -> None:
        """Start and answer every submission received so far, then stop the thread."""
        self._queue.close()

    def put(self, submission: Submission) -> None:
        """Queue a request's submission; it is answered once its batch is started."""
        self._queue.put(submission)

    def _run_and_answer(self, batch: list[Submission]) -> None:
        try:
            self.run(batch)
        except Exception as exc:  # a bug: every request of the batch is still answered below
            log.exception("submission batch failed")
            for s in batch:
                if s.outcome is None:
                    s.outcome = exc
        for s in batch:
            if s.delivery is not None:
                _answer(self._orch, s)

    def run(self, batch: list[Submission]) -> None:
        """Create and start every submission of ``batch``; each gets its task id or its error in
        ``outcome`` (nothing raises)."""
        orch = self._orch
        valid = [s for s in batch if _check(orch, s)]
        if not valid:
            return
        first = PIPELINE[0].node
        try:
            created = orch.db.submit_problems(
                [(encode(s.user_input), s.idempotency_key) for s in valid],
                state="running",
                current_stage=first,
            )
        except Exception as exc:
            log.error("storing %d submissions failed: %s", len(valid), exc)
            for s in valid:
                s.outcome = exc
            return
        started: list[tuple[Submission, TaskId, Message, Future[None]]] = []
        for s, c in zip(valid, created, strict=True):
            queue, direct = s.watch if s.watch is not None else (None, False)
            if not c.fresh:  # a submission seen before (or twice in this batch)
                try:
                    s.outcome = orch._resubmitted(c.key, queue, direct)
                except Exception as exc:
                    s.outcome = exc
                continue
            try:
                msg = orch._start_message(c.key, s.user_input, None, queue, direct)
                fut = orch.transport.publish(orch.topology.record_exchange(USER_INPUT), c.key.key, msg)
            except Exception as exc:
                orch._start_failed(c.key, exc)
                s.outcome = exc
                continue
            started.append((s, c.key, msg, fut))
        for s, task_id, msg, fut in started:  # the confirms, waited for together
            try:
                fut.result(PUBLISH_TIMEOUT)
            except Exception:  # e.g. the connection dropped: publish again, riding out a reconnect
                try:
                    orch._publish_start(task_id, msg)
                except Exception as exc:
                    orch._start_failed(task_id, exc)
                    s.outcome = exc
                    continue
            s.outcome = task_id
            log.info("task %s started", task_id)
        orch.notify()


def _check(orch: Orchestrator, s: Submission) -> bool:
    try:
        if s.watch is not None:
            check_own_queue(orch.topology, s.watch[0], "watch_queue")
        validate_submission(s.user_input, orch.settings.max_num_outputs)
        if s.idempotency_key is not None:
            check_submission_key(s.idempotency_key)
    except (SubmissionInvalid, ValueError, ForeignQueue) as exc:
        s.outcome = SubmitError(str(exc))
        return False
    return True


def _answer(orch: Orchestrator, s: Submission) -> None:
    assert s.delivery is not None
    outcome = s.outcome
    response: Reply
    if isinstance(outcome, TaskId):
        response = SubmitReply(outcome)
    else:
        response = error_reply(outcome if outcome is not None else RuntimeError("submission not run"))
    s.delivery.ack()
    reply(orch.transport, s.delivery, encode_reply(response), topology=orch.topology, type=REPLY_TYPE)
