"""The ``Node`` base class: a replica's lifecycle and the path of a task through it.

The node consumes its stage queue, hands the callback its inputs (``intake``), decides what
becomes of the attempt (``outcome``), publishes the output to the stage's exchange (``output``)
and acknowledges the input only once that publish is confirmed. Status messages are ``status``'s
job, commands and configuration requests ``control``'s.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from types import FrameType
from typing import ClassVar

from sustainml.attribution import Attribution
from sustainml.config import Settings
from sustainml.deadletter import attempt_of, dead_letter, retry_later
from sustainml.messages import (
    RECORD_TYPES,
    NodeStatus,
    Record,
    RequestType,
    ResponseType,
    Status,
    TaskEnvelope,
    TaskId,
    TaskStatus,
)
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

from . import control
from .control import CancelledTasks
from .intake import Refused, admit
from .outcome import Action, Outcome, decide
from .output import output_message, output_routing_key
from .status import NodeState, StatusReporter

log = logging.getLogger(__name__)

TaskCallback = Callable[..., None]
ServiceCallback = Callable[[RequestType, ResponseType], None]

# How long the output of a task whose callback failed for the last time may wait for its
# confirm before its input is left for redelivery instead of being dead-lettered (that rare path
# waits synchronously; regular outputs are acked from the confirm callback, without a timeout: the
# transport fails every pending publish when its connection goes, so no confirm is awaited forever).
PUBLISH_CONFIRM_TIMEOUT = 30.0
# On shutdown: how long in-flight tasks may take to finish (callback, output confirmed, input acked)
# before the node reports TERMINATING and closes its transport anyway (the broker then redelivers).
SHUTDOWN_TIMEOUT = 30.0
# A stop requested while the node is still starting (e.g. SIGTERM while the broker is unreachable):
# how long to wait for the abandoned start to unwind before spin() returns regardless.
ABANDONED_START_WAIT = 2.0
# A refused output (broker nack, channel lost before the confirm) leaves its input for redelivery
# after this pause, not at once: a quorum queue re-electing its leader refuses publishes for a few
# seconds, and immediate retries would spend the input's delivery limit (x-delivery-limit, 20)
# within them and dead-letter a task the cluster could still run.
REFUSED_OUTPUT_REQUEUE_DELAY = 1.0


class _Terminate:
    """``Cls.terminate()`` is ``Cls.stop_all()`` (as the original framework's template calls it
    from a signal handler); ``node.terminate()`` is ``node.stop()``."""

    def __get__(self, obj: Node | None, cls: type[Node]) -> Callable[[], None]:
        return obj.stop if obj is not None else cls.stop_all


class Node:
    """Base class of every stage worker. Subclasses set ``STAGE``.

    ``settings`` is the deployment's configuration; a script that builds its node itself (as the
    original framework's template does) is its own entry point, and the node then reads it from
    the ``SUSTAINML_*`` environment."""

    STAGE: ClassVar[Stage]
    _live: ClassVar[set[Node]] = set()
    _live_lock: ClassVar[threading.Lock] = threading.Lock()

    terminate = _Terminate()

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
        self.settings = settings if settings is not None else Settings.from_env()
        self.topology = Topology.of(self.settings)
        self._own_transport = transport is None
        self.transport = (
            transport if transport is not None else amqp_transport(self.settings, self.STAGE.node)
        )
        self.replica_id = replica_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.node_name = self.STAGE.node

        self._idle = threading.Condition()  # notified when no task is left in _pending
        self._pending = 0  # stage deliveries being handled or waiting for their output's confirm
        self._stopped = threading.Event()
        self._wake = threading.Event()  # spin(): a stop was requested or the start finished
        self._started = False
        self._state = NodeState()
        self._cancelled = CancelledTasks()
        self._status = StatusReporter(
            stage=self.STAGE,
            replica_id=self.replica_id,
            heartbeat_interval=self.settings.heartbeat_interval,
            state=self._state,
            transport=self.transport,
            topology=self.topology,
            sign=self._sign,
            stopped=self._stopped,
        )
        self._stage_lock = threading.Lock()
        self._stage_tag: str | None = None
        self._other_tags: list[str] = []
        with Node._live_lock:  # from creation on, so a class-level terminate() reaches it
            Node._live.add(self)
        self._control_queue = self.topology.private_queue("control", self.replica_id)
        self._attribution: Attribution | None = None  # set by start(): it needs the broker login

    @classmethod
    def stop_all(cls) -> None:
        """Stop every node of this class (subclasses included) created in this process and not
        shut down yet, also one still connecting (its ``spin()`` returns as soon as it is up)."""
        with Node._live_lock:
            nodes = [n for n in Node._live if isinstance(n, cls)]
        for node in nodes:
            node.stop()

    @property
    def attribution(self) -> Attribution:
        """How this replica signs what it publishes and checks who sent what it receives."""
        if self._attribution is None:
            raise TransportError(f"{self.node_name}: not started")
        return self._attribution

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Connect, declare, start consuming and heartbeating. Returns once the node is IDLE."""
        if self._started:
            return
        self._started = True
        self.transport.connect()
        self._attribution = Attribution.of(self.settings, "worker", self.transport.user)
        declare_all(self.transport, self.topology)  # first: the status exchange must exist
        self._status.start()
        self._state.set(Status.INITIALIZING)
        self._status.publish("online")
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
            self.transport.consume(
                self._control_queue, functools.partial(control.on_control, self), prefetch=16, concurrency=1
            )
        )
        self._other_tags.append(
            self.transport.consume(
                self.topology.config_queue(self.STAGE),
                functools.partial(control.on_config, self),
                prefetch=4,
                concurrency=1,
            )
        )
        self._consume_stage()
        self._state.set(Status.IDLE)
        self._status.publish("heartbeat")
        self.transport.call_later(self.settings.heartbeat_interval, self._status.heartbeat)
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
        with Node._live_lock:
            Node._live.discard(self)

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
        self._status.close(max(1.0, deadline - time.monotonic()))
        self._state.set(Status.TERMINATING)
        self._status.publish("offline")
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

    # -- what NodeControl commands do (see control.py) ----------------------------------------
    def pause(self) -> None:
        """Stop taking tasks (those in flight finish) and report INACTIVE until ``resume()``."""
        if not self._state.pause():
            return
        with self._stage_lock:
            tag, self._stage_tag = self._stage_tag, None
        if tag is not None:
            self.transport.cancel(tag)
        self._status.publish("heartbeat")

    def resume(self) -> None:
        if not self._state.resume():
            return
        self._consume_stage()
        self._status.publish("heartbeat")

    def reset(self) -> None:
        """Forget cancelled tasks and the last error (an ERROR replica reports IDLE again)."""
        self._cancelled.clear()
        self._state.reset()
        self._status.publish("heartbeat")

    def cancel_task(self, task_id: TaskId) -> None:
        """Skip ``task_id`` when it is delivered (a callback already running it finishes)."""
        self._cancelled.add(task_id)

    def reset_task(self, task_id: TaskId) -> None:
        """Take ``task_id`` again after a ``cancel_task``."""
        self._cancelled.discard(task_id)

    # -- tasks -------------------------------------------------------------------------------
    def _on_task(self, delivery: Delivery) -> None:
        with self._idle:
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
        work = admit(delivery, self.STAGE, self.attribution, self._cancelled)
        if isinstance(work, Refused):
            if work.skip:
                delivery.ack()
            else:
                self._dead_letter(delivery, work.reason)
            return False
        try:
            return self._run_task(delivery, work.envelope, work.inputs)
        except BaseException:
            # A bug past the callback (the transport dead-letters the input): the task must not
            # look in flight forever in the heartbeats.
            self._state.forget(work.envelope.task_id)
            raise

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
        self._state.begin(task_id, started)
        # Queued, not published: the status thread sends it unless the callback returns first.
        running = self._status.running(task_id)
        attempt = attempt_of(delivery)
        failure: Exception | None = None
        try:
            self.callback(*inputs, node_status, output)
        except Exception as exc:  # the callback is user code: decide() says what its failure means
            failure = exc
        finally:
            running.returned = True
        outcome = decide(self.node_name, failure, node_status, attempt, self.topology.max_attempts)
        if failure is not None:
            self._log_failure(task_id, failure, outcome)
        if outcome.action is Action.RETRY:
            self._retry(delivery, task_id, outcome)
            return False
        msg, outcome = output_message(self.STAGE, envelope, output, outcome, delivery.message.headers)
        fut = self._publish_output(output_routing_key(task_id.key, outcome), msg)
        if outcome.action is Action.DEAD_LETTER:
            self._dead_letter_once_published(delivery, task_id, outcome, fut, started)
            return False
        # The handler thread moves on; the input is acked once the broker confirms the output.
        fut.add_done_callback(functools.partial(self._on_output_confirm, delivery, task_id, outcome, started))
        return True

    def _log_failure(self, task_id: TaskId, failure: Exception, outcome: Outcome) -> None:
        if not outcome.crashed:  # bad input the callback rejected: the message says it all
            log.warning("%s: task %s rejected: %s", self.node_name, task_id, failure)
            return
        log.error(  # any other failure is a bug (or an outage) worth a trace
            "%s: callback failed on task %s (attempt %d of %d)",
            self.node_name,
            task_id,
            outcome.attempt,
            self.topology.max_attempts,
            exc_info=failure,
        )

    def _retry(self, delivery: Delivery, task_id: TaskId, outcome: Outcome) -> None:
        # Possibly transient: try again later through the stage's delay queue, without telling
        # the pipeline anything yet. Not confirmed -> left unacked for a redelivery.
        if not retry_later(
            self.transport,
            self.topology,
            self.STAGE,
            delivery,
            outcome.attempt,
            outcome.error,
            by=self.node_name,
        ):
            delivery.reject(requeue=True)  # a no-op if its connection is gone (then redelivered)
        self._state.attempt_failed(task_id, outcome.error)

    def _dead_letter_once_published(
        self, delivery: Delivery, task_id: TaskId, outcome: Outcome, fut: Future[None], started: float
    ) -> None:
        # Out of attempts (rare): the failed output tells the orchestrator; the input itself goes
        # to the stage's DLQ with the reason, once that output is confirmed. Dead-lettering
        # publishes and waits, which the confirm callback (on the I/O thread) must not do.
        try:
            wait_confirm(self.transport, fut, PUBLISH_CONFIRM_TIMEOUT)
        except (TransportError, FutureTimeout, TimeoutError) as exc:
            self._output_refused(delivery, task_id, exc)
            return
        self._dead_letter(delivery, outcome.reason)
        self._task_done(task_id, outcome.error, started)

    def _sign(self, msg: Message) -> Message:
        return self.attribution.sign(msg)

    def _publish_output(self, routing_key: str, msg: Message) -> Future[None]:
        try:
            msg = self._sign(msg)
            return self.transport.publish(self.topology.record_exchange(self.STAGE.kind), routing_key, msg)
        except TransportError as exc:  # the contract reports failures through the future; be safe
            failed: Future[None] = Future()
            failed.set_exception(exc)
            return failed

    def _on_output_confirm(
        self, delivery: Delivery, task_id: TaskId, outcome: Outcome, started: float, fut: Future[None]
    ) -> None:
        """The broker confirmed (or refused) a task's output. Runs on the transport's I/O thread
        (AMQP) or where the future completed: settle the input, queue the completion event."""
        try:
            exc = ConnectionLost("publish cancelled") if fut.cancelled() else fut.exception()
            if exc is not None:
                self._output_refused(delivery, task_id, exc)
            else:
                delivery.ack()
                self._task_done(task_id, outcome.error, started)
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
        # Requeue after a pause if the channel is still open (a no-op otherwise): left unsettled
        # on a live channel, the input would sit in this replica until its connection closed.
        self.transport.call_later(REFUSED_OUTPUT_REQUEUE_DELAY, lambda: delivery.reject(requeue=True))
        self._state.forget(task_id)

    def _task_done(self, task_id: TaskId, error: str, started: float) -> None:
        """Bookkeeping once a task's input is settled for good: counters, state, completion event."""
        self._status.finished(task_id, error)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s: task %s done in %.1f ms", self.node_name, task_id, (time.monotonic() - started) * 1e3
            )

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        dead_letter(self.transport, self.topology, delivery, reason, by=self.node_name)
