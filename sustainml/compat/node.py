"""The compat node base: our runtime node, with the user's callbacks seeing accessor-style records.

A compat node class is its runtime class (same stage, queues, status, reliability) whose callbacks
are wrapped: each record the runtime passes becomes a :mod:`sustainml.compat.records` wrapper that
writes through to it, so what the user's callback sets is exactly what the runtime publishes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sustainml.config import Settings
from sustainml.messages import RequestType, ResponseType
from sustainml.messages.types import Record
from sustainml.transport.base import Transport
from sustainml.workers.runtime import Node

from .records import wrap

UserCallback = Callable[..., Any]


class CompatNode(Node):
    """Base of the six ``sustainml.compat.nodes`` classes (not used directly).

    ``Cls.terminate()`` (the template calls it from its signal handler, maybe while the node is
    still connecting) and ``node.terminate()`` are the runtime's: ``Node.stop_all()`` and
    ``node.stop()``."""

    def __init__(
        self,
        callback: UserCallback | None = None,
        service_callback: UserCallback | None = None,
        *,
        settings: Settings | None = None,
        transport: Transport | None = None,
        replica_id: str | None = None,
    ) -> None:
        if callback is None:  # upstream's message
            raise ValueError(f"{type(self).__name__} constructor expects a callback.")
        super().__init__(
            callback=_wrap_task_callback(callback),
            service_callback=_wrap_service_callback(service_callback) if service_callback else None,
            settings=settings,
            transport=transport,
            replica_id=replica_id,
        )
        self.user_callback = callback
        self.user_service_callback = service_callback
        root = logging.getLogger()
        if not root.handlers:  # a ported script configures no logging: use SUSTAINML_LOG_LEVEL
            logging.basicConfig(
                level=self.settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
            )


def _wrap_task_callback(callback: UserCallback) -> Callable[..., None]:
    def task(*records: Record | None) -> None:
        # Inputs, node_status and the output, all as write-through wrappers: whatever the user
        # sets lands in the records the runtime then checks and publishes.
        callback(*(wrap(r) for r in records))

    task.__qualname__ = f"compat({getattr(callback, '__qualname__', repr(callback))})"
    return task


def _wrap_service_callback(callback: UserCallback) -> Callable[[RequestType, ResponseType], None]:
    def service(req: RequestType, res: ResponseType) -> None:
        callback(wrap(req), wrap(res))

    service.__qualname__ = f"compat({getattr(callback, '__qualname__', repr(callback))})"
    return service
