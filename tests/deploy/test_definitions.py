"""deploy/compose/rabbitmq/definitions.json: generated from sustainml.permissions by
tools/gen_definitions.py (the committed file must equal the generator's output), passwords filled
at start-up by render_definitions.py, and accepted by a real RabbitMQ node (a private one: the
shared broker is never reconfigured), where the worker account can declare the whole topology and
run the health probe, and nothing outside its namespace."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sustainml.permissions import ROLES, default_username, role_permissions
from sustainml.topology import PIPELINE, Topology, declare_all
from sustainml.transport.amqp import AmqpTransport
from sustainml.transport.base import Binding, QueueSpec, TransportError
from tests.support.private_broker import PrivateBroker, PrivateBrokerError, rabbitmq_available

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy" / "compose" / "rabbitmq" / "definitions.json"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load(ROOT / "tools" / "gen_definitions.py", "_gen_definitions")
renderer = _load(ROOT / "deploy" / "compose" / "rabbitmq" / "render_definitions.py", "_render_definitions")


def _passwords() -> dict[str, str]:
    return {f"RABBITMQ_{r.upper()}_PASSWORD": f"pw-{r}-{uuid.uuid4().hex[:6]}" for r in ("admin", *ROLES)}


def test_committed_definitions_equal_the_generated_ones() -> None:
    assert COMMITTED.read_text() == gen.render(), "stale: run python tools/gen_definitions.py"
    assert gen.main(["--check"]) == 0


def test_definitions_carry_the_permissions_module_roles_and_no_secret() -> None:
    data = json.loads(COMMITTED.read_text())
    perms = {p["user"]: p for p in data["permissions"]}
    for role, expected in role_permissions("sustainml").items():
        p = perms[default_username("sustainml", role)]
        assert (p["configure"], p["write"], p["read"]) == expected.as_tuple(), role
        assert p["vhost"] == "sustainml"
    assert all(u["password_hash"] == "" for u in data["users"]), "no password hash is committed"
    assert [u["name"] for u in data["users"] if "administrator" in u["tags"]] == ["admin"]
    assert data["queues"] == data["exchanges"] == data["bindings"] == [], "components declare the topology"
    (policy,) = data["policies"]
    assert policy["apply-to"] == "queues" and policy["definition"]["message-ttl"] > 0


def _check_hash(stored: str, password: str) -> bool:
    raw = base64.b64decode(stored)
    salt, digest = raw[:4], raw[4:]
    return hashlib.sha256(salt + password.encode()).digest() == digest


def test_render_fills_salted_hashes_from_the_environment() -> None:
    env = _passwords()
    rendered = renderer.render(json.loads(COMMITTED.read_text()), env)
    for user in rendered["users"]:
        password = env[renderer.password_variable(user["name"])]
        assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        assert _check_hash(user["password_hash"], password), user["name"]
        assert password not in json.dumps(rendered)
    del env["RABBITMQ_WORKER_PASSWORD"]
    with pytest.raises(SystemExit, match="RABBITMQ_WORKER_PASSWORD"):
        renderer.render(json.loads(COMMITTED.read_text()), env)


@pytest.fixture
def private_broker() -> Any:
    if not rabbitmq_available():
        pytest.skip("RabbitMQ server not installed: cannot boot a private node")
    broker = PrivateBroker("definitions")
    try:
        broker.start()
    except PrivateBrokerError as exc:
        broker.close()
        pytest.skip(f"private RabbitMQ node did not start: {exc}")
    try:
        yield broker
    finally:
        broker.close()


@pytest.mark.integration
@pytest.mark.slow
def test_a_rabbitmq_node_accepts_the_definitions_and_the_worker_role_works(
    private_broker: Any, tmp_path: Path
) -> None:
    env = _passwords()
    rendered = tmp_path / "definitions.json"
    rendered.write_text(json.dumps(renderer.render(json.loads(COMMITTED.read_text()), env)))
    # what the compose broker does at boot, here on a running private node
    private_broker.rabbitmqctl("import_definitions", str(rendered))
    port = private_broker.port

    def url(role: str) -> str:
        user = "admin" if role == "admin" else default_username("sustainml", role)
        return f"amqp://{user}:{env[f'RABBITMQ_{role.upper()}_PASSWORD']}@127.0.0.1:{port}/sustainml"

    topology = Topology("sustainml", "quorum", 20)
    with AmqpTransport(url("worker"), name="defs-worker") as worker:
        declare_all(worker, topology)  # what every worker does on start
        # the health probe's queue (sustainml.cli.health) fits the worker's private-queue rule
        probe = topology.private_queue_spec(
            "control", "health-0123456789ab", (Binding(topology.status_exchange, ""),), expires_ms=15_000
        )
        worker.declare_queue(probe)
        worker.delete_queue(probe.name)
    with AmqpTransport(url("worker"), name="defs-worker-denied") as worker, pytest.raises(TransportError):
        worker.declare_queue(QueueSpec("other.stage.ml_model"))  # another namespace: refused
    with AmqpTransport(url("publisher"), name="defs-publisher") as publisher, pytest.raises(TransportError):
        publisher.declare_queue(topology.stage_queue_spec(PIPELINE[0]))
    with AmqpTransport(url("operator"), name="defs-keda") as operator:
        # what KEDA's rabbitmq scaler does (protocol amqp): a passive declare, no configure right
        assert operator.queue_counts(topology.stage_queue(PIPELINE[0])) == (0, 0)
    with pytest.raises(TransportError):
        AmqpTransport(
            url("worker").replace("pw-worker", "wrong"), name="defs-bad", connect_timeout=5
        ).connect()
