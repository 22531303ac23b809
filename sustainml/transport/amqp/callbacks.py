"""Helpers for the callbacks handed to pika, which pika runs on the I/O thread (the only thread that
touches pika objects): futures completed once, and callbacks whose errors fail an operation
instead of the connection."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pika.exceptions

log = logging.getLogger(__name__)


def resolve(fut: Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
    """Complete a future once; a second completion (or a cancelled future) is ignored."""
    if fut.done():
        return
    with contextlib.suppress(Exception):  # InvalidStateError if it raced with cancel()
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)


WRONG_STATE = (pika.exceptions.ChannelWrongStateError, pika.exceptions.ConnectionWrongStateError)


def shielded(fn: Callable[..., object], fut: Future[Any] | None = None) -> Callable[..., None]:
    """Wrap a callback handed to pika. An exception escaping into pika's dispatch aborts the whole
    connection, so it fails ``fut`` (or is logged) instead. A channel that is already closing
    raises "wrong state": its close callback reports the real reason, so that is only debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except WRONG_STATE as exc:
            log.debug("AMQP callback %s on a closing channel/connection: %r", _qualname(fn), exc)
        except Exception as exc:
            if fut is not None and not fut.done():
                resolve(fut, exc=exc)
            else:
                log.exception("error in AMQP callback %s", _qualname(fn))

    return wrapper


def _qualname(fn: Callable[..., object]) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(getattr(fn, "func", None), "__qualname__", fn))
