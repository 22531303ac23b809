"""`sustainml worker | orchestrator | up`: the long-running processes of a deployment.

``worker`` runs one replica of a shipped stage, ``orchestrator`` the orchestrator (optionally with
the HTTP API in the same process), ``up`` all of them as child processes under the
``Supervisor`` (``supervisor.py``).
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING

import click

from sustainml.cli.common import err, fail, friendly_errors, http_address, safe_db, settings_of
from sustainml.cli.supervisor import Supervisor
from sustainml.config import Settings
from sustainml.topology import PIPELINE, resolve_stage

if TYPE_CHECKING:
    from sustainml.orchestrator.core import Orchestrator


@click.command()
@click.argument("node")
@click.pass_context
def worker(ctx: click.Context, node: str) -> None:
    """Run one replica of the shipped NODE (ml_model_metadata, app_requirements, hw_constraints,
    ml_model, hw_resources, carbon_footprint)."""
    from sustainml.workers.shipped import shipped_node

    try:
        stage = resolve_stage(node)
    except KeyError as exc:
        fail(str(exc.args[0]))
    with friendly_errors():
        shipped_node(stage.node, settings=settings_of(ctx)).spin()


@click.command()
@click.option(
    "--http",
    "http",
    metavar="HOST:PORT",
    envvar="SUSTAINML_HTTP",
    help="Also serve the HTTP API and dashboard there, e.g. 127.0.0.1:5001 (env SUSTAINML_HTTP; "
    "default: not served; `off`: not served).",
)
@click.pass_context
def orchestrator(ctx: click.Context, http: str | None) -> None:
    """Run the orchestrator (task ids, TaskDB, node registry, requests), optionally with the HTTP API.
    Only an explicit --http or SUSTAINML_HTTP turns the API on here; `sustainml up` always does."""
    from sustainml.orchestrator.core import Orchestrator

    settings = settings_of(ctx)
    address = http_address(settings, http) if http is not None else None
    with friendly_errors():
        orch = Orchestrator(settings)
        if address is None:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: orch.stop())
            err.print(
                f"orchestrator running (namespace {settings.namespace}, TaskDB {safe_db(settings)})",
                soft_wrap=True,
            )
            orch.spin()
            return
        _serve_with_api(orch, settings, address)


def _serve_with_api(orch: Orchestrator, settings: Settings, address: tuple[str, int]) -> None:
    """The orchestrator and uvicorn (in a thread) in this process. SIGINT/SIGTERM or
    ``POST /terminate`` stop the HTTP server first (SSE streams end, requests in flight finish),
    then the orchestrator."""
    import threading

    from sustainml.api import ApiServer

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    orch.start()
    try:
        server = ApiServer(settings, orch, *address, on_terminate=stop.set).start()
    except (OSError, RuntimeError) as exc:
        orch.close()
        fail(f"cannot serve the HTTP API on {address[0]}:{address[1]}: {exc}")
    err.print(
        f"orchestrator running (namespace {settings.namespace}, TaskDB {safe_db(settings)}); "
        f"HTTP API on {server.url} (docs {server.url}/docs)",
        soft_wrap=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        orch.close()


@click.command()
@click.option("--replicas", multiple=True, metavar="NODE=N", help="Replicas of a node (default 1 each).")
@click.option(
    "--http",
    "http",
    metavar="HOST:PORT|off",
    help="Where the orchestrator serves the HTTP API (default SUSTAINML_HTTP, 127.0.0.1:5001).",
)
@click.pass_context
def up(ctx: click.Context, replicas: tuple[str, ...], http: str | None) -> None:
    """Run the orchestrator (with the HTTP API) and all six workers, one process each, supervised.
    Ctrl-C stops all."""
    settings = settings_of(ctx)
    address = http_address(settings, http if http is not None else settings.http)
    explicit = http is not None or bool(os.environ.get("SUSTAINML_HTTP"))
    if address is not None and not _port_free(address):
        where = f"{address[0]}:{address[1]}"
        if explicit:
            fail(f"cannot serve the HTTP API on {where}: address in use (SUSTAINML_HTTP=host:port or off)")
        # The default address only: another deployment on this machine has it; run without the API.
        err.print(
            f"[yellow]HTTP API not served: {where} is in use (set SUSTAINML_HTTP=host:port)[/]",
            soft_wrap=True,
        )
        address = None
    counts: dict[str, int] = {}
    for item in replicas:
        name, _, n = item.partition("=")
        try:
            counts[resolve_stage(name).node] = int(n)
        except (KeyError, ValueError):
            fail(f"--replicas {item!r}: expected NODE=N with a node name and a count")
    _check_broker(settings)
    env = dict(os.environ, SUSTAINML_BROKER_URL=settings.broker_url, SUSTAINML_NAMESPACE=settings.namespace)
    orch_args = ["orchestrator"]
    if address is not None:
        host = f"[{address[0]}]" if ":" in address[0] else address[0]
        orch_args += ["--http", f"{host}:{address[1]}"]
    specs: list[tuple[str, list[str]]] = [("orchestrator", orch_args)]
    for stage in PIPELINE:
        for i in range(counts.get(stage.node, 1)):
            specs.append((f"{stage.kind}-{i + 1}", ["worker", stage.kind]))
    Supervisor(specs, env, settings).run()


def _port_free(address: tuple[str, int]) -> bool:
    import socket

    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            return False
    return True


def _check_broker(settings: Settings) -> None:
    from sustainml.transport import amqp_transport

    with friendly_errors():
        probe = amqp_transport(settings, "probe", connect_timeout=5.0, retry_refused=False)
        probe.connect()
        probe.close()


