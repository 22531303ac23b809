"""Part 6: the shipped stage logic, on descriptions written by others, through the real pipeline.

The orchestrator and the six shipped workers (``sustainml worker NODE``, one replica each, default
settings) run as processes on the broker, as ``sustainml up`` starts them; the inputs are the task
encoder's held-out descriptions (competition titles, dataset cards, abstracts, tickets, chat
requests: ``logic.held_out_descriptions``, cycled when more tasks are asked for), so every stage
does its real work on varied text and the estimate memos see the models those texts lead to.
The deployment uses this machine's graph cache and encoder export (``warm_caches``); its workers
start without any estimate memoised.

- **single task end to end**: ``latency.measure`` over the descriptions, one at a time after
  warm-up tasks (the first tasks load the encoder and build graphs), submit -> stored result;
- **throughput**: ``tasks`` descriptions submitted through the public ``Client``'s
  ``submit_many`` (as part 1 submits); tasks/s = tasks / (first submit -> last terminal task event);
  CPU per task of every process over that run (utime + stime from /proc/<pid>/stat);
- **in process**: the six callbacks on the same descriptions without messaging
  (``logic.evaluate``): the median per task is what the logic itself costs.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from sustainml.bench import latency, logic
from sustainml.bench.common import BenchError, cpu_seconds
from sustainml.bench.ours import ProcessDeployment, follow
from sustainml.config import Settings
from sustainml.topology import PIPELINE


def descriptions(n: int, *, offset: int = 0) -> list[str]:
    """``n`` held-out descriptions from ``offset`` on, cycled."""
    texts = logic.held_out_descriptions()
    if not texts:
        raise BenchError("the encoder's held-out set of descriptions is empty")
    return [texts[(offset + i) % len(texts)] for i in range(n)]


def warm_caches() -> dict[str, str]:
    """The environment that points the deployment at this machine's graph cache and encoder export
    (content-addressed, shared safely), as a deployment that has run before finds them: the figures
    are the logic's, not the one-off building of each catalogue graph (~0.5 s a model) and training
    of the encoder (seconds) that a fresh data directory pays once."""
    from sustainml.config import environment_settings

    here = environment_settings()
    return {
        "SUSTAINML_CACHE_DIR": str(here.estimation.graph_cache_dir),
        "SUSTAINML_ENCODER_CACHE_DIR": str(here.encoder.cache_dir),
    }


def measure_throughput(settings: Settings, texts: Sequence[str], timeout: float = 600.0) -> tuple[float, int]:
    """``texts`` submitted by one ``submit_many``: (completed tasks/s, failed count)."""
    from sustainml.messages import UserInput

    measured = follow(settings, [UserInput(problem_short_description=t) for t in texts], timeout=timeout)
    return measured.tasks_per_s, measured.failed


def run(url: str, tasks: int, latency_tasks: int) -> dict[str, Any]:
    """The three figures of the shipped logic (see the module docstring)."""
    from sustainml.orchestrator.client import Client

    shipped = {stage.kind: 1 for stage in PIPELINE}
    with ProcessDeployment(url, shipped=shipped, bench_nodes=False, env=warm_caches()) as dep:
        with Client(dep.settings) as client:
            # Latency first, on the end of the set, so the throughput run starts on texts it has not seen.
            single = descriptions(latency_tasks + latency.WARMUP, offset=-(latency_tasks + latency.WARMUP))
            totals, _hops = latency.measure(client, latency_tasks, single)
        pids = {"orchestrator": dep.orchestrator_pid}
        pids.update({node: p[0] for node, p in dep.worker_pids.items()})
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        rate, failed = measure_throughput(dep.settings, descriptions(tasks))
        cpu_ms = {
            name: round((cpu_seconds(pid) - before[name]) * 1e3 / tasks, 2) for name, pid in pids.items()
        }
    in_process = logic.evaluate(descriptions(tasks))
    median_ms, p95_ms = in_process.total_ms()
    return {
        "tasks": tasks,
        "tasks_per_s": round(rate, 1),
        "failed": failed,
        "cpu_ms_per_task": cpu_ms,
        "latency_tasks": latency_tasks,
        "single_p50_ms": round(statistics.median(totals), 1),
        "single_p95_ms": round(latency.percentile(totals, 0.95), 1),
        "in_process_median_ms": round(median_ms, 2),
        "in_process_p95_ms": round(p95_ms, 2),
        "in_process_outcomes": in_process.to_json()["outcomes"],
    }
