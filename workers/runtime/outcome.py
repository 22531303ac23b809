"""What becomes of a stage input once its callback has run: a pure decision, no transport.

- the callback returned: ``ACK`` (the output is published, the input acked once the output is
  confirmed); a callback that marked the task failed in ``node_status`` gets a failed output;
- it raised ``ValueError`` (bad input it rejected, including a ``MessageError`` on a field it set):
  ``ACK`` with a failed output, never retried, since the same input would fail the same way;
- it raised anything else (possibly transient): ``RETRY`` through the stage's delay queue while
  attempts are left, then ``DEAD_LETTER``: a failed output tells the pipeline and the input goes
  to the stage's DLQ with ``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sustainml.messages import NodeStatus, Status, TaskStatus


class Action(Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead-letter"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The decision for one attempt. ``error`` is what the failed output carries (empty when the
    task succeeded); for ``RETRY`` it is why the attempt failed."""

    action: Action
    error: str = ""
    by: str = ""  # the node, named in the dead-letter reason
    attempt: int = 1

    @property
    def failed(self) -> bool:
        return bool(self.error)

    @property
    def crashed(self) -> bool:
        """The callback raised something other than a rejection: a bug or an outage."""
        return self.action is not Action.ACK

    @property
    def reason(self) -> str:
        """Why the input is dead-lettered (``DEAD_LETTER`` only, else empty)."""
        if self.action is not Action.DEAD_LETTER:
            return ""
        return f"{self.by} callback failed {self.attempt} times: {self.error}"


def decide(
    node_name: str,
    failure: Exception | None,
    node_status: NodeStatus,
    attempt: int,
    max_attempts: int,
) -> Outcome:
    """The outcome of attempt ``attempt`` (1-based) whose callback raised ``failure`` (None when it
    returned) and left ``node_status`` as it was when it finished."""
    if failure is None:
        if node_status.node_status == Status.ERROR or node_status.task_status == TaskStatus.ERROR:
            error = node_status.error_description or f"{node_name} marked the task as failed"
            return Outcome(Action.ACK, error, node_name, attempt)
        return Outcome(Action.ACK, "", node_name, attempt)
    error = f"{type(failure).__name__}: {failure}"
    if isinstance(failure, ValueError):
        return Outcome(Action.ACK, error, node_name, attempt)
    if attempt < max_attempts:
        return Outcome(Action.RETRY, error, node_name, attempt)
    return Outcome(Action.DEAD_LETTER, f"{error} (failed {attempt} attempts)", node_name, attempt)
