"""The shipped compose file brought up for real from the locally built images: every service
healthy, a task submitted through the API answered, then HW_RESOURCES scaled to three replicas
with one command and the next tasks answered.

The project gets its own name, random passwords and free loopback ports (the host may run its own
broker on 5672), and is taken down with its volumes at the end.
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.containers.conftest import report, wait_for
from tests.support import containers

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "compose" / "docker-compose.yml"
# the orchestrator stops at start when its broker account may not declare one of its queues
REFUSED = re.compile(r"access to queue '([^']+)' in vhost '[^']*' refused for user 'sustainml-orchestrator'")


def compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Compose:
    def __init__(self, tmp_path: Path) -> None:
        self.cmd = compose_command()
        self.project = f"smltest{uuid.uuid4().hex[:8]}"
        self.http_port = free_port()
        # the images built from these sources, by hash: the stable aliases may point elsewhere
        tags = containers.image_tags()
        missing = containers.missing_images("postgres")
        if missing:
            pytest.skip(f"image {missing[0]} not built for the current sources: run `tools/build-images`")
        images = {
            "SUSTAINML_IMAGE": tags["sustainml"],
            "RABBITMQ_IMAGE": tags["rabbitmq"],
            "POSTGRES_IMAGE": tags["postgres"],
        }
        env = []
        for line in (COMPOSE_FILE.parent / ".env.example").read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.endswith("_PASSWORD"):
                value = secrets.token_hex(12)
            elif key in images:
                value = images[key]
            elif key == "COMPOSE_PROJECT_NAME":
                value = self.project
            elif key == "SUSTAINML_HTTP_PORT":
                value = str(self.http_port)
            elif key in ("RABBITMQ_AMQP_PORT", "RABBITMQ_MANAGEMENT_PORT", "RABBITMQ_PROMETHEUS_PORT"):
                value = str(free_port())
            env.append(f"{key}{sep}{value}" if sep else line)
        self.env_file = tmp_path / "compose.env"
        self.env_file.write_text("\n".join(env) + "\n")
        self.api = f"http://127.0.0.1:{self.http_port}"

    def run(self, *args: str, timeout: float = 300) -> str:
        argv = [
            *self.cmd,
            "-p",
            self.project,
            "--env-file",
            str(self.env_file),
            "-f",
            str(COMPOSE_FILE),
            *args,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr[-2000:]}"
        return done.stdout

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def submit_and_wait(self, description: str) -> dict[str, object]:
        r = httpx.post(f"{self.api}/v1/tasks", json={"problem_short_description": description}, timeout=30)
        assert r.status_code == 201, r.text
        tid = r.json()["task_id"]
        url = f"{self.api}/v1/tasks/{tid['problem_id']}/{tid['iteration_id']}"
        body = httpx.get(url, params={"wait": 120, "omit": "input_batch,raw_model"}, timeout=130).json()
        return dict(body)

    def live_replicas(self) -> Counter[str]:
        replicas = httpx.get(f"{self.api}/v1/nodes", timeout=5).json()["replicas"]
        return Counter(r["node_name"] for r in replicas if r["status"] != "INACTIVE")


@pytest.fixture
def compose(tmp_path: Path) -> Iterator[Compose]:
    c = Compose(tmp_path)
    try:
        yield c
    finally:
        subprocess.run(
            [*c.cmd, "-p", c.project, "--env-file", str(c.env_file), "-f", str(COMPOSE_FILE), "down", "-v"],
            capture_output=True,
            timeout=180,
        )


@pytest.mark.containers_long
@pytest.mark.timeout(900)
def test_the_compose_deployment_answers_a_task_and_scales_a_stage(compose: Compose) -> None:
    began = time.monotonic()
    compose.run("up", "-d")
    up_s = time.monotonic() - began
    refused: list[str] = []

    def healthy_or_refused() -> bool:
        if compose.healthy():
            return True
        logs = compose.run("logs", "--tail", "200", "orchestrator")
        refused[:] = sorted(set(REFUSED.findall(logs)))
        return bool(refused)

    try:
        wait_for(healthy_or_refused, 240, "the orchestrator's /healthz", interval=3.0)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n{compose.run('ps')}\n{compose.run('logs', '--tail', '30', 'orchestrator')}"
        ) from None
    if refused:
        pytest.fail(
            f"the broker refuses the orchestrator account queue(s) {', '.join(refused)}: the role's "
            "permissions (sustainml.permissions, deploy/compose/rabbitmq/definitions.json) lag behind "
            "the queues the orchestrator declares"
        )
    healthy_s = time.monotonic() - began
    body = compose.submit_and_wait("detect defects in photos of welded seams")
    assert body["state"] == "succeeded", body

    t0 = time.monotonic()
    compose.run("up", "-d", "--scale", "hw_resources=3")
    wait_for(lambda: compose.live_replicas()["HW_RESOURCES"] == 3, 120, "three HW_RESOURCES replicas")
    scale_s = time.monotonic() - t0
    states = [
        compose.submit_and_wait(f"translate support tickets, batch item {i}")["state"] for i in range(3)
    ]
    assert states == ["succeeded"] * 3, states
    report(
        "compose",
        {
            "up_s": round(up_s, 1),
            "healthy_s": round(healthy_s, 1),
            "scale_to_3_s": round(scale_s, 1),
            "replicas": dict(compose.live_replicas()),
        },
    )
