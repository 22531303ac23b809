"""Secrets (broker password, API token, encoder API key) never appear in logs, status messages,
results or error text.

A deployment runs on the real broker under a user whose password is distinctive, with an API
token and an LLM encoder backend whose URL and key are distinctive too (the backend is unreachable,
so its error travels into the task's result as the fallback reason). Every log record (DEBUG, pika
included), the status report and the complete result are searched for the secrets; the connection
failure of the CLI shows the URL without its password."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from sustainml.config import Settings
from sustainml.deployment import LocalDeployment, amqp_transports
from sustainml.messages import UserInput
from sustainml.redact import MASK, redact_for, redact_text, redact_url, secrets_of, url_password
from sustainml.topology import Topology, delete_all
from sustainml.transport import amqp_transport
from sustainml.transport.amqp import AmqpTransport
from sustainml.transport.base import BrokerUnavailable

BROKER_SECRET = f"Brk-{uuid.uuid4().hex[:12]}"
TOKEN_SECRET = f"Tok-{uuid.uuid4().hex[:12]}"
KEY_SECRET = f"Key-{uuid.uuid4().hex[:12]}"
LLM_URL_SECRET = f"Url-{uuid.uuid4().hex[:12]}"
SECRETS = (BROKER_SECRET, TOKEN_SECRET, KEY_SECRET, LLM_URL_SECRET)


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


# ------------------------------------------------------------------------------ the helper
def test_redaction_helpers() -> None:
    assert redact_url("amqps://w:p%40ss@host:5671/vh?x=1") == "amqps://w:***@host:5671/vh?x=1"
    assert redact_url("postgresql+psycopg://u:pw@db/x") == "postgresql+psycopg://u:***@db/x"
    assert redact_url("amqp://guest@h/") == "amqp://guest@h/"  # no password, nothing to hide
    text = "GET http://a:b1@h/ Authorization: Bearer abc.DEF-1 api_key=zz9 and the token s3cr3t"
    out = redact_text(text, "s3cr3t")
    assert out == "GET http://a:***@h/ Authorization: Bearer *** api_key=*** and the token ***"
    assert url_password("amqp://u:p%40ss@h/") == "p@ss"
    s = Settings(
        broker_url="amqp://u:p%40ssword@h/", db_url="postgresql://x:dbpw1234@db/t", api_token="tok12345"
    )
    assert set(secrets_of(s)) >= {"p@ssword", "dbpw1234", "tok12345"}
    # a library that prints the decoded password is caught too
    assert redact_for(s, "login failed for p@ssword") == f"login failed for {MASK}"


# ------------------------------------------------------------------------------ a real deployment
@pytest.fixture(scope="module")
def secret_user(amqp_url: str) -> Iterator[str]:
    parts = urlsplit(amqp_url)
    if shutil.which("rabbitmqctl") is None or parts.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip("needs rabbitmqctl for the local broker")
    user = f"t-secret-{uuid.uuid4().hex[:8]}"
    add = subprocess.run(
        ["rabbitmqctl", "--quiet", "add_user", user],
        input=BROKER_SECRET,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert add.returncode == 0, add.stderr
    try:
        perm = subprocess.run(
            [
                "rabbitmqctl",
                "--quiet",
                "set_permissions",
                "-p",
                "/",
                user,
                "^t-.*",
                "^(t-.*|amq\\.default)$",
                "^t-.*",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert perm.returncode == 0, perm.stderr
        yield f"amqp://{user}:{BROKER_SECRET}@{parts.hostname}:{parts.port or 5672}/%2F"
    finally:
        subprocess.run(["rabbitmqctl", "--quiet", "delete_user", user], capture_output=True, timeout=120)


def _noop(*args: Any) -> None:
    """Later stages leave their outputs empty (their logic is not what this test is about)."""


def test_no_secret_in_logs_status_or_results(
    secret_user: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SUSTAINML_API_TOKEN", TOKEN_SECRET)
    monkeypatch.setenv("SUSTAINML_ENCODER_CACHE_DIR", str(tmp_path / "encoder"))
    settings = Settings(
        broker_url=secret_user,
        namespace=f"t-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        heartbeat_interval=0.5,
        rpc_timeout=10.0,
        api_token=TOKEN_SECRET,
        # Port 9 (discard) on loopback: nothing answers, so the backend fails and its error -
        # which names the endpoint - becomes the fallback reason stored in the result.
        encoder_backend="openai",
        encoder_url=f"http://llm:{LLM_URL_SECRET}@127.0.0.1:9/v1/chat/completions",
        encoder_model="some-model",
        encoder_api_key=KEY_SECRET,
        encoder_timeout="2",
    )
    caplog.set_level(logging.DEBUG)
    try:
        with LocalDeployment(
            settings,
            amqp_transports(settings),
            callbacks={"ml_model": _noop, "hw_resources": _noop, "carbon_footprint": _noop},
        ) as dep:
            client = dep.client()
            tid = client.submit(
                UserInput(problem_short_description="detect cracks in photos of welds"), watch=True
            )
            result = client.wait(tid, 90)
            status = client.status()
        assert result.state == "succeeded", result
        result_text = json.dumps(result.to_json(), default=str)
        # The fallback happened and its reason is in the result - with the password masked.
        assert "the built-in classifier answered" in result_text
        assert "llm:***@127.0.0.1:9" in result_text
        assert _leaks(result_text) == []
        assert _leaks(json.dumps(status, default=str)) == []
        logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
        assert len(caplog.records) > 20  # DEBUG logging really was on
        assert _leaks(logs) == []
    finally:
        with AmqpTransport(secret_user, name="cleanup") as t:
            delete_all(t, Topology(settings.namespace))


def test_connection_failure_shows_the_url_without_password() -> None:
    url = f"amqp://someone:{BROKER_SECRET}@127.0.0.1:1/%2F"
    with pytest.raises(BrokerUnavailable) as info:
        amqp_transport(Settings(broker_url=url), "t", connect_timeout=1).connect()
    text = str(info.value)
    assert "amqp://127.0.0.1:1/" in text and _leaks(text) == []
    with pytest.raises(ValueError) as bad:
        amqp_transport(Settings(broker_url=f"amqp://u:{BROKER_SECRET}@h:notaport/"), "t")
    assert _leaks(str(bad.value)) == []


@pytest.mark.parametrize("args", [["dlq", "list"], ["-vv", "worker", "ml_model_metadata"], ["status"]])
def test_cli_errors_and_debug_logs_hide_the_password(args: list[str]) -> None:
    env = dict(os.environ, SUSTAINML_BROKER_URL=f"amqp://someone:{BROKER_SECRET}@127.0.0.1:1/%2F")
    env["SUSTAINML_API_TOKEN"] = TOKEN_SECRET
    proc = subprocess.run(
        [sys.executable, "-m", "sustainml.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "127.0.0.1:1" in output, output  # the error names where it tried
    assert _leaks(output) == [], output
