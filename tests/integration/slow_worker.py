"""A replica of HW_RESOURCES with a deliberately slow callback, run as a separate process by the
kill test. It is also a worked example of subclass-free user code: the node class plus a callback."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from sustainml.workers.logic import hw_resources
from sustainml.workers.nodes import HardwareResourcesNode

MARKER = Path(sys.argv[1])
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0


def slow_callback(
    ml_model: Any, app_requirements: Any, hw_constraints: Any, node_status: Any, hw: Any
) -> None:
    MARKER.write_text(hw.task_id.key)  # tells the test the task is in flight here
    time.sleep(SECONDS)
    hw_resources.task_callback(ml_model, app_requirements, hw_constraints, node_status, hw)


if __name__ == "__main__":
    HardwareResourcesNode(callback=slow_callback, service_callback=hw_resources.configuration_callback).spin()
