#!/usr/bin/env python3
"""Submit a problem to a SustainML deployment and follow it, with nothing but pika and msgpack.

This script deliberately does not import ``sustainml``: it is the executable companion of
docs/wire-format.md (section numbers below refer to it) and shows that any AMQP 0-9-1 client and
any msgpack library are enough.

1. Declare one private queue ``<ns>.watch.<id>`` (durable, ``x-expires``, not exclusive; §4.2).
   The script binds it to nothing itself.
2. Publish ``{"op": "submit", ...}`` to ``<ns>.orchestrator.requests`` through the default
   exchange with ``reply_to`` and ``correlation_id`` set, and the ``watch_queue`` header naming
   the private queue. Before it starts the task, the orchestrator binds that queue to
   ``<ns>.tasks`` with the task's routing key ``p.i`` (one binding); it removes the binding once
   the task is over (§9.2, §9.8).
3. Read the reply: the task id the orchestrator assigned (``{"ok": true, "task_id": {...}}``).
   TaskEvents may arrive before it (the task starts before the reply is sent); they wait.
4. Print each TaskEvent (§9.7) as it arrives: for each stored stage output, the node name
   (``completed``) and a few fields of its ``record``; stop at state ``succeeded``, ``failed``
   or ``cancelled``.

Exit status: 0 when the task succeeded, 1 when it failed or was cancelled, 2 when the request
could not be made or answered in time (the message says why).

    python docs/examples/raw_pika_submit.py --url amqp://guest:guest@127.0.0.1:5672/%2F \\
        --namespace sustainml --description "detect defects in photos of welded seams"
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

import msgpack
import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

SCHEMA_VERSION = 1  # the body schema this script writes and fully understands
CONTENT_TYPE = "application/msgpack"
WATCH_QUEUE_EXPIRES_MS = 60_000  # the queue disappears a minute after its last consumer left
TASK_EVENT_TYPE = "TaskEvent"  # AMQP `type` property of the orchestrator's task events

# Record fields printed for each stage output (§7.5), by the node that produced it; in
# pipeline order (§1).
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "ML_MODEL_METADATA": ("ml_model_metadata", "keywords"),
    "APP_REQUIREMENTS": ("app_requirements",),
    "HW_CONSTRAINTS": ("hardware_required", "max_memory_footprint"),
    "ML_MODEL": ("model",),
    "HW_RESOURCES": ("hw_description", "latency"),
    "CARBON_FOOTPRINT": ("carbon_footprint", "energy_consumption"),
}
TERMINAL_STATES = ("succeeded", "failed", "cancelled")

EXIT_OK, EXIT_TASK_FAILED, EXIT_NO_ANSWER = 0, 1, 2


class Failure(Exception):
    """The request could not be made or was not answered; the message says why."""


def user_input_record(description: str) -> dict[str, Any]:
    """A UserInput wire record (§7.5). Every field is written so the shape is visible; a sender
    may omit any of them (missing fields take their defaults)."""
    return {
        "modality": "image",
        "problem_short_description": description,
        "problem_definition": "",
        "inputs": [],
        "outputs": [],
        "minimum_samples": 0,
        "maximum_samples": 0,
        "optimize_carbon_footprint_manual": False,
        "previous_iteration": 0,  # 0 = a new problem
        "optimize_carbon_footprint_auto": False,
        "desired_carbon_footprint": 0.0,
        "geo_location_continent": "Europe",
        "geo_location_region": "Spain",
        # extra_data is msgpack *bin* holding a msgpack map (b"" = nothing), §7.7.
        "extra_data": msgpack.packb({"hardware_required": "PIM_AI_1chip"}, use_bin_type=True),
        "task_id": None,  # assigned by the orchestrator
    }


def task_key(task_id: Any) -> str:
    """``{"problem_id": p, "iteration_id": i}`` -> ``"p.i"`` (the routing key of the task)."""
    if not isinstance(task_id, dict) or "problem_id" not in task_id or "iteration_id" not in task_id:
        raise Failure(f"no usable task_id in {task_id!r}")
    return f"{task_id['problem_id']}.{task_id['iteration_id']}"


def check_version(what: str, body: dict[str, Any]) -> None:
    version = body.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        # A newer schema may carry meaning this script cannot see: say so, read what it knows.
        print(
            f"warning: {what} has schema_version {version!r} (this script knows {SCHEMA_VERSION});"
            " reading the fields it knows",
            file=sys.stderr,
        )


def key_fields(node: str, record: Any) -> str:
    """A few fields of a stage output's record (wire form, §7.4) as ``name=<JSON value>``."""
    if not isinstance(record, dict):
        return "(no record)"
    shown = []
    for name in KEY_FIELDS.get(node, ()):
        value = record.get(name)
        text = f"<{len(value)} bytes>" if isinstance(value, bytes) else json.dumps(value)
        shown.append(f"{name}={text}")
    return " ".join(shown)


class Follower:
    """Prints the TaskEvents of one task and decides when it is over."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.key: str | None = None  # "p.i" once the reply arrived
        self.early: list[dict[str, Any]] = []  # events that arrived before the reply

    def stamp(self) -> str:
        return f"[{time.monotonic() - self.started:6.2f}s]"

    def on_reply(self, body: bytes) -> int | None:
        reply = msgpack.unpackb(body, raw=False)
        check_version("the reply", reply)
        if not reply.get("ok"):
            raise Failure(f"the orchestrator refused the submission: {reply.get('error')}")
        self.key = task_key(reply.get("task_id"))
        print(f"task_id: {self.key}", flush=True)
        early, self.early = self.early, []
        for event in early:
            status = self.on_task_event(event)
            if status is not None:
                return status
        return None

    def on_message(self, props: pika.BasicProperties, body: bytes) -> int | None:
        """A message from ``<ns>.tasks``; returns an exit status once the task is over."""
        if props.type != TASK_EVENT_TYPE:
            print(f"warning: ignoring a message of type {props.type!r}", file=sys.stderr)
            return None
        event = msgpack.unpackb(body, raw=False)
        check_version("a TaskEvent", event)
        if self.key is None:  # the task starts before the orchestrator replies
            self.early.append(event)
            return None
        return self.on_task_event(event)

    def on_task_event(self, event: dict[str, Any]) -> int | None:
        key = task_key(event.get("task_id"))
        if key != self.key:  # the orchestrator binds only this task's key; never expected
            print(f"warning: ignoring an event of task {key}", file=sys.stderr)
            return None
        state = event.get("state")
        completed = event.get("completed")
        if completed:  # a stage output was stored: its node, and the output itself
            node = str(completed)
            print(f"{self.stamp()} {node} task {key}: {key_fields(node, event.get('record'))}", flush=True)
        else:  # the start (or a cancel request)
            print(f"{self.stamp()} task {key} {state} at {event.get('stage')}", flush=True)
        if state == "succeeded":
            print(f"task {key} succeeded", flush=True)
            return EXIT_OK
        if state in TERMINAL_STATES:
            print(f"task {key} {str(state).upper()}: {event.get('error')}", flush=True)
            return EXIT_TASK_FAILED
        return None


def submit_and_follow(
    channel: BlockingChannel, namespace: str, watch_queue: str, description: str, timeout: float
) -> int:
    started = time.monotonic()
    deadline = started + timeout
    requests_queue = f"{namespace}.orchestrator.requests"
    correlation_id = uuid.uuid4().hex
    request = {"schema_version": SCHEMA_VERSION, "op": "submit", "user_input": user_input_record(description)}
    properties = pika.BasicProperties(
        content_type=CONTENT_TYPE,
        delivery_mode=1,  # a request is worth nothing once its caller gave up
        correlation_id=correlation_id,
        reply_to=watch_queue,
        expiration=str(max(1, int(timeout * 1000))),  # never executed after we stopped waiting
        type="submit",
        app_id="raw_pika_submit",
        timestamp=int(time.time()),
        headers={"watch_queue": watch_queue},
    )
    try:
        channel.basic_publish(
            "", requests_queue, msgpack.packb(request, use_bin_type=True), properties, mandatory=True
        )
    except pika.exceptions.UnroutableError:
        raise Failure(
            f"queue {requests_queue!r} does not exist: is a deployment running in namespace {namespace!r}?"
        ) from None
    except pika.exceptions.NackError:
        raise Failure(f"the broker refused the request to {requests_queue!r}") from None

    follower = Follower(started)
    for method, props, body in channel.consume(watch_queue, inactivity_timeout=0.25):
        if time.monotonic() > deadline:
            what = "the orchestrator's reply" if follower.key is None else f"task {follower.key} to finish"
            raise Failure(f"timed out after {timeout:g} s waiting for {what}")
        if method is None or props is None or body is None:  # inactivity tick
            continue
        if method.delivery_tag is None:  # never so for basic.deliver; keeps the types honest
            raise Failure("the broker sent a delivery without a delivery tag")
        channel.basic_ack(method.delivery_tag)
        if method.exchange == "":  # replies come through the default exchange
            if props.correlation_id != correlation_id:
                print(
                    f"warning: ignoring a reply to another request ({props.correlation_id})", file=sys.stderr
                )
                continue
            status = follower.on_reply(body)
        else:  # TaskEvents come through <ns>.tasks
            status = follower.on_message(props, body)
        if status is not None:
            return status
    raise Failure("the broker cancelled the consumer of the watch queue")


def run(url: str, namespace: str, description: str, timeout: float) -> int:
    watch_queue = f"{namespace}.watch.raw-{uuid.uuid4().hex[:12]}"
    params = pika.URLParameters(url)
    params.client_properties = {"connection_name": f"raw_pika_submit {watch_queue}"}
    try:
        connection = pika.BlockingConnection(params)
    except pika.exceptions.AMQPConnectionError as exc:
        raise Failure(f"cannot connect to the broker at {url}: {exc!r}") from exc
    channel = connection.channel()
    try:
        channel.confirm_delivery()  # basic_publish then raises if the broker refuses or returns it
        # Not exclusive: the orchestrator binds it from its own connection (an exclusive queue
        # would refuse that with RESOURCE_LOCKED). x-expires removes it if this script dies.
        channel.queue_declare(
            watch_queue,
            durable=True,
            arguments={"x-queue-type": "classic", "x-expires": WATCH_QUEUE_EXPIRES_MS},
        )
        print(f"watch_queue: {watch_queue}", flush=True)
        return submit_and_follow(channel, namespace, watch_queue, description, timeout)
    finally:
        try:
            if channel.is_open:
                channel.cancel()  # ends the consume() generator's consumer, if any
            elif connection.is_open:
                channel = connection.channel()  # the broker closed the first one (an error above)
            if channel.is_open:
                channel.queue_delete(watch_queue)
        except pika.exceptions.AMQPError as exc:  # cleanup only: never hide the real outcome
            print(f"warning: could not delete {watch_queue} ({exc!r}); it expires in 60 s", file=sys.stderr)
        finally:
            if connection.is_open:
                connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--url", default="amqp://guest:guest@127.0.0.1:5672/%2F", help="AMQP URL of the broker"
    )
    parser.add_argument("--namespace", default="sustainml", help="SUSTAINML_NAMESPACE of the deployment")
    parser.add_argument(
        "--description",
        default="detect defects in photos of welded seams",
        help="UserInput.problem_short_description",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the whole task")
    args = parser.parse_args(argv)
    try:
        return run(args.url, args.namespace, args.description, args.timeout)
    except Failure as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_ANSWER


if __name__ == "__main__":
    sys.exit(main())
