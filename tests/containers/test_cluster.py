"""A RabbitMQ cluster of three broker containers that loses a node in the middle of a batch.

Quorum queues (``SUSTAINML_QUEUE_TYPE=quorum``) replicate every shared queue (stage, results,
requests, dead-letter, configuration and retry delay queues) on the three nodes.
The orchestrator and one replica of every stage get a broker URL naming all three nodes
(``amqp://...@rmq1:5672,rmq2:5672,rmq3:5672/``) and fail over to another node when theirs goes.

Twice, with a batch of 200 tasks under way: the node that leads most shared queues is stopped
(``docker stop``: a clean shutdown), then, once it is back, the new leader is killed
(``docker kill``: SIGKILL, no goodbye). Each time every task completes, none is lost or stored
twice, the time from the fault to the next completed task is measured, and the node, restarted,
is shown running in the cluster again.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from sustainml.orchestrator.taskdb import TaskDB
from sustainml.topology import PIPELINE, Topology
from tests.containers.conftest import Deployment, report, wait_for
from tests.containers.test_multicontainer import batch_body, succeeded
from tests.support.batch import count_batch

NODES = ("rmq1", "rmq2", "rmq3")
BATCH = 200
FAULT_AFTER = 40  # tasks of the batch completed before the fault


def running_nodes(d: Deployment, via: str) -> list[str]:
    status = json.loads(d.rabbitmqctl(via, "cluster_status", "--formatter", "json"))
    return sorted(str(n) for n in status["running_nodes"])


def shared_queue_leaders(d: Deployment, via: str) -> Counter[str]:
    rows = json.loads(d.rabbitmqctl(via, "list_queues", "name", "type", "leader", "--formatter", "json"))
    topology = Topology(d.namespace, "quorum")
    shared = {q.name for q in [*topology.durable_queues(), *topology.retry_queues()]}
    leaders: Counter[str] = Counter()
    for row in rows:
        if row["name"] in shared:
            assert row["type"] == "quorum", row
            leaders[str(row["leader"]).split("@", 1)[1]] += 1
    return leaders


def submit_with_retry(d: Deployment, body: dict[str, Any]) -> int:
    """Submit through the API; while the orchestrator fails over, a submission may be refused
    (5xx or no answer): retried. Returns how many attempts were refused."""
    refused = 0
    while True:
        try:
            r = httpx.post(f"{d.api}/v1/tasks", json=body, timeout=30)
            if r.status_code == 201:
                return refused
        except httpx.HTTPError:
            pass
        refused += 1
        assert refused < 60, f"submission refused {refused} times: {body}"
        time.sleep(1.0)


def run_batch_with_fault(d: Deployment, db: TaskDB, fault: str) -> dict[str, Any]:
    batch = f"{d.uid}-{fault}"
    leaders = shared_queue_leaders(d, NODES[0])  # all three nodes run at this point
    victim = leaders.most_common(1)[0][0]
    before = succeeded(db)
    began = time.monotonic()
    pool = ThreadPoolExecutor(4)
    futures = [pool.submit(submit_with_retry, d, batch_body(batch, i)) for i in range(BATCH)]
    wait_for(lambda: succeeded(db) - before >= FAULT_AFTER, 300, f"{FAULT_AFTER} tasks", interval=0.1)
    done_at_fault = succeeded(db) - before
    container = d.container(victim)
    fault_at = time.monotonic()
    if fault == "stop":
        container.stop(timeout=30)
    else:
        container.kill()
    fault_s = time.monotonic() - fault_at
    # recovery: from the fault to the next task of the batch completed
    count = succeeded(db)
    recovery_s = wait_for(
        lambda: succeeded(db) > count, 300, "a task to complete after the fault", interval=0.05
    )
    refused = sum(f.result() for f in futures)
    pool.shutdown()
    alive = [n for n in NODES if n != victim]
    try:
        wait_for(lambda: succeeded(db) - before >= BATCH, 600, f"all {BATCH} tasks", interval=0.5)
    except AssertionError as stalled:
        # what is stuck where: the batch's counts and every queue's depth, leader and type
        queues = d.rabbitmqctl(alive[0], "list_queues", "name", "type", "leader", "messages", "consumers")
        summary = count_batch(db, batch, BATCH).summary()
        raise AssertionError(f"{stalled}\nbatch: {summary}\nqueues seen from {alive[0]}:\n{queues}") from None
    total_s = time.monotonic() - began
    counts = count_batch(db, batch, BATCH)
    new_leaders = shared_queue_leaders(d, alive[0])
    report(
        f"cluster-{fault}-batch",
        {"victim": victim, "recovery_s": round(recovery_s, 2), "summary": counts.summary()},
    )
    # the node comes back and rejoins
    container.start()
    rejoin_s = wait_for(
        lambda: len(running_nodes(d, alive[0])) == 3, 180, f"{victim} to rejoin the cluster", interval=1.0
    )
    figures = {
        "fault": fault,
        "victim": victim,
        "shared_queue_leaders_before": dict(leaders),
        "shared_queue_leaders_after": dict(new_leaders),
        "tasks": BATCH,
        "completed": counts.completed,
        "lost": counts.lost,
        "duplicated": counts.duplicated,
        "reprocessed": counts.reprocessed,
        "done_at_fault": done_at_fault,
        "fault_call_s": round(fault_s, 1),
        "recovery_s": round(recovery_s, 2),
        "submissions_refused": refused,
        "total_s": round(total_s, 1),
        "rejoin_s": round(rejoin_s, 1),
        "running_after_rejoin": running_nodes(d, alive[0]),
    }
    report(f"cluster-{fault}", figures)
    counts.assert_clean()
    assert victim not in new_leaders, f"{victim} still leads a shared queue after its loss: {new_leaders}"
    return figures


@pytest.mark.containers_long
@pytest.mark.timeout(1200)
def test_a_three_node_cluster_loses_the_node_leading_the_stage_queues(deployment: Deployment) -> None:
    d = deployment
    brokers = [d.broker(n, wait=False) for n in NODES]
    for b in brokers:
        d.wait_broker(b)
    for n in NODES[1:]:
        d.rabbitmqctl(n, "stop_app")
        d.rabbitmqctl(n, "join_cluster", f"rabbit@{NODES[0]}")
        d.rabbitmqctl(n, "start_app")
    assert running_nodes(d, NODES[0]) == [f"rabbit@{n}" for n in NODES]
    url = d.broker_url(list(NODES))
    d.orchestrator(url, SUSTAINML_QUEUE_TYPE="quorum")
    for stage in PIPELINE:
        d.worker(stage.node.lower(), 1, url, SUSTAINML_QUEUE_TYPE="quorum")
    d.wait_replicas(1)
    db = TaskDB(f"sqlite:///{d.data / 'taskdb.sqlite3'}")
    try:
        stopped = run_batch_with_fault(d, db, "stop")
        killed = run_batch_with_fault(d, db, "kill")
    finally:
        db.close()
    for figures in (stopped, killed):
        assert figures["running_after_rejoin"] == [f"rabbit@{n}" for n in NODES]
