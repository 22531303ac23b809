"""Least-privilege broker permissions: the one place that says which RabbitMQ resources each role
may configure, write and read in a namespace. ``deploy/rabbitmq/create-users.sh`` and the
deployment's ``definitions.json`` are generated from here (``python -m sustainml.permissions``).

RabbitMQ checks three regular expressions per user and vhost (docs: access-control):

- **configure**: declare/delete a queue or exchange (also a re-declaration of an existing one);
- **write**: publish to an exchange (the default exchange is ``amq.default``); be the queue of a
  ``queue.bind``; the dead-letter exchange named in a queue declaration;
- **read**: consume or ``basic.get`` from a queue, purge it; be the exchange of a ``queue.bind``;
  a queue declared with a dead-letter exchange (RabbitMQ checks read on it too).

Every expression is anchored and built from ``sustainml.topology`` names with the namespace
escaped, so a user of one namespace can touch nothing of another namespace on the same broker.

Roles:

- ``worker``: a stage replica. The runtime declares the whole shared topology on start
  (``declare_all``: every exchange, queue and binding, idempotently), and RabbitMQ checks
  permissions on re-declarations too, so a worker needs configure/write/read on exactly the
  namespace's shared names, plus its own control queue. It cannot touch other namespaces, the
  orchestrator's or clients' private queues, or create anything else.
- ``orchestrator``: the same shared names, its private status-monitor and RPC reply queues, and
  write on clients' watch queues (it binds them to the task exchange).
- ``publisher``: ``sustainml submit`` / ``Client``: declares, reads and deletes only its own RPC
  reply and watch queues; writes only to the default exchange (requests to the orchestrator).
  It cannot declare shared resources, bind, or read any stage queue.
- ``operator``: ``sustainml dlq``: reads (and purges) only the dead-letter queues; writes to the
  default exchange and the record exchanges (replay) and the control exchange (NodeControl,
  ``sustainml control``); configures and reads only its own client reply/watch queues.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

from sustainml.messages.kinds import RECORD_KINDS
from sustainml.topology import PIPELINE, Topology

ROLES: tuple[str, ...] = ("worker", "orchestrator", "publisher", "operator")
NOTHING = "^$"  # matches no resource name RabbitMQ checks (names are never empty)
DEFAULT_EXCHANGE = "amq.default"

# Private queue owners: replica ids are "<hostname>-<pid>-<hex>" (hostnames may hold dots);
# client/orchestrator ids are hex. One name segment or more, never empty.
_OWNER = r"[A-Za-z0-9_.\-]+"


@dataclass(frozen=True)
class RolePermissions:
    role: str
    configure: str
    write: str
    read: str
    description: str

    def as_tuple(self) -> tuple[str, str, str]:
        return (self.configure, self.write, self.read)


def _alt(patterns: list[str]) -> str:
    """One anchored regex matching exactly any of ``patterns`` (themselves unanchored)."""
    unique = list(dict.fromkeys(patterns))
    if not unique:
        return NOTHING
    return "^(" + "|".join(unique) + ")$"


def _names(ns: str) -> dict[str, list[str]]:
    """Regex fragments (unanchored) for the namespace's resources, derived from the topology."""
    topo = Topology(ns)
    e = re.escape
    kinds = "|".join(e(k) for k in RECORD_KINDS)
    stage_kinds = "|".join(e(s.kind) for s in PIPELINE)
    exchanges = [e(x.name) for x in topo.exchanges()]
    shared_queues = [e(q.name) for q in topo.durable_queues()]
    # Retry delay queues: one per stage and delay (the delay depends on settings, so a pattern).
    retry = rf"{e(ns)}\.retry\.({stage_kinds})\.[0-9]+"
    dlqs = [e(topo.dead_letter_queue(q)) for q in (*(topo.stage_queue(s) for s in PIPELINE),)]
    dlqs.append(e(topo.dead_letter_queue(topo.orchestrator_results_queue)))
    dlqs.append(e(topo.dead_letter_queue(topo.unattributed_route)))

    def private(purpose: str, owner: str = _OWNER) -> str:
        return rf"{e(ns)}\.{e(purpose)}\.{owner}"

    return {
        "exchanges": exchanges,
        "record_exchanges": [rf"{e(ns)}\.({kinds})"],
        "shared_queues": [*shared_queues, retry],
        "dlqs": dlqs,
        "worker_private": [private("control")],
        "orchestrator_private": [
            private("status-monitor"),
            private("reply", rf"orchestrator-{_OWNER}"),
            private("api-events"),  # the HTTP API's event queue (SSE and long polls)
        ],
        "client_private": [private("reply", rf"client-{_OWNER}"), private("watch")],
        "client_watch": [private("watch")],
    }


def role_permissions(namespace: str) -> dict[str, RolePermissions]:
    """The configure/write/read regexes of every role in ``namespace``."""
    n = _names(namespace)
    shared = n["exchanges"] + n["shared_queues"]
    amq_default = re.escape(DEFAULT_EXCHANGE)
    worker = RolePermissions(
        "worker",
        configure=_alt(shared + n["worker_private"]),
        write=_alt([amq_default, *shared, *n["worker_private"]]),
        read=_alt(shared + n["worker_private"]),
        description="stage replicas: the namespace's shared topology and their own control queue",
    )
    orch_private = n["orchestrator_private"]
    orchestrator = RolePermissions(
        "orchestrator",
        configure=_alt(shared + orch_private),
        write=_alt([amq_default, *shared, *orch_private, *n["client_watch"]]),
        read=_alt(shared + orch_private),
        description="the orchestrator: shared topology, its private queues, binding client watch queues",
    )
    publisher = RolePermissions(
        "publisher",
        configure=_alt(n["client_private"]),
        write=_alt([amq_default]),
        read=_alt(n["client_private"]),
        description="submitters (sustainml submit, Client): own reply/watch queues, requests only",
    )
    operator = RolePermissions(
        "operator",
        configure=_alt(n["client_private"]),
        write=_alt([amq_default, *n["record_exchanges"], re.escape(Topology(namespace).control_exchange)]),
        read=_alt(n["dlqs"] + n["client_private"]),
        description="dead-letter inspection and replay (sustainml dlq), node control (sustainml control)",
    )
    return {r.role: r for r in (worker, orchestrator, publisher, operator)}


@dataclass(frozen=True)
class TopicPermission:
    """A RabbitMQ topic permission: which routing keys ``role`` may publish (``write``) to a topic
    exchange. Checked by the broker on every publish, on top of the exchange's write permission."""

    role: str
    exchange: str
    write: str
    read: str


def topic_permissions(namespace: str) -> list[TopicPermission]:
    """Topic permissions where they add something: a worker must publish to the record exchanges
    (its outputs) and so has write on the namespace's exchanges, but it never sends NodeControl,
    so no routing key of ``<ns>.control`` is writable for it (a compromised worker cannot command
    the other nodes, even before they check who sent it)."""
    control = Topology(namespace).control_exchange
    return [TopicPermission("worker", control, NOTHING, ".*")]


def default_username(namespace: str, role: str) -> str:
    return f"{namespace}-{role}"


def rabbit_password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256`` form: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4) if salt is None else salt
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")


def definitions(
    namespace: str,
    passwords: dict[str, str],
    *,
    vhost: str = "/",
    usernames: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A RabbitMQ definitions fragment (``users`` and ``permissions``) for the roles named in
    ``passwords`` (role -> clear-text password; only its salted hash is written)."""
    perms = role_permissions(namespace)
    users: list[dict[str, Any]] = []
    permissions: list[dict[str, Any]] = []
    topics: list[dict[str, Any]] = []
    for role, password in passwords.items():
        if role not in perms:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        name = (usernames or {}).get(role) or default_username(namespace, role)
        users.append(
            {
                "name": name,
                "password_hash": rabbit_password_hash(password),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
        )
        p = perms[role]
        permissions.append(
            {"user": name, "vhost": vhost, "configure": p.configure, "write": p.write, "read": p.read}
        )
        topics += [
            {"user": name, "vhost": vhost, "exchange": t.exchange, "write": t.write, "read": t.read}
            for t in topic_permissions(namespace)
            if t.role == role
        ]
    return {"users": users, "permissions": permissions, "topic_permissions": topics}


def render_topic_tsv(namespace: str) -> str:
    """``role<TAB>exchange<TAB>write<TAB>read`` lines (read by create-users.sh)."""
    return "".join(f"{t.role}\t{t.exchange}\t{t.write}\t{t.read}\n" for t in topic_permissions(namespace))


def render_tsv(namespace: str) -> str:
    """``role<TAB>configure<TAB>write<TAB>read`` lines (read by create-users.sh)."""
    return "".join(
        f"{p.role}\t{p.configure}\t{p.write}\t{p.read}\n" for p in role_permissions(namespace).values()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sustainml.permissions",
        description="Print the least-privilege RabbitMQ permissions of a namespace.",
    )
    parser.add_argument("--namespace", default=os.environ.get("SUSTAINML_NAMESPACE", "sustainml"))
    parser.add_argument("--format", choices=["tsv", "topic-tsv", "json", "definitions"], default="tsv")
    parser.add_argument("--vhost", default="/")
    parser.add_argument(
        "--password-env",
        action="append",
        default=[],
        metavar="ROLE=VAR",
        help="definitions: read ROLE's password from environment variable VAR (never from argv)",
    )
    args = parser.parse_args(argv)
    ns: str = args.namespace
    if not ns or not all(c.isalnum() or c in "-_" for c in ns):
        parser.error(f"--namespace {ns!r}: use letters, digits, '-' or '_' only")
    if args.format == "tsv":
        sys.stdout.write(render_tsv(ns))
    elif args.format == "topic-tsv":
        sys.stdout.write(render_topic_tsv(ns))
    elif args.format == "json":
        perms = role_permissions(ns)
        data = {r: {"configure": p.configure, "write": p.write, "read": p.read} for r, p in perms.items()}
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        passwords: dict[str, str] = {}
        for item in args.password_env:
            role, sep, var = item.partition("=")
            if not sep or var not in os.environ:
                parser.error(f"--password-env {item!r}: expected ROLE=VAR with VAR set in the environment")
            passwords[role] = os.environ[var]
        json.dump(definitions(ns, passwords, vhost=args.vhost), sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "ROLES",
    "RolePermissions",
    "TopicPermission",
    "default_username",
    "definitions",
    "rabbit_password_hash",
    "render_tsv",
    "role_permissions",
    "topic_permissions",
]
