"""Pipeline fixtures: the same scenarios on the in-memory transport and on the real broker."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sustainml.config import Settings
from sustainml.deployment import LocalDeployment, TransportFactory, amqp_transports, memory_transports
from sustainml.topology import Topology, delete_all

DeploymentFactory = Callable[..., LocalDeployment]


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.integration)])
def transport_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pipeline_settings(transport_kind: str, request: pytest.FixtureRequest, tmp_path: Any) -> Settings:
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    broker = request.getfixturevalue("amqp_url") if transport_kind == "amqp" else "amqp://unused/"
    return Settings(
        broker_url=broker,
        namespace=namespace,
        data_dir=tmp_path,
        heartbeat_interval=0.5,
        rpc_timeout=5.0,
        concurrency=2,
        prefetch=8,
    )


@pytest.fixture
def transports(transport_kind: str, pipeline_settings: Settings) -> TransportFactory:
    if transport_kind == "memory":
        return memory_transports()
    return amqp_transports(pipeline_settings)


@pytest.fixture
def deploy(
    pipeline_settings: Settings, transports: TransportFactory, transport_kind: str
) -> Iterator[DeploymentFactory]:
    """Start a LocalDeployment (kwargs as LocalDeployment's); everything is torn down after the test."""
    started: list[LocalDeployment] = []

    def factory(**kwargs: Any) -> LocalDeployment:
        dep = LocalDeployment(pipeline_settings, transports, **kwargs).start()
        started.append(dep)
        return dep

    yield factory
    for dep in started:
        dep.stop()
    if transport_kind == "amqp":
        _delete_namespace(pipeline_settings)


def _delete_namespace(settings: Settings) -> None:
    from sustainml.transport.amqp import AmqpTransport

    with AmqpTransport(settings.broker_url, name="cleanup") as t:
        delete_all(t, Topology(settings.namespace))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards (skipped locally when the
    server does not answer, failed under CI)."""
    import os

    import sqlalchemy as sa

    admin_url = os.environ.get(
        "SUSTAINML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    name = f"sustainml_test_{uuid.uuid4().hex[:8]}"
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable in CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
