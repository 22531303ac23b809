"""End-to-end latency of single tasks through the six stages (one task at a time).

    python bench/e2e_latency.py --tasks 30                 # against a running `sustainml up`
    python bench/e2e_latency.py --tasks 30 --in-process    # starts its own deployment on the broker
    python bench/e2e_latency.py --tasks 30 --embedded      # in-memory transport, no broker

Prints the median, p95 and max of submit -> result stored (client side), and of the broker hops
alone (first stage output -> last stage output, from the watch queue).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from sustainml.config import Settings
from sustainml.deployment import LocalDeployment, amqp_transports, memory_transports
from sustainml.messages import UserInput
from sustainml.orchestrator.client import Client, StageEvent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(client: Client, tasks: int) -> tuple[list[float], list[float]]:
    totals: list[float] = []
    hops: list[float] = []
    for i in range(tasks + 3):  # the first three warm up connections and caches
        events: list[StageEvent] = []
        ui = UserInput(
            problem_short_description=f"detect defects in photos of welded seams #{i}", modality="image"
        )
        start = time.perf_counter()
        task_id = client.submit(ui, watch=True)
        res = client.wait(task_id, 60, events.append)
        elapsed = time.perf_counter() - start
        assert res.state == "succeeded", res.error
        if i >= 3:
            totals.append(elapsed * 1e3)
            hops.append((events[-1].elapsed - events[0].elapsed) * 1e3)
    return totals, hops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=30)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--in-process", action="store_true")
    mode.add_argument("--embedded", action="store_true")
    args = ap.parse_args()
    settings = Settings.from_env()
    if args.in_process or args.embedded:
        settings = settings.with_overrides(namespace=f"bench-{uuid.uuid4().hex[:6]}")
        factory = memory_transports() if args.embedded else amqp_transports(settings)
        with LocalDeployment(settings, factory) as dep:
            totals, hops = run(dep.client(), args.tasks)
    else:
        with Client(settings) as client:
            totals, hops = run(client, args.tasks)
    where = "in-memory" if args.embedded else settings.broker_url.split("@")[-1]
    print(f"{args.tasks} tasks, one at a time, broker {where}")
    for name, values in (("submit -> result stored", totals), ("first -> last stage output", hops)):
        print(
            f"  {name:<28} median {statistics.median(values):7.1f} ms   "
            f"p95 {percentile(values, 0.95):7.1f} ms   max {max(values):7.1f} ms"
        )


if __name__ == "__main__":
    main()
