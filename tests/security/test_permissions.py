"""Least-privilege broker users (sustainml.permissions + deploy/rabbitmq/create-users.sh).

Static checks of the regexes, then the real thing on the shared broker: users created by the
script in a unique namespace (deleted afterwards), a publisher that cannot consume, declare or
bind, a worker confined to its namespace, an operator that only reads DLQs, and a whole task run
end to end with workers, orchestrator and client each on their own restricted user.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from sustainml.messages import TaskId
from tests.support.taskdb import count_outputs

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from sustainml.cli.dlq_client import DlqClient  # noqa: E402
from sustainml.config import Settings  # noqa: E402
from sustainml.messages import UserInput  # noqa: E402
from sustainml.orchestrator.client import Client  # noqa: E402
from sustainml.orchestrator.core import Orchestrator  # noqa: E402
from sustainml.permissions import (  # noqa: E402
    ROLES,
    definitions,
    rabbit_password_hash,
    render_tsv,
    role_permissions,
)
from sustainml.topology import PIPELINE, Topology, delete_all  # noqa: E402
from sustainml.transport.amqp import AmqpTransport  # noqa: E402
from sustainml.workers.nodes import NODE_CLASSES  # noqa: E402
from sustainml.workers.runtime import Node  # noqa: E402

SCRIPT = _ROOT / "deploy" / "rabbitmq" / "create-users.sh"


# ------------------------------------------------------------------------------ static checks
def _all_names(ns: str) -> list[str]:
    topo = Topology(ns, max_attempts=4)
    names = [x.name for x in topo.exchanges()] + [q.name for q in topo.durable_queues()]
    return names + [q.name for q in topo.retry_queues()]


def test_regexes_are_anchored_and_cover_exactly_the_namespace() -> None:
    ns = "prod-a_1"
    perms = role_permissions(ns)
    assert set(perms) == set(ROLES)
    for p in perms.values():
        for rx in p.as_tuple():
            assert rx.startswith("^") and rx.endswith("$"), (p.role, rx)
            re.compile(rx)
    names = _all_names(ns)
    worker = perms["worker"]
    for name in names:  # declare_all must be allowed every shared name
        assert re.fullmatch(worker.configure, name), name
        assert re.fullmatch(worker.read, name), name
    other = _all_names("prod-b")
    for name in other + [n.replace("prod-a_1", "prod-a_12") for n in names]:
        for p in perms.values():
            for rx in p.as_tuple():
                assert not re.fullmatch(rx, name), (p.role, name)
    # Regex metacharacters in names are escaped: "prod-a_1" must not match "prodXa_1".
    assert not re.fullmatch(worker.configure, "prodXa_1.tasks")
    publisher = perms["publisher"]
    for name in names:
        assert not re.fullmatch(publisher.configure, name) and not re.fullmatch(publisher.read, name), name
    assert re.fullmatch(publisher.configure, f"{ns}.reply.client-0123abcd")
    assert re.fullmatch(publisher.write, "amq.default")
    assert not re.fullmatch(publisher.write, f"{ns}.user_input")
    operator = perms["operator"]
    assert not any(re.fullmatch(operator.configure, n) for n in names)  # only its own reply queues
    readable = [n for n in names if re.fullmatch(operator.read, n)]
    assert readable and all(n.endswith(".dlq") for n in readable)


def test_definitions_fragment_has_hashed_passwords_only() -> None:
    defs = definitions("ns1", {"worker": "w-secret-1", "publisher": "p-secret-2"}, vhost="prod")
    text = repr(defs)
    assert "w-secret-1" not in text and "p-secret-2" not in text
    assert [u["name"] for u in defs["users"]] == ["ns1-worker", "ns1-publisher"]
    assert {p["vhost"] for p in defs["permissions"]} == {"prod"}
    assert defs["permissions"][0]["configure"] == role_permissions("ns1")["worker"].configure
    # RabbitMQ's salted SHA-256 form: base64(salt4 + sha256(salt4 + password)); checked against
    # the broker itself in test_definitions_import_into_the_broker.
    raw = base64.b64decode(rabbit_password_hash("guest", b"\x01\x02\x03\x04"))
    assert raw[:4] == b"\x01\x02\x03\x04" and raw[4:] == hashlib.sha256(b"\x01\x02\x03\x04guest").digest()
    with pytest.raises(ValueError, match="unknown role"):
        definitions("ns1", {"admin": "x"})
    assert render_tsv("ns1").count("\n") == len(ROLES)


# ------------------------------------------------------------------------------ on the broker
@dataclass
class Users:
    ns: str
    url: Callable[[str], str]  # role -> AMQP URL with that role's credentials
    guest_url: str


def _broker_is_local(amqp_url: str) -> bool:
    parts = urlsplit(amqp_url)
    return parts.hostname in ("127.0.0.1", "localhost") and (parts.port or 5672) == 5672


@pytest.fixture(scope="module")
def users(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Users]:
    # Module scope: every rabbitmqctl call costs seconds, so the users are created once.
    tmp_path = tmp_path_factory.mktemp("users")
    if shutil.which("rabbitmqctl") is None or not _broker_is_local(amqp_url):
        pytest.skip("needs rabbitmqctl for the local broker on 127.0.0.1:5672")
    ns = f"t-{uuid.uuid4().hex[:8]}"
    passwords = {role: f"pw-{role}-{uuid.uuid4().hex[:10]}" for role in ROLES}
    env = dict(
        os.environ,
        SUSTAINML_NAMESPACE=ns,
        CREDENTIALS_FILE=str(tmp_path / "creds.tsv"),
        PYTHON=sys.executable,
        **{f"SUSTAINML_{r.upper()}_PASSWORD": pw for r, pw in passwords.items()},
    )
    run = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    try:
        assert run.returncode == 0, run.stderr
        for role in ROLES:
            assert f"created {ns}-{role} ({role})" in run.stdout
        combined = run.stdout + run.stderr
        assert not any(pw in combined for pw in passwords.values()), "the script printed a password"
        assert not (tmp_path / "creds.tsv").exists()  # nothing generated: all came from env

        def url(role: str) -> str:
            return f"amqp://{ns}-{role}:{passwords[role]}@127.0.0.1:5672/%2F"

        yield Users(ns, url, amqp_url)
    finally:
        subprocess.run([str(SCRIPT), "--delete"], env=env, capture_output=True, timeout=120)
        with AmqpTransport(amqp_url, name="cleanup") as t:
            delete_all(t, Topology(ns))


def _attempt(url: str, fn: Callable[[BlockingChannel], Any]) -> int:
    """Run ``fn`` on a fresh channel: 0 when allowed, else the broker's reply code."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        fn(ch)
        return 0
    except pika.exceptions.ChannelClosedByBroker as exc:
        return int(exc.reply_code)
    finally:
        if conn.is_open:
            conn.close()


def _confirmed_publish(ch: BlockingChannel, exchange: str, body: bytes) -> None:
    ch.confirm_delivery()  # the publish then waits for the broker's verdict
    ch.basic_publish(exchange, "all", body)


def _declare_topology(url: str, ns: str) -> None:
    with AmqpTransport(url, name="declare") as t:
        from sustainml.topology import declare_all

        declare_all(t, Topology(ns))


REFUSED = 403


def test_publisher_cannot_consume_declare_or_bind(users: Users) -> None:
    _declare_topology(users.url("worker"), users.ns)  # a worker can declare the shared topology
    pub = users.url("publisher")
    ns = users.ns
    stage_q = f"{ns}.stage.ml_model"
    # consume / get another stage's queue, a DLQ, the orchestrator's queues
    assert _attempt(pub, lambda ch: ch.basic_get(stage_q)) == REFUSED
    assert _attempt(pub, lambda ch: ch.basic_consume(stage_q, lambda *a: None)) == REFUSED
    assert _attempt(pub, lambda ch: ch.basic_get(f"{stage_q}.dlq")) == REFUSED
    assert _attempt(pub, lambda ch: ch.basic_get(f"{ns}.orchestrator.requests")) == REFUSED
    # declare shared or arbitrary resources (even re-declaring an existing one)
    assert _attempt(pub, lambda ch: ch.queue_declare(f"{ns}.evil", durable=True)) == REFUSED
    assert _attempt(pub, lambda ch: ch.queue_declare("evil", durable=True)) == REFUSED
    assert _attempt(pub, lambda ch: ch.exchange_declare(f"{ns}.evil", "topic")) == REFUSED
    assert _attempt(pub, lambda ch: ch.exchange_declare(f"{ns}.tasks", "topic", durable=True)) == REFUSED
    assert _attempt(pub, lambda ch: ch.queue_delete(stage_q)) == REFUSED
    # bind: its own watch queue is allowed to exist, but not to be bound to the task stream
    watch = f"{ns}.watch.0123abcd"

    def bind_own(ch: BlockingChannel) -> None:
        ch.queue_declare(watch, arguments={"x-expires": 60_000})
        ch.queue_bind(watch, f"{ns}.tasks", "#")

    assert _attempt(pub, bind_own) == REFUSED
    assert _attempt(pub, lambda ch: ch.queue_bind(stage_q, f"{ns}.user_input", "evil")) == REFUSED
    # publish straight into the pipeline, bypassing the orchestrator

    def publish_direct(ch: BlockingChannel) -> None:
        ch.confirm_delivery()
        ch.basic_publish(f"{ns}.user_input", "1.1", b"x", mandatory=True)

    assert _attempt(pub, publish_direct) == REFUSED
    # ...but it may create and use its own RPC reply queue and publish a request
    own = f"{ns}.reply.client-abcdef012345"

    def rpc_shape(ch: BlockingChannel) -> None:
        ch.queue_declare(own, arguments={"x-expires": 60_000})
        ch.confirm_delivery()
        ch.basic_publish("", f"{ns}.orchestrator.requests", b"\x80", mandatory=True)
        ch.basic_get(own)
        ch.queue_delete(own)

    assert _attempt(pub, rpc_shape) == 0
    with AmqpTransport(users.guest_url, name="cleanup") as t:
        t.purge_queue(f"{ns}.orchestrator.requests")


def test_worker_and_operator_are_confined(users: Users) -> None:
    ns = users.ns
    worker = users.url("worker")
    _declare_topology(worker, ns)
    other = f"t-other{uuid.uuid4().hex[:6]}.stage.ml_model"
    with AmqpTransport(users.guest_url, name="guest") as t:
        from sustainml.transport.base import QueueSpec

        t.declare_queue(QueueSpec(other, expires_ms=60_000))
    try:
        assert _attempt(worker, lambda ch: ch.basic_get(f"{ns}.stage.ml_model")) == 0
        assert _attempt(worker, lambda ch: ch.basic_get(other)) == REFUSED  # another namespace
        assert _attempt(worker, lambda ch: ch.queue_declare(f"{ns}.evil", durable=True)) == REFUSED
        assert _attempt(worker, lambda ch: ch.exchange_declare("amq.evil-x", "topic")) == REFUSED
        # private queues of clients and the orchestrator are off limits
        assert _attempt(worker, lambda ch: ch.queue_declare(f"{ns}.reply.client-1234")) == REFUSED
        assert _attempt(worker, lambda ch: ch.queue_declare(f"{ns}.status-monitor.1234")) == REFUSED

        op = users.url("operator")
        assert _attempt(op, lambda ch: ch.basic_get(f"{ns}.stage.ml_model.dlq")) == 0
        assert _attempt(op, lambda ch: ch.basic_get(f"{ns}.stage.ml_model")) == REFUSED
        assert _attempt(op, lambda ch: ch.queue_declare(f"{ns}.stage.ml_model.dlq", durable=True)) == REFUSED
        assert _attempt(op, lambda ch: ch.queue_delete(f"{ns}.stage.ml_model.dlq")) == REFUSED
        with DlqClient(Settings(broker_url=op, namespace=ns)) as client:
            summaries = client.list_queues()
        assert len(summaries) == 8 and all(s.exists and s.messages == 0 for s in summaries)
    finally:
        with AmqpTransport(users.guest_url, name="cleanup") as t:
            t.delete_queue(other)


def _noop(*args: Any) -> None:
    """Leaves the output empty; later stages do not need its content."""


def test_task_runs_end_to_end_with_least_privilege_users(users: Users, tmp_path: Path) -> None:
    base = Settings(namespace=users.ns, data_dir=tmp_path, heartbeat_interval=0.5, rpc_timeout=10.0)
    worker_settings = replace(base, broker_url=users.url("worker"))
    nodes: list[Node] = []
    threads = []
    orch = Orchestrator(replace(base, broker_url=users.url("orchestrator")))
    try:
        for stage in PIPELINE:
            node = NODE_CLASSES[stage.node](callback=_noop, settings=worker_settings)
            nodes.append(node)
            threads.append(node.run_in_thread())
        orch.start()
        with Client(replace(base, broker_url=users.url("publisher"))) as client:
            tid = client.submit(UserInput(problem_short_description="least privilege"), watch=True)
            result = client.wait(tid, 60)
        assert result.state == "succeeded", result
    finally:
        orch.close()
        for node in nodes:
            node.stop()
        for th in threads:
            th.join(60)


def test_definitions_import_into_the_broker(amqp_url: str, tmp_path: Path) -> None:
    """The fragment the deployment ships is accepted by RabbitMQ and its password hash works."""
    if shutil.which("rabbitmqctl") is None or not _broker_is_local(amqp_url):
        pytest.skip("needs rabbitmqctl for the local broker on 127.0.0.1:5672")
    ns = f"t-{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    defs = definitions(ns, {"operator": password})
    # rabbitmqctl reads the file as the rabbitmq user: it must not sit in a private tmp dir.
    shared = Path(tempfile.mkdtemp(prefix="sustainml-defs-"))
    shared.chmod(0o755)
    path = shared / "definitions.json"
    path.write_text(json.dumps(defs))
    path.chmod(0o644)
    user = f"{ns}-operator"
    try:
        run = subprocess.run(
            ["rabbitmqctl", "--quiet", "import_definitions", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        url = f"amqp://{user}:{password}@127.0.0.1:5672/%2F"
        assert _attempt(url, lambda ch: ch.basic_get(f"{ns}.stage.ml_model.dlq")) == 404  # allowed, absent
        assert _attempt(url, lambda ch: ch.queue_declare(f"{ns}.x")) == REFUSED
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(pika.URLParameters(f"amqp://{user}:wrong@127.0.0.1:5672/%2F"))
    finally:
        subprocess.run(["rabbitmqctl", "--quiet", "delete_user", user], capture_output=True, timeout=60)
        shutil.rmtree(shared, ignore_errors=True)


def test_role_accounts_refuse_forged_controls_and_outputs(users: Users, tmp_path: Path) -> None:
    """The attacks of the publisher and worker accounts (docs/security.md threat table), with
    the deployment on its per-role accounts: a NodeControl sent by the publisher through the
    default exchange straight to a replica's control queue, one sent by a worker account to the
    control exchange, a forged HWResource from the publisher into `<ns>.orchestrator.results`,
    even signed with the deployment's own key: all refused and dead-lettered with the reason,
    nothing paused, nothing stored. The operator account may pause and resume a node."""
    from sustainml.attribution import Attribution, load_key
    from sustainml.messages import (
        SCHEMA_VERSION,
        CmdNode,
        HWResource,
        NodeControl,
        Status,
        TaskEnvelope,
        encode,
        encode_task,
    )
    from sustainml.messages import headers as H
    from sustainml.transport.base import Message
    from tests.security.nodes_support import queue_count
    from tests.support.waiting import wait_until

    ns = users.ns
    topo = Topology(ns)
    base = Settings(namespace=ns, data_dir=tmp_path, heartbeat_interval=0.5, rpc_timeout=10.0)
    worker_settings = replace(base, broker_url=users.url("worker"))
    nodes: list[Node] = []
    orch = Orchestrator(replace(base, broker_url=users.url("orchestrator")))
    key = Attribution(ns, "orchestrator", b"")  # replaced below, once the deployment made its key
    try:
        for stage in PIPELINE:
            node = NODE_CLASSES[stage.node](callback=_noop, settings=worker_settings)
            nodes.append(node)
            node.run_in_thread()
        orch.start()
        wait_until(
            lambda: len(orch.status()) == 6 and set(orch.status().values()) == {Status.IDLE}, 60, "idle"
        )
        key = Attribution(ns, "orchestrator", load_key(base, create=False))  # as if it had leaked
        unattributed = topo.dead_letter_queue(topo.unattributed_route)
        results_dlq = topo.dead_letter_queue(topo.orchestrator_results_queue)

        def control(cmd: CmdNode) -> Message:
            body = encode(NodeControl(cmd_node=cmd, target_node="all", source_node="ORCHESTRATOR"))
            return key.sign(
                H.build_message(body, type_name="NodeControl", app_id="x", schema_version=SCHEMA_VERSION)
            )

        victim = nodes[0]
        with AmqpTransport(users.url("publisher"), name="attacker-publisher") as pub:
            pub.publish(
                "", topo.private_queue("control", victim.replica_id), control(CmdNode.CMD_STOP_NODE)
            ).result(10)
            tid = TaskId(problem_id=1, iteration_id=1)
            forged = H.build_message(
                encode_task(
                    TaskEnvelope("hw_resources", tid, HWResource(power_consumption=1.0, task_id=tid))
                ),
                type_name="HWResource",
                app_id="HW_RESOURCES",
                schema_version=SCHEMA_VERSION,
                message_id=H.stage_message_id(tid.key, "hw_resources"),
                correlation_id=tid.key,
            )
            pub.publish(
                "", topo.orchestrator_results_queue, Attribution(ns, "worker", key.key).sign(forged)
            ).result(10)
        terminate = control(CmdNode.CMD_TERMINATE_NODE)
        # a worker account: the control exchange is closed to it by a topic permission (the
        # broker refuses the publish), and straight to a replica's queue the node refuses it
        worker_url = users.url("worker")
        assert (
            _attempt(worker_url, lambda ch: _confirmed_publish(ch, topo.control_exchange, terminate.body))
            == 403
        )
        with AmqpTransport(worker_url, name="attacker-worker") as rogue:
            rogue.publish("", topo.private_queue("control", nodes[1].replica_id), terminate).result(10)
        wait_until(lambda: queue_count(users.guest_url, unattributed) == 2, 30, "two refused controls")
        wait_until(lambda: queue_count(users.guest_url, results_dlq) == 1, 30, "the refused output")
        with DlqClient(replace(base, broker_url=users.guest_url)) as dlq:
            reasons = {d.reason for d in dlq.show("unattributed", limit=10)[1]}
            reasons |= {d.reason for d in dlq.show("results", limit=10)[1]}
        only = "NodeControl may come only from operator or orchestrator"
        publisher_control = {
            f"{victim.node_name} NodeControl unattributed: no user-id, not a role account of namespace "
            f"{ns!r}",
            f"{victim.node_name} NodeControl refused: {only}, not from publisher",
        }
        assert reasons & publisher_control, reasons
        assert any(f"{only}, not from worker" in r for r in reasons)
        output = "a stage output may come only from operator or worker, not from publisher"
        assert any(output in r for r in reasons)
        assert count_outputs(orch.db) == 0
        time.sleep(2.0)
        assert set(orch.status().values()) == {Status.IDLE} and all(not n._stopped.is_set() for n in nodes)
        # the operator account may command nodes
        with Client(replace(base, broker_url=users.url("operator"))) as operator:
            operator.control(victim.node_name, cmd_node=CmdNode.CMD_STOP_NODE)
            wait_until(lambda: orch.status()[victim.node_name] == Status.INACTIVE, 30, "the node paused")
            operator.control(victim.node_name, cmd_node=CmdNode.CMD_START_NODE)
            wait_until(lambda: orch.status()[victim.node_name] == Status.IDLE, 30, "the node resumed")
        with Client(replace(base, broker_url=users.url("publisher"))) as client:
            result = client.wait(
                client.submit(UserInput(problem_short_description="after the attack"), watch=True), 60
            )
        assert result.state == "succeeded", result
    finally:
        orch.close()
        for node in nodes:
            node.stop()
