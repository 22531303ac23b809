"""The Transport contract: the same test bodies run on ``MemoryTransport`` and ``AmqpTransport``.

The ``transport_factory`` fixture is parametrized over ``memory`` (several transports on one
shared ``MemoryBroker``) and ``amqp`` (a real RabbitMQ from the ``amqp_url`` fixture, marked
``integration``). Every exchange and queue name carries a per-test uuid namespace; queues are
deleted at teardown (and, on RabbitMQ, exchanges too). Waiting is done with conditions or
deadline polling, never fixed sleeps.

Tests at the end of the file exercise what only the memory transport has (its topic matcher,
``snapshot``, logging of double settlements, x-expires, ...).

Run: ``.venv/bin/pytest tests/unit/test_transport_contract.py`` (``-m 'not integration'`` for the
memory half only).
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sustainml.transport.base import (
    Binding,
    Delivery,
    ExchangeSpec,
    ExchangeType,
    Message,
    QueueSpec,
    Transport,
    TransportError,
    Unroutable,
)
from sustainml.transport.memory import (
    MemoryBroker,
    MemoryDelivery,
    MemoryTransport,
    QueueNotFound,
    topic_matches,
)
from tests.support.waiting import wait_until

DEADLINE = 10.0  # generous upper bound; the memory transport needs milliseconds


# -- helpers ------------------------------------------------------------------------------------


class Collector:
    """A handler that runs ``action`` (default: ack) and then records the delivery."""

    def __init__(self, action: Callable[[Delivery], None] | None = None) -> None:
        self._action: Callable[[Delivery], None] = action if action is not None else _ack
        self._cond = threading.Condition()
        self.items: list[Delivery] = []

    def __call__(self, delivery: Delivery) -> None:
        self._action(delivery)
        with self._cond:
            self.items.append(delivery)
            self._cond.notify_all()

    def wait(self, n: int, timeout: float = DEADLINE) -> list[Delivery]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.items) >= n, timeout):
                raise AssertionError(
                    f"expected {n} deliveries within {timeout:.1f}s, got {len(self.items)}: "
                    f"{[d.message.body for d in self.items]}"
                )
            return list(self.items)


def is_open(t: Transport) -> bool:
    # A call, not an attribute test, so mypy does not narrow is_open across close().
    return t.is_open


def _ack(delivery: Delivery) -> None:
    delivery.ack()


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def x_death(delivery: Delivery) -> list[dict[str, Any]]:
    """The ``x-death`` records of a dead-lettered delivery, bytes decoded to str."""
    records = delivery.message.headers.get("x-death")
    assert isinstance(records, list) and records, f"no x-death header in {delivery.message.headers}"
    return [
        {_text(k): [_text(x) for x in v] if isinstance(v, list) else _text(v) for k, v in r.items()}
        for r in records
    ]


class TransportFactory:
    """Builds connected transports of one kind and owns the test's names and cleanup."""

    def __init__(
        self,
        kind: str,
        make: Callable[[str], Transport],
        delete_exchanges: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.kind = kind
        self.ns = f"t-{uuid.uuid4().hex[:8]}"
        self._make = make
        self._delete_exchanges = delete_exchanges
        self._count = itertools.count(1)
        self._transports: list[Transport] = []
        self._queues: list[str] = []
        self._exchanges: list[str] = []
        self._admin: Transport | None = None
        self.broker: MemoryBroker | None = None  # set for the memory kind

    def __call__(self) -> Transport:
        """A new connected transport (one AMQP connection, or one memory-broker connection)."""
        t = self._make(f"{self.ns}-{next(self._count)}")
        self._transports.append(t)
        t.connect()
        return t

    @property
    def admin(self) -> Transport:
        """A transport for declarations, publishing and counts."""
        if self._admin is None:
            self._admin = self()
        return self._admin

    def name(self, suffix: str) -> str:
        return f"{self.ns}.{suffix}"

    def exchange(self, suffix: str, type: ExchangeType = "topic") -> str:
        name = self.name(suffix)
        self._exchanges.append(name)
        self.admin.declare_exchange(ExchangeSpec(name, type))
        return name

    def queue(self, suffix: str, *bindings: Binding, **spec: Any) -> str:
        name = self.name(suffix)
        self._queues.append(name)
        self.admin.declare_queue(QueueSpec(name, tuple(bindings), **spec))
        return name

    def ready(self, queue: str) -> int:
        return self.admin.queue_counts(queue)[0]

    def publish(self, exchange: str, routing_key: str, message: Message, *, mandatory: bool = True) -> None:
        """Publish and wait for the confirm."""
        self.admin.publish(exchange, routing_key, message, mandatory=mandatory).result(timeout=DEADLINE)

    def teardown(self) -> None:
        for t in self._transports:
            t.close(timeout=5.0)
        if self._queues:
            cleaner = self._make(f"{self.ns}-cleanup")
            cleaner.connect()
            try:
                for q in self._queues:
                    cleaner.delete_queue(q)
            finally:
                cleaner.close(timeout=5.0)
        if self._delete_exchanges is not None and self._exchanges:
            self._delete_exchanges(self._exchanges)


def _memory_factory() -> TransportFactory:
    broker = MemoryBroker()
    factory = TransportFactory("memory", lambda name: MemoryTransport(broker, name=name))
    factory.broker = broker
    return factory


def _amqp_delete_exchanges(url: str, names: list[str]) -> None:
    # The Transport contract has no exchange deletion; tidy the shared broker directly.
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = conn.channel()
        for name in names:
            channel.exchange_delete(name)
    finally:
        conn.close()


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.integration)])
def transport_factory(request: pytest.FixtureRequest) -> Iterator[TransportFactory]:
    if request.param == "memory":
        factory = _memory_factory()
        try:
            yield factory
        finally:
            factory.teardown()
            assert factory.broker is not None
            factory.broker.close()
        return
    try:
        from sustainml.transport.amqp import AmqpTransport
    except ImportError as exc:
        pytest.skip(
            f"sustainml.transport.amqp does not import yet ({exc}); AMQP half of the contract skipped"
        )
    try:
        url = request.getfixturevalue("amqp_url")
    except pytest.FixtureLookupError:
        pytest.skip("no amqp_url fixture (tests/conftest.py) yet; AMQP half of the contract skipped")
    factory = TransportFactory(
        "amqp",
        lambda name: AmqpTransport(url, name=name),
        delete_exchanges=lambda names: _amqp_delete_exchanges(url, names),
    )
    try:
        yield factory
    finally:
        factory.teardown()


def drain(f: TransportFactory, queue: str, n: int) -> list[Delivery]:
    """Check the queue holds exactly ``n`` ready messages, then consume and ack them."""
    wait_until(lambda: f.ready(queue) >= n, DEADLINE, f"{n} messages in {queue}")
    assert f.ready(queue) == n
    t = f()
    collector = Collector()
    tag = t.consume(queue, collector, prefetch=max(1, n), concurrency=1)
    got = collector.wait(n)
    t.cancel(tag)
    wait_until(lambda: f.ready(queue) == 0, DEADLINE, f"{queue} empty")
    return got


# -- routing ------------------------------------------------------------------------------------


def test_topic_routing(transport_factory: TransportFactory) -> None:
    f = transport_factory
    ex = f.exchange("topic", "topic")
    patterns = {
        "hash": "a.#",
        "star": "a.*",
        "exact": "a.b",
        "all": "#",
        "lead": "#.b",
        "mid": "*.b.#",
    }
    queues = {k: f.queue(k, Binding(ex, p)) for k, p in patterns.items()}
    keys = ["a", "a.b", "a.b.c", "x.b", "b"]
    for key in keys:
        f.publish(ex, key, Message(key.encode()))
    expected = {
        "hash": ["a", "a.b", "a.b.c"],  # '#' also matches zero words
        "star": ["a.b"],
        "exact": ["a.b"],
        "all": keys,
        "lead": ["a.b", "b", "x.b"],
        "mid": ["a.b", "a.b.c", "x.b"],
    }
    for k, q in queues.items():
        got = drain(f, q, len(expected[k]))
        assert sorted(d.routing_key for d in got) == sorted(expected[k]), k
        assert all(d.message.body == d.routing_key.encode() and d.exchange == ex for d in got)


def test_fanout_routing_ignores_keys(transport_factory: TransportFactory) -> None:
    f = transport_factory
    ex = f.exchange("fan", "fanout")
    q1 = f.queue("one", Binding(ex, "ignored"))
    q2 = f.queue("two", Binding(ex, "#"))
    f.publish(ex, "any.key", Message(b"f"))
    for q in (q1, q2):
        [d] = drain(f, q, 1)
        assert (d.message.body, d.routing_key, d.exchange) == (b"f", "any.key", ex)


def test_direct_routing(transport_factory: TransportFactory) -> None:
    f = transport_factory
    ex = f.exchange("direct", "direct")
    red = f.queue("red", Binding(ex, "red"))
    red2 = f.queue("red2", Binding(ex, "red"))
    green = f.queue("green", Binding(ex, "green"))
    both = f.queue("both", Binding(ex, "red"), Binding(ex, "green"))
    for key in ("red", "green", "red"):
        f.publish(ex, key, Message(key.encode()))
    assert [d.message.body for d in drain(f, red, 2)] == [b"red", b"red"]
    assert [d.message.body for d in drain(f, red2, 2)] == [b"red", b"red"]
    assert [d.message.body for d in drain(f, green, 1)] == [b"green"]
    # A queue matched by several bindings still gets one copy per message.
    assert [d.message.body for d in drain(f, both, 3)] == [b"red", b"green", b"red"]
    with pytest.raises(Unroutable):
        f.publish(ex, "blue", Message(b"blue"))


def test_default_exchange_routes_by_queue_name(transport_factory: TransportFactory) -> None:
    f = transport_factory
    q = f.queue("by-name")
    f.publish("", q, Message(b"hello", message_id="m1"))
    [d] = drain(f, q, 1)
    assert (d.message.body, d.exchange, d.routing_key, d.queue) == (b"hello", "", q, q)
    with pytest.raises(Unroutable):
        f.publish("", f.name("no-such-queue"), Message(b"lost"))
    f.publish("", f.name("no-such-queue"), Message(b"dropped"), mandatory=False)  # confirmed, dropped


def test_mandatory_unroutable_fails_the_future(transport_factory: TransportFactory) -> None:
    f = transport_factory
    ex = f.exchange("sparse", "topic")
    q = f.queue("only", Binding(ex, "only.this"))
    fut = f.admin.publish(ex, "something.else", Message(b"x"))
    with pytest.raises(Unroutable) as info:
        fut.result(timeout=DEADLINE)
    assert isinstance(info.value, TransportError)
    # Not mandatory: confirmed and dropped, nothing reaches the queue.
    f.publish(ex, "something.else", Message(b"y"), mandatory=False)
    f.publish(ex, "only.this", Message(b"z"))
    assert [d.message.body for d in drain(f, q, 1)] == [b"z"]


def test_publish_to_missing_exchange_fails_and_transport_survives(
    transport_factory: TransportFactory,
) -> None:
    f = transport_factory
    missing = f.name("no-such-exchange")
    with pytest.raises(TransportError, match=re.escape(missing)):
        f.admin.publish(missing, "k", Message(b"x")).result(timeout=DEADLINE)
    q = f.queue("after-error")
    f.publish("", q, Message(b"ok"))
    assert [d.message.body for d in drain(f, q, 1)] == [b"ok"]


# -- queue administration -----------------------------------------------------------------------


def test_queue_declare_counts_purge_delete(transport_factory: TransportFactory) -> None:
    f = transport_factory
    q = f.queue("admin", message_ttl_ms=60_000)
    f.admin.declare_queue(QueueSpec(q, message_ttl_ms=60_000))  # idempotent
    with pytest.raises(TransportError):
        f.admin.declare_queue(QueueSpec(q, message_ttl_ms=1_000))  # inequivalent argument
    for i in range(3):
        f.publish("", q, Message(b"%d" % i))
    assert f.admin.queue_counts(q) == (3, 0)
    t = f()
    gate = threading.Event()

    def hold(_d: Delivery) -> None:
        gate.wait(DEADLINE)

    tag = t.consume(q, Collector(hold), prefetch=1)
    wait_until(lambda: f.admin.queue_counts(q) == (2, 1), DEADLINE, "one delivery out, one consumer")
    assert f.admin.purge_queue(q) == 2  # unacked messages are not purged
    t.cancel(tag)
    gate.set()
    f.admin.delete_queue(q)
    with pytest.raises(KeyError):
        f.admin.queue_counts(q)
    f.admin.delete_queue(q)  # deleting a missing queue is not an error


# -- consumers ----------------------------------------------------------------------------------


def test_competing_consumers_share_and_handle_each_message_once(transport_factory: TransportFactory) -> None:
    f = transport_factory
    q = f.queue("work")
    total = 40
    # Each consumer's first handler call waits for the other consumer's: with prefetch=1 neither can
    # take every message, so both must get some, on either transport.
    barrier = threading.Barrier(2)
    cond = threading.Condition()
    handled: list[tuple[int, str]] = []

    def make_handler(i: int) -> Callable[[Delivery], None]:
        first = [True]

        def handler(d: Delivery) -> None:
            if first[0]:
                first[0] = False
                barrier.wait(timeout=DEADLINE)
            assert d.message.message_id is not None
            d.ack()
            with cond:
                handled.append((i, d.message.message_id))
                cond.notify_all()

        return handler

    for i in (1, 2):
        f().consume(q, make_handler(i), prefetch=1, concurrency=1)
    wait_until(lambda: f.admin.queue_counts(q)[1] == 2, DEADLINE, "two consumers")
    for n in range(total):
        f.publish("", q, Message(b"job", message_id=f"job-{n}"))
    with cond:
        assert cond.wait_for(lambda: len(handled) >= total, DEADLINE), f"handled {len(handled)}"
    ids = Counter(mid for _, mid in handled)
    assert set(ids) == {f"job-{n}" for n in range(total)}
    assert max(ids.values()) == 1, "a message was handled twice"
    assert {i for i, _ in handled} == {1, 2}
    wait_until(lambda: f.ready(q) == 0, DEADLINE, "queue drained")


def test_prefetch_bounds_unacked_deliveries(transport_factory: TransportFactory) -> None:
    f = transport_factory
    q = f.queue("prefetch")
    total, prefetch = 10, 3
    for n in range(total):
        f.publish("", q, Message(b"%d" % n))
    cond = threading.Condition()
    state = {"inflight": 0, "peak": 0, "done": 0}
    gate = threading.Event()

    def handler(d: Delivery) -> None:
        with cond:
            state["inflight"] += 1
            state["peak"] = max(state["peak"], state["inflight"])
            cond.notify_all()
        gate.wait(DEADLINE)
        with cond:
            state["inflight"] -= 1  # before the ack: never over-count what the broker sees
        d.ack()
        with cond:
            state["done"] += 1
            cond.notify_all()

    # More threads than prefetch: only the prefetch limit can hold the handlers back.
    f().consume(q, handler, prefetch=prefetch, concurrency=6)
    with cond:
        assert cond.wait_for(lambda: state["inflight"] == prefetch, DEADLINE)
    # The broker handed out exactly `prefetch` messages and keeps the rest ready.
    wait_until(lambda: f.ready(q) == total - prefetch, DEADLINE, f"{total - prefetch} ready")
    assert state["peak"] == prefetch
    gate.set()
    with cond:
        assert cond.wait_for(lambda: state["done"] == total, DEADLINE)
    assert state["peak"] == prefetch


def test_ack_and_reject_requeue_redelivers_at_head(transport_factory: TransportFactory) -> None:
    f = transport_factory
    q = f.queue("requeue")
    f.publish("", q, Message(b"1", message_id="m1"))
    f.publish("", q, Message(b"2", message_id="m2"))

    def action(d: Delivery) -> None:
        if d.message.message_id == "m1" and not d.redelivered:
            d.reject(requeue=True)
        else:
            d.ack()

    collector = Collector(action)
    f().consume(q, collector, prefetch=1)
    got = collector.wait(3)
    assert [(d.message.message_id, d.redelivered) for d in got] == [
        ("m1", False),
        ("m1", True),
        ("m2", False),
    ]
    wait_until(lambda: f.ready(q) == 0, DEADLINE, "queue drained")


def _dead_letter_pair(f: TransportFactory, **work_spec: Any) -> tuple[str, str, str]:
    """(work queue, its DLQ, the DLX): the work queue dead-letters to the DLQ under its own name."""
    dlx = f.exchange("dlx", "direct")
    work = f.name("work")
    dlq = f.queue("work.dlq", Binding(dlx, work))
    f.queue("work", dead_letter_exchange=dlx, dead_letter_routing_key=work, **work_spec)
    return work, dlq, dlx


def test_reject_without_requeue_dead_letters(transport_factory: TransportFactory) -> None:
    f = transport_factory
    work, dlq, dlx = _dead_letter_pair(f)
    f.publish("", work, Message(b"poison", message_id="p1", headers={"attempt": 1}))
    rejected = Collector(lambda d: d.reject(requeue=False))
    f().consume(work, rejected)
    rejected.wait(1)
    dead = Collector()
    f().consume(dlq, dead)
    [d] = dead.wait(1)
    assert (d.message.body, d.message.message_id, d.message.headers["attempt"]) == (b"poison", "p1", 1)
    assert (d.exchange, d.routing_key, d.redelivered) == (dlx, work, False)
    death = x_death(d)[0]
    assert (death["queue"], death["reason"], death["count"]) == (work, "rejected", 1)
    assert (death["exchange"], death["routing-keys"]) == ("", [work])
    assert _text(d.message.headers["x-first-death-queue"]) == work
    wait_until(lambda: f.ready(work) == 0, DEADLINE, "work queue empty")


def test_dead_letter_keeps_routing_key_without_override(transport_factory: TransportFactory) -> None:
    f = transport_factory
    ex = f.exchange("in", "topic")
    dlx = f.exchange("dlx", "topic")
    dlq = f.queue("dlq", Binding(dlx, "job.#"))
    work = f.queue("work", Binding(ex, "job.#"), dead_letter_exchange=dlx)
    f.publish(ex, "job.7", Message(b"j"))
    f().consume(work, Collector(lambda d: d.reject()))
    dead = Collector()
    f().consume(dlq, dead)
    [d] = dead.wait(1)
    assert (d.exchange, d.routing_key) == (dlx, "job.7")
    death = x_death(d)[0]
    assert (death["exchange"], death["routing-keys"], death["queue"]) == (ex, ["job.7"], work)


def test_handler_exception_dead_letters_and_consumer_continues(transport_factory: TransportFactory) -> None:
    f = transport_factory
    work, dlq, _ = _dead_letter_pair(f)

    def action(d: Delivery) -> None:
        if d.message.body == b"bad":
            raise RuntimeError("handler bug")
        d.ack()

    ok = Collector(action)
    f().consume(work, ok, prefetch=1)
    f.publish("", work, Message(b"bad", message_id="bad"))
    f.publish("", work, Message(b"good", message_id="good"))
    assert [d.message.body for d in ok.wait(1)] == [b"good"]
    dead = Collector()
    f().consume(dlq, dead)
    [d] = dead.wait(1)
    assert d.message.message_id == "bad"
    assert x_death(d)[0]["reason"] == "rejected"
    wait_until(lambda: f.ready(work) == 0, DEADLINE, "work queue empty")


def test_max_length_dead_letters_the_head(transport_factory: TransportFactory) -> None:
    f = transport_factory
    work, dlq, _ = _dead_letter_pair(f, max_length=2)
    for n in range(4):
        f.publish("", work, Message(b"m%d" % n))
    assert [d.message.body for d in drain(f, dlq, 2)] == [b"m0", b"m1"]
    assert [d.message.body for d in drain(f, work, 2)] == [b"m2", b"m3"]


def test_message_expiration_dead_letters(transport_factory: TransportFactory) -> None:
    f = transport_factory
    work, dlq, _ = _dead_letter_pair(f)
    f.publish("", work, Message(b"late", message_id="late", expiration_ms=30))
    dead = Collector()
    f().consume(dlq, dead)
    [d] = dead.wait(1)
    assert d.message.message_id == "late"
    assert d.message.expiration_ms is None  # RabbitMQ strips the expiration when dead-lettering
    death = x_death(d)[0]
    assert (death["reason"], death["queue"], death["original-expiration"]) == ("expired", work, "30")
    wait_until(lambda: f.ready(work) == 0, DEADLINE, "work queue empty")


def test_queue_message_ttl_dead_letters(transport_factory: TransportFactory) -> None:
    f = transport_factory
    work, dlq, _ = _dead_letter_pair(f, message_ttl_ms=30)
    f.publish("", work, Message(b"stale"))
    dead = Collector()
    f().consume(dlq, dead)
    [d] = dead.wait(1)
    assert d.message.body == b"stale"
    assert x_death(d)[0]["reason"] == "expired"


def test_quorum_delivery_limit_dead_letters(transport_factory: TransportFactory) -> None:
    f = transport_factory
    work, dlq, _ = _dead_letter_pair(f, queue_type="quorum", delivery_limit=1)
    f.publish("", work, Message(b"loop", message_id="loop"))
    looping = Collector(lambda d: d.reject(requeue=True))
    f().consume(work, looping, prefetch=1)
    dead = Collector()
    f().consume(dlq, dead)
    [d] = dead.wait(1)
    assert x_death(d)[0]["reason"] == "delivery_limit"
    got = looping.wait(2)
    assert len(got) == 2  # delivered once, returned once, then over the limit
    # RabbitMQ 3.10 omits the header on a first delivery to a consumer.
    assert [d.message.headers.get("x-delivery-count", 0) for d in got] == [0, 1]
    assert [d.redelivered for d in got] == [False, True]


def test_properties_are_preserved(transport_factory: TransportFactory) -> None:
    f = transport_factory
    q = f.queue("props")
    sent = [
        Message(
            body=b"\x00\x01\xffpayload",
            headers={"attempt": 3, "traceparent": "00-abc-def-01", "flag": True},
            message_id="mid-1",
            correlation_id="cid-1",
            reply_to="reply.queue",
            type="ml_model",
            app_id="ML_MODEL",
            timestamp=1_700_000_000,
        ),
        Message(body=b"{}", persistent=False, content_type="application/json"),
    ]
    for m in sent:
        f.publish("", q, m)
    got = [d.message for d in drain(f, q, 2)]
    for s, g in zip(sent, got, strict=True):
        assert {k: g.headers.get(k) for k in s.headers} == s.headers
        for prop in (
            "body",
            "message_id",
            "correlation_id",
            "reply_to",
            "type",
            "app_id",
            "timestamp",
            "expiration_ms",
            "persistent",
            "content_type",
        ):
            assert getattr(g, prop) == getattr(s, prop), prop


def test_close_requeues_unacked_deliveries(transport_factory: TransportFactory) -> None:
    f = transport_factory
    q = f.queue("close")
    f.publish("", q, Message(b"held", message_id="held"))
    first = f()
    holder = Collector(lambda d: None)  # takes the message and never settles it
    first.consume(q, holder)
    [held] = holder.wait(1)
    wait_until(lambda: f.admin.queue_counts(q) == (0, 1), DEADLINE, "message unacked by the first consumer")
    first.close(timeout=DEADLINE)
    assert not first.is_open
    wait_until(lambda: f.admin.queue_counts(q) == (1, 0), DEADLINE, "message back in the queue")
    held.ack()  # settling a delivery of a closed transport is a no-op: the message stays queued
    assert f.ready(q) == 1
    second = Collector()
    f().consume(q, second)
    [d] = second.wait(1)
    assert (d.message.message_id, d.redelivered) == ("held", True)
    wait_until(lambda: f.ready(q) == 0, DEADLINE, "queue drained")


def test_cancel_stops_deliveries_but_handed_out_ones_can_be_settled(
    transport_factory: TransportFactory,
) -> None:
    f = transport_factory
    q = f.queue("cancel")
    t = f()
    holder = Collector(lambda d: None)
    tag = t.consume(q, holder, prefetch=1)
    f.publish("", q, Message(b"1", message_id="m1"))
    [held] = holder.wait(1)
    t.cancel(tag)
    wait_until(lambda: f.admin.queue_counts(q)[1] == 0, DEADLINE, "consumer gone")
    f.publish("", q, Message(b"2", message_id="m2"))
    wait_until(lambda: f.ready(q) == 1, DEADLINE, "m2 stays ready")
    held.ack()
    other = Collector()
    f().consume(q, other)
    assert [d.message.message_id for d in other.wait(1)] == ["m2"]
    wait_until(lambda: f.ready(q) == 0, DEADLINE, "queue drained")
    assert len(holder.items) == 1


def test_call_later_fires_on_a_transport_thread(transport_factory: TransportFactory) -> None:
    t = transport_factory.admin
    cond = threading.Condition()
    fired: list[tuple[str, float, threading.Thread]] = []

    def mark(label: str) -> Callable[[], None]:
        def fn() -> None:
            with cond:
                fired.append((label, time.monotonic(), threading.current_thread()))
                cond.notify_all()

        return fn

    start = time.monotonic()
    t.call_later(0.08, mark("late"))
    t.call_later(0.02, mark("early"))
    with cond:
        assert cond.wait_for(lambda: len(fired) == 2, DEADLINE)
    assert [label for label, _, _ in fired] == ["early", "late"]
    assert fired[0][1] - start >= 0.02 - 0.005
    assert fired[1][1] - start >= 0.08 - 0.005
    assert all(thread is not threading.current_thread() for _, _, thread in fired)


# -- memory transport only ----------------------------------------------------------------------


@pytest.fixture
def memory() -> Iterator[TransportFactory]:
    factory = _memory_factory()
    try:
        yield factory
    finally:
        factory.teardown()
        assert factory.broker is not None
        factory.broker.close()


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("#", "", True),
        ("#", "a.b.c", True),
        ("", "", True),
        ("", "a", False),
        ("*", "", False),
        ("*", "a", True),
        ("*", "a.b", False),
        ("*", ".", False),  # "." is two empty words
        ("a.#", "a", True),
        ("a.#", "ab", False),
        ("#.b", "b", True),
        ("#.b", "a..b", True),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.x.y.c", False),
        ("#.#", "", True),
        ("*.*", "a", False),
        ("a.*.#", "a", False),
        ("a.*.#", "a.b", True),
        ("#.*", "", False),
        ("#.*", "a.b", True),
    ],
)
def test_topic_matches(pattern: str, key: str, matches: bool) -> None:
    # Expectations checked against RabbitMQ 3.10.
    assert topic_matches(pattern, key) is matches


def test_snapshot_reports_ready_unacked_consumers(memory: TransportFactory) -> None:
    assert memory.broker is not None
    q = memory.queue("snap")
    for n in range(3):
        memory.publish("", q, Message(b"%d" % n))
    holder = Collector(lambda d: None)
    memory().consume(q, holder, prefetch=2)
    holder.wait(2)
    assert memory.broker.snapshot()[q] == (1, 2, 1)


def test_double_settle_logs_a_warning(memory: TransportFactory, caplog: pytest.LogCaptureFixture) -> None:
    q = memory.queue("double")
    memory.publish("", q, Message(b"x", message_id="x"))
    collector = Collector()
    memory().consume(q, collector)
    [d] = collector.wait(1)
    with caplog.at_level(logging.WARNING, logger="sustainml.transport.memory"):
        d.ack()
        d.reject(requeue=True)
    assert "settled twice" in caplog.text
    assert memory.ready(q) == 0


def test_handler_exception_is_logged_with_context(
    memory: TransportFactory, caplog: pytest.LogCaptureFixture
) -> None:
    q = memory.queue("boom")

    def boom(_d: Delivery) -> None:
        raise ValueError("kaput")

    collector = Collector(boom)
    with caplog.at_level(logging.ERROR, logger="sustainml.transport.memory"):
        memory().consume(q, collector)
        memory.publish("", q, Message(b"x", message_id="boom-1"))
        wait_until(lambda: "kaput" in caplog.text, DEADLINE, "logged exception")
    assert "boom-1" in caplog.text and q in caplog.text


def test_handlers_run_on_consumer_threads(memory: TransportFactory) -> None:
    q = memory.queue("threads")
    threads: set[str] = set()

    def action(d: Delivery) -> None:
        threads.add(threading.current_thread().name)
        d.ack()

    collector = Collector(action)
    t = memory()
    assert isinstance(t, MemoryTransport)
    t.consume(q, collector, concurrency=2)
    for n in range(20):
        memory.publish("", q, Message(b"%d" % n))
    collector.wait(20)
    assert threading.current_thread().name not in threads
    assert threads and all(name.startswith(f"{t.name}:{q}") for name in threads)
    assert all(isinstance(d, MemoryDelivery) and d.settled for d in collector.items)


def test_round_robin_between_consumers(memory: TransportFactory) -> None:
    q = memory.queue("rr")
    consumers = [Collector(), Collector()]
    for c in consumers:
        memory().consume(q, c, prefetch=0)  # unlimited prefetch: only round robin splits the work
    for n in range(10):
        memory.publish("", q, Message(b"%d" % n))
    assert [len(c.wait(5)) for c in consumers] == [5, 5]
    wait_until(lambda: sum(len(c.items) for c in consumers) == 10, DEADLINE, "all handled")
    assert [len(c.items) for c in consumers] == [5, 5]


def test_transport_lifecycle_errors(memory: TransportFactory) -> None:
    assert memory.broker is not None
    t = MemoryTransport(memory.broker, name="lifecycle")
    assert not is_open(t)
    with pytest.raises(TransportError, match="connect"):
        t.declare_exchange(ExchangeSpec(memory.name("x")))
    t.connect()
    t.connect()  # idempotent
    assert is_open(t)
    t.close()
    t.close()  # idempotent
    assert not is_open(t)
    with pytest.raises(TransportError, match="closed"):
        t.publish("", "q", Message(b"x")).result(timeout=1)
    with pytest.raises(TransportError):
        t.connect()
    with pytest.raises(TypeError):
        MemoryTransport("orchestrator")  # type: ignore[arg-type]
    private = MemoryTransport(name="private")  # its own broker
    with private:
        private.declare_queue(QueueSpec("q"))
        assert private.queue_counts("q") == (0, 0)
    assert "q" not in memory.broker.snapshot()


def test_missing_queue_errors(memory: TransportFactory) -> None:
    missing = memory.name("missing")
    with pytest.raises(QueueNotFound) as info:
        memory.admin.purge_queue(missing)
    assert isinstance(info.value, KeyError) and isinstance(info.value, TransportError)
    assert str(info.value).startswith("NOT_FOUND")
    with pytest.raises(TransportError):
        memory.admin.consume(missing, Collector())
    with pytest.raises(TransportError, match="no exchange"):
        memory.queue("unbound", Binding(memory.name("no-exchange"), "#"))
    with pytest.raises(TransportError, match="PRECONDITION_FAILED"):
        ex = memory.exchange("typed", "topic")
        memory.admin.declare_exchange(ExchangeSpec(ex, "direct"))


def test_queue_expires_when_unused(memory: TransportFactory) -> None:
    broker = memory.broker
    assert broker is not None
    q = memory.queue("private", expires_ms=30)
    kept = memory.queue("kept", expires_ms=30)
    memory().consume(kept, Collector())  # a consumer keeps the queue in use
    wait_until(lambda: q not in broker.snapshot(), DEADLINE, "expired queue deleted")
    assert kept in broker.snapshot()


def test_dead_letter_cycle_without_rejection_is_dropped(memory: TransportFactory) -> None:
    assert memory.broker is not None
    # Expired messages dead-letter through the default exchange back into their own queue.
    q = memory.queue("cycle", dead_letter_exchange="", message_ttl_ms=10)
    memory.publish("", q, Message(b"c"))
    broker = memory.broker
    wait_until(lambda: broker.snapshot()[q] == (0, 0, 0), DEADLINE, "message dropped, not looping")


def test_close_from_inside_a_handler_does_not_deadlock(memory: TransportFactory) -> None:
    q = memory.queue("self-close")
    t = memory()
    closed = threading.Event()

    def action(_d: Delivery) -> None:
        t.close(timeout=DEADLINE)
        closed.set()

    t.consume(q, Collector(action))
    memory.publish("", q, Message(b"x"))
    assert closed.wait(2.0)
    wait_until(lambda: memory.ready(q) == 1, DEADLINE, "requeued by close")


def test_close_timeout_with_a_stuck_handler(memory: TransportFactory) -> None:
    q = memory.queue("stuck")
    t = memory()
    release = threading.Event()
    started = Collector(lambda d: None)

    def action(d: Delivery) -> None:
        started(d)
        release.wait(DEADLINE)
        d.ack()  # after close: a no-op, the message was requeued

    t.consume(q, action)
    memory.publish("", q, Message(b"x", message_id="stuck"))
    started.wait(1)
    begin = time.monotonic()
    t.close(timeout=0.05)
    assert time.monotonic() - begin < 2.0
    assert memory.ready(q) == 1
    release.set()
    other = Collector()
    memory().consume(q, other)
    [d] = other.wait(1)
    assert (d.message.message_id, d.redelivered) == ("stuck", True)
