"""Worker faults on a private RabbitMQ node: SIGKILL of every stage's worker mid-batch, a stage
with no replica, a configuration request nobody answers, a callback far longer than the AMQP
heartbeat timeout, and the per-stage deadline. Workers are real processes (``noop_worker.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sustainml.config import Settings
from sustainml.messages import Status, TaskId, TaskStatus
from sustainml.orchestrator.core import Orchestrator
from sustainml.topology import PIPELINE, Topology, resolve_stage
from sustainml.transport.amqp import AmqpTransport
from tests.faults.conftest import Rig
from tests.support.batch import count_batch, wait_terminal
from tests.support.taskdb import list_task_events
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration]

BATCH = 200
CALLBACK_S = 0.1  # long enough that every stage is still busy when all six are killed
# Figures of every run, appended (build/ is ignored by git); docs/reliability.md quotes them.
FIGURES = Path(__file__).resolve().parents[2] / "build" / "faults-last-run.txt"


def record(line: str) -> None:
    """Print a figure of this run and append it to build/faults-last-run.txt."""
    print(line)
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES.open("a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}\n")


def _processed(orch: Orchestrator, node: str, pid: int | None = None) -> int:
    """Tasks finished by the live replicas of ``node`` (or by the one with process id ``pid``)."""
    return sum(
        r.processed
        for r in orch.replicas()
        if r.node_name == node and (pid is None or f"-{pid}-" in r.replica_id)
    )


def _in_flight(orch: Orchestrator, node: str, pid: int) -> int:
    return sum(r.in_flight for r in orch.replicas() if r.node_name == node and f"-{pid}-" in r.replica_id)


def _interrupted(orch: Orchestrator, ids: list[TaskId], node: str, pid: int) -> int:
    """Tasks the replica with process id ``pid`` started on ``node`` and never finished there."""
    n = 0
    for tid in ids:
        events = [
            e
            for e in list_task_events(
                orch.db, TaskId(problem_id=tid.problem_id, iteration_id=tid.iteration_id)
            )
            if e.node_name == node and f"-{pid}-" in e.replica_id
        ]
        started = any(e.task_status == int(TaskStatus.RUNNING) for e in events)
        finished = any(e.task_status == int(TaskStatus.SUCCEEDED) for e in events)
        n += started and not finished
    return n


def test_sigkill_of_each_stage_worker_mid_batch_loses_and_duplicates_nothing(
    make_settings: Callable[..., Settings], rig_factory: Callable[[Settings], Rig]
) -> None:
    rig = rig_factory(make_settings())
    orch = rig.start_orchestrator()
    first = {s.node: rig.start_worker(s.node, CALLBACK_S) for s in PIPELINE}
    wait_until(lambda: all(v == Status.IDLE for v in orch.status().values()), 60, "six idle workers")

    began = time.monotonic()
    ids = rig.submit("sigkill", BATCH)
    # All six at once, once every stage is busy: killing them one after another lets the upstream
    # stages finish the whole batch while the downstream replacements are still starting.
    wait_until(
        lambda: all(
            _processed(orch, s.node, first[s.node].pid) >= 5 and rig.in_flight(first[s.node].pid) > 0
            for s in PIPELINE
        ),
        60,
        "every stage with a task in flight",
        interval=0.01,
    )
    at_kill = {s.node: _processed(orch, s.node, first[s.node].pid) for s in PIPELINE}
    killed_at: dict[str, float] = {}
    fresh: dict[str, int] = {}
    for stage in PIPELINE:
        first[stage.node].kill()  # SIGKILL: no shutdown, its unacked deliveries go back to the queue
    running_at_kill = {s.node: rig.in_flight(first[s.node].pid) for s in PIPELINE}
    for stage in PIPELINE:
        first[stage.node].wait(10)
        killed_at[stage.node] = time.monotonic()
        fresh[stage.node] = rig.start_worker(stage.node, CALLBACK_S).pid
    # Time to recover: from the kill to the first task finished by the replacement.
    recoveries: dict[str, float] = {}
    for stage in PIPELINE:
        node = stage.node
        wait_until(
            lambda: _processed(orch, node, fresh[node]) >= 1,  # noqa: B023 - called before node changes
            60,
            f"{stage.node} replacement at work (processed at the kill: {at_kill})",
        )
        recoveries[stage.node] = time.monotonic() - killed_at[stage.node]
    wait_terminal(orch.db, ids, 120)
    elapsed = time.monotonic() - began
    orch.statuses.flush()  # node statuses are written behind, in batches
    interrupted = {s.node: _interrupted(orch, ids, s.node, first[s.node].pid) for s in PIPELINE}
    counts = count_batch(orch.db, "sigkill", len(ids))
    record(
        f"sigkill-each-stage: {counts.summary()} elapsed={elapsed:.1f}s "
        f"processed_at_kill={at_kill} running_at_kill={running_at_kill} interrupted={interrupted} "
        f"recovery_s={ {k: round(v, 1) for k, v in recoveries.items()} }"
    )
    counts.assert_clean()
    # Every kill really hit tasks in flight (started by the killed replica, finished by another).
    assert all(n >= 1 for n in interrupted.values()), interrupted


def test_stage_without_replica_holds_tasks_until_one_starts(
    make_settings: Callable[..., Settings], rig_factory: Callable[[Settings], Rig]
) -> None:
    rig = rig_factory(make_settings())
    orch = rig.start_orchestrator()
    missing = resolve_stage("HW_RESOURCES")
    for s in PIPELINE:
        if s is not missing:
            rig.start_worker(s.node, 0.0)
    ids = rig.submit("no-replica", 20)
    queue = Topology.of(rig.settings).stage_queue(missing)

    def all_waiting() -> bool:
        return all(
            orch.result(t).state == "running" and orch.result(t).current_stage == missing.node for t in ids
        )

    wait_until(all_waiting, 60, "every task waiting on HW_RESOURCES")
    assert orch.status()[missing.node] == Status.INACTIVE
    with AmqpTransport(rig.settings.broker_url, name="inspector") as t:
        assert isinstance(t, AmqpTransport)
        wait_until(lambda: t.queue_counts(queue) == (20, 0), 10, "20 tasks in the durable stage queue")
    began = time.monotonic()
    rig.start_worker(missing.node, 0.0)
    wait_terminal(orch.db, ids, 60)
    drained = time.monotonic() - began
    counts = count_batch(orch.db, "no-replica", len(ids))
    record(f"no-replica: {counts.summary()} drained_after_start={drained:.1f}s")
    counts.assert_clean()


def test_configuration_request_to_a_node_without_replica_times_out_clearly(
    make_settings: Callable[..., Settings], rig_factory: Callable[[Settings], Rig]
) -> None:
    rig = rig_factory(make_settings())
    orch = rig.start_orchestrator()
    began = time.monotonic()
    res = orch.config_request("hw_resources", "hardwares", timeout=2.0)
    took = time.monotonic() - began
    record(f"config-timeout: configured=2.0s answered_after={took:.2f}s success={res.success}")
    assert not res.success
    assert "HW_RESOURCES" in res.configuration and "2" in res.configuration
    assert 2.0 <= took < 3.5


def test_callback_longer_than_four_heartbeat_timeouts_keeps_its_connection(
    make_settings: Callable[..., Settings], rig_factory: Callable[[Settings], Rig]
) -> None:
    # The 90 s callback, scaled: a 20 s callback under a 5 s AMQP heartbeat timeout is
    # four timeouts without the I/O thread being starved, exactly like 90 s under the default 30 s.
    rig = rig_factory(make_settings(amqp_heartbeat=5))
    orch = rig.start_orchestrator()
    for s in PIPELINE:
        rig.start_worker(s.node, 20.0 if s.node == "HW_RESOURCES" else 0.0)
    ids = rig.submit("long-callback", 2)
    began = time.monotonic()
    wait_terminal(orch.db, ids, 90)
    took = time.monotonic() - began
    counts = count_batch(orch.db, "long-callback", len(ids))
    runs = [
        e
        for t in ids
        for e in list_task_events(orch.db, TaskId(problem_id=t.problem_id, iteration_id=t.iteration_id))
        if e.node_name == "HW_RESOURCES" and e.task_status == int(TaskStatus.RUNNING)
    ]
    log = (rig.tmp_path / "worker-HW_RESOURCES.log").read_text()
    record(f"long-callback: {counts.summary()} callback=20s heartbeat=5s took={took:.1f}s starts={len(runs)}")
    counts.assert_clean()
    assert took >= 20.0
    assert len(runs) == len(ids)  # each task started once: no redelivery
    assert "lost" not in log and "reconnect" not in log, log[-2000:]


def test_stage_deadline_fails_a_stuck_task_with_a_clear_reason(
    make_settings: Callable[..., Settings], rig_factory: Callable[[Settings], Rig]
) -> None:
    rig = rig_factory(make_settings(stage_deadline=3.0))
    orch = rig.start_orchestrator()
    for s in PIPELINE:
        if s.node != "HW_RESOURCES":
            rig.start_worker(s.node, 0.0)
    wait_until(
        lambda: sum(v == Status.IDLE for v in orch.status().values()) == len(PIPELINE) - 1,
        60,
        "the five other workers up",
    )
    ids = rig.submit("deadline", 3)
    began = time.monotonic()
    wait_terminal(orch.db, ids, 30)
    took = time.monotonic() - began
    for tid in ids:
        res = orch.result(tid)
        assert res.state == "failed"
        assert res.error == "no output from HW_RESOURCES within 3 s; node INACTIVE"
    record(f"stage-deadline: deadline=3s tasks=3 failed_after={took:.1f}s reason={res.error!r}")
    assert took < 3.0 + 5.0
    # A replica that turns up late cannot resurrect them: they stay failed.
    rig.start_worker("HW_RESOURCES", 0.0)
    with AmqpTransport(rig.settings.broker_url, name="inspector") as t:
        queue = Topology.of(rig.settings).stage_queue(resolve_stage("HW_RESOURCES"))
        wait_until(lambda: t.queue_counts(queue)[0] == 0, 30, "the late replica to drain the stuck inputs")
    time.sleep(1.0)  # let any (wrong) downstream output reach the orchestrator
    assert all(orch.result(t).state == "failed" for t in ids)
