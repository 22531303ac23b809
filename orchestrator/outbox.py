"""Work handed off the results thread: one thread of its own runs it, in order.

The single consumer of ``<ns>.orchestrator.results`` stores each output and acks it; starting an
automatic iteration also publishes a task with confirms, which can wait up to ``PUBLISH_TIMEOUT``
seconds through a broker outage. Done on the results thread, that wait would stall the storing of
every other task's outputs; here it only delays the iterations queued behind it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], None]


class Outbox:
    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def put(self, job: Job) -> None:
        """Run ``job`` on the outbox thread; once the outbox is closed (or before it started), on
        the caller's thread, so no job is ever dropped."""
        with self._lock:
            if not self._closed and self._thread is not None:
                self._jobs.put(job)
                return
        self._call(job)

    def close(self) -> None:
        """Run every job queued so far, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(None)
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._call(job)

    def _call(self, job: Job) -> None:
        try:
            job()
        except Exception:  # a job reports its own failures; this one is a bug, kept from the thread
            log.exception("%s: job failed", self._name)
