"""Polling for a condition, the one way the tests wait (never a blind sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 10.0,
    what: str = "condition",
    *,
    interval: float = 0.05,
    ignore: tuple[type[Exception], ...] = (),
    detail: Callable[[], str] | None = None,
) -> float:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy; return the
    seconds that took. After ``timeout`` seconds fail the test with an ``AssertionError`` naming
    ``what`` (followed by ``detail()``, e.g. the last log lines of the process waited for).
    Exceptions of the ``ignore`` types count as "not yet" (a server that does not listen yet)."""
    began = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - began
        except ignore:
            pass
        if time.monotonic() - began > timeout:
            extra = detail() if detail is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{extra}")
        time.sleep(interval)
