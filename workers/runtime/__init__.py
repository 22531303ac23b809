"""The node runtime: what every stage worker does around its user callback.

A ``Node`` consumes its stage queue (bound to the exchange of the stage before it), hands the
callback exactly the typed inputs the original framework gave it, publishes the filled output to
its own exchange with routing key ``<problem_id>.<iteration_id>`` and acknowledges the input only
after that publish is confirmed (a crash in between yields a redelivery, never a loss). The ack is
sent from the publisher-confirm callback: a handler thread moves on to the next task as soon as its
output is published, so a replica's throughput is not bound by the confirm round trip. Around it:

- status (``status``): INITIALIZING on start, IDLE when ready, RUNNING then IDLE/ERROR around each
  task, a NodeStatus heartbeat on the fanout status exchange every ``heartbeat_interval`` seconds,
  TERMINATING on shutdown;
- configuration requests (RPC) on the node type's config queue, answered by ``service_callback``,
  and NodeControl commands on the control exchange (pause/resume, reset, terminate, cancel a
  task) (``control``);
- bad input (undecodable, invalid, missing context) is dead-lettered with the reason in a header
  (``intake``); a callback's failure is retried or final as ``outcome`` decides.

Subclass it (or use the six classes in ``sustainml.workers.nodes``) exactly like the original:
``HardwareConstraintsNode(callback=task_callback, service_callback=configuration_callback).spin()``.
"""

from __future__ import annotations

from .control import CANCELLED_TASKS_REMEMBERED
from .node import (
    ABANDONED_START_WAIT,
    PUBLISH_CONFIRM_TIMEOUT,
    SHUTDOWN_TIMEOUT,
    Node,
    ServiceCallback,
    TaskCallback,
)
from .outcome import Action, Outcome, decide
from .status import StatusEvent

__all__ = [
    "ABANDONED_START_WAIT",
    "CANCELLED_TASKS_REMEMBERED",
    "PUBLISH_CONFIRM_TIMEOUT",
    "SHUTDOWN_TIMEOUT",
    "Action",
    "Node",
    "Outcome",
    "ServiceCallback",
    "StatusEvent",
    "TaskCallback",
    "decide",
]
