"""Leave nothing on the shared broker: every ``t-*`` namespace a test session used is swept at the
end of the session, whatever the test did or forgot.

``record()`` makes every ``Topology`` built in this process note its namespace when it is a test
one (``t-...``). ``sweep(url)`` then deletes every queue and exchange of those namespaces: all of
them, listed with ``rabbitmqctl`` when the broker is the local one (so a test's own queues, retry
queues with another backoff and private queues are included), otherwise every shared name the
topology knows. Only namespaces this process used are touched: parallel sessions on the same
broker keep theirs.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from sustainml.topology import Topology, delete_all
from sustainml.transport.amqp import AmqpTransport, ChannelError

log = logging.getLogger(__name__)

TEST_PREFIX = "t-"
NAMESPACES: set[str] = set()


def record() -> None:
    """From now on, remember the namespace of every test ``Topology`` built in this process."""
    init = Topology.__init__
    if getattr(init, "_records_namespaces", False):
        return

    def recording_init(self: Topology, namespace: str = "sustainml", *args: Any, **kwargs: Any) -> None:
        if namespace.startswith(TEST_PREFIX):
            NAMESPACES.add(namespace)
        init(self, namespace, *args, **kwargs)

    recording_init._records_namespaces = True  # type: ignore[attr-defined]
    Topology.__init__ = recording_init  # type: ignore[method-assign]


def _rabbitmqctl(what: str) -> list[str] | None:
    """Names of every queue or exchange of the local broker, or None when rabbitmqctl cannot tell."""
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, "-q", f"list_{what}", "name"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def _ours(names: Iterable[str], namespaces: set[str]) -> list[str]:
    return sorted(n for n in names if n.split(".", 1)[0] in namespaces)


def sweep(url: str, namespaces: set[str] | None = None) -> tuple[list[str], list[str]]:
    """Delete the queues and exchanges of ``namespaces`` (default: those recorded); returns the
    (queues, exchanges) it deleted or tried to."""
    spaces = set(NAMESPACES if namespaces is None else namespaces)
    if not spaces:
        return [], []
    local = urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")
    listed_q = _rabbitmqctl("queues") if local else None
    listed_x = _rabbitmqctl("exchanges") if local else None
    with AmqpTransport(url, name="test-sweep", connect_timeout=10.0) as t:
        if listed_q is None or listed_x is None:
            for ns in sorted(spaces):
                with contextlib.suppress(ChannelError):
                    delete_all(t, Topology(ns))
            return [], []
        queues, exchanges = _ours(listed_q, spaces), _ours(listed_x, spaces)
        for q in queues:
            with contextlib.suppress(ChannelError):
                t.delete_queue(q)
        for x in exchanges:
            with contextlib.suppress(ChannelError):
                t.delete_exchange(x)
    return queues, exchanges


def leftovers(namespaces: set[str]) -> list[str]:
    """Queues and exchanges of ``namespaces`` still on the local broker (empty when it cannot tell)."""
    names = (_rabbitmqctl("queues") or []) + (_rabbitmqctl("exchanges") or [])
    return _ours(names, namespaces)
