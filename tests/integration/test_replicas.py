"""Horizontal scaling and crash recovery on the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sustainml.config import Settings
from sustainml.deployment import LocalDeployment, amqp_transports
from sustainml.messages import TaskId, TaskStatus, UserInput, to_wire
from sustainml.workers.logic import hw_resources
from tests.support.taskdb import count_outputs, list_task_events
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def _ui(i: int) -> UserInput:
    return UserInput(
        problem_short_description=f"classify photos of product defects, batch {i}", modality="image"
    )


def test_two_replicas_share_the_work_and_each_task_runs_once(settings: Settings) -> None:
    lock = threading.Lock()
    runs: list[tuple[str, TaskId]] = []

    def recording(ml_model: Any, app: Any, hw_c: Any, status: Any, out: Any) -> None:
        with lock:
            runs.append((status.replica_id, out.task_id))
        time.sleep(0.02)  # long enough that one replica cannot drain the queue alone
        hw_resources.task_callback(ml_model, app, hw_c, status, out)

    with LocalDeployment(
        settings,
        amqp_transports(settings),
        replicas={"hw_resources": 2},
        callbacks={"hw_resources": recording},
    ) as dep:
        client = dep.client()
        ids = [client.submit(_ui(i), watch=True) for i in range(20)]
        results = client.wait_many(ids, 90)
    assert all(r.state == "succeeded" for r in results.values())
    per_task = Counter(t for _, t in runs)
    assert set(per_task) == set(ids)
    assert set(per_task.values()) == {1}  # each task processed exactly once
    per_replica = Counter(r for r, _ in runs)
    assert len(per_replica) == 2, per_replica  # both replicas took a share


def _started_by(dep: LocalDeployment, tid: TaskId, pid: int) -> bool:
    """True once the TaskDB holds a RUNNING event of ``tid`` from the replica of process ``pid``."""
    assert dep.orchestrator is not None
    dep.orchestrator.statuses.flush()  # statuses are written behind, in batches
    key = TaskId(problem_id=tid.problem_id, iteration_id=tid.iteration_id)
    return any(
        e.task_status == int(TaskStatus.RUNNING) and f"-{pid}-" in e.replica_id
        for e in list_task_events(dep.orchestrator.db, key)
    )


def test_killed_worker_task_completes_once_on_another_replica(settings: Settings, tmp_path: Path) -> None:
    marker = tmp_path / "in-flight"
    env = dict(
        os.environ,
        SUSTAINML_BROKER_URL=settings.broker_url,
        SUSTAINML_NAMESPACE=settings.namespace,
        SUSTAINML_DATA_DIR=str(settings.data_dir),  # the deployment's signing key lives there
        SUSTAINML_HEARTBEAT_INTERVAL="0.5",
    )
    script = Path(__file__).with_name("slow_worker.py")
    with LocalDeployment(settings, amqp_transports(settings), replicas={"hw_resources": 0}) as dep:
        proc = subprocess.Popen([sys.executable, str(script), str(marker)], env=env)
        try:
            client = dep.client()
            tid = client.submit(_ui(0), watch=True)
            deadline = time.monotonic() + 60
            while not marker.exists():
                assert proc.poll() is None, "slow worker exited early"
                assert time.monotonic() < deadline, "the slow replica never started the task"
                time.sleep(0.05)
            assert marker.read_text() == tid.key
            # Its RUNNING event (published once the callback has run 50 ms) is stored before the kill.
            wait_until(lambda: _started_by(dep, tid, proc.pid), 10, "the slow replica's RUNNING event")
            proc.kill()  # SIGKILL mid-task: its delivery was never acked
            proc.wait(10)
            assert client.result(tid).state == "running"
            dep.start_node("hw_resources")  # a healthy replica picks up the redelivered input
            res = client.wait(tid, 60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert res.state == "succeeded", res.error
        assert to_wire(res.outputs["hw_resources"])["task_id"] == to_wire(tid)
        assert dep.orchestrator is not None
        db = dep.orchestrator.db
        key = TaskId(problem_id=tid.problem_id, iteration_id=tid.iteration_id)

        def hw_events() -> list[Any]:
            return [e for e in list_task_events(db, key) if e.node_name == "HW_RESOURCES"]

        deadline = time.monotonic() + 10  # statuses are written behind, in batches
        while not any(e.task_status == int(TaskStatus.SUCCEEDED) for e in hw_events()):
            assert time.monotonic() < deadline, "no SUCCEEDED event stored for HW_RESOURCES"
            time.sleep(0.1)
        done = [e for e in hw_events() if e.task_status == int(TaskStatus.SUCCEEDED)]
        killed = f"-{proc.pid}-"  # replica ids are <host>-<pid>-<suffix>
        assert len(done) == 1 and killed not in done[0].replica_id  # completed once, by the new replica
        # The killed replica started it (its callback was running: a RUNNING event) and never
        # finished it. The new replica's own RUNNING event is not checked: a callback that returns
        # before the node's status thread gets to it is reported by its completion event alone.
        started = {e.replica_id for e in hw_events() if e.task_status == int(TaskStatus.RUNNING)}
        assert any(killed in r for r in started), started
        assert (
            count_outputs(
                dep.orchestrator.db, TaskId(problem_id=tid.problem_id, iteration_id=tid.iteration_id)
            )
            == 6
        )


def test_sigterm_finishes_the_task_in_flight_then_exits(settings: Settings, tmp_path: Path) -> None:
    marker = tmp_path / "in-flight"
    env = dict(
        os.environ,
        SUSTAINML_BROKER_URL=settings.broker_url,
        SUSTAINML_NAMESPACE=settings.namespace,
        SUSTAINML_DATA_DIR=str(settings.data_dir),  # the deployment's signing key lives there
    )
    script = Path(__file__).with_name("slow_worker.py")
    with LocalDeployment(settings, amqp_transports(settings), replicas={"hw_resources": 0}) as dep:
        proc = subprocess.Popen([sys.executable, str(script), str(marker), "2"], env=env)
        try:
            client = dep.client()
            tid = client.submit(_ui(0), watch=True)
            deadline = time.monotonic() + 60
            while not marker.exists():
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            proc.terminate()  # SIGTERM while the 2 s callback runs
            assert proc.wait(30) == 0
            # the in-flight task was finished and its output published before the exit
            res = client.wait(tid, 30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert res.state == "succeeded"
    assert res.outputs["hw_resources"].hw_description  # type: ignore[attr-defined]


def test_worker_module_entry_point_runs_a_replica(settings: Settings) -> None:
    env = dict(
        os.environ,
        SUSTAINML_BROKER_URL=settings.broker_url,
        SUSTAINML_NAMESPACE=settings.namespace,
        SUSTAINML_DATA_DIR=str(settings.data_dir),  # the deployment's signing key lives there
    )
    with LocalDeployment(settings, amqp_transports(settings), replicas={"carbon_footprint": 0}) as dep:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sustainml.workers.carbon_footprint"], env=env, cwd="/"
        )
        try:
            client = dep.client()
            res = client.wait(client.submit(_ui(0), watch=True), 60)
            assert res.state == "succeeded"
            assert res.outputs["carbon_footprint"].carbon_intensity > 0  # type: ignore[attr-defined]
        finally:
            proc.terminate()
            proc.wait(30)
