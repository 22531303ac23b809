"""The shipped image as a deployment: a broker, the orchestrator (with the API) and two replicas of
every stage, each in its own container on the test's network.

- one task submitted through the API comes back with all six outputs;
- a batch of 200 tasks, a worker container killed (SIGKILL) mid-batch while it holds an
  unacknowledged delivery: every task completes, none lost, none stored twice (counted in the
  orchestrator's TaskDB, by item).
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from sustainml.orchestrator.taskdb import TaskDB
from sustainml.topology import PIPELINE
from tests.containers.conftest import Deployment, report, wait_for
from tests.support.batch import BATCH_KEY, ITEM_KEY, count_batch

REPLICAS = 2
BATCH = 200
KILL_AFTER = 40  # tasks completed before the kill: the batch is well under way, most still queued


def start(deployment: Deployment, replicas: int) -> str:
    deployment.broker()
    url = deployment.broker_url(["rabbitmq"])
    deployment.orchestrator(url)
    for stage in PIPELINE:
        for replica in range(1, replicas + 1):
            deployment.worker(stage.node.lower(), replica, url)
    deployment.wait_replicas(replicas)
    return url


def batch_body(batch: str, item: int) -> dict[str, object]:
    return {
        "problem_short_description": f"classify photos of welded seams, batch {batch} item {item}",
        "modality": "image",
        "extra_data": {BATCH_KEY: batch, ITEM_KEY: item},
    }


def succeeded(db: TaskDB) -> int:
    return db.count_by_state().get("succeeded", 0)


def test_a_deployment_of_containers_answers_a_task_through_the_api(deployment: Deployment) -> None:
    began = time.monotonic()
    start(deployment, 1)
    up_s = time.monotonic() - began
    task = deployment.submit({"problem_short_description": "detect defects in photos of welded seams"})
    tid = task["task_id"]
    path = f"{deployment.api}/v1/tasks/{tid['problem_id']}/{tid['iteration_id']}"

    def done() -> bool:
        return httpx.get(path, timeout=5).json()["state"] in ("succeeded", "failed", "cancelled")

    wait_for(done, 120, "the task to finish")
    body = httpx.get(path, timeout=5).json()
    assert body["state"] == "succeeded", body
    missing = [s.node for s in PIPELINE if not body.get(s.node)]
    assert not missing, f"no output from {missing}: {body}"
    figures = {"containers": 2 + len(PIPELINE), "up_s": round(up_s, 1)}
    figures |= {"model": body["ML_MODEL"]["model"], "hardware": body["HW_RESOURCES"]["hw_description"]}
    report("api-task", figures)


@pytest.mark.containers_long
@pytest.mark.timeout(900)
def test_a_worker_container_killed_mid_batch_loses_and_duplicates_nothing(
    deployment: Deployment, tmp_path: Path
) -> None:
    start(deployment, REPLICAS)
    db = TaskDB(f"sqlite:///{deployment.data / 'taskdb.sqlite3'}")
    try:
        batch = deployment.uid
        began = time.monotonic()
        # submitted from 4 threads in the background: the kill lands while tasks still arrive
        pool = ThreadPoolExecutor(4)
        futures = [pool.submit(deployment.submit, batch_body(batch, item)) for item in range(BATCH)]
        wait_for(lambda: succeeded(db) >= KILL_AFTER, 300, f"{KILL_AFTER} tasks to complete", interval=0.1)
        # the victim: the first worker container seen holding a delivery it has not acknowledged
        # (the broker's own count, per channel; channel names start with the client's address)
        workers = {
            deployment.ip(name): name
            for name in (f"{s.node.lower().replace('_', '-')}-{r}" for s in PIPELINE for r in (1, 2))
        }
        victim, unacked = "hw-resources-1", 0

        def find_victim() -> bool:
            nonlocal victim, unacked
            out = deployment.rabbitmqctl("rabbitmq", "list_channels", "name", "messages_unacknowledged")
            for line in out.splitlines():
                ip, _, rest = line.partition(":")
                count = rest.rsplit(maxsplit=1)[-1] if rest else ""
                if ip in workers and count.isdigit() and int(count) > 0:
                    victim, unacked = workers[ip], int(count)
                    return True
            return False

        # within 30 s one always did here; if none does, HW_RESOURCES' first replica is killed anyway
        with contextlib.suppress(AssertionError):
            wait_for(find_victim, 30, "a worker holding a delivery", interval=0.0)
        in_flight = unacked
        done_at_kill = succeeded(db)
        deployment.container(victim).kill()
        killed_at = time.monotonic()
        for f in futures:
            f.result()
        pool.shutdown()
        submitted_s = time.monotonic() - began
        wait_for(lambda: succeeded(db) >= BATCH, 600, f"all {BATCH} tasks to complete", interval=0.5)
        total_s = time.monotonic() - began
        counts = count_batch(db, batch, BATCH)
        report(
            "kill-mid-batch",
            {
                "tasks": BATCH,
                "completed": counts.completed,
                "lost": counts.lost,
                "duplicated": counts.duplicated,
                "reprocessed": counts.reprocessed,
                "done_at_kill": done_at_kill,
                "victim": victim,
                "victim_unacked_at_kill": in_flight,
                "submit_s": round(submitted_s, 1),
                "after_kill_s": round(time.monotonic() - killed_at, 1),
                "total_s": round(total_s, 1),
            },
        )
        counts.assert_clean()
    finally:
        db.close()
