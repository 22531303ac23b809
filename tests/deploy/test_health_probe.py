"""sustainml.cli.health, the probe the compose health checks and the Kubernetes probes run:
healthy only when a replica of the stage on this host sends heartbeats; an HTTP check for the
orchestrator's /healthz; exit codes 0/1 with the reason on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from sustainml.cli.health import replica_host
from sustainml.config import Settings

PROBE = [sys.executable, "-m", "sustainml.cli.health"]


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUSTAINML_")}
    env.update(
        SUSTAINML_BROKER_URL=settings.broker_url,
        SUSTAINML_NAMESPACE=settings.namespace,
        SUSTAINML_HEARTBEAT_INTERVAL="0.5",
        SUSTAINML_DATA_DIR=str(settings.data_dir),
    )
    return env


def test_replica_host_parses_runtime_replica_ids() -> None:
    assert replica_host("worker-7f9c-12-ab12cd") == "worker-7f9c"  # hostnames may contain '-'
    assert replica_host("h1-345-ffee00") == "h1"
    assert replica_host("hw_constraints-1") == ""  # in-process replicas name no host


@pytest.mark.integration
def test_worker_probe_passes_only_for_a_live_replica_on_this_host(settings: Settings) -> None:
    env = _env(settings)
    worker = subprocess.Popen([sys.executable, "-m", "sustainml.cli", "worker", "hw_constraints"], env=env)
    try:
        ok = subprocess.run(
            [*PROBE, "--node", "hw_constraints", "--timeout", "60"], env=env, capture_output=True, text=True
        )
        assert ok.returncode == 0, ok.stderr
        assert "healthy: HW_CONSTRAINTS replica" in ok.stdout
        missing = subprocess.run(
            [*PROBE, "--node", "ml_model", "--timeout", "2"], env=env, capture_output=True, text=True
        )
        assert missing.returncode == 1
        assert "no heartbeat from ML_MODEL" in missing.stderr
    finally:
        worker.terminate()
        worker.wait(40)
    gone = subprocess.run(
        [*PROBE, "--node", "hw_constraints", "--timeout", "2"], env=env, capture_output=True, text=True
    )
    assert gone.returncode == 1, "a stopped replica must not look healthy"
    broker = subprocess.run([*PROBE, "--timeout", "10"], env=env, capture_output=True, text=True)
    assert broker.returncode == 0 and "broker accepts connections" in broker.stdout
    secret = "Pw-x7q2-not-it"
    bad = subprocess.run(
        [*PROBE, "--timeout", "5"],
        env={**env, "SUSTAINML_BROKER_URL": settings.broker_url.replace("guest:guest", f"guest:{secret}")},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("unhealthy:")
    assert secret not in bad.stderr, "the password never appears in the probe's output"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_probe(http_url: str) -> None:
    ok = subprocess.run([*PROBE, "--http", f"{http_url}/healthz"], capture_output=True, text=True)
    assert ok.returncode == 0 and "-> 200" in ok.stdout
    bad = subprocess.run([*PROBE, "--http", f"{http_url}/down"], capture_output=True, text=True)
    assert bad.returncode == 1 and "HTTP 503" in bad.stderr
    usage = subprocess.run(
        [*PROBE, "--http", f"{http_url}/healthz", "--config-only"], capture_output=True, text=True
    )
    assert usage.returncode == 2
