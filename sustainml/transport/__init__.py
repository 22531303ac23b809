"""Transports: the broker contract (``base``), RabbitMQ via pika (``amqp``), in-process (``memory``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sustainml.config import Settings
    from sustainml.transport.base import Transport


def amqp_transport(settings: Settings, name: str, *, connect_timeout: float = 10.0) -> Transport:
    """The RabbitMQ transport for ``settings`` (pika is imported only when one is made).
    ``name`` shows as the connection name in the broker's management tools."""
    from sustainml.transport.amqp import AmqpTransport

    return AmqpTransport(
        settings.broker_url, heartbeat=settings.amqp_heartbeat, name=name, connect_timeout=connect_timeout
    )
