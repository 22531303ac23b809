"""The memory broker's state: exchanges, queues, their messages and consumers, topic matching and
the timer thread. Guarded by the broker's one lock (see the package docstring)."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from sustainml.transport.base import ExchangeType, Handler, Message, QueueSpec, TransportError

if TYPE_CHECKING:
    from sustainml.transport.memory.transport import MemoryTransport

log = logging.getLogger(__name__)

EXCHANGE_TYPES: frozenset[str] = frozenset({"topic", "fanout", "direct"})
PREDECLARED: tuple[tuple[str, ExchangeType], ...] = (
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
)


class QueueNotFound(TransportError, KeyError):
    """The queue does not exist (AMQP ``NOT_FOUND``). A ``KeyError`` too, as ``queue_counts``
    promises."""

    def __str__(self) -> str:
        # KeyError would render the message with quotes around it.
        return Exception.__str__(self)


# -- topic matching ----------------------------------------------------------------------------


def _words(key: str) -> list[str]:
    # RabbitMQ treats the empty key as zero words, and "a..b" as three (the middle one empty).
    return key.split(".") if key else []


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic match: ``*`` matches exactly one word, ``#`` zero or more words."""
    key = _words(routing_key)
    # reach[j]: the pattern words seen so far match the first j words of the key.
    reach = [True] + [False] * len(key)
    for word in _words(pattern):
        if word == "#":
            seen = False
            nxt = []
            for r in reach:
                seen = seen or r
                nxt.append(seen)
        elif word == "*":
            nxt = [False, *reach[:-1]]
        else:
            nxt = [False] + [reach[j] and key[j] == word for j in range(len(key))]
        reach = nxt
        if not any(reach):
            return False
    return reach[-1]


# -- timers ------------------------------------------------------------------------------------


class Scheduler:
    """Runs callbacks at monotonic times on one lazily started daemon thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def call_at(self, when: float, fn: Callable[[], None]) -> bool:
        with self._cond:
            if self._stopped:
                return False
            heapq.heappush(self._heap, (when, next(self._seq), fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
            return True

    def stop(self, timeout: float) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout))
            if thread.is_alive():
                log.warning("timer thread %s still running a callback after %.1fs", self._name, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        fn = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(delay)
            try:
                fn()
            except Exception:
                log.exception("timer callback %r on %s failed", fn, self._name)


# -- broker state ------------------------------------------------------------------------------


@dataclass(eq=False)
class Entry:
    """A message sitting in (or delivered from) one queue."""

    seq: int  # position in the queue; a requeued message returns to it
    message: Message  # private copy, never handed to a handler
    exchange: str
    routing_key: str
    expires_at: float | None = None  # monotonic
    redelivered: bool = False
    returns: int = 0  # times given back to the queue (quorum x-delivery-count)


@dataclass(eq=False)
class ExchangeState:
    name: str
    type: ExchangeType
    durable: bool = True
    # queue name -> binding keys
    bindings: dict[str, set[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueArgs:
    """The declare-time arguments RabbitMQ compares on re-declaration."""

    durable: bool
    queue_type: str
    dead_letter_exchange: str | None
    dead_letter_routing_key: str | None
    expires_ms: int | None
    message_ttl_ms: int | None
    max_length: int | None
    delivery_limit: int | None

    @classmethod
    def of(cls, spec: QueueSpec) -> QueueArgs:
        # Each field is named after the QueueSpec attribute it copies.
        return cls(**{f.name: getattr(spec, f.name) for f in fields(cls)})


@dataclass(eq=False)
class QueueState:
    name: str
    args: QueueArgs
    ready: list[tuple[int, Entry]] = field(default_factory=list)  # heap ordered by seq
    consumers: list[ConsumerState] = field(default_factory=list)
    rr: int = 0  # round-robin cursor into consumers
    unacked: int = 0
    deleted: bool = False
    last_used: float = field(default_factory=time.monotonic)
    expiry_timer_at: float | None = None


@dataclass(eq=False)
class ConsumerState:
    tag: str
    queue: QueueState
    handler: Handler
    prefetch: int
    transport: MemoryTransport
    executor: ThreadPoolExecutor
    unacked: int = 0
    inflight: int = 0  # handler calls submitted and not finished
    active: bool = True
    discard_pending: bool = False  # set on close: queued handler calls are skipped

    def has_capacity(self) -> bool:
        return self.active and (self.prefetch <= 0 or self.unacked < self.prefetch)
