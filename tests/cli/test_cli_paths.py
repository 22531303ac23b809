"""The command line on the paths a new user walks: each test pins one break that made people give
up (a hang after a finished task, a lost embedded task, an iteration that asked for a description
it inherits, a broker error that named the wrong cause, log noise, a raw traceback, an
"unsupported" answer shown as an internal error, a cancel that claimed to cancel a finished task).

CLI commands run as subprocesses, like a user runs them; the pipeline they talk to runs in this
test process on the real broker, in a namespace of its own (deleted afterwards)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sustainml.config import Settings
from sustainml.deployment import LocalDeployment, amqp_transports
from sustainml.messages import TaskId, UserInput
from sustainml.orchestrator.client import Client
from sustainml.topology import PIPELINE, Topology
from sustainml.transport.amqp import AmqpTransport
from sustainml.transport.base import BrokerUnavailable
from tests.support.cli import run_cli

_run = run_cli


@pytest.fixture
def deployment(settings: Settings, tmp_path: Path) -> Iterator[tuple[LocalDeployment, dict[str, str]]]:
    """The orchestrator and the six shipped nodes on the broker, and the environment a CLI
    subprocess needs to reach them."""
    db = f"sqlite:///{tmp_path / 'taskdb.sqlite3'}"
    with LocalDeployment(settings, amqp_transports(settings), db_url=db) as dep:
        env = {
            "SUSTAINML_BROKER_URL": settings.broker_url,
            "SUSTAINML_NAMESPACE": settings.namespace,
            "SUSTAINML_DATA_DIR": str(tmp_path / "cli-data"),
        }
        yield dep, env


# -- no broker needed ------------------------------------------------------------------------------
def test_non_utf8_input_is_one_line_naming_the_flag_and_the_byte(tmp_path: Path) -> None:
    bad = tmp_path / "task.json"
    bad.write_bytes(b'{"problem_short_description": "caf\xe9 menus"}')
    proc = _run("submit", "--embedded", "--input", str(bad))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "UnicodeDecodeError" not in proc.stderr
    assert f"--input {bad}: not UTF-8 text (byte 0xe9" in proc.stderr
    batch = tmp_path / "tasks.jsonl"
    batch.write_bytes(b'{"problem_short_description": "ok"}\n\xff\n')
    proc = _run("submit", "--embedded", "--batch", str(batch))
    assert proc.returncode == 1 and f"--batch {batch}: not UTF-8 text (byte 0xff" in proc.stderr


def test_embedded_submit_without_wait_waits_for_its_task() -> None:
    proc = _run("submit", "--embedded", "-d", "forecast daily sales of a bakery")
    assert proc.returncode == 0, proc.stderr
    assert "task 1.1: succeeded" in proc.stdout
    assert "follow it" not in proc.stdout  # no pointer to a task that would be gone
    for stage in PIPELINE:
        assert stage.node in proc.stdout
    refused = _run("submit", "--embedded", "--no-wait", "-d", "x")
    assert refused.returncode == 1 and "drop --no-wait" in refused.stderr


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        ("amqp://guest:guest@127.0.0.1:1/", "connection refused"),
        ("amqp://guest:guest@nothing.invalid:5672/", "host name does not resolve"),
    ],
)
def test_unreachable_broker_is_reported_at_once_with_its_cause(url: str, cause: str) -> None:
    transport = AmqpTransport(url, connect_timeout=30.0, retry_refused=False)
    began = time.monotonic()
    with pytest.raises(BrokerUnavailable) as info:
        transport.connect()
    # Not retried until the 30 s connect timeout: a command says at once that nothing listens.
    assert time.monotonic() - began < 10
    assert cause in str(info.value)
    proc = _run("--broker", url, "status", timeout=60)
    assert proc.returncode == 1 and cause in proc.stderr
    assert "Traceback" not in proc.stderr and " ERROR " not in proc.stderr


# -- real broker -----------------------------------------------------------------------------------
@pytest.mark.integration
def test_each_broker_failure_names_its_cause_without_log_noise(amqp_url: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(amqp_url)
    host = f"{parts.hostname}:{parts.port or 5672}"
    cases = {
        "wrong credentials": urlunsplit(("amqp", f"guest:wr0ng-pw@{host}", "/", "", "")),
        "virtual host 'no-such-vhost' refused": urlunsplit(
            ("amqp", f"{parts.username}:{parts.password}@{host}", "/no-such-vhost", "", "")
        ),
        "TLS handshake failed": urlunsplit(
            ("amqps", f"{parts.username}:{parts.password}@{host}", "/", "", "")
        ),
    }
    for cause, url in cases.items():
        for command in (["status"], ["dlq", "list"]):
            # the URL (with its password) from the environment, as users must pass credentials
            proc = _run(*command, env={"SUSTAINML_BROKER_URL": url}, timeout=60)
            assert proc.returncode == 1, (command, proc.stdout)
            assert cause in proc.stderr, (command, proc.stderr)
            assert "is it running" not in proc.stderr  # the broker answered: it is running
            assert "Traceback" not in proc.stderr and " ERROR " not in proc.stderr, proc.stderr
            assert "wr0ng-pw" not in proc.stderr


@pytest.mark.integration
def test_submit_wait_returns_when_the_result_is_in(
    deployment: tuple[LocalDeployment, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    dep, env = deployment
    caplog.set_level(logging.WARNING, logger="pika")
    for _ in range(8):  # the hang came in 3 runs of 10
        client = Client(dep.settings)
        task = client.submit(UserInput(problem_short_description="classify support emails"), watch=True)
        assert client.wait(task, 60).state == "succeeded"
        began = time.monotonic()
        client.close()
        # Closing waited 5 s for a cancel-ok that never came when the broker had cancelled the
        # consumer of the deleted watch queue first.
        assert time.monotonic() - began < 4
    assert "consumer not found" not in caplog.text
    proc = _run("submit", "-d", "detect defects in photos of welded seams", "--wait", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "succeeded" in proc.stdout and "consumer not found" not in proc.stderr


@pytest.mark.integration
def test_batch_without_wait_prints_each_lines_task_and_with_wait_follows_them_all(
    deployment: tuple[LocalDeployment, dict[str, str]], tmp_path: Path
) -> None:
    dep, env = deployment
    batch = tmp_path / "tasks.jsonl"
    lines = ["forecast daily sales", json.dumps({"modality": 5}), "count cars in parking photos"]
    batch.write_text("\n".join(lines) + "\n")
    proc = _run("submit", "--batch", str(batch), env=env)
    assert proc.returncode == 1, proc.stderr  # line 2 refused
    submitted = dict(line.split(": task ") for line in proc.stdout.splitlines())
    assert set(submitted) == {"line 1", "line 3"}
    assert f"refused: --batch {batch}:2: UserInput.modality" in proc.stderr
    assert f"submitted 2 task(s) from {batch}; 1 line(s) refused (2)" in proc.stderr
    p, i = submitted["line 3"].split(".")
    stored = dep.client().result(TaskId(problem_id=int(p), iteration_id=int(i))).user_input
    assert stored is not None and stored.problem_short_description == "count cars in parking photos"
    good = tmp_path / "good.jsonl"
    good.write_text("forecast daily sales\ndetect defects in photos of welded seams\n")
    followed = _run("submit", "--batch", str(good), "--wait", env=env)
    assert followed.returncode == 0, followed.stderr
    assert "2 tasks" in followed.stdout  # the results table's title
    assert f"submitted 2 task(s) from {good}; 2 succeeded" in followed.stderr


@pytest.mark.integration
def test_iteration_without_description_inherits_it(
    deployment: tuple[LocalDeployment, dict[str, str]],
) -> None:
    _dep, env = deployment
    first = _run("submit", "-d", "translate product manuals to Spanish", "--json", env=env)
    assert first.returncode == 0, first.stderr
    problem = json.loads(first.stdout)["task_id"]["problem_id"]
    again = _run("submit", "--problem", str(problem), "--hardware", "A100", "--json", env=env)
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["task_id"] == {"problem_id": problem, "iteration_id": 2}
    assert result["USER_INPUT"]["problem_short_description"] == "translate product manuals to Spanish"
    assert result["HW_CONSTRAINTS"]["hardware_required"][0].startswith("A100")  # resolved in the catalogue
    explicit = _run("submit", "--problem", str(problem), "--previous-iteration", "1", "--json", env=env)
    assert explicit.returncode == 0, explicit.stderr
    assert json.loads(explicit.stdout)["task_id"]["iteration_id"] == 3
    assert not json.loads(explicit.stdout)["HW_CONSTRAINTS"]["hardware_required"][0].startswith("A100")


@pytest.mark.integration
def test_unsupported_configuration_request_says_unsupported(
    deployment: tuple[LocalDeployment, dict[str, str]],
) -> None:
    _dep, env = deployment
    proc = _run("config", "ml_model", "no such request", env=env)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["outcome"] == "unsupported"
    assert "unsupported: ML_MODEL does not answer the configuration request 'no such request'" in proc.stderr
    ok = _run("config", "hw_resources", "hardwares", env=env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["outcome"] == "ok"


@pytest.mark.integration
def test_cancel_of_a_finished_task_says_so_and_changes_nothing(
    deployment: tuple[LocalDeployment, dict[str, str]],
) -> None:
    dep, env = deployment
    client = dep.client()
    task = client.submit(UserInput(problem_short_description="forecast daily sales"), watch=True)
    assert client.wait(task, 60).state == "succeeded"
    proc = _run("cancel", str(task.problem_id), str(task.iteration_id), env=env)
    assert proc.returncode == 1
    assert f"task {task} already succeeded: nothing to cancel" in proc.stderr
    assert "cancelled task" not in proc.stdout
    assert client.result(task).state == "succeeded"


def test_the_default_taskdb_is_per_namespace(tmp_path: Path) -> None:
    a = Settings(namespace="alpha", data_dir=tmp_path)
    b = Settings(namespace="beta", data_dir=tmp_path)
    assert a.effective_db_url == f"sqlite:///{tmp_path / 'alpha' / 'taskdb.sqlite3'}"
    assert a.effective_db_url != b.effective_db_url
    assert Settings(namespace="alpha", data_dir=tmp_path, db_url="sqlite:///x.db").effective_db_url == (
        "sqlite:///x.db"
    )


@pytest.mark.integration
def test_teardown_refuses_while_nodes_run_then_removes_the_namespace(
    settings: Settings, tmp_path: Path
) -> None:
    env = {
        "SUSTAINML_BROKER_URL": settings.broker_url,
        "SUSTAINML_NAMESPACE": settings.namespace,
        "SUSTAINML_DATA_DIR": str(tmp_path),
    }
    topology = Topology.of(settings)
    with LocalDeployment(settings, amqp_transports(settings), db_url=settings.effective_db_url) as dep:
        client = dep.client()
        task = client.submit(UserInput(problem_short_description="forecast daily sales"), watch=True)
        assert client.wait(task, 60).state == "succeeded"
        refused = _run("teardown", env=env)
        assert refused.returncode == 1
        assert f"namespace {settings.namespace!r} is in use" in refused.stderr and "--force" in refused.stderr
    assert (tmp_path / settings.namespace / "taskdb.sqlite3").exists()
    done = _run("teardown", "--data", env=env)
    assert done.returncode == 0, done.stderr
    queues = len(topology.durable_queues()) + len(topology.retry_queues())
    assert f"{queues} queues and {len(topology.exchanges())} exchanges removed" in done.stdout
    assert not (tmp_path / settings.namespace).exists()
    again = _run("teardown", env=env)  # twice: says there was nothing left, without pika's warnings
    assert again.returncode == 0 and "its queues were already gone" in again.stdout
    assert "WARNING" not in again.stderr and "Traceback" not in again.stderr
    with AmqpTransport(settings.broker_url, name="check") as t:
        for spec in [*topology.durable_queues(), *topology.retry_queues()]:
            with pytest.raises(KeyError):
                t.queue_counts(spec.name)
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(settings.broker_url))
    try:
        for ex in topology.exchanges():
            ch = conn.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as gone:
                ch.exchange_declare(ex.name, passive=True)
            assert gone.value.reply_code == 404
    finally:
        conn.close()


@pytest.mark.parametrize("kind", ["models", "hardware", "regions"])
def test_catalogue_tables_fit_80_columns_and_wide_shows_every_column(kind: str) -> None:
    narrow = _run("catalogue", kind, env={"COLUMNS": "80", "SUSTAINML_DATA_DIR": "/nonexistent-nc"})
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    entries = json.loads(_run("catalogue", kind, "--json").stdout)
    # one line per entry (no cell wrapped over several) under the header's rule
    body = lines[next(n for n, line in enumerate(lines) if "───" in line) + 1 :]
    assert len([line for line in body if line.strip()]) == len(entries)
    wide = _run("catalogue", kind, "--wide", env={"COLUMNS": "80"})
    header = {"models": "licence", "hardware": "int8 (TOPS)", "regions": "basis"}[kind]
    assert header in wide.stdout and header not in narrow.stdout


@pytest.mark.integration
def test_tasks_lists_descriptions_within_80_columns(
    deployment: tuple[LocalDeployment, dict[str, str]],
) -> None:
    dep, env = deployment
    client = dep.client()
    long = "count the pallets in photos of a warehouse taken by ceiling cameras every five minutes"
    ids = [
        client.submit(UserInput(problem_short_description=d), watch=True)
        for d in ("forecast daily sales", long)
    ]
    client.wait_many(ids, 60)
    proc = _run("tasks", env={**env, "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    row = next(line for line in lines if line.strip().startswith(f"{ids[0].problem_id}.1"))
    assert "succeeded" in row and "forecast daily sales" in row
    cut = next(line for line in lines if line.strip().startswith(f"{ids[1].problem_id}.1"))
    assert "count the pallets" in cut and cut.rstrip().endswith("…")
    listed = json.loads(_run("tasks", "--json", env=env).stdout)
    assert {t["problem_short_description"] for t in listed} == {"forecast daily sales", long}
