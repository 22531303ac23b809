"""Requests over the broker: each operation's handler, found in ``HANDLERS`` by the request's
``op`` (docs/wire-format.md §9). Every request that reaches the orchestrator with a ``reply_to``
of its namespace is answered, failures included; none is left to time out.

A submission may name a ``watch_queue`` header: the task's events go to that queue from the first
one on. With the ``watch_mode`` header set to ``"direct"`` the orchestrator publishes them
straight to it through the default exchange; without it, it binds the queue to the task's events
on ``<ns>.tasks`` and unbinds it once the task is over (§9.8).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sustainml.messages.tasks import (
    REPLY_TYPE,
    CancelReply,
    CancelRequest,
    ListReply,
    ListRequest,
    Reply,
    ResultReply,
    ResultRequest,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
    decode_request,
    encode_reply,
)
from sustainml.orchestrator.replies import error_reply
from sustainml.orchestrator.submissions import Submission
from sustainml.orchestrator.watchers import watch_of
from sustainml.rpc import ForeignQueue, check_own_queue, reply
from sustainml.transport.base import Delivery, Message

if TYPE_CHECKING:
    from sustainml.orchestrator.core import Orchestrator

log = logging.getLogger(__name__)


def _submit(orch: Orchestrator, req: SubmitRequest, message: Message) -> Reply:
    queue, direct = watch_of(message.headers) or (None, False)
    task_id = orch.submit(
        req.user_input, idempotency_key=req.idempotency_key, watch_queue=queue, watch_direct=direct
    )
    return SubmitReply(task_id)


def _result(orch: Orchestrator, req: ResultRequest, message: Message) -> Reply:
    return ResultReply(orch.result(req.task_id))


def _status(orch: Orchestrator, req: StatusRequest, message: Message) -> Reply:
    return orch.nodes()


def _cancel(orch: Orchestrator, req: CancelRequest, message: Message) -> Reply:
    return CancelReply(orch.cancel(req.task_id))


def _list(orch: Orchestrator, req: ListRequest, message: Message) -> Reply:
    return ListReply(orch.tasks(req.state, req.problem_id, req.limit, req.offset))


Handler = Callable[["Orchestrator", Any, Message], Reply]
HANDLERS: dict[str, Handler] = {
    SubmitRequest.op: _submit,
    ResultRequest.op: _result,
    StatusRequest.op: _status,
    CancelRequest.op: _cancel,
    ListRequest.op: _list,
}


def _handle(orch: Orchestrator, req: Any, message: Message) -> Reply:
    """The reply to one decoded request: its handler's, or the error that stopped it."""
    try:
        return HANDLERS[req.op](orch, req, message)
    except Exception as exc:
        return error_reply(exc)


def _batched(orch: Orchestrator, req: Any, delivery: Delivery) -> bool:
    """Hand a ``submit`` of a new problem to the submissions batch (submissions.py); False for
    every other request."""
    if not isinstance(req, SubmitRequest) or req.user_input.previous_iteration != 0:
        return False
    watch = watch_of(delivery.message.headers)
    orch.submissions.put(Submission(req.user_input, req.idempotency_key, watch, delivery))
    return True


def on_request(orch: Orchestrator, delivery: Delivery) -> None:
    reply_to = delivery.message.reply_to
    if reply_to:
        try:  # a request whose answer would land in another namespace is not carried out
            check_own_queue(orch.topology, reply_to, "reply_to", direct_reply=True)
        except ForeignQueue as exc:
            delivery.ack()
            log.warning("orchestrator request refused: %s", exc)
            return
    try:
        req = decode_request(delivery.message.body)
    except Exception as exc:
        response: Reply = error_reply(exc)
    else:
        if _batched(orch, req, delivery):
            return  # the submissions thread answers it with its batch
        response = _handle(orch, req, delivery.message)
    delivery.ack()
    reply(orch.transport, delivery, encode_reply(response), topology=orch.topology, type=REPLY_TYPE)
