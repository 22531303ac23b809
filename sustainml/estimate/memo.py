"""Bounded per-process memos of estimates that depend only on their inputs.

Graph analyses, roofline latencies, screening latencies and serving costs are pure functions of
(model, device, precision, batch, ...): a worker that answers the same catalogue model on the same
devices again computes nothing twice. Each ``Memo`` is an LRU of fixed size, keyed on exactly the
inputs its result depends on, so an answer never changes with the memo's state.

Catalogue entries hold dicts and are not hashable; they take part in a key by identity
(``pinned``): the memo keeps a reference to them next to the result, so while a result is cached
no other object can take their ``id``. An entry rebuilt with other fields (``dataclasses.replace``)
is another object and misses.

``clear_all`` empties every memo: tests use it, and the scaling bench before every task so each
task pays the full cost whatever the replica has seen before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

_registry_lock = threading.Lock()
_registry: list[Memo[object]] = []


class Memo(Generic[V]):
    """A thread-safe LRU of ``size`` results; a miss computes outside the lock (two threads missing
    the same key both compute it, and the answers are equal)."""

    def __init__(self, name: str, size: int) -> None:
        if size < 1:
            raise ValueError(f"memo {name}: size must be >= 1, got {size}")
        self.name = name
        self.size = size
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, tuple[tuple[object, ...], V]] = OrderedDict()
        with _registry_lock:
            _registry.append(self)  # type: ignore[arg-type]

    def get(self, key: Hashable, compute: Callable[[], V], pinned: tuple[object, ...] = ()) -> V:
        """The result for ``key`` and the objects ``pinned`` (compared by identity); ``compute()``
        on a miss."""
        full = (tuple(map(id, pinned)), key)
        with self._lock:
            hit = self._items.get(full)
            if hit is not None and all(a is b for a, b in zip(hit[0], pinned, strict=True)):
                self._items.move_to_end(full)
                self.hits += 1
                return hit[1]
            self.misses += 1
        value = compute()
        with self._lock:
            self._items[full] = (pinned, value)
            self._items.move_to_end(full)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def clear_all() -> None:
    """Empty every memo of the process."""
    with _registry_lock:
        memos = list(_registry)
    for memo in memos:
        memo.clear()


class AllMemos:
    """Every memo of the process as one object with ``clear()``."""

    def clear(self) -> None:
        clear_all()


def stats() -> dict[str, dict[str, int]]:
    """Hits, misses and size of every memo, by name."""
    with _registry_lock:
        memos = list(_registry)
    return {m.name: {"hits": m.hits, "misses": m.misses, "size": len(m)} for m in memos}


__all__ = ["AllMemos", "Memo", "clear_all", "stats"]
