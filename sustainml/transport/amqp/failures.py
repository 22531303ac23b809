"""Why a connection or an operation failed, in words an operator can act on, and URLs safe to log.

Importing this module also quiets pika's per-attempt connection logging: the transport retries
and reports the outcome itself (password scrubbed). Nothing here touches a live pika object.
"""

from __future__ import annotations

import logging
import socket
import ssl
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions

from sustainml.transport import split_broker_url
from sustainml.transport.base import BrokerUnavailable, ConnectionLost, TransportError

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

AUTH_ERRORS = (
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


def scrub(text: str, secret: str | None) -> str:
    """Remove a password from an error text (pika errors may echo parameters)."""
    if secret:
        text = text.replace(secret, "***")
    return text


def close_reason(reason: BaseException | None) -> str:
    if isinstance(reason, pika.exceptions.ChannelClosed | pika.exceptions.ConnectionClosed):
        return f"{reason.reply_code} {reason.reply_text}"
    return repr(reason)


def describe(exc: BaseException) -> str:
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
    detail = scrub(describe(exc), password)
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
    if any(isinstance(e, AUTH_ERRORS) for e in chain) or "ACCESS_REFUSED" in text:
        return BrokerUnavailable(
            f"{start}: wrong credentials, the broker refused the login of user {user!r}: {fix_url} "
            "(amqp://USER:PASSWORD@HOST:PORT/VHOST)"
        )
    if tls_verification_failed(exc):
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


def unreachable(exc: BaseException) -> bool:
    """Nothing listens at the address, the host name does not resolve, or the TLS handshake
    failed (TLS spoken to a plain port or the reverse): nothing a command gains by retrying."""
    return any(isinstance(e, ConnectionRefusedError | socket.gaierror | ssl.SSLError) for e in _chain(exc))


def tls_verification_failed(exc: BaseException) -> bool:
    """True when the client refused the broker's certificate (unknown CA, wrong host name):
    a configuration error that no retry can fix."""
    text = describe(exc)
    return "SSLCertVerificationError" in text or "CERTIFICATE_VERIFY_FAILED" in text


def map_channel_close(what: str, reason: BaseException | None) -> TransportError:
    """The error a pending operation fails with when its channel closes."""
    if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
        return ChannelError(what, reason.reply_code, reason.reply_text)
    if isinstance(reason, pika.exceptions.ChannelClosedByClient):
        return TransportError(f"{what}: channel closed by the client ({close_reason(reason)})")
    return ConnectionLost(f"{what}: connection lost ({close_reason(reason)})")
