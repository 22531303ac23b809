"""``sustainml dlq list|show|replay|purge`` against the real broker.

The story of the docs' walk-through: a worker whose callback crashes dead-letters its tasks after
its retries, next to a few malformed messages; an operator lists the DLQs, shows the messages
(nothing is lost by looking), fixes the bug, replays one task (it completes), sends others to a
side queue, and purges the rest.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sustainml.cli.dlq_client import H_REPLAYS
from sustainml.cli.main import cli
from sustainml.config import Settings
from sustainml.messages import TaskId, UserInput, decode_task
from sustainml.messages import headers as H
from sustainml.topology import Topology
from tests.security.nodes_support import (
    FIRST_STAGE,
    blocking_channel,
    describe_callback,
    get_all,
    output_queue,
    queue_count,
    running_node,
    signed_stage_properties,
    stage_properties,
    user_input_task,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@dataclass
class Scene:
    url: str
    settings: Settings
    topo: Topology
    stage_q: str
    dlq: str
    out_q: str
    fixed: threading.Event

    def dlq_cli(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(
            cli, ["--broker", self.url, "--namespace", self.settings.namespace, "dlq", *args], input=input
        )


def _flaky_callback(fixed: threading.Event) -> Any:
    def callback(user_input: UserInput, status: Any, output: Any) -> None:
        if not fixed.is_set():
            raise RuntimeError("model cache unavailable")  # a bug, not bad input: retried
        describe_callback(user_input, status, output)

    return callback


@pytest.fixture
def scene(amqp_url: str, settings: Settings) -> Iterator[Scene]:
    s = replace(settings, max_attempts=2, retry_backoff=0.05)
    topo = Topology.of(s)
    fixed = threading.Event()
    with (
        running_node(FIRST_STAGE, _flaky_callback(fixed), s),
        output_queue(amqp_url, s, FIRST_STAGE) as out_q,
    ):
        stage_q = topo.stage_queue(FIRST_STAGE)
        sc = Scene(amqp_url, s, topo, stage_q, topo.dead_letter_queue(stage_q), out_q, fixed)
        with blocking_channel(amqp_url) as ch:
            for p in (1, 2):
                body = user_input_task(p, f"detect defects number {p}")
                ch.basic_publish(
                    topo.record_exchange("user_input"),
                    f"{p}.1",
                    body,
                    signed_stage_properties(s, f"task-{p}", body),
                    mandatory=True,
                )
            for i, junk in enumerate([b"\xc1garbage", b"", b"\x93\x01\x02"]):
                ch.basic_publish(
                    topo.record_exchange("user_input"),
                    "9.1",
                    junk,
                    stage_properties(f"junk-{i}"),
                    mandatory=True,
                )
        wait_until(lambda: queue_count(amqp_url, sc.dlq) == 5, 60, "5 dead letters")
        yield sc


def test_list_show_replay_purge(scene: Scene) -> None:
    # list: counts per DLQ and the reasons, by class
    res = scene.dlq_cli("list", "--json")
    assert res.exit_code == 0, res.output
    listing = {d["queue"]: d for d in json.loads(res.output)}
    mine = listing[scene.dlq]
    assert mine["messages"] == 5 and mine["examined"] == 5 and mine["origin_queue"] == scene.stage_q
    assert mine["reasons"] == {
        "ML_MODEL_METADATA callback failed 2 times: RuntimeError": 2,
        "invalid message: body": 3,
    }
    others = [d for q, d in listing.items() if q != scene.dlq]
    assert len(others) == 7 and all(d["messages"] == 0 for d in others)
    text = scene.dlq_cli("list")
    assert text.exit_code == 0 and scene.dlq in text.output and "callback failed" in text.output

    # show: reason, origin, attempts, decoded body; nothing removed
    res = scene.dlq_cli("show", "ml_model_metadata", "--json", "-n", "10")
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)
    assert shown["messages"] == 5
    letters = {d["ref"]: d for d in shown["shown"]}
    assert set(letters) == {"task-1", "task-2", "junk-0", "junk-1", "junk-2"}
    t1 = letters["task-1"]
    assert t1["attempts"] == 2
    assert t1["last_error"] == "RuntimeError: model cache unavailable"
    assert t1["reason"].startswith("ML_MODEL_METADATA callback failed 2 times")
    assert t1["origin_queue"] == scene.stage_q
    assert t1["body_summary"].startswith("UserInput of task 1.1")
    assert letters["junk-1"]["reason"].startswith("invalid message: body:")
    assert letters["junk-1"]["body_summary"].startswith("undecodable")
    assert queue_count(scene.url, scene.dlq) == 5  # looking lost nothing
    human = scene.dlq_cli("show", "ml_model_metadata", "--headers")
    assert human.exit_code == 0
    assert "ref task-1" in human.output and "attempts     2" in human.output
    assert H.H_DEAD_REASON in human.output

    # replay one task after the fix: it goes back to its stage queue and completes
    scene.fixed.set()
    res = scene.dlq_cli("replay", "ml_model_metadata", "task-1")
    assert res.exit_code == 0, res.output
    assert "replayed 1 message(s)" in res.output
    # Out of attempts, each task also produced a failed output (so the orchestrator knew); the
    # replay adds the successful one.
    wait_until(lambda: queue_count(scene.url, scene.out_q) >= 3, 30, "the replayed task's output")
    outputs = get_all(scene.url, scene.out_q)
    failed = sorted(decode_task(b).task_id.key for p, b in outputs if H.H_FAILED in (p.headers or {}))
    good = [decode_task(b) for p, b in outputs if H.H_FAILED not in (p.headers or {})]
    assert failed == ["1.1", "2.1"]
    assert [e.task_id for e in good] == [TaskId(problem_id=1, iteration_id=1)]
    assert good[0].record.keywords[:2] == ["detect", "defects"]  # type: ignore[attr-defined]
    assert queue_count(scene.url, scene.dlq) == 4

    # unknown refs are reported, nothing is touched
    res = scene.dlq_cli("replay", "ml_model_metadata", "no-such-ref")
    assert res.exit_code == 1 and "not found: no-such-ref" in res.output
    assert queue_count(scene.url, scene.dlq) == 4


def test_replay_to_another_queue_strips_death_headers(scene: Scene) -> None:
    side = f"{scene.settings.namespace}.side"
    with blocking_channel(scene.url) as ch:
        ch.queue_declare(side, arguments={"x-expires": 120_000})
    try:
        res = scene.dlq_cli("replay", "ml_model_metadata", "junk-0", "junk-2", "--to-queue", side, "--json")
        assert res.exit_code == 0, res.output
        assert sorted(json.loads(res.output)["replayed"]) == ["junk-0", "junk-2"]
        copies = get_all(scene.url, side)
        assert sorted(p.message_id or "" for p, _ in copies) == ["junk-0", "junk-2"]
        for props, _body in copies:
            headers = props.headers or {}
            assert headers[H_REPLAYS] == 1
            assert H.H_DEAD_REASON not in headers and "x-sustainml-attempts" not in headers
            assert props.delivery_mode == 2
        assert {b for _, b in copies} == {b"\xc1garbage", b"\x93\x01\x02"}  # bodies unchanged
        assert queue_count(scene.url, scene.dlq) == 3
    finally:
        with blocking_channel(scene.url) as ch:
            ch.queue_delete(side)


def test_unroutable_replay_keeps_the_message(scene: Scene) -> None:
    # Nothing bound any more where the message came from: the copy is returned, not confirmed
    # as routed, so the dead letter must stay.
    with blocking_channel(scene.url) as ch:
        ch.queue_unbind(scene.stage_q, scene.topo.record_exchange("user_input"), "#")
    # (junk-0 was dead-lettered straight from its first delivery, so its recorded origin is the
    # user_input exchange; a retried task's last hop came from its delay queue instead.)
    res = scene.dlq_cli("replay", "ml_model_metadata", "junk-0", "--via-exchange")
    assert res.exit_code == 1
    assert "kept junk-0: unroutable" in res.output
    assert queue_count(scene.url, scene.dlq) == 5
    res = scene.dlq_cli("show", "ml_model_metadata", "--json")
    assert "junk-0" in {d["ref"] for d in json.loads(res.output)["shown"]}


def test_purge_asks_first(scene: Scene) -> None:
    res = scene.dlq_cli("purge", "ml_model_metadata", input="n\n")
    assert res.exit_code != 0 and "not purged" in res.output
    assert queue_count(scene.url, scene.dlq) == 5
    res = scene.dlq_cli("purge", scene.dlq, "--yes")
    assert res.exit_code == 0 and "purged 5 message(s)" in res.output
    assert queue_count(scene.url, scene.dlq) == 0
    res = scene.dlq_cli("purge", "ml_model_metadata", "--yes")
    assert res.exit_code == 0 and "nothing to purge" in res.output


def test_unknown_queue_is_explained(scene: Scene) -> None:
    res = scene.dlq_cli("show", "no_such_stage")
    assert res.exit_code == 1
    assert "unknown dead-letter queue 'no_such_stage'" in res.output
    assert "ml_model_metadata" in res.output
