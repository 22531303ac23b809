"""Hostile input on the real broker: a few hundred malformed messages published to a stage's input
exchange all land in the stage's DLQ with the reason, and the worker keeps consuming (a valid task
sent afterwards completes)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import msgpack
import pytest

from sustainml.cli.dlq_client import DlqClient
from sustainml.config import Settings
from sustainml.messages import (
    SCHEMA_VERSION,
    TaskEnvelope,
    TaskId,
    UserInput,
    decode_task,
    encode,
    limits,
)
from sustainml.messages import headers as H
from sustainml.topology import Topology
from tests.security.nodes_support import (
    FIRST_STAGE,
    blocking_channel,
    describe_callback,
    get_all,
    output_queue,
    queue_count,
    running_node,
    signed_stage_properties,
    stage_properties,
    user_input_task,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

MALFORMED = 300


def _valid_body() -> dict[str, object]:
    body = msgpack.unpackb(user_input_task(5), raw=False)
    assert isinstance(body, dict)
    return body


def malformed_bodies(n: int, seed: int = 6) -> list[bytes]:
    """``n`` invalid stage messages, cycling through every class of the issue."""
    rng = random.Random(seed)
    out: list[bytes] = []
    valid = user_input_task(5)
    while len(out) < n:
        k = len(out) % 10
        body = _valid_body()
        if k == 0:  # random bytes
            data = rng.randbytes(rng.randint(0, 200))
        elif k == 1:  # truncated msgpack
            data = valid[: rng.randint(0, len(valid) - 1)]
        elif k == 2:  # wrong types
            body[rng.choice(["task_id", "record", "context", "kind"])] = rng.choice([3, "x", [1], 2.5, None])
            data = msgpack.packb(body)
        elif k == 3:  # missing fields
            del body[rng.choice(["kind", "type", "task_id", "record", "schema_version"])]
            data = msgpack.packb(body)
        elif k == 4:  # huge string
            body["record"]["problem_short_description"] = "x" * (limits.MAX_STRING_CHARS + 1)  # type: ignore[index]
            data = msgpack.packb(body)
        elif k == 5:  # huge array
            body["record"]["inputs"] = ["a"] * (limits.MAX_LIST_ITEMS + 1)  # type: ignore[index]
            data = msgpack.packb(body)
        elif k == 6:  # wrong schema version
            body["schema_version"] = rng.choice([SCHEMA_VERSION + 1, 0, -1, "1", 1.0])
            data = msgpack.packb(body)
        elif k == 7:  # NaN / inf
            body["record"]["desired_carbon_footprint"] = rng.choice([float("nan"), float("inf")])  # type: ignore[index]
            data = msgpack.packb(body)
        elif k == 8:  # negative / zero ids
            body["task_id"] = {"problem_id": rng.choice([-1, 0, -(2**40)]), "iteration_id": 1}
            data = msgpack.packb(body)
        else:  # a well-formed message of the wrong kind for this stage / a standalone body
            data = encode(UserInput(problem_short_description="standalone, not a task"))
        try:
            decode_task(data)
        except Exception:
            out.append(data)
            continue
        # Only k == 9 may decode; it is still wrong for the stage only if its kind differs.
        env = decode_task(data)
        assert isinstance(env, TaskEnvelope)
    return out


@pytest.fixture
def worker(settings: Settings) -> Iterator[Settings]:
    with running_node(FIRST_STAGE, describe_callback, settings):
        yield settings


def test_malformed_messages_are_dead_lettered_with_reason_and_worker_keeps_consuming(
    amqp_url: str, worker: Settings
) -> None:
    settings = worker
    topo = Topology.of(settings)
    stage_q = topo.stage_queue(FIRST_STAGE)
    dlq = topo.dead_letter_queue(stage_q)
    bodies = malformed_bodies(MALFORMED)
    assert len(bodies) == MALFORMED

    with blocking_channel(amqp_url) as ch:
        for i, body in enumerate(bodies):
            ch.basic_publish(
                topo.record_exchange("user_input"),
                f"{i + 1}.1",
                body,
                stage_properties(f"bad-{i}"),
                mandatory=True,
            )

    wait_until(lambda: queue_count(amqp_url, dlq) == MALFORMED, 90, f"{MALFORMED} messages in {dlq}")

    with DlqClient(settings) as client:
        count, letters = client.show(FIRST_STAGE.kind, limit=MALFORMED)
    assert count == MALFORMED
    assert sorted(d.ref for d in letters) == sorted(f"bad-{i}" for i in range(MALFORMED))
    for d in letters:
        assert d.headers[H.H_DEAD_REASON] == d.reason
        assert d.reason.startswith("invalid message: "), d.reason
        assert d.origin_queue == stage_q
        assert d.origin_exchange == topo.record_exchange("user_input")
    # Every class left its own explanation: the reasons name different fields.
    fields = {d.reason.split(": ")[1] for d in letters}
    assert {"body", "schema_version", "task_id.problem_id", "kind"} <= fields, fields
    # Reading them did not remove any.
    assert queue_count(amqp_url, dlq) == MALFORMED

    # The worker is still consuming: a valid task afterwards completes.
    with output_queue(amqp_url, settings, FIRST_STAGE) as out_q:
        with blocking_channel(amqp_url) as ch:
            good = user_input_task(999, "detect defects in welded seams")
            ch.basic_publish(
                topo.record_exchange("user_input"),
                "999.1",
                good,
                signed_stage_properties(settings, "good-999", good),
                mandatory=True,
            )
        wait_until(lambda: queue_count(amqp_url, out_q) >= 1, 30, "the valid task's output")
        outputs = get_all(amqp_url, out_q)
    assert len(outputs) == 1
    props, body = outputs[0]
    env = decode_task(body)
    assert env.task_id == TaskId(problem_id=999, iteration_id=1)
    assert env.record.keywords[:2] == ["detect", "defects"]  # type: ignore[attr-defined]
    assert H.H_FAILED not in (props.headers or {})
    assert queue_count(amqp_url, dlq) == MALFORMED  # the valid one was not dead-lettered
    assert queue_count(amqp_url, stage_q) == 0
