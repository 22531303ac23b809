"""Render RabbitMQ definitions with password hashes from the environment.

Run once before the broker starts (docker-compose service ``rabbitmq-definitions``)::

    python render_definitions.py TEMPLATE OUTPUT

For every user in the template (``admin`` and ``<namespace>-<role>``), the password comes from
``RABBITMQ_<ROLE>_PASSWORD`` (``RABBITMQ_ADMIN_PASSWORD``, ``RABBITMQ_WORKER_PASSWORD``, ...) and
is stored as RabbitMQ's salted SHA-256 hash, so neither the password nor its hash is ever committed.
It runs in the sustainml image (as its non-root user) and uses sustainml.permissions' hashing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from sustainml.permissions import rabbit_password_hash

HASHING = "rabbit_password_hashing_sha256"


def password_variable(user: str) -> str:
    """``admin`` -> RABBITMQ_ADMIN_PASSWORD; ``sustainml-worker`` -> RABBITMQ_WORKER_PASSWORD."""
    role = user.rsplit("-", 1)[-1]
    return f"RABBITMQ_{role.upper()}_PASSWORD"


def render(template: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(template))  # a deep copy
    missing = []
    for user in out.get("users", []):
        var = password_variable(user["name"])
        password = env.get(var, "")
        if not password:
            missing.append(var)
            continue
        user["password_hash"] = rabbit_password_hash(password)
        user["hashing_algorithm"] = HASHING
    if missing:
        raise SystemExit(f"render_definitions: set {', '.join(missing)} (see .env.example)")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: render_definitions.py TEMPLATE OUTPUT", file=sys.stderr)
        return 2
    template = json.loads(Path(argv[1]).read_text())
    rendered = render(template, dict(os.environ))
    target = Path(argv[2])
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(rendered, indent=2))
    tmp.replace(target)  # the broker never sees a half-written file
    print(f"wrote {target}: {len(rendered.get('users', []))} users", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
