"""Broker faults on a private RabbitMQ node (never the shared one): the rabbit application
stopped and started, a full node restart, and a memory alarm, each with a batch in flight; plus an
orchestrator SIGKILLed three times in one batch. Workers run as processes, the orchestrator in
this process (it is also the publisher of the tasks: ``Orchestrator.submit`` publishes each
task's UserInput), except in the SIGKILL test, where it is a process too."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait

import pytest

from sustainml.config import Settings
from sustainml.messages import Status, TaskId
from sustainml.orchestrator.client import Client
from sustainml.topology import PIPELINE, Topology
from sustainml.transport.amqp import AmqpTransport
from sustainml.transport.base import Binding, ExchangeSpec, Message, QueueSpec
from tests.faults.conftest import Rig
from tests.faults.test_faults_workers import record
from tests.support.batch import batch_input, count_batch, wait_terminal
from tests.support.private_broker import PrivateBroker
from tests.support.taskdb import count_outputs
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration]

BATCH = 200


def _start_pipeline(rig: Rig) -> None:
    orch = rig.start_orchestrator()
    for s in PIPELINE:
        rig.start_worker(s.node, 0.01)
    wait_until(lambda: all(v == Status.IDLE for v in orch.status().values()), 60, "six idle workers")


def _submit_in_background(rig: Rig, batch: str, n: int) -> tuple[threading.Thread, list[TaskId], list[str]]:
    ids: list[TaskId] = []
    errors: list[str] = []

    def run() -> None:
        assert rig.orchestrator is not None
        for i in range(n):
            try:
                ids.append(rig.orchestrator.submit(batch_input(batch, i)))
            except Exception as exc:  # counted: a refused submission is a lost task
                errors.append(f"item {i}: {type(exc).__name__}: {exc}")

    thread = threading.Thread(target=run, name="publisher", daemon=True)
    thread.start()
    return thread, ids, errors


def _broker_outage_during_batch(
    rig: Rig, broker: PrivateBroker, name: str, outage: Callable[[], None]
) -> None:
    _start_pipeline(rig)
    orch = rig.orchestrator
    assert orch is not None
    began = time.monotonic()
    thread, ids, errors = _submit_in_background(rig, name, BATCH)
    wait_until(lambda: len(ids) >= BATCH // 3, 60, "a third of the batch submitted")
    down = time.monotonic()
    outage()
    back = time.monotonic()
    # Recovered once every component is connected again and the orchestrator stores new outputs.
    transport = orch.transport
    assert isinstance(transport, AmqpTransport)
    wait_until(lambda: transport.is_open, 60, "the orchestrator reconnected")
    stored = count_outputs(orch.db)
    wait_until(lambda: count_outputs(orch.db) > stored, 60, "outputs flowing again")
    recovered = time.monotonic() - back
    thread.join(120)
    assert not thread.is_alive(), "the publisher is stuck"
    wait_terminal(orch.db, ids, 120)
    counts = count_batch(orch.db, name, BATCH)
    record(
        f"{name}: {counts.summary()} submit_errors={len(errors)} outage={back - down:.1f}s "
        f"recovered_after={recovered:.1f}s total={time.monotonic() - began:.1f}s"
    )
    assert not errors, errors[:3]
    counts.assert_clean()
    assert len({t.key for t in ids}) == BATCH  # ids never collide


def test_stop_app_start_app_during_a_batch(
    private_broker: PrivateBroker,
    make_settings: Callable[..., Settings],
    rig_factory: Callable[[Settings], Rig],
) -> None:
    rig = rig_factory(make_settings())

    def outage() -> None:
        private_broker.stop_app()
        time.sleep(2.0)  # the broker stays down a while: the outage itself, not a wait for work
        private_broker.start_app()

    _broker_outage_during_batch(rig, private_broker, "broker-stop-app", outage)


def test_full_broker_restart_during_a_batch(
    private_broker: PrivateBroker,
    make_settings: Callable[..., Settings],
    rig_factory: Callable[[Settings], Rig],
) -> None:
    rig = rig_factory(make_settings())
    _broker_outage_during_batch(rig, private_broker, "broker-full-restart", private_broker.restart)


def test_memory_alarm_blocks_publishers_without_loss(
    private_broker: PrivateBroker,
    make_settings: Callable[..., Settings],
    rig_factory: Callable[[Settings], Rig],
) -> None:
    settings = make_settings()
    rig = rig_factory(settings)
    _start_pipeline(rig)
    orch = rig.orchestrator
    assert orch is not None
    # A plain publisher too, on a queue of its own: its futures must stay pending, then confirm.
    pub = AmqpTransport(private_broker.url, name="alarm-publisher")
    pub.connect()
    queue = f"{settings.namespace}.alarm-probe"
    try:
        pub.declare_exchange(ExchangeSpec(f"{settings.namespace}.alarm", "topic"))
        pub.declare_queue(QueueSpec(queue, (Binding(f"{settings.namespace}.alarm", "#"),)))
        private_broker.rabbitmqctl("set_vm_memory_high_watermark", "0.0000001")
        alarmed = time.monotonic()
        try:
            futures: list[Future[None]] = [
                pub.publish(f"{settings.namespace}.alarm", "k", Message(f"m{i}".encode())) for i in range(100)
            ]
            thread, ids, errors = _submit_in_background(rig, "memory-alarm", 50)
            wait_until(lambda: pub.blocked, 30, "connection.blocked from the broker")
            held = 3.0
            done, _ = wait(futures, timeout=held)
            assert not done, "publishes confirmed during a memory alarm"
            assert all(not f.done() for f in futures)  # pending: neither failed nor dropped
            assert len(ids) <= 1  # the task publisher waits too
        finally:
            private_broker.rabbitmqctl("set_vm_memory_high_watermark", "0.4")
        cleared = time.monotonic()
        for f in futures:
            f.result(60)
        confirmed_after = time.monotonic() - cleared
        wait_until(lambda: pub.queue_counts(queue)[0] == 100, 30, "all 100 probe messages queued")
        thread.join(120)
        wait_terminal(orch.db, ids, 120)
        counts = count_batch(orch.db, "memory-alarm", 50)
        record(
            f"memory-alarm: {counts.summary()} submit_errors={len(errors)} "
            f"blocked_for={cleared - alarmed:.1f}s "
            f"probe_publishes=100 pending_during_alarm=100 confirmed_after_clear={confirmed_after:.1f}s"
        )
        assert not errors, errors[:3]
        counts.assert_clean()
    finally:
        pub.delete_queue(queue)
        pub.delete_exchange(f"{settings.namespace}.alarm")
        pub.close()


KILLS = 3


def test_orchestrator_sigkilled_three_times_in_one_batch_loses_and_duplicates_nothing(
    make_settings: Callable[..., Settings], rig_factory: Callable[[Settings], Rig]
) -> None:
    """One batch of 200 submitted through the remote ``Client`` while the orchestrator process is
    SIGKILLed three times (after about 50, 100 and 150 accepted submissions, a request in flight
    each time) and restarted on the same TaskDB. A request the dead orchestrator had stored but
    not acked is redelivered to the next one; a request nobody answered in time is sent again by
    the client with the same idempotency key: either way the task is created once."""
    # Short RPC timeout: the client resends often; long submit timeout: it keeps trying through
    # a restart on a loaded machine.
    settings = make_settings(rpc_timeout=5.0, submit_timeout=300.0)
    rig = rig_factory(settings)
    for s in PIPELINE:
        rig.start_worker(s.node, 0.02)
    requests = Topology.of(settings).orchestrator_requests_queue
    probe = AmqpTransport(settings.broker_url, name="inspector")
    probe.connect()

    def consumers() -> int:
        try:
            return probe.queue_counts(requests)[1]
        except KeyError:
            return 0  # not declared yet

    def start_orchestrator(n: int) -> subprocess.Popen[bytes]:
        proc = rig.spawn([sys.executable, "-m", "sustainml.cli", "orchestrator"], f"orchestrator-{n}")
        wait_until(lambda: consumers() >= 1, 120, f"orchestrator process {n} consuming requests")
        return proc

    orchestrator = start_orchestrator(1)
    client = Client(settings)
    ids: list[TaskId] = []
    errors: list[str] = []

    def submit_all() -> None:
        for i in range(BATCH):
            try:
                ids.append(client.submit(batch_input("orchestrator-kills", i)))
            except Exception as exc:  # counted: a refused submission is a lost task
                errors.append(f"item {i}: {type(exc).__name__}: {exc}")

    submitter = threading.Thread(target=submit_all, name="submitter", daemon=True)
    began = time.monotonic()
    submitter.start()
    downtime: list[float] = []
    try:
        for k in range(1, KILLS + 1):
            wanted = k * BATCH // (KILLS + 1)
            wait_until(lambda: len(ids) >= wanted, 300, f"{wanted} accepted submissions")  # noqa: B023
            orchestrator.kill()  # SIGKILL, a submission in flight
            orchestrator.wait(10)
            killed = time.monotonic()
            orchestrator = start_orchestrator(k + 1)
            downtime.append(time.monotonic() - killed)
        submitter.join(600)
        assert not submitter.is_alive(), "submissions still running after 600 s"
        wait_terminal(rig.db, ids, 300)
    finally:
        client.close()
        probe.close()
    counts = count_batch(rig.db, "orchestrator-kills", BATCH)
    record(
        f"orchestrator-kills: {counts.summary()} kills={KILLS} distinct_ids={len({t.key for t in ids})} "
        f"submit_errors={len(errors)} restart_to_consuming_s={','.join(f'{d:.1f}' for d in downtime)} "
        f"total_s={time.monotonic() - began:.1f}"
    )
    assert not errors, errors[:3]
    counts.assert_clean()
    assert len(ids) == BATCH
    assert len({t.key for t in ids}) == BATCH  # no id reused, none returned twice
