"""SUSTAINML_QUEUE_TYPE=quorum on the real broker: the stage and results queues are declared as
quorum queues with x-delivery-limit (checked on the broker itself), tasks run end to end on them,
and the delivery limit really stops a message that every consumer requeues (it is dead-lettered
to the stage's DLQ instead of looping forever). A single node accepts quorum queues (no
replication, same semantics); on a cluster they are replicated across nodes."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import time
from collections import Counter
from typing import Any

import pika
import pytest

from sustainml.config import Settings
from sustainml.deployment import LocalDeployment, amqp_transports
from sustainml.messages import UserInput
from sustainml.topology import PIPELINE, Topology, declare_all
from sustainml.transport.amqp import AmqpTransport

pytestmark = pytest.mark.integration

DELIVERY_LIMIT = 3


@pytest.fixture
def quorum_settings(settings: Settings) -> Settings:
    # the `settings` fixture deletes the namespace afterwards (quorum queues included)
    return dataclasses.replace(settings, queue_type="quorum", delivery_limit=DELIVERY_LIMIT)


def _broker_queues(namespace: str) -> dict[str, dict[str, Any]]:
    """name -> {type, arguments} of the namespace's queues, as the broker reports them."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl not installed: cannot read queue arguments from the broker")
    result = subprocess.run(
        ["rabbitmqctl", "list_queues", "-p", "/", "name", "type", "arguments", "--formatter", "json", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        pytest.skip(f"rabbitmqctl cannot reach the node: {result.stderr.strip()[:200]}")
    rows = json.loads(result.stdout)
    return {
        r["name"]: {"type": r["type"], "arguments": {a[0]: a[2] for a in r["arguments"]}}
        for r in rows
        if r["name"].startswith(f"{namespace}.")
    }


def test_tasks_run_end_to_end_on_quorum_queues(quorum_settings: Settings) -> None:
    topology = Topology.of(quorum_settings)
    with LocalDeployment(quorum_settings, amqp_transports(quorum_settings)) as dep:
        client = dep.client()
        ids = [
            client.submit(
                UserInput(problem_short_description=f"translate support tickets, batch {i}"), watch=True
            )
            for i in range(3)
        ]
        results = client.wait_many(ids, 90)
        assert Counter(r.state for r in results.values()) == {"succeeded": 3}
        assert all(len(r.outputs) == len(PIPELINE) for r in results.values())
        queues = _broker_queues(quorum_settings.namespace)
    work = [topology.stage_queue(s) for s in PIPELINE] + [topology.orchestrator_results_queue]
    for name in work:
        q = queues[name]
        assert q["type"] == "quorum", (name, q)
        assert q["arguments"]["x-queue-type"] == "quorum"
        assert q["arguments"]["x-delivery-limit"] == DELIVERY_LIMIT, (name, q)
        assert q["arguments"]["x-dead-letter-exchange"] == topology.dead_letter_exchange
    # nothing shared stays classic (a classic queue is lost with its one node on a cluster)
    shared = [q.name for q in [*topology.durable_queues(), *topology.retry_queues()]]
    assert {name: queues[name]["type"] for name in shared} == dict.fromkeys(shared, "quorum")
    for spec in topology.retry_queues():
        args = queues[spec.name]["arguments"]
        assert args["x-dead-letter-strategy"] == "at-least-once" and args["x-overflow"] == "reject-publish"
    print({n: q["type"] for n, q in sorted(queues.items())})


def test_delivery_limit_dead_letters_a_message_every_consumer_requeues(quorum_settings: Settings) -> None:
    topology = Topology.of(quorum_settings)
    with AmqpTransport(quorum_settings.broker_url, name="quorum-declare") as t:
        declare_all(t, topology)
    stage = PIPELINE[2]
    queue = topology.stage_queue(stage)
    dlq = topology.dead_letter_queue(queue)
    conn = pika.BlockingConnection(pika.URLParameters(quorum_settings.broker_url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(
            topology.record_exchange(stage.input_kind),
            "1.1",
            b"poison",
            pika.BasicProperties(delivery_mode=2, message_id="poison-1"),
            mandatory=True,
        )
        deliveries = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            method, _props, _body = ch.basic_get(queue, auto_ack=False)
            if method is None:
                _, _, dead = ch.basic_get(dlq, auto_ack=True)
                if dead is not None:
                    assert dead == b"poison"
                    break
                time.sleep(0.05)
                continue
            assert method.delivery_tag is not None
            deliveries += 1
            assert deliveries <= DELIVERY_LIMIT + 1, "the broker kept redelivering past the limit"
            ch.basic_nack(method.delivery_tag, requeue=True)  # a consumer that crashes every time
        else:
            pytest.fail(f"the message never reached {dlq} after {deliveries} deliveries")
        # delivered once, then redelivered up to the limit, then dead-lettered
        assert deliveries == DELIVERY_LIMIT + 1, deliveries
    finally:
        conn.close()


def test_a_retry_delay_queue_on_quorum_hands_the_message_back_to_its_stage(quorum_settings: Settings) -> None:
    topology = Topology.of(quorum_settings)
    with AmqpTransport(quorum_settings.broker_url, name="quorum-declare") as t:
        declare_all(t, topology)
    stage = PIPELINE[1]
    delay = topology.retry_queue_spec(stage, 1)
    conn = pika.BlockingConnection(pika.URLParameters(quorum_settings.broker_url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", delay.name, b"again", pika.BasicProperties(delivery_mode=2), mandatory=True)
        deadline = time.monotonic() + 10 + (delay.message_ttl_ms or 0) / 1000
        while time.monotonic() < deadline:
            _, _, body = ch.basic_get(topology.stage_queue(stage), auto_ack=True)
            if body is not None:
                assert body == b"again"
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the message never came back from {delay.name} to {topology.stage_queue(stage)}")
    finally:
        conn.close()
