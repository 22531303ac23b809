"""`sustainml bench latency`: end-to-end latency of single tasks through the six stages, one task
at a time.

    sustainml bench latency --tasks 30                 # against a running `sustainml up`
    sustainml bench latency --tasks 30 --in-process    # starts its own deployment on the broker
    sustainml bench latency --tasks 30 --embedded      # in-memory transport, no broker

Prints the median, p95 and max of submit -> result stored (client side), and of the broker hops
alone (first stage output -> last stage output, from the watch queue).
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Sequence

from sustainml.bench.common import BenchError
from sustainml.config import Settings
from sustainml.deployment import LocalDeployment, amqp_transports, memory_transports
from sustainml.messages import UserInput
from sustainml.orchestrator.client import Client, StageEvent

#: The first tasks warm up connections and caches; they are run but not counted.
WARMUP = 3


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(client: Client, tasks: int, descriptions: Sequence[str] = ()) -> tuple[list[float], list[float]]:
    """Milliseconds per task: (submit -> result stored, first -> last stage output). The tasks
    describe ``descriptions`` in turn (the warm-up tasks first), else the same image problem."""
    totals: list[float] = []
    hops: list[float] = []
    for i in range(tasks + WARMUP):
        events: list[StageEvent] = []
        if descriptions:
            ui = UserInput(problem_short_description=descriptions[i % len(descriptions)])
        else:
            ui = UserInput(
                problem_short_description=f"detect defects in photos of welded seams #{i}", modality="image"
            )
        start = time.perf_counter()
        task_id = client.submit(ui, watch=True)
        res = client.wait(task_id, 60, events.append)
        elapsed = time.perf_counter() - start
        if res.state != "succeeded":
            raise BenchError(f"task {task_id} {res.state}: {res.error}")
        if i >= WARMUP:
            totals.append(elapsed * 1e3)
            if events:  # under load a stage event can reach the watcher after the result: no hop figure
                hops.append((events[-1].elapsed - events[0].elapsed) * 1e3)
    return totals, hops


def run(settings: Settings, tasks: int, *, in_process: bool = False, embedded: bool = False) -> str:
    """Measure ``tasks`` single tasks and return the report's lines."""
    if in_process or embedded:
        settings = settings.with_overrides(namespace=f"bench-{uuid.uuid4().hex[:6]}")
        factory = memory_transports() if embedded else amqp_transports(settings)
        with LocalDeployment(settings, factory) as dep:
            totals, hops = measure(dep.client(), tasks)
    else:
        with Client(settings) as client:
            totals, hops = measure(client, tasks)
    where = "in-memory" if embedded else settings.broker_url.split("@")[-1]
    lines = [f"{tasks} tasks, one at a time, broker {where}"]
    for name, values in (("submit -> result stored", totals), ("first -> last stage output", hops)):
        if not values:
            lines.append(f"  {name:<28} not measured (no stage events reached the watcher)")
            continue
        lines.append(
            f"  {name:<28} median {statistics.median(values):7.1f} ms   "
            f"p95 {percentile(values, 0.95):7.1f} ms   max {max(values):7.1f} ms"
        )
    return "\n".join(lines)
