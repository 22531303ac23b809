"""One replica of a pipeline node with a near-zero-cost callback, run as a separate process by
the fault tests (so it can be SIGKILLed). ``python noop_worker.py NODE [SECONDS]``: the callback
sleeps SECONDS (default 0.05) so that tasks are really in flight when the process dies, and leaves
the output record empty (later stages do not need its content). Settings come from SUSTAINML_*.

With ``SML_FAULTS_MARKERS=<dir>``, a running callback holds a file ``<dir>/<pid>-<task>`` (created
on entry, removed on return), so a test can see exactly which tasks a process has in flight."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from sustainml.topology import resolve_stage
from sustainml.workers.nodes import NODE_CLASSES

SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05
MARKERS = os.environ.get("SML_FAULTS_MARKERS")


def noop(*args: Any) -> None:
    if not MARKERS:
        time.sleep(SECONDS)
        return
    marker = Path(MARKERS) / f"{os.getpid()}-{args[-1].task_id.key}"
    marker.touch()
    try:
        time.sleep(SECONDS)
    finally:
        marker.unlink(missing_ok=True)


if __name__ == "__main__":
    NODE_CLASSES[resolve_stage(sys.argv[1]).node](callback=noop).spin()
