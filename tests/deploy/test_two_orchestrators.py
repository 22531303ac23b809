"""Two orchestrator replicas on one PostgreSQL TaskDB and one broker namespace: they compete on
the requests, results and progress queues; every task gets a distinct id and completes, each
task's outcome (every stage output) is stored exactly once, and a final output delivered a second
time (a redelivery) changes nothing, whichever replica receives it."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest

from sustainml.config import Settings
from sustainml.deployment import LocalDeployment, amqp_transports
from sustainml.messages import TaskId, UserInput
from sustainml.orchestrator.core import Orchestrator
from sustainml.orchestrator.taskdb import TaskDB
from sustainml.orchestrator.watchers import Watch
from sustainml.topology import FINAL_STAGE, PIPELINE, Topology
from sustainml.transport.amqp import AmqpTransport
from sustainml.transport.base import Binding, Delivery, Message, QueueSpec
from tests.support.taskdb import count_outputs
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_two_orchestrators_share_the_queues_without_duplicates(settings: Settings, postgres_url: str) -> None:
    topology = Topology.of(settings)
    handled: Counter[str] = Counter()
    progressed: Counter[str] = Counter()
    # (replica, task key) of each event published with the task's direct watch queue
    direct_events: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()
    orchestrators: list[Orchestrator] = []
    for name in ("orch-a", "orch-b"):
        orch = Orchestrator(
            settings,
            transport=AmqpTransport(settings.broker_url, name=f"{settings.namespace}-{name}"),
            db=TaskDB(postgres_url),
            orchestrator_id=name,
        )
        handler = orch._on_result

        def counting(
            delivery: Delivery, handler: Callable[[Delivery], None] = handler, name: str = name
        ) -> None:
            handler(delivery)
            with lock:
                handled[name] += 1

        orch._on_result = counting  # type: ignore[method-assign]  # set before start() consumes
        on_progress = orch._on_progress

        def counting_progress(
            delivery: Delivery, handler: Callable[[Delivery], None] = on_progress, name: str = name
        ) -> None:
            handler(delivery)
            with lock:
                progressed[name] += 1

        orch._on_progress = counting_progress  # type: ignore[method-assign]
        publish = orch.watchers.publish

        def recording_publish(
            task_key: str, body: bytes, watch: Watch | None, publish: Any = publish, name: str = name
        ) -> Future[None]:
            if watch is not None and watch[1]:
                with lock:
                    direct_events[(name, task_key)] += 1
            return publish(task_key, body, watch)  # type: ignore[no-any-return]

        orch.watchers.publish = recording_publish  # type: ignore[method-assign]
        orchestrators.append(orch)
    # a tap on the final stage's exchange keeps a copy of one real output message to replay
    tap = AmqpTransport(settings.broker_url, name=f"{settings.namespace}-tap")
    captured: list[Message] = []
    try:
        for orch in orchestrators:
            orch.start()
        tap.connect()
        tap_queue = f"{settings.namespace}.test-tap"
        tap.declare_queue(
            QueueSpec(
                tap_queue, (Binding(topology.record_exchange(FINAL_STAGE.kind), "#"),), expires_ms=60_000
            )
        )

        def keep(delivery: Delivery) -> None:
            captured.append(delivery.message)
            delivery.ack()

        tap.consume(tap_queue, keep, prefetch=16)
        with LocalDeployment(settings, amqp_transports(settings), with_orchestrator=False) as dep:
            client = dep.client()
            ids = [
                client.submit(
                    UserInput(problem_short_description=f"classify bird songs, take {i}"), watch=True
                )
                for i in range(12)
            ]
            results = client.wait_many(ids, 120)
        assert Counter(r.state for r in results.values()) == {"succeeded": 12}
        assert len({(t.problem_id, t.iteration_id) for t in ids}) == 12, "distinct ids from either replica"
        db = orchestrators[0].db
        for t in ids:
            assert count_outputs(db, TaskId(problem_id=t.problem_id, iteration_id=t.iteration_id)) == len(
                PIPELINE
            )
        print("outcomes handled per replica:", dict(handled), "progress:", dict(progressed))
        assert handled["orch-a"] >= 1 and handled["orch-b"] >= 1, "both replicas consumed results"
        assert sum(handled.values()) == 12, "one outcome per task reaches the results queue"
        assert progressed["orch-a"] >= 1 and progressed["orch-b"] >= 1, "both replicas saw progress"
        assert sum(progressed.values()) == 12 * (len(PIPELINE) - 1)
        # The watch queue travels with the task: whichever replica handled an output announced it
        # to the direct watcher (start, five progress events, final), not only the one that took
        # the submission. (The replica storing the outcome also announces the stages it did not
        # see itself before the final event, so a running event may come twice.)
        for t in ids:
            per_replica = {name: direct_events[(name, t.key)] for name in ("orch-a", "orch-b")}
            assert sum(per_replica.values()) >= 1 + len(PIPELINE), (t.key, per_replica)
        assert {name for (name, _key), n in direct_events.items() if n} == {"orch-a", "orch-b"}

        # Redeliver one final output: published again into the shared results queue, it reaches
        # one of the two replicas, which must see it as a duplicate.
        wait_until(lambda: len(captured) == 12, 20.0, "the tap to see every final output")
        replay = captured[0]
        t = next(t for t in ids if replay.correlation_id == t.key)
        key = TaskId(problem_id=t.problem_id, iteration_id=t.iteration_id)
        before = db.get_task(key)
        total = sum(handled.values())
        tap.publish("", topology.orchestrator_results_queue, replay).result(10)
        wait_until(
            lambda: sum(handled.values()) == total + 1, 20.0, "a replica to handle the replayed output"
        )
        after = db.get_task(key)
        assert before is not None and after is not None
        assert (after.state, after.finished_at, after.updated_at) == (
            before.state,
            before.finished_at,
            before.updated_at,
        ), "a duplicate output must not touch the task"
        assert count_outputs(db, key) == len(PIPELINE)
    finally:
        for orch in orchestrators:
            orch.close()
            orch.db.close()  # passed in, so not closed by the orchestrator
        tap.close()
