"""AmqpTransport against a real RabbitMQ broker (picked by tests/conftest.py).

Every test uses names under its own ``t-<uuid8>`` namespace and deletes them afterwards. Waiting
for consumption is always a poll with a deadline; the only sleeps are inside handlers, where they
stand for work.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.exceptions
import pytest

from sustainml.transport.amqp import AmqpDelivery, AmqpTransport, ChannelError
from sustainml.transport.base import (
    Binding,
    BrokerUnavailable,
    ConnectionLost,
    Delivery,
    ExchangeSpec,
    Message,
    PublishNacked,
    QueueSpec,
    TransportError,
    Unroutable,
)
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


# ---------------------------------------------------------------------------------------- helpers

class Names:
    """Hands out namespaced names and deletes them at teardown over a separate connection."""

    def __init__(self, namespace: str) -> None:
        self.ns = namespace
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, suffix: str) -> str:
        name = f"{self.ns}.{suffix}"
        self.queues.append(name)
        return name

    def exchange(self, suffix: str) -> str:
        name = f"{self.ns}.{suffix}"
        self.exchanges.append(name)
        return name

    def cleanup(self, url: str) -> None:
        if not self.queues and not self.exchanges:
            return
        conn = pika.BlockingConnection(pika.URLParameters(url))
        try:
            for q in self.queues:
                conn.channel().queue_delete(q)
            for ex in self.exchanges:
                conn.channel().exchange_delete(ex)
        finally:
            conn.close()


@pytest.fixture(autouse=True)
def names(amqp_url: str, test_namespace: str) -> Iterator[Names]:
    # autouse: set up before (so torn down after) amqp_transport. Deleting a queue under a live
    # consumer would make the transport re-declare it, as it should.
    n = Names(test_namespace)
    yield n
    n.cleanup(amqp_url)


def declare_work_queue(t: AmqpTransport, names: Names, *, with_dlq: bool = False) -> tuple[str, str, str]:
    """A topic exchange and a queue bound with '#'; optionally a DLX + DLQ. Returns (exchange, queue, dlq)."""
    exchange = names.exchange("in")
    queue = names.queue("work")
    dlq = ""
    t.declare_exchange(ExchangeSpec(exchange, "topic"))
    if with_dlq:
        dlx = names.exchange("dlx")
        dlq = names.queue("work.dlq")
        t.declare_exchange(ExchangeSpec(dlx, "direct"))
        t.declare_queue(QueueSpec(dlq, (Binding(dlx, queue),)))
        t.declare_queue(
            QueueSpec(
                queue, (Binding(exchange, "#"),), dead_letter_exchange=dlx, dead_letter_routing_key=queue
            )
        )
    else:
        t.declare_queue(QueueSpec(queue, (Binding(exchange, "#"),)))
    return exchange, queue, dlq


def publish_all(t: AmqpTransport, exchange: str, messages: list[Message], key: str = "1.1") -> None:
    futures = [t.publish(exchange, key, m) for m in messages]
    _done, not_done = wait(futures, timeout=30)
    assert not not_done, "publish confirms did not arrive"
    for f in futures:
        f.result()


def recorder(into: list[Delivery]) -> Callable[[Delivery], None]:
    """A handler that records and acks every delivery."""

    def handler(d: Delivery) -> None:
        into.append(d)
        d.ack()

    return handler


def bodies(deliveries: list[Delivery]) -> list[bytes]:
    return [d.message.body for d in deliveries]


def rabbitmqctl(*args: str) -> str:
    proc = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=True
    )
    return proc.stdout


def local_rabbitmqctl_or_skip(amqp_url: str) -> None:
    """Fault injection needs rabbitmqctl talking to the broker under test (the local node)."""
    host, port = urlsplit(amqp_url).hostname, urlsplit(amqp_url).port or 5672
    # a broker container publishes on loopback too, but on another port: not the local node
    if host not in ("127.0.0.1", "localhost", "::1") or port != 5672 or shutil.which("rabbitmqctl") is None:
        pytest.skip("needs rabbitmqctl for the local broker under test")
    try:
        rabbitmqctl("list_connections", "pid")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        pytest.skip(f"rabbitmqctl cannot reach the local node: {exc}")


def connection_rows(connection_name: str, *columns: str) -> list[list[str]]:
    """``rabbitmqctl list_connections`` rows (pid, *columns) of connections with this client name."""
    out = rabbitmqctl("list_connections", "--no-table-headers", "pid", *columns, "client_properties")
    marker = f'{{"connection_name","{connection_name}"}}'
    return [line.split("\t")[:-1] for line in out.splitlines() if marker in line]


# ------------------------------------------------------------------------------------------ tests
def test_round_trip_preserves_properties(amqp_transport: AmqpTransport, names: Names) -> None:
    exchange, queue, _ = declare_work_queue(amqp_transport, names)
    sent = [
        Message(
            body=b"\x81\xa1k\x01",
            headers={"traceparent": "00-abc-def-01", "attempt": 2, "nested": {"a": [1, "b"]}},
            message_id="7.1:ml_model",
            correlation_id="7.1",
            reply_to=names.queue("replies"),
            type="ml_model",
            app_id="ML_MODEL",
            timestamp=1_700_000_000,
            expiration_ms=60_000,
            persistent=True,
            content_type="application/msgpack",
        ),
        Message(body=b"transient", persistent=False, content_type="text/plain"),
    ]
    received: list[Delivery] = []
    got_all = threading.Event()

    def handler(d: Delivery) -> None:
        received.append(d)
        d.ack()
        if len(received) == len(sent):
            got_all.set()

    amqp_transport.consume(queue, handler)
    publish_all(amqp_transport, exchange, sent, key="7.1")
    assert got_all.wait(10), f"only {len(received)} of {len(sent)} deliveries arrived"
    by_body = {d.message.body: d for d in received}
    for m in sent:
        d = by_body[m.body]
        # every property round-trips, the private return-correlation header is gone, and the
        # broker-validated user-id is the publisher's login
        assert amqp_transport.user is not None
        assert d.message == replace(m, user_id=amqp_transport.user)
        assert (d.exchange, d.routing_key, d.queue, d.redelivered) == (exchange, "7.1", queue, False)
    wait_until(lambda: amqp_transport.queue_counts(queue) == (0, 1), what="queue drained with one consumer")


def test_many_publishes_in_flight_all_confirm(amqp_transport: AmqpTransport, names: Names) -> None:
    exchange, queue, _ = declare_work_queue(amqp_transport, names)
    futures = [amqp_transport.publish(exchange, f"{i}.1", Message(b"x" * 100)) for i in range(500)]
    done, not_done = wait(futures, timeout=30)
    assert not not_done and all(f.exception() is None for f in done)
    assert amqp_transport.queue_counts(queue) == (500, 0)
    assert amqp_transport.purge_queue(queue) == 500


def test_mandatory_to_unbound_routing_key_is_unroutable(amqp_transport: AmqpTransport, names: Names) -> None:
    exchange = names.exchange("direct")
    queue = names.queue("bound")
    amqp_transport.declare_exchange(ExchangeSpec(exchange, "direct"))
    amqp_transport.declare_queue(QueueSpec(queue, (Binding(exchange, "bound-key"),)))

    lost = amqp_transport.publish(exchange, "nobody-listens", Message(b"lost"))
    with pytest.raises(Unroutable, match="nobody-listens"):
        lost.result(10)
    # The same message without mandatory is confirmed (the broker acks and drops it silently).
    amqp_transport.publish(exchange, "nobody-listens", Message(b"dropped"), mandatory=False).result(10)
    # Routable publishes interleaved with returns are not blamed for them.
    results = [
        amqp_transport.publish(exchange, key, Message(key.encode()))
        for key in ("bound-key", "nobody", "bound-key", "nobody")
    ]
    outcomes = [type(f.exception(10)).__name__ if f.exception(10) else "ok" for f in results]
    assert outcomes == ["ok", "Unroutable", "ok", "Unroutable"]
    assert amqp_transport.queue_counts(queue) == (2, 0)


def test_broker_nack_fails_the_future_with_publish_nacked(
    amqp_url: str, amqp_transport: AmqpTransport, names: Names
) -> None:
    # A full queue with overflow=reject-publish makes the broker nack (QueueSpec has no overflow
    # knob, so the queue is declared from outside).
    queue = names.queue("full")
    outsider = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        outsider.channel().queue_declare(
            queue, durable=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
        )
    finally:
        outsider.close()
    amqp_transport.publish("", queue, Message(b"fits")).result(10)
    refused_on = amqp_transport._publisher._channel
    with pytest.raises(PublishNacked):
        amqp_transport.publish("", queue, Message(b"overflows")).result(10)
    # The channel that was refused is replaced (a quorum queue after a failover may go on refusing
    # the channel that published through it); publishing goes on, on a new channel.
    wait_until(
        lambda: amqp_transport._publisher._channel not in (None, refused_on), what="a new publish channel"
    )
    amqp_transport.publish("", names.queue("unrelated"), Message(b"x"), mandatory=False).result(10)
    assert amqp_transport.queue_counts(queue) == (1, 0)


def test_queue_arguments_reach_the_broker(amqp_transport: AmqpTransport, names: Names) -> None:
    dlx = names.exchange("dlx")
    dlq = names.queue("dlq")
    amqp_transport.declare_exchange(ExchangeSpec(dlx, "fanout"))
    amqp_transport.declare_queue(QueueSpec(dlq, (Binding(dlx, ""),)))
    # Message TTL: an unconsumed message expires into the DLX.
    ttl_queue = names.queue("ttl")
    amqp_transport.declare_queue(
        QueueSpec(ttl_queue, dead_letter_exchange=dlx, message_ttl_ms=50, expires_ms=60_000, max_length=10)
    )
    amqp_transport.publish("", ttl_queue, Message(b"expires")).result(10)
    wait_until(lambda: amqp_transport.queue_counts(dlq)[0] == 1, what="expired message dead-lettered")
    # Quorum queue with a delivery limit: requeued past the limit, the message is dead-lettered.
    quorum = names.queue("quorum")
    amqp_transport.declare_queue(
        QueueSpec(quorum, queue_type="quorum", dead_letter_exchange=dlx, delivery_limit=2)
    )
    attempts: list[bool] = []

    def always_requeue(d: Delivery) -> None:
        attempts.append(d.redelivered)
        d.reject(requeue=True)

    amqp_transport.consume(quorum, always_requeue)
    amqp_transport.publish("", quorum, Message(b"poison")).result(10)
    wait_until(lambda: amqp_transport.queue_counts(dlq)[0] == 2, what="delivery limit dead-lettered it")
    assert len(attempts) == 3 and attempts[0] is False and all(attempts[1:])


def test_cancel_stops_deliveries_and_running_handler_still_settles(
    amqp_url: str, amqp_transport: AmqpTransport, names: Names
) -> None:
    exchange, queue, _ = declare_work_queue(amqp_transport, names)
    started = threading.Event()
    release = threading.Event()
    handled: list[bytes] = []

    def handler(d: Delivery) -> None:
        started.set()
        release.wait(10)
        handled.append(d.message.body)
        d.ack()

    tag = amqp_transport.consume(queue, handler, prefetch=5)
    publish_all(amqp_transport, exchange, [Message(b"first")])
    assert started.wait(10)
    amqp_transport.cancel(tag)
    assert amqp_transport.queue_counts(queue) == (0, 0)  # no consumer; "first" is still unacked
    publish_all(amqp_transport, exchange, [Message(b"second")])
    release.set()
    wait_until(lambda: handled == [b"first"], what="the running handler finished")
    # The ack of "first" went through (its channel stays open for late settlements): closing the
    # transport now must not bring it back, and "second" was never handed to the cancelled consumer.
    amqp_transport.close()
    checker = AmqpTransport(amqp_url, name=f"{amqp_transport.name}-check")
    checker.connect()
    try:
        assert checker.queue_counts(queue) == (1, 0)
    finally:
        checker.close()
    assert handled == [b"first"]
    amqp_transport.cancel(tag)  # unknown tag now: a warning, not an error


def test_publish_to_missing_exchange_fails_and_channel_recovers(
    amqp_transport: AmqpTransport, names: Names
) -> None:
    exchange, queue, _ = declare_work_queue(amqp_transport, names)
    with pytest.raises(ChannelError, match="no exchange"):
        amqp_transport.publish(names.exchange("missing"), "k", Message(b"x")).result(10)
    amqp_transport.publish(exchange, "k", Message(b"after")).result(10)
    assert amqp_transport.queue_counts(queue) == (1, 0)


def test_competing_consumers_share_and_handle_each_message_once(
    amqp_url: str, amqp_transport: AmqpTransport, names: Names, test_namespace: str
) -> None:
    exchange, queue, _ = declare_work_queue(amqp_transport, names)
    second = AmqpTransport(amqp_url, name=f"sustainml-{test_namespace}-b")
    second.connect()
    try:
        handled: Counter[str] = Counter()
        by_replica: Counter[str] = Counter()
        lock = threading.Lock()

        def make_handler(replica: str) -> Callable[[Delivery], None]:
            def handler(d: Delivery) -> None:
                time.sleep(0.002)  # a little work, so neither replica drains everything alone
                with lock:
                    handled[d.message.message_id or ""] += 1
                    by_replica[replica] += 1
                d.ack()

            return handler

        amqp_transport.consume(queue, make_handler("a"), prefetch=2, concurrency=2)
        second.consume(queue, make_handler("b"), prefetch=2, concurrency=2)
        total = 300
        publish_all(amqp_transport, exchange, [Message(b"m", message_id=f"m{i}") for i in range(total)])
        wait_until(lambda: sum(handled.values()) >= total, 30, "all messages handled")
        wait_until(lambda: amqp_transport.queue_counts(queue)[0] == 0, what="queue empty")
        assert set(handled) == {f"m{i}" for i in range(total)}
        assert max(handled.values()) == 1, "a message was handled twice"
        assert by_replica["a"] >= total // 5 and by_replica["b"] >= total // 5, by_replica
    finally:
        second.close()


def test_prefetch_bounds_unacked_deliveries(amqp_transport: AmqpTransport, names: Names) -> None:
    exchange, queue, _ = declare_work_queue(amqp_transport, names)
    release = threading.Event()
    lock = threading.Lock()
    running = 0
    peak = 0
    done = 0

    def handler(d: Delivery) -> None:
        nonlocal running, peak, done
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(30)
        with lock:
            running -= 1
            done += 1
        d.ack()

    # The pool could run 10 at once: only prefetch limits what the broker hands out.
    amqp_transport.consume(queue, handler, prefetch=3, concurrency=10)
    publish_all(amqp_transport, exchange, [Message(b"p") for _ in range(10)])
    wait_until(lambda: running == 3, what="three handlers running")
    # The broker keeps the other seven: they are still ready in the queue, not buffered client-side.
    wait_until(lambda: amqp_transport.queue_counts(queue)[0] == 7, what="seven messages held by the broker")
    assert running == 3
    release.set()
    wait_until(lambda: done == 10, what="all ten handled")
    assert peak == 3


def test_reject_without_requeue_dead_letters(amqp_transport: AmqpTransport, names: Names) -> None:
    exchange, queue, dlq = declare_work_queue(amqp_transport, names, with_dlq=True)
    amqp_transport.consume(queue, lambda d: d.reject(requeue=False))
    publish_all(amqp_transport, exchange, [Message(b"poison", message_id="bad-1")])
    wait_until(lambda: amqp_transport.queue_counts(dlq)[0] == 1, what="message in the DLQ")
    assert amqp_transport.queue_counts(queue)[0] == 0

    dead: list[Delivery] = []
    amqp_transport.consume(dlq, recorder(dead))
    wait_until(lambda: len(dead) == 1, what="DLQ delivery")
    msg = dead[0].message
    assert msg.body == b"poison" and msg.message_id == "bad-1"
    deaths = msg.headers["x-death"]
    assert deaths[0]["reason"] == "rejected" and deaths[0]["queue"] == queue


def test_handler_exception_dead_letters_and_logs(
    amqp_transport: AmqpTransport, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    exchange, queue, dlq = declare_work_queue(amqp_transport, names, with_dlq=True)

    def handler(d: Delivery) -> None:
        raise ValueError("cannot decode")

    amqp_transport.consume(queue, handler)
    with caplog.at_level(logging.ERROR, logger="sustainml.transport.amqp"):
        publish_all(amqp_transport, exchange, [Message(b"garbage", message_id="boom-1")])
        wait_until(lambda: amqp_transport.queue_counts(dlq)[0] == 1, what="message in the DLQ")
    failures = [r for r in caplog.records if r.exc_info and "boom-1" in r.getMessage()]
    assert failures and queue in failures[0].getMessage()
    assert amqp_transport.queue_counts(queue)[0] == 0


def test_settling_twice_warns_and_does_not_raise(
    amqp_transport: AmqpTransport, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    exchange, queue, _ = declare_work_queue(amqp_transport, names)
    settled = threading.Event()

    def handler(d: Delivery) -> None:
        d.ack()
        d.ack()
        d.reject()
        settled.set()

    amqp_transport.consume(queue, handler)
    with caplog.at_level(logging.WARNING, logger="sustainml.transport.amqp"):
        publish_all(amqp_transport, exchange, [Message(b"once")])
        assert settled.wait(10)
    assert sum("already settled" in r.getMessage() for r in caplog.records) == 2
    # The channel survived (a double ack would have closed it with PRECONDITION_FAILED).
    wait_until(lambda: amqp_transport.queue_counts(queue) == (0, 1), what="consumer still attached")
    publish_all(amqp_transport, exchange, [Message(b"again")])
    wait_until(lambda: amqp_transport.queue_counts(queue) == (0, 1), what="second message consumed")


def test_heartbeats_survive_a_slow_handler(amqp_url: str, names: Names, test_namespace: str) -> None:
    name = f"sustainml-{test_namespace}-hb"
    transport = AmqpTransport(amqp_url, heartbeat=2, name=name)
    transport.connect()
    try:
        exchange, queue, _ = declare_work_queue(transport, names)
        url = urlsplit(amqp_url)
        if (
            shutil.which("rabbitmqctl")
            and url.hostname in ("127.0.0.1", "localhost")
            and (url.port or 5672) == 5672
        ):
            # The broker really runs a 2 s heartbeat timeout on this connection.
            assert [row[1] for row in connection_rows(name, "timeout")] == ["2"]
        finished = threading.Event()

        def slow(d: Delivery) -> None:
            time.sleep(8)  # four heartbeat timeouts without touching pika
            d.ack()
            finished.set()

        transport.consume(queue, slow)
        publish_all(transport, exchange, [Message(b"slow")])
        assert finished.wait(30)
        # Same connection throughout (no reconnect) and the ack reached the broker: nothing is left
        # ready, and closing (which would requeue an unacked message) leaves nothing either.
        assert transport.is_open and transport.generation == 1
        wait_until(lambda: transport.queue_counts(queue) == (0, 1), what="ack applied")
    finally:
        transport.close()
    checker = AmqpTransport(amqp_url, name=f"sustainml-{test_namespace}-check")
    checker.connect()
    try:
        assert checker.queue_counts(queue) == (0, 0)
    finally:
        checker.close()


def test_reconnect_after_broker_closes_the_connection(
    amqp_url: str, amqp_transport: AmqpTransport, names: Names
) -> None:
    local_rabbitmqctl_or_skip(amqp_url)
    exchange, queue, _ = declare_work_queue(amqp_transport, names)
    handled: list[Delivery] = []
    amqp_transport.consume(queue, recorder(handled))
    publish_all(amqp_transport, exchange, [Message(b"before")])
    wait_until(lambda: bodies(handled) == [b"before"], what="first message")

    rows = connection_rows(amqp_transport.name)
    assert len(rows) == 1, rows
    rabbitmqctl("close_connection", rows[0][0], "integration test: forced close")

    wait_until(lambda: amqp_transport.generation == 2 and amqp_transport.is_open, 30, "reconnect")
    wait_until(lambda: amqp_transport.queue_counts(queue)[1] >= 1, 15, "consumer re-issued")
    publish_all(amqp_transport, exchange, [Message(b"after")])
    wait_until(lambda: bodies(handled) == [b"before", b"after"], what="message after reconnect handled")
    assert len(connection_rows(amqp_transport.name)) == 1


def test_outage_fails_pending_publishes_then_reconnects(
    amqp_url: str, names: Names, test_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sustainml.transport.amqp")
    parts = urlsplit(amqp_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    transport = AmqpTransport(url, name=f"sustainml-{test_namespace}-proxied", heartbeat=5)
    transport.connect()
    try:
        exchange, queue, _ = declare_work_queue(transport, names)
        handled: list[Delivery] = []
        transport.consume(queue, recorder(handled))

        proxy.hold.set()  # the broker's confirm for the next publish never reaches us
        pending = transport.publish(exchange, "k", Message(b"in-flight"))
        _done, not_done = wait([pending], timeout=0.5)
        assert not_done, "the confirm should be held by the proxy"
        proxy.stop()
        with pytest.raises(ConnectionLost):
            pending.result(10)
        wait_until(lambda: not transport.is_open, what="loss noticed")
        with pytest.raises(ConnectionLost):
            transport.publish(exchange, "k", Message(b"during outage")).result(5)

        # While the broker is unreachable the transport keeps trying, with backoff.
        wait_until(
            lambda: any("attempt 3" in r.getMessage() for r in caplog.records),
            15,
            "failed reconnect attempts",
        )
        assert transport.generation == 1
        assert not any("guest" in r.getMessage() for r in caplog.records), "credentials in a log line"
        proxy.hold.clear()
        proxy.start()  # the broker is back on the same address
        wait_until(lambda: transport.is_open and transport.generation == 2, 30, "reconnect after outage")
        wait_until(lambda: transport.queue_counts(queue)[1] == 1, 15, "consumer re-issued")
        transport.publish(exchange, "k", Message(b"after")).result(10)
        # The in-flight message did reach the queue: at-least-once, its publisher saw ConnectionLost.
        wait_until(lambda: sorted(bodies(handled)) == [b"after", b"in-flight"], what="both delivered")

        proxy.stop()  # a second outage: close() must not wait for a broker that is gone
        wait_until(lambda: not transport.is_open, what="second loss noticed")
        began = time.monotonic()
        transport.close(timeout=3)
        assert time.monotonic() - began < 6
    finally:
        transport.close()
        proxy.stop()


def test_queue_deleted_under_consumer_is_redeclared_and_reconsumed(
    amqp_url: str, amqp_transport: AmqpTransport, names: Names
) -> None:
    exchange, queue, _ = declare_work_queue(amqp_transport, names)
    handled: list[Delivery] = []
    amqp_transport.consume(queue, recorder(handled))
    wait_until(lambda: amqp_transport.queue_counts(queue)[1] == 1, what="consumer attached")

    # Someone else deletes the queue: the broker sends basic.cancel to our consumer.
    outsider = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        outsider.channel().queue_delete(queue)
    finally:
        outsider.close()

    wait_until(lambda: _consumers_or_zero(amqp_transport, queue) == 1, 15, "queue re-declared and consumed")
    publish_all(amqp_transport, exchange, [Message(b"after-delete")])
    wait_until(lambda: bodies(handled) == [b"after-delete"], what="delivery on the re-declared queue")


def _consumers_or_zero(t: AmqpTransport, queue: str) -> int:
    try:
        return t.queue_counts(queue)[1]
    except KeyError:
        return 0


def test_close_lets_a_running_handler_finish_and_settle(
    amqp_url: str, amqp_transport: AmqpTransport, names: Names, test_namespace: str
) -> None:
    exchange, queue, _ = declare_work_queue(amqp_transport, names)
    out = names.queue("out")
    amqp_transport.declare_queue(QueueSpec(out))
    started = threading.Event()
    finished = threading.Event()

    def handler(d: Delivery) -> None:
        started.set()
        time.sleep(1.0)  # still working when close() starts
        # The reliable hop: publish the output, ack the input when its confirm arrives.
        fut: Future[None] = amqp_transport.publish("", out, Message(b"output"))
        fut.add_done_callback(lambda f: d.ack() if f.exception() is None else d.reject(requeue=True))
        finished.set()

    amqp_transport.consume(queue, handler, prefetch=4)
    publish_all(amqp_transport, exchange, [Message(b"input")])
    assert started.wait(10)
    began = time.monotonic()
    amqp_transport.close(timeout=10)
    assert finished.is_set() and time.monotonic() - began >= 0.5
    assert not amqp_transport.is_open
    amqp_transport.close()  # idempotent

    checker = AmqpTransport(amqp_url, name=f"sustainml-{test_namespace}-check")
    checker.connect()
    try:
        assert checker.queue_counts(queue) == (0, 0), "the input was not acked before the connection closed"
        assert checker.queue_counts(out) == (1, 0)
    finally:
        checker.close()


def test_close_from_inside_a_handler_does_not_wait_for_itself(
    amqp_url: str, amqp_transport: AmqpTransport, names: Names, test_namespace: str
) -> None:
    exchange, queue, _ = declare_work_queue(amqp_transport, names)
    closed_after: list[float] = []

    def handler(d: Delivery) -> None:
        began = time.monotonic()
        amqp_transport.close(timeout=20)  # e.g. a "terminate" control message
        closed_after.append(time.monotonic() - began)
        d.ack()  # too late: a no-op, the broker redelivers the message

    amqp_transport.consume(queue, handler)
    publish_all(amqp_transport, exchange, [Message(b"stop")])
    wait_until(lambda: len(closed_after) == 1, what="close() returned inside the handler")
    assert closed_after[0] < 10
    checker = AmqpTransport(amqp_url, name=f"sustainml-{test_namespace}-check")
    checker.connect()
    try:
        assert checker.queue_counts(queue) == (1, 0)
    finally:
        checker.close()


def test_deliveries_from_a_lost_connection_are_not_settled(
    amqp_url: str, amqp_transport: AmqpTransport, names: Names
) -> None:
    local_rabbitmqctl_or_skip(amqp_url)
    exchange, queue, _ = declare_work_queue(amqp_transport, names)
    first: list[AmqpDelivery] = []
    seen: list[bool] = []

    def handler(d: Delivery) -> None:
        assert isinstance(d, AmqpDelivery)
        seen.append(d.redelivered)
        if not first:
            first.append(d)  # hold the first delivery unsettled across the reconnect
        else:
            d.ack()

    amqp_transport.consume(queue, handler)
    publish_all(amqp_transport, exchange, [Message(b"held")])
    wait_until(lambda: len(first) == 1, what="first delivery")
    rabbitmqctl("close_connection", connection_rows(amqp_transport.name)[0][0], "integration test")
    wait_until(lambda: amqp_transport.generation == 2 and amqp_transport.is_open, 30, "reconnect")
    # The broker redelivers the unacked message on the new connection.
    wait_until(lambda: seen == [False, True], what="redelivery")
    assert first[0].stale
    first[0].ack()  # a no-op: its channel is gone
    wait_until(lambda: amqp_transport.queue_counts(queue) == (0, 1), what="queue drained")


def test_call_later_runs_off_the_io_thread(amqp_transport: AmqpTransport) -> None:
    ran: list[tuple[float, str]] = []
    fired = threading.Event()
    began = time.monotonic()

    def fn() -> None:
        ran.append((time.monotonic() - began, threading.current_thread().name))
        fired.set()

    amqp_transport.call_later(0.3, fn)
    assert fired.wait(5)
    delay, thread = ran[0]
    assert delay >= 0.29
    assert "amqp-io" not in thread


def test_sync_calls_from_the_io_thread_raise_instead_of_deadlocking(
    amqp_transport: AmqpTransport, names: Names
) -> None:
    exchange, queue, _ = declare_work_queue(amqp_transport, names)
    errors: list[BaseException] = []
    fut = amqp_transport.publish(exchange, "k", Message(b"x"))

    def on_done(_f: Future[None]) -> None:  # runs on the I/O thread
        try:
            amqp_transport.queue_counts(queue)
        except RuntimeError as exc:
            errors.append(exc)

    fut.add_done_callback(on_done)
    fut.result(10)
    wait_until(lambda: len(errors) == 1, what="RuntimeError from the done-callback")


def test_unknown_queue_counts_raise_key_error(amqp_transport: AmqpTransport, names: Names) -> None:
    with pytest.raises(KeyError):
        amqp_transport.queue_counts(names.queue("never-declared"))
    with pytest.raises(KeyError):
        amqp_transport.purge_queue(names.queue("never-declared-either"))
    # The failed passive declare used a throwaway channel: the transport is fine.
    queue = names.queue("exists")
    amqp_transport.declare_queue(QueueSpec(queue))
    assert amqp_transport.queue_counts(queue) == (0, 0)


def test_inequivalent_redeclare_is_refused_and_not_remembered(
    amqp_transport: AmqpTransport, names: Names
) -> None:
    queue = names.queue("args")
    amqp_transport.declare_queue(QueueSpec(queue, message_ttl_ms=1000))
    with pytest.raises(ChannelError, match="inequivalent"):
        amqp_transport.declare_queue(QueueSpec(queue, message_ttl_ms=2000))
    amqp_transport.declare_queue(QueueSpec(queue, message_ttl_ms=1000))  # still fine


def test_broker_unavailable_names_the_url_without_password() -> None:
    transport = AmqpTransport("amqp://alice:s3cret-pw@127.0.0.1:1/", connect_timeout=1.5)
    with pytest.raises(BrokerUnavailable) as info:
        transport.connect()
    text = str(info.value)
    assert "amqp://127.0.0.1:1/" in text and "rabbitmq-server -detached" in text
    assert "s3cret-pw" not in text and "alice" not in text
    assert not transport.is_open


def test_wrong_password_fails_fast_without_leaking_it(amqp_url: str) -> None:
    parts = urlsplit(amqp_url)
    netloc = f"guest:wr0ng-pass@{parts.hostname}:{parts.port or 5672}"
    bad = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    transport = AmqpTransport(bad, connect_timeout=10)
    began = time.monotonic()
    with pytest.raises(BrokerUnavailable) as info:
        transport.connect()
    assert time.monotonic() - began < 8, "an authentication failure should not be retried"
    assert "wr0ng-pass" not in str(info.value)


def test_close_before_connect_and_publish_after_close(amqp_url: str) -> None:
    transport = AmqpTransport(amqp_url)
    transport.close()
    transport.close()
    assert not transport.is_open
    with pytest.raises(TransportError, match=r"not connected|closed"):
        transport.publish("", "q", Message(b"x")).result(1)
    with pytest.raises(TransportError, match="closed"):
        transport.connect()
