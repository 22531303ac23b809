"""The runtime's retry/outcome decision, on its own: what becomes of a stage input once its
callback has returned or raised, for each attempt (no broker, no transport)."""

from __future__ import annotations

import pytest

from sustainml.messages import MessageError, NodeStatus, Status, TaskStatus
from sustainml.workers.runtime import Action, decide

NODE = "HW_RESOURCES"
MAX_ATTEMPTS = 3


def _running() -> NodeStatus:
    return NodeStatus(node_status=Status.RUNNING, task_status=TaskStatus.RUNNING, node_name=NODE)


def test_a_callback_that_returns_is_acked_without_error() -> None:
    outcome = decide(NODE, None, _running(), 1, MAX_ATTEMPTS)
    assert outcome.action is Action.ACK
    assert (outcome.error, outcome.failed, outcome.crashed, outcome.reason) == ("", False, False, "")


@pytest.mark.parametrize(
    ("node_status", "task_status"),
    [(Status.ERROR, TaskStatus.RUNNING), (Status.RUNNING, TaskStatus.ERROR)],
)
def test_a_task_marked_failed_is_acked_with_its_description(
    node_status: Status, task_status: TaskStatus
) -> None:
    marked = NodeStatus(node_status=node_status, task_status=task_status, error_description="no device fits")
    outcome = decide(NODE, None, marked, 1, MAX_ATTEMPTS)
    assert outcome.action is Action.ACK
    assert outcome.error == "no device fits"
    assert outcome.failed and not outcome.crashed


def test_a_task_marked_failed_without_a_description_names_the_node() -> None:
    marked = NodeStatus(node_status=Status.ERROR, task_status=TaskStatus.ERROR)
    outcome = decide(NODE, None, marked, 2, MAX_ATTEMPTS)
    assert (outcome.action, outcome.error) == (Action.ACK, f"{NODE} marked the task as failed")


@pytest.mark.parametrize("attempt", [1, MAX_ATTEMPTS])
@pytest.mark.parametrize(
    "failure", [ValueError("latency must be positive"), MessageError("hw.latency", "must be positive")]
)
def test_a_rejection_is_final_on_any_attempt(failure: ValueError, attempt: int) -> None:
    outcome = decide(NODE, failure, _running(), attempt, MAX_ATTEMPTS)
    assert outcome.action is Action.ACK  # the same input would fail the same way: never retried
    assert outcome.error == f"{type(failure).__name__}: {failure}"
    assert not outcome.crashed and outcome.reason == ""


def test_a_crash_is_retried_while_attempts_are_left() -> None:
    for attempt in range(1, MAX_ATTEMPTS):
        outcome = decide(NODE, RuntimeError("broker hiccup"), _running(), attempt, MAX_ATTEMPTS)
        assert outcome.action is Action.RETRY
        assert outcome.error == "RuntimeError: broker hiccup"
        assert outcome.attempt == attempt and outcome.crashed and outcome.reason == ""


def test_the_last_crash_is_dead_lettered_with_the_reason() -> None:
    outcome = decide(NODE, KeyError("gpu"), _running(), MAX_ATTEMPTS, MAX_ATTEMPTS)
    assert outcome.action is Action.DEAD_LETTER
    assert outcome.error == f"KeyError: 'gpu' (failed {MAX_ATTEMPTS} attempts)"
    assert outcome.reason == f"{NODE} callback failed {MAX_ATTEMPTS} times: {outcome.error}"


def test_a_crash_past_the_attempt_limit_is_not_retried() -> None:
    # A copy redelivered after the limit was lowered (or a forged attempts header) still ends.
    outcome = decide(NODE, OSError("disk"), _running(), MAX_ATTEMPTS + 2, MAX_ATTEMPTS)
    assert outcome.action is Action.DEAD_LETTER


def test_the_node_status_is_ignored_when_the_callback_raised() -> None:
    marked = NodeStatus(node_status=Status.ERROR, task_status=TaskStatus.ERROR, error_description="half done")
    outcome = decide(NODE, RuntimeError("boom"), marked, 1, MAX_ATTEMPTS)
    assert (outcome.action, outcome.error) == (Action.RETRY, "RuntimeError: boom")


def test_a_single_attempt_policy_dead_letters_the_first_crash() -> None:
    outcome = decide(NODE, RuntimeError("boom"), _running(), 1, 1)
    assert outcome.action is Action.DEAD_LETTER
    assert outcome.reason == f"{NODE} callback failed 1 times: RuntimeError: boom (failed 1 attempts)"
