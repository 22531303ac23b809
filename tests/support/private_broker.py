"""A private RabbitMQ node for tests that must stop, restart or alarm a broker.

The shared node on 127.0.0.1:5672 serves every other test running at the same time, so fault
tests never touch it. ``PrivateBroker`` boots a second node of the installed RabbitMQ (3.10) beside
it: its own node name, AMQP and distribution ports, Mnesia and log directories under a temp dir, a
``rabbitmq.conf`` written from ``config``, and an empty enabled-plugins file, so no plugin binds
the management (15672) or Prometheus (15692) ports the shared node might use. ``HOME`` points into
the temp dir, so the node and ``rabbitmqctl`` share an Erlang cookie of their own.

Usage::

    with PrivateBroker("faults", 0) as broker:      # port 0: pick a free port
        url = broker.url                            # amqp://guest:guest@127.0.0.1:<port>/%2F
        broker.stop_app(); broker.start_app()       # the rabbit application only
        broker.restart()                            # the whole Erlang node (durable data kept)
        broker.rabbitmqctl("set_vm_memory_high_watermark", "0.0000001")

TLS (``tls=PrivateBrokerTLS(...)``) adds an ``amqps`` listener with the given files; ``amqps_url``
names it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import pika
import pika.exceptions

RABBITMQ_BIN = Path(os.environ.get("SUSTAINML_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class PrivateBrokerError(RuntimeError):
    """The private node could not be started, stopped or commanded; the message says why."""


@dataclass(frozen=True)
class PrivateBrokerTLS:
    """An extra TLS listener: ``port`` (0 = a free one) and the PEM files the broker uses."""

    ca_file: str
    cert_file: str
    key_file: str
    port: int = 0
    verify: str = "verify_none"  # or "verify_peer" to require client certificates
    fail_if_no_peer_cert: bool = False


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rabbitmq_available() -> bool:
    """True when the RabbitMQ server scripts are installed where this module looks for them."""
    return (RABBITMQ_BIN / "rabbitmq-server").exists() and (RABBITMQ_BIN / "rabbitmqctl").exists()


class PrivateBroker:
    """A separate RabbitMQ node; a context manager (``close()`` stops it and removes its files)."""

    def __init__(
        self, name: str, port: int = 0, *, config: str = "", tls: PrivateBrokerTLS | None = None
    ) -> None:
        if not rabbitmq_available():
            raise PrivateBrokerError(f"RabbitMQ scripts not found under {RABBITMQ_BIN}")
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name) or "broker"
        self.node = f"sml-{safe}-{os.getpid()}@localhost"
        self.port = port or free_port()
        self.dist_port = free_port()
        self.tls = tls
        self.tls_port = (tls.port or free_port()) if tls is not None else None
        self._dir = Path(tempfile.mkdtemp(prefix=f"sml-broker-{safe}-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        (self._dir / "mnesia").mkdir()
        (self._dir / "log").mkdir()
        (self._dir / "enabled_plugins").write_text("[].\n")  # no plugin: no 15672/15692 listener
        (self._dir / "rabbitmq-env.conf").write_text("")  # ignore /etc/rabbitmq/rabbitmq-env.conf
        (self._dir / "rabbitmq.conf").write_text(self._config_text(config))

    # -- configuration -------------------------------------------------------------------------
    def _config_text(self, extra: str) -> str:
        lines = [f"listeners.tcp.default = 127.0.0.1:{self.port}"]
        if self.tls is not None:
            lines += [
                f"listeners.ssl.default = 127.0.0.1:{self.tls_port}",
                f"ssl_options.cacertfile = {self.tls.ca_file}",
                f"ssl_options.certfile = {self.tls.cert_file}",
                f"ssl_options.keyfile = {self.tls.key_file}",
                f"ssl_options.verify = {self.tls.verify}",
                f"ssl_options.fail_if_no_peer_cert = {str(self.tls.fail_if_no_peer_cert).lower()}",
            ]
        if extra.strip():
            lines.append(extra.strip())
        return "\n".join(lines) + "\n"

    def _env(self) -> dict[str, str]:
        d = self._dir
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            HOME=str(d),  # the node writes its Erlang cookie here; rabbitmqctl reads it back
            RABBITMQ_CONF_ENV_FILE=str(d / "rabbitmq-env.conf"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    # -- addresses -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    @property
    def amqps_url(self) -> str:
        if self.tls_port is None:
            raise PrivateBrokerError("this broker has no TLS listener (pass tls=...)")
        return f"amqps://guest:guest@localhost:{self.tls_port}/%2F"

    @property
    def directory(self) -> Path:
        """The node's temp dir (config, logs, Mnesia): read its log when a test fails."""
        return self._dir

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> PrivateBroker:
        if self._proc is not None and self._proc.poll() is None:
            return self
        out = open(self._dir / "server.out", "ab")  # noqa: SIM115 - kept open for the node's life
        self._log = out
        self._proc = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self._env(),
            cwd=self._dir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of pytest does not hit the node before close()
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the node accepts AMQP connections (the listener opens last during boot)."""
        deadline = time.monotonic() + timeout
        # pika logs every refused attempt at ERROR level: quiet while we expect refusals.
        pika_log = logging.getLogger("pika")
        level = pika_log.level
        pika_log.setLevel(logging.CRITICAL)
        try:
            self._poll_ready(deadline)
        finally:
            pika_log.setLevel(level)

    def _poll_ready(self, deadline: float) -> None:
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise PrivateBrokerError(
                    f"node {self.node} exited with {self._proc.returncode} during start; "
                    f"see {self._dir / 'server.out'}:\n{self._tail()}"
                )
            try:
                params = pika.URLParameters(self.url)
                params.socket_timeout = 1.0
                params.connection_attempts = 1
                pika.BlockingConnection(params).close()
                return
            except (pika.exceptions.AMQPError, OSError) as exc:
                last = exc
                time.sleep(0.1)
        raise PrivateBrokerError(f"node {self.node} not ready in time ({last!r})")

    def wait_down(self, timeout: float = STOP_TIMEOUT) -> None:
        """Wait until the AMQP port refuses connections."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError:
                return
            time.sleep(0.05)
        raise PrivateBrokerError(f"node {self.node} still listens on {self.port} after {timeout:.0f} s")

    def rabbitmqctl(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``rabbitmqctl -n <node> args...``; returns stdout, raises with stderr on failure."""
        cmd = [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args]
        proc = subprocess.run(cmd, env=self._env(), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise PrivateBrokerError(
                f"rabbitmqctl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc.stdout

    def stop_app(self) -> None:
        """Stop the rabbit application (connections drop, the Erlang node stays up)."""
        self.rabbitmqctl("stop_app")

    def start_app(self) -> None:
        self.rabbitmqctl("start_app")
        self.wait_ready()

    def restart(self) -> None:
        """Stop the whole node and boot it again on the same data (durable queues survive)."""
        self._stop_node()
        self.start()

    def _stop_node(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            # A failed stop falls through to the signals below.
            with contextlib.suppress(PrivateBrokerError, subprocess.TimeoutExpired):
                self.rabbitmqctl("stop", timeout=STOP_TIMEOUT)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the node and delete its directory (idempotent)."""
        try:
            self._stop_node()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def _tail(self, lines: int = 30) -> str:
        path = self._dir / "server.out"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> PrivateBroker:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
