"""Helpers shared by the hostile-input, DLQ and security tests: a real stage worker (the node
runtime with a small callback) on the real broker, raw publishing with plain pika, polling."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pika
import pika.exceptions

from sustainml.attribution import Attribution
from sustainml.config import Settings
from sustainml.messages import SCHEMA_VERSION, TaskEnvelope, TaskId, UserInput, encode_task
from sustainml.messages import headers as H
from sustainml.topology import STAGES_BY_KIND, Stage
from sustainml.transport.base import Message
from sustainml.workers.runtime import Node

FIRST_STAGE: Stage = STAGES_BY_KIND["ml_model_metadata"]


def user_input_task(problem_id: int, description: str = "classify photos of welded seams") -> bytes:
    """A valid stage message for the first stage (a UserInput envelope)."""
    tid = TaskId(problem_id=problem_id, iteration_id=1)
    return encode_task(TaskEnvelope("user_input", tid, UserInput(problem_short_description=description)))


def stage_properties(message_id: str | None = None, **headers: Any) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/msgpack",
        delivery_mode=2,
        message_id=message_id,
        type="UserInput",
        headers={H.H_SCHEMA_VERSION: SCHEMA_VERSION, **headers},
    )


def signed_stage_properties(settings: Settings, message_id: str, body: bytes) -> pika.BasicProperties:
    """``stage_properties`` of a task start signed as the deployment's orchestrator would sign it
    (the stage refuses unsigned task starts)."""
    props = stage_properties(message_id)
    msg = Attribution.of(settings, "orchestrator").sign(
        Message(body, headers=dict(props.headers or {}), message_id=message_id, type=props.type)
    )
    props.headers = msg.headers
    return props


@contextmanager
def blocking_channel(url: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    """A confirm-mode channel on a short-lived connection."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        yield ch
    finally:
        if conn.is_open:
            conn.close()


def queue_count(url: str, queue: str) -> int:
    with blocking_channel(url) as ch:
        return int(ch.queue_declare(queue, passive=True).method.message_count or 0)


@contextmanager
def running_node(stage: Stage, callback: Callable[..., None], settings: Settings) -> Iterator[Node]:
    """A replica of ``stage`` running ``callback`` in the real runtime; stopped (in-flight work
    finished, connection closed) on exit."""
    cls = type(f"Test{stage.node.title().replace('_', '')}Node", (Node,), {"STAGE": stage})
    node: Node = cls(callback=callback, settings=settings)
    thread = node.run_in_thread()
    try:
        yield node
    finally:
        node.stop()
        thread.join(60)
        assert not thread.is_alive(), "the test worker did not stop"


def describe_callback(user_input: UserInput, status: Any, output: Any) -> None:
    """A minimal ML_MODEL_METADATA: the description's words as keywords."""
    output.keywords = user_input.problem_short_description.split()[:8]
    output.ml_model_metadata = ["image-classification"]


@contextmanager
def output_queue(url: str, settings: Settings, stage: Stage) -> Iterator[str]:
    """A test queue bound to ``stage``'s output exchange (deleted afterwards)."""
    from sustainml.topology import Topology

    name = f"{settings.namespace}.test-out.{stage.kind}"
    topo = Topology.of(settings)
    with blocking_channel(url) as ch:
        ch.queue_declare(name, durable=False, auto_delete=False, arguments={"x-expires": 120_000})
        ch.queue_bind(name, topo.record_exchange(stage.kind), "#")
    try:
        yield name
    finally:
        with blocking_channel(url) as ch:
            ch.queue_delete(name)


def get_all(url: str, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    """Take (and ack) every message currently in ``queue``."""
    out: list[tuple[pika.BasicProperties, bytes]] = []
    with blocking_channel(url) as ch:
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            assert props is not None
            out.append((props, bytes(body or b"")))
