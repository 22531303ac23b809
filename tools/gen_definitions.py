"""Generate deploy/compose/rabbitmq/definitions.json: the broker's vhost, users, permissions and
policies for one sustainml namespace, from sustainml.permissions. Passwords are not in it: the
compose service ``rabbitmq-definitions`` adds their hashes from .env at start-up.

    python tools/gen_definitions.py            # rewrite the committed file
    python tools/gen_definitions.py --check    # exit 1 if the committed file is stale (CI does this)

tests/deploy/test_definitions.py checks the committed file equals what this prints.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from sustainml.permissions import ROLES, default_username, role_permissions, topic_permissions

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "deploy" / "compose" / "rabbitmq" / "definitions.json"
VHOST = "sustainml"
NAMESPACE = "sustainml"
ADMIN = "admin"  # management UI and rabbitmqctl-free administration; its password comes from .env
RABBIT_VERSION = "3.13.7"
# Dead letters are kept two weeks, then the broker drops them (alert on DLQ depth before that).
DLQ_TTL_MS = 14 * 24 * 3600 * 1000


def build(namespace: str = NAMESPACE, vhost: str = VHOST) -> dict[str, Any]:
    """Definitions for one namespace: the roles of sustainml.permissions (the single source of the
    configure/write/read regexes, derived from the topology) plus an ``admin`` for operators."""
    roles = role_permissions(namespace)
    users: list[dict[str, Any]] = [{"name": ADMIN, "password_hash": "", "tags": ["administrator"]}]
    permissions: list[dict[str, Any]] = [
        {"user": ADMIN, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}
    ]
    for role in ROLES:
        name = default_username(namespace, role)
        users.append({"name": name, "password_hash": "", "tags": []})
        p = roles[role]
        permissions.append(
            {"user": name, "vhost": vhost, "configure": p.configure, "write": p.write, "read": p.read}
        )
    topics = [
        {
            "user": default_username(namespace, t.role),
            "vhost": vhost,
            "exchange": t.exchange,
            "write": t.write,
            "read": t.read,
        }
        for t in topic_permissions(namespace)
    ]
    ns = re.escape(namespace)
    policies = [
        {
            "vhost": vhost,
            "name": f"{namespace}-dead-letters",
            "pattern": rf"^{ns}\..*\.dlq$",
            "apply-to": "queues",
            "priority": 10,
            "definition": {"message-ttl": DLQ_TTL_MS},
        },
    ]
    return {
        "rabbit_version": RABBIT_VERSION,
        "users": users,
        "vhosts": [{"name": vhost}],
        "permissions": permissions,
        "topic_permissions": topics,
        "parameters": [],
        "global_parameters": [],
        "policies": policies,
        # The topology itself is declared by the components (idempotent, with the configured
        # queue type), never here, so a definitions file cannot pin stale queue arguments.
        "queues": [],
        "exchanges": [],
        "bindings": [],
    }


def render(namespace: str = NAMESPACE, vhost: str = VHOST) -> str:
    return json.dumps(build(namespace, vhost), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the committed file is stale")
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    args = parser.parse_args(argv)
    text = render()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(
                f"{TARGET.relative_to(ROOT)} is stale: run python tools/gen_definitions.py", file=sys.stderr
            )
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
