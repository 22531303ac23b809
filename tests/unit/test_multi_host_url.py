"""Broker URLs naming several cluster nodes (``amqp://u:p@rmq1,rmq2:5672,rmq3/vhost``): split into
one URL per node, shown without credentials, and a transport that fails over to the next node
when one refuses the connection (a closed port on loopback stands for a node that is down)."""

from __future__ import annotations

import socket

import pytest

from sustainml.transport import split_broker_url
from sustainml.transport.amqp import AmqpTransport, sanitize_url


def test_split_keeps_credentials_vhost_and_query_for_every_host() -> None:
    assert split_broker_url("amqp://u:p%40ss@a:5672,b,c:5673/v%2Fx?heartbeat=5") == [
        "amqp://u:p%40ss@a:5672/v%2Fx?heartbeat=5",
        "amqp://u:p%40ss@b/v%2Fx?heartbeat=5",
        "amqp://u:p%40ss@c:5673/v%2Fx?heartbeat=5",
    ]
    assert split_broker_url("amqp://guest:guest@127.0.0.1:5672/") == ["amqp://guest:guest@127.0.0.1:5672/"]
    assert split_broker_url("amqps://h1,h2") == ["amqps://h1", "amqps://h2"]


def test_an_empty_host_is_refused() -> None:
    with pytest.raises(ValueError, match="empty host"):
        split_broker_url("amqp://u:p@a,,b/")


def test_the_safe_form_lists_every_host_and_no_password() -> None:
    safe = sanitize_url("amqp://u:secret@a:5672,b/v?x=1")
    assert safe == "amqp://a:5672,b:5672/v"
    assert "secret" not in safe


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed once the socket goes: connections are refused


@pytest.mark.integration
def test_the_transport_connects_through_the_node_that_answers(amqp_url: str) -> None:
    url = split_broker_url(amqp_url)[0]
    scheme, rest = url.split("://", 1)
    creds, _, hostpart = rest.rpartition("@")
    host_port, _, path = hostpart.partition("/")
    dead = f"127.0.0.1:{_closed_port()}"
    multi = f"{scheme}://{creds}@{dead},{host_port},{dead}/{path}"
    for _ in range(3):  # whichever node it starts with (random), it ends up on the live one
        t = AmqpTransport(multi, name="multi-host-test", connect_timeout=10.0)
        t.connect()
        try:
            assert t.is_open
        finally:
            t.close(timeout=5.0)
