"""``AmqpTransport``: the Transport contract over a real RabbitMQ broker, with pika.

Threads (one transport):

- **I/O thread** (``<name>-amqp-io``): runs one pika ``IOLoop`` for the transport's whole life and
  owns every pika object (``SelectConnection``, channels). Nothing else touches them: other threads
  hand work over with ``IOLoop.add_callback_threadsafe``. The loop outlives individual connections,
  so timers (``call_later``) and settlements keep a home while a reconnect is in progress.
- **Handler pools**: one ``ThreadPoolExecutor`` of ``concurrency`` threads per consumer. Handlers
  never run on the I/O thread, so AMQP heartbeats keep flowing whatever a handler does.
- **Maintenance thread**: reconnects (backoff + jitter), re-declares the topology and re-issues
  consumers, and recovers a consumer cancelled by the broker. It uses the same synchronous
  operations as callers do, which keeps the I/O thread purely callback-driven.
- **Timer thread**: runs ``call_later`` callbacks, so a slow callback cannot stall I/O.

Publishing uses asynchronous publisher confirms on one channel: ``publish`` only schedules the
``basic.publish`` and returns a Future resolved by ``basic.ack`` / ``basic.nack``. A mandatory message
that is returned (``basic.return`` always precedes its ack on the channel) fails with ``Unroutable``;
the return is matched to its publish through a private header (``x-sustainml-pubseq``) that the
consumer side strips again.

Future callbacks (``add_done_callback``) of publish futures run on the I/O thread: keep them short
and never call a synchronous transport method from them (that raises ``RuntimeError`` rather than
deadlocking). Scheduling an ack or another publish from them is fine.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import random
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions
from pika.adapters.select_connection import IOLoop, SelectConnection
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from sustainml.transport import TlsFiles, apply_tls, split_broker_url
from sustainml.transport.base import (
    Binding,
    BrokerUnavailable,
    ConnectionLost,
    Delivery,
    ExchangeSpec,
    Handler,
    Message,
    PublishNacked,
    QueueSpec,
    Transport,
    TransportError,
    Unroutable,
)

log = logging.getLogger(__name__)

# pika logs each failed connection attempt as several ERROR lines, every half second while the
# broker is down; this transport retries and reports the outcome (password scrubbed) itself.
# A level set by the application (e.g. DEBUG to see pika's detail) is left alone.
for _pika_logger in (
    "pika.adapters.utils.connection_workflow",
    "pika.adapters.utils.io_services_utils",
    "pika.adapters.utils.selector_ioloop_adapter",
    "pika.adapters.base_connection",
    "pika.adapters.blocking_connection",
):
    if logging.getLogger(_pika_logger).level == logging.NOTSET:
        logging.getLogger(_pika_logger).setLevel(logging.CRITICAL)


class _HandshakeNoise(logging.Filter):
    """Drops pika.connection's "Connection closed while authenticating/tuning..." lines: the
    failure is raised, and reported once with its cause, by ``connect_failure``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.ERROR and str(record.msg).startswith("Connection closed while"))


logging.getLogger("pika.connection").addFilter(_HandshakeNoise())

# The delivery a handler thread is working on (close() called from a handler must not wait for it).
_current = threading.local()

T = TypeVar("T")

# Private header correlating a basic.return with the publish it belongs to (stripped on consume).
PUBSEQ_HEADER = "x-sustainml-pubseq"
# Under a broker memory/disk alarm the broker blocks publishing connections (connection.blocked)
# until the alarm clears. Publishes wait meanwhile (their futures stay pending, nothing is dropped)
# and resume on connection.unblocked. Only an alarm lasting longer than this turns into a
# connection loss and a reconnect (pending publishes then fail with ConnectionLost, reported to
# their callers), so a broker that never recovers cannot hang publishers forever.
BLOCKED_CONNECTION_TIMEOUT = 300.0
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 10.0
# How long a cancelled consumer's channel stays open for late settlements of its deliveries.
RETIRE_TIMEOUT = 60.0

_AUTH_ERRORS = (
    pika.exceptions.ProbableAuthenticationError,
    pika.exceptions.ProbableAccessDeniedError,
    pika.exceptions.AuthenticationError,
)


class ChannelError(TransportError):
    """The broker refused an operation and closed the channel (e.g. 406 inequivalent argument,
    404 no such exchange)."""

    def __init__(self, what: str, reply_code: int, reply_text: str) -> None:
        super().__init__(f"{what}: broker refused with {reply_code} {reply_text}")
        self.reply_code = reply_code
        self.reply_text = reply_text


def sanitize_url(url: str) -> str:
    """``url`` without credentials or query string: safe for logs and error messages (every host
    of a multi-host URL)."""
    try:
        urls = split_broker_url(url)
    except ValueError:
        return "<unparseable broker URL>"
    if len(urls) > 1:
        safe = [_sanitize_one(u) for u in urls]
        scheme, path = safe[0].split("://", 1)[0], "/" + safe[0].split("://", 1)[1].partition("/")[2]
        return f"{scheme}://" + ",".join(s.split("://", 1)[1].partition("/")[0] for s in safe) + path
    return _sanitize_one(url)


def _sanitize_one(url: str) -> str:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme or "amqp"
        host = parts.hostname or "localhost"
        port = parts.port or (5671 if scheme == "amqps" else 5672)
    except ValueError:
        return "<unparseable broker URL>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{parts.path or '/'}"


def _scrub(text: str, secret: str | None) -> str:
    """Remove a password from an error text (pika errors may echo parameters)."""
    if secret:
        text = text.replace(secret, "***")
    return text


def _close_reason(reason: BaseException | None) -> str:
    if isinstance(reason, pika.exceptions.ChannelClosed | pika.exceptions.ConnectionClosed):
        return f"{reason.reply_code} {reason.reply_text}"
    return repr(reason)


def _describe(exc: BaseException) -> str:
    """The innermost cause of a pika connection failure, e.g. ``ConnectionRefusedError: ...``
    (pika wraps it two or three levels deep, and the outer ``str`` is often empty)."""
    exc = _chain(exc)[-1]
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else repr(exc)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions pika wrapped inside it, outermost first."""
    found = [exc]
    while len(found) < 10:
        inner: object = None
        if getattr(exc, "exceptions", None):
            inner = exc.exceptions[-1]  # type: ignore[attr-defined]
        elif isinstance(getattr(exc, "exception", None), BaseException):
            inner = exc.exception  # type: ignore[attr-defined]
        elif exc.args and isinstance(exc.args[0], BaseException):
            inner = exc.args[0]
        if not isinstance(inner, BaseException) or inner in found:
            break
        found.append(inner)
        exc = inner
    return found


def connect_failure(exc: BaseException | None, url: str, timeout: float | None = None) -> BrokerUnavailable:
    """One line that names why a connection to the broker failed and what fixes it: refused (nothing
    listens), wrong credentials, unknown virtual host or no access to it, TLS (certificate refused,
    TLS spoken to a plain port or the reverse), unknown host name, or no answer in time. ``url``
    is the broker URL; its password never appears in the message."""
    safe = sanitize_url(url)
    parts = urlsplit(url) if "://" in url else None
    user = unquote(parts.username or "guest") if parts is not None else "guest"
    password = unquote(parts.password or "") if parts is not None else None
    vhost = unquote((parts.path or "/")[1:] or "/") if parts is not None else "/"
    tls = url.startswith("amqps:")
    start = "cannot connect to RabbitMQ at " + safe
    fix_url = "fix --broker/SUSTAINML_BROKER_URL"
    if exc is None:
        wait = f" within {timeout:g} s" if timeout else ""
        return BrokerUnavailable(f"{start}: no answer{wait} (a firewall, or not an AMQP port?): {fix_url}")
    chain = _chain(exc)
    text = " ".join(f"{type(e).__name__} {e}" for e in chain)
    detail = _scrub(_describe(exc), password)
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return BrokerUnavailable(
            f"{start}: connection refused, nothing listens on that port. Is RabbitMQ running? Start it "
            f"with `rabbitmq-server -detached` (or `tools/setup`), or {fix_url}"
        )
    if any(isinstance(e, pika.exceptions.ProbableAccessDeniedError) for e in chain) or "vhost" in text:
        return BrokerUnavailable(
            f"{start}: virtual host {vhost!r} refused: it does not exist or user {user!r} may not use "
            f"it (the vhost is the URL's path; %2F is the default '/'): {fix_url}"
        )
    if any(isinstance(e, _AUTH_ERRORS) for e in chain) or "ACCESS_REFUSED" in text:
        return BrokerUnavailable(
            f"{start}: wrong credentials, the broker refused the login of user {user!r}: {fix_url} "
            "(amqp://USER:PASSWORD@HOST:PORT/VHOST)"
        )
    if _tls_verification_failed(exc):
        return BrokerUnavailable(
            f"{start}: TLS, the broker's certificate was refused ({detail}): check "
            "SUSTAINML_TLS_CA_FILE and that the URL's host name is one the certificate names"
        )
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return BrokerUnavailable(
            f"{start}: TLS handshake failed ({detail}): amqps:// needs the broker's TLS listener "
            "(usually port 5671); for a plain listener (5672) use amqp://"
        )
    if any(isinstance(e, socket.gaierror) for e in chain):
        return BrokerUnavailable(f"{start}: the host name does not resolve ({detail}): {fix_url}")
    if not tls and any(
        isinstance(e, pika.exceptions.StreamLostError | pika.exceptions.IncompatibleProtocolError)
        for e in chain
    ):
        return BrokerUnavailable(
            f"{start}: the connection closed during the AMQP handshake ({detail}); if that port is a TLS "
            "listener, use amqps://"
        )
    return BrokerUnavailable(f"{start} ({detail}): is it running? {fix_url}")


def _unreachable(exc: BaseException) -> bool:
    """Nothing listens at the address, the host name does not resolve, or the TLS handshake
    failed (TLS spoken to a plain port or the reverse): nothing a command gains by retrying."""
    return any(isinstance(e, ConnectionRefusedError | socket.gaierror | ssl.SSLError) for e in _chain(exc))


def _tls_verification_failed(exc: BaseException) -> bool:
    """True when the client refused the broker's certificate (unknown CA, wrong host name):
    a configuration error that no retry can fix."""
    text = _describe(exc)
    return "SSLCertVerificationError" in text or "CERTIFICATE_VERIFY_FAILED" in text


def _map_channel_close(what: str, reason: BaseException | None) -> TransportError:
    """The error a pending operation fails with when its channel closes."""
    if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
        return ChannelError(what, reason.reply_code, reason.reply_text)
    if isinstance(reason, pika.exceptions.ChannelClosedByClient):
        return TransportError(f"{what}: channel closed by the client ({_close_reason(reason)})")
    return ConnectionLost(f"{what}: connection lost ({_close_reason(reason)})")


def _resolve(fut: Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
    """Complete a future once; a second completion (or a cancelled future) is ignored."""
    if fut.done():
        return
    with contextlib.suppress(Exception):  # InvalidStateError if it raced with cancel()
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)


_WRONG_STATE = (pika.exceptions.ChannelWrongStateError, pika.exceptions.ConnectionWrongStateError)


def _shielded(fn: Callable[..., object], fut: Future[Any] | None = None) -> Callable[..., None]:
    """Wrap a callback handed to pika. An exception escaping into pika's dispatch aborts the whole
    connection, so it fails ``fut`` (or is logged) instead. A channel that is already closing
    raises "wrong state": its close callback reports the real reason, so that is only debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except _WRONG_STATE as exc:
            log.debug("AMQP callback %s on a closing channel/connection: %r", _qualname(fn), exc)
        except Exception as exc:
            if fut is not None and not fut.done():
                _resolve(fut, exc=exc)
            else:
                log.exception("error in AMQP callback %s", _qualname(fn))

    return wrapper


def _qualname(fn: Callable[..., object]) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(getattr(fn, "func", None), "__qualname__", fn))


class _ChannelOp:
    """One operation on a throwaway channel (I/O thread)."""

    def __init__(self, channel: Channel, fut: Future[Any]) -> None:
        self.channel = channel
        self.fut = fut

    def then(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        """A pika reply callback running ``fn(frame)``; its errors fail the operation."""
        return _shielded(fn, self.fut)

    def done(self, result: Any = None) -> None:
        _resolve(self.fut, result)
        if self.channel.is_open:
            self.channel.close()


def _queue_arguments(spec: QueueSpec) -> dict[str, Any]:
    args: dict[str, Any] = {"x-queue-type": spec.queue_type}
    if spec.dead_letter_exchange is not None:
        args["x-dead-letter-exchange"] = spec.dead_letter_exchange
    if spec.dead_letter_routing_key is not None:
        args["x-dead-letter-routing-key"] = spec.dead_letter_routing_key
    if spec.expires_ms is not None:
        args["x-expires"] = spec.expires_ms
    if spec.message_ttl_ms is not None:
        args["x-message-ttl"] = spec.message_ttl_ms
    if spec.max_length is not None:
        args["x-max-length"] = spec.max_length
    if spec.dead_letter_at_least_once and spec.queue_type == "quorum":
        args["x-dead-letter-strategy"] = "at-least-once"
        args["x-overflow"] = "reject-publish"
    if spec.delivery_limit is not None:
        if spec.queue_type == "quorum":
            args["x-delivery-limit"] = spec.delivery_limit
        else:
            log.warning(
                "queue %r: delivery_limit=%d ignored, only quorum queues honour x-delivery-limit",
                spec.name,
                spec.delivery_limit,
            )
    return args


def _to_properties(message: Message, user_id: str | None) -> BasicProperties:
    return BasicProperties(
        user_id=user_id,
        content_type=message.content_type,
        headers=dict(message.headers),
        delivery_mode=2 if message.persistent else 1,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        expiration=str(message.expiration_ms) if message.expiration_ms is not None else None,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


def _to_message(props: BasicProperties, body: bytes) -> Message:
    headers = dict(props.headers or {})
    headers.pop(PUBSEQ_HEADER, None)
    expiration: int | None = None
    if props.expiration is not None:
        try:
            expiration = int(props.expiration)
        except ValueError:
            log.warning("ignoring non-numeric expiration %r on a delivery", props.expiration)
    return Message(
        body=body,
        headers=headers,
        message_id=props.message_id,
        correlation_id=props.correlation_id,
        reply_to=props.reply_to,
        type=props.type,
        app_id=props.app_id,
        timestamp=props.timestamp,
        expiration_ms=expiration,
        persistent=props.delivery_mode == 2,
        content_type=props.content_type or "",
        user_id=props.user_id,
    )


@dataclass
class _PendingPublish:
    future: Future[None]
    exchange: str
    routing_key: str
    returned: str | None = None  # reply text of a basic.return, if any


class _Consumer:
    """A consume() registration; survives reconnects (same tag, new channel)."""

    def __init__(
        self, tag: str, queue: str, handler: Handler, prefetch: int, concurrency: int, prefix: str
    ) -> None:
        self.tag = tag
        self.queue = queue
        self.handler = handler
        self.prefetch = prefetch
        self.concurrency = concurrency
        self.executor = ThreadPoolExecutor(concurrency, thread_name_prefix=f"{prefix}-{queue}")
        self.active = True
        self.channel: Channel | None = None  # I/O thread writes; others only read is_open
        self.channel_generation = -1
        self.start_lock = threading.Lock()  # serialises (re)starts of this consumer
        self.cv = threading.Condition()
        self.unsettled = 0  # deliveries received and not yet settled (or skipped)

    def delivery_done(self) -> None:
        with self.cv:
            self.unsettled -= 1
            self.cv.notify_all()

    def wait_settled(self, deadline: float, allow: int = 0) -> bool:
        """Wait until at most ``allow`` deliveries are unsettled (``allow`` = the caller's own)."""
        with self.cv:
            return self.cv.wait_for(lambda: self.unsettled <= allow, max(0.0, deadline - time.monotonic()))


class AmqpDelivery(Delivery):
    """A delivery from a consumer channel; settle it from any thread."""

    def __init__(
        self,
        transport: AmqpTransport,
        consumer: _Consumer,
        channel: Channel,
        generation: int,
        delivery_tag: int,
        message: Message,
        exchange: str,
        routing_key: str,
        redelivered: bool,
    ) -> None:
        self.message = message
        self.exchange = exchange
        self.routing_key = routing_key
        self.redelivered = redelivered
        self.queue = consumer.queue
        self.delivery_tag = delivery_tag
        self._transport = transport
        self._consumer = consumer
        self._channel = channel
        self._generation = generation
        self._lock = threading.Lock()
        self._settled: str | None = None

    @property
    def settled(self) -> bool:
        return self._settled is not None

    @property
    def stale(self) -> bool:
        """True when the channel it came on is gone: settling it can no longer reach the broker."""
        return self._generation != self._transport._generation or not self._channel.is_open

    def ack(self) -> None:
        self._settle("ack", requeue=False)

    def reject(self, requeue: bool = False) -> None:
        self._settle("reject", requeue=requeue)

    def _mark(self, action: str) -> bool:
        with self._lock:
            if self._settled is not None:
                log.warning(
                    "delivery %d of queue %r (message_id=%r) already settled with %s; ignoring %s",
                    self.delivery_tag,
                    self.queue,
                    self.message.message_id,
                    self._settled,
                    action,
                )
                return False
            self._settled = action
        self._consumer.delivery_done()
        return True

    def _settle(self, action: str, *, requeue: bool) -> None:
        if not self._mark(action):
            return
        self._transport._settle(self, action, requeue)


class AmqpTransport(Transport):
    """RabbitMQ transport (pika ``SelectConnection`` on a dedicated I/O thread)."""

    def __init__(
        self,
        url: str,
        *,
        heartbeat: int = 30,
        name: str = "sustainml",
        connect_timeout: float = 10.0,
        op_timeout: float = 30.0,
        max_in_flight: int = 1000,
        tls: TlsFiles | None = None,
        retry_refused: bool = True,
    ) -> None:
        """``retry_refused``: keep retrying a refused or unresolvable address until
        ``connect_timeout`` (a process waiting for a broker that starts); False for commands, which
        report it at once."""
        self._tls = tls  # amqps:// only: CA bundle / client cert (see sustainml.transport.apply_tls)
        self._safe_url = sanitize_url(url)
        self._url = url  # for connect_failure(), which never shows the password
        self._retry_refused = retry_refused
        self._password = unquote(urlsplit(url).password or "") if "://" in url else None
        self._name = name
        self._heartbeat = heartbeat
        self._connect_timeout = connect_timeout
        self._op_timeout = op_timeout
        self._max_in_flight = max(1, max_in_flight)
        # one set of parameters per cluster node named in the URL; connection attempts go round
        # them, starting at a random one so that replicas spread over the nodes
        self._params_list = [self._build_params(u) for u in split_broker_url(url)]
        self._next_host = random.randrange(len(self._params_list))
        # Stamped on every publish: the broker checks it against the login, so receivers can
        # trust it (None with EXTERNAL, certificate-based, authentication).
        credentials = self._params_list[0].credentials
        self._user_id: str | None = (
            credentials.username if isinstance(credentials, pika.PlainCredentials) else None
        )

        self._state_lock = threading.RLock()  # never held while waiting for the I/O thread
        self._connect_lock = threading.Lock()
        self._sync_futs: set[Future[Any]] = set()  # synchronous waits, failed fast by close()
        self._started = False
        self._closing = False
        self._closed = False
        self._publishing_stopped = False
        self._ready = threading.Event()  # connected and topology/consumers restored
        self._close_event = threading.Event()  # wakes backoff sleeps on close()
        self._soon_lock = threading.Lock()
        self._soon: deque[Callable[[], None]] = deque()  # hand-overs to the I/O thread, in order
        self._soon_scheduled = False  # a _drain_soon is queued on the loop
        self._retiring: set[_Consumer] = set()  # cancelled consumers whose handlers may still run
        self._conn_closed_event = threading.Event()
        self._reconnecting = False
        self._lost = False
        self._blocked_since: float | None = None  # monotonic time of connection.blocked, if blocked

        self._ioloop: IOLoop | None = None
        self._io_thread: threading.Thread | None = None
        self._io_ident: int | None = None
        self._maint: ThreadPoolExecutor | None = None
        self._timers: ThreadPoolExecutor | None = None

        # I/O-thread state.
        self._conn: SelectConnection | None = None
        self._generation = 0
        self._pub_channel: Channel | None = None
        self._pub_reopening = False
        self._pub_seq = 0
        self._pending: dict[int, _PendingPublish] = {}
        self._pub_buffer: list[tuple[str, str, BasicProperties, bytes, bool, Future[None]]] = []

        # Publish window (caller threads block while it is full, except the I/O thread).
        self._window_cv = threading.Condition()
        self._in_flight = 0

        # Everything declared, re-applied after a reconnect (insertion order = declaration order).
        self._topo_lock = threading.Lock()
        self._exchanges: dict[str, ExchangeSpec] = {}
        self._queues: dict[str, QueueSpec] = {}
        self._extra_bindings: dict[str, list[Binding]] = {}
        self._deleted_queues: set[str] = set()

        self._consumers: dict[str, _Consumer] = {}
        self._retirers: list[threading.Thread] = []

    # ------------------------------------------------------------------ setup helpers
    def _build_params(self, url: str) -> pika.URLParameters:
        try:
            params = pika.URLParameters(url)
        except Exception as exc:
            raise ValueError(
                f"invalid broker URL {self._safe_url}: {_scrub(str(exc), self._password)}"
            ) from None
        apply_tls(params, url, self._tls)
        params.heartbeat = self._heartbeat
        params.blocked_connection_timeout = BLOCKED_CONNECTION_TIMEOUT
        params.client_properties = {"connection_name": self._name}
        # Our own loop retries with a deadline; pika gets one attempt per call.
        params.connection_attempts = 1
        params.socket_timeout = max(1.0, min(10.0, self._connect_timeout))
        params.stack_timeout = max(2.0, min(15.0, self._connect_timeout))
        return params

    @property
    def user(self) -> str | None:
        """The broker login this transport publishes as (its messages' user-id)."""
        return self._user_id

    @property
    def url(self) -> str:
        """The broker URL without credentials."""
        return self._safe_url

    @property
    def name(self) -> str:
        return self._name

    @property
    def generation(self) -> int:
        """How many connections this transport has opened: grows by one on every reconnect."""
        return self._generation

    @property
    def is_open(self) -> bool:
        return self._ready.is_set() and not self._closing

    def _on_io_thread(self) -> bool:
        return threading.get_ident() == self._io_ident

    def _check_not_io_thread(self, what: str) -> None:
        if self._on_io_thread():
            raise RuntimeError(f"{what} is synchronous and cannot run on the transport's I/O thread")

    # ------------------------------------------------------------------ I/O thread plumbing
    def _io_main(self, loop: IOLoop) -> None:
        self._io_ident = threading.get_ident()
        while True:
            try:
                loop.start()
                return  # stop() was called
            except Exception:
                # A callback escaped our guards; keep the loop alive rather than lose all I/O.
                log.exception("unexpected error on the AMQP I/O thread (%s); continuing", self._safe_url)

    def _call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the I/O thread, after everything handed over before it. Raises
        ``ConnectionLost`` once the transport is closed.

        Hand-overs are queued here and the loop is woken once per batch, not once per call: every
        wake is a lock and a pipe write in pika, and every publish and ack from a handler thread
        comes through here (13 % of the orchestrator's samples when each call woke the loop)."""
        loop = self._ioloop
        if loop is None or self._io_thread is None or not self._io_thread.is_alive():
            raise ConnectionLost("the transport is closed")
        with self._soon_lock:
            self._soon.append(fn)
            if self._soon_scheduled:
                return  # the drain already queued on the loop will run it
            self._soon_scheduled = True
        loop.add_callback_threadsafe(self._drain_soon)

    def _drain_soon(self) -> None:
        """(I/O thread) Run the queued hand-overs in order, including those queued meanwhile."""
        while True:
            with self._soon_lock:
                if not self._soon:
                    self._soon_scheduled = False
                    return
                batch = list(self._soon)
                self._soon.clear()
            for fn in batch:
                try:
                    fn()
                except Exception:
                    log.exception("error in a callback on the AMQP I/O thread (%s)", self._safe_url)

    def _io_call(
        self,
        what: str,
        fn: Callable[[Future[T]], None],
        *,
        wait_ready: bool = True,
        timeout: float | None = None,
    ) -> T:
        """Run ``fn(future)`` on the I/O thread and wait for the future (synchronous operation)."""
        self._check_not_io_thread(what)
        timeout = self._op_timeout if timeout is None else timeout
        if wait_ready:
            self._wait_ready(what, timeout)
        fut: Future[T] = Future()

        def start() -> None:
            try:
                fn(fut)
            except Exception as exc:
                _resolve(fut, exc=exc)

        with self._track(fut):
            self._call_soon(start)
            try:
                return fut.result(timeout)
            except FutureTimeout:
                raise TransportError(
                    f"{what}: no answer from {self._safe_url} within {timeout:.0f} s"
                ) from None

    @contextlib.contextmanager
    def _track(self, fut: Future[Any]) -> Iterator[None]:
        with self._state_lock:
            self._sync_futs.add(fut)
        try:
            yield
        finally:
            with self._state_lock:
                self._sync_futs.discard(fut)

    def _wait_ready(self, what: str, timeout: float) -> None:
        if not self._started:
            raise TransportError(f"{what}: not connected; call connect() first")
        if self._closing:
            raise ConnectionLost(f"{what}: the transport is closed")
        if self._ready.is_set():
            return
        # Reconnecting: wait for it, but give up as soon as close() is called (e.g. on SIGTERM
        # while the broker is down), not only after ``timeout``.
        deadline = time.monotonic() + timeout
        while not self._ready.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
            if self._closing:
                raise ConnectionLost(f"{what}: the transport was closed while reconnecting")
            if time.monotonic() >= deadline:
                raise ConnectionLost(f"{what}: not connected to {self._safe_url} (reconnecting)")

    def _channel_op(self, what: str, action: Callable[[_ChannelOp], None]) -> Any:
        """Run ``action(op)`` on a throwaway channel: a refused operation closes only that channel.
        The action chains pika calls with ``op.then(...)`` callbacks and finishes with ``op.done``."""

        def start(fut: Future[Any]) -> None:
            conn = self._conn
            if conn is None or not conn.is_open:
                _resolve(fut, exc=ConnectionLost(f"{what}: not connected to {self._safe_url}"))
                return

            def on_close(_ch: Channel, reason: Exception) -> None:
                _resolve(fut, exc=_map_channel_close(what, reason))

            def on_open(ch: Channel) -> None:
                action(_ChannelOp(ch, fut))

            ch = conn.channel(on_open_callback=_shielded(on_open, fut))
            ch.add_on_close_callback(_shielded(on_close))

        return self._io_call(what, start, wait_ready=False)

    # ------------------------------------------------------------------ connect / reconnect
    def connect(self) -> None:
        with self._connect_lock:
            if self._closed or self._closing:
                raise TransportError("this transport was closed; create a new one")
            if self._started:
                return
            self._start_threads()
            deadline = time.monotonic() + self._connect_timeout
            last: BaseException | None = None
            while not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    self._establish(remaining)
                    last = None
                    break
                except _AUTH_ERRORS as exc:
                    last = exc
                    break  # retrying cannot fix credentials
                except Exception as exc:
                    last = exc
                    if _tls_verification_failed(exc):
                        break  # nor a certificate this client refuses
                    if not self._retry_refused and _unreachable(exc):
                        break  # a one-shot command: say at once that nothing listens there
                    # close() from another thread (or a signal handler) cuts the pause short.
                    self._close_event.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            with self._state_lock:
                # Decided under the lock close() takes: either close() sees a started transport
                # and closes it fully, or this connect gives up.
                abandoned = self._closing
                if not abandoned and last is None and self._conn is not None:
                    self._started = True
                    self._ready.set()
            if abandoned:
                self._abandon_connect()
                raise TransportError(f"connecting to {self._safe_url} abandoned: the transport was closed")
            if last is not None or self._conn is None:
                self._stop_threads(1.0)
                raise connect_failure(last, self._url, self._connect_timeout)
            log.info("connected to %s as %r", self._safe_url, self._name)

    def _abandon_connect(self) -> None:
        """(connect(), after close() was called meanwhile) Close a connection that opened in the
        meantime, then stop the threads."""

        def close_conn() -> None:
            conn = self._conn
            if conn is not None and conn.is_open:
                conn.close(reply_text="sustainml: closed while connecting")

        with contextlib.suppress(ConnectionLost):
            self._call_soon(close_conn)  # runs before the loop stops (callbacks run in order)
        self._stop_threads(1.0)
        self._closed = True
        log.info("connecting to %s abandoned: the transport was closed", self._safe_url)

    def _start_threads(self) -> None:
        loop = IOLoop()
        with self._soon_lock:  # hand-overs left by a stopped loop never run: start clean
            self._soon.clear()
            self._soon_scheduled = False
        self._ioloop = loop
        self._io_thread = threading.Thread(
            target=self._io_main, args=(loop,), name=f"{self._name}-amqp-io", daemon=True
        )
        self._io_thread.start()
        self._maint = ThreadPoolExecutor(1, thread_name_prefix=f"{self._name}-amqp-maint")
        self._timers = ThreadPoolExecutor(1, thread_name_prefix=f"{self._name}-amqp-timer")

    def _stop_threads(self, timeout: float) -> None:
        loop, thread = self._ioloop, self._io_thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.add_callback_threadsafe(loop.stop)
            thread.join(timeout)
            if thread.is_alive():
                log.warning("AMQP I/O thread did not stop within %.1f s", timeout)
        self._io_thread = None
        self._io_ident = None
        with self._state_lock:
            waiting = list(self._sync_futs)
        for fut in waiting:  # nobody will answer them any more
            _resolve(fut, exc=ConnectionLost("the transport was closed"))
        for pool in (self._maint, self._timers):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def _establish(self, timeout: float) -> None:
        """Open a connection and its publish channel (I/O thread does the work, we wait)."""
        fut: Future[None] = Future()
        abandoned = threading.Event()

        def start() -> None:
            def on_open(conn: SelectConnection) -> None:
                if abandoned.is_set() or self._closing:
                    conn.close()
                    return
                conn.add_on_connection_blocked_callback(_shielded(self._on_blocked))
                conn.add_on_connection_unblocked_callback(_shielded(self._on_unblocked))
                with self._state_lock:
                    self._generation += 1
                    self._conn = conn
                    self._lost = False
                self._conn_closed_event.clear()
                self._open_publish_channel(conn, lambda: _resolve(fut, None))

            def on_open_error(_conn: SelectConnection, err: BaseException) -> None:
                _resolve(fut, exc=err)

            def on_close(conn: SelectConnection, reason: BaseException) -> None:
                _resolve(fut, exc=ConnectionLost(f"closed while opening: {_close_reason(reason)}"))
                if conn is self._conn:
                    self._on_connection_closed(conn, reason)

            params = self._params_list[self._next_host % len(self._params_list)]
            self._next_host += 1  # the next attempt (after a failure or a loss) tries another node
            SelectConnection(
                params,
                on_open_callback=_shielded(on_open, fut),
                on_open_error_callback=_shielded(on_open_error),
                on_close_callback=_shielded(on_close),
                custom_ioloop=self._ioloop,
            )

        with self._track(fut):
            self._call_soon(start)
            try:
                fut.result(timeout)
                return
            except FutureTimeout:
                abandoned.set()

        def abandon() -> None:
            # Opened but its publish channel never came up: drop it (on_open closes later ones).
            conn = self._conn
            if conn is not None and conn.is_open:
                conn.close()

        self._call_soon(abandon)
        raise TimeoutError(f"no connection within {timeout:.1f} s")

    def _on_blocked(self, _conn: SelectConnection, frame: Any) -> None:
        """(I/O thread) connection.blocked: a resource alarm; publishes wait until it clears."""
        reason = getattr(getattr(frame, "method", None), "reason", "") or "resource alarm"
        self._blocked_since = time.monotonic()
        log.warning(
            "broker %s blocked publishing (%s); %d publishes wait for it to clear (up to %.0f s)",
            self._safe_url,
            reason,
            len(self._pending),
            BLOCKED_CONNECTION_TIMEOUT,
        )

    def _on_unblocked(self, _conn: SelectConnection, _frame: Any) -> None:
        since, self._blocked_since = self._blocked_since, None
        waited = time.monotonic() - since if since is not None else 0.0
        log.warning("broker %s unblocked publishing after %.1f s", self._safe_url, waited)

    @property
    def blocked(self) -> bool:
        """True while the broker blocks this connection's publishes (memory or disk alarm)."""
        return self._blocked_since is not None

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the transport to be connected (e.g. after a reconnect)."""
        return self._ready.wait(timeout) and not self._closing

    def _open_publish_channel(
        self, conn: SelectConnection, on_ready: Callable[[], None] | None = None
    ) -> None:
        """(I/O thread) Open the confirm-mode publish channel; flush buffered publishes once ready."""
        self._pub_reopening = True
        self._pub_seq = 0

        def on_close(ch: Channel, reason: Exception) -> None:
            self._on_publish_channel_closed(ch, reason)

        def on_select_ok(_frame: Any, ch: Channel) -> None:
            if ch.is_closed:
                return
            self._pub_channel = ch
            self._pub_reopening = False
            buffered, self._pub_buffer = self._pub_buffer, []
            for item in buffered:
                self._do_publish(*item)
            if on_ready is not None:
                on_ready()

        def on_open(ch: Channel) -> None:
            ch.add_on_return_callback(_shielded(self._on_return))
            ch.confirm_delivery(
                _shielded(self._on_confirm), callback=_shielded(functools.partial(on_select_ok, ch=ch))
            )

        ch = conn.channel(on_open_callback=_shielded(on_open))
        ch.add_on_close_callback(_shielded(on_close))

    def _on_publish_channel_closed(self, ch: Channel, reason: Exception) -> None:
        if ch is not self._pub_channel and not self._pub_reopening:
            return
        self._pub_channel = None
        self._pub_reopening = False
        lost = ConnectionLost(f"publish channel closed before the confirm: {_close_reason(reason)}")
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker) and reason.reply_code == 404:
            # The broker names the missing exchange: publishes to it get a precise error; the
            # innocent ones in flight on the same channel only lost their channel.
            pending, self._pending = self._pending, {}
            for p in pending.values():
                if f"no exchange '{p.exchange}'" in reason.reply_text:
                    _resolve(p.future, exc=ChannelError(f"publish to {p.exchange!r}", 404, reason.reply_text))
                else:
                    _resolve(p.future, exc=lost)
        self._fail_pending(lost)
        conn = self._conn
        if conn is not None and conn.is_open and not self._closing:
            # Usually a publish to a missing exchange (404); the connection is fine, reopen.
            log.warning(
                "publish channel on %s closed by the broker (%s); reopening",
                self._safe_url,
                _close_reason(reason),
            )
            self._open_publish_channel(conn)

    def _fail_pending(self, exc: TransportError) -> None:
        pending, self._pending = self._pending, {}
        buffered, self._pub_buffer = self._pub_buffer, []
        for p in pending.values():
            _resolve(p.future, exc=exc)
        for item in buffered:
            _resolve(item[5], exc=exc)

    def _on_connection_closed(self, conn: SelectConnection, reason: BaseException) -> None:
        """(I/O thread) The current connection is gone, expectedly or not."""
        self._conn = None
        self._pub_channel = None
        self._pub_reopening = False
        self._blocked_since = None
        self._fail_pending(ConnectionLost(f"connection to {self._safe_url} lost: {_close_reason(reason)}"))
        with self._state_lock:
            for c in self._consumers.values():
                c.channel = None
            self._lost = True
            self._ready.clear()
            if self._closing:
                self._conn_closed_event.set()
                return
            log.warning(
                "connection to %s lost: %s", self._safe_url, _scrub(_close_reason(reason), self._password)
            )
            self._conn_closed_event.set()
            if self._started and not self._reconnecting and self._maint is not None:
                self._reconnecting = True
                self._maint.submit(self._reconnect_loop)

    def _reconnect_loop(self) -> None:
        """(maintenance thread) Reconnect with exponential backoff + jitter, then restore."""
        delay = BACKOFF_INITIAL
        attempt = 0
        last = "connection lost"
        while not self._closing:
            attempt += 1
            sleep = delay * random.uniform(0.5, 1.0)  # jitter: replicas do not reconnect in lockstep
            log.warning(
                "reconnecting to %s in %.1f s (attempt %d; last error: %s)",
                self._safe_url,
                sleep,
                attempt,
                last,
            )
            if self._close_event.wait(sleep):
                break
            delay = min(delay * 2, BACKOFF_MAX)
            try:
                self._establish(max(self._connect_timeout, 2.0))
                generation = self._generation
                self._restore()
            except Exception as exc:
                last = _scrub(_describe(exc), self._password)
                self._drop_connection()  # half-restored: start over on a fresh connection
                continue
            with self._state_lock:
                if not self._lost and self._generation == generation and not self._closing:
                    self._reconnecting = False
                    self._ready.set()
                    log.warning("reconnected to %s after %d attempt(s)", self._safe_url, attempt)
                    return
            last = "connection lost again while restoring"
        with self._state_lock:
            self._reconnecting = False

    def _drop_connection(self) -> None:
        """(maintenance thread) Close the current connection, if any, and wait for it to go."""

        def close() -> None:
            conn = self._conn
            if conn is not None and not conn.is_closed and not conn.is_closing:
                conn.close(reply_text="sustainml: restore failed, reconnecting")

        try:
            self._call_soon(close)
        except ConnectionLost:
            return
        self._conn_closed_event.wait(5.0)

    def _restore(self) -> None:
        """(maintenance thread) Re-declare everything, then re-issue every active consumer."""
        with self._topo_lock:
            exchanges = list(self._exchanges.values())
            queues = list(self._queues.values())
            extra = [(q, b) for q, bs in self._extra_bindings.items() for b in bs]
        for ex in exchanges:
            try:
                self._declare_exchange_now(ex)
            except ChannelError as exc:
                log.error("re-declaring exchange %r failed, forgetting it: %s", ex.name, exc)
                with self._topo_lock:
                    self._exchanges.pop(ex.name, None)
        for q in queues:
            try:
                self._declare_queue_now(q)
            except ChannelError as exc:
                log.error("re-declaring queue %r failed, forgetting it: %s", q.name, exc)
                with self._topo_lock:
                    self._queues.pop(q.name, None)
        for queue, binding in extra:
            try:
                self._bind_now(queue, binding)
            except ChannelError as exc:
                log.error("re-binding %r to %r failed: %s", queue, binding.exchange, exc)
        with self._state_lock:
            consumers = [c for c in self._consumers.values() if c.active]
        for c in consumers:
            try:
                self._ensure_consumer(c)
            except ChannelError as exc:
                log.error("re-consuming queue %r failed: %s", c.queue, exc)

    # ------------------------------------------------------------------ declarations
    def _declare_exchange_now(self, spec: ExchangeSpec) -> None:
        def action(op: _ChannelOp) -> None:
            op.channel.exchange_declare(
                spec.name, spec.type, durable=spec.durable, callback=op.then(lambda _f: op.done())
            )

        self._channel_op(f"declare exchange {spec.name!r}", action)

    def _declare_queue_now(self, spec: QueueSpec) -> None:
        for b in spec.bindings:
            if not b.exchange:
                raise ValueError(f"queue {spec.name!r}: cannot bind to the default exchange")
        args = _queue_arguments(spec)

        def action(op: _ChannelOp) -> None:
            bindings = list(spec.bindings)

            def next_binding(_frame: Any) -> None:
                if not bindings:
                    op.done()
                    return
                b = bindings.pop(0)
                op.channel.queue_bind(
                    spec.name, b.exchange, routing_key=b.routing_key, callback=op.then(next_binding)
                )

            op.channel.queue_declare(
                spec.name, durable=spec.durable, arguments=args, callback=op.then(next_binding)
            )

        self._channel_op(f"declare queue {spec.name!r}", action)

    def _bind_now(self, queue: str, binding: Binding) -> None:
        def action(op: _ChannelOp) -> None:
            op.channel.queue_bind(
                queue,
                binding.exchange,
                routing_key=binding.routing_key,
                callback=op.then(lambda _f: op.done()),
            )

        self._channel_op(f"bind queue {queue!r} to {binding.exchange!r}", action)

    def declare_exchange(self, spec: ExchangeSpec) -> None:
        self._wait_ready("declare_exchange", self._op_timeout)
        with self._topo_lock:
            previous = self._exchanges.get(spec.name)
            self._exchanges[spec.name] = spec  # remembered first: a reconnect mid-call re-declares it
        try:
            self._declare_exchange_now(spec)
        except ChannelError:
            with self._topo_lock:
                if previous is None:
                    self._exchanges.pop(spec.name, None)
                else:
                    self._exchanges[spec.name] = previous
            raise

    def declare_queue(self, spec: QueueSpec) -> None:
        self._wait_ready("declare_queue", self._op_timeout)
        with self._topo_lock:
            previous = self._queues.get(spec.name)
            self._queues[spec.name] = spec
            self._deleted_queues.discard(spec.name)
        try:
            self._declare_queue_now(spec)
        except (ChannelError, ValueError):
            with self._topo_lock:
                if previous is None:
                    self._queues.pop(spec.name, None)
                else:
                    self._queues[spec.name] = previous
            raise

    def bind(self, queue: str, binding: Binding) -> None:
        if not binding.exchange:
            raise ValueError(f"queue {queue!r}: cannot bind to the default exchange")
        self._wait_ready("bind", self._op_timeout)
        self._bind_now(queue, binding)
        with self._topo_lock:
            known = self._extra_bindings.setdefault(queue, [])
            if binding not in known:
                known.append(binding)

    def unbind(self, queue: str, binding: Binding) -> None:
        with self._topo_lock:
            known = self._extra_bindings.get(queue)
            if known and binding in known:
                known.remove(binding)
                if not known:
                    del self._extra_bindings[queue]
        self._wait_ready("unbind", self._op_timeout)

        def action(op: _ChannelOp) -> None:
            op.channel.queue_unbind(
                queue, binding.exchange, binding.routing_key, callback=op.then(lambda _f: op.done())
            )

        try:
            self._channel_op(f"unbind {queue!r} from {binding.exchange!r}", action)
        except ChannelError as exc:
            if exc.reply_code != 404:  # the queue or exchange is gone already: nothing to undo
                raise

    def delete_queue(self, name: str) -> None:
        self._wait_ready("delete_queue", self._op_timeout)
        with self._topo_lock:
            self._queues.pop(name, None)
            self._extra_bindings.pop(name, None)
            self._deleted_queues.add(name)

        def action(op: _ChannelOp) -> None:
            op.channel.queue_delete(name, callback=op.then(lambda _f: op.done()))

        self._channel_op(f"delete queue {name!r}", action)

    def delete_exchange(self, name: str) -> None:
        self._wait_ready("delete_exchange", self._op_timeout)
        with self._topo_lock:
            self._exchanges.pop(name, None)

        def action(op: _ChannelOp) -> None:
            op.channel.exchange_delete(name, callback=op.then(lambda _f: op.done()))

        self._channel_op(f"delete exchange {name!r}", action)

    def purge_queue(self, name: str) -> int:
        self._wait_ready("purge_queue", self._op_timeout)

        def action(op: _ChannelOp) -> None:
            op.channel.queue_purge(name, callback=op.then(lambda f: op.done(f.method.message_count)))

        try:
            return int(self._channel_op(f"purge queue {name!r}", action))
        except ChannelError as exc:
            if exc.reply_code == 404:
                raise KeyError(name) from None
            raise

    def queue_counts(self, name: str) -> tuple[int, int]:
        self._wait_ready("queue_counts", self._op_timeout)

        def action(op: _ChannelOp) -> None:
            # Passive declare: a missing queue closes the (throwaway) channel with 404.
            op.channel.queue_declare(
                name,
                passive=True,
                callback=op.then(lambda f: op.done((f.method.message_count, f.method.consumer_count))),
            )

        try:
            ready, consumers = self._channel_op(f"inspect queue {name!r}", action)
        except ChannelError as exc:
            if exc.reply_code == 404:
                raise KeyError(name) from None
            raise
        return int(ready), int(consumers)

    # ------------------------------------------------------------------ publishing
    def publish(
        self, exchange: str, routing_key: str, message: Message, *, mandatory: bool = True
    ) -> Future[None]:
        fut: Future[None] = Future()
        # Publishing stays possible while close() drains handlers (their outputs must go out).
        if self._publishing_stopped or not self._started:
            fut.set_exception(ConnectionLost(f"publish to {exchange!r}: the transport is not connected"))
            return fut
        props = _to_properties(message, self._user_id)
        # The window bounds memory and confirm latency; the I/O thread itself must never wait.
        if not self._on_io_thread():
            with self._window_cv:
                if not self._window_cv.wait_for(
                    lambda: self._in_flight < self._max_in_flight or self._closed,
                    BLOCKED_CONNECTION_TIMEOUT * 2,
                ):
                    fut.set_exception(TransportError(f"publish to {exchange!r}: confirm window stayed full"))
                    return fut
                self._in_flight += 1
        else:
            with self._window_cv:
                self._in_flight += 1
        fut.add_done_callback(self._release_window)
        try:
            self._call_soon(
                lambda: self._do_publish(exchange, routing_key, props, message.body, mandatory, fut)
            )
        except ConnectionLost as exc:
            _resolve(fut, exc=exc)
        return fut

    def _release_window(self, _fut: Future[None]) -> None:
        with self._window_cv:
            self._in_flight -= 1
            self._window_cv.notify_all()

    def _do_publish(
        self,
        exchange: str,
        routing_key: str,
        props: BasicProperties,
        body: bytes,
        mandatory: bool,
        fut: Future[None],
    ) -> None:
        """(I/O thread) Send one message on the confirm channel and track its delivery tag."""
        if fut.done():
            return
        ch = self._pub_channel
        if ch is None or not ch.is_open:
            conn = self._conn
            if self._pub_reopening and conn is not None and conn.is_open:
                self._pub_buffer.append((exchange, routing_key, props, body, mandatory, fut))
            else:
                _resolve(
                    fut, exc=ConnectionLost(f"publish to {exchange!r}: not connected to {self._safe_url}")
                )
            return
        seq = self._pub_seq + 1
        if mandatory:
            props.headers = dict(props.headers or {})
            props.headers[PUBSEQ_HEADER] = seq
        try:
            ch.basic_publish(exchange, routing_key, body, props, mandatory=mandatory)
        except Exception as exc:
            _resolve(fut, exc=TransportError(f"publish to {exchange!r} failed: {exc!r}"))
            return
        self._pub_seq = seq
        self._pending[seq] = _PendingPublish(fut, exchange, routing_key)

    def _on_return(self, ch: Channel, method: Basic.Return, props: BasicProperties, _body: bytes) -> None:
        seq = (props.headers or {}).get(PUBSEQ_HEADER)
        pending = self._pending.get(seq) if isinstance(seq, int) and ch is self._pub_channel else None
        if pending is None:
            log.warning(
                "basic.return for an unknown publish (exchange=%r, routing_key=%r, %s)",
                method.exchange,
                method.routing_key,
                method.reply_text,
            )
            return
        pending.returned = f"{method.reply_code} {method.reply_text}"

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tag: int = method.delivery_tag
        # multiple=True confirms everything up to the tag; dict order is publish order.
        seqs = list(itertools.takewhile(lambda s: s <= tag, self._pending)) if method.multiple else [tag]
        nacked = isinstance(method, Basic.Nack)
        for seq in seqs:
            p = self._pending.pop(seq, None)
            if p is None:
                continue
            if nacked:
                _resolve(
                    p.future,
                    exc=PublishNacked(
                        f"broker refused the message to {p.exchange!r} / {p.routing_key!r} (basic.nack)"
                    ),
                )
            elif p.returned is not None:
                _resolve(
                    p.future,
                    exc=Unroutable(
                        f"no queue bound for exchange {p.exchange!r}, routing key {p.routing_key!r} "
                        f"({p.returned})"
                    ),
                )
            else:
                _resolve(p.future, None)

    # ------------------------------------------------------------------ consuming
    def consume(self, queue: str, handler: Handler, *, prefetch: int = 8, concurrency: int = 1) -> str:
        if prefetch < 1 or concurrency < 1:
            raise ValueError("prefetch and concurrency must be >= 1")
        self._wait_ready("consume", self._op_timeout)
        tag = f"{self._name}.{queue}.{uuid.uuid4().hex[:8]}"
        c = _Consumer(tag, queue, handler, prefetch, concurrency, self._name)
        with self._state_lock:
            self._consumers[tag] = c
        try:
            self._ensure_consumer(c)
        except ConnectionLost:
            pass  # stays registered: the reconnect re-issues it
        except Exception:
            with self._state_lock:
                self._consumers.pop(tag, None)
            c.active = False
            c.executor.shutdown(wait=False)
            raise
        return tag

    def _ensure_consumer(self, c: _Consumer) -> None:
        """Start the consumer on a fresh channel unless it already runs on the current connection."""
        with c.start_lock:
            if not c.active:
                return
            ch = c.channel
            if ch is not None and ch.is_open and c.channel_generation == self._generation:
                return

            def start(fut: Future[None]) -> None:
                conn = self._conn
                if conn is None or not conn.is_open:
                    _resolve(fut, exc=ConnectionLost(f"consume {c.queue!r}: not connected"))
                    return
                generation = self._generation

                def on_close(closed: Channel, reason: Exception) -> None:
                    if not fut.done():
                        _resolve(fut, exc=_map_channel_close(f"consume {c.queue!r}", reason))
                    else:
                        self._on_consumer_channel_closed(c, closed, reason)

                def on_consume_ok(_frame: Any, ch: Channel) -> None:
                    if not c.active or fut.done():  # cancelled, or the caller gave up waiting
                        ch.close()
                        return
                    c.channel = ch
                    c.channel_generation = generation
                    _resolve(fut, None)

                def on_qos_ok(_frame: Any, ch: Channel) -> None:
                    ch.basic_consume(
                        c.queue,
                        _shielded(functools.partial(self._on_message, c, generation)),
                        auto_ack=False,
                        consumer_tag=c.tag,
                        callback=_shielded(functools.partial(on_consume_ok, ch=ch), fut),
                    )

                def on_open(ch: Channel) -> None:
                    ch.add_on_cancel_callback(_shielded(functools.partial(self._on_broker_cancel, c, ch)))
                    # One channel per consumer, so this prefetch applies to this consumer only.
                    ch.basic_qos(
                        prefetch_count=c.prefetch,
                        callback=_shielded(functools.partial(on_qos_ok, ch=ch), fut),
                    )

                new = conn.channel(on_open_callback=_shielded(on_open, fut))
                new.add_on_close_callback(_shielded(on_close))

            self._io_call(f"consume {c.queue!r}", start, wait_ready=False)

    def _on_message(
        self,
        c: _Consumer,
        generation: int,
        ch: Channel,
        method: Basic.Deliver,
        props: BasicProperties,
        body: bytes,
    ) -> None:
        """(I/O thread) Hand a delivery to the consumer's pool."""
        tag = int(method.delivery_tag or 0)
        if not c.active:
            ch.basic_reject(tag, requeue=True)  # cancelled: give it back now
            return
        delivery = AmqpDelivery(
            self,
            c,
            ch,
            generation,
            tag,
            _to_message(props, body),
            method.exchange or "",
            method.routing_key or "",
            bool(method.redelivered),
        )
        with c.cv:
            c.unsettled += 1
        try:
            task = c.executor.submit(self._run_handler, c, delivery)
        except RuntimeError:  # pool shut down by cancel()/close() a moment ago
            c.delivery_done()
            ch.basic_reject(tag, requeue=True)
            return

        def on_task_done(t: Future[None]) -> None:
            if t.cancelled():  # never started (close/cancel): the channel close requeues it
                c.delivery_done()

        task.add_done_callback(on_task_done)

    def _run_handler(self, c: _Consumer, d: AmqpDelivery) -> None:
        if d.stale:
            # Its channel died before we started: the broker redelivers it elsewhere.
            log.debug("skipping delivery %d of %r from a closed channel", d.delivery_tag, c.queue)
            d._mark("skip")
            return
        _current.delivery = d
        try:
            c.handler(d)
        except Exception:
            log.exception(
                "handler for queue %r failed on message_id=%r; dead-lettering it",
                c.queue,
                d.message.message_id,
            )
            if not d.settled:
                d.reject(requeue=False)
        finally:
            _current.delivery = None

    def _settle(self, d: AmqpDelivery, action: str, requeue: bool) -> None:
        def run() -> None:
            if d.stale:
                log.debug(
                    "%s of delivery %d on %r is a no-op: its channel is gone (broker redelivers)",
                    action,
                    d.delivery_tag,
                    d.queue,
                )
                return
            try:
                if action == "ack":
                    d._channel.basic_ack(d.delivery_tag)
                else:
                    d._channel.basic_reject(d.delivery_tag, requeue=requeue)
            except _WRONG_STATE:  # the channel started closing since the check: same as stale
                log.debug(
                    "%s of delivery %d on %r raced with its channel closing", action, d.delivery_tag, d.queue
                )

        if self._on_io_thread():
            run()  # e.g. an ack from a publish's confirm callback: no need for another loop turn
            return
        try:
            self._call_soon(run)
        except ConnectionLost:
            log.debug("%s of delivery %d on %r after close: no-op", action, d.delivery_tag, d.queue)

    def _on_consumer_channel_closed(self, c: _Consumer, ch: Channel, reason: Exception) -> None:
        """(I/O thread) A consumer channel closed after it was started."""
        if ch is not c.channel:
            return
        c.channel = None
        conn = self._conn
        if self._closing or not c.active or conn is None or not conn.is_open:
            return  # closing, cancelled, or the reconnect re-issues it
        log.warning(
            "consumer channel of queue %r closed by the broker (%s); re-consuming",
            c.queue,
            _close_reason(reason),
        )
        self._submit_maint(functools.partial(self._recover_consumer, c, redeclare=False))

    def _on_broker_cancel(self, c: _Consumer, ch: Channel, _frame: Any) -> None:
        """(I/O thread) basic.cancel from the broker: usually the queue was deleted."""
        if self._closing or not c.active or ch is not c.channel:
            return
        with self._topo_lock:
            known = c.queue in self._queues
            deleted = c.queue in self._deleted_queues
        if not known:
            if deleted:
                log.info("consumer %s stopped: queue %r was deleted through this transport", c.tag, c.queue)
            else:
                log.error(
                    "consumer %s on queue %r was cancelled by the broker and the queue is not "
                    "declared by this transport; not re-consuming",
                    c.tag,
                    c.queue,
                )
            c.active = False
            with self._state_lock:
                self._consumers.pop(c.tag, None)
            self._retire(c, ch)
            return
        log.warning("consumer on queue %r cancelled by the broker; re-declaring and re-consuming", c.queue)
        c.channel = None
        ch.close()  # its deliveries cannot be settled on a deleted queue anyway
        self._submit_maint(functools.partial(self._recover_consumer, c, redeclare=True))

    def _submit_maint(self, fn: Callable[[], None]) -> None:
        if self._maint is None or self._closing:
            return
        try:
            self._maint.submit(fn)
        except RuntimeError:
            log.debug("maintenance pool closed; dropping %r", fn)

    def _recover_consumer(self, c: _Consumer, *, redeclare: bool) -> None:
        """(maintenance thread) Re-declare the queue if asked, then re-consume."""
        if not c.active or self._closing:
            return
        try:
            if redeclare:
                with self._topo_lock:
                    spec = self._queues.get(c.queue)
                if spec is not None:
                    self._declare_queue_now(spec)
            self._ensure_consumer(c)
            log.warning("consumer on queue %r re-established", c.queue)
        except ConnectionLost:
            pass  # the reconnect loop re-issues it
        except Exception:
            log.exception("could not re-establish the consumer on queue %r", c.queue)

    def cancel(self, consumer_tag: str) -> None:
        with self._state_lock:
            c = self._consumers.pop(consumer_tag, None)
        if c is None:
            log.warning("cancel: unknown consumer tag %r", consumer_tag)
            return
        c.active = False
        ch = c.channel
        if ch is not None:
            self._basic_cancel(c, ch)
        self._retire(c, ch)

    def _basic_cancel(self, c: _Consumer, ch: Channel, timeout: float | None = None) -> None:
        def start(fut: Future[None]) -> None:
            # A consumer the broker cancelled already (its queue was deleted) is unknown to pika,
            # which then logs "consumer not found" and never calls back: nothing left to cancel.
            if not ch.is_open or c.tag not in ch.consumer_tags:
                _resolve(fut, None)
                return
            ch.basic_cancel(c.tag, callback=_shielded(lambda _f: _resolve(fut, None)))

        try:
            self._io_call(f"cancel consumer on {c.queue!r}", start, wait_ready=False, timeout=timeout)
        except TransportError as exc:
            log.debug("basic.cancel of %s: %s", c.tag, exc)

    def _retire(self, c: _Consumer, ch: Channel | None) -> None:
        """Let queued-but-unstarted deliveries go back, wait for settlements, then close the channel."""
        c.executor.shutdown(wait=False, cancel_futures=True)

        def run() -> None:
            deadline = time.monotonic() + RETIRE_TIMEOUT
            while not self._closing and not c.wait_settled(min(deadline, time.monotonic() + 0.5)):
                if time.monotonic() >= deadline:
                    log.warning(
                        "consumer on %r: %d deliveries still unsettled after %.0f s; closing its "
                        "channel (the broker redelivers them)",
                        c.queue,
                        c.unsettled,
                        RETIRE_TIMEOUT,
                    )
                    break
            if ch is not None and not self._closing:
                with contextlib.suppress(ConnectionLost):
                    self._call_soon(lambda: ch.close() if ch.is_open else None)

        def run_then_forget() -> None:
            try:
                run()
            finally:
                with self._state_lock:
                    self._retiring.discard(c)

        t = threading.Thread(target=run_then_forget, name=f"{self._name}-retire-{c.queue}", daemon=True)
        with self._state_lock:
            self._retirers = [r for r in self._retirers if r.is_alive()]
            self._retiring.add(c)  # close() still waits for its running handlers
            # Started before close() can see it: joining a thread not yet started raises.
            t.start()
            self._retirers.append(t)

    # ------------------------------------------------------------------ timers
    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        if self._closing or not self._started:
            log.debug("call_later on a closed transport: dropped %r", fn)
            return

        def run() -> None:
            try:
                fn()
            except Exception:
                log.exception("call_later callback %r failed", fn)

        def fire() -> None:
            if self._closing or self._timers is None:
                return
            try:
                self._timers.submit(run)
            except RuntimeError:
                log.debug("timer pool closed; dropped %r", fn)

        def schedule() -> None:
            if self._ioloop is not None:
                self._ioloop.call_later(max(0.0, delay), fire)

        try:
            self._call_soon(schedule)
        except ConnectionLost:
            log.debug("call_later on a closed transport: dropped %r", fn)

    # ------------------------------------------------------------------ shutdown
    def close(self, timeout: float = 10.0) -> None:
        self._check_not_io_thread("close()")
        with self._state_lock:
            if self._closing:
                return
            self._closing = True
            if not self._started:
                # Maybe connect() is retrying on another thread: wake its pause and fail its wait
                # for the connection, so it gives up now instead of after the connect timeout.
                self._closed = True
                self._close_event.set()
                waiting = list(self._sync_futs)
                for fut in waiting:
                    _resolve(fut, exc=ConnectionLost("the transport was closed while connecting"))
                return
            consumers = list(self._consumers.values())
            self._consumers.clear()
        deadline = time.monotonic() + timeout
        self._close_event.set()

        # 1. Stop deliveries; unstarted work goes back to the queue when the channel closes.
        for c in consumers:
            c.active = False
            ch = c.channel
            if ch is not None:
                self._basic_cancel(c, ch, timeout=max(0.1, min(5.0, deadline - time.monotonic())))
            c.executor.shutdown(wait=False, cancel_futures=True)
        # 2. Running handlers finish and settle (acks may wait for their output's confirm).
        mine = getattr(_current, "delivery", None)  # close() called from a handler
        for c in consumers:
            own = 1 if isinstance(mine, AmqpDelivery) and mine._consumer is c and not mine.settled else 0
            if not c.wait_settled(deadline, allow=own):
                log.warning(
                    "close: %d deliveries of %r still unsettled after %.1f s; the broker redelivers them",
                    c.unsettled,
                    c.queue,
                    timeout,
                )
        # Consumers cancelled earlier may still be running handlers: they finish and settle too
        # (a node cancels its stage consumer before closing; its in-flight task must complete).
        with self._state_lock:
            retiring = list(self._retiring)
        for c in retiring:
            own = 1 if isinstance(mine, AmqpDelivery) and mine._consumer is c and not mine.settled else 0
            if not c.wait_settled(deadline, allow=own):
                log.warning(
                    "close: %d deliveries of cancelled consumer on %r still unsettled", c.unsettled, c.queue
                )
        # 3. Outstanding publishes get their confirms.
        with self._window_cv:
            if not self._window_cv.wait_for(
                lambda: self._in_flight <= 0, max(0.0, deadline - time.monotonic())
            ):
                log.warning(
                    "close: %d publishes still unconfirmed; they fail with ConnectionLost", self._in_flight
                )
        # 4. Flush queued threadsafe callbacks (acks, publishes), then close the connection.
        self._publishing_stopped = True
        flushed = threading.Event()
        try:
            self._call_soon(flushed.set)
            flushed.wait(max(0.5, deadline - time.monotonic()))

            def close_conn() -> None:
                conn = self._conn
                if conn is not None and not conn.is_closed and not conn.is_closing:
                    conn.close()
                else:
                    self._conn_closed_event.set()

            self._call_soon(close_conn)
            if not self._conn_closed_event.wait(max(1.0, deadline - time.monotonic())):
                log.warning("close: connection to %s did not close cleanly in time", self._safe_url)
        except ConnectionLost:
            pass
        # 5. Stop threads and fail what is left.
        self._stop_threads(max(1.0, deadline - time.monotonic()))
        self._fail_pending(ConnectionLost("the transport was closed"))
        for t in list(self._retirers):
            t.join(max(0.0, deadline - time.monotonic()))
        with self._window_cv:
            self._closed = True
            self._window_cv.notify_all()
        self._ready.clear()
        log.info("closed connection to %s", self._safe_url)
