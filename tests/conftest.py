"""Shared fixtures: which RabbitMQ broker the integration tests use, and per-test isolation.

Broker selection, resolved once per session (per xdist worker):

1. ``SUSTAINML_TEST_BROKER_URL`` if set;
2. else, with ``SUSTAINML_TEST_BROKER=container``, a throwaway broker container from the local
   RabbitMQ image (``tools/build-images`` builds it) through testcontainers; when that cannot
   work (no engine, image not built) the run stops at once with one line saying what to do;
3. else (the default, ``SUSTAINML_TEST_BROKER=local``) a broker listening on 127.0.0.1:5672
   (guest/guest);
4. else skip, or fail when ``CI`` is set: a skipped integration suite must not pass as green.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sustainml.config import Settings
from sustainml.topology import Topology, delete_all
from sustainml.transport.amqp import AmqpTransport

# tests/ is not a package: the shared helpers import as `tests.support.*` from the repository root.
# Appended, not prepended, and after `sustainml` is imported: the root holds a `sustainml/` source
# folder that must not shadow the installed package (CI installs it non-editable).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)
# Child Pythons the tests start (`python -m sustainml.cli ...`, scripts) must also import the
# installed package: with the repository as working directory, -m would otherwise put the source
# folder first on their sys.path (PYTHONSAFEPATH, Python >= 3.11, leaves the cwd out).
os.environ["PYTHONSAFEPATH"] = "1"
# The task encoder trains for several seconds on a cold cache, and every `sustainml` process the
# tests start (CLI, workers, `up`) would train it again in its own data directory: the session's
# processes share one cache (keyed by corpus and code, so a stale model is never loaded; tests of
# the cache itself set their own directory).
_ENCODER_CACHE = Path(tempfile.gettempdir()) / f"sustainml-tests-encoder-{os.getuid()}"
_ENCODER_CACHE.mkdir(mode=0o700, exist_ok=True)
os.environ.setdefault("SUSTAINML_ENCODER_CACHE_DIR", str(_ENCODER_CACHE))

from tests.support import broker_cleanup  # noqa: E402  (needs the path above)

broker_cleanup.record()  # every t-* namespace this session uses is swept at its end

BROKER_ENV = "SUSTAINML_TEST_BROKER_URL"
BROKER_MODE_ENV = "SUSTAINML_TEST_BROKER"  # local (default) | container
LOCAL_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _broker_mode() -> str:
    mode = os.environ.get(BROKER_MODE_ENV, "local").strip().lower() or "local"
    if mode not in ("local", "container"):
        raise pytest.UsageError(f"{BROKER_MODE_ENV}={mode!r}: expected 'local' or 'container'")
    return mode


def pytest_configure(config: pytest.Config) -> None:
    # Asked for container brokers but none can start: one line now, not an error per test.
    if _broker_mode() == "container" and not os.environ.get(BROKER_ENV):
        from tests.support import containers

        reason = containers.unavailable_reason("rabbitmq")
        if reason:
            raise pytest.UsageError(f"{BROKER_MODE_ENV}=container: {reason}")


def _tcp_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """(pytest-xdist controller) Keep the notes a worker left (e.g. why container tests were
    deselected), to print them once at the end."""
    from tests.support import containers

    for note in getattr(node, "workeroutput", {}).get(containers.NOTES_KEY, []):
        containers.add_note(node.config, note)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    from tests.support import containers

    for note in containers.notes(config):
        terminalreporter.write_line(note)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """AMQP URL of the broker the integration tests run against."""
    explicit = os.environ.get(BROKER_ENV)
    if explicit:
        yield explicit
        return
    if _broker_mode() == "container":
        from tests.support import containers

        with containers.rabbitmq_container() as url:
            yield url
        return
    if _tcp_open("127.0.0.1", 5672, 1.0):
        yield LOCAL_BROKER_URL
        return
    reason = (
        f"no RabbitMQ broker for integration tests: set {BROKER_ENV}, {BROKER_MODE_ENV}=container "
        "(after `tools/build-images`), or run `rabbitmq-server -detached` on 127.0.0.1:5672"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def test_namespace() -> str:
    """A unique prefix for every exchange, queue and connection name of one test."""
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def amqp_transport(amqp_url: str, test_namespace: str) -> Iterator[AmqpTransport]:
    """A connected transport, named after the test namespace (visible in ``rabbitmqctl``)."""
    transport = AmqpTransport(amqp_url, name=f"sustainml-{test_namespace}", connect_timeout=15.0)
    transport.connect()
    try:
        yield transport
    finally:
        transport.close(timeout=10.0)


@pytest.fixture
def settings(amqp_url: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a deployment on the test broker in a namespace of its own, deleted afterwards."""
    s = Settings(
        broker_url=amqp_url,
        namespace=f"t-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        heartbeat_interval=0.5,
        rpc_timeout=5.0,
    )
    yield s
    with AmqpTransport(s.broker_url, name="cleanup") as t:
        delete_all(t, Topology.of(s))  # with its retry backoff: the retry queues are named after it


@pytest.fixture(scope="session", autouse=True)
def _broker_left_clean() -> Iterator[None]:
    """At the end of the session, delete whatever the tests left of their t-* namespaces on the
    broker (queues and exchanges a test forgot, private queues not yet expired)."""
    yield
    url = os.environ.get(BROKER_ENV) or (LOCAL_BROKER_URL if _tcp_open("127.0.0.1", 5672, 1.0) else None)
    if url is None or not broker_cleanup.NAMESPACES:
        return
    try:
        broker_cleanup.sweep(url)
    except Exception as exc:  # a broker gone at the end of the run (fault tests): nothing to sweep
        warnings.warn(f"t-* namespaces not swept from {url.split('@')[-1]}: {exc}", stacklevel=1)
