"""Every attack of the threat table of docs/security.md, replayed against a running deployment.

One deployment per module on the shared broker (its own namespace, deleted afterwards): the
orchestrator, the six shipped workers and the HTTP API, all logged in as the broker's shared
development account, as `sustainml up` runs. The attacker is anyone else who can log in to the
broker (plain pika, the same account) or any web page the user's browser opens (plain HTTP
requests carrying the headers a browser would send). Each test shows the attack refused, the
refusal explained (a dead letter with its reason, or an HTTP error naming the rule) and nothing
stored or changed. The same attacks under per-role broker accounts: test_attacks_roles.py.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pika
import pytest
from click.testing import CliRunner

from sustainml.api import ApiServer
from sustainml.api.events import SUBSCRIBER_QUEUE, EventHub, HubEvent
from sustainml.attribution import Attribution
from sustainml.cli.dlq_client import DlqClient
from sustainml.cli.main import cli
from sustainml.config import ConfigError, Settings
from sustainml.deployment import LocalDeployment, amqp_transports
from sustainml.messages import (
    SCHEMA_VERSION,
    CmdNode,
    CmdTask,
    CO2Footprint,
    HWResource,
    NodeControl,
    RequestType,
    TaskEnvelope,
    TaskId,
    UserInput,
    encode,
    encode_task,
    to_wire,
)
from sustainml.messages import headers as H
from sustainml.orchestrator.client import Client, OrchestratorError
from sustainml.orchestrator.core import Orchestrator
from sustainml.orchestrator.protocol import request, unpack
from sustainml.topology import Topology, delete_all
from sustainml.transport.amqp import AmqpTransport
from sustainml.transport.base import Message
from tests.security.nodes_support import blocking_channel, queue_count
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

WRONG_KEY = b"not-this-deployments-key-0123456789abcdef"


@dataclass
class Deployed:
    settings: Settings
    dep: LocalDeployment
    server: ApiServer
    http: httpx.Client
    url: str  # the attacker's broker URL (the shared account)
    terminations: list[float]

    @property
    def topo(self) -> Topology:
        return Topology.of(self.settings)

    @property
    def orch(self) -> Orchestrator:
        assert self.dep.orchestrator is not None
        return self.dep.orchestrator

    def task_count(self) -> int:
        return len(self.orch.db.list_tasks(limit=1000))


@pytest.fixture(scope="module")
def deployed(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    base = tmp_path_factory.mktemp("attacks")
    settings = Settings(
        broker_url=amqp_url,
        namespace=f"t-{uuid.uuid4().hex[:8]}",
        data_dir=base,
        heartbeat_interval=0.5,
        rpc_timeout=5.0,
        max_num_outputs=5,
        http_header_timeout=1.0,
        http_max_connections=64,
    )
    dep = LocalDeployment(settings, amqp_transports(settings)).start()
    assert dep.orchestrator is not None
    terminations: list[float] = []
    server = ApiServer(
        settings, dep.orchestrator, "127.0.0.1", 0, on_terminate=lambda: terminations.append(time.monotonic())
    ).start()
    http = httpx.Client(base_url=server.url, timeout=30.0)
    try:
        deployed = Deployed(settings, dep, server, http, amqp_url, terminations)
        wait_until(lambda: _all_idle(deployed), 60, "six idle nodes")
        yield deployed
    finally:
        http.close()
        server.stop()
        dep.stop()
        with AmqpTransport(amqp_url, name="cleanup") as t:
            delete_all(t, Topology(settings.namespace))


# ------------------------------------------------------------------------------------ helpers
def _props(msg: Message) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/msgpack",
        delivery_mode=2,
        message_id=msg.message_id,
        correlation_id=msg.correlation_id,
        reply_to=msg.reply_to,
        type=msg.type,
        headers=dict(msg.headers),
    )


def _publish(url: str, exchange: str, routing_key: str, msg: Message) -> None:
    with blocking_channel(url) as ch:
        ch.basic_publish(exchange, routing_key, msg.body, _props(msg), mandatory=True)


def _forgeries(ns: str, msg: Message) -> dict[str, Message]:
    """The message unsigned, and signed as the orchestrator or a worker with a key that is not
    the deployment's (role headers present, signature wrong)."""
    return {
        "unsigned": msg,
        "wrong key": Attribution(ns, "orchestrator", WRONG_KEY).sign(msg),
        "wrong key as worker": Attribution(ns, "worker", WRONG_KEY).sign(msg),
    }


def _control(
    target: str, cmd_node: CmdNode, cmd_task: CmdTask = CmdTask.NO_CMD, task: TaskId | None = None
) -> Message:
    cmd = NodeControl(cmd_node=cmd_node, cmd_task=cmd_task, target_node=target, task_id=task, source_node="x")
    return H.build_message(encode(cmd), type_name="NodeControl", app_id="x", schema_version=SCHEMA_VERSION)


def _dead_reasons(settings: Settings, dlq: str) -> list[str]:
    with DlqClient(settings) as client:
        _, letters = client.show(dlq, limit=100)
    return [d.reason for d in letters]


def _submit(d: Deployed, description: str, **extra: Any) -> TaskId:
    ui = UserInput(problem_short_description=description, modality="image")
    if extra:
        ui.set_extra(extra)
    return d.orch.submit(ui)


def _all_idle(d: Deployed) -> bool:
    status = d.orch.status()
    return len(status) == 6 and all(s.name == "IDLE" for s in status.values())


# ------------------------------------------------------------------- broker: who may say what
def test_forged_node_control_pauses_and_terminates_nothing(deployed: Deployed) -> None:
    """NodeControl CMD_STOP_NODE / CMD_TERMINATE_NODE to `<ns>.control` (all nodes) and straight
    to one replica's control queue through the default exchange (replica ids are public on
    GET /v1/nodes): every copy is dead-lettered with the reason, every node stays up."""
    d = deployed
    ns = d.settings.namespace
    replica = d.http.get("/v1/nodes").json()["replicas"][0]["replica_id"]
    replica_queue = d.topo.private_queue("control", replica)
    unattributed = d.topo.dead_letter_queue(d.topo.unattributed_route)
    before = queue_count(d.url, unattributed)
    sent = 0
    for cmd in (CmdNode.CMD_STOP_NODE, CmdNode.CMD_TERMINATE_NODE):
        for forged in _forgeries(ns, _control("all", cmd)).values():
            _publish(d.url, d.topo.control_exchange, "all", forged)
            _publish(d.url, "", replica_queue, forged)
            sent += 1
    # Each copy to "all" reaches the six replicas; each direct copy, one.
    expected = before + sent * 6 + sent
    wait_until(lambda: queue_count(d.url, unattributed) >= expected, 30, f"{expected} refused controls")
    reasons = _dead_reasons(d.settings, "unattributed")
    assert any("unattributed: unsigned message" in r for r in reasons), reasons[:3]
    assert any("forged: x-sustainml-signature does not verify" in r for r in reasons), reasons[:3]
    time.sleep(3 * d.settings.heartbeat_interval)  # statuses after the attack
    assert _all_idle(d), d.orch.status()
    assert len(d.dep.nodes) == 6 and all(not n._stopped.is_set() for n in d.dep.nodes)
    res = d.orch.wait(_submit(d, "count cars on a road camera"), 60)
    assert res.state == "succeeded"


def test_forged_stage_output_is_not_stored_and_the_real_one_is(deployed: Deployed) -> None:
    """A CO2Footprint for a task waiting on CARBON_FOOTPRINT, with the stage's own message id,
    published to `<ns>.carbon_footprint`; and a forged HWResource straight into
    `<ns>.orchestrator.results`. Neither is stored; the real output is stored once the stage runs."""
    d = deployed
    carbon = next(n for n in d.dep.nodes if n.node_name == "CARBON_FOOTPRINT")
    d.dep.stop_node(carbon)
    try:
        tid = _submit(d, "detect defects in photos of welded seams")
        wait_until(
            lambda: d.orch.result(tid).current_stage == "CARBON_FOOTPRINT", 60, "the task at CARBON_FOOTPRINT"
        )
        results_dlq = d.topo.dead_letter_queue(d.topo.orchestrator_results_queue)
        before = queue_count(d.url, results_dlq)
        forged_record = CO2Footprint(carbon_footprint=999.0, task_id=tid)
        body = encode_task(TaskEnvelope("carbon_footprint", tid, forged_record))
        out = H.build_message(
            body,
            type_name="CO2Footprint",
            app_id="CARBON_FOOTPRINT",
            schema_version=SCHEMA_VERSION,
            message_id=H.stage_message_id(tid.key, "carbon_footprint"),
            correlation_id=tid.key,
        )
        hw_body = encode_task(
            TaskEnvelope("hw_resources", tid, HWResource(power_consumption=1.0, task_id=tid))
        )
        hw = H.build_message(
            hw_body,
            type_name="HWResource",
            app_id="HW_RESOURCES",
            schema_version=SCHEMA_VERSION,
            message_id=H.stage_message_id(tid.key, "hw_resources") + "-forged",
            correlation_id=tid.key,
        )
        forgeries = _forgeries(d.settings.namespace, out)
        for forged in forgeries.values():
            _publish(d.url, d.topo.record_exchange("carbon_footprint"), tid.key, forged)
        for forged in _forgeries(d.settings.namespace, hw).values():
            _publish(d.url, "", d.topo.orchestrator_results_queue, forged)
        wait_until(lambda: queue_count(d.url, results_dlq) >= before + 6, 30, "six refused outputs")
        assert d.orch.result(tid).state == "running"
        stored = d.orch.db.get_outputs(TaskId(problem_id=tid.problem_id, iteration_id=tid.iteration_id))
        # Nothing of a running task is stored before its outcome: the forged one neither.
        assert "carbon_footprint" not in stored and "hw_resources" not in stored
        reasons = _dead_reasons(d.settings, "results")
        assert any("unattributed: unsigned message" in r for r in reasons)
        assert any("forged: x-sustainml-signature" in r for r in reasons)
    finally:
        d.dep.start_node("CARBON_FOOTPRINT")
    res = d.orch.wait(tid, 60)
    assert res.state == "succeeded"
    real = res.outputs["carbon_footprint"]
    assert isinstance(real, CO2Footprint) and real.carbon_footprint != 999.0
    stored = d.orch.db.get_outputs(TaskId(problem_id=tid.problem_id, iteration_id=tid.iteration_id))
    assert stored["hw_resources"] != encode(HWResource(power_consumption=1.0, task_id=tid))


def test_stop_task_ahead_of_submission_kills_nothing(deployed: Deployed) -> None:
    """CMD_STOP_TASK for the next sequential task ids, sent before they exist: forged ones are
    dead-lettered; the orchestrator and the client refuse a task command for a task that does
    not exist; the tasks then submitted under those ids succeed."""
    d = deployed
    latest = d.orch.db.latest_task()
    nxt = (latest.problem_id if latest else 0) + 1
    future = [TaskId(problem_id=nxt + k, iteration_id=1) for k in range(3)]
    for tid in future:
        for forged in _forgeries(
            d.settings.namespace, _control("all", CmdNode.NO_CMD, CmdTask.CMD_STOP_TASK, tid)
        ).values():
            _publish(d.url, d.topo.control_exchange, "all", forged)
    with pytest.raises(KeyError, match="does not exist"):
        d.orch.control("all", cmd_task=CmdTask.CMD_STOP_TASK, task_id=future[0])
    client = Client(d.settings)
    try:
        with pytest.raises(OrchestratorError, match="does not exist"):
            client.control("all", cmd_task=CmdTask.CMD_STOP_TASK, task_id=future[1])
    finally:
        client.close()
    ids = [_submit(d, f"classify bird songs {k}") for k in range(3)]
    assert ids == future
    for tid in ids:
        assert d.orch.wait(tid, 60).state == "succeeded"


# ------------------------------------------------------------------- namespace confinement
@pytest.fixture
def victim(deployed: Deployed) -> Iterator[str]:
    """A queue of another namespace on the same broker."""
    name = f"v-{uuid.uuid4().hex[:8]}.reply.client-victim"
    with blocking_channel(deployed.url) as ch:
        ch.queue_declare(name, durable=False, auto_delete=False, arguments={"x-expires": 600_000})
    yield name
    with blocking_channel(deployed.url) as ch:
        ch.queue_delete(name)


def _request_via(url: str, exchange: str, routing_key: str, body: bytes, reply_to: str, **props: Any) -> None:
    with blocking_channel(url) as ch:
        ch.basic_publish(
            exchange,
            routing_key,
            body,
            pika.BasicProperties(
                reply_to=reply_to, correlation_id=uuid.uuid4().hex, expiration="10000", **props
            ),
            mandatory=True,
        )


def test_replies_and_watch_queues_stay_in_the_namespace(deployed: Deployed, victim: str) -> None:
    """A status request and a configuration request whose reply_to is another namespace's queue,
    and a submission whose watch_queue is: nothing is written into it, and the submission is
    refused with the reason. The same requests with a queue of the namespace are answered (the
    control)."""
    d = deployed
    own = d.topo.private_queue("reply", "client-attacker")
    with blocking_channel(d.url) as ch:
        ch.queue_declare(own, durable=False, arguments={"x-expires": 600_000})
    try:
        status = request("status")
        config = encode(RequestType(node_id=5, transaction_id=1, configuration="hardwares"))
        cfg_exchange, cfg_key = d.topo.config_exchange, "HW_RESOURCES"
        for reply_to in (victim, own):
            _request_via(d.url, "", d.topo.orchestrator_requests_queue, status, reply_to)
            _request_via(d.url, cfg_exchange, cfg_key, config, reply_to, type="RequestType")
        wait_until(lambda: queue_count(d.url, own) == 2, 30, "the two answers to the namespace's own queue")
        time.sleep(1.0)  # the foreign requests were handled before (same consumers, same order)
        assert queue_count(d.url, victim) == 0
        # a submission naming the foreign queue as its watch queue
        tasks_before = d.task_count()
        client = Client(d.settings)
        try:
            headers = {H.H_WATCH_QUEUE: victim}
            body = request("submit", user_input=to_wire(UserInput(problem_short_description="x")))
            answer = client._rpc_call(body, headers, 10.0)
        finally:
            client.close()
        reply = unpack(answer.body)
        assert (
            reply["ok"] is False
            and "watch_queue" in reply["error"]
            and "not a queue of namespace" in reply["error"]
        )
        assert d.task_count() == tasks_before
        assert queue_count(d.url, victim) == 0
    finally:
        with blocking_channel(d.url) as ch:
            ch.queue_delete(own)


def test_dlq_replay_into_another_namespace_is_refused(deployed: Deployed, victim: str) -> None:
    """A dead letter whose recorded origin (x-sustainml-dead-queue) names another namespace's
    queue: `sustainml dlq replay` refuses it, the message stays in the DLQ, the queue stays empty."""
    d = deployed
    dlq = d.topo.dead_letter_queue(d.topo.orchestrator_results_queue)
    letter = H.build_message(
        b"\x80",
        type_name="CO2Footprint",
        app_id="x",
        schema_version=SCHEMA_VERSION,
        message_id="cross-ns-1",
        extra_headers={
            H.H_DEAD_QUEUE: victim,
            H.H_DEAD_REASON: "planted",
            H.H_DEAD_EXCHANGE: "",
            H.H_DEAD_ROUTING_KEY: victim,
        },
    )
    _publish(d.url, "", dlq, letter)
    wait_until(lambda: queue_count(d.url, dlq) >= 1, 10, "the planted dead letter")
    count = queue_count(d.url, dlq)
    with DlqClient(d.settings) as client:
        result = client.replay("results", ["cross-ns-1"])
    with DlqClient(d.settings) as client:
        via = client.replay("results", ["cross-ns-1"], via_exchange=True)
    assert result.replayed == [] and "not a queue of namespace" in result.failed["cross-ns-1"]
    assert via.replayed == [] and "cross-ns-1" in via.failed
    runner = CliRunner()
    out = runner.invoke(
        cli,
        [
            "--broker",
            d.url,
            "--namespace",
            d.settings.namespace,
            "dlq",
            "replay",
            "results",
            "x",
            "--to-queue",
            victim,
        ],
    )
    assert out.exit_code != 0 and "not a queue of namespace" in out.output
    assert queue_count(d.url, victim) == 0
    assert queue_count(d.url, dlq) == count


# ------------------------------------------------------------------------ limits at the door
def test_runaway_num_outputs_is_refused_and_cancel_stops_the_chain(deployed: Deployed) -> None:
    d = deployed
    before = d.task_count()
    r = d.http.post(
        "/v1/tasks", json={"problem_short_description": "x", "extra_data": {"num_outputs": 1_000_000}}
    )
    assert r.status_code == 422 and "extra_data.num_outputs" in r.json()["error"], r.text
    r = d.http.post("/v1/tasks", json={"problem_short_description": "x", "extra_data": {"num_outputs": -1}})
    assert r.status_code == 422 and "extra_data.num_outputs" in r.json()["error"], r.text
    assert d.task_count() == before
    # within the cap: the chain runs, and a cancel of its first task stops it for sure
    tid = _submit(d, "detect pedestrians in street images", num_outputs=5)
    wait_until(lambda: d.orch.db.latest_iteration(tid.problem_id) == 2, 60, "the first automatic iteration")
    d.orch.cancel(tid)  # already succeeded: what is stopped is the chain after it
    time.sleep(3.0)
    rows = d.orch.db.list_tasks(problem_id=tid.problem_id)
    assert len(rows) < 5, [(r.iteration_id, r.state) for r in rows]
    assert all(r.is_terminal for r in rows)
    assert all(r.state == "cancelled" for r in rows if r.iteration_id > 1 and r.state != "succeeded")
    settled = len(rows)
    time.sleep(2.0)
    assert len(d.orch.db.list_tasks(problem_id=tid.problem_id)) == settled  # no further iteration


def test_hostile_extra_data_and_numbers_are_refused_naming_the_field(
    deployed: Deployed, tmp_path: Path
) -> None:
    d = deployed
    before = d.task_count()
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100):
        node["a"] = {}
        node = node["a"]
    r = d.http.post("/v1/tasks", json={"problem_short_description": "x", "extra_data": deep})
    assert r.status_code == 422 and "extra_data" in r.json()["error"] and "levels" in r.json()["error"], (
        r.text
    )
    r = d.http.post(
        "/user_input", json={"problem_short_description": "x", "extra_data": {"max_memory_footprint": -5}}
    )
    assert r.status_code == 422 and "extra_data.max_memory_footprint" in r.json()["error"], r.text
    # a msgpack timestamp extension under an unknown key, sent over the broker
    stamped = msgpack.packb({"when": msgpack.Timestamp(1, 0)}, use_bin_type=True)
    client = Client(d.settings)
    try:
        raw = {"problem_short_description": "x", "extra_data": stamped}
        answer = unpack(client._rpc_call(request("submit", user_input=raw), {}, 10.0).body)
    finally:
        client.close()
    assert answer["ok"] is False and "timestamp" in answer["error"], answer
    # the CLI: negative numbers named by their field
    for flag, field in (("--max-memory", "max_memory_footprint"), ("--num-outputs", "num_outputs")):
        out = CliRunner().invoke(
            cli,
            ["--broker", d.url, "--namespace", d.settings.namespace, "submit", "-d", "x", flag, "-5"],
            env={"SUSTAINML_DATA_DIR": str(tmp_path)},
        )
        assert out.exit_code != 0 and f"extra_data.{field}" in out.output, out.output
    assert d.task_count() == before
    # a lone surrogate is the client's error, not the server's
    r = d.http.post(
        "/hf_models_info", content=b'{"model_ids": ["\\ud800"]}', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text


# ------------------------------------------------------------------------------------ HTTP
def test_cross_site_requests_change_nothing(deployed: Deployed) -> None:
    d = deployed
    tid = _submit(d, "segment tumours in MRI scans")
    d.orch.wait(tid, 60)
    path = f"/v1/tasks/{tid.problem_id}/{tid.iteration_id}"
    # an <img src=".../terminate">
    r = d.http.get("/terminate")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert d.terminations == []
    evil = {"Origin": "http://evil.example"}
    attempts = [
        d.http.post(f"{path}/cancel", headers=evil),
        d.http.post(f"{path}/cancel", headers={"Sec-Fetch-Site": "cross-site"}),
        d.http.post(
            "/cancel", content=b"problem_id=1", headers={"content-type": "application/x-www-form-urlencoded"}
        ),
        d.http.post(
            "/user_input",
            content=b'{"problem_short_description": "x"}',
            headers={"content-type": "text/plain"},
        ),
        d.http.post(f"{path}/iterate", json={}, headers=evil),
        d.http.post("/v1/datasets", files={"file": ("evil.csv", b"a,b\n1,2\n", "text/csv")}, headers=evil),
        d.http.post("/terminate", headers={"Sec-Fetch-Site": "same-site"}),
    ]
    assert [a.status_code for a in attempts] == [403, 403, 415, 415, 403, 403, 403], [
        a.text for a in attempts
    ]
    assert all("cross-site" in a.json()["error"] or "Content-Type" in a.json()["error"] for a in attempts)
    assert d.orch.result(tid).state == "succeeded"
    assert d.terminations == []
    assert not list(d.settings.data_dir.rglob("*evil*"))
    # DNS rebinding: a page served under another name that resolves to 127.0.0.1
    r = d.http.get("/v1/tasks", headers={"Host": "evil.example:5001"})
    assert r.status_code == 421 and "not served here" in r.json()["error"]
    # the same origin still works (the dashboard), and so do scripts sending no Origin
    same = {"Origin": d.server.url, "Sec-Fetch-Site": "same-origin"}
    ok = d.http.post("/v1/tasks", json={"problem_short_description": "x"}, headers=same)
    assert ok.status_code == 201, ok.text


def test_serving_beyond_loopback_needs_a_token_or_an_explicit_setting(deployed: Deployed) -> None:
    d = deployed
    with pytest.raises(ConfigError, match="SUSTAINML_API_TOKEN"):
        ApiServer(d.settings, d.orch, "0.0.0.0", 0)
    allowed = ApiServer(d.settings.with_overrides(http_allow_remote="1"), d.orch, "0.0.0.0", 0)
    allowed._sock.close()
    tokened = ApiServer(d.settings.with_overrides(api_token="t0ken-for-this-test"), d.orch, "0.0.0.0", 0)
    tokened._sock.close()


def test_half_sent_requests_are_closed_and_connections_capped(deployed: Deployed) -> None:
    """200 connections that send half a request line and stop (settings: 1 s read deadline, 64
    connections): beyond 64 they are closed at once, the others within the deadline; then a
    normal request is served."""
    d = deployed
    socks: list[socket.socket] = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", d.server.port), timeout=10)
        s.sendall(b"POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Len")
        socks.append(s)
    began = time.monotonic()
    closed_after: list[float] = []
    for s in socks:
        s.settimeout(15)
        try:
            data = s.recv(1024)
        except (ConnectionResetError, TimeoutError):
            data = b""
        assert data == b"", data[:80]
        closed_after.append(time.monotonic() - began)
        s.close()
    print(f"200 half-sent requests: all closed within {max(closed_after):.1f} s")
    assert max(closed_after) < 10
    assert d.http.get("/v1/nodes").status_code == 200


def test_sse_reader_that_keeps_up_is_not_cut_one_that_stops_is(deployed: Deployed) -> None:
    d = deployed
    burst = 3 * SUBSCRIBER_QUEUE // 2  # more than one queue's worth in total, in bursts

    async def scenario() -> tuple[int, bool, bool]:
        hub = EventHub(d.orch)
        reader, idle = hub.subscribe(), hub.subscribe()
        got = 0

        async def read() -> None:
            nonlocal got
            async for event in hub.stream(reader, ping_every=1.0):
                if event is not None:
                    got += 1
                if got == burst:
                    return

        task = asyncio.create_task(read())
        for i in range(burst):
            hub._publish(HubEvent(i, "node", {"n": i}))
            if i % 5000 == 4999:
                while reader.queue.qsize() > 0:  # a reader that keeps up: it drains each burst
                    await asyncio.sleep(0.01)
        await asyncio.wait_for(task, 30)
        for i in range(SUBSCRIBER_QUEUE):  # the idle one overflows the memory bound
            hub._publish(HubEvent(i, "node", {"n": i}))
        return got, reader.dropped, idle.dropped

    got, reader_dropped, idle_dropped = asyncio.run(scenario())
    assert got == burst and not reader_dropped
    assert idle_dropped


def test_submission_retried_with_its_key_creates_one_task(deployed: Deployed) -> None:
    d = deployed
    before = d.task_count()
    key = f"test-{uuid.uuid4().hex}"
    body = {"problem_short_description": "classify product photos"}
    first = d.http.post("/v1/tasks", json=body, headers={"Idempotency-Key": key})
    again = d.http.post("/v1/tasks", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert first.json()["task_id"] == again.json()["task_id"]
    client = Client(d.settings)
    try:
        a = client.submit(UserInput(problem_short_description="y"), idempotency_key=key + "-c")
        b = client.submit(UserInput(problem_short_description="y"), idempotency_key=key + "-c")
    finally:
        client.close()
    assert a == b
    assert d.task_count() == before + 2


CREDENTIAL_URL = re.compile(r"[a-z+]+://[^\s:/@'\"]+:(?!\*\*\*@)[^\s@'\"]+@")


def test_documented_setup_never_puts_a_password_on_a_command_line() -> None:
    """Operators copy commands from the docs: a URL with a password as a command argument (where
    `ps` and the shell history show it) must not be among them; the environment or a file it is."""
    root = Path(__file__).resolve().parents[2]
    docs = [root / "README.md", *sorted((root / "docs").glob("*.md")), root / "deploy" / "README.md"]
    offenders = []
    for doc in docs:
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            command = any(k in line for k in ("--broker ", "--from-literal", "sustainml ", "--db-url "))
            if command and "guest:guest" not in line and CREDENTIAL_URL.search(line):
                offenders.append(f"{doc.name}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
