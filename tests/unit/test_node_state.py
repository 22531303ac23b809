"""A replica's reported state and its cancelled-task memory, without a transport: what the status
messages say around tasks, pauses, failures and resets."""

from __future__ import annotations

from sustainml.messages import Status, TaskId
from sustainml.workers.runtime.control import CancelledTasks
from sustainml.workers.runtime.status import NodeState


def _tid(n: int) -> TaskId:
    return TaskId(problem_id=n, iteration_id=1)


def test_a_task_runs_then_leaves_the_replica_idle_and_counted() -> None:
    state = NodeState()
    state.set(Status.IDLE)
    state.begin(_tid(1), 0.0)
    assert state.snapshot() == (Status.RUNNING, _tid(1), "", 1, 0)
    assert state.done(_tid(1), "") == (Status.IDLE, 0, 1)
    assert state.snapshot() == (Status.IDLE, None, "", 0, 1)


def test_a_failed_task_leaves_error_until_a_reset() -> None:
    state = NodeState()
    state.begin(_tid(1), 0.0)
    assert state.done(_tid(1), "boom") == (Status.ERROR, 0, 1)
    state.refresh()  # a heartbeat does not hide the failure
    assert state.snapshot()[0] is Status.ERROR and state.snapshot()[2] == "boom"
    state.reset()
    assert state.snapshot() == (Status.IDLE, None, "", 0, 1)


def test_a_failure_while_another_task_runs_reports_running() -> None:
    state = NodeState()
    state.begin(_tid(1), 0.0)
    state.begin(_tid(2), 0.0)
    assert state.done(_tid(1), "boom") == (Status.ERROR, 1, 1)
    assert state.snapshot()[:2] == (Status.RUNNING, _tid(2))


def test_a_retried_attempt_is_not_counted_as_processed() -> None:
    state = NodeState()
    state.begin(_tid(1), 0.0)
    state.attempt_failed(_tid(1), "RuntimeError: flaky")
    assert state.snapshot() == (Status.IDLE, None, "RuntimeError: flaky", 0, 0)


def test_a_paused_replica_stays_inactive_until_resumed() -> None:
    state = NodeState()
    state.set(Status.IDLE)
    state.begin(_tid(1), 0.0)
    assert state.pause() and not state.pause()  # a second pause is a no-op
    assert state.done(_tid(1), "") == (Status.IDLE, 0, 1)  # the task's own event says how it ended
    assert state.snapshot()[0] is Status.INACTIVE  # the replica's status stays paused
    state.begin(_tid(2), 0.0)  # a task delivered before the pause still runs
    state.refresh()
    assert state.snapshot()[0] is Status.INACTIVE
    assert state.resume() and not state.resume()
    assert state.snapshot()[0] is Status.IDLE
    state.refresh()
    assert state.snapshot()[0] is Status.RUNNING


def test_terminating_survives_heartbeats() -> None:
    state = NodeState()
    state.set(Status.TERMINATING)
    state.refresh()
    assert state.snapshot()[0] is Status.TERMINATING


def test_cancelled_tasks_forget_the_oldest_beyond_their_bound() -> None:
    cancelled = CancelledTasks(remembered=3)
    for n in range(1, 5):
        cancelled.add(_tid(n))
    assert _tid(1) not in cancelled
    assert all(_tid(n) in cancelled for n in (2, 3, 4))
    cancelled.discard(_tid(3))
    assert _tid(3) not in cancelled and _tid(4) in cancelled
    cancelled.clear()
    assert _tid(4) not in cancelled
