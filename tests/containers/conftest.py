"""sustainml in containers: a broker (or a cluster of three), the orchestrator and worker replicas,
each its own container from the locally built images, on a Docker network the test creates.

Every test here is skipped, with one line saying why and which command fixes it, when no Docker
engine answers or the images for the current sources are not built (``tools/build-images``).
The long scenarios (200 tasks, a cluster losing a node) are marked ``containers_long``; they run
when ``CI`` or ``SUSTAINML_CONTAINER_TESTS=all`` is set and are skipped otherwise (one line too).

Nothing leaves the host: ports are published on 127.0.0.1 only, containers talk over the test's
own network, and everything a test starts carries the label ``org.sustainml.test`` and is removed
at the end (no Ryuk reaper: its image would have to come from a registry).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pika
import pika.exceptions
import pytest

from sustainml.topology import PIPELINE
from tests.support import containers
from tests.support.containers import LABEL, add_note
from tests.support.waiting import wait_until

HERE = Path(__file__).resolve().parent
LONG_ENV = "SUSTAINML_CONTAINER_TESTS"
ROLES = ("rabbitmq", "sustainml")
COOKIE = "sustainml-test-cluster-cookie"


def _long_enabled() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get(LONG_ENV, "").lower() == "all"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "containers: runs sustainml in containers (tools/build-images)")
    config.addinivalue_line(
        "markers", f"containers_long: a long container scenario (runs with CI or {LONG_ENV}=all)"
    )


@functools.cache
def _skip_reason() -> str | None:
    reason = containers.unavailable_reason(*ROLES)
    return f"container tests skipped: {reason}" if reason else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that cannot run here are deselected, and the reason is printed once (a run without
    an engine shows one line, not one per test)."""
    mine = [item for item in items if HERE in Path(str(item.fspath)).resolve().parents]
    if not mine:
        return
    reason = _skip_reason()
    dropped = [i for i in mine if reason or ("containers_long" in i.keywords and not _long_enabled())]
    for item in mine:
        item.add_marker(pytest.mark.containers)
    if not dropped:
        return
    config.hook.pytest_deselected(items=dropped)
    items[:] = [i for i in items if i not in dropped]
    why = reason or f"long container scenario(s) not selected: they run with CI=1 or {LONG_ENV}=all"
    add_note(config, f"tests/containers: {len(dropped)} deselected: {why}")


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2, logs: Any = None
) -> float:
    """``wait_until`` for containers: it takes the container whose last log lines explain a
    time-out (``logs``), and polls every 0.2 s by default, since each check here is a Docker API
    call or a request into a container, not an in-process read."""

    def tail() -> str:
        return "" if logs is None else "\n" + logs.logs(tail=30).decode(errors="replace")

    return wait_until(predicate, timeout, what, interval=interval, detail=tail)


class Deployment:
    """Containers on one test network; ``close()`` removes every one of them and the network."""

    def __init__(self, tmp_path: Path) -> None:
        containers.configure_testcontainers()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from testcontainers.core.container import DockerContainer

        self._container_cls = DockerContainer
        self.tags = containers.image_tags()
        self.client = containers.client()
        self.uid = uuid.uuid4().hex[:8]
        self.namespace = f"t-{self.uid}"
        self.password = uuid.uuid4().hex
        # one deployment, one signing key: the containers share no data directory
        self.signing_key = uuid.uuid4().hex + uuid.uuid4().hex
        self.network = self.client.networks.create(
            f"sml-{self.uid}", driver="bridge", labels={LABEL: self.uid}
        )
        self.data = tmp_path / "data"  # the orchestrator's SQLite TaskDB, read by the test too
        self.data.mkdir()
        self.data.chmod(0o777)  # the image's user (uid 10001) writes it
        self.started: list[Any] = []
        self.api: str | None = None

    # -- containers ------------------------------------------------------------------------------
    def _run(
        self,
        image: str,
        name: str,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        ports: dict[int, Any] | None = None,
        volumes: dict[str, dict[str, str]] | None = None,
    ) -> Any:
        c = self._container_cls(image)
        c.with_name(f"sml-{self.uid}-{name}")
        c.with_kwargs(hostname=name, network=self.network.name, labels={LABEL: self.uid})
        if command:
            c.with_command(command)
        for host, mount in (volumes or {}).items():
            c.with_volume_mapping(host, mount["bind"], mount["mode"])
        for k, v in (env or {}).items():
            c.with_env(k, v)
        if ports:
            published: dict[Any, Any] = dict(ports)  # the docker SDK's (host ip, port) form
            c.ports = published
        c.start()
        self.started.append(c)
        return c.get_wrapped_container()

    def broker(self, name: str = "rabbitmq", wait: bool = True) -> Any:
        """A broker node; its AMQP port is published on 127.0.0.1 for the test's own checks.
        With ``wait``, returns once it accepts an AMQP connection."""
        c = self._run(
            self.tags["rabbitmq"],
            name,
            env={
                "RABBITMQ_DEFAULT_USER": "sustainml",
                "RABBITMQ_DEFAULT_PASS": self.password,
                "RABBITMQ_ERLANG_COOKIE": COOKIE,
            },
            ports={5672: ("127.0.0.1", None)},
        )
        if wait:
            self.wait_broker(c)
        return c

    def wait_broker(self, container: Any, timeout: float = 120) -> float:
        url = self.host_broker_url(container)

        def accepts() -> bool:
            try:
                pika.BlockingConnection(pika.URLParameters(url)).close()
                return True
            except pika.exceptions.AMQPError:
                return False

        quiet = logging.getLogger("pika")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # refused connections while the node boots are expected
        try:
            return wait_for(accepts, timeout, f"broker {container.name}", interval=0.5, logs=container)
        finally:
            quiet.setLevel(level)

    def broker_url(self, hosts: list[str]) -> str:
        """The URL the components use: one host, or several (comma-separated) for a cluster."""
        return f"amqp://sustainml:{self.password}@{','.join(f'{h}:5672' for h in hosts)}/%2F"

    def host_broker_url(self, container: Any) -> str:
        container.reload()
        port = int(container.attrs["NetworkSettings"]["Ports"]["5672/tcp"][0]["HostPort"])
        return containers.amqp_url("127.0.0.1", port, "sustainml", self.password)

    def env(self, broker_url: str, **extra: str) -> dict[str, str]:
        base = {
            "SUSTAINML_BROKER_URL": broker_url,
            "SUSTAINML_NAMESPACE": self.namespace,
            "SUSTAINML_DATA_DIR": "/tmp/sustainml",
            "SUSTAINML_HEARTBEAT_INTERVAL": "0.5",
            "SUSTAINML_AMQP_HEARTBEAT": "5",
            "SUSTAINML_LOG_LEVEL": "WARNING",
            "SUSTAINML_SIGNING_KEY": self.signing_key,
        }
        base.update(extra)
        return base

    def orchestrator(self, broker_url: str, **extra: str) -> Any:
        c = self._run(
            self.tags["sustainml"],
            "orchestrator",
            command=["orchestrator", "--http", "0.0.0.0:5001"],
            # the API listens on the container's own interface, published on the host's loopback only
            env=self.env(
                broker_url,
                SUSTAINML_DB_URL="sqlite:////data/taskdb.sqlite3",
                SUSTAINML_HTTP_ALLOW_REMOTE="1",
                **extra,
            ),
            ports={5001: ("127.0.0.1", None)},
            volumes={str(self.data): {"bind": "/data", "mode": "rw"}},
        )
        c.reload()
        port = int(c.attrs["NetworkSettings"]["Ports"]["5001/tcp"][0]["HostPort"])
        self.api = f"http://127.0.0.1:{port}"
        wait_for(self._healthy, 120, "the orchestrator's /healthz", logs=c)
        return c

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def worker(self, node: str, replica: int, broker_url: str, **extra: str) -> Any:
        return self._run(
            self.tags["sustainml"],
            f"{node.replace('_', '-')}-{replica}",
            command=["worker", node],
            env=self.env(broker_url, **extra),
        )

    def wait_replicas(self, per_stage: int, timeout: float = 120) -> float:
        """Wait until the orchestrator sees ``per_stage`` live replicas of every stage."""

        def ready() -> bool:
            try:
                replicas = httpx.get(f"{self.api}/v1/nodes", timeout=5).json()["replicas"]
            except (httpx.HTTPError, ValueError, KeyError):
                return False
            live: dict[str, int] = {}
            for r in replicas:
                if r["status"] != "INACTIVE":
                    live[r["node_name"]] = live.get(r["node_name"], 0) + 1
            return all(live.get(s.node, 0) >= per_stage for s in PIPELINE)

        return wait_for(ready, timeout, f"{per_stage} live replica(s) of every stage", interval=0.5)

    def container(self, name: str) -> Any:
        return self.client.containers.get(f"sml-{self.uid}-{name}")

    def ip(self, name: str) -> str:
        c = self.container(name)
        return str(c.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"])

    def rabbitmqctl(self, node: str, *args: str) -> str:
        code, out = self.container(node).exec_run(["rabbitmqctl", "-q", "--timeout", "30", *args])
        assert code == 0, f"rabbitmqctl {' '.join(args)} on {node}: {out.decode(errors='replace')}"
        return str(out.decode(errors="replace"))

    def logs(self, name: str, tail: int = 40) -> str:
        return str(self.container(name).logs(tail=tail).decode(errors="replace"))

    # -- tasks -----------------------------------------------------------------------------------
    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(f"{self.api}/v1/tasks", json=body, timeout=30)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def close(self) -> None:
        for c in reversed(self.started):
            try:
                c.get_wrapped_container().remove(force=True, v=True)
            except Exception as exc:  # already gone is fine; anything else is worth seeing
                if "No such container" not in str(exc) and "404" not in str(exc):
                    print(f"removing {c}: {exc}")
        # anything labelled for this test that escaped (e.g. started by hand in a test)
        for c in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.uid}"}):
            c.remove(force=True, v=True)
        self.network.remove()
        self.client.close()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(tmp_path)
    try:
        yield d
    finally:
        d.close()


def report(name: str, figures: dict[str, Any]) -> None:
    """Print the scenario's figures (pytest -s shows them; CI logs keep them)."""
    print(f"\n[{name}] " + json.dumps(figures, sort_keys=True))
