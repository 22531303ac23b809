"""The node runtime's edges: stopping while the broker is unreachable (at start or while
reconnecting), acking a task's input only once its output is confirmed (without holding a handler
thread for it), and the per-task status events (RUNNING for a task that runs, completion events coalesced,
all before the replica says goodbye).

Worker processes are real ``sustainml worker`` / ``python -m sustainml.workers.<node>`` runs; the
reconnect case cuts a TCP relay between the worker and the real broker (the shared broker itself is
never touched). The confirm-timing tests hold publisher confirms back on an in-memory transport,
which routes a message before it confirms it, exactly like RabbitMQ."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from sustainml.attribution import Attribution
from sustainml.config import Settings
from sustainml.messages import (
    SCHEMA_VERSION,
    NodeStatus,
    Status,
    TaskEnvelope,
    TaskId,
    TaskStatus,
    UserInput,
    decode,
    encode_task,
)
from sustainml.messages import headers as H
from sustainml.messages.kinds import USER_INPUT
from sustainml.topology import STAGES_BY_NODE, Topology
from sustainml.transport.amqp import AmqpTransport
from sustainml.transport.base import Binding, Delivery, Message, PublishNacked, TransportError
from sustainml.transport.memory import MemoryBroker, MemoryTransport
from sustainml.workers.runtime import Node
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_until

EXIT_DEADLINE = 3.0  # seconds from SIGTERM to exit: "promptly", with room for a loaded machine


class _Output:
    """Collects a subprocess's combined output line by line (read on a thread of its own)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._proc = proc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, needle: str, timeout: float) -> None:
        wait_until(
            lambda: needle in self.text() or self._proc.poll() is not None,
            timeout,
            f"{needle!r} in the worker's output",
        )
        assert needle in self.text(), (
            f"worker exited ({self._proc.returncode}) before {needle!r}:\n{self.text()}"
        )

    def finish(self) -> str:
        self._thread.join(5)
        return self.text()


@contextlib.contextmanager
def _worker(
    argv: list[str], broker_url: str, namespace: str
) -> Iterator[tuple[subprocess.Popen[str], _Output]]:
    env = dict(
        os.environ,
        SUSTAINML_BROKER_URL=broker_url,
        SUSTAINML_NAMESPACE=namespace,
        SUSTAINML_LOG_LEVEL="INFO",  # the test waits for the runtime's "starting"/"ready" lines
        SUSTAINML_HEARTBEAT_INTERVAL="0.5",
    )
    proc = subprocess.Popen(
        [sys.executable, *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd="/",
    )
    try:
        yield proc, _Output(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _terminate_and_time(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> float:
    began = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(EXIT_DEADLINE + 10)  # the assertion below reports how long it really took
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker still running {EXIT_DEADLINE + 10:.0f} s after signal {sig}")
    return time.monotonic() - began


def _closed_port() -> int:
    """A local TCP port nobody listens on (bound then released: connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


ENTRY_POINTS = {
    "module": ["-m", "sustainml.workers.app_requirements"],
    "cli": ["-m", "sustainml.cli", "worker", "app_requirements"],
}


@pytest.mark.parametrize(
    ("entry", "sig"),
    [("module", signal.SIGTERM), ("cli", signal.SIGTERM), ("cli", signal.SIGINT)],
    ids=["module-sigterm", "cli-sigterm", "cli-sigint"],
)
def test_stop_while_the_broker_is_unreachable_exits_promptly_and_cleanly(entry: str, sig: int) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{_closed_port()}/"
    with _worker(ENTRY_POINTS[entry], url, f"t-{uuid.uuid4().hex[:8]}") as (proc, out):
        # "starting" is logged once the signal handlers are installed; the connect then retries
        # for the connect timeout (10 s) before giving up on its own.
        out.wait_for("APP_REQUIREMENTS replica", 60)
        out.wait_for("starting", 5)
        time.sleep(0.7)  # well inside the retry loop (attempts every 0.5 s)
        took = _terminate_and_time(proc, sig)
        text = out.finish()
    assert took < EXIT_DEADLINE, f"exit took {took:.1f} s:\n{text}"
    assert proc.returncode == 0, text
    assert "stop requested before it was ready" in text, text
    assert "Traceback" not in text, text


def test_stop_while_reconnecting_exits_promptly_and_cleanly(settings: Settings) -> None:
    parts = urlsplit(settings.broker_url)
    relay = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    netloc = f"{parts.netloc.rsplit('@', 1)[0]}@127.0.0.1:{relay.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    try:
        with _worker(ENTRY_POINTS["module"], url, settings.namespace) as (proc, out):
            out.wait_for("ready", 60)
            relay.stop()
            out.wait_for("reconnecting to", 15)  # in the reconnect loop, the broker unreachable
            took = _terminate_and_time(proc)
            text = out.finish()
    finally:
        relay.stop()
    assert took < EXIT_DEADLINE, f"exit took {took:.1f} s:\n{text}"
    assert proc.returncode == 0, text
    assert "APP_REQUIREMENTS replica" in text and "stopped" in text, text
    assert "Traceback" not in text, text


def test_close_abandons_a_connect_that_is_still_retrying() -> None:
    transport = AmqpTransport(f"amqp://guest:guest@127.0.0.1:{_closed_port()}/", connect_timeout=30.0)
    outcome: list[BaseException] = []

    def connect() -> None:
        try:
            transport.connect()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    time.sleep(0.8)  # a few refused attempts
    began = time.monotonic()
    transport.close()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - began < 2.0
    assert len(outcome) == 1 and isinstance(outcome[0], TransportError)
    assert "abandoned" in str(outcome[0])
    with pytest.raises(TransportError):  # closed for good, as a closed memory transport
        transport.connect()


# --- acks from the confirm callback, status events (in-memory broker, held confirms) ----------


class _HeldConfirms(MemoryTransport):
    """A memory transport whose publishes to one exchange are routed at once (the next stage can
    consume them) but confirmed only when the test says so, as a slow broker would."""

    def __init__(self, broker: MemoryBroker, name: str, exchange: str) -> None:
        super().__init__(broker, name=name)
        self._exchange = exchange
        self._lock = threading.Lock()
        self.held: list[Future[None]] = []

    def publish(
        self, exchange: str, routing_key: str, message: Message, *, mandatory: bool = True
    ) -> Future[None]:
        routed = super().publish(exchange, routing_key, message, mandatory=mandatory)
        if exchange != self._exchange or routed.exception() is not None:
            return routed
        held: Future[None] = Future()
        with self._lock:
            self.held.append(held)
        return held

    def confirm(self, error: BaseException | None = None) -> int:
        with self._lock:
            held, self.held = self.held, []
        for fut in held:
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
        return len(held)


STAGE = STAGES_BY_NODE["ML_MODEL_METADATA"]  # input: the user_input exchange


class _Stage1(Node):
    STAGE = STAGE


def _input(n: int) -> Message:
    tid = TaskId(problem_id=n, iteration_id=1)
    env = TaskEnvelope(
        kind=USER_INPUT,
        task_id=tid,
        record=UserInput(problem_short_description=f"task {n}", task_id=tid),
    )
    return H.build_message(
        encode_task(env),
        type_name="UserInput",
        app_id="test",
        schema_version=SCHEMA_VERSION,
        message_id=tid.key,
        correlation_id=tid.key,
    )


class _Rig:
    """One stage node on an in-memory broker, a publisher, and recorders of its outputs and
    status events."""

    def __init__(self, callback: Callable[..., None], data_dir: Path) -> None:
        ns = f"t-{uuid.uuid4().hex[:8]}"
        self.settings = Settings(namespace=ns, heartbeat_interval=30.0, data_dir=data_dir)
        self.signer = Attribution.of(self.settings, "orchestrator")
        self.topology = Topology.of(self.settings)
        self.broker = MemoryBroker()
        self.node_transport = _HeldConfirms(self.broker, "node", self.topology.record_exchange(STAGE.kind))
        self.node = _Stage1(callback=callback, settings=self.settings, transport=self.node_transport)
        self.node.start()
        self.spinner = threading.Thread(target=self.node._spin_started, daemon=True)
        self.spinner.start()
        self.client = self.broker.transport("test")
        self.outputs: list[str] = []
        self.statuses: list[NodeStatus] = []
        self._lock = threading.Lock()
        outs = self.topology.private_queue_spec(
            "outputs", "test", (Binding(self.topology.record_exchange(STAGE.kind), "#"),)
        )
        stats = self.topology.private_queue_spec(
            "statuses", "test", (Binding(self.topology.status_exchange, "#"),)
        )
        for spec, handler in ((outs, self._on_output), (stats, self._on_status)):
            self.client.declare_queue(spec)
            self.client.consume(spec.name, handler, prefetch=100)
        self.stage_queue = self.topology.stage_queue(STAGE)

    def _on_output(self, d: Delivery) -> None:
        d.ack()
        with self._lock:
            self.outputs.append(d.routing_key)

    def _on_status(self, d: Delivery) -> None:
        d.ack()
        with self._lock:
            self.statuses.append(decode(d.message.body, NodeStatus))

    def submit(self, *numbers: int) -> None:
        for n in numbers:
            signed = self.signer.sign(_input(n))  # the stage takes task starts from the orchestrator only
            self.client.publish(self.topology.record_exchange(USER_INPUT), f"{n}.1", signed).result(5)

    def unacked(self) -> int:
        ready, unacked, _ = self.broker.snapshot()[self.stage_queue]
        return ready + unacked

    def task_events(self, n: int) -> list[NodeStatus]:
        with self._lock:
            return [
                s
                for s in self.statuses
                if s.event == "task" and s.task_id == TaskId(problem_id=n, iteration_id=1)
            ]

    def latest_completion_processed(self) -> int:
        """``processed`` of the latest completion event (0 before any)."""
        with self._lock:
            done = [s for s in self.statuses if s.event == "task" and s.task_status == TaskStatus.SUCCEEDED]
        return done[-1].processed if done else 0

    def close(self) -> None:
        self.node.stop()
        self.node_transport.confirm()
        self.spinner.join(15)
        self.client.close()
        self.node_transport.close()
        self.broker.close()


@pytest.fixture
def rig_factory(tmp_path: Path) -> Iterator[Callable[[Callable[..., None]], _Rig]]:
    made: list[_Rig] = []

    def make(callback: Callable[..., None]) -> _Rig:
        made.append(_Rig(callback, tmp_path))
        return made[-1]

    yield make
    for rig in made:
        rig.close()


def _zero_cost(*args: Any) -> None:
    return None


def test_input_is_acked_once_its_output_is_confirmed_and_threads_do_not_wait(
    rig_factory: Callable[[Callable[..., None]], _Rig],
) -> None:
    rig = rig_factory(_zero_cost)
    # More tasks than handler threads (2): with threads blocked on confirms, the third would wait.
    rig.submit(1, 2, 3, 4, 5)
    wait_until(
        lambda: len(rig.outputs) == 5 and len(rig.node_transport.held) == 5,
        10,
        "five outputs routed while no confirm came back",
    )
    assert rig.unacked() == 5  # every input still unacked: no output is confirmed yet
    assert rig.node_transport.confirm() == 5
    wait_until(lambda: rig.unacked() == 0, 10, "inputs acked after their outputs' confirms")
    # Completions within one interval are coalesced: the last event counts all five tasks.
    wait_until(lambda: rig.latest_completion_processed() == 5, 10, "a completion event counting five tasks")


def test_refused_output_leaves_the_input_for_redelivery(
    rig_factory: Callable[[Callable[..., None]], _Rig],
) -> None:
    rig = rig_factory(_zero_cost)
    rig.submit(7)
    wait_until(lambda: len(rig.node_transport.held) == 1, 10, "the output published")
    rig.node_transport.confirm(PublishNacked("test: broker refused the output"))
    # Left for redelivery after a pause (REFUSED_OUTPUT_REQUEUE_DELAY), not at once: a broker
    # refusing publishes for a few seconds must not burn the input's delivery limit.
    time.sleep(0.3)
    assert len(rig.outputs) == 1
    # Not acked: requeued and handled again, so a second copy of the output is published.
    wait_until(lambda: len(rig.node_transport.held) == 1 and len(rig.outputs) == 2, 10, "the task redone")
    assert rig.unacked() == 1
    assert not any(e.task_status == TaskStatus.SUCCEEDED for e in rig.task_events(7))
    rig.node_transport.confirm()
    wait_until(lambda: rig.unacked() == 0, 10, "the input acked after the second output's confirm")
    wait_until(lambda: bool(rig.task_events(7)), 10, "a completion event")
    assert [e.task_status for e in rig.task_events(7) if e.task_status != TaskStatus.RUNNING] == [
        TaskStatus.SUCCEEDED
    ]


def test_long_task_reports_running_while_quick_ones_are_coalesced(
    rig_factory: Callable[[Callable[..., None]], _Rig],
) -> None:
    release = threading.Event()

    def callback(user_input: UserInput, *rest: Any) -> None:
        if user_input.problem_short_description == "task 1":
            release.wait(10)

    rig = rig_factory(callback)
    rig.submit(1)
    # The callback still runs: the orchestrator and the dashboard see the task RUNNING.
    wait_until(lambda: bool(rig.task_events(1)), 10, "a RUNNING event during the long callback")
    running = rig.task_events(1)
    assert [e.task_status for e in running] == [TaskStatus.RUNNING]
    assert running[0].node_status == Status.RUNNING and running[0].in_flight == 1
    release.set()
    wait_until(lambda: len(rig.node_transport.held) == 1, 10, "the long task's output")
    rig.node_transport.confirm()
    wait_until(lambda: len(rig.task_events(1)) == 2, 10, "the completion event")
    assert rig.task_events(1)[-1].task_status == TaskStatus.SUCCEEDED

    quick = list(range(10, 50))
    rig.submit(*quick)
    confirmed = [0]

    def all_confirmed() -> bool:  # prefetch (8) bounds the unconfirmed tasks: confirm as they come
        confirmed[0] += rig.node_transport.confirm()
        return confirmed[0] == len(quick)

    wait_until(all_confirmed, 10, "the quick tasks' outputs")
    total = 1 + len(quick)
    wait_until(lambda: rig.latest_completion_processed() == total, 10, "a completion counting every task")
    per_task = [[e.task_status for e in rig.task_events(n)] for n in quick]
    for events in per_task:  # a zero-cost callback returns long before its RUNNING event is due
        assert events in (
            [],
            [TaskStatus.SUCCEEDED],
            [TaskStatus.RUNNING],
            [TaskStatus.RUNNING, TaskStatus.SUCCEEDED],
        )
    # Beyond the first event after a quiet interval, RUNNING events of quick tasks are dropped.
    assert sum(TaskStatus.RUNNING in events for events in per_task) <= 1, per_task
    # Coalesced: far fewer events than tasks, in order, the counters never going back.
    reported = [n for n, events in zip(quick, per_task, strict=True) if TaskStatus.SUCCEEDED in events]
    assert 1 <= len(reported) < len(quick) // 2, per_task
    processed = [
        e.processed for n in reported for e in rig.task_events(n) if e.task_status == TaskStatus.SUCCEEDED
    ]
    assert processed == sorted(processed)


def test_tasks_in_flight_finish_and_report_before_the_replica_says_goodbye(
    rig_factory: Callable[[Callable[..., None]], _Rig],
) -> None:
    entered = threading.Event()

    def slow(*args: Any) -> None:
        entered.set()
        time.sleep(0.3)

    rig = rig_factory(slow)
    rig.submit(1)
    assert entered.wait(10)
    rig.node.stop()  # while the callback runs and before its output is confirmed
    time.sleep(0.5)
    assert rig.spinner.is_alive()  # the shutdown waits for the confirm
    rig.node_transport.confirm()
    rig.spinner.join(10)
    assert not rig.spinner.is_alive()
    assert rig.unacked() == 0

    def goodbye_seen() -> bool:
        with rig._lock:
            return any(s.event == "offline" for s in rig.statuses)

    wait_until(goodbye_seen, 10, "the offline status")
    with rig._lock:
        kinds = [(s.event, s.task_status) for s in rig.statuses if s.event in ("task", "offline")]
    assert kinds[-1][0] == "offline"
    assert ("task", TaskStatus.SUCCEEDED) in kinds[:-1]
