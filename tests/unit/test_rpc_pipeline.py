"""``RpcClient.call_many``'s bookkeeping with a scripted responder (no transport): replies in
input order whatever order they come in, a request unanswered in time sent again unchanged, the
window halved by a timeout, and what is raised when a request is never answered or cannot be
sent."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future

import pytest

from sustainml import rpc
from sustainml.rpc import CallsUnanswered, PendingCall, RpcError, _Pipeline
from sustainml.transport.base import Message

TIMEOUT = 0.05  # seconds before an unanswered request is sent again


class Responder:
    """Answers each body with itself, reversed, when ``answer`` says so for that sending."""

    def __init__(self, answer: Callable[[bytes, int], bool]) -> None:
        self.answer = answer
        self.sent: list[bytes] = []
        self.forgotten: list[str] = []
        self.held: list[tuple[PendingCall, bytes]] = []  # sent and not answered (yet)

    def send(self, body: bytes) -> PendingCall:
        self.sent.append(body)
        confirmed: Future[None] = Future()
        confirmed.set_result(None)
        pending = PendingCall(uuid.uuid4().hex, "the responder", Future(), confirmed)
        if self.answer(body, self.sent.count(body)):
            pending.reply.set_result(Message(body[::-1]))
        else:
            self.held.append((pending, body))
        return pending

    def answer_held_last_first(self) -> None:
        for pending, body in reversed(self.held):
            pending.reply.set_result(Message(body[::-1]))
        self.held.clear()

    def forget(self, pending: PendingCall) -> None:
        self.forgotten.append(pending.correlation_id)


def _run(responder: Responder, bodies: list[bytes], *, window: int = 4, resend_for: float = 5.0) -> _Pipeline:
    pipeline = _Pipeline(
        bodies, responder.send, responder.forget, timeout=TIMEOUT, resend_for=resend_for, window=window
    )
    replies = pipeline.run()
    assert [r.body for r in replies] == [b[::-1] for b in bodies]
    return pipeline


def test_replies_come_back_in_input_order_and_the_window_bounds_what_is_in_flight() -> None:
    """The responder answers nothing until the window is full, then everything held, last first."""
    bodies = [f"request {i}".encode() for i in range(10)]
    responder = Responder(lambda body, sending: False)
    most_held = 0

    def send(body: bytes) -> PendingCall:
        nonlocal most_held
        pending = responder.send(body)
        most_held = max(most_held, len(responder.held))
        if len(responder.held) == 3 or body == bodies[-1]:
            responder.answer_held_last_first()
        return pending

    pipeline = _Pipeline(bodies, send, responder.forget, timeout=5.0, resend_for=5.0, window=3)
    assert [r.body for r in pipeline.run()] == [b[::-1] for b in bodies]
    assert most_held == 3 and responder.sent == bodies  # nothing sent twice


def test_an_unanswered_request_is_sent_again_unchanged_and_the_window_halves() -> None:
    bodies = [f"request {i}".encode() for i in range(4)]
    responder = Responder(lambda body, sending: body != b"request 1" or sending > 1)
    pipeline = _run(responder, bodies, window=4)
    assert responder.sent.count(b"request 1") == 2 and len(responder.sent) == 5
    assert responder.forgotten == [responder.held[0][0].correlation_id]  # its late reply is dropped
    assert pipeline.limit == 3  # halved to 2 by the timeout, one more for the reply that followed


def test_a_request_never_answered_raises_with_the_replies_received() -> None:
    responder = Responder(lambda body, sending: body != b"lost")
    with pytest.raises(CallsUnanswered, match=r"the responder did not answer within 0\.05 s") as caught:
        _run(responder, [b"first", b"lost", b"third"], resend_for=0.2)
    assert caught.value.index == 1
    assert [r.body if r else None for r in caught.value.replies] == [b"tsrif", None, b"driht"]
    assert responder.sent.count(b"lost") >= 2


def test_a_request_that_cannot_be_sent_raises_at_once() -> None:
    responder = Responder(lambda body, sending: True)
    refuse = responder.send

    def send(body: bytes) -> PendingCall:
        pending = refuse(body)
        if body == b"unroutable":
            pending.reply = Future()
            pending.reply.set_exception(RpcError("no queue is bound for the responder"))
        return pending

    pipeline = _Pipeline(
        [b"ok", b"unroutable"], send, responder.forget, timeout=TIMEOUT, resend_for=5.0, window=4
    )
    with pytest.raises(RpcError, match="no queue is bound") as caught:
        pipeline.run()
    assert caught.value.index == 1 and caught.value.replies[0] is not None


def test_a_slow_responder_gets_no_more_than_it_answers_before_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A responder answering one request every 50 ms, in order, as a queue does, and a window far
    larger than it can answer within the 1 s timeout: requests are held back while the oldest
    has waited half its timeout, so none waits until it times out and none is sent twice."""
    monkeypatch.setattr(rpc, "START_WINDOW", 2)  # the window grows quickly past what is safe
    responder = Responder(lambda body, sending: False)
    answered = threading.Event()

    def serve() -> None:
        while not answered.is_set():
            time.sleep(0.05)
            if responder.held:
                pending, body = responder.held.pop(0)
                pending.reply.set_result(Message(body[::-1]))

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    bodies = [f"request {i}".encode() for i in range(40)]
    try:
        pipeline = _Pipeline(
            bodies, responder.send, responder.forget, timeout=1.0, resend_for=30.0, window=40
        )
        assert [r.body for r in pipeline.run()] == [b[::-1] for b in bodies]
    finally:
        answered.set()
        server.join()
    assert responder.sent == bodies and responder.forgotten == []
