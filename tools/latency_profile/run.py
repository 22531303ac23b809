"""Where a single task's milliseconds go: part 1's deployment with every process traced.

    .venv/bin/python tools/latency_profile/run.py [--tasks 60]

Starts the orchestrator and six zero-cost stage processes (as ``sustainml bench`` part 1) with
``tools/latency_profile`` on ``PYTHONPATH``, so each process loads the tracer
(``sitecustomize.py``); runs single tasks one at a time through ``Client.submit(watch=True)`` +
``Client.wait``; then rebuilds each task's timeline from the traces and prints the median and p90
of every segment (submit RPC, hops, orchestrator backlog, result RPC). docs/performance.md shows
the output.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = (
    "ml_model_metadata",
    "app_requirements",
    "hw_constraints",
    "ml_model",
    "hw_resources",
    "carbon_footprint",
)

Row = tuple[float, float, str, str, str]  # start, end, pid, thread, event


def trace(tasks: int, directory: Path) -> list[tuple[float, float]]:
    os.environ["SUSTAINML_TRACE_DIR"] = str(directory)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    # This process is traced too (the client side): load the tracer from its file, whatever
    # sitecustomize the interpreter already imported at start-up.
    spec = importlib.util.spec_from_file_location("sustainml_latency_tracer", HERE / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    tracer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tracer)  # installs itself: SUSTAINML_TRACE_DIR is set
    from sustainml.bench.common import broker_url
    from sustainml.bench.ours import ProcessDeployment
    from sustainml.messages import UserInput
    from sustainml.orchestrator.client import Client

    marks: list[tuple[float, float]] = []
    with ProcessDeployment(broker_url()) as dep, Client(dep.settings) as client:
        for i in range(tasks + 5):
            start = time.time()
            ui = UserInput(problem_short_description=f"detect defects in photos #{i}", modality="image")
            client.wait(client.submit(ui, watch=True), 60)
            if i >= 5:
                marks.append((start, time.time()))
    tracer.flush()
    return marks


def load(directory: Path) -> list[Row]:
    rows: list[Row] = []
    for path in directory.glob("*.tsv"):
        for line in path.read_text().splitlines():
            start, end, pid, thread, event = line.split("\t")
            rows.append((float(start), float(end), pid, thread, event))
    rows.sort()
    return rows


def segments(rows: list[Row], marks: list[tuple[float, float]]) -> dict[str, list[float]]:
    seg: dict[str, list[float]] = defaultdict(list)
    for a, b in marks:
        window = [r for r in rows if a - 1e-4 <= r[0] <= b + 1e-4]

        def first(prefix: str, after: float, window: list[Row] = window) -> Row:
            for r in window:
                if r[0] >= after and r[4].startswith(prefix):
                    return r
            raise LookupError(prefix)

        def total(event: str, window: list[Row] = window) -> float:
            return sum(r[1] - r[0] for r in window if r[4] == event)

        submit = first("Client.submit", a)
        try:
            result = first("Client.result", a)
        except LookupError:  # a watched task's result is built from its events: no closing RPC
            result = (b, b, "", "", "none")
        seg["total submit -> result in hand"].append(b - a)
        seg["1 Client.submit (RPC)"].append(submit[1] - submit[0])
        delivered = first("deliver requests", a)
        seg["1a request delivered -> submissions thread"].append(
            first("Submissions.run", delivered[0])[0] - delivered[0]
        )
        for event, label in (
            ("TaskDB.submit_problems", "1b submit_problems (SQLite txn)"),
            ("Orchestrator._bind_watcher", "1c bind watch queue (sync channel op)"),
            ("TaskDB.set_state", "1d set_state running (SQLite txn)"),
            ("publish[P] UserInput", "1e UserInput persistent publish -> confirm (awaited)"),
        ):
            try:
                r = first(event, a)
            except LookupError:  # not on the path any more (direct watch, task created running)
                r = (0.0, 0.0, "", "", "")
            seg[label].append(r[1] - r[0])
        reply = first("publish[T] OrchestratorReply", a)
        seg["1f reply publish -> client receives"].append(first("deliver client-", reply[0])[0] - reply[0])
        previous = first("publish[P] UserInput", a)[0]
        broker = handoff = work = 0.0
        for stage in STAGES:
            delivery = first(f"deliver {stage} ", a)
            handler = first(f"handler {stage} ", delivery[0])
            out = next(
                r
                for r in window
                if r[0] >= handler[0] and r[4].startswith("publish[P]") and "UserInput" not in r[4]
            )
            broker += delivery[0] - previous
            handoff += handler[0] - delivery[0]
            work += out[0] - handler[0]
            previous = out[0]
        first_stage = first(f"deliver {STAGES[0]} ", a)[0]
        seg["2 first stage delivery -> last stage output published"].append(previous - first_stage)
        seg["2a broker: publish -> next stage delivery (x6, sum)"].append(broker)
        seg["2b I/O thread -> handler thread handoff (x6, sum)"].append(handoff)
        seg["2c handler: decode, status event, callback, encode (x6, sum)"].append(work)
        final = max(
            (
                r
                for r in window
                if r[4].startswith("deliver ") and "TaskEvent" in r[4] and previous < r[0] <= result[0]
            ),
            key=lambda r: r[0],
        )
        seg["3 last stage output -> final TaskEvent at client"].append(final[0] - previous)
        seg["3a Progress.on_progress (x5, sum)"].append(total("Progress.on_progress"))
        seg["3b OutcomeWriter._write (the outcome)"].append(total("OutcomeWriter._write"))
        seg["3c   of which TaskDB.store_outcomes"].append(total("TaskDB.store_outcomes"))
        seg["4 Client.result (RPC)"].append(result[1] - result[0])
        seg["x overlap: submit end - first stage delivery"].append(submit[1] - first_stage)
    return seg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=60)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sustainml-trace-") as tmp:
        marks = trace(args.tasks, Path(tmp))
        seg = segments(load(Path(tmp)), marks)
    print(f"{len(marks)} single tasks, load average {os.getloadavg()[0]:.1f}; median / p90 in ms")
    for name in sorted(seg):
        values = sorted(v * 1e3 for v in seg[name])
        print(f"{name:62s} {statistics.median(values):7.1f} {values[int(0.9 * (len(values) - 1))]:7.1f}")


if __name__ == "__main__":
    main()
