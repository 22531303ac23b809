"""What every benchmark part shares: figures, percentiles, payload sizes, child processes, names.

Every system is measured the same way:

- **latency**: ``latency_tasks`` tasks one at a time (submit, wait for the final result, next),
  after a few warm-up tasks; p50/p95/p99 of submit -> final result in the submitter's hands;
- **throughput**: ``tasks`` tasks submitted as fast as the system accepts them, completion rate
  = tasks / (first submit -> last completion seen by the submitter).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
WARMUP_TASKS = 5


class BenchError(RuntimeError):
    """A benchmark part could not run (the message says why)."""


class Unavailable(BenchError):
    """A part needs something that is not installed (e.g. Celery): reported, not fatal."""


@dataclass
class SystemResult:
    """The figures of one system (one row of the main table)."""

    name: str
    setup: str
    tasks: int = 0
    throughput: float = math.nan  # tasks/s
    latency_tasks: int = 0
    p50_ms: float = math.nan
    p95_ms: float = math.nan
    p99_ms: float = math.nan
    failed: int = 0
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def set_latencies(self, samples_s: Sequence[float]) -> None:
        ms = [s * 1e3 for s in samples_s]
        self.latency_tasks = len(ms)
        self.p50_ms = percentile(ms, 0.50)
        self.p95_ms = percentile(ms, 0.95)
        self.p99_ms = percentile(ms, 0.99)

    def to_json(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()
        }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(len(ordered), rank) - 1]


def payload_sizes() -> list[int]:
    """Encoded body sizes of our messages on the six hops with zero-cost callbacks: index 0 is the
    UserInput the orchestrator publishes, index i the output of stage i (the envelope grows as it
    carries every record produced so far). The other systems send payloads of these sizes."""
    from sustainml.messages import RECORD_TYPES, TaskEnvelope, TaskId, UserInput, encode_task
    from sustainml.messages.kinds import BASELINE_KINDS, USER_INPUT
    from sustainml.topology import PIPELINE

    tid = TaskId(problem_id=1, iteration_id=1)
    ui = UserInput(
        problem_short_description="detect defects in photos of welded seams #1", modality="image", task_id=tid
    )
    env = TaskEnvelope(
        kind=USER_INPUT,
        task_id=tid,
        record=ui,
        context={},
        baselines={k: RECORD_TYPES[k](task_id=tid) for k in BASELINE_KINDS},
    )
    sizes = [len(encode_task(env))]
    for stage in PIPELINE:
        env = env.next(stage.kind, RECORD_TYPES[stage.kind](task_id=tid))
        sizes.append(len(encode_task(env)))
    return sizes


def unique_name(prefix: str = "bench") -> str:
    """A namespace no other run (or test) uses: letters, digits and '-' only."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def broker_url() -> str:
    return os.environ.get("SUSTAINML_BROKER_URL") or DEFAULT_URL


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` until it holds; ``BenchError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Children:
    """Child processes of one benchmark part; all stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [sys.executable, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.procs:
            code = proc.poll()
            if code is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise BenchError(f"child {name} exited with {code}:\n{tail}")

    def stop(self, grace: float = 15.0) -> None:
        for _name, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _name, proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: ours plus ``extra``; the package must import the same way."""
    env = dict(os.environ)
    env.update(extra)
    return env


def vm_rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (``VmRSS`` of /proc/<pid>/status)."""
    return _proc_status_kb(pid, "VmRSS") / 1024.0


def vm_hwm_mb(pid: int) -> float:
    """Peak resident set size of ``pid`` in MB (``VmHWM``)."""
    return _proc_status_kb(pid, "VmHWM") / 1024.0


def _proc_status_kb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return float(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {key}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far (/proc/<pid>/stat), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": field 3 onwards
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")
