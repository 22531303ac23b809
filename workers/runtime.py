"""The node runtime: what every stage worker does around its user callback.

A ``Node`` consumes its stage queue (bound to the exchange of the stage before it), hands the
callback exactly the typed inputs the original framework gave it, publishes the filled output to
its own exchange with routing key ``<problem_id>.<iteration_id>`` and acknowledges the input only
after that publish is confirmed (a crash in between yields a redelivery, never a loss). The ack is
sent from the publisher-confirm callback: a handler thread moves on to the next task as soon as its
output is published, so a replica's throughput is not bound by the confirm round trip. Around it:

- status: INITIALIZING on start, IDLE when ready, RUNNING then IDLE/ERROR around each task, a
  NodeStatus heartbeat on the fanout status exchange every ``heartbeat_interval`` seconds,
  TERMINATING on shutdown. Per-task events go out in order from a status thread of their own; a
  task's RUNNING event is dropped when its callback has already returned by the time the thread
  gets to it (the completion event follows), so a quick task costs one status message, not two;
- configuration requests (RPC) on the node type's config queue, answered by ``service_callback``;
- NodeControl commands on the control exchange (pause/resume, reset, terminate, cancel a task);
- bad input (undecodable, invalid, missing context) is dead-lettered with the reason in a header.

Subclass it (or use the six classes in ``sustainml.workers.nodes``) exactly like the original:
``HardwareConstraintsNode(callback=task_callback, service_callback=configuration_callback).spin()``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from types import FrameType
from typing import Any, ClassVar, Literal

from sustainml.attribution import CONTROL_ROLES, Attribution, Unattributed
from sustainml.config import Settings
from sustainml.deadletter import attempt_of, dead_letter, retry_later
from sustainml.messages import (
    RECORD_TYPES,
    SCHEMA_VERSION,
    CmdNode,
    CmdTask,
    ErrorCode,
    MessageError,
    NodeControl,
    NodeStatus,
    Record,
    RequestType,
    ResponseType,
    Status,
    TaskEnvelope,
    TaskId,
    TaskStatus,
    decode,
    decode_task,
    encode,
    encode_task,
)
from sustainml.messages import headers as H
from sustainml.messages.kinds import BASELINE_SUFFIX, USER_INPUT
from sustainml.rpc import ForeignQueue, check_own_queue, reply
from sustainml.topology import ALL_NODES_KEY, Stage, Topology, declare_all
from sustainml.transport import amqp_transport
from sustainml.transport.base import (
    Binding,
    ConnectionLost,
    Delivery,
    Message,
    Transport,
    TransportError,
    wait_confirm,
)

log = logging.getLogger(__name__)

StatusEvent = Literal["online", "heartbeat", "task", "offline"]
TaskCallback = Callable[..., None]
ServiceCallback = Callable[[RequestType, ResponseType], None]

# How long the output of a task whose callback failed for the last time may wait for its
# confirm before its input is left for redelivery instead of being dead-lettered (that rare path
# waits synchronously; regular outputs are acked from the confirm callback, without a timeout: the
# transport fails every pending publish when its connection goes, so no confirm is awaited forever).
PUBLISH_CONFIRM_TIMEOUT = 30.0
CANCELLED_TASKS_REMEMBERED = 10_000
# On shutdown: how long in-flight tasks may take to finish (callback, output confirmed, input acked)
# before the node reports TERMINATING and closes its transport anyway (the broker then redelivers).
SHUTDOWN_TIMEOUT = 30.0
# A stop requested while the node is still starting (e.g. SIGTERM while the broker is unreachable):
# how long to wait for the abandoned start to unwind before spin() returns regardless.
ABANDONED_START_WAIT = 2.0


class _HybridTerminate:
    """``Node.terminate()`` stops every running node of that class (the seed template calls it on
    the class from a signal handler); ``node.terminate()`` stops just that node."""

    def __get__(self, obj: Node | None, cls: type[Node]) -> Callable[[], None]:
        if obj is not None:
            return obj.stop

        def stop_all() -> None:
            with Node._running_lock:
                nodes = [n for n in Node._running if isinstance(n, cls)]
            for node in nodes:
                node.stop()

        return stop_all


class _Running:
    """A queued RUNNING event; ``returned`` is set by the handler thread when the callback returns."""

    __slots__ = ("at", "returned", "task_id")

    def __init__(self, task_id: TaskId) -> None:
        self.task_id = task_id
        self.at = time.time()
        self.returned = False


@dataclass(frozen=True, slots=True)
class _Finished:
    """A queued completion event, with the node's counters as they were when the task settled."""

    task_id: TaskId
    status: Status
    task_status: TaskStatus
    error: str
    in_flight: int
    processed: int
    at: float


class _TaskEvents:
    """Publishes a node's per-task NodeStatus events, in order, from a thread of its own: handler
    threads (and the confirm callbacks) only queue them. A RUNNING event whose callback has already
    returned when its turn comes is dropped, its completion event being on the way; a callback
    that keeps running (sleeps, waits on I/O, or computes past the GIL switch interval) has its
    RUNNING event published right away, so the orchestrator and the dashboard see long tasks run."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._cv = threading.Condition()
        self._queue: deque[_Running | _Finished] = deque()
        self._closing = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._cv:
            if self._thread is not None:
                return
            self._closing = False
            self._thread = threading.Thread(
                target=self._run, name=f"{self._node.node_name}-task-events", daemon=True
            )
        self._thread.start()

    def running(self, task_id: TaskId) -> _Running:
        event = _Running(task_id)
        self._put(event)
        return event

    def finished(self, event: _Finished) -> None:
        self._put(event)

    def _put(self, event: _Running | _Finished) -> None:
        with self._cv:
            self._queue.append(event)
            self._cv.notify()

    def close(self, timeout: float) -> None:
        """Publish what is queued, then stop the thread (waits up to ``timeout`` seconds)."""
        with self._cv:
            self._closing = True
            self._cv.notify()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(max(0.0, timeout))
            if thread.is_alive():
                log.warning("%s: task status events still queued at shutdown", self._node.node_name)

    def _run(self) -> None:
        node = self._node
        while True:
            with self._cv:
                while not self._queue:
                    if self._closing:
                        return
                    self._cv.wait()
                event = self._queue.popleft()
            try:
                if isinstance(event, _Running):
                    if event.returned:
                        continue  # coalesced into the completion event that follows
                    record = node._task_status(event.task_id, Status.RUNNING, TaskStatus.RUNNING, at=event.at)
                else:
                    record = node._task_status(
                        event.task_id,
                        event.status,
                        event.task_status,
                        event.error,
                        in_flight=event.in_flight,
                        processed=event.processed,
                        at=event.at,
                    )
                node._publish_status(event="task", record=record)
            except Exception:  # keep reporting the next tasks; this one is in the log
                log.exception(
                    "%s: could not publish the status event of task %s", node.node_name, event.task_id
                )


class Node:
    """Base class of every stage worker. Subclasses set ``STAGE``."""

    STAGE: ClassVar[Stage]
    _running: ClassVar[set[Node]] = set()
    _running_lock: ClassVar[threading.Lock] = threading.Lock()

    terminate = _HybridTerminate()

    def __init__(
        self,
        callback: TaskCallback | None = None,
        service_callback: ServiceCallback | None = None,
        *,
        settings: Settings | None = None,
        transport: Transport | None = None,
        replica_id: str | None = None,
    ) -> None:
        if not hasattr(self, "STAGE"):
            raise TypeError(f"{type(self).__name__} must set STAGE (a sustainml.topology.Stage)")
        if callback is None:
            raise TypeError(f"{type(self).__name__}: a task callback is required")
        self.callback = callback
        self.service_callback = service_callback
        self.settings = settings or Settings.from_env()
        self.topology = Topology.of(self.settings)
        self._own_transport = transport is None
        self.transport = (
            transport if transport is not None else amqp_transport(self.settings, self.STAGE.node)
        )
        self.replica_id = replica_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.node_name = self.STAGE.node

        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when no task is left in _pending
        self._pending = 0  # stage deliveries being handled or waiting for their output's confirm
        self._stopped = threading.Event()
        self._wake = threading.Event()  # spin(): a stop was requested or the start finished
        self._task_events = _TaskEvents(self)
        self._started = False
        self._paused = False
        self._state = Status.INACTIVE
        self._last_error = ""
        self._in_flight: dict[TaskId, float] = {}
        self._processed = 0
        self._cancelled: OrderedDict[TaskId, None] = OrderedDict()
        self._stage_tag: str | None = None
        self._other_tags: list[str] = []
        with Node._running_lock:  # from creation on, so a class-level terminate() reaches it
            Node._running.add(self)
        self._control_queue = self.topology.private_queue("control", self.replica_id)
        self._attribution: Attribution | None = None  # set by start(): it needs the broker login

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Connect, declare, start consuming and heartbeating. Returns once the node is IDLE."""
        if self._started:
            return
        self._started = True
        self.transport.connect()
        self._attribution = Attribution.of(self.settings, "worker", self.transport.user)
        declare_all(self.transport, self.topology)  # first: the status exchange must exist
        self._task_events.start()
        self._set_state(Status.INITIALIZING)
        self._publish_status(event="online")
        self.transport.declare_queue(
            self.topology.private_queue_spec(
                "control",
                self.replica_id,
                (
                    Binding(self.topology.control_exchange, self.node_name),
                    Binding(self.topology.control_exchange, ALL_NODES_KEY),
                ),
            )
        )
        self._other_tags.append(
            self.transport.consume(self._control_queue, self._on_control, prefetch=16, concurrency=1)
        )
        self._other_tags.append(
            self.transport.consume(
                self.topology.config_queue(self.STAGE), self._on_config, prefetch=4, concurrency=1
            )
        )
        self._consume_stage()
        self._set_state(Status.IDLE)
        self._publish_status(event="heartbeat")
        self.transport.call_later(self.settings.heartbeat_interval, self._heartbeat)
        log.info("%s replica %s ready", self.node_name, self.replica_id)

    def spin(self) -> None:
        """Run until ``terminate()``, a TERMINATE command or SIGINT/SIGTERM (when on the main thread).
        A stop requested while the node is still starting (e.g. waiting for an unreachable broker)
        makes ``spin`` return at once, without an error."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self._on_signal)
        if not self._start_unless_stopped():
            return
        self._stopped.wait()
        self._shutdown()

    def stop(self) -> None:
        """Ask the node to stop; ``spin`` then finishes in-flight work and returns."""
        self._stopped.set()
        self._wake.set()

    def _start_unless_stopped(self) -> bool:
        """``start()`` on a helper thread, so that a stop request (signal, ``terminate()``) is
        honoured even while the start waits for the broker: connecting retries for up to the
        connect timeout, a reconnect until the broker is back. True once the node is up; False when
        it was stopped first. Errors of the start itself are raised here."""
        if self._stopped.is_set():
            self._forget_node()
            return False
        log.info("%s replica %s starting", self.node_name, self.replica_id)
        failure: list[BaseException] = []
        done = threading.Event()

        def run() -> None:
            try:
                self.start()
            except BaseException as exc:  # handed to the spinning thread, which raises it
                failure.append(exc)
            finally:
                done.set()
                self._wake.set()

        thread = threading.Thread(target=run, name=f"{self.node_name}-start", daemon=True)
        thread.start()
        self._wake.wait()
        if not done.is_set():
            if self._own_transport:
                log.warning(
                    "%s replica %s: stop requested before it was ready (is the broker reachable?); "
                    "giving up the start",
                    self.node_name,
                    self.replica_id,
                )
                # Closing the transport ends its connect attempts and any wait for the connection.
                self.transport.close(timeout=1.0)
                done.wait(ABANDONED_START_WAIT)
            else:
                # Not ours to close: the start ends within its transport's own timeouts.
                done.wait()
        if done.is_set() and not failure:
            if self._stopped.is_set():
                self._shutdown()
                return False
            return True
        if failure and not self._stopped.is_set():
            self._forget_node()
            raise failure[0]
        if failure:
            log.debug("%s: start abandoned: %r", self.node_name, failure[0])
        self._forget_node()
        log.info("%s replica %s stopped before it was ready", self.node_name, self.replica_id)
        return False

    def _forget_node(self) -> None:
        with Node._running_lock:
            Node._running.discard(self)

    def run_in_thread(self) -> threading.Thread:
        """Start the node and spin it on a daemon thread (embedded mode, tests)."""
        self.start()
        thread = threading.Thread(target=self._spin_started, name=f"node-{self.node_name}", daemon=True)
        thread.start()
        return thread

    def _spin_started(self) -> None:
        self._stopped.wait()
        self._shutdown()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("%s: signal %d, stopping", self.node_name, signum)
        self.stop()

    def _shutdown(self) -> None:
        self._forget_node()
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT
        if self._stage_tag is not None:
            self.transport.cancel(self._stage_tag)
        for tag in self._other_tags:
            self.transport.cancel(tag)
        # Tasks in flight finish first (callback, output confirmed, input acked), so their
        # completion events go out before TERMINATING.
        with self._idle:
            if not self._idle.wait_for(lambda: self._pending <= 0, SHUTDOWN_TIMEOUT):
                log.warning(
                    "%s: %d task(s) still in flight after %.0f s; shutting down anyway (redelivered)",
                    self.node_name,
                    self._pending,
                    SHUTDOWN_TIMEOUT,
                )
        self._task_events.close(max(1.0, deadline - time.monotonic()))
        self._set_state(Status.TERMINATING)
        self._publish_status(event="offline")
        if self._own_transport:
            # close() waits for whatever still runs and flushes the last publishes and acks.
            self.transport.close(timeout=max(1.0, deadline - time.monotonic()))
        log.info("%s replica %s stopped", self.node_name, self.replica_id)

    def _consume_stage(self) -> None:
        self._stage_tag = self.transport.consume(
            self.topology.stage_queue(self.STAGE),
            self._on_task,
            prefetch=self.settings.prefetch,
            concurrency=self.settings.concurrency,
        )

    # -- status ------------------------------------------------------------------------------
    def _set_state(self, state: Status) -> None:
        with self._lock:
            self._state = state

    def _status_record(self, event: StatusEvent) -> NodeStatus:
        with self._lock:
            current = next(iter(self._in_flight), None)
            return NodeStatus(
                node_status=self._state,
                task_status=TaskStatus.RUNNING if current else TaskStatus.WAITING,
                error_code=ErrorCode.INTERNAL_ERROR if self._state == Status.ERROR else ErrorCode.NO_ERROR,
                task_id=current,
                error_description=self._last_error if self._state == Status.ERROR else "",
                node_name=self.node_name,
                replica_id=self.replica_id,
                node_id=int(self.STAGE.node_id),
                event=event,
                heartbeat_interval=self.settings.heartbeat_interval,
                in_flight=len(self._in_flight),
                processed=self._processed,
                timestamp=time.time(),
            )

    def _publish_status(self, *, event: StatusEvent, record: NodeStatus | None = None) -> None:
        status = record or self._status_record(event)
        msg = H.build_message(
            encode(status),
            type_name="NodeStatus",
            app_id=self.node_name,
            schema_version=SCHEMA_VERSION,
            persistent=False,
        )
        try:
            msg = self._sign(msg)
            fut = self.transport.publish(self.topology.status_exchange, self.node_name, msg, mandatory=False)
            fut.add_done_callback(_log_lost_status)
        except TransportError as exc:  # status is best effort: the next heartbeat repeats it
            log.debug("%s: status not published: %s", self.node_name, exc)

    def _heartbeat(self) -> None:
        if self._stopped.is_set():
            return
        with self._lock:
            if not self._paused and self._state not in (Status.ERROR, Status.TERMINATING):
                self._state = Status.RUNNING if self._in_flight else Status.IDLE
        self._publish_status(event="heartbeat")
        self.transport.call_later(self.settings.heartbeat_interval, self._heartbeat)

    # -- tasks -------------------------------------------------------------------------------
    def _on_task(self, delivery: Delivery) -> None:
        with self._lock:
            self._pending += 1
        settles_later = False
        try:
            settles_later = self._handle_task(delivery)
        finally:
            if not settles_later:
                self._task_settled()

    def _task_settled(self) -> None:
        with self._idle:
            self._pending -= 1
            if self._pending <= 0:
                self._idle.notify_all()

    def _handle_task(self, delivery: Delivery) -> bool:
        """Handle a stage delivery; True when the confirm callback of its output settles it."""
        try:
            envelope = decode_task(delivery.message.body)
        except MessageError as exc:
            self._dead_letter(delivery, f"invalid message: {exc}")
            return False
        if envelope.kind != self.STAGE.input_kind:
            self._dead_letter(
                delivery, f"{self.node_name} expects {self.STAGE.input_kind} records, got {envelope.kind}"
            )
            return False
        try:
            self._check_sender(delivery, envelope.kind)
        except Unattributed as exc:
            self._dead_letter(delivery, f"{self.node_name} input {exc}")
            return False
        task_id = envelope.task_id
        if self._is_cancelled(task_id):
            log.info("%s: task %s was cancelled; not processing it", self.node_name, task_id)
            delivery.ack()
            return False
        failed = delivery.message.headers.get(H.H_FAILED)
        if failed:
            # An earlier stage failed this task and the orchestrator already recorded why; later
            # stages do not work on it.
            log.info("%s: task %s failed upstream (%s); skipping", self.node_name, task_id, failed)
            delivery.ack()
            return False
        try:
            inputs = self._callback_inputs(envelope)
        except KeyError as exc:
            self._dead_letter(delivery, f"incomplete task context: missing {exc.args[0]}")
            return False
        try:
            return self._run_task(delivery, envelope, inputs)
        except BaseException:
            # A bug past the callback (the transport dead-letters the input): the task must not
            # look in flight forever in the heartbeats.
            self._forget_task(task_id)
            raise

    def _check_sender(self, delivery: Delivery, kind: str) -> None:
        """Only the orchestrator starts a task and only workers produce stage outputs (an
        operator may replay either). A retry copy is republished by a replica of this stage, so
        under per-role accounts a retried task start comes from the worker role."""
        assert self._attribution is not None
        if kind == USER_INPUT:
            allowed = {"orchestrator", "operator"}
            if attempt_of(delivery) > 1:
                allowed.add("worker")
            self._attribution.require(delivery.message, allowed, "a task start (user_input)")
        else:
            self._attribution.require(delivery.message, {"worker", "operator"}, f"a {kind} output")

    def _callback_inputs(self, envelope: TaskEnvelope) -> list[Record]:
        records = envelope.records()
        inputs: list[Record] = []
        for name in self.STAGE.callback_inputs:
            if name.endswith(BASELINE_SUFFIX):
                kind = name[: -len(BASELINE_SUFFIX)]
                baseline = envelope.baselines.get(kind)
                # Iteration 1 has no previous records: hand the callback an empty one, as upstream.
                inputs.append(
                    baseline if baseline is not None else RECORD_TYPES[kind](task_id=envelope.task_id)
                )
            else:
                if name not in records:
                    raise KeyError(name)
                inputs.append(records[name])
        return inputs

    def _run_task(self, delivery: Delivery, envelope: TaskEnvelope, inputs: list[Record]) -> bool:
        """Run the callback and publish the output; True when the output's confirm callback acks
        (or, refused, rejects) the input, False when it was settled here."""
        task_id = envelope.task_id
        started = time.monotonic()
        output = RECORD_TYPES[self.STAGE.kind](task_id=task_id)
        node_status = NodeStatus(
            node_status=Status.RUNNING,
            task_status=TaskStatus.RUNNING,
            task_id=task_id,
            node_name=self.node_name,
            replica_id=self.replica_id,
            node_id=int(self.STAGE.node_id),
        )
        with self._lock:
            self._in_flight[task_id] = started
            if not self._paused:
                self._state = Status.RUNNING
        # Queued, not published: the status thread sends it unless the callback returns first.
        running = self._task_events.running(task_id)
        error = ""
        crashed = False  # an unexpected exception (retried), as opposed to a rejection (final)
        attempt = attempt_of(delivery)
        try:
            try:
                self.callback(*inputs, node_status, output)
            finally:
                running.returned = True
            if node_status.node_status == Status.ERROR or node_status.task_status == TaskStatus.ERROR:
                error = node_status.error_description or f"{self.node_name} marked the task as failed"
        except ValueError as exc:  # bad input the callback rejected: the message says it all
            log.warning("%s: task %s rejected: %s", self.node_name, task_id, exc)
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # the callback is user code: any other failure is a bug worth a trace
            log.exception(
                "%s: callback failed on task %s (attempt %d of %d)",
                self.node_name,
                task_id,
                attempt,
                self.topology.max_attempts,
            )
            error = f"{type(exc).__name__}: {exc}"
            crashed = True
        if crashed and attempt < self.topology.max_attempts:
            # Possibly transient: try again later through the stage's delay queue, without telling
            # the pipeline anything yet. Not confirmed -> left unacked for a redelivery.
            if not retry_later(
                self.transport, self.topology, self.STAGE, delivery, attempt, error, by=self.node_name
            ):
                delivery.reject(requeue=True)  # a no-op if its connection is gone (then redelivered)
            self._finish_attempt(task_id, error)
            return False
        if crashed:
            error = f"{error} (failed {attempt} attempts)"
        if error:
            try:
                output.update_extra(error=error)
            except MessageError:
                # The callback left extra_data unusable: replace it so the error still travels.
                output.extra_data = b""
                output.update_extra(error=error)
        output.task_id = task_id  # whatever the callback did, the output belongs to this task

        headers: dict[str, Any] = {H.H_STAGE: self.node_name}
        if error:
            headers[H.H_FAILED] = f"{self.node_name}: {error}"
        trace = H.trace_id_of(delivery.message.headers.get(H.H_TRACEPARENT))
        out_env = envelope.next(self.STAGE.kind, output)
        routing_key = task_id.key
        try:
            body = encode_task(out_env)
        except MessageError as exc:
            # The callback filled the output with something the wire format rejects (e.g. an
            # oversized field): still tell the pipeline, with a minimal error output.
            error = f"output rejected by the codec: {exc}"
            headers[H.H_FAILED] = f"{self.node_name}: {error}"
            output = RECORD_TYPES[self.STAGE.kind](task_id=task_id)
            output.update_extra(error=error)
            body = encode_task(envelope.next(self.STAGE.kind, output))
        msg = H.build_message(
            body,
            type_name=type(output).__name__,
            app_id=self.node_name,
            schema_version=SCHEMA_VERSION,
            message_id=H.stage_message_id(routing_key, self.STAGE.kind),
            correlation_id=routing_key,
            traceparent=H.new_traceparent(trace),
            extra_headers=headers,
        )
        fut = self._publish_output(routing_key, msg)
        if crashed:
            # Out of attempts (rare): the failed output tells the orchestrator; the input itself
            # goes to the stage's DLQ with the reason, once that output is confirmed. Dead-lettering
            # publishes and waits, which the confirm callback (on the I/O thread) must not do.
            try:
                wait_confirm(self.transport, fut, PUBLISH_CONFIRM_TIMEOUT)
            except (TransportError, FutureTimeout, TimeoutError) as exc:
                self._output_refused(delivery, task_id, exc)
                return False
            self._dead_letter(delivery, f"{self.node_name} callback failed {attempt} times: {error}")
            self._task_done(task_id, error, started)
            return False
        # The handler thread moves on; the input is acked once the broker confirms the output.
        fut.add_done_callback(functools.partial(self._on_output_confirm, delivery, task_id, error, started))
        return True

    def _sign(self, msg: Message) -> Message:
        if self._attribution is None:
            raise TransportError(f"{self.node_name}: not started")
        return self._attribution.sign(msg)

    def _publish_output(self, routing_key: str, msg: Message) -> Future[None]:
        try:
            msg = self._sign(msg)
            return self.transport.publish(self.topology.record_exchange(self.STAGE.kind), routing_key, msg)
        except TransportError as exc:  # the contract reports failures through the future; be safe
            failed: Future[None] = Future()
            failed.set_exception(exc)
            return failed

    def _on_output_confirm(
        self, delivery: Delivery, task_id: TaskId, error: str, started: float, fut: Future[None]
    ) -> None:
        """The broker confirmed (or refused) a task's output. Runs on the transport's I/O thread
        (AMQP) or where the future completed: settle the input, queue the completion event."""
        try:
            exc = ConnectionLost("publish cancelled") if fut.cancelled() else fut.exception()
            if exc is not None:
                self._output_refused(delivery, task_id, exc)
            else:
                delivery.ack()
                self._task_done(task_id, error, started)
        except Exception:  # never lost in the future's machinery: the input is redelivered anyway
            log.exception("%s: settling task %s after its output's confirm failed", self.node_name, task_id)
        finally:
            self._task_settled()

    def _output_refused(self, delivery: Delivery, task_id: TaskId, exc: BaseException) -> None:
        # Not acked: the broker redelivers the input (to this or another replica) and the task
        # is redone; outputs are idempotent by message_id.
        log.error(
            "%s: output of task %s not confirmed (%s); input left for redelivery",
            self.node_name,
            task_id,
            exc,
        )
        # Requeue now if the channel is still open (a no-op otherwise): left unsettled on a live
        # channel, the input would sit in this replica until its connection closed.
        delivery.reject(requeue=True)
        self._forget_task(task_id)

    def _forget_task(self, task_id: TaskId) -> None:
        with self._lock:
            self._in_flight.pop(task_id, None)

    def _task_done(self, task_id: TaskId, error: str, started: float) -> None:
        """Bookkeeping once a task's input is settled for good: counters, state, completion event."""
        final = Status.ERROR if error else Status.IDLE
        with self._lock:
            self._in_flight.pop(task_id, None)
            self._processed += 1
            self._last_error = error
            if not self._paused:
                self._state = final if not self._in_flight else Status.RUNNING
            in_flight, processed = len(self._in_flight), self._processed
        self._task_events.finished(
            _Finished(
                task_id,
                final,
                TaskStatus.ERROR if error else TaskStatus.SUCCEEDED,
                error,
                in_flight,
                processed,
                time.time(),
            )
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s: task %s done in %.1f ms", self.node_name, task_id, (time.monotonic() - started) * 1e3
            )

    def _finish_attempt(self, task_id: TaskId, error: str) -> None:
        """Bookkeeping after an attempt that will be retried: the task is no longer in flight here."""
        with self._lock:
            self._in_flight.pop(task_id, None)
            self._last_error = error
            if not self._paused:
                self._state = Status.RUNNING if self._in_flight else Status.IDLE

    def _task_status(
        self,
        task_id: TaskId,
        status: Status,
        task_status: TaskStatus,
        error: str = "",
        *,
        in_flight: int | None = None,
        processed: int | None = None,
        at: float | None = None,
    ) -> NodeStatus:
        return NodeStatus(
            node_status=status,
            task_status=task_status,
            error_code=ErrorCode.INTERNAL_ERROR if error else ErrorCode.NO_ERROR,
            task_id=task_id,
            error_description=error,
            node_name=self.node_name,
            replica_id=self.replica_id,
            node_id=int(self.STAGE.node_id),
            event="task",
            heartbeat_interval=self.settings.heartbeat_interval,
            in_flight=len(self._in_flight) if in_flight is None else in_flight,
            processed=self._processed if processed is None else processed,
            timestamp=time.time() if at is None else at,
        )

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        dead_letter(self.transport, self.topology, delivery, reason, by=self.node_name)

    # -- cancellation ------------------------------------------------------------------------
    def _is_cancelled(self, task_id: TaskId) -> bool:
        with self._lock:
            return task_id in self._cancelled

    def _cancel_task(self, task_id: TaskId) -> None:
        with self._lock:
            self._cancelled[task_id] = None
            while len(self._cancelled) > CANCELLED_TASKS_REMEMBERED:
                self._cancelled.popitem(last=False)

    # -- control -----------------------------------------------------------------------------
    def _on_control(self, delivery: Delivery) -> None:
        assert self._attribution is not None
        try:
            self._attribution.require(delivery.message, CONTROL_ROLES, "NodeControl")
        except Unattributed as exc:
            dead_letter(
                self.transport,
                self.topology,
                delivery,
                f"{self.node_name} NodeControl {exc}",
                by=self.node_name,
                route=self.topology.unattributed_route,
            )
            return
        delivery.ack()  # control messages are commands, not work: nothing to redo on failure
        try:
            cmd = decode(delivery.message.body, NodeControl)
        except MessageError as exc:
            log.warning("%s: ignoring invalid control message: %s", self.node_name, exc)
            return
        if cmd.target_node not in ("", self.node_name, ALL_NODES_KEY):
            return
        if cmd.cmd_task in (CmdTask.CMD_STOP_TASK, CmdTask.CMD_TERMINATE_TASK, CmdTask.CMD_PREEMPT_TASK):
            if cmd.task_id is not None:
                self._cancel_task(cmd.task_id)
        elif cmd.cmd_task == CmdTask.CMD_RESET_TASK and cmd.task_id is not None:
            with self._lock:
                self._cancelled.pop(cmd.task_id, None)
        if cmd.cmd_node == CmdNode.CMD_STOP_NODE:
            self._pause()
        elif cmd.cmd_node == CmdNode.CMD_START_NODE:
            self._resume()
        elif cmd.cmd_node == CmdNode.CMD_RESET_NODE:
            with self._lock:
                self._cancelled.clear()
                self._last_error = ""
                if self._state == Status.ERROR:
                    self._state = Status.IDLE
            self._publish_status(event="heartbeat")
        elif cmd.cmd_node == CmdNode.CMD_TERMINATE_NODE:
            self.stop()

    def _pause(self) -> None:
        with self._lock:
            if self._paused:
                return
            self._paused = True
            self._state = Status.INACTIVE
            tag, self._stage_tag = self._stage_tag, None
        if tag is not None:
            self.transport.cancel(tag)
        self._publish_status(event="heartbeat")

    def _resume(self) -> None:
        with self._lock:
            if not self._paused:
                return
            self._paused = False
            self._state = Status.IDLE
        self._consume_stage()
        self._publish_status(event="heartbeat")

    # -- configuration RPC -------------------------------------------------------------------
    def _on_config(self, delivery: Delivery) -> None:
        delivery.ack()  # answered (or explained) exactly once below; a retry is the caller's call
        reply_to = delivery.message.reply_to
        if reply_to:
            try:  # never run a request whose answer would be written into another namespace
                check_own_queue(self.topology, reply_to, "reply_to", direct_reply=True)
            except ForeignQueue as exc:
                log.warning("%s: configuration request refused: %s", self.node_name, exc)
                return
        try:
            req = decode(delivery.message.body, RequestType)
        except MessageError as exc:
            res = ResponseType(
                node_id=int(self.STAGE.node_id),
                transaction_id=0,
                success=False,
                err_code=ErrorCode.INTERNAL_ERROR,
                configuration=json.dumps({"error": f"invalid configuration request: {exc}"}),
            )
            reply(self.transport, delivery, encode(res), topology=self.topology, type="ResponseType")
            return
        res = ResponseType(node_id=req.node_id, transaction_id=req.transaction_id, success=True)
        try:
            if self.service_callback is None:
                res.success = False
                res.err_code = ErrorCode.INTERNAL_ERROR
                res.configuration = json.dumps(
                    {"error": f"Unsupported configuration request: {req.configuration}"}
                )
            else:
                self.service_callback(req, res)
        except Exception as exc:  # user code: report it to the requester instead of hanging it
            log.exception("%s: configuration callback failed", self.node_name)
            res = ResponseType(
                node_id=req.node_id,
                transaction_id=req.transaction_id,
                success=False,
                err_code=ErrorCode.INTERNAL_ERROR,
                configuration=json.dumps({"error": f"{type(exc).__name__}: {exc}"}),
            )
        reply(self.transport, delivery, encode(res), topology=self.topology, type="ResponseType")


def _log_lost_status(fut: Future[None]) -> None:
    if fut.exception() is not None:
        log.debug("status message lost: %s", fut.exception())
