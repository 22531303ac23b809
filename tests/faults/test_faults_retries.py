"""Retries with backoff and poison messages, on both transports (the in-memory one and a private
RabbitMQ node): a callback that raises is retried through the stage's delay queues with an
attempts header, then dead-lettered with its reason; it never loops."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sustainml.config import Settings
from sustainml.deadletter import H_ATTEMPTS
from sustainml.deployment import LocalDeployment, TransportFactory, amqp_transports, memory_transports
from sustainml.messages import TaskId
from sustainml.messages import headers as H
from sustainml.topology import PIPELINE, Topology
from sustainml.transport.base import Delivery, Transport
from tests.support.batch import batch_input, count_batch, wait_terminal
from tests.support.taskdb import count_outputs
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.faults]

BACKOFF = 0.2
ATTEMPTS = 3


def _noop(*args: Any) -> None:
    return None


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.integration)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def deployment(
    kind: str, make_settings: Callable[..., Settings], request: pytest.FixtureRequest
) -> Iterator[Callable[..., tuple[LocalDeployment, TransportFactory]]]:
    started: list[LocalDeployment] = []

    def start(callbacks: dict[str, Any]) -> tuple[LocalDeployment, TransportFactory]:
        settings = make_settings(max_attempts=ATTEMPTS, retry_backoff=BACKOFF)
        transports = memory_transports() if kind == "memory" else amqp_transports(settings)
        all_callbacks: dict[str, Any] = {s.node: _noop for s in PIPELINE}
        all_callbacks.update(callbacks)
        dep = LocalDeployment(settings, transports, callbacks=all_callbacks).start()
        started.append(dep)
        return dep, transports

    yield start
    for dep in started:
        dep.stop()


def _flaky(failures: int, calls: list[float], lock: threading.Lock) -> Callable[..., None]:
    def callback(*args: Any) -> None:
        with lock:
            calls.append(time.monotonic())
            n = len(calls)
        if n <= failures:
            raise ConnectionError(f"transient failure {n}")

    return callback


def test_transient_failure_is_retried_with_backoff_then_succeeds(
    deployment: Callable[..., tuple[LocalDeployment, TransportFactory]],
) -> None:
    calls: list[float] = []
    dep, _ = deployment({"HW_RESOURCES": _flaky(2, calls, threading.Lock())})
    assert dep.orchestrator is not None
    tid = dep.orchestrator.submit(batch_input("retry", 0))
    res = dep.orchestrator.wait(tid, 30)
    assert res.state == "succeeded", res.error
    assert len(calls) == ATTEMPTS  # two failures, then the successful third attempt
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    # delay before attempt n+1 = backoff * 2**(n-1): 0.2 s, then 0.4 s
    assert gaps[0] >= BACKOFF * 0.9 and gaps[1] >= 2 * BACKOFF * 0.9, gaps
    counts = count_batch(dep.orchestrator.db, "retry", 1)
    counts.assert_clean()
    assert count_outputs(
        dep.orchestrator.db, TaskId(problem_id=tid.problem_id, iteration_id=tid.iteration_id)
    ) == len(PIPELINE)


def test_poison_message_is_retried_a_bounded_number_of_times_then_dead_lettered(
    deployment: Callable[..., tuple[LocalDeployment, TransportFactory]],
) -> None:
    calls: list[TaskId] = []
    lock = threading.Lock()

    def poison(ml_model: Any, app: Any, hw_c: Any, status: Any, out: Any) -> None:
        with lock:
            calls.append(out.task_id)
        raise RuntimeError("segfault in the estimator")

    dep, transports = deployment({"HW_RESOURCES": poison})
    orch = dep.orchestrator
    assert orch is not None
    tid = orch.submit(batch_input("poison", 0))
    res = orch.wait(tid, 30)
    assert res.state == "failed"
    assert res.error is not None and "HW_RESOURCES" in res.error and "segfault in the estimator" in res.error
    assert f"failed {ATTEMPTS} attempts" in res.error
    assert "carbon_footprint" not in res.outputs  # later stages skip a failed task

    topo = Topology.of(dep.settings)
    stage = next(s for s in PIPELINE if s.node == "HW_RESOURCES")
    dlq = topo.dead_letter_queue(topo.stage_queue(stage))
    inspector: Transport = transports("inspector")
    inspector.connect()
    try:
        wait_until(lambda: inspector.queue_counts(dlq)[0] == 1, 10, "the poison input in the DLQ")
        got: list[Delivery] = []

        def keep(d: Delivery) -> None:
            got.append(d)
            d.ack()

        tag = inspector.consume(dlq, keep)
        wait_until(lambda: len(got) == 1, 10, "the dead letter")
        inspector.cancel(tag)
        headers = got[0].message.headers
        assert int(headers[H_ATTEMPTS]) == ATTEMPTS
        assert "segfault in the estimator" in str(headers[H.H_DEAD_REASON])
        assert str(headers[H.H_DEAD_QUEUE]) == topo.stage_queue(stage)
        # It never loops: no further attempt after the dead-lettering, and every queue is empty.
        settle = time.monotonic() + 4 * BACKOFF * 2 ** (ATTEMPTS - 1)
        while time.monotonic() < settle:
            assert len(calls) == ATTEMPTS
            time.sleep(0.05)
        assert inspector.queue_counts(topo.stage_queue(stage))[0] == 0
        for attempt in range(1, ATTEMPTS):
            assert inspector.queue_counts(topo.retry_queue(stage, attempt))[0] == 0
    finally:
        inspector.close()
    assert calls == [tid] * ATTEMPTS


def test_rejection_by_value_error_fails_at_once_without_retry(
    deployment: Callable[..., tuple[LocalDeployment, TransportFactory]],
) -> None:
    calls: list[int] = []

    def refuse(*args: Any) -> None:
        calls.append(1)
        raise ValueError("hardware 'XYZ' is not in the catalogue")

    dep, _ = deployment({"HW_CONSTRAINTS": refuse})
    assert dep.orchestrator is not None
    ids = [dep.orchestrator.submit(batch_input("reject", i)) for i in range(3)]
    wait_terminal(dep.orchestrator.db, ids, 20)
    for tid in ids:
        res = dep.orchestrator.result(tid)
        assert res.state == "failed" and res.error is not None and "not in the catalogue" in res.error
        assert "attempts" not in res.error
    assert len(calls) == 3  # one attempt each: a rejection is final
