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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sustainml.attribution import Attribution, load_key, role_of_user
from sustainml.config import ConfigError, Settings
from sustainml.messages import (
    RECORD_TYPES,
    CmdNode,
    CmdTask,
    MessageError,
    Record,
    ResponseType,
    Status,
    TaskId,
    UserInput,
    from_wire,
    to_wire,
)
from sustainml.messages import headers as H
from sustainml.orchestrator.node_calls import config_call, publish_control
from sustainml.orchestrator.protocol import (
    H_WATCH_MODE,
    TERMINAL_STATES,
    WATCH_DIRECT,
    RequestError,
    TaskResult,
    request,
    unpack,
)
from sustainml.rpc import RpcClient, RpcError, RpcTimeout
from sustainml.topology import PIPELINE, Topology, resolve_stage
from sustainml.transport import amqp_transport
from sustainml.transport.base import Delivery, Message, Transport

log = logging.getLogger(__name__)

# Watched tasks whose events are kept for a later ``wait`` (oldest dropped first: their waiter
# then asks the orchestrator).
MAX_TRACKED_TASKS = 10_000
_STAGE_KINDS = frozenset(stage.kind for stage in PIPELINE)


class OrchestratorError(RuntimeError):
    """The orchestrator refused a request or could not be reached; the message says which."""


class _NoAnswer(OrchestratorError):
    """No reply within the timeout (a submission is then sent again with its key)."""


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
    state: str
    stage: str | None
    error: str | None


ProgressCallback = Callable[[StageEvent], None]


@dataclass
class _Tracked:
    """What this client saw of one watched task, to build its result without a request."""

    user_input: dict[str, Any] | None = None  # wire form as submitted (new problems only)
    started: bool = False  # the start event arrived (so no earlier event can be missing)
    outputs: dict[str, Record] = field(default_factory=dict)  # by kind, in arrival order
    final: dict[str, Any] | None = None  # the terminal TaskEvent


class Client:
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
    def _call(self, op: str, *, headers: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        timeout = self.settings.rpc_timeout
        try:
            answer = self._rpc_call(request(op, **fields), headers or {}, timeout)
        except RpcTimeout:
            raise _NoAnswer(
                f"the orchestrator did not answer within {timeout:g} s: is it running? "
                "(`sustainml up` starts it with all workers; `sustainml orchestrator` alone)"
            ) from None
        except RpcError as exc:
            raise OrchestratorError(str(exc)) from None
        reply = unpack(answer.body)
        if not reply.get("ok"):
            raise OrchestratorError(str(reply.get("error") or "request refused"))
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
        ``StageEvent``s for ``wait``/``events``.

        Every submission carries an idempotency key (a new random one unless given): when the
        orchestrator does not answer in time (it may be restarting) the same request is sent
        again, for up to ``SUSTAINML_SUBMIT_TIMEOUT`` s, and the orchestrator returns the task the
        key already created instead of creating a second one."""
        headers = {H.H_WATCH_QUEUE: self._ensure_watch_queue(), H_WATCH_MODE: WATCH_DIRECT} if watch else None
        wire = to_wire(user_input)
        key = idempotency_key or f"client-{uuid.uuid4().hex}"
        deadline = time.monotonic() + self.settings.submit_timeout
        while True:
            try:
                reply = self._call("submit", headers=headers, user_input=wire, idempotency_key=key)
                break
            except _NoAnswer as exc:
                if time.monotonic() >= deadline:
                    raise OrchestratorError(
                        f"{exc} (submission {key} tried for {self.settings.submit_timeout:g} s)"
                    ) from None
                log.info("submission %s not answered; sending it again (same key)", key)
        task_id = from_wire(TaskId, reply["task_id"])
        if watch and user_input.previous_iteration == 0:
            # Stored as sent (an iteration's input is merged with its base by the orchestrator).
            with self._tracked_lock:
                self._track(task_id).user_input = wire
        return task_id

    def result(self, task_id: TaskId) -> TaskResult:
        return TaskResult.from_wire(self._call("result", task_id=to_wire(task_id))["result"])

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
        # their last events may still be on the way; they get one more poll interval to arrive
        # (and reach on_progress) before the polled result is returned.
        polled: dict[TaskId, TaskResult] = {}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for tid, res in polled.items():  # finished; only their last events are missing
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
            elif (
                isinstance(event, TaskStateEvent)
                and event.task_id in pending
                and event.state in TERMINAL_STATES
            ):
                res = self._finished_result(event.task_id) or self.result(event.task_id)
                pending.discard(event.task_id)
                polled.pop(event.task_id, None)
                done[event.task_id] = res
            if time.monotonic() >= next_poll:  # tasks not watched by this client, lost events
                next_poll = time.monotonic() + 1.0
                for tid in list(pending):
                    res = polled.pop(tid, None)  # found finished one interval ago: take it now
                    if res is None:
                        res = self.result(tid)
                        if not res.done:
                            continue
                        with self._tracked_lock:
                            watched = tid in self._tracked
                        if watched:
                            polled[tid] = res
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
        reply = self._call("status")
        return {
            "nodes": {name: Status(v).name for name, v in reply["nodes"].items()},
            "replicas": reply["replicas"],
        }

    def cancel(self, task_id: TaskId | None = None) -> TaskId | None:
        reply = self._call("cancel", task_id=to_wire(task_id) if task_id else None)
        return from_wire(TaskId, reply["task_id"]) if reply.get("task_id") else None

    def list_tasks(self, state: str | None = None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        return list(self._call("list", state=state, limit=limit, offset=offset)["tasks"])

    def config(self, node: str, configuration: str, timeout: float | None = None) -> ResponseType:
        """A configuration request straight to the node's replicas (no orchestrator needed)."""
        with self._lock:
            self._tx += 1
            tx = self._tx
        stage = resolve_stage(node)
        return config_call(
            self._rpc, self.topology, stage, configuration, tx, timeout or self.settings.rpc_timeout
        )

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
        if delivery.message.type != "TaskEvent":
            log.warning("unexpected %r message on the watch queue; ignored", delivery.message.type)
            return
        try:
            ev = unpack(delivery.message.body)
            task_id = from_wire(TaskId, ev.get("task_id"))
            state = str(ev.get("state"))
            completed = ev.get("completed")
            stage_event: StageEvent | None = None
            if completed:
                failed = ev.get("error") if state == "failed" else None
                raw = ev.get("record")
                kind = resolve_stage(str(completed)).kind
                record = from_wire(RECORD_TYPES[kind], raw) if isinstance(raw, dict) else None
                elapsed = time.monotonic() - self._started
                stage_event = StageEvent(task_id, str(completed), failed, elapsed, record)
            # Tracked before the events are queued: a waiter woken by them finds it up to date.
            with self._tracked_lock:
                tracked = self._track(task_id)
                if stage_event is not None and stage_event.record is not None:
                    tracked.outputs[resolve_stage(stage_event.node).kind] = stage_event.record
                elif not completed and state == "running":
                    tracked.started = True
                if state in TERMINAL_STATES:
                    tracked.final = ev
            if stage_event is not None:
                self._events.put(stage_event)
            self._events.put(TaskStateEvent(task_id, state, ev.get("stage"), ev.get("error")))
        except (RequestError, MessageError, KeyError) as exc:
            log.warning("unreadable task event on the watch queue: %s", exc)


def _result_from_events(task_id: TaskId, tracked: _Tracked) -> TaskResult | None:
    """A succeeded task's result from its events, or None when they may not be complete: the
    start event and all six outputs seen, the final event carrying the timestamps, the input
    known. (Failed and cancelled tasks are asked for: which outputs were stored is not provable
    from the events.)"""
    final = tracked.final
    if (
        final is None
        or final.get("state") != "succeeded"
        or not tracked.started
        or tracked.user_input is None
        or set(tracked.outputs) != _STAGE_KINDS
        or not isinstance(final.get("created_at"), str)
    ):
        return None
    try:
        user_input = from_wire(UserInput, tracked.user_input)
        created_at = datetime.fromisoformat(final["created_at"])
        finished = final.get("finished_at")
        finished_at = datetime.fromisoformat(finished) if isinstance(finished, str) else None
    except (MessageError, ValueError) as exc:
        log.warning("task %s: result not built from its events (%s); asking the orchestrator", task_id, exc)
        return None
    user_input.task_id = task_id  # as the orchestrator stamps it
    note = final.get("note")
    stage = final.get("stage")
    error = final.get("error")
    return TaskResult(
        task_id=task_id,
        state="succeeded",
        user_input=user_input,
        outputs=dict(tracked.outputs),
        error=str(error) if error is not None else None,
        current_stage=str(stage) if stage is not None else None,
        note=str(note) if note is not None else None,
        created_at=created_at,
        finished_at=finished_at,
    )
