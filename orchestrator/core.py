"""The orchestrator: allocates task ids, starts tasks with their baselines, stores every output in
the TaskDB, tracks node liveness, runs automatic iterations and answers requests.

Inputs it consumes:
- ``<ns>.orchestrator.requests``: submissions and operator requests (RPC, see protocol.py);
- ``<ns>.orchestrator.results``: every stage output (bound to the six output exchanges); a
  message is acked only after it is stored, and a redelivered output is stored once;
- a private queue on the status fanout: NodeStatus heartbeats and per-task events.

The same object is the Python API used in-process (the REST layer, embedded runs): ``submit``,
``wait``, ``result``, ``status``, ``config_request``, ``control``, ``cancel``, ``list_tasks``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sustainml.attribution import Attribution, Unattributed
from sustainml.config import Settings
from sustainml.deadletter import dead_letter
from sustainml.messages import (
    RECORD_TYPES,
    SCHEMA_VERSION,
    CmdNode,
    CmdTask,
    CO2Footprint,
    MessageError,
    MLModelMetadata,
    NodeStatus,
    Record,
    ResponseType,
    Status,
    TaskEnvelope,
    TaskId,
    UserInput,
    decode,
    decode_task,
    encode,
    encode_task,
    from_wire,
    to_wire,
)
from sustainml.messages import headers as H
from sustainml.messages.kinds import BASELINE_KINDS, USER_INPUT
from sustainml.orchestrator.deadlines import DeadlineSweeper
from sustainml.orchestrator.node_calls import PUBLISH_TIMEOUT, config_call, publish_control
from sustainml.orchestrator.protocol import (
    H_WATCH_MODE,
    TASK_STATES,
    TERMINAL_STATES,
    WATCH_DIRECT,
    RequestError,
    SubmissionInvalid,
    TaskResult,
    pack,
    task_id_from,
    unpack,
    validate_submission,
)
from sustainml.orchestrator.registry import NodeRegistry, ReplicaState
from sustainml.orchestrator.taskdb import (
    StatusUpdate,
    StoredOutput,
    TaskDB,
    TaskKey,
    TaskRow,
    TaskState,
    check_submission_key,
)
from sustainml.rpc import ForeignQueue, RpcClient, check_own_queue, reply
from sustainml.topology import (
    ALL_NODES_KEY,
    FINAL_STAGE,
    PIPELINE,
    STAGES_BY_KIND,
    Stage,
    Topology,
    declare_all,
    resolve_stage,
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

STATUS_FLUSH_INTERVAL = 0.5  # seconds between batched writes of node statuses
# UserInput fields an iteration never inherits from the request (they identify the request).
_NOT_INHERITED = {"task_id", "previous_iteration", "extra_data"}
# An output never moves a task out of these states (a cancelled task stays cancelled, a task failed
# by its stage deadline stays failed when a late output turns up).
_KEPT_ON_OUTPUT = frozenset({TaskState.CANCELLED, TaskState.FAILED})


class SubmitError(ValueError):
    """A submission the orchestrator refuses (bad iteration base, unknown problem...)."""


class Orchestrator:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        transport: Transport | None = None,
        db: TaskDB | None = None,
        orchestrator_id: str | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.topology = Topology.of(self.settings)
        self._own_transport = transport is None
        self.transport = transport or amqp_transport(self.settings, "ORCHESTRATOR")
        self._own_db = db is None
        if db is None:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            db = TaskDB(self.settings.effective_db_url)
        self.db = db
        self.id = orchestrator_id or uuid.uuid4().hex[:12]
        self.registry = NodeRegistry(self.settings.heartbeat_interval)
        self._rpc: RpcClient | None = None
        self._tags: list[str] = []
        self._changed = threading.Condition()
        self._transaction_id = 0
        self._tx_lock = threading.Lock()
        self._stopped = threading.Event()
        self._started = False
        self._status_lock = threading.Lock()
        self._status_backlog: list[StatusUpdate] = []
        self._watch_lock = threading.Lock()
        # task -> (its watch queue, direct): direct watchers get the task's events straight
        # through the default exchange; the others have a binding to the tasks exchange.
        self._watchers: dict[TaskId, tuple[str, bool]] = {}
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
        self._tags = [
            self.transport.consume(status_spec.name, self._on_status, prefetch=256, concurrency=1),
            self.transport.consume(
                self.topology.orchestrator_results_queue, self._on_result, prefetch=64, concurrency=1
            ),
            self.transport.consume(
                self.topology.orchestrator_requests_queue, self._on_request, prefetch=16, concurrency=2
            ),
        ]
        self.transport.call_later(STATUS_FLUSH_INTERVAL, self._flush_statuses)
        if self.settings.stage_deadline > 0:  # tasks stuck on one stage fail instead of waiting forever
            self.deadlines = DeadlineSweeper(self, self.settings.stage_deadline)
            self.deadlines.start()
        log.info("orchestrator %s ready (namespace %s)", self.id, self.topology.ns)

    def stop(self) -> None:
        self._stopped.set()

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
        self._flush_statuses(rearm=False)
        if self._rpc is not None:
            self._rpc.close()
            self._rpc = None
        if self._own_transport:
            self.transport.close()
        if self._own_db:
            self.db.close()

    # -- submission ----------------------------------------------------------------------------
    def submit(
        self,
        user_input: UserInput,
        *,
        watch_queue: str | None = None,
        watch_direct: bool = False,
        idempotency_key: str | None = None,
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
            existing = self.db.find_submission(idempotency_key)
            if existing is not None:  # checked before the base: "-1" may now name this task
                return self._resubmitted(existing, watch_queue, watch_direct)
        # Created running, in the transaction that allocates the id: one commit per submission.
        if user_input.previous_iteration == 0:
            created = self.db.submit_problem(
                encode(user_input), idempotency_key=idempotency_key, state="running", current_stage=first
            )
            base: TaskRow | None = None
        else:
            base = self._iteration_base(user_input)
            user_input = _inherit(_decode_user_input(base.user_input), user_input)
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
        key = created.key
        task_id = TaskId(problem_id=key.problem_id, iteration_id=key.iteration_id)
        self._start_or_fail(task_id, user_input, base, watch_queue, watch_direct)
        log.info("task %s started", task_id)
        self._notify()
        return task_id

    def _start_or_fail(
        self,
        task_id: TaskId,
        user_input: UserInput,
        base: TaskRow | None,
        watch_queue: str | None,
        watch_direct: bool,
    ) -> None:
        try:
            self._start(task_id, user_input, base, watch_queue, watch_direct)
        except Exception as exc:
            # The id is taken and stored: never leave the task looking started forever, and tell
            # a watcher (it may already have seen "running").
            error = f"could not start the task: {exc}"
            self.db.set_state(_key(task_id), "failed", error=error)
            with contextlib.suppress(TransportError, FutureTimeout):
                self._publish_task_event(task_id, "failed", PIPELINE[0].node, error).result(PUBLISH_TIMEOUT)
            self._forget_watcher(task_id)
            raise

    def _resubmitted(self, key: TaskKey, watch_queue: str | None, watch_direct: bool) -> TaskId:
        """A submission seen before: the task it created, started again only if it may never
        have been published (still at its first stage with no output stored; a copy that did
        arrive is a duplicate the first stage's output id makes harmless)."""
        task_id = TaskId(problem_id=key.problem_id, iteration_id=key.iteration_id)
        row = self.db.get_task(key)
        if row is None:  # the key row and the task commit together: not expected
            raise SubmitError(f"submission names task {task_id}, which does not exist")
        if (
            row.state is TaskState.RUNNING
            and row.current_stage == PIPELINE[0].node
            and not self.db.get_outputs(key)
        ):
            base = (
                self.db.get_task(TaskKey(key.problem_id, row.base_iteration)) if row.base_iteration else None
            )
            self._start_or_fail(task_id, _decode_user_input(row.user_input), base, watch_queue, watch_direct)
            log.info("task %s: submission seen again; published again", task_id)
        else:
            if watch_queue and row.state not in TERMINAL_STATES:
                if watch_direct:
                    with self._watch_lock:
                        self._watchers[task_id] = (watch_queue, True)
                else:
                    self._bind_watcher(watch_queue, task_id)
            log.info("task %s: submission seen again; not created twice", task_id)
        return task_id

    def _start(
        self,
        task_id: TaskId,
        user_input: UserInput,
        base: TaskRow | None,
        watch_queue: str | None,
        watch_direct: bool = False,
    ) -> None:
        user_input.task_id = task_id
        baselines = self._baselines(task_id, base)
        if watch_queue and watch_direct:
            with self._watch_lock:
                self._watchers[task_id] = (watch_queue, True)
        elif watch_queue:
            self._bind_watcher(watch_queue, task_id)
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
        )
        msg = self._signer().sign(msg)
        # Announced before the task is published, so watchers see events in order.
        self._publish_task_event(task_id, "running", PIPELINE[0].node, None)
        # Rides out a broker restart (republished after the reconnect; a copy that did arrive
        # is a duplicate the first stage's output id makes harmless).
        publish_confirmed(
            self.transport,
            self.topology.record_exchange(USER_INPUT),
            task_id.key,
            msg,
            timeout=PUBLISH_TIMEOUT,
        )

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
        iteration = user_input.previous_iteration
        if iteration == -1:
            latest_it = self.db.latest_iteration(problem)
            if latest_it is None:
                raise SubmitError(f"extra_data.previous_problem_id: problem {problem} does not exist")
            iteration = latest_it
        elif iteration < -1:
            raise SubmitError(f"previous_iteration: expected -1, 0 or an iteration >= 1, got {iteration}")
        row = self.db.get_task(TaskKey(problem, iteration))
        if row is None:
            raise SubmitError(f"previous_iteration: task {problem}.{iteration} does not exist")
        return row

    def _baselines(self, task_id: TaskId, base: TaskRow | None) -> dict[str, Record]:
        """The previous iteration's ML_MODEL, HW_RESOURCES and CARBON_FOOTPRINT outputs (from the
        iteration actually branched from), re-stamped with the new task id; empty records for a
        new problem or a base that produced no such output."""
        stored = self.db.get_outputs(TaskKey(base.problem_id, base.iteration_id)) if base else {}
        baselines: dict[str, Record] = {}
        for kind in BASELINE_KINDS:
            cls = RECORD_TYPES[kind]
            rec = decode(stored[kind], cls) if kind in stored else cls()
            rec.task_id = task_id
            baselines[kind] = rec
        return baselines

    def _bind_watcher(self, queue: str, task_id: TaskId) -> None:
        # One binding per task: its events carry every stored stage output (record included).
        self.transport.bind(queue, Binding(self.topology.task_exchange, task_id.key))
        with self._watch_lock:
            self._watchers[task_id] = (queue, False)

    def _forget_watcher(self, task_id: TaskId, announced: Future[None] | None = None) -> None:
        """Stop sending a finished task's events to its watch queue. A direct watcher is only
        forgotten; a bound one is unbound (once ``announced``, the final event, is routed, or the
        watcher could miss it), so bindings do not pile up in a long-running orchestrator (and are
        not re-applied after every reconnect)."""
        with self._watch_lock:
            watcher = self._watchers.pop(task_id, None)
        if watcher is None:
            return
        queue, direct = watcher
        if direct:
            return
        if announced is not None:
            with contextlib.suppress(TransportError, FutureTimeout):
                announced.result(PUBLISH_TIMEOUT)
        try:
            self.transport.unbind(queue, Binding(self.topology.task_exchange, task_id.key))
        except TransportError as exc:  # the queue expires on its own (x-expires)
            log.debug("watch queue %s not unbound: %s", queue, exc)

    def _signer(self) -> Attribution:
        if self._attribution is None:
            raise RuntimeError("orchestrator not started")
        return self._attribution

    # -- outputs -------------------------------------------------------------------------------
    def _on_result(self, delivery: Delivery) -> None:
        try:  # nothing is stored that cannot be attributed to a worker (or an operator's replay)
            self._signer().require(delivery.message, {"worker", "operator"}, "a stage output")
        except Unattributed as exc:
            self._dead_letter(delivery, str(exc))
            return
        try:
            envelope = decode_task(delivery.message.body)
        except MessageError as exc:
            self._dead_letter(delivery, f"invalid message: {exc}")
            return
        task_id = envelope.task_id
        key = _key(task_id)
        stage = STAGES_BY_KIND[envelope.kind]
        record = encode(envelope.record)
        message_id = delivery.message.message_id or ""
        failed = delivery.message.headers.get(H.H_FAILED)
        plan: _AutoPlan | None = None
        if failed:
            state, error, at_stage = "failed", str(failed), stage.node
        elif stage is FINAL_STAGE:
            state, error, at_stage = "succeeded", None, stage.node
            # Decided before the store, so its note is written with the final state and rides
            # on the final event.
            plan = self._auto_iteration_plan(task_id, envelope)
        else:
            state, error, at_stage = "running", None, _next_stage(stage).node
        try:
            # One transaction, no read before it: the UPDATE's WHERE clause enforces the state
            # rules and its RETURNING says what the task is now.
            stored = self.db.store_stage_output(
                key,
                envelope.kind,
                record,
                message_id,
                state=state,
                current_stage=at_stage,
                error=error,
                note=plan.note if plan else None,
                keep=_KEPT_ON_OUTPUT,
            )
        except KeyError:
            self._dead_letter(delivery, f"output for unknown task {task_id}")
            return
        delivery.ack()  # only after the output is stored
        if not stored.applied and stored.state in _KEPT_ON_OUTPUT:
            # Kept for the record; a replica that missed the cancel worked on it: tell them again.
            self._broadcast_cancel(task_id)
        if not stored.fresh:
            return  # a redelivered duplicate: stored once, announced once
        if not stored.applied:  # the task was already over: announce what it is
            state, error, plan = stored.state.value, stored.error, None
        announced = self._publish_task_event(
            task_id,
            state,
            at_stage,
            error,
            completed=stage.node,
            record=envelope.record,
            stored=stored if state in TERMINAL_STATES else None,
        )
        if state in TERMINAL_STATES:
            self._forget_watcher(task_id, announced)
        self._notify()
        if plan is not None and plan.changes is not None and plan.user_input is not None:
            self._start_next_iteration(task_id, plan.user_input, plan.changes, envelope.context)

    def _publish_task_event(
        self,
        task_id: TaskId,
        state: str,
        stage: str | None,
        error: str | None,
        *,
        completed: str | None = None,
        record: Record | None = None,
        stored: StoredOutput | None = None,
    ) -> Future[None]:
        """Announce a stored change on the tasks exchange: the task's state, the stage it is at,
        and the node whose output was just stored (``completed``) with that output (``record``,
        wire form); a final event also carries the task's note and timestamps (``stored``), so a
        watcher can build the result without asking. Listeners follow a task through its routing
        key; a direct watcher gets a copy straight to its queue (default exchange)."""
        body = pack(
            {
                "schema_version": SCHEMA_VERSION,
                "type": "TaskEvent",
                "task_id": to_wire(task_id),
                "state": state,
                "stage": stage,
                "completed": completed,
                "error": error,
                "record": to_wire(record) if record is not None else None,
                "note": stored.note if stored else None,
                "created_at": stored.created_at.isoformat() if stored else None,
                "finished_at": _iso(stored.finished_at) if stored else None,
            }
        )
        msg = H.build_message(
            body,
            type_name="TaskEvent",
            app_id="ORCHESTRATOR",
            schema_version=SCHEMA_VERSION,
            persistent=False,
        )
        with self._watch_lock:
            watcher = self._watchers.get(task_id)
        if watcher is not None and watcher[1]:
            # Before the exchange copy: a direct watcher must not learn less than a listener.
            direct = self.transport.publish("", watcher[0], msg, mandatory=False)
            direct.add_done_callback(_log_event_failure)
        fut = self.transport.publish(self.topology.task_exchange, task_id.key, msg, mandatory=False)
        fut.add_done_callback(_log_event_failure)
        return fut

    def _auto_iteration_plan(self, task_id: TaskId, envelope: TaskEnvelope) -> _AutoPlan | None:
        """What follows the success of a task, decided from its final envelope (the UserInput is
        in its context, no read needed). Iterations the orchestrator starts by itself:

        - automatic carbon optimisation (``optimize_carbon_footprint_auto`` with
          ``desired_carbon_footprint`` kgCO2e): while the estimate is above the target, try the
          carbon node's next option (other hardware, or exclude the model) in a new iteration;
          stop when the target is met or no untried option is left, and say which in the note;
        - otherwise upstream "Nº outputs": ``num_outputs`` > 1 starts the next iteration,
          excluding the models proposed so far.
        The plan is carried out only if the task is still not cancelled once the output is
        stored (the caller checks)."""
        carbon = envelope.record
        if not isinstance(carbon, CO2Footprint):
            return None
        context_input = envelope.context.get(USER_INPUT)
        if isinstance(context_input, UserInput):
            user_input = context_input.model_copy(deep=True)
        else:  # not expected (every envelope carries it): read the stored one
            row = self.db.get_task(_key(task_id))
            if row is None:
                return None
            user_input = _decode_user_input(row.user_input)
        extra = carbon.get_extra()
        if user_input.optimize_carbon_footprint_auto and user_input.desired_carbon_footprint > 0:
            return self._optimise_step(task_id, user_input, carbon, extra)
        try:
            num_outputs = int(extra.get("num_outputs") or 1)
        except (TypeError, ValueError):
            log.warning(
                "task %s: ignoring num_outputs=%r (not an integer)", task_id, extra.get("num_outputs")
            )
            return None
        if num_outputs > self.settings.max_num_outputs:  # checked at submit; a forged copy is capped
            log.warning(
                "task %s: num_outputs=%d capped to %d", task_id, num_outputs, self.settings.max_num_outputs
            )
            num_outputs = self.settings.max_num_outputs
        if num_outputs > 1:
            changes = {
                "num_outputs": num_outputs - 1,
                "model_restrains": list(extra.get("model_restrains") or []),
            }
            return _AutoPlan(None, user_input, changes)
        return None

    def _optimise_step(
        self, task_id: TaskId, user_input: UserInput, carbon: CO2Footprint, extra: dict[str, Any]
    ) -> _AutoPlan:
        target = user_input.desired_carbon_footprint
        ui_extra = user_input.get_extra()
        history = dict(ui_extra.get("optimization") or {})
        steps = list(history.get("steps") or [])
        steps.append({"task": task_id.key, "carbon_kg": carbon.carbon_footprint})
        if carbon.carbon_footprint <= target:
            note = (
                f"carbon optimisation: target {target:g} kgCO2e met at {task_id} "
                f"({carbon.carbon_footprint:.4g} kgCO2e after {len(steps)} iteration(s))"
            )
            log.info("task %s: %s", task_id, note)
            return _AutoPlan(note, None, None)
        tried = [s.get("change") for s in steps if s.get("change")]
        options = [o for o in extra.get("next_options") or [] if isinstance(o, dict) and o not in tried]
        if not options:
            best = min(steps, key=lambda s: float(s.get("carbon_kg") or 0.0))
            note = (
                f"carbon optimisation: target {target:g} kgCO2e not met; no option left "
                f"(best {best['carbon_kg']:.4g} kgCO2e at {best['task']})"
            )
            log.info("task %s: %s", task_id, note)
            return _AutoPlan(note, None, None)
        option = options[0]
        steps[-1]["change"] = option
        changes: dict[str, Any] = {"optimization": {"target_kg": target, "steps": steps}}
        restrains = list(extra.get("model_restrains") or [])
        if option.get("kind") == "hardware" and option.get("hardware"):
            changes["hardware_required"] = option["hardware"]
            # keep the model: only the hardware changes in this step
            restrains = [m for m in restrains if m not in restrains[:1]]
        elif option.get("kind") == "model" and option.get("exclude"):
            restrains = list(dict.fromkeys([*restrains, str(option["exclude"])]))
        changes["model_restrains"] = restrains
        return _AutoPlan(None, user_input, changes)

    def _start_next_iteration(
        self,
        task_id: TaskId,
        user_input: UserInput,
        changes: dict[str, Any],
        context: dict[str, Record] | None = None,
    ) -> None:
        """Submit iteration i+1 of the task's problem with the same input, the goal already found
        (from the final envelope's ``context``, else from the stored outputs), and ``changes``
        merged into extra_data."""
        meta: Record | None = (context or {}).get("ml_model_metadata")
        if not isinstance(meta, MLModelMetadata):
            stored = self.db.get_outputs(_key(task_id)).get("ml_model_metadata")
            meta = decode(stored, MLModelMetadata) if stored is not None else None
        ui_extra = user_input.get_extra()
        if isinstance(meta, MLModelMetadata) and meta.ml_model_metadata:
            ui_extra["goal"] = meta.ml_model_metadata[0]
        ui_extra.update(changes)
        ui_extra["previous_problem_id"] = task_id.problem_id
        user_input.set_extra(ui_extra)
        user_input.previous_iteration = task_id.iteration_id
        user_input.task_id = None
        if self.db.automatic_stopped(task_id.problem_id):
            self._note(task_id, "automatic iterations stopped: a task of this problem was cancelled")
            return
        try:
            nxt = self.submit(user_input)
            log.info("task %s: automatic iteration %s started", task_id, nxt)
            if self.db.automatic_stopped(task_id.problem_id):  # cancelled while it was created
                self.cancel(nxt)
        except (SubmitError, TransportError, FutureTimeout, MessageError) as exc:
            log.error("task %s: automatic iteration could not start: %s", task_id, exc)
            self._note(task_id, f"automatic iteration could not start: {exc}")

    def _note(self, task_id: TaskId, note: str) -> None:
        log.info("task %s: %s", task_id, note)
        self.db.set_note(_key(task_id), note)

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        dead_letter(self.transport, self.topology, delivery, reason, by="orchestrator")

    # -- status --------------------------------------------------------------------------------
    def _on_status(self, delivery: Delivery) -> None:
        try:  # statuses are stored: only from workers
            self._signer().require(delivery.message, {"worker"}, "NodeStatus")
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
        self.registry.update(status)
        task = _key(status.task_id) if status.task_id else None
        update = StatusUpdate(
            node_name=status.node_name,
            replica_id=status.replica_id,
            status=int(status.node_status),
            task_status=int(status.task_status),
            task=task,
            error_description=status.error_description,
            at=datetime.now(UTC),
            task_event=status.event == "task" and task is not None,
        )
        with self._status_lock:
            self._status_backlog.append(update)
        self._notify()

    def _flush_statuses(self, *, rearm: bool = True) -> None:
        """Write the buffered statuses in one transaction (heartbeats are written behind so they
        never compete with task outputs for the database)."""
        with self._status_lock:
            batch, self._status_backlog = self._status_backlog, []
        try:
            self.db.record_statuses(batch)
        except Exception:  # the in-memory registry stays right; the DB copy is history
            log.exception("could not store %d node status updates", len(batch))
        if rearm and not self._stopped.is_set() and self._started:
            self.transport.call_later(STATUS_FLUSH_INTERVAL, self._flush_statuses)

    def status(self) -> dict[str, Status]:
        return self.registry.node_status()

    def replicas(self) -> list[ReplicaState]:
        return self.registry.replicas()

    # -- queries -------------------------------------------------------------------------------
    def result(self, task_id: TaskId) -> TaskResult:
        row = self.db.get_task(_key(task_id))
        if row is None:
            raise KeyError(f"task {task_id} does not exist")
        outputs = {
            kind: decode(blob, RECORD_TYPES[kind])
            for kind, blob in self.db.get_outputs(_key(task_id)).items()
        }
        user_input = _decode_user_input(row.user_input)
        user_input.task_id = task_id  # stored before the id existed
        return TaskResult(
            task_id=task_id,
            state=row.state.value,
            user_input=user_input,
            outputs=outputs,
            error=row.error,
            current_stage=row.current_stage,
            note=row.note,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )

    def wait(self, task_id: TaskId, timeout: float = 60.0) -> TaskResult:
        """Block until the task is succeeded, failed or cancelled; ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            res = self.result(task_id)
            if res.done:
                return res
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"task {task_id} not finished after {timeout:g} s (at {res.current_stage})"
                )
            with self._changed:
                self._changed.wait(min(remaining, 0.5))

    def list_tasks(
        self, state: str | None = None, problem_id: int | None = None, limit: int = 50, offset: int = 0
    ) -> list[TaskRow]:
        return self.db.list_tasks(state=state, problem_id=problem_id, limit=limit, offset=offset)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

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
            task_id = TaskId(problem_id=running[0].problem_id, iteration_id=running[0].iteration_id)
        row = self.db.get_task(_key(task_id))
        if row is None:
            raise KeyError(f"task {task_id} does not exist")
        # First the problem's flag, then its later tasks: an automatic iteration being started
        # right now either sees the flag or is in the list below (it re-checks after creating).
        self.db.stop_automatic(task_id.problem_id)
        self._cancel_one(task_id, row)
        for later in self.db.list_tasks(problem_id=task_id.problem_id, limit=1000):
            if later.iteration_id > task_id.iteration_id and not later.is_terminal:
                self._cancel_one(TaskId(problem_id=later.problem_id, iteration_id=later.iteration_id), later)
        self._notify()
        return task_id

    def _cancel_one(self, task_id: TaskId, row: TaskRow) -> None:
        if row.state not in TERMINAL_STATES:
            self.db.set_state(_key(task_id), "cancelled", error="cancelled by request")
            announced = self._publish_task_event(
                task_id, "cancelled", row.current_stage, "cancelled by request"
            )
            self._forget_watcher(task_id, announced)
        self._broadcast_cancel(task_id)

    def _broadcast_cancel(self, task_id: TaskId) -> None:
        self.control(ALL_NODES_KEY, cmd_task=CmdTask.CMD_STOP_TASK, task_id=task_id)

    def control(
        self,
        target: str,
        *,
        cmd_node: CmdNode = CmdNode.NO_CMD,
        cmd_task: CmdTask = CmdTask.NO_CMD,
        task_id: TaskId | None = None,
    ) -> None:
        """Publish a NodeControl to one node type (all its replicas) or to ``all``. A task command
        must name a task that exists (``KeyError`` otherwise)."""
        if task_id is not None and cmd_task != CmdTask.NO_CMD and self.db.get_task(_key(task_id)) is None:
            raise KeyError(f"task {task_id} does not exist")
        source, signer = "ORCHESTRATOR", self._signer()
        publish_control(self.transport, self.topology, target, cmd_node, cmd_task, task_id, source, signer)

    def config_request(
        self, node: str | int, configuration: str, timeout: float | None = None
    ) -> ResponseType:
        """Send a configuration request to a node type; the node's own success/err_code come back.
        A node with no replica gives ``RpcTimeout`` after ``timeout`` (default SUSTAINML_RPC_TIMEOUT)."""
        if self._rpc is None:
            raise RuntimeError("orchestrator not started")
        stage = resolve_stage(str(node))
        return config_call(
            self._rpc,
            self.topology,
            stage,
            configuration,
            self._next_transaction(),
            timeout or self.settings.rpc_timeout,
        )

    def _next_transaction(self) -> int:
        with self._tx_lock:
            self._transaction_id += 1
            return self._transaction_id

    # -- requests over the broker --------------------------------------------------------------
    def _on_request(self, delivery: Delivery) -> None:
        reply_to = delivery.message.reply_to
        if reply_to:
            try:  # a request whose answer would land in another namespace is not carried out
                check_own_queue(self.topology, reply_to, "reply_to", direct_reply=True)
            except ForeignQueue as exc:
                delivery.ack()
                log.warning("orchestrator request refused: %s", exc)
                return
        try:
            response = self._handle_request(unpack(delivery.message.body), delivery.message)
        except KeyError as exc:
            response = {"ok": False, "error": str(exc.args[0])}
        except (RequestError, SubmitError, MessageError, ValueError, TypeError) as exc:  # ForeignQueue too
            response = {"ok": False, "error": str(exc)}
        except (TransportError, FutureTimeout) as exc:
            response = {"ok": False, "error": f"broker error: {exc}"}
        except Exception as exc:  # a bug: still answer, so the caller does not wait for its timeout
            log.exception("orchestrator request failed")
            response = {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
        delivery.ack()
        response["schema_version"] = SCHEMA_VERSION
        reply(self.transport, delivery, pack(response), topology=self.topology, type="OrchestratorReply")

    def _handle_request(self, req: dict[str, Any], message: Message) -> dict[str, Any]:
        version = req.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
            raise RequestError(
                f"schema_version: expected an integer from 1 to {SCHEMA_VERSION}, got {version!r}"
            )
        op = req.get("op")
        if op == "submit":
            raw = req.get("user_input")
            if not isinstance(raw, dict):
                raise RequestError("user_input: expected a UserInput record (map)")
            user_input = from_wire(UserInput, raw)
            watch = message.headers.get(H.H_WATCH_QUEUE)
            direct = message.headers.get(H_WATCH_MODE) == WATCH_DIRECT
            key = req.get("idempotency_key")
            task_id = self.submit(
                user_input,
                watch_queue=str(watch) if watch else None,
                watch_direct=direct,
                idempotency_key=check_submission_key(key) if key is not None else None,
            )
            return {"ok": True, "task_id": to_wire(task_id)}
        if op == "result":
            return {"ok": True, "result": self.result(task_id_from(req.get("task_id"))).to_wire()}
        if op == "status":
            return {
                "ok": True,
                "nodes": {name: int(s) for name, s in self.status().items()},
                "replicas": [_replica_wire(r) for r in self.replicas()],
            }
        if op == "cancel":
            raw_id = req.get("task_id")
            cancelled = self.cancel(task_id_from(raw_id) if raw_id is not None else None)
            return {"ok": True, "task_id": to_wire(cancelled) if cancelled else None}
        if op == "list":
            state = req.get("state")
            if state is not None and state not in TASK_STATES:
                raise RequestError(f"state: expected one of {', '.join(TASK_STATES)}, got {state!r}")
            rows = self.list_tasks(
                state=state,
                problem_id=_int_field(req, "problem_id", None, minimum=1),
                limit=_int_field(req, "limit", 50, minimum=1, maximum=1000),
                offset=_int_field(req, "offset", 0, minimum=0),
            )
            return {"ok": True, "tasks": [_row_wire(r) for r in rows]}
        raise RequestError(f"op: unknown operation {op!r}")


@dataclass(frozen=True)
class _AutoPlan:
    """What follows a succeeded task: a note for it, and/or the next iteration to submit."""

    note: str | None
    user_input: UserInput | None  # the task's input, to derive the next iteration from
    changes: dict[str, Any] | None  # merged into the next iteration's extra_data; None: no iteration


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _log_event_failure(fut: Future[None]) -> None:
    if fut.exception() is not None:
        log.warning("task event not published: %s", fut.exception())


def _int_field(
    req: dict[str, Any], name: str, default: int | None, *, minimum: int, maximum: int | None = None
) -> Any:
    value = req.get(name, default)
    if value is None:
        return default
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bound = f" and <= {maximum}" if maximum is not None else ""
        raise RequestError(f"{name}: expected an integer >= {minimum}{bound}, got {value!r}")
    return value


def _key(task_id: TaskId) -> TaskKey:
    return TaskKey(task_id.problem_id, task_id.iteration_id)


def _next_stage(stage: Stage) -> Stage:
    return PIPELINE[PIPELINE.index(stage) + 1]


def _decode_user_input(blob: bytes | None) -> UserInput:
    return decode(blob, UserInput) if blob else UserInput()


def _inherit(base: UserInput, given: UserInput) -> UserInput:
    """An iteration copies its base's UserInput; fields the request sets to a non-default value
    override it, and extra_data is merged key by key (the request's keys win)."""
    merged = base.model_copy(deep=True)
    defaults = UserInput()
    for name in UserInput.model_fields:
        if name in _NOT_INHERITED:
            continue
        value = getattr(given, name)
        if value != getattr(defaults, name):
            setattr(merged, name, value)
    extra = base.get_extra()
    extra.update(given.get_extra())
    merged.set_extra(extra)
    merged.previous_iteration = given.previous_iteration
    merged.task_id = None
    return merged


def _replica_wire(r: ReplicaState) -> dict[str, Any]:
    return {
        "node_name": r.node_name,
        "replica_id": r.replica_id,
        "status": int(r.status),
        "age_s": round(time.monotonic() - r.last_seen, 3),
        "in_flight": r.in_flight,
        "processed": r.processed,
        "error_description": r.error_description,
        "task_id": r.task_id,
    }


def _row_wire(r: TaskRow) -> dict[str, Any]:
    return {
        "task_id": {"problem_id": r.problem_id, "iteration_id": r.iteration_id},
        "state": r.state,
        "error": r.error,
        "current_stage": r.current_stage,
        "created_at": r.created_at.isoformat() if r.created_at else None,
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
    }
