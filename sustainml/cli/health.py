"""`sustainml health`: liveness/readiness probes for containers and Kubernetes.

Exit code 0 = healthy, 1 = unhealthy (one line on stderr says why), 2 = usage error.

- ``health --node NODE``: a worker replica **on this host** is alive and connected. The probe
  listens on the status fanout for up to ``--timeout`` seconds (default 3 heartbeat intervals + 1 s)
  and passes when a NodeStatus of NODE arrives from a replica whose id names this host
  (the runtime names replicas ``<hostname>-<pid>-<rand>``; a container's hostname is its own). A
  heartbeat proves the process runs, its AMQP connection is up and its I/O thread is not wedged,
  which a TCP or PID check cannot. ``--any-host`` accepts a replica anywhere (a smoke test).
- ``health --http URL``: GET URL (the orchestrator's ``/healthz``) answers 2xx.
- ``health``: the broker accepts a connection with the configured credentials.
- ``health --config-only``: the settings load and validate (the image's default HEALTHCHECK).

``sustainml health`` and ``python -m sustainml.cli.health`` (what the compose file and the
Kubernetes probes call: it skips importing the rest of the CLI) are the same command.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
import uuid

import click

from sustainml.config import ConfigError, Settings
from sustainml.messages import MessageError, NodeStatus, decode
from sustainml.topology import Topology, resolve_stage
from sustainml.transport.base import Binding, Delivery, ExchangeSpec, TransportError


class Unhealthy(click.ClickException):
    exit_code = 1

    def show(self, file: object = None) -> None:
        click.echo(f"unhealthy: {self.format_message()}", err=True)


def _settings(ctx: click.Context) -> Settings:
    root = ctx.find_root().obj
    if isinstance(root, Settings):  # registered under `sustainml` (global --broker/--namespace)
        return root
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise Unhealthy(str(exc)) from None


def replica_host(replica_id: str) -> str:
    """The host part of a runtime replica id ``<hostname>-<pid>-<rand>`` (hostnames may hold '-')."""
    parts = replica_id.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else ""


def wait_for_heartbeat(settings: Settings, node: str, *, host: str | None, timeout: float) -> NodeStatus:
    """Block until a NodeStatus of ``node`` (from a replica on ``host``, any replica when None)
    arrives on the status fanout; ``TimeoutError`` after ``timeout`` seconds."""
    from sustainml.transport import amqp_transport

    stage = resolve_stage(node)
    topology = Topology.of(settings)
    found: list[NodeStatus] = []
    arrived = threading.Event()

    def on_status(delivery: Delivery) -> None:
        delivery.ack()
        try:
            status = decode(delivery.message.body, NodeStatus)
        except MessageError:
            return  # not ours to judge; the orchestrator logs invalid statuses
        if status.node_name != stage.node:
            return
        if host is not None and replica_host(status.replica_id) != host:
            return
        found.append(status)
        arrived.set()

    transport = amqp_transport(settings, f"health-{stage.kind}", connect_timeout=min(timeout, 10.0))
    transport.connect()
    try:
        transport.declare_exchange(ExchangeSpec(topology.status_exchange, "fanout"))
        # A queue of its own that the broker removes soon after the probe exits (x-expires). It is
        # named like a replica's control queue, the one private queue the least-privilege worker
        # account may declare (sustainml.permissions), so the probe runs with the worker's own
        # credentials.
        spec = topology.private_queue_spec(
            "control",
            f"health-{uuid.uuid4().hex[:12]}",
            (Binding(topology.status_exchange, ""),),
            expires_ms=15_000,
        )
        transport.declare_queue(spec)
        tag = transport.consume(spec.name, on_status, prefetch=64, concurrency=1)
        try:
            if not arrived.wait(timeout):
                where = f"on host {host!r}" if host else "anywhere"
                raise TimeoutError(f"no heartbeat from {stage.node} {where} within {timeout:g} s")
        finally:
            transport.cancel(tag)
            transport.delete_queue(spec.name)
    finally:
        transport.close()
    return found[0]


def check_http(url: str, timeout: float) -> int:
    """The status code of GET ``url``; raises ``Unhealthy`` unless it is 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            code = int(resp.status)
    except urllib.error.HTTPError as exc:
        raise Unhealthy(f"GET {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise Unhealthy(f"GET {url}: {exc}") from None
    if not 200 <= code < 300:
        raise Unhealthy(f"GET {url}: HTTP {code}")
    return code


@click.command(name="health")
@click.option("--node", help="Check that a replica of NODE on this host sends heartbeats.")
@click.option("--any-host", is_flag=True, help="With --node: accept a replica on any host.")
@click.option("--http", "url", metavar="URL", help="Check that GET URL answers 2xx (e.g. /healthz).")
@click.option("--config-only", is_flag=True, help="Only check that the settings load.")
@click.option("--timeout", type=float, help="Seconds to wait (default: 3 heartbeat intervals + 1).")
@click.pass_context
def health(
    ctx: click.Context,
    node: str | None,
    any_host: bool,
    url: str | None,
    config_only: bool,
    timeout: float | None,
) -> None:
    """Probe a sustainml component; exit 0 when healthy, 1 (with the reason) when not."""
    if sum(bool(x) for x in (node, url, config_only)) > 1:
        raise click.UsageError("use one of --node, --http, --config-only")
    settings = _settings(ctx)
    if config_only:
        click.echo(f"healthy: settings valid (namespace {settings.namespace})")
        return
    if url:
        code = check_http(url, timeout or 5.0)
        click.echo(f"healthy: GET {url} -> {code}")
        return
    wait_s = timeout if timeout is not None else 3 * settings.heartbeat_interval + 1.0
    if node:
        try:
            stage = resolve_stage(node)
        except KeyError as exc:
            raise click.UsageError(str(exc.args[0])) from None
        host = None if any_host else socket.gethostname()
        started = time.monotonic()
        try:
            status = wait_for_heartbeat(settings, stage.node, host=host, timeout=wait_s)
        except (TimeoutError, TransportError) as exc:
            raise Unhealthy(str(exc)) from None
        click.echo(
            f"healthy: {stage.node} replica {status.replica_id} "
            f"({status.node_status.name}) heard after {time.monotonic() - started:.1f} s"
        )
        return
    from sustainml.transport import amqp_transport

    probe = amqp_transport(settings, "health", connect_timeout=wait_s)
    try:
        probe.connect()
    except TransportError as exc:
        raise Unhealthy(str(exc)) from None
    probe.close()
    click.echo("healthy: broker accepts connections")


def main() -> None:
    health(prog_name="sustainml health")


if __name__ == "__main__":
    main()
