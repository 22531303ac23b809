"""A queue drained in batches by one thread of its own: what group commit needs.

Producers ``put`` items; the thread takes every item waiting (up to ``max_batch``) and hands them
to ``handle`` at once. At low load a batch holds one item, so nothing waits for company; under load
one batch (one transaction, one round of confirms) serves many. ``close`` handles every item put so
far, then stops the thread; an item put after that is handled on the caller's thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class BatchQueue(Generic[T]):
    def __init__(self, name: str, handle: Callable[[list[T]], None], max_batch: int) -> None:
        self._name = name
        self._handle = handle
        self._max_batch = max_batch
        self._cv = threading.Condition()
        self._pending: list[T] = []
        self._closing = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join()

    def put(self, item: T) -> None:
        with self._cv:
            handled_here = self._closing or self._thread is None
            if not handled_here:
                self._pending.append(item)
                self._cv.notify()
        if handled_here:  # no thread to do it: do it now rather than leave it undone
            self._handle([item])

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closing:
                    self._cv.wait()
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                if not batch and self._closing:
                    return
            try:
                self._handle(batch)
            except Exception:  # ``handle`` reports its own failures; this one is a bug
                log.exception("%s: batch of %d failed", self._name, len(batch))
