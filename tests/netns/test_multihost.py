"""Multi-host on one machine: workers on three 'hosts' (network namespaces joined to the root
namespace by veth links) reach the broker over those links; tasks flow through workers on
different hosts; cutting one host's link (while the other hosts hold replicas of its stages) does
not stop tasks from completing, and the host rejoins once the link is restored.

Topology (addresses in a private /24 checked to be unused on this machine)::

    root ns: broker 127.0.0.1:5672  <- tcp_forward.py on each veth's root end <- veth -> hN
    h1: ML_MODEL_METADATA, APP_REQUIREMENTS, HW_CONSTRAINTS
    h2: ML_MODEL, HW_RESOURCES, CARBON_FOOTPRINT
    h3: ML_MODEL, HW_RESOURCES          (the host whose link is cut)

Each worker runs in its own UTS namespace named after its host, so replica ids
(``<hostname>-<pid>-<rand>``) say which host did the work. AMQP heartbeats of 2 s bound how long
the broker keeps the cut host's unacknowledged deliveries before it requeues them to h2.

Needs root and ``ip netns``; skipped with the reason otherwise. Everything it creates (namespaces,
veth links, processes, the broker namespace) is removed in ``finally`` blocks.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sustainml.config import Settings
from sustainml.deployment import LocalDeployment, amqp_transports
from sustainml.messages import TaskId, UserInput
from sustainml.topology import PIPELINE, Topology, delete_all
from sustainml.transport.amqp import AmqpTransport
from tests.support.taskdb import list_task_events
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FORWARDER = ROOT / "deploy" / "netns" / "tcp_forward.py"
AMQP_HEARTBEAT_S = 2
HOSTS: dict[str, tuple[str, ...]] = {
    "h1": ("ml_model_metadata", "app_requirements", "hw_constraints"),
    "h2": ("ml_model", "hw_resources", "carbon_footprint"),
    "h3": ("ml_model", "hw_resources"),
}
CUT_HOST = "h3"


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"`{tool}` not installed"
    probe = f"smlprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {result.stderr.strip()}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unused_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.200.0.0/16 to 10.250.0.0/16 that overlaps no address or route of this machine."""
    text = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    text += subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True
    ).stdout
    used = []
    for token in text.split():
        with contextlib.suppress(ValueError):
            if token[0].isdigit() and "." in token:
                used.append(ipaddress.ip_network(token, strict=False))
    seed = int(uuid.uuid4().hex[:4], 16)
    for n in range(51 * 256):
        k = (seed + n) % (51 * 256)
        candidate = ipaddress.IPv4Network(f"10.{200 + k // 256}.{k % 256}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise RuntimeError("no unused private /24 found")


@dataclass
class Host:
    name: str  # also its hostname
    netns: str
    root_if: str
    ns_if: str
    root_ip: str
    ns_ip: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


class Lab:
    """Network namespaces + veth links + the relay to the broker; every resource is tracked."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.hosts: dict[str, Host] = {}
        self.forwarder: subprocess.Popen[str] | None = None
        self.port = 0

    def add_hosts(self, names: list[str]) -> None:
        net = unused_subnet()
        addrs = list(net.hosts())
        for i, name in enumerate(names):
            host = Host(
                name=name,
                netns=f"sml{self.tag}{name}",
                root_if=f"sv{self.tag}{i}r",
                ns_if=f"sv{self.tag}{i}n",
                root_ip=str(addrs[4 * i]),  # one /30 per link: .1/.2, .5/.6, .9/.10
                ns_ip=str(addrs[4 * i + 1]),
            )
            self.hosts[name] = host
            _ip("netns", "add", host.netns)
            _ip("link", "add", host.root_if, "type", "veth", "peer", "name", host.ns_if)
            _ip("link", "set", host.ns_if, "netns", host.netns)
            _ip("addr", "add", f"{host.root_ip}/30", "dev", host.root_if)
            _ip("link", "set", host.root_if, "up")
            _ip("addr", "add", f"{host.ns_ip}/30", "dev", host.ns_if, netns=host.netns)
            _ip("link", "set", host.ns_if, "up", netns=host.netns)
            _ip("link", "set", "lo", "up", netns=host.netns)

    def start_forwarder(self, target: str = "127.0.0.1:5672") -> None:
        self.port = _free_port()
        listen = [a for h in self.hosts.values() for a in ("--listen", f"{h.root_ip}:{self.port}")]
        self.forwarder = subprocess.Popen(
            [sys.executable, str(FORWARDER), "--to", target, *listen], stdout=subprocess.PIPE, text=True
        )
        assert self.forwarder.stdout is not None
        line = self.forwarder.stdout.readline().strip()
        assert line == "ready", f"forwarder did not start: {line!r}"

    def broker_url(self, host: Host) -> str:
        return f"amqp://guest:guest@{host.root_ip}:{self.port}/%2F"

    def start_worker(self, host: Host, kind: str, env: dict[str, str]) -> None:
        cmd = [
            "ip", "netns", "exec", host.netns,
            # its own UTS namespace: the worker's hostname (and so its replica id) names the host
            "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', host.name,
            sys.executable, "-m", "sustainml.cli", "worker", kind,
        ]  # fmt: skip
        host.procs.append(subprocess.Popen(cmd, env={**env, "SUSTAINML_BROKER_URL": self.broker_url(host)}))

    def cut(self, host: Host) -> None:
        _ip("link", "set", host.root_if, "down")

    def restore(self, host: Host) -> None:
        _ip("link", "set", host.root_if, "up")

    def stop_workers(self) -> None:
        """SIGTERM every worker (they finish in-flight work and say goodbye), SIGKILL after 20 s."""
        for host in self.hosts.values():
            for proc in host.procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in host.procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)

    def close(self) -> None:
        errors: list[str] = []
        self.stop_workers()
        if self.forwarder is not None and self.forwarder.poll() is None:
            self.forwarder.terminate()
            self.forwarder.wait(10)
        for host in self.hosts.values():
            for cmd in (["netns", "del", host.netns], ["link", "del", host.root_if]):
                result = subprocess.run(["ip", *cmd], capture_output=True, text=True)
                if (
                    result.returncode != 0
                    and "Cannot find" not in result.stderr
                    and "not exist" not in result.stderr
                ):
                    errors.append(f"ip {' '.join(cmd)}: {result.stderr.strip()}")
        assert not errors, "lab cleanup: " + "; ".join(errors)


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = _netns_unavailable()
    if reason:
        pytest.skip(f"multi-host netns test: {reason}")
    lab = Lab(uuid.uuid4().hex[:5])
    try:
        yield lab
    finally:
        lab.close()


def _host_of(replica_id: str) -> str:
    return replica_id.rsplit("-", 2)[0]


def _ui(i: int) -> UserInput:
    return UserInput(
        problem_short_description=f"detect defects in photos of welded seams, part {i}", modality="image"
    )


def _run_batch(dep: LocalDeployment, n: int, start: int, timeout: float) -> list[TaskId]:
    client = dep.client()
    ids = [client.submit(_ui(start + i), watch=True) for i in range(n)]
    results = client.wait_many(ids, timeout)
    states = Counter(r.state for r in results.values())
    assert states == {"succeeded": n}, states
    return ids


def _hosts_per_stage(dep: LocalDeployment, ids: list[TaskId], timeout: float = 15.0) -> dict[str, set[str]]:
    """Which hosts reported task events for each stage of these tasks (orchestrator's TaskDB).
    The orchestrator writes statuses behind, in batches, so the last stages' completion events
    may land a flush interval after the results: poll until every stage has reported."""
    assert dep.orchestrator is not None
    deadline = time.monotonic() + timeout
    while True:
        seen: dict[str, set[str]] = defaultdict(set)
        for tid in ids:
            for ev in list_task_events(
                dep.orchestrator.db, TaskId(problem_id=tid.problem_id, iteration_id=tid.iteration_id)
            ):
                seen[ev.node_name].add(_host_of(ev.replica_id))
        if len(seen) == len(PIPELINE) or time.monotonic() > deadline:
            return dict(seen)
        time.sleep(0.2)  # polling the TaskDB for the written-behind statuses, with a deadline


def _wait_for_replicas(dep: LocalDeployment, want: Counter[tuple[str, str]], timeout: float) -> None:
    orchestrator = dep.orchestrator
    assert orchestrator is not None
    have: Counter[tuple[str, str]] = Counter()

    def enough() -> bool:
        nonlocal have
        now = time.monotonic()
        have = Counter((_host_of(r.replica_id), r.node_name) for r in orchestrator.replicas() if r.alive(now))
        return all(have[k] >= v for k, v in want.items())

    wait_until(
        enough, timeout, f"replicas {dict(want)}", interval=0.2, detail=lambda: f" (alive: {dict(have)})"
    )


def test_workers_on_three_hosts_survive_one_host_losing_its_link(lab: Lab, tmp_path: Path) -> None:
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        broker_url="amqp://guest:guest@127.0.0.1:5672/%2F",
        namespace=namespace,
        data_dir=tmp_path,
        heartbeat_interval=0.5,
        rpc_timeout=30.0,  # submissions queue behind eight busy workers on two cores
        amqp_heartbeat=AMQP_HEARTBEAT_S,
    )
    try:
        lab.add_hosts(list(HOSTS))
        lab.start_forwarder()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SUSTAINML_")},
            "SUSTAINML_NAMESPACE": namespace,
            "SUSTAINML_AMQP_HEARTBEAT": str(AMQP_HEARTBEAT_S),
            "SUSTAINML_HEARTBEAT_INTERVAL": "0.5",
            "SUSTAINML_DATA_DIR": str(tmp_path / "workers"),
            # one deployment, one signing key on every host (the orchestrator's, in its data dir)
            "SUSTAINML_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
            "SUSTAINML_LOG_LEVEL": "WARNING",
        }
        # The orchestrator stays in the root namespace, on loopback; only workers are 'remote'.
        with LocalDeployment(
            settings, amqp_transports(settings), replicas={s.kind: 0 for s in PIPELINE}
        ) as dep:
            for name, kinds in HOSTS.items():
                for kind in kinds:
                    lab.start_worker(lab.hosts[name], kind, env)
            stage_node = {s.kind: s.node for s in PIPELINE}
            want = Counter((h, stage_node[k]) for h, kinds in HOSTS.items() for k in kinds)
            _wait_for_replicas(dep, want, timeout=120)

            # 1. tasks flow through workers on different hosts
            t0 = time.monotonic()
            ids = _run_batch(dep, 8, 0, timeout=120)
            print(f"8 tasks completed in {time.monotonic() - t0:.1f} s with every host connected")
            hosts = _hosts_per_stage(dep, ids)
            print("before the cut, hosts per stage:", {k: sorted(v) for k, v in hosts.items()})
            assert hosts["ML_MODEL_METADATA"] == {"h1"} and hosts["CARBON_FOOTPRINT"] == {"h2"}
            assert hosts["HW_RESOURCES"] | hosts["ML_MODEL"] >= {"h2", "h3"}, "h3 took a share"

            # 2. cut h3's link; its stages have replicas on h2, so tasks still complete: what the
            #    broker had delivered to h3 is requeued once its AMQP heartbeats stop (~2 x 2 s)
            cut_at = time.monotonic()
            lab.cut(lab.hosts[CUT_HOST])
            ids_cut = _run_batch(dep, 8, 100, timeout=120)
            print(f"8 tasks completed {time.monotonic() - cut_at:.1f} s after cutting {CUT_HOST}'s link")
            hosts_cut = _hosts_per_stage(dep, ids_cut)
            print("while cut, hosts per stage:", {k: sorted(v) for k, v in hosts_cut.items()})
            for stage in ("ML_MODEL", "HW_RESOURCES"):
                # h3 may have announced RUNNING for a delivery before its status messages stopped
                # getting through; every output still came from a connected replica
                assert "h2" in hosts_cut[stage], stage
            now = time.monotonic()
            assert dep.orchestrator is not None
            assert not any(
                _host_of(r.replica_id) == CUT_HOST and r.alive(now) for r in dep.orchestrator.replicas()
            ), "the orchestrator still believes the cut host is alive"

            # 3. restore the link: h3's workers reconnect by themselves and take work again
            lab.restore(lab.hosts[CUT_HOST])
            _wait_for_replicas(dep, want, timeout=90)
            ids_back = _run_batch(dep, 8, 200, timeout=120)
            hosts_back = _hosts_per_stage(dep, ids_back)
            print("after restoring, hosts per stage:", {k: sorted(v) for k, v in hosts_back.items()})
            for host in lab.hosts.values():
                assert all(p.poll() is None for p in host.procs), f"a worker on {host.name} exited"
    finally:
        lab.stop_workers()  # before their exchanges disappear
        with AmqpTransport(settings.broker_url, name="cleanup") as t:
            delete_all(t, Topology(namespace))
