"""Throughput probe for AmqpTransport (not a test): N messages through one queue, consumed and acked.

    .venv/bin/python tools/transport_probe.py [--url amqp://...] [-n 5000] [--size 200]

Prints the confirmed-publish rate and the end-to-end rate (first publish to last ack). Messages go
through the default exchange (mandatory, confirmed) to a durable queue named ``probe-<uuid8>.work``,
deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid
from concurrent.futures import wait

from sustainml.transport.amqp import AmqpTransport
from sustainml.transport.base import Delivery, Message, QueueSpec

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("SUSTAINML_BROKER_URL", DEFAULT_URL))
    parser.add_argument("-n", type=int, default=5000, help="messages (default 5000)")
    parser.add_argument("--size", type=int, default=200, help="body bytes (default 200)")
    parser.add_argument("--prefetch", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1, help="handler threads")
    parser.add_argument("--transient", action="store_true", help="delivery_mode 1 instead of persistent")
    args = parser.parse_args()

    prefix = f"probe-{uuid.uuid4().hex[:8]}"
    queue = f"{prefix}.work"
    body = os.urandom(args.size)
    handled = 0
    lock = threading.Lock()
    all_handled = threading.Event()
    last_ack_at = 0.0

    def handler(d: Delivery) -> None:
        nonlocal handled, last_ack_at
        d.ack()
        with lock:
            handled += 1
            if handled == args.n:
                last_ack_at = time.perf_counter()
                all_handled.set()

    with AmqpTransport(args.url, name=f"sustainml-{prefix}") as transport:
        assert isinstance(transport, AmqpTransport)
        transport.declare_queue(QueueSpec(queue))
        try:
            transport.consume(queue, handler, prefetch=args.prefetch, concurrency=args.concurrency)
            started = time.perf_counter()
            futures = [
                transport.publish("", queue, Message(body, message_id=str(i), persistent=not args.transient))
                for i in range(args.n)
            ]
            _done, not_done = wait(futures, timeout=300)
            confirmed_at = time.perf_counter()
            failed = sum(1 for f in futures if f.done() and f.exception() is not None)
            if not all_handled.wait(300):
                raise SystemExit(f"only {handled} of {args.n} messages handled within 300 s")
            publish_rate = args.n / (confirmed_at - started)
            e2e_rate = args.n / (last_ack_at - started)
            mode = "transient" if args.transient else "persistent"
            print(
                f"{args.n} x {args.size} B {mode}, prefetch {args.prefetch}, "
                f"{args.concurrency} handler thread(s) on {transport.url}"
            )
            print(
                f"  publish+confirm: {publish_rate:8.0f} msg/s (unconfirmed {len(not_done)}, failed {failed})"
            )
            print(f"  end-to-end:      {e2e_rate:8.0f} msg/s  (first publish -> last ack)")
        finally:
            transport.delete_queue(queue)


if __name__ == "__main__":
    main()
