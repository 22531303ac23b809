"""The orchestrator: allocates task ids, starts tasks with their baselines, stores each task's
outcome in the TaskDB, tracks node liveness, runs automatic iterations and answers requests.

Inputs it consumes:
- ``<ns>.orchestrator.requests``: submissions and operator requests (RPC, see handlers.py);
- ``<ns>.orchestrator.results``: each task's outcome (the final stage's outputs, the failed
  outputs of every stage); stored with every record of the task in one transaction, acked only
  after, and stored once however often it is delivered (outcomes.py);
- ``<ns>.orchestrator.progress``: the intermediate outputs, for task events and the task's
  current stage, written behind (progress.py; nothing is stored from a message);
- a private queue on the status fanout: NodeStatus heartbeats and per-task events.

The same object is the in-process ``OrchestratorService`` (service.py) the REST layer and
embedded runs use. Its parts: the iteration policy (iteration.py), the watchers and task events
(watchers.py), status buffering (statuses.py), request handlers (handlers.py), queries
(queries.py), and the outbox that runs what may wait on the broker off the consumer threads
(outbox.py).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from sustainml.attribution import Attribution, Unattributed
from sustainml.config import Settings
from sustainml.deadletter import dead_letter
from sustainml.messages import (
    RECORD_TYPES,
    SCHEMA_VERSION,
    CO2Footprint,
    MessageError,
    MLModelMetadata,
    NodeStatus,
    Record,
    TaskEnvelope,
    TaskId,
    UserInput,
    decode,
    encode,
    encode_task,
)
from sustainml.messages import headers as H
from sustainml.messages.kinds import BASELINE_KINDS, USER_INPUT
from sustainml.messages.tasks import TERMINAL_STATES, TaskEvent, TaskState
from sustainml.orchestrator import handlers, iteration
from sustainml.orchestrator.deadlines import DeadlineSweeper
from sustainml.orchestrator.node_calls import PUBLISH_TIMEOUT
from sustainml.orchestrator.outbox import Outbox
from sustainml.orchestrator.outcomes import OutcomeWriter
from sustainml.orchestrator.progress import Progress
from sustainml.orchestrator.protocol import SubmissionInvalid, SubmitError, validate_submission
from sustainml.orchestrator.queries import Queries, decode_user_input
from sustainml.orchestrator.registry import NodeRegistry
from sustainml.orchestrator.service import SubmitRefused
from sustainml.orchestrator.statuses import STATUS_FLUSH_INTERVAL, StatusBuffer
from sustainml.orchestrator.submissions import Submission, Submissions
from sustainml.orchestrator.taskdb import TaskDB, TaskRow, check_submission_key
from sustainml.orchestrator.watchers import Watchers, watch_headers
from sustainml.rpc import RpcClient, check_own_queue
from sustainml.topology import (
    PIPELINE,
    Topology,
    declare_all,
)
from sustainml.transport import amqp_transport
from sustainml.transport.base import (
    Binding,
    Delivery,
    Message,
    Transport,
    TransportError,
    publish_confirmed,
)

log = logging.getLogger(__name__)

__all__ = ["STATUS_FLUSH_INTERVAL", "Orchestrator", "SubmitError"]


class Orchestrator(Queries):
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        transport: Transport | None = None,
        db: TaskDB | None = None,
        orchestrator_id: str | None = None,
    ) -> None:
        settings = settings or Settings.from_env()
        self._own_transport = transport is None
        transport = transport or amqp_transport(settings, "ORCHESTRATOR")
        self._own_db = db is None
        if db is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            db = TaskDB(settings.effective_db_url)
        super().__init__(
            settings, Topology.of(settings), transport, db, NodeRegistry(settings.heartbeat_interval)
        )
        self.id = orchestrator_id or uuid.uuid4().hex[:12]
        self._tags: list[str] = []
        self._stopped = threading.Event()
        self._started = False
        self.watchers = Watchers(self.transport, self.topology)
        self.outcomes = OutcomeWriter(self)
        self.submissions = Submissions(self)
        self.progress = Progress(self)
        self.statuses = StatusBuffer(self.db, self.registry, self.transport)
        self._outbox = Outbox(f"orchestrator-{self.id}-iterations")
        self.deadlines: DeadlineSweeper | None = None  # set by start() when stage_deadline > 0
        self._attribution: Attribution | None = None  # set by start(): it needs the broker login

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.transport.connect()
        self._attribution = Attribution.of(self.settings, "orchestrator", self.transport.user)
        declare_all(self.transport, self.topology)
        status_spec = self.topology.private_queue_spec(
            "status-monitor", self.id, (Binding(self.topology.status_exchange, ""),)
        )
        self.transport.declare_queue(status_spec)
        self._rpc = RpcClient(self.transport, self.topology, owner_id=f"orchestrator-{self.id}")
        self._outbox.start()
        self.outcomes.start()
        self.submissions.start()
        self.progress.start(self.transport.call_later)
        self._tags = [
            self.transport.consume(status_spec.name, self._on_status, prefetch=256, concurrency=1),
            self.transport.consume(
                self.topology.orchestrator_results_queue, self._on_result, prefetch=256, concurrency=1
            ),
            self.transport.consume(
                self.topology.orchestrator_progress_queue, self._on_progress, prefetch=512, concurrency=1
            ),
            self.transport.consume(
                self.topology.orchestrator_requests_queue,
                lambda delivery: handlers.on_request(self, delivery),
                prefetch=16,
                concurrency=2,
            ),
        ]
        self.statuses.start()
        if self.settings.stage_deadline > 0:  # tasks stuck on one stage fail instead of waiting forever
            self.deadlines = DeadlineSweeper(self, self.settings.stage_deadline)
            self.deadlines.start()
        log.info("orchestrator %s ready (namespace %s)", self.id, self.topology.ns)

    def stop(self) -> None:
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def spin(self) -> None:
        """Run until ``stop()`` (the CLI wires SIGINT/SIGTERM to it)."""
        self.start()
        self._stopped.wait()
        self.close()

    def close(self) -> None:
        self._stopped.set()
        for tag in self._tags:
            self.transport.cancel(tag)
        self._tags = []
        self.submissions.close()  # every submission received is started and answered
        self.outcomes.close()  # every outcome received is stored and acked
        self._outbox.close()  # the automatic iterations already decided are started
        try:
            self.progress.flush()
        except Exception:  # progress is best effort: the outcomes are stored
            log.exception("writing the last task progress failed")
        self.statuses.stop()
        if self._rpc is not None:
            self._rpc.close()
            self._rpc = None
        if self._own_transport:
            self.transport.close()
        if self._own_db:
            self.db.close()

    def signer(self) -> Attribution:
        if self._attribution is None:
            raise RuntimeError("orchestrator not started")
        return self._attribution

    # -- submission ----------------------------------------------------------------------------
    def submit(
        self,
        user_input: UserInput,
        *,
        idempotency_key: str | None = None,
        watch_queue: str | None = None,
        watch_direct: bool = False,
    ) -> TaskId:
        """Allocate the task id (new problem, or the next iteration of one), store the input and
        start the task. ``watch_queue`` gets the task's events from its first one on: published
        straight to it through the default exchange with ``watch_direct``, else through a binding
        to the tasks exchange made before the task starts (removed once it is over).

        ``idempotency_key``: a submission that carries the key of an earlier one (a redelivered
        request after an orchestrator crash, a client's retry) creates nothing and returns the
        task the first one created; if that task never reached its first stage (the crash came
        between storing and publishing it), it is published again."""
        if watch_queue is not None:
            check_own_queue(self.topology, watch_queue, "watch_queue")
        try:
            validate_submission(user_input, self.settings.max_num_outputs)
        except SubmissionInvalid as exc:
            raise SubmitError(str(exc)) from None
        first = PIPELINE[0].node
        if idempotency_key is not None:
            try:
                check_submission_key(idempotency_key)
            except ValueError as exc:
                raise SubmitError(str(exc)) from None
            # An iteration's key is checked before its base ("-1" may now name this task); a new
            # problem's is checked in the transaction that creates it (no read before).
            existing = self.db.find_submission(idempotency_key) if user_input.previous_iteration else None
            if existing is not None:
                return self._resubmitted(existing, watch_queue, watch_direct)
        # Created running, in the transaction that allocates the id: one commit per submission.
        if user_input.previous_iteration == 0:
            created = self.db.submit_problem(
                encode(user_input), idempotency_key=idempotency_key, state="running", current_stage=first
            )
            base: TaskRow | None = None
        else:
            base = self._iteration_base(user_input)
            user_input = iteration.inherit(decode_user_input(base.user_input), user_input)
            created = self.db.submit_iteration(
                base.problem_id,
                encode(user_input),
                base.iteration_id,
                idempotency_key=idempotency_key,
                state="running",
                current_stage=first,
            )
        if not created.fresh:  # a concurrent copy of this submission won the race
            return self._resubmitted(created.key, watch_queue, watch_direct)
        task_id = created.key
        self._start_or_fail(task_id, user_input, base, watch_queue, watch_direct)
        log.info("task %s started", task_id)
        self.notify()
        return task_id

    def submit_many(
        self, inputs: Sequence[UserInput], *, idempotency_keys: Sequence[str] | None = None
    ) -> list[TaskId | SubmitRefused]:
        """Start many tasks at once: the new problems' ids allocated and stored in one transaction
        and their task starts published together (``submissions``); an iteration is submitted
        alone, after them. A refused input becomes its ``SubmitRefused``; a broker or database
        error is raised."""
        keys: Sequence[str | None] = [None] * len(inputs) if idempotency_keys is None else idempotency_keys
        if len(keys) != len(inputs):
            raise ValueError("idempotency_keys: expected one key per input")
        batch = [
            Submission(ui, idempotency_key=key)
            for ui, key in zip(inputs, keys, strict=True)
            if ui.previous_iteration == 0
        ]
        self.submissions.run(batch)
        new_problems = iter(batch)
        outcomes: list[TaskId | SubmitRefused] = []
        for ui, key in zip(inputs, keys, strict=True):
            outcome: TaskId | Exception | None
            if ui.previous_iteration == 0:
                outcome = next(new_problems).outcome
            else:
                try:
                    outcome = self.submit(ui, idempotency_key=key)
                except SubmitError as exc:
                    outcome = exc
            if isinstance(outcome, TaskId):
                outcomes.append(outcome)
            elif isinstance(outcome, SubmitError):
                outcomes.append(SubmitRefused(str(outcome)))
            else:
                raise outcome if outcome is not None else SubmitError("not started")
        return outcomes

    def _start_or_fail(
        self,
        task_id: TaskId,
        user_input: UserInput,
        base: TaskRow | None,
        watch_queue: str | None,
        watch_direct: bool,
    ) -> None:
        try:
            msg = self._start_message(task_id, user_input, base, watch_queue, watch_direct)
            self._publish_start(task_id, msg)
        except Exception as exc:
            self._start_failed(task_id, exc)
            raise

    def _start_failed(self, task_id: TaskId, exc: Exception) -> None:
        """The id is taken and stored: never leave the task looking started forever, and tell a
        watcher (it may already have seen "running")."""
        error = f"could not start the task: {exc}"
        self.db.set_state(task_id, "failed", error=error)
        event = TaskEvent(task_id, TaskState.FAILED, PIPELINE[0].node, error=error)
        self.watchers.announce_and_forget(event)

    def _resubmitted(self, task_id: TaskId, watch_queue: str | None, watch_direct: bool) -> TaskId:
        """A submission seen before: the task it created, started again only if it may never
        have been published (still at its first stage with no output stored; a copy that did
        arrive is a duplicate the first stage's output id makes harmless)."""
        row = self.db.get_task(task_id)
        if row is None:  # the key row and the task commit together: not expected
            raise SubmitError(f"submission names task {task_id}, which does not exist")
        if (
            row.state is TaskState.RUNNING
            and row.current_stage == PIPELINE[0].node
            and not self.db.get_outputs(task_id)
        ):
            base = (
                self.db.get_task(_tid(task_id.problem_id, row.base_iteration)) if row.base_iteration else None
            )
            self._start_or_fail(task_id, decode_user_input(row.user_input), base, watch_queue, watch_direct)
            log.info("task %s: submission seen again; published again", task_id)
        else:
            if watch_queue and row.state not in TERMINAL_STATES:
                self.watchers.add(task_id, watch_queue, direct=watch_direct)
            log.info("task %s: submission seen again; not created twice", task_id)
        return task_id

    def _start_message(
        self,
        task_id: TaskId,
        user_input: UserInput,
        base: TaskRow | None,
        watch_queue: str | None,
        watch_direct: bool,
    ) -> Message:
        """The task start, signed; the watcher is registered and the start event announced (before
        the task is published, so watchers see events in order)."""
        user_input.task_id = task_id
        baselines = self._baselines(task_id, base)
        if watch_queue:
            self.watchers.add(task_id, watch_queue, direct=watch_direct)
        envelope = TaskEnvelope(
            kind=USER_INPUT, task_id=task_id, record=user_input, context={}, baselines=baselines
        )
        msg = H.build_message(
            encode_task(envelope),
            type_name="UserInput",
            app_id="ORCHESTRATOR",
            schema_version=SCHEMA_VERSION,
            message_id=H.stage_message_id(task_id.key, USER_INPUT),
            correlation_id=task_id.key,
            traceparent=H.new_traceparent(),
            # Travels with the task (workers copy it), so any orchestrator replica announces to it.
            extra_headers=watch_headers(watch_queue, watch_direct) if watch_queue else None,
        )
        self.watchers.announce(TaskEvent(task_id, TaskState.RUNNING, PIPELINE[0].node))
        return self.signer().sign(msg)

    def _publish_start(self, task_id: TaskId, msg: Message) -> None:
        """Rides out a broker restart (republished after the reconnect; a copy that did arrive is a
        duplicate the first stage's output id makes harmless)."""
        exchange = self.topology.record_exchange(USER_INPUT)
        publish_confirmed(self.transport, exchange, task_id.key, msg, timeout=PUBLISH_TIMEOUT)

    def _iteration_base(self, user_input: UserInput) -> TaskRow:
        extra = user_input.get_extra()
        problem = extra.get("previous_problem_id")
        if problem is None:
            latest = self.db.latest_task()
            if latest is None:
                raise SubmitError("previous_iteration is set but there is no earlier task to iterate on")
            problem = latest.problem_id
        if not isinstance(problem, int) or isinstance(problem, bool) or problem < 1:
            raise SubmitError(f"extra_data.previous_problem_id: expected a problem id >= 1, got {problem!r}")
        number = user_input.previous_iteration
        if number == -1:
            latest_it = self.db.latest_iteration(problem)
            if latest_it is None:
                raise SubmitError(f"extra_data.previous_problem_id: problem {problem} does not exist")
            number = latest_it
        elif number < -1:
            raise SubmitError(f"previous_iteration: expected -1, 0 or an iteration >= 1, got {number}")
        row = self.db.get_task(_tid(problem, number))
        if row is None:
            raise SubmitError(f"previous_iteration: task {problem}.{number} does not exist")
        return row

    def _baselines(self, task_id: TaskId, base: TaskRow | None) -> dict[str, Record]:
        """The previous iteration's ML_MODEL, HW_RESOURCES and CARBON_FOOTPRINT outputs (from the
        iteration actually branched from), re-stamped with the new task id; empty records for a
        new problem or a base that produced no such output."""
        stored = self.db.get_outputs(base.key) if base else {}
        baselines: dict[str, Record] = {}
        for kind in BASELINE_KINDS:
            cls = RECORD_TYPES[kind]
            rec = decode(stored[kind], cls) if kind in stored else cls()
            rec.task_id = task_id
            baselines[kind] = rec
        return baselines

    # -- outputs -------------------------------------------------------------------------------
    def _on_result(self, delivery: Delivery) -> None:
        """A task's outcome (final or failed output) from the durable results queue."""
        self.outcomes.on_result(delivery)

    def _on_progress(self, delivery: Delivery) -> None:
        """An intermediate output: its TaskEvent, and the task's stage written behind."""
        self.progress.on_progress(delivery)

    def live_outputs(self, task_id: TaskId) -> dict[str, Any]:
        return self.progress.records(task_id.key)

    def run_later(self, job: Callable[[], None]) -> None:
        """Run ``job`` off the consumer threads, in order (it may wait on the broker)."""
        self._outbox.put(job)

    def _auto_iteration_plan(self, task_id: TaskId, envelope: TaskEnvelope) -> iteration.AutoPlan | None:
        """What follows the success of a task, decided from its final envelope (the UserInput is
        in its context, no read needed). The plan is carried out only if the task is still not
        cancelled once the output is stored (the caller checks)."""
        carbon = envelope.record
        if not isinstance(carbon, CO2Footprint):
            return None
        context_input = envelope.context.get(USER_INPUT)
        if isinstance(context_input, UserInput):
            user_input = context_input.model_copy(deep=True)
        else:  # not expected (every envelope carries it): read the stored one
            row = self.db.get_task(task_id)
            if row is None:
                return None
            user_input = decode_user_input(row.user_input)
        return iteration.plan_after_success(task_id, user_input, carbon, self.settings.max_num_outputs)

    def _start_next_iteration(
        self, task_id: TaskId, user_input: UserInput, changes: dict[str, object], context: dict[str, Record]
    ) -> None:
        """Submit iteration i+1 of the task's problem (see ``iteration.next_iteration_input``); the
        goal comes from the final envelope's ``context``, else from the stored outputs."""
        meta: Record | None = context.get("ml_model_metadata")
        if not isinstance(meta, MLModelMetadata):
            stored = self.db.get_outputs(task_id).get("ml_model_metadata")
            meta = decode(stored, MLModelMetadata) if stored is not None else None
        nxt_input = iteration.next_iteration_input(task_id, user_input, dict(changes), meta)
        if self.db.automatic_stopped(task_id.problem_id):
            self._note(task_id, "automatic iterations stopped: a task of this problem was cancelled")
            return
        try:
            nxt = self.submit(nxt_input)
            log.info("task %s: automatic iteration %s started", task_id, nxt)
            if self.db.automatic_stopped(task_id.problem_id):  # cancelled while it was created
                self.cancel(nxt)
        except (SubmitError, TransportError, FutureTimeout, MessageError) as exc:
            log.error("task %s: automatic iteration could not start: %s", task_id, exc)
            self._note(task_id, f"automatic iteration could not start: {exc}")

    def _note(self, task_id: TaskId, note: str) -> None:
        log.info("task %s: %s", task_id, note)
        self.db.set_note(task_id, note)

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        dead_letter(self.transport, self.topology, delivery, reason, by="orchestrator")

    # -- status --------------------------------------------------------------------------------
    def _on_status(self, delivery: Delivery) -> None:
        try:  # statuses are stored: only from workers
            self.signer().require(delivery.message, {"worker"}, "NodeStatus")
        except Unattributed as exc:
            dead_letter(
                self.transport,
                self.topology,
                delivery,
                f"orchestrator NodeStatus {exc}",
                by="orchestrator",
                route=self.topology.unattributed_route,
            )
            return
        delivery.ack()  # heartbeats are transient facts; a lost one is repeated 2 s later
        try:
            status = decode(delivery.message.body, NodeStatus)
        except MessageError as exc:
            log.warning("ignoring invalid status message: %s", exc)
            return
        self.statuses.add(status)
        self.notify()

    # -- control -------------------------------------------------------------------------------
    def cancel(self, task_id: TaskId | None = None) -> TaskId | None:
        """Cancel a task (default: the latest unfinished one). Later stages skip it and no
        automatic iteration follows. Returns the cancelled id, or None if there was none."""
        if task_id is None:
            running = self.db.list_tasks(state="running", limit=1) or self.db.list_tasks(
                state="queued", limit=1
            )
            if not running:
                return None
            task_id = running[0].key
        row = self.db.get_task(task_id)
        if row is None:
            raise KeyError(f"task {task_id} does not exist")
        # First the problem's flag, then its later tasks: an automatic iteration being started
        # right now either sees the flag or is in the list below (it re-checks after creating).
        self.db.stop_automatic(task_id.problem_id)
        self._cancel_one(task_id, row)
        for later in self.db.list_tasks(problem_id=task_id.problem_id, limit=1000):
            if later.iteration_id > task_id.iteration_id and not later.is_terminal:
                self._cancel_one(later.key, later)
        self.notify()
        return task_id

    def _cancel_one(self, task_id: TaskId, row: TaskRow) -> None:
        if row.state not in TERMINAL_STATES:
            self.db.set_state(task_id, "cancelled", error="cancelled by request")
            event = TaskEvent(task_id, TaskState.CANCELLED, row.current_stage, error="cancelled by request")
            self.watchers.forget(task_id, self.watchers.announce(event))
        self.broadcast_cancel(task_id)


def _tid(problem_id: int, iteration_id: int) -> TaskId:
    return TaskId(problem_id=problem_id, iteration_id=iteration_id)
