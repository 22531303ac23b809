"""The supervisor of `sustainml up`: one child process per component, restarted when it dies,
all stopped together."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

from sustainml.cli.common import err
from sustainml.config import Settings
from sustainml.orchestrator.client import Client, OrchestratorError
from sustainml.transport.base import TransportError

#: Node states (``Client.status`` names) of a node that takes tasks.
SERVING = frozenset({"IDLE", "RUNNING"})


class Supervisor:
    """Starts each component as a child process, restarts one that dies (with backoff), and on
    Ctrl-C/SIGTERM stops them all gracefully (SIGTERM, then SIGKILL after a grace period)."""

    GRACE_S = 30.0

    READY_WAIT_S = 300.0

    def __init__(
        self, specs: list[tuple[str, list[str]]], env: dict[str, str], settings: Settings | None = None
    ) -> None:
        self.specs = specs
        self.settings = settings  # to say when the deployment answers
        # PYTHONSAFEPATH: a child started with -m must import the installed sustainml, not a
        # `sustainml/` folder that happens to be in the working directory (a source checkout).
        self.env = {**env, "PYTHONSAFEPATH": "1"}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, list[float]] = {}
        self.stopping = False

    def _announce_ready(self, settings: Settings) -> None:
        """Say when the orchestrator answers and every node serves (IDLE, or RUNNING a task that
        arrived first): "started" is not "ready" (the first start of a worker loads its models, a
        while on a busy machine). Waiting for all IDLE would miss a deployment put to work at once."""
        began = time.monotonic()
        quick = settings.with_overrides(rpc_timeout=2.0)
        while not self.stopping and time.monotonic() - began < self.READY_WAIT_S:
            try:
                with Client(quick) as client:
                    nodes = client.status()["nodes"]
                if nodes and all(state in SERVING for state in nodes.values()):
                    err.print(
                        f"[green]ready[/] after {time.monotonic() - began:.0f} s: the orchestrator and the "
                        f"{len(nodes)} nodes answer; in another terminal: "
                        '`sustainml submit --description "..." --wait`',
                        soft_wrap=True,
                    )
                    return
            except (OrchestratorError, TransportError, TimeoutError):
                pass  # not up yet
            time.sleep(1.0)
        if not self.stopping:
            err.print(
                f"[yellow]not all nodes ready after {self.READY_WAIT_S:.0f} s[/]: see `sustainml status`",
                soft_wrap=True,
            )

    def _spawn(self, name: str, args: list[str]) -> None:
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "sustainml.cli", *args], env=self.env)
        err.print(f"started {name} (pid {self.procs[name].pid})", soft_wrap=True)

    def run(self) -> None:
        def on_signal(signum: int, frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        for name, args in self.specs:
            self._spawn(name, args)
        err.print("all components started; waiting for them to be ready (Ctrl-C stops)", soft_wrap=True)
        if self.settings is not None:
            threading.Thread(target=self._announce_ready, args=(self.settings,), daemon=True).start()
        args_of = dict(self.specs)
        while not self.stopping:
            time.sleep(0.5)
            for name, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None or self.stopping:
                    continue
                recent = [t for t in self.restarts.get(name, []) if time.monotonic() - t < 60]
                if len(recent) >= 5:
                    err.print(
                        f"[red]{name} exited {code} five times in a minute; not restarting it[/]",
                        soft_wrap=True,
                    )
                    del self.procs[name]
                    continue
                err.print(f"[yellow]{name} exited with {code}; restarting[/]", soft_wrap=True)
                self.restarts[name] = [*recent, time.monotonic()]
                time.sleep(min(2 ** len(recent) * 0.5, 8))
                self._spawn(name, args_of[name])
        self._stop_all()

    def _stop_all(self) -> None:
        err.print("stopping all components...", soft_wrap=True)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.GRACE_S
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                err.print(f"[red]{name} did not stop in {self.GRACE_S:g} s; killing it[/]", soft_wrap=True)
                proc.kill()
        err.print("stopped", soft_wrap=True)


