"""``submit_many`` on the in-memory transport, remote (``Client``: pipelined ``submit`` requests,
replies matched by correlation id) and in process (``Orchestrator``): outcomes in input order, a
refused input among good ones, a lost reply sent again with the same key creating one task."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sustainml.config import Settings
from sustainml.deployment import LocalDeployment, memory_transports
from sustainml.messages import TaskId, UserInput
from sustainml.orchestrator.client import OrchestratorError, SubmissionsUnanswered
from sustainml.orchestrator.service import SubmitRefused
from sustainml.rpc import RpcClient
from sustainml.topology import PIPELINE
from sustainml.transport.base import Delivery


def _noop(*_args: Any) -> None:
    return None


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[LocalDeployment]:
    """Orchestrator and six no-op stages on one in-memory broker; short RPC timeout, so a lost
    reply is sent again soon."""
    settings = Settings(
        namespace=f"t-{uuid.uuid4().hex[:8]}", data_dir=tmp_path, rpc_timeout=0.5, submit_timeout=30.0
    )
    dep = LocalDeployment(settings, memory_transports(), callbacks={s.node: _noop for s in PIPELINE})
    with dep:
        yield dep


def _problem(i: int, **extra: Any) -> UserInput:
    ui = UserInput(problem_short_description=f"count cars in parking photos #{i}", modality="image")
    if extra:
        ui.set_extra(extra)
    return ui


def _description(dep: LocalDeployment, task_id: TaskId) -> str:
    assert dep.orchestrator is not None
    user_input = dep.orchestrator.result(task_id).user_input
    assert user_input is not None
    return user_input.problem_short_description


def test_outcomes_come_back_in_input_order_through_a_small_window(deployment: LocalDeployment) -> None:
    client = deployment.client()
    outcomes = client.submit_many([_problem(i) for i in range(30)], window=4)
    assert all(isinstance(o, TaskId) for o in outcomes)
    ids = [o for o in outcomes if isinstance(o, TaskId)]
    assert len(set(ids)) == 30
    expected = [_problem(i).problem_short_description for i in range(30)]
    assert [_description(deployment, t) for t in ids] == expected


def test_a_refused_input_names_its_field_and_the_others_are_submitted(deployment: LocalDeployment) -> None:
    client = deployment.client()
    inputs = [_problem(0), _problem(1, num_outputs=99), _problem(2)]
    first, refused, last = client.submit_many(inputs)
    assert isinstance(refused, SubmitRefused)
    assert refused.error.startswith("extra_data.num_outputs: at most 10")
    assert isinstance(first, TaskId) and isinstance(last, TaskId)
    assert _description(deployment, last) == inputs[2].problem_short_description
    with pytest.raises(OrchestratorError, match=r"extra_data\.num_outputs"):
        client.submit(inputs[1])  # submit is the one-input case: its refusal raises


def test_watched_submissions_are_followed_to_their_end(deployment: LocalDeployment) -> None:
    client = deployment.client()
    outcomes = client.submit_many([_problem(i) for i in range(5)], watch=True)
    ids = [o for o in outcomes if isinstance(o, TaskId)]
    results = client.wait_many(ids, 30)
    assert [results[t].state for t in ids] == ["succeeded"] * 5


def test_a_lost_reply_is_sent_again_with_its_key_and_creates_one_task(
    deployment: LocalDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first reply the client's reply queue receives is dropped (as if lost with a connection):
    that request times out, is sent again with the same idempotency key, and the orchestrator
    answers with the task the key created."""
    receive = RpcClient._on_reply
    dropped: list[str] = []
    lock = threading.Lock()

    def lose_first_reply(self: RpcClient, delivery: Delivery) -> None:
        with lock:
            lose = not dropped
            if lose:
                dropped.append(delivery.message.correlation_id or "")
        if lose:
            delivery.ack()
            return
        receive(self, delivery)

    monkeypatch.setattr(RpcClient, "_on_reply", lose_first_reply)
    client = deployment.client()  # its reply consumer is the patched one
    keys = [f"test-{i}-{uuid.uuid4().hex}" for i in range(3)]
    outcomes = client.submit_many([_problem(i) for i in range(3)], idempotency_keys=keys)
    assert len(dropped) == 1
    assert all(isinstance(o, TaskId) for o in outcomes) and len(set(outcomes)) == 3
    assert deployment.orchestrator is not None
    assert len(deployment.orchestrator.tasks(limit=100)) == 3  # the resent request created nothing
    again = client.submit_many([_problem(i) for i in range(3)], idempotency_keys=keys)
    assert again == outcomes  # the same keys name the same tasks


def test_no_answer_at_all_raises_with_what_was_answered(tmp_path: Path) -> None:
    """Without an orchestrator nobody answers: after the submit timeout the error says so."""
    settings = Settings(
        namespace=f"t-{uuid.uuid4().hex[:8]}", data_dir=tmp_path, rpc_timeout=0.2, submit_timeout=0.5
    )
    with LocalDeployment(settings, memory_transports(), with_orchestrator=False) as dep:
        client = dep.client()
        with pytest.raises(SubmissionsUnanswered, match="did not answer") as caught:
            client.submit_many([_problem(0), _problem(1)])
    assert caught.value.outcomes == [None, None]


def test_the_orchestrator_in_process_submits_many_the_same_way(deployment: LocalDeployment) -> None:
    orch = deployment.orchestrator
    assert orch is not None
    outcomes = orch.submit_many([_problem(0), _problem(1, num_outputs=99), _problem(2)])
    assert isinstance(outcomes[0], TaskId) and isinstance(outcomes[2], TaskId)
    assert isinstance(outcomes[1], SubmitRefused) and "extra_data.num_outputs" in str(outcomes[1])
    assert _description(deployment, outcomes[2]) == _problem(2).problem_short_description
    with pytest.raises(ValueError, match="idempotency_keys"):
        deployment.client().submit_many([_problem(0)], idempotency_keys=[])
