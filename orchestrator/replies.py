"""The error reply of an orchestrator request: one mapping from what stopped a request to what its
caller is told, for the request handlers and the batched submissions alike."""

from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout

from sustainml.messages import MessageError
from sustainml.messages.tasks import ErrorReply, RequestError
from sustainml.orchestrator.protocol import SubmitError
from sustainml.transport.base import TransportError

log = logging.getLogger(__name__)


def error_reply(exc: BaseException) -> ErrorReply:
    """The reply to a request that ``exc`` stopped. A bug still gets an answer (logged here), so
    the caller does not wait for its timeout."""
    if isinstance(exc, KeyError):
        return ErrorReply(str(exc.args[0]) if exc.args else "not found")
    # ForeignQueue is a ValueError
    if isinstance(exc, RequestError | SubmitError | MessageError | ValueError | TypeError):
        return ErrorReply(str(exc))
    if isinstance(exc, TransportError | FutureTimeout):
        return ErrorReply(f"broker error: {exc}")
    log.error("orchestrator request failed", exc_info=exc)
    return ErrorReply(f"internal error: {type(exc).__name__}: {exc}")
