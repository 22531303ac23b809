"""The compat node base: our runtime node, with the user's callbacks seeing accessor-style records.

A compat node class is its runtime class (same stage, queues, status, reliability) whose callbacks
are wrapped: each record the runtime passes becomes a :mod:`sustainml.compat.records` wrapper that
writes through to it, so what the user's callback sets is exactly what the runtime publishes.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

from sustainml.config import Settings
from sustainml.messages import RequestType, ResponseType
from sustainml.messages.types import Record
from sustainml.transport.base import Transport
from sustainml.workers.runtime import Node, _HybridTerminate

from .records import wrap

UserCallback = Callable[..., Any]


class _CompatTerminate(_HybridTerminate):
    """``Cls.terminate()`` stops every node of that class this process created, started or not
    (the template's signal handler may run while the node is still connecting: a stop then makes
    ``spin()`` return as soon as it is up); ``node.terminate()`` stops that node."""

    def __get__(self, obj: Node | None, cls: type[Node]) -> Callable[[], None]:
        if obj is not None:
            return obj.stop

        def stop_all() -> None:
            with CompatNode._created_lock:
                nodes = [n for n in CompatNode._created if isinstance(n, cls)]
            for node in nodes:
                node.stop()

        return stop_all


class CompatNode(Node):
    """Base of the six ``sustainml.compat.nodes`` classes (not used directly)."""

    _created: ClassVar[weakref.WeakSet[Node]] = weakref.WeakSet()
    _created_lock: ClassVar[threading.Lock] = threading.Lock()

    terminate = _CompatTerminate()

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
        with CompatNode._created_lock:
            CompatNode._created.add(self)


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
