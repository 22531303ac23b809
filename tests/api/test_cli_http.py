"""`sustainml orchestrator --http` and `sustainml up` serving the API, as a user runs them: the
server answers, SIGTERM / Ctrl-C / `POST /terminate` stop the orchestrator and uvicorn cleanly
(exit code 0, port released)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sustainml.config import Settings
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    out = dict(os.environ)
    for key in [k for k in out if k.startswith("SUSTAINML_")]:
        del out[key]
    out.update(
        SUSTAINML_BROKER_URL=settings.broker_url,
        SUSTAINML_NAMESPACE=settings.namespace,
        SUSTAINML_DATA_DIR=str(tmp_path),
        SUSTAINML_HEARTBEAT_INTERVAL="0.5",
    )
    return out


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sustainml.cli", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:  # only the processes this test started
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_orchestrator_http_stops_on_sigterm(
    env: dict[str, str], spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    port = _free_port()
    proc = spawn(["orchestrator", "--http", f"127.0.0.1:{port}"], env)
    url = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200,
        30,
        "the API to answer",
        ignore=(httpx.TransportError,),
    )
    nodes = httpx.get(f"{url}/v1/nodes", timeout=5).json()
    assert set(nodes["nodes"].values()) == {"INACTIVE"} and nodes["replicas"] == []  # no workers started
    # a client that keeps an SSE stream open must not hold the shutdown up
    with httpx.Client(timeout=httpx.Timeout(30, read=30)) as c, c.stream("GET", f"{url}/v1/events") as stream:
        assert next(stream.iter_lines()).startswith("id: ")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, proc.stdout.read().decode() if proc.stdout else ""
    assert time.monotonic() - started < 15
    assert _port_closed(port)
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert f"HTTP API on {url}" in output


def test_terminate_route_and_token_from_the_environment(
    env: dict[str, str], spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    port = _free_port()
    token = "cli-token-123"
    proc = spawn(["orchestrator", "--http", f"127.0.0.1:{port}"], {**env, "SUSTAINML_API_TOKEN": token})
    url = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200,
        30,
        "the API to answer",
        ignore=(httpx.TransportError,),
    )
    assert httpx.post(f"{url}/terminate", timeout=5).status_code == 401
    auth = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{url}/terminate", headers=auth, timeout=5).status_code == 405  # POST only
    assert proc.poll() is None
    r = httpx.post(f"{url}/terminate", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert r.json() == {"message": "Terminating...<br>"}
    assert proc.wait(20) == 0
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert token not in output  # never logged
    assert _port_closed(port)


def test_bad_http_address_is_one_line(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sustainml.cli", "orchestrator", "--http", "nowhere"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "expected host:port or 'off'" in done.stderr


@pytest.mark.slow
def test_up_serves_the_api_in_the_orchestrator(
    env: dict[str, str], spawn: Callable[..., subprocess.Popen[bytes]]
) -> None:
    port = _free_port()
    proc = spawn(["up"], {**env, "SUSTAINML_HTTP": f"127.0.0.1:{port}"})
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=60) as c:

        def all_idle() -> bool:
            status = c.get("/status").json()["status"]
            return set(status.values()) == {"IDLE"}

        wait_until(
            all_idle, 120, "the six workers to report IDLE through the API", ignore=(httpx.TransportError,)
        )
        task_id = c.post(
            "/user_input", json={"problem_short_description": "detect fraud in card payments"}
        ).json()["task_id"]
        results = c.post("/results", json={"node_id": 9, "task_id": task_id, "timeout": 60})
        assert results.status_code == 200 and results.json()["task_id"] == task_id
        assert results.json()["CARBON_FOOTPRINT"]["carbon_intensity"] > 0
    proc.send_signal(signal.SIGINT)  # Ctrl-C: the supervisor stops every component
    assert proc.wait(60) == 0
    assert _port_closed(port)
