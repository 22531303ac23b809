"""The Transport contract over a real RabbitMQ broker, with pika.

``AmqpTransport`` (transport.py) is a facade over four parts, each in its own module:

- ``connection``: the **I/O thread**, which runs one pika ``IOLoop`` for the transport's whole life
  and owns every pika object (``SelectConnection``, channels); the maintenance thread that
  reconnects (backoff + jitter); the timer thread behind ``call_later``.
- ``declarer``: exchanges, queues and bindings, remembered and re-declared after a reconnect.
- ``publisher``: asynchronous publisher confirms on one channel, within a bounded window.
- ``consumer``: consumers (one channel and one handler pool each), their deliveries, their
  retirement after ``cancel``.

The rule every part keeps: **only the I/O thread touches pika**. Other threads hand work over
(``Connection.call_soon``) and wait on futures; handlers run on the consumers' pools, never on the
I/O thread, so AMQP heartbeats keep flowing whatever a handler does.

Future callbacks (``add_done_callback``) of publish futures run on the I/O thread: keep them short
and never call a synchronous transport method from them (that raises ``RuntimeError`` rather than
deadlocking). Scheduling an ack or another publish from them is fine.

``failures`` turns pika's errors into messages an operator can act on (importing this package
quiets pika's per-attempt connection logs); ``callbacks`` holds the guards for pika callbacks.
"""

from __future__ import annotations

from sustainml.transport.amqp.consumer import AmqpDelivery
from sustainml.transport.amqp.declarer import queue_arguments
from sustainml.transport.amqp.failures import ChannelError, connect_failure, sanitize_url
from sustainml.transport.amqp.transport import AmqpTransport

__all__ = [
    "AmqpDelivery",
    "AmqpTransport",
    "ChannelError",
    "connect_failure",
    "queue_arguments",
    "sanitize_url",
]
