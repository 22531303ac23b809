#!/usr/bin/env python3
"""Submit a problem to a SustainML deployment and follow it, with nothing but pika and msgpack.

This script deliberately does not import ``sustainml``: it is the executable companion of
docs/wire-format.md and shows that any AMQP 0-9-1 client and any msgpack library are enough.

What it does (section numbers refer to docs/wire-format.md):

1. declares one private queue ``<ns>.watch.<id>`` (durable, ``x-expires``) that receives both the
   orchestrator's reply and the task's stage outputs;
2. publishes an ``op=submit`` request to ``<ns>.orchestrator.requests`` through the default
   exchange, with ``reply_to`` and ``correlation_id`` set and the ``watch_queue`` header naming
   the private queue, so the orchestrator binds it to the task's outputs before the task starts;
3. reads the reply (the task id the orchestrator assigned);
4. prints every stage output as it arrives, until CARBON_FOOTPRINT or an output carrying the
   ``x-sustainml-failed`` header.

Exit status: 0 when CARBON_FOOTPRINT arrived without a failure, 1 when the task failed at a stage,
2 when the request could not be made or answered in time (the message says why).

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

import msgpack  # type: ignore[import-untyped]  # msgpack ships no type stubs
import pika
import pika.exceptions

SCHEMA_VERSION = 1  # the body schema this script writes and fully understands
CONTENT_TYPE = "application/msgpack"
WATCH_QUEUE_EXPIRES_MS = 60_000  # the queue disappears one minute after this script stops using it

# Record kind (stage body "kind") -> node that produces it, in pipeline order (wire-format.md §3).
NODE_OF_KIND = {
    "ml_model_metadata": "ML_MODEL_METADATA",
    "app_requirements": "APP_REQUIREMENTS",
    "hw_constraints": "HW_CONSTRAINTS",
    "ml_model": "ML_MODEL",
    "hw_resources": "HW_RESOURCES",
    "carbon_footprint": "CARBON_FOOTPRINT",
}
FINAL_KIND = "carbon_footprint"
FAILED_HEADER = "x-sustainml-failed"

EXIT_OK, EXIT_TASK_FAILED, EXIT_NO_ANSWER = 0, 1, 2


class Failure(Exception):
    """The request could not be made or was not answered; the message says why."""


def user_input_record(description: str) -> dict[str, Any]:
    """A UserInput wire record (wire-format.md §6.5). Every field is written so the shape is
    visible; a sender may omit any of them (missing fields take their defaults)."""
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
        # extra_data is msgpack *bin* holding a msgpack map (b"" = nothing).
        "extra_data": msgpack.packb({"hardware_required": "PIM_AI_1chip"}, use_bin_type=True),
        "task_id": None,  # assigned by the orchestrator
    }


def jsonable(value: Any) -> Any:
    """A decoded msgpack value for printing: bytes shown by size (extra_data decoded by caller)."""
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def show_record(record: dict[str, Any]) -> dict[str, Any]:
    shown = dict(record)
    extra = shown.get("extra_data")
    if isinstance(extra, bytes):
        # extra_data is msgpack bytes of a map; decode it so the output is readable.
        shown["extra_data"] = msgpack.unpackb(extra, raw=False) if extra else {}
    shown.pop("task_id", None)  # printed separately
    return {k: jsonable(v) for k, v in shown.items()}


def task_key(task_id: Any) -> str:
    if not isinstance(task_id, dict) or "problem_id" not in task_id or "iteration_id" not in task_id:
        raise Failure(f"reply carries no usable task_id: {task_id!r}")
    return f"{task_id['problem_id']}.{task_id['iteration_id']}"


def handle_stage_output(
    props: pika.BasicProperties, body: bytes, expected_key: str, started: float
) -> int | None:
    """Print one stage output; return an exit status once the task is over, else None."""
    headers = props.headers or {}
    message = msgpack.unpackb(body, raw=False)
    version = message.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        # A newer schema may mean something this script cannot interpret: say so, keep going.
        print(f"warning: stage output with schema_version {version!r}; reading it as {SCHEMA_VERSION}",
              file=sys.stderr)
    kind = message.get("kind")
    key = task_key(message.get("task_id"))
    if key != expected_key:  # this queue is only bound to our task's routing key
        print(f"warning: ignoring output of task {key} (expected {expected_key})", file=sys.stderr)
        return None
    node = headers.get("stage") or NODE_OF_KIND.get(str(kind), str(kind))
    failed = headers.get(FAILED_HEADER)
    elapsed = time.monotonic() - started
    summary = json.dumps(show_record(message.get("record") or {}), sort_keys=True)
    print(f"[{elapsed:6.2f}s] {node} task {key} ({message.get('type')}): {summary}", flush=True)
    if failed:
        print(f"task {key} FAILED: {failed}", flush=True)
        return EXIT_TASK_FAILED
    if kind == FINAL_KIND:
        print(f"task {key} succeeded", flush=True)
        return EXIT_OK
    return None


def run(url: str, namespace: str, description: str, timeout: float) -> int:
    requests_queue = f"{namespace}.orchestrator.requests"
    watch_queue = f"{namespace}.watch.raw-{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    deadline = started + timeout

    params = pika.URLParameters(url)
    params.client_properties = {"connection_name": f"raw_pika_submit {watch_queue}"}
    try:
        connection = pika.BlockingConnection(params)
    except pika.exceptions.AMQPConnectionError as exc:
        raise Failure(f"cannot connect to the broker at {url}: {exc!r}") from exc
    try:
        channel = connection.channel()
        channel.confirm_delivery()  # basic_publish then raises if the broker refuses or returns it
        # Not exclusive: the orchestrator binds it from its own connection (an exclusive queue
        # would refuse that with RESOURCE_LOCKED). x-expires removes it if we crash.
        channel.queue_declare(
            watch_queue,
            durable=True,
            arguments={"x-queue-type": "classic", "x-expires": WATCH_QUEUE_EXPIRES_MS},
        )
        try:
            return submit_and_follow(channel, requests_queue, watch_queue, description, timeout, started, deadline)
        finally:
            if channel.is_open:
                channel.cancel()  # ends the consume() generator's consumer
                channel.queue_delete(watch_queue)
    finally:
        if connection.is_open:
            connection.close()


def submit_and_follow(
    channel: Any,
    requests_queue: str,
    watch_queue: str,
    description: str,
    timeout: float,
    started: float,
    deadline: float,
) -> int:
    correlation_id = uuid.uuid4().hex
    request = {"schema_version": SCHEMA_VERSION, "op": "submit", "user_input": user_input_record(description)}
    properties = pika.BasicProperties(
        content_type=CONTENT_TYPE,
        delivery_mode=1,  # a request is worth nothing after its caller gave up
        correlation_id=correlation_id,
        reply_to=watch_queue,
        expiration=str(max(1, int(timeout * 1000))),  # not executed late if nobody reads it in time
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
            f"queue {requests_queue!r} does not exist: is a deployment running in this namespace?"
        ) from None
    except pika.exceptions.NackError:
        raise Failure(f"the broker refused the request to {requests_queue!r}") from None

    key: str | None = None
    early: list[tuple[pika.BasicProperties, bytes]] = []  # outputs that beat the reply here
    for method, props, body in channel.consume(watch_queue, inactivity_timeout=0.25):
        if time.monotonic() > deadline:
            what = "the orchestrator's reply" if key is None else f"task {key} to finish"
            raise Failure(f"timed out after {timeout:g} s waiting for {what}")
        if method is None:  # inactivity tick
            continue
        channel.basic_ack(method.delivery_tag)
        if method.exchange == "" and props.correlation_id == correlation_id:
            reply = msgpack.unpackb(body, raw=False)
            if not reply.get("ok"):
                raise Failure(f"the orchestrator refused the submission: {reply.get('error')}")
            key = task_key(reply.get("task_id"))
            print(f"task_id: {key}", flush=True)
            for early_props, early_body in early:
                status = handle_stage_output(early_props, early_body, key, started)
                if status is not None:
                    return status
            early.clear()
        elif method.exchange == "":
            print(f"warning: ignoring a reply to another request ({props.correlation_id})", file=sys.stderr)
        elif key is None:
            # The first stage may publish before the orchestrator's reply reaches us.
            early.append((props, body))
        else:
            status = handle_stage_output(props, body, key, started)
            if status is not None:
                return status
    raise Failure("the broker cancelled the consumer of the watch queue")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F", help="AMQP URL of the broker")
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
