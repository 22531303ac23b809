"""The operator's side of dead letters: inspect, replay and purge the dead-letter queues
(``sustainml dlq list|show|replay|purge``; the command group is ``sustainml.cli.dlq``).

Two modules deal with dead letters, on two layers. ``sustainml.deadletter`` (messaging layer)
*produces* them: a worker or the orchestrator moves a message it cannot process, or has retried
too often, into ``<queue>.dlq``. This module *consumes* them, for an operator: it is part of the
CLI, the only user, and nothing below the CLI imports it.

Every work queue of a namespace (the six stage queues and the orchestrator's results queue) has a
``<queue>.dlq`` (``sustainml.topology``). A message lands there with the reason in
``x-sustainml-dead-reason`` and where it came from in ``x-sustainml-dead-queue`` /
``-exchange`` / ``-routing-key`` (``sustainml.deadletter``); a message the broker dead-lettered
itself (e.g. quorum delivery limit) carries RabbitMQ's ``x-death`` instead.

Reading never loses a message: ``list`` and ``show`` take messages with ``basic.get`` without
acknowledging them and hand every one back (``basic.nack`` with requeue) before they return, so
the queue ends as it started (RabbitMQ puts requeued messages back at their original position).
``replay`` republishes a message on a confirm-mode channel with ``mandatory`` set and acknowledges
the dead letter only after the broker confirmed the copy; a message that cannot be republished
stays in the DLQ. By default the copy goes straight back into the queue it was dead-lettered from
(through the default exchange): the record exchanges fan out to several queues (a stage's input
exchange also feeds the orchestrator's results queue), so republishing to the original exchange
would deliver duplicates elsewhere. ``via_exchange=True`` republishes to the original exchange and
routing key instead; ``to_queue`` sends the copy to any other queue.

The module talks to the broker with a short-lived ``pika.BlockingConnection``: an operator command
needs synchronous ``basic.get``, which the asynchronous transport contract does not offer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from sustainml.config import Settings
from sustainml.messages import MessageError, TaskEnvelope, decode, decode_task
from sustainml.messages import headers as H
from sustainml.redact import redact_for
from sustainml.rpc import ForeignQueue, check_own_queue
from sustainml.topology import PIPELINE, Topology, resolve_stage
from sustainml.transport import blocking_parameters
from sustainml.transport.base import BrokerUnavailable, TransportError

# Header set by the retry logic of the runtime (shown when present).
H_ATTEMPTS = "x-sustainml-attempts"
H_LAST_ERROR = "x-sustainml-last-error"
# How many times an operator replayed this message (so a loop is visible).
H_REPLAYS = "x-sustainml-replays"
# Headers that describe a dead-lettering; removed from the replayed copy.
_DEATH_HEADERS = (
    H.H_DEAD_REASON,
    H.H_DEAD_QUEUE,
    H.H_DEAD_EXCHANGE,
    H.H_DEAD_ROUTING_KEY,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)
log = logging.getLogger(__name__)
REPLAY_CONFIRM_TIMEOUT = 30.0
# How long browsing waits for the messages it handed back to be counted in their queue again.
REQUEUE_WAIT_S = 2.0


class DlqError(TransportError):
    """An operator request on a dead-letter queue failed; the message says why."""


@dataclass
class DeadLetter:
    """One dead-lettered message, as ``show`` reports it."""

    position: int  # 1-based position in the DLQ when it was read
    ref: str  # message_id, or "sha256:<12 hex>" of the body when the sender set none
    message_id: str | None
    reason: str
    origin_queue: str
    origin_exchange: str
    origin_routing_key: str
    attempts: int | None
    last_error: str | None
    replays: int
    redelivered: bool
    type: str | None
    app_id: str | None
    timestamp: int | None
    size: int
    body_summary: str
    headers: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class DlqSummary:
    """One dead-letter queue: its size and, for the messages looked at, why they are there."""

    queue: str
    origin_queue: str
    exists: bool
    messages: int
    examined: int
    reasons: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "origin_queue": self.origin_queue,
            "exists": self.exists,
            "messages": self.messages,
            "examined": self.examined,
            "reasons": dict(self.reasons.most_common()),
        }


@dataclass
class ReplayResult:
    replayed: list[str] = field(default_factory=list)  # refs
    failed: dict[str, str] = field(default_factory=dict)  # ref -> why it stayed in the DLQ
    not_found: list[str] = field(default_factory=list)  # refs asked for but not in the DLQ


# ------------------------------------------------------------------------------------ naming
def dead_letter_queues(topology: Topology) -> list[tuple[str, str]]:
    """(dlq, origin queue) for every work queue of the namespace, in pipeline order."""
    work = [topology.stage_queue(s) for s in PIPELINE] + [topology.orchestrator_results_queue]
    work.append(topology.unattributed_route)  # refused senders (forged control / status)
    return [(topology.dead_letter_queue(q), q) for q in work]


def resolve_dlq(topology: Topology, name: str) -> str:
    """A DLQ name from a stage name (``ml_model``, ``ML_MODEL``), ``results`` / ``orchestrator``,
    a work queue name or the DLQ's own name. ``DlqError`` lists the valid names."""
    known = dead_letter_queues(topology)
    key = name.strip()
    for dlq, origin in known:
        if key in (dlq, origin):
            return dlq
    if key.lower() == "unattributed":
        return topology.dead_letter_queue(topology.unattributed_route)
    if key.lower() in ("results", "orchestrator", "orchestrator.results"):
        return topology.dead_letter_queue(topology.orchestrator_results_queue)
    try:
        return topology.dead_letter_queue(topology.stage_queue(resolve_stage(key)))
    except KeyError:
        pass
    stages = ", ".join(s.kind for s in PIPELINE)
    raise DlqError(f"unknown dead-letter queue {name!r}: use a stage ({stages}), 'results', or a DLQ name")


# ------------------------------------------------------------------------------------ helpers
def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _plain(value: Any) -> Any:
    """Header values as JSON-friendly data (pika gives bytes for some AMQP field types)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(_text(value))
    except ValueError:
        return None


@contextmanager
def _quiet_pika_channel() -> Iterator[None]:
    logger = logging.getLogger("pika.channel")
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


def _tag(method: Basic.GetOk) -> int:
    assert method.delivery_tag is not None
    return int(method.delivery_tag)


def message_ref(props: BasicProperties, body: bytes) -> str:
    """A stable handle on a message: its message_id, or a hash of its body."""
    if props.message_id:
        return str(props.message_id)
    return "sha256:" + hashlib.sha256(body).hexdigest()[:12]


def body_summary(body: bytes) -> str:
    """One line saying what the body is, or why it cannot be decoded."""
    try:
        env = decode_task(body)
    except MessageError as task_exc:
        try:
            rec = decode(body)
        except MessageError:
            preview = body[:24].hex()
            more = "..." if len(body) > 24 else ""
            return f"undecodable ({task_exc}); {len(body)} bytes: {preview}{more}"
        return f"{type(rec).__name__} (standalone message)"
    return _envelope_summary(env)


def _envelope_summary(env: TaskEnvelope) -> str:
    kinds = ", ".join(env.context) or "none"
    return f"{type(env.record).__name__} of task {env.task_id} (kind {env.kind}; context: {kinds})"


def _origin(headers: dict[str, Any]) -> tuple[str, str, str]:
    """(queue, exchange, routing key) the message came from: our headers, else RabbitMQ's x-death."""
    queue = _text(headers.get(H.H_DEAD_QUEUE))
    exchange = headers.get(H.H_DEAD_EXCHANGE)
    rkey = headers.get(H.H_DEAD_ROUTING_KEY)
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[-1], dict):
        first = deaths[-1]  # x-death is newest first: the last entry is the original hop
        if not queue:
            queue = _text(first.get("queue"))
        if exchange is None:
            exchange = first.get("exchange")
        if rkey is None:
            keys = first.get("routing-keys")
            rkey = keys[0] if isinstance(keys, list) and keys else None
    return queue, _text(exchange), _text(rkey)


def _reason(headers: dict[str, Any]) -> str:
    reason = _text(headers.get(H.H_DEAD_REASON))
    if reason:
        return reason
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return f"broker: {_text(deaths[0].get('reason'))} (x-death)"
    return "unknown (no x-sustainml-dead-reason header)"


def reason_class(reason: str) -> str:
    """A reason without its details, for grouping in ``list`` (``invalid message: body``)."""
    head, sep, rest = reason.partition(": ")
    if not sep:
        return reason[:80]
    field_name = rest.split(":", 1)[0]
    return f"{head}: {field_name}"[:80]


def dead_letter_of(position: int, method: Basic.GetOk, props: BasicProperties, body: bytes) -> DeadLetter:
    headers = dict(props.headers or {})
    queue, exchange, rkey = _origin(headers)
    attempts = _int_or_none(headers.get(H_ATTEMPTS))
    if attempts is None and "x-delivery-count" in headers:
        attempts = _int_or_none(headers["x-delivery-count"])
    last_error = headers.get(H_LAST_ERROR)
    return DeadLetter(
        position=position,
        ref=message_ref(props, body),
        message_id=props.message_id,
        reason=_reason(headers),
        origin_queue=queue,
        origin_exchange=exchange,
        origin_routing_key=rkey,
        attempts=attempts,
        last_error=_text(last_error) if last_error is not None else None,
        replays=_int_or_none(headers.get(H_REPLAYS)) or 0,
        redelivered=bool(method.redelivered),
        type=props.type,
        app_id=props.app_id,
        timestamp=props.timestamp,
        size=len(body),
        body_summary=body_summary(body),
        headers={str(k): _plain(v) for k, v in headers.items()},
    )


# ------------------------------------------------------------------------------------ broker
class DlqClient:
    """Synchronous access to the dead-letter queues of one namespace."""

    def __init__(self, settings: Settings, *, connect_timeout: float = 10.0) -> None:
        self.settings = settings
        self.topology = Topology.of(settings)
        self._timeout = connect_timeout
        self._conn: pika.BlockingConnection | None = None
        self._ch: BlockingChannel | None = None
        self._user_id: str | None = None

    # -- connection ------------------------------------------------------------------------
    def __enter__(self) -> DlqClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        params = blocking_parameters(self.settings, "sustainml-dlq", connect_timeout=self._timeout)
        credentials = params.credentials
        # Stamped on replayed copies (the broker checks it against the login): under per-role
        # accounts a replay is thereby attributed to the operator.
        self._user_id = credentials.username if isinstance(credentials, pika.PlainCredentials) else None
        try:
            self._conn = pika.BlockingConnection(params)
        except (pika.exceptions.AMQPError, OSError) as exc:  # OSError: refused, TLS verification
            detail = redact_for(self.settings, f"{type(exc).__name__}: {exc}")
            raise BrokerUnavailable(
                f"cannot reach RabbitMQ at {params_url(self.settings)} ({detail}): is it running? "
                "pass --broker/SUSTAINML_BROKER_URL"
            ) from None

    def close(self) -> None:
        conn, self._conn, self._ch = self._conn, None, None
        if conn is not None and conn.is_open:
            # Closing a broken connection: nothing is left to release on our side.
            with contextlib.suppress(pika.exceptions.AMQPError):
                conn.close()

    def _channel(self) -> BlockingChannel:
        if self._conn is None:
            self.connect()
        assert self._conn is not None
        if self._ch is None or not self._ch.is_open:
            self._ch = self._conn.channel()
        return self._ch

    def _count(self, queue: str) -> int | None:
        """Messages ready in ``queue``, or None when it does not exist."""
        try:
            with _quiet_pika_channel():  # an absent queue is an answer here, not a warning
                ok = self._channel().queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            self._ch = None
            if exc.reply_code == 404:
                return None
            raise DlqError(f"{queue}: broker refused with {exc.reply_code} {exc.reply_text}") from None
        return int(ok.method.message_count)

    @contextmanager
    def _browse(self, queue: str, limit: int) -> Iterator[list[tuple[Basic.GetOk, BasicProperties, bytes]]]:
        """Up to ``limit`` messages of ``queue``, unacknowledged; all handed back on exit."""
        ch = self._channel()
        got: list[tuple[Basic.GetOk, BasicProperties, bytes]] = []
        try:
            while len(got) < limit:
                method, props, body = ch.basic_get(queue, auto_ack=False)
                if method is None:
                    break
                assert isinstance(method, Basic.GetOk) and props is not None
                got.append((method, props, bytes(body or b"")))
            yield got
        finally:
            if got and ch.is_open:
                # One nack for all: requeued at their original positions, order kept.
                ch.basic_nack(_tag(got[-1][0]), multiple=True, requeue=True)
                self._wait_counted(queue, len(got), got[-1][0].message_count)

    def _wait_counted(self, queue: str, returned: int, left: int | None) -> None:
        """Wait (briefly) until ``returned`` handed-back messages are counted in ``queue`` again.

        The broker requeues them asynchronously and answers a message count with priority, so a
        count taken right after the nack (the next ``dlq list``, or another client's) could miss
        some. ``left`` is what stayed in the queue behind the last one taken."""
        expected = returned + (left or 0)
        deadline = time.monotonic() + REQUEUE_WAIT_S
        while time.monotonic() < deadline:
            count = self._count(queue)
            if count is None or count >= expected:
                return
            time.sleep(0.02)
        log.debug(
            "%s: %d browsed messages not all counted again after %.1f s", queue, returned, REQUEUE_WAIT_S
        )

    # -- operations ------------------------------------------------------------------------
    def list_queues(self, *, examine: int = 200) -> list[DlqSummary]:
        """Every DLQ of the namespace with its message count and a summary of the reasons of
        (up to ``examine`` of) its messages."""
        out: list[DlqSummary] = []
        for dlq, origin in dead_letter_queues(self.topology):
            count = self._count(dlq)
            summary = DlqSummary(dlq, origin, count is not None, count or 0, 0)
            if count:
                with self._browse(dlq, min(count, examine)) as msgs:
                    for _m, props, _b in msgs:
                        summary.reasons[reason_class(_reason(dict(props.headers or {})))] += 1
                    summary.examined = len(msgs)
            out.append(summary)
        return out

    def show(self, queue: str, *, limit: int = 10) -> tuple[int, list[DeadLetter]]:
        """(messages in the queue, the first ``limit`` of them decoded); nothing is removed."""
        dlq = resolve_dlq(self.topology, queue)
        count = self._count(dlq)
        if count is None:
            raise DlqError(f"{dlq} does not exist (no worker of namespace {self.topology.ns!r} ever ran)")
        with self._browse(dlq, max(0, min(limit, count))) as msgs:
            letters = [dead_letter_of(i + 1, m, p, b) for i, (m, p, b) in enumerate(msgs)]
        return count, letters

    def replay(
        self,
        queue: str,
        refs: Sequence[str] = (),
        *,
        replay_all: bool = False,
        to_queue: str | None = None,
        via_exchange: bool = False,
    ) -> ReplayResult:
        """Republish the selected dead letters (``refs``, or every one with ``replay_all``) into
        the queue they came from (``via_exchange``: to their original exchange and routing key;
        ``to_queue``: into that queue); each is removed from the DLQ only after the broker
        confirmed its copy."""
        if not refs and not replay_all:
            raise DlqError("name the messages to replay (their ref from `dlq show`) or pass --all")
        dlq = resolve_dlq(self.topology, queue)
        count = self._count(dlq)
        if count is None:
            raise DlqError(f"{dlq} does not exist")
        if to_queue is not None:
            try:
                check_own_queue(self.topology, to_queue, "--to-queue")
            except ForeignQueue as exc:
                raise DlqError(str(exc)) from None
            if self._count(to_queue) is None:
                raise DlqError(f"target queue {to_queue!r} does not exist")
        wanted = set(refs)
        result = ReplayResult()
        ch = self._channel()
        ch.confirm_delivery()
        kept: list[int] = []
        try:
            # At most the messages present at the start: a replayed message that is dead-lettered
            # again at once must not be picked up by this same run.
            for _ in range(count):
                method, props, body = ch.basic_get(dlq, auto_ack=False)
                if method is None:
                    break
                assert isinstance(method, Basic.GetOk) and props is not None
                body = bytes(body or b"")
                ref = message_ref(props, body)
                if not replay_all and ref not in wanted:
                    kept.append(_tag(method))
                    continue
                problem = self._republish(ch, props, body, to_queue, via_exchange)
                if problem is None:
                    ch.basic_ack(_tag(method))
                    result.replayed.append(ref)
                else:
                    kept.append(_tag(method))
                    result.failed[ref] = problem
        finally:
            if ch.is_open:
                for tag in kept:  # back to the DLQ, at their original positions
                    ch.basic_nack(tag, requeue=True)
        result.not_found = sorted(wanted - set(result.replayed) - set(result.failed))
        return result

    def _republish(
        self,
        ch: BlockingChannel,
        props: BasicProperties,
        body: bytes,
        to_queue: str | None,
        via_exchange: bool,
    ) -> str | None:
        """Publish the copy and wait for its confirm; None on success, else why not."""
        headers = dict(props.headers or {})
        origin_queue, exchange, rkey = _origin(headers)
        if to_queue is not None:
            exchange, rkey = "", to_queue
        elif via_exchange:
            if not rkey and not exchange:
                return "no origin exchange/routing key recorded; replay it with --to-queue"
        elif origin_queue:
            exchange, rkey = "", origin_queue
        else:
            return "no origin queue recorded; replay it with --to-queue or --via-exchange"
        problem = self._outside_namespace(exchange, rkey)
        if problem is not None:
            return problem
        for key in _DEATH_HEADERS:
            headers.pop(key, None)
        headers.pop(H_ATTEMPTS, None)  # a replay starts with fresh attempts
        headers[H_REPLAYS] = (_int_or_none(props.headers.get(H_REPLAYS) if props.headers else None) or 0) + 1
        copy = BasicProperties(
            content_type=props.content_type,
            content_encoding=props.content_encoding,
            headers=headers,
            delivery_mode=2,
            priority=props.priority,
            correlation_id=props.correlation_id,
            reply_to=props.reply_to,
            message_id=props.message_id,
            timestamp=props.timestamp,
            type=props.type,
            app_id=props.app_id,
            user_id=self._user_id,
        )
        try:
            ch.basic_publish(exchange, rkey, body, copy, mandatory=True)
        except pika.exceptions.UnroutableError:
            return f"unroutable: no queue bound to exchange {exchange!r} with routing key {rkey!r}"
        except pika.exceptions.NackError:
            return "the broker refused the copy (basic.nack)"
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise DlqError(f"publish to {exchange!r} refused: {exc.reply_code} {exc.reply_text}") from None
        return None

    def _outside_namespace(self, exchange: str, rkey: str) -> str | None:
        """Why a replay target lies outside this namespace (a dead letter's recorded origin is
        whatever its sender claimed), or None when it is inside: a queue ``<ns>.*`` through the
        default exchange, or an exchange ``<ns>.*``."""
        try:
            if exchange:
                check_own_queue(self.topology, exchange, "target exchange")
            else:
                check_own_queue(self.topology, rkey, "target queue")
        except ForeignQueue as exc:
            return f"refused: {exc}"
        return None

    def purge(self, queue: str) -> int:
        """Delete every message of the DLQ; returns how many were removed."""
        dlq = resolve_dlq(self.topology, queue)
        if self._count(dlq) is None:
            raise DlqError(f"{dlq} does not exist")
        ok = self._channel().queue_purge(dlq)
        return int(ok.method.message_count or 0)


def params_url(settings: Settings) -> str:
    """The broker URL without credentials (for messages)."""
    from sustainml.transport.amqp import sanitize_url

    return sanitize_url(settings.broker_url)


__all__ = [
    "DeadLetter",
    "DlqClient",
    "DlqError",
    "DlqSummary",
    "ReplayResult",
    "body_summary",
    "dead_letter_queues",
    "reason_class",
    "resolve_dlq",
]
