"""Transports: the broker contract (``base``), RabbitMQ via pika (``amqp``), in-process (``memory``).

This module is the single place that turns settings into AMQP connection parameters:
``amqp_transport`` (workers, orchestrator, CLI) and ``blocking_parameters`` (short-lived
synchronous connections such as ``sustainml dlq``) both go through ``apply_tls``, so an
``amqps://`` URL always verifies the broker's certificate (against ``SUSTAINML_TLS_CA_FILE`` when
set, else the system trust store) and checks its host name.

A broker URL may name several nodes of one RabbitMQ cluster, comma-separated in its authority:
``amqp://user:pass@rmq1:5672,rmq2:5672,rmq3:5672/vhost``. ``split_broker_url`` turns it into one
URL per node (same credentials, vhost and query); the transport connects to one of them and, when
that connection is lost or refused, tries the next.

Dependencies (checked by the import contracts in pyproject.toml): the transports carry the message
model's ``Message`` and import nothing else from the layers; beside it they read
``sustainml.config.Settings`` (only the two factories here, which turn settings into connection
parameters) and ``sustainml.redact`` (broker URLs in errors). Both are leaf modules that import
nothing of the layers, so the settings stay in one place rather than being copied down here.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import pika
    import pika.connection

    from sustainml.config import Settings
    from sustainml.transport.base import Transport


class TlsConfigError(ValueError):
    """A TLS file setting cannot be used; the message names the setting (never a secret)."""


@dataclass(frozen=True)
class TlsFiles:
    """Where the CA bundle and the optional client certificate/key live (PEM files)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def of(cls, settings: Settings) -> TlsFiles:
        return cls(settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file)


def is_tls_url(url: str) -> bool:
    try:
        return urlsplit(url).scheme.lower() == "amqps"
    except ValueError:
        return False


def tls_context(files: TlsFiles | None) -> ssl.SSLContext:
    """A client context that verifies the server certificate and host name (TLS >= 1.2)."""
    files = files or TlsFiles()
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=files.ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        where = f"SUSTAINML_TLS_CA_FILE={files.ca_file!r}"
        raise TlsConfigError(f"{where}: cannot load the CA bundle ({exc})") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # create_default_context already sets these; stated so a reader sees verification is on.
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if files.cert_file or files.key_file:
        if not files.cert_file:
            raise TlsConfigError("SUSTAINML_TLS_KEY_FILE is set without SUSTAINML_TLS_CERT_FILE")
        try:
            ctx.load_cert_chain(files.cert_file, files.key_file or None)
        except (OSError, ssl.SSLError) as exc:
            raise TlsConfigError(
                f"SUSTAINML_TLS_CERT_FILE={files.cert_file!r} / SUSTAINML_TLS_KEY_FILE={files.key_file!r}: "
                f"cannot load the client certificate ({type(exc).__name__})"
            ) from None
    return ctx


def apply_tls(params: pika.connection.Parameters, url: str, files: TlsFiles | None) -> None:
    """Give ``params`` a verifying TLS context when ``url`` is ``amqps://`` (no-op otherwise)."""
    if not is_tls_url(url):
        return
    import pika

    params.ssl_options = pika.SSLOptions(tls_context(files), server_hostname=params.host)


def split_broker_url(url: str) -> list[str]:
    """One URL per host of a (possibly multi-host) broker URL, in the order given.

    >>> split_broker_url("amqp://u:p@a:5672,b,c:5673/v?heartbeat=5")
    ['amqp://u:p@a:5672/v?heartbeat=5', 'amqp://u:p@b/v?heartbeat=5', 'amqp://u:p@c:5673/v?heartbeat=5']
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return [url]
    end = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if i != -1:
            end = min(end, i)
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hosts = authority.rpartition("@")
    if "," not in hosts:
        return [url]
    parts = [h.strip() for h in hosts.split(",")]
    if any(not h for h in parts):
        raise ValueError("broker URL: empty host in a comma-separated host list")
    return [f"{scheme}://{userinfo}{at}{h}{tail}" for h in parts]


def blocking_parameters(
    settings: Settings, name: str, *, connect_timeout: float = 10.0
) -> pika.URLParameters:
    """Parameters for a short-lived ``pika.BlockingConnection`` (operator commands, tests).
    With several hosts in the URL, the first one's."""
    import pika

    from sustainml.redact import redact_text, redact_url, url_password

    try:
        params = pika.URLParameters(split_broker_url(settings.broker_url)[0])
    except Exception as exc:  # pika raises several types; the text may echo the URL
        safe = redact_url(settings.broker_url)
        raise ValueError(
            f"invalid broker URL {safe}: {redact_text(str(exc), url_password(settings.broker_url))}"
        ) from None
    apply_tls(params, settings.broker_url, TlsFiles.of(settings))
    params.client_properties = {"connection_name": name}
    params.connection_attempts = 1
    params.socket_timeout = max(1.0, min(10.0, connect_timeout))
    params.stack_timeout = max(2.0, min(15.0, connect_timeout))
    params.blocked_connection_timeout = 60.0
    return params


def amqp_transport(
    settings: Settings, name: str, *, connect_timeout: float = 10.0, retry_refused: bool = True
) -> Transport:
    """The RabbitMQ transport for ``settings`` (pika is imported only when one is made).
    ``name`` shows as the connection name in the broker's management tools; ``retry_refused=False``
    (commands) reports a refused address at once instead of retrying until ``connect_timeout``."""
    from sustainml.transport.amqp import AmqpTransport

    return AmqpTransport(
        settings.broker_url,
        heartbeat=settings.amqp_heartbeat,
        name=name,
        connect_timeout=connect_timeout,
        tls=TlsFiles.of(settings),
        retry_refused=retry_refused,
    )


__all__ = [
    "TlsConfigError",
    "TlsFiles",
    "amqp_transport",
    "apply_tls",
    "blocking_parameters",
    "is_tls_url",
    "split_broker_url",
    "tls_context",
]
