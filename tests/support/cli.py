"""Running the ``sustainml`` command as a user does: a subprocess of the installed package."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: str = "/"
) -> subprocess.CompletedProcess[str]:
    """``sustainml ARGS...`` with ``env`` added to this environment; ``cwd`` "/" by default, so the
    source tree is never imported instead of the installed package."""
    return subprocess.run(
        [sys.executable, "-m", "sustainml.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
