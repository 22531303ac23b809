"""The remote Python API: what the CLI (and any Python program) uses to talk to a running
orchestrator and the nodes over the broker.

``Client`` submits problems (the orchestrator assigns the id and replies), follows a task's
outputs live through a private watch queue to which the orchestrator publishes the task's events
from the first one on (straight, through the default exchange: no binding, no output can be
missed), fetches results, node status, sends configuration requests straight to the nodes, and
cancels tasks.

A watched task's result is built from its events (every stored output, then the final event with
the note and timestamps), so ``wait`` needs no ``result`` request after it; when an event is
missing (a broker restart, an orchestrator restart, an iteration whose merged input only the
orchestrator knows) it asks the orchestrator instead.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sustainml.attribution import Attribution, load_key, role_of_user
from sustainml.config import ConfigError, Settings
from sustainml.messages import (
    CmdNode,
    CmdTask,
    MessageError,
    Record,
    ResponseType,
    Status,
    TaskId,
    UserInput,
    from_wire,
)
from sustainml.messages import headers as H
from sustainml.messages.tasks import (
    TASK_EVENT,
    TERMINAL_STATES,
    CancelReply,
    CancelRequest,
    ListReply,
    ListRequest,
    NodeReport,
    Request,
    RequestError,
    ResultReply,
    ResultRequest,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
    TaskEvent,
    TaskResult,
    TaskState,
    TaskSummary,
    encode_request,
    unpack,
)
from sustainml.orchestrator.node_calls import config_call, publish_control
from sustainml.orchestrator.protocol import H_WATCH_MODE, WATCH_DIRECT
from sustainml.orchestrator.service import (
    EventHandler,
    EventSubscription,
    Health,
    SubmitRefused,
    event_bindings,
)
from sustainml.rpc import CallsUnanswered, RpcClient, RpcError, RpcTimeout
from sustainml.topology import PIPELINE, Topology, resolve_stage
from sustainml.transport import amqp_transport
from sustainml.transport.base import Delivery, Message, Transport

log = logging.getLogger(__name__)

# Watched tasks whose events are kept for a later ``wait`` (oldest dropped first: their waiter
# then asks the orchestrator).
MAX_TRACKED_TASKS = 10_000
# How long wait() holds a watched task that a poll found finished, for its last events: longer
# than the poll interval (1 s), so an announcement up to a second behind the store is never lost.
FINAL_EVENTS_GRACE = 2.0
# Submissions in flight at once in submit_many: enough to keep the orchestrator's request
# handlers busy; bounded so a large batch neither floods the requests queue nor outlives its
# requests' expiration while queued behind the rest.
SUBMIT_WINDOW = 256
_STAGE_KINDS = frozenset(stage.kind for stage in PIPELINE)


class OrchestratorError(RuntimeError):
    """The orchestrator refused a request or could not be reached; the message says which."""


class SubmissionsUnanswered(OrchestratorError):
    """Some submissions stayed unanswered for ``SUSTAINML_SUBMIT_TIMEOUT`` s. ``outcomes`` holds
    what the others got, in input order (None: no answer; its task may exist, and submitting it
    again with the same idempotency key never creates a second one)."""

    def __init__(self, message: str, outcomes: list[TaskId | SubmitRefused | None]) -> None:
        super().__init__(message)
        self.outcomes = outcomes


class UnknownTask(OrchestratorError, KeyError):
    """The orchestrator does not know the task (a ``KeyError``, as in process)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _no_answer(timeout: float) -> str:
    return (
        f"the orchestrator did not answer within {timeout:g} s: is it running? "
        "(`sustainml up` starts it with all workers; `sustainml orchestrator` alone)"
    )


def _refusal(error: str) -> OrchestratorError:
    # The wire carries no error codes: an unknown task is told by its message (§9.3).
    if error.startswith("task ") and error.endswith(" does not exist"):
        return UnknownTask(error)
    return OrchestratorError(error)


@dataclass(frozen=True)
class StageEvent:
    """One stage output seen on the watch queue."""

    task_id: TaskId
    node: str
    failed: str | None  # "<NODE>: <reason>" when the task failed at this stage
    elapsed: float  # seconds since the watch started
    record: Record | None = None  # the stage's stored output


@dataclass(frozen=True)
class TaskStateEvent:
    """A task state change the orchestrator stored (running, succeeded, failed, cancelled)."""

    task_id: TaskId
    state: TaskState
    stage: str | None
    error: str | None


ProgressCallback = Callable[[StageEvent], None]


@dataclass
class _Tracked:
    """What this client saw of one watched task, to build its result without a request."""

    user_input: dict[str, Any] | None = None  # wire form as submitted (new problems only)
    started: bool = False  # the start event arrived (so no earlier event can be missing)
    outputs: dict[str, Record] = field(default_factory=dict)  # by kind, in arrival order
    final: TaskEvent | None = None  # the terminal TaskEvent


class Client:
    """The remote ``OrchestratorService`` (service.py), plus live progress of watched tasks."""

    def __init__(self, settings: Settings | None = None, *, transport: Transport | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.topology = Topology.of(self.settings)
        self._own_transport = transport is None
        self.transport = transport or amqp_transport(self.settings, "client", retry_refused=False)
        self.transport.connect()
        self.id = uuid.uuid4().hex[:12]
        self._rpc = RpcClient(self.transport, self.topology, owner_id=f"client-{self.id}")
        self._watch_queue: str | None = None
        self._watch_tag: str | None = None
        self._events: queue.Queue[StageEvent | TaskStateEvent] = queue.Queue()
        self._started = time.monotonic()
        self._tx = 0
        self._lock = threading.Lock()
        self._tracked: OrderedDict[TaskId, _Tracked] = OrderedDict()
        self._tracked_lock = threading.Lock()
        self._attribution: Attribution | None = None  # made on first control(): needs the key

    def close(self) -> None:
        self._rpc.close()
        if self._watch_queue is not None:
            # Cancelled before its queue is deleted: the broker then has no consumer of its own to
            # cancel, which would race with the transport's close.
            if self._watch_tag is not None:
                self.transport.cancel(self._watch_tag)
            try:
                self.transport.delete_queue(self._watch_queue)
            except Exception as exc:  # it also expires on its own (x-expires)
                log.debug("watch queue not deleted: %s", exc)
        if self._own_transport:
            self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- orchestrator requests ---------------------------------------------------------------
    def _call(self, req: Request) -> dict[str, Any]:
        timeout = self.settings.rpc_timeout
        try:
            answer = self._rpc_call(encode_request(req), {}, timeout)
        except RpcTimeout:
            raise OrchestratorError(_no_answer(timeout)) from None
        except RpcError as exc:
            raise OrchestratorError(str(exc)) from None
        reply = unpack(answer.body)
        if not reply.get("ok"):
            raise _refusal(str(reply.get("error") or "request refused"))
        return reply

    def _rpc_call(self, body: bytes, headers: dict[str, Any], timeout: float) -> Message:
        return self._rpc.call(
            "",
            self.topology.orchestrator_requests_queue,
            body,
            timeout=timeout,
            target="the orchestrator",
            headers=headers,
        )

    def submit(
        self, user_input: UserInput, *, watch: bool = False, idempotency_key: str | None = None
    ) -> TaskId:
        """Submit a problem (or an iteration: set previous_iteration and
        extra_data.previous_problem_id). With ``watch`` the task's outputs arrive as
        ``StageEvent``s for ``wait``/``events``. ``submit_many`` of one input: a refusal raises
        ``OrchestratorError`` naming the field."""
        keys = [idempotency_key] if idempotency_key else None
        outcome = self.submit_many([user_input], watch=watch, idempotency_keys=keys)[0]
        if isinstance(outcome, SubmitRefused):
            raise _refusal(outcome.error)
        return outcome

    def submit_many(
        self,
        inputs: Sequence[UserInput],
        *,
        window: int = SUBMIT_WINDOW,
        watch: bool = False,
        idempotency_keys: Sequence[str] | None = None,
    ) -> list[TaskId | SubmitRefused]:
        """Submit every input without waiting for each answer: up to ``window`` ``submit``
        requests are in flight at once (fewer while the orchestrator lags: ``RpcClient.call_many``;
        docs/wire-format.md §9.1-9.2), their replies matched by correlation id. Returns, in input
        order, each input's task id, or the ``SubmitRefused`` naming the field the orchestrator
        refused (the others are still submitted). With ``watch`` every task's outputs arrive as
        ``StageEvent``s for ``wait``/``wait_many``.

        Every submission carries an idempotency key (``idempotency_keys``, one per input, or a new
        random one each): a request the orchestrator does not answer in time (it may be
        restarting) is sent again with the same key, for up to ``SUSTAINML_SUBMIT_TIMEOUT`` s, and
        the orchestrator returns the task the key already created instead of creating a second
        one. Past that, ``SubmissionsUnanswered`` (with the outcomes received so far); a request
        that cannot be sent at all raises ``OrchestratorError``."""
        if idempotency_keys is not None and len(idempotency_keys) != len(inputs):
            raise ValueError(
                f"idempotency_keys: {len(idempotency_keys)} keys for {len(inputs)} inputs (one each)"
            )
        keys = list(idempotency_keys or (f"client-{uuid.uuid4().hex}" for _ in inputs))
        headers = {H.H_WATCH_QUEUE: self._ensure_watch_queue(), H_WATCH_MODE: WATCH_DIRECT} if watch else None
        requests = [SubmitRequest(ui, key) for ui, key in zip(inputs, keys, strict=True)]
        try:
            answers = self._rpc.call_many(
                "",
                self.topology.orchestrator_requests_queue,
                [encode_request(req) for req in requests],
                timeout=self.settings.rpc_timeout,
                resend_for=self.settings.submit_timeout,
                window=window,
                target="the orchestrator",
                headers=headers,
            )
        except CallsUnanswered as exc:
            outcomes = [
                self._submitted(req, answer, watch) if answer else None
                for req, answer in zip(requests, exc.replies, strict=True)
            ]
            raise SubmissionsUnanswered(
                f"{_no_answer(self.settings.rpc_timeout)} (submission {keys[exc.index or 0]} tried for "
                f"{self.settings.submit_timeout:g} s; {sum(o is not None for o in outcomes)} of "
                f"{len(requests)} answered)",
                outcomes,
            ) from None
        except RpcError as exc:
            raise OrchestratorError(str(exc)) from None
        return [self._submitted(req, answer, watch) for req, answer in zip(requests, answers, strict=True)]

    def _submitted(self, req: SubmitRequest, answer: Message, watch: bool) -> TaskId | SubmitRefused:
        """The outcome of one answered submission (a watched new problem's input remembered)."""
        reply = unpack(answer.body)
        if not reply.get("ok"):
            return SubmitRefused(str(reply.get("error") or "request refused"))
        task_id = SubmitReply.from_wire(reply).task_id
        if watch and req.user_input.previous_iteration == 0:
            # Stored as sent (an iteration's input is merged with its base by the orchestrator).
            with self._tracked_lock:
                self._track(task_id).user_input = req.fields()["user_input"]
        return task_id

    def result(self, task_id: TaskId) -> TaskResult:
        return ResultReply.from_wire(self._call(ResultRequest(task_id))).result

    def task(self, task_id: TaskId) -> TaskSummary:
        res = self.result(task_id)  # the one request that names a task
        return TaskSummary(
            res.task_id, res.state, res.error, res.current_stage, res.created_at, res.finished_at, res.note
        )

    def outputs(self, task_id: TaskId, kinds: Collection[str]) -> dict[str, Record | None]:
        return {kind: rec if kind in kinds else None for kind, rec in self.result(task_id).outputs.items()}

    def wait(
        self, task_id: TaskId, timeout: float = 120.0, on_progress: ProgressCallback | None = None
    ) -> TaskResult:
        """Wait until the task finishes; stage events (if the task is watched) go to ``on_progress``.
        Falls back on polling the orchestrator, so it also works for tasks submitted elsewhere."""
        return self.wait_many([task_id], timeout, on_progress)[task_id]

    def wait_many(
        self, task_ids: Iterable[TaskId], timeout: float = 120.0, on_progress: ProgressCallback | None = None
    ) -> dict[TaskId, TaskResult]:
        pending = set(task_ids)
        done: dict[TaskId, TaskResult] = {}
        for tid in list(pending):  # watched tasks that ended before this call
            res = self._finished_result(tid)
            if res is not None:
                pending.discard(tid)
                done[tid] = res
        deadline = time.monotonic() + timeout
        next_poll = time.monotonic() + 1.0
        # Watched tasks the poll found finished: the orchestrator stores before it announces, so
        # their last events may still be on the way; they get FINAL_EVENTS_GRACE seconds from the
        # poll that found them to arrive and reach on_progress before the polled result is
        # returned (one more interval was too little: the poll may come just after the store).
        polled: dict[TaskId, tuple[TaskResult, float]] = {}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for tid, (res, _found) in polled.items():  # finished; only their last events are missing
                    pending.discard(tid)
                    done[tid] = res
                if pending:
                    raise TimeoutError(f"{len(pending)} task(s) not finished after {timeout:g} s")
                break
            try:
                event = self._events.get(timeout=min(remaining, 0.25))
            except queue.Empty:
                event = None
            if isinstance(event, StageEvent) and on_progress is not None:
                on_progress(event)
            elif isinstance(event, TaskStateEvent) and event.task_id in pending and event.state.is_terminal:
                res = self._finished_result(event.task_id) or self.result(event.task_id)
                pending.discard(event.task_id)
                polled.pop(event.task_id, None)
                done[event.task_id] = res
            if time.monotonic() >= next_poll:  # tasks not watched by this client, lost events
                next_poll = time.monotonic() + 1.0
                for tid in list(pending):
                    found = polled.get(tid)
                    if found is not None:
                        res, found_at = found
                        if time.monotonic() - found_at < FINAL_EVENTS_GRACE:
                            continue
                        del polled[tid]  # its grace is over: take the stored result now
                    else:
                        res = self.result(tid)
                        if not res.done:
                            continue
                        with self._tracked_lock:
                            watched = tid in self._tracked
                        if watched:
                            polled[tid] = (res, time.monotonic())
                            continue
                    pending.discard(tid)
                    done[tid] = res
                    with self._tracked_lock:
                        self._tracked.pop(tid, None)
        return done

    def _finished_result(self, task_id: TaskId) -> TaskResult | None:
        """The result of a watched task whose final event arrived (then forgotten here): built
        from its events when they are complete, else asked from the orchestrator. None while the
        task is not over as far as this client saw."""
        with self._tracked_lock:
            tracked = self._tracked.get(task_id)
            if tracked is None or tracked.final is None:
                return None
            del self._tracked[task_id]
        return _result_from_events(task_id, tracked) or self.result(task_id)

    def status(self) -> dict[str, Any]:
        """The ``status`` reply as JSON-ready maps (node statuses by name)."""
        reply = self._call(StatusRequest())
        return {
            "nodes": {name: Status(v).name for name, v in reply["nodes"].items()},
            "replicas": reply["replicas"],
        }

    def nodes(self) -> NodeReport:
        return NodeReport.from_wire(self._call(StatusRequest()))

    def cancel(self, task_id: TaskId | None = None) -> TaskId | None:
        return CancelReply.from_wire(self._call(CancelRequest(task_id))).task_id

    def list_tasks(self, state: str | None = None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """The ``list`` reply's task maps as sent (§9.6)."""
        req = ListRequest(TaskState(state) if state else None, limit=limit, offset=offset)
        return list(self._call(req)["tasks"])

    def tasks(
        self, state: TaskState | None = None, problem_id: int | None = None, limit: int = 50, offset: int = 0
    ) -> list[TaskSummary]:
        return ListReply.from_wire(self._call(ListRequest(state, problem_id, limit, offset))).tasks

    def latest(self) -> TaskId | None:
        rows = self.tasks(limit=1)
        return rows[0].task_id if rows else None

    def task_counts(self) -> dict[TaskState, int]:
        """Tasks per state, by paging through ``list`` (the protocol has no count)."""
        counts = dict.fromkeys(TaskState, 0)
        for state in TaskState:
            while len(page := self.tasks(state, limit=1000, offset=counts[state])) > 0:
                counts[state] += len(page)
                if len(page) < 1000:
                    break
        return counts

    def health(self) -> Health:
        try:
            self.tasks(limit=1)  # answered only once the orchestrator read its TaskDB
            database = True
        except OrchestratorError as exc:
            log.warning("health: the orchestrator did not answer: %s", exc)
            database = False
        return Health(broker=self.transport.is_open, database=database)

    def queue_counts(self, queue: str) -> tuple[int, int]:
        return self.transport.queue_counts(queue)

    def watch(self, handler: EventHandler) -> EventSubscription:
        spec = self.topology.private_queue_spec("watch", f"{self.id}-live", event_bindings(self.topology))
        return EventSubscription(self.transport, spec).start(handler)

    def stop(self) -> None:
        self.close()

    def config_request(self, node: str, configuration: str, timeout: float | None = None) -> ResponseType:
        """A configuration request straight to the node's replicas (no orchestrator needed)."""
        with self._lock:
            self._tx += 1
            tx = self._tx
        stage = resolve_stage(node)
        return config_call(
            self._rpc, self.topology, stage, configuration, tx, timeout or self.settings.rpc_timeout
        )

    config = config_request  # the name the CLI knows

    def control(
        self,
        target: str,
        *,
        cmd_node: CmdNode = CmdNode.NO_CMD,
        cmd_task: CmdTask = CmdTask.NO_CMD,
        task_id: TaskId | None = None,
    ) -> None:
        """Send a NodeControl to every replica of ``target`` (a node name, or ``all``), as the
        operator role: signed with the deployment's key (which must exist: nodes ignore anything
        else), or sent with the operator's broker account. A task command must name a task the
        orchestrator knows (``OrchestratorError`` otherwise)."""
        if task_id is not None and cmd_task != CmdTask.NO_CMD:
            self.result(task_id)  # refused by the orchestrator when the task does not exist
        if self._attribution is None:
            try:
                key = load_key(self.settings, create=False)
            except ConfigError:
                if role_of_user(self.topology.ns, self.transport.user) is None:
                    raise  # a shared account: nodes obey only what the deployment's key signed
                key = b""  # a per-role account: the broker-validated user-id is the proof
            self._attribution = Attribution(self.topology.ns, "operator", key, self.transport.user)
        source, signer = f"client-{self.id}", self._attribution
        publish_control(self.transport, self.topology, target, cmd_node, cmd_task, task_id, source, signer)

    # -- watching ------------------------------------------------------------------------------
    def _ensure_watch_queue(self) -> str:
        if self._watch_queue is None:
            spec = self.topology.private_queue_spec("watch", self.id)
            self.transport.declare_queue(spec)
            self._watch_tag = self.transport.consume(spec.name, self._on_watch, prefetch=256, concurrency=1)
            self._watch_queue = spec.name
        return self._watch_queue

    def _track(self, task_id: TaskId) -> _Tracked:
        """The tracking entry of a task (created on first use); call with ``_tracked_lock``."""
        tracked = self._tracked.get(task_id)
        if tracked is None:
            tracked = self._tracked[task_id] = _Tracked()
            while len(self._tracked) > MAX_TRACKED_TASKS:
                self._tracked.popitem(last=False)
        return tracked

    def _on_watch(self, delivery: Delivery) -> None:
        delivery.ack()  # a progress view; the orchestrator holds the durable copy
        if delivery.message.type != TASK_EVENT:
            log.warning("unexpected %r message on the watch queue; ignored", delivery.message.type)
            return
        try:
            ev = TaskEvent.decode(delivery.message.body)
            stage_event: StageEvent | None = None
            record: Record | None = None
            if ev.completed:
                failed = ev.error if ev.state is TaskState.FAILED else None
                record = ev.output()
                elapsed = time.monotonic() - self._started
                stage_event = StageEvent(ev.task_id, ev.completed, failed, elapsed, record)
            # Tracked before the events are queued: a waiter woken by them finds it up to date.
            with self._tracked_lock:
                tracked = self._track(ev.task_id)
                if ev.kind is not None and record is not None:
                    tracked.outputs[ev.kind] = record
                elif not ev.completed and ev.state is TaskState.RUNNING:
                    tracked.started = True
                if ev.state in TERMINAL_STATES:
                    tracked.final = ev
            if stage_event is not None:
                self._events.put(stage_event)
            self._events.put(TaskStateEvent(ev.task_id, ev.state, ev.stage, ev.error))
        except (RequestError, MessageError, KeyError) as exc:
            log.warning("unreadable task event on the watch queue: %s", exc)


def _result_from_events(task_id: TaskId, tracked: _Tracked) -> TaskResult | None:
    """A succeeded task's result from its events, or None when they may not be complete: the
    start event and all six outputs seen, the final event carrying the timestamps, the input
    known. (Failed and cancelled tasks are asked for: which outputs were stored is not provable
    from the events.)"""
    final = tracked.final
    snapshot = final.snapshot() if final is not None else None
    if (
        snapshot is None
        or snapshot.state is not TaskState.SUCCEEDED
        or not tracked.started
        or tracked.user_input is None
        or set(tracked.outputs) != _STAGE_KINDS
    ):
        return None
    try:
        user_input = from_wire(UserInput, tracked.user_input)
    except MessageError as exc:
        log.warning("task %s: result not built from its events (%s); asking the orchestrator", task_id, exc)
        return None
    return TaskResult.assemble(task_id, user_input, tracked.outputs, snapshot)
