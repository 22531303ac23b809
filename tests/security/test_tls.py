"""TLS (amqps://) end to end: a local CA and server certificate made by trustme, a private RabbitMQ
node with a TLS listener on loopback, and clients that verify the certificate.

- a client given the CA (``SUSTAINML_TLS_CA_FILE``) connects and runs a message round trip, with
  the asynchronous transport and with the synchronous operator connection (``sustainml dlq``);
- a client without the CA fails certificate verification with an error that says so;
- a client that reaches the broker under a name the certificate does not carry fails too;
- with ``verify_peer`` on the broker, a client certificate (``SUSTAINML_TLS_CERT_FILE``/``KEY``)
  is required and accepted.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from sustainml.cli.dlq_client import DlqClient
from sustainml.config import Settings
from sustainml.transport import TlsConfigError, TlsFiles, amqp_transport, tls_context
from sustainml.transport.base import BrokerUnavailable, Delivery, Message, QueueSpec
from tests.support.private_broker import (
    PrivateBroker,
    PrivateBrokerError,
    PrivateBrokerTLS,
    rabbitmq_available,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class TlsNode:
    broker: PrivateBroker
    ca_file: str
    client_cert: str
    client_key: str

    def url(self, host: str = "localhost") -> str:
        assert self.broker.tls_port is not None
        return f"amqps://guest:guest@{host}:{self.broker.tls_port}/%2F"


def _write_pems(tmp: Path, mtls: bool) -> tuple[PrivateBrokerTLS, str, str, str]:
    ca = trustme.CA()
    server = ca.issue_cert("localhost")  # deliberately not 127.0.0.1: the wrong-host case
    client = ca.issue_cert("sustainml-client@example.org")
    ca_file = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file, key_file = tmp / "server.pem", tmp / "server.key"
    server.cert_chain_pems[0].write_to_path(str(cert_file))
    server.private_key_pem.write_to_path(str(key_file))
    client_cert, client_key = tmp / "client.pem", tmp / "client.key"
    client.cert_chain_pems[0].write_to_path(str(client_cert))
    client.private_key_pem.write_to_path(str(client_key))
    tls = PrivateBrokerTLS(
        str(ca_file),
        str(cert_file),
        str(key_file),
        verify="verify_peer" if mtls else "verify_none",
        fail_if_no_peer_cert=mtls,
    )
    return tls, str(ca_file), str(client_cert), str(client_key)


@pytest.fixture(scope="module", params=["server-auth", "mutual"])
def tls_node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNode]:
    if not rabbitmq_available():
        pytest.skip("RabbitMQ server scripts are not installed")
    mtls = request.param == "mutual"
    tls, ca_file, cert, key = _write_pems(tmp_path_factory.mktemp(f"tls-{request.param}"), mtls)
    broker: PrivateBroker | None = None
    for attempt in range(3):  # free ports are picked before the node binds them: a race, retried
        candidate = PrivateBroker(f"tls-{request.param}-{attempt}", 0, tls=tls)
        try:
            broker = candidate.__enter__()
            break
        except PrivateBrokerError as exc:
            if "already_used" not in str(exc) and "eaddrinuse" not in str(exc).lower():
                raise
    if broker is None:
        pytest.fail("could not start the private TLS node: ports kept colliding")
    try:
        yield TlsNode(broker, ca_file, cert, key)
    finally:
        broker.close()


def _settings(
    node: TlsNode, *, host: str = "localhost", ca: bool = True, client_cert: bool = True
) -> Settings:
    mutual = node.broker.tls is not None and node.broker.tls.fail_if_no_peer_cert
    return Settings(
        broker_url=node.url(host),
        namespace=f"t-{uuid.uuid4().hex[:8]}",
        tls_ca_file=node.ca_file if ca else "",
        tls_cert_file=node.client_cert if (mutual and client_cert) else "",
        tls_key_file=node.client_key if (mutual and client_cert) else "",
    )


def test_verified_client_runs_a_round_trip(tls_node: TlsNode) -> None:
    settings = _settings(tls_node)
    transport = amqp_transport(settings, "tls-test", connect_timeout=20)
    transport.connect()
    try:
        queue = f"{settings.namespace}.tls-roundtrip"
        transport.declare_queue(QueueSpec(queue, expires_ms=60_000))
        got: list[bytes] = []
        arrived = threading.Event()

        def handler(d: Delivery) -> None:
            got.append(d.message.body)
            d.ack()
            arrived.set()

        transport.consume(queue, handler)
        transport.publish("", queue, Message(b"over TLS", message_id="m1")).result(20)
        assert arrived.wait(20), "the message did not come back over the TLS connection"
        assert got == [b"over TLS"]
        transport.delete_queue(queue)
    finally:
        transport.close(timeout=10)
    # The synchronous operator path (sustainml dlq) uses the same TLS parameters.
    with DlqClient(settings, connect_timeout=20) as client:
        summaries = client.list_queues()
    assert len(summaries) == 8 and not any(s.exists for s in summaries)


def test_client_without_the_ca_fails_verification(tls_node: TlsNode) -> None:
    settings = _settings(tls_node, ca=False)
    with pytest.raises(BrokerUnavailable) as info:
        amqp_transport(settings, "tls-no-ca", connect_timeout=5).connect()
    text = str(info.value)
    assert "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text, text
    # not retried until the connect timeout (a retry cannot fix it), and the hint says what to check
    assert "SUSTAINML_TLS_CA_FILE" in text and "rabbitmq-server -detached" not in text, text
    assert "guest:guest" not in text


def test_wrong_host_name_fails_verification(tls_node: TlsNode) -> None:
    settings = _settings(tls_node, host="127.0.0.1")  # the certificate names only "localhost"
    with pytest.raises(BrokerUnavailable) as info:
        amqp_transport(settings, "tls-wrong-host", connect_timeout=5).connect()
    text = str(info.value)
    assert "mismatch" in text.lower() or "doesn't match" in text.lower(), text
    assert "host name is one the certificate names" in text, text
    with pytest.raises(BrokerUnavailable, match="IP address mismatch"):
        DlqClient(settings, connect_timeout=5).connect()


def test_mutual_tls_requires_the_client_certificate(tls_node: TlsNode) -> None:
    assert tls_node.broker.tls is not None
    if not tls_node.broker.tls.fail_if_no_peer_cert:
        pytest.skip("server-auth node: client certificates are optional there")
    with pytest.raises(BrokerUnavailable):
        amqp_transport(_settings(tls_node, client_cert=False), "tls-no-cert", connect_timeout=5).connect()
    transport = amqp_transport(_settings(tls_node), "tls-cert", connect_timeout=20)
    transport.connect()
    transport.close(timeout=10)


def test_bad_tls_files_are_named() -> None:
    with pytest.raises(TlsConfigError, match=r"SUSTAINML_TLS_CA_FILE='/nonexistent/ca\.pem'"):
        tls_context(TlsFiles(ca_file="/nonexistent/ca.pem"))
    with pytest.raises(TlsConfigError, match="without SUSTAINML_TLS_CERT_FILE"):
        tls_context(TlsFiles(key_file="/x.key"))
    ctx = tls_context(None)
    assert ctx.check_hostname and ctx.verify_mode.name == "CERT_REQUIRED"
