"""Container images and the Docker engine, for the tests that run sustainml in containers.

The images are built locally by ``tools/build-images`` (no image registry is involved) and tagged
with a hash of what they are built from; ``image_tags()`` asks the script which tags the current
sources need, so a test never runs an image built from older code. ``unavailable_reason()`` gives
the one line a test run prints when it cannot run container tests: no engine, or images missing,
each with the command that fixes it.

testcontainers is configured for loopback only: no Ryuk reaper (its image would come from a
registry), the container's published port reached on 127.0.0.1, and ports published on the
host's loopback interface only.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
BUILD_COMMAND = "tools/build-images"
LABEL = "org.sustainml.test"  # every container and network a test creates carries it


def configure_testcontainers() -> None:
    """Settings testcontainers reads from the environment (explicit values win)."""
    # Ryuk would be pulled from a registry; clean-up rests on context managers and LABEL instead.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    # Some machines carry /.dockerenv, which makes testcontainers connect through the bridge
    # gateway; published ports are bound to 127.0.0.1 here, so connect to the host's loopback.
    os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
    os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")


@functools.cache
def engine_problem() -> str | None:
    """None when a Docker engine answers through the Python SDK, else why not (one line)."""
    try:
        import docker
    except ImportError:
        return "the docker Python package is not installed (pip install -e '.[dev]')"
    try:
        client = docker.from_env(timeout=10)
    except Exception as exc:
        return f"no Docker engine answers ({type(exc).__name__})"
    try:
        client.ping()
    except Exception as exc:
        return f"no Docker engine answers ({type(exc).__name__})"
    finally:
        client.close()
    return None


@functools.cache
def image_tags() -> dict[str, str]:
    """Role -> image tag the current sources need (``base``, ``rabbitmq``, ``postgres``, ``sustainml``)."""
    out = subprocess.run(
        ["bash", str(ROOT / "tools" / "build-images"), "--tags"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return dict(line.split("=", 1) for line in out.split() if "=" in line)


def client() -> Any:
    """A docker SDK client (the caller closes it)."""
    import docker

    return docker.from_env(timeout=60)


def missing_images(*roles: str) -> list[str]:
    tags = image_tags()
    c = client()
    try:
        missing = []
        for role in roles:
            try:
                c.images.get(tags[role])
            except Exception:
                missing.append(tags[role])
        return missing
    finally:
        c.close()


def unavailable_reason(*roles: str) -> str | None:
    """One line saying why container tests cannot run here and what enables them, or None."""
    problem = engine_problem()
    if problem:
        return f"{problem}; `{BUILD_COMMAND}` (as root) starts one and builds the images"
    missing = missing_images(*roles)
    if missing:
        return (
            f"image(s) {', '.join(missing)} not built for the current sources: "
            f"run `{BUILD_COMMAND}` (cached: it builds only what changed)"
        )
    return None


def amqp_url(host: str, port: int, user: str, password: str, vhost: str = "/") -> str:
    q = functools.partial(quote, safe="")
    return f"amqp://{q(user)}:{q(password)}@{host}:{port}/{q(vhost)}"


@contextlib.contextmanager
def rabbitmq_container() -> Iterator[str]:
    """A throwaway broker from the local RabbitMQ image; yields its AMQP URL on 127.0.0.1."""
    configure_testcontainers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # testcontainers' own deprecations
        from testcontainers.community.rabbitmq import RabbitMqContainer

    password = uuid.uuid4().hex
    container = RabbitMqContainer(image_tags()["rabbitmq"], username="sustainml", password=password)
    container.with_kwargs(labels={LABEL: "broker"})
    # published on the host's loopback only, never on every interface
    ports: dict[Any, Any] = {container.port: ("127.0.0.1", None)}  # the docker SDK's host-ip form
    container.ports = ports
    with container:
        yield amqp_url("127.0.0.1", int(container.get_exposed_port(container.port)), "sustainml", password)


# One-line notes a test directory wants printed at the end of the run (why its tests were left
# out). Under pytest-xdist they are collected in the workers and printed once by the controller
# (tests/conftest.py relays them).
NOTES_KEY = "sustainml_notes"
_NOTES: Any = None


def add_note(config: Any, note: str) -> None:
    import pytest

    global _NOTES
    if _NOTES is None:
        _NOTES = pytest.StashKey[list[str]]()
    notes = config.stash.setdefault(_NOTES, [])
    if note not in notes:
        notes.append(note)
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller prints it
        workeroutput[NOTES_KEY] = list(notes)


def notes(config: Any) -> list[str]:
    return list(config.stash.get(_NOTES, [])) if _NOTES is not None else []
