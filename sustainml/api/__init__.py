"""The HTTP API: the original framework's REST routes, the versioned ``/v1`` API,
server-sent events, Prometheus metrics and the dashboard's static files, served by uvicorn in the
orchestrator process. Route handlers only translate HTTP to the orchestrator's Python API.

    from sustainml.api import create_app, ApiServer
"""

from __future__ import annotations

from sustainml.api.app import create_app
from sustainml.api.server import ApiServer

__all__ = ["ApiServer", "create_app"]
