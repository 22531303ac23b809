"""In-process transport: a small broker with RabbitMQ's semantics for what sustainml uses.

``MemoryBroker`` holds exchanges and queues; every ``MemoryTransport`` on it behaves like one AMQP
connection, so an embedded run (orchestrator, six workers and a client in one process) gives each
component its own transport on one shared broker, and closing one transport requeues only *its*
unacknowledged deliveries, as closing an AMQP connection does.

Behaviour mirrored from RabbitMQ 3.10 (checked against a real broker):

- exchanges ``topic`` (``*`` = exactly one word, ``#`` = zero or more words; ``""`` is zero words),
  ``fanout``, ``direct``; the default exchange ``""`` routes to the queue named by the routing key
  and cannot be declared or bound; ``amq.direct``/``amq.fanout``/``amq.topic`` exist;
- a queue bound several times to one exchange receives one copy per publish;
- publishing to a missing exchange fails the future with ``TransportError`` (AMQP ``NOT_FOUND``);
  a mandatory message that reaches no queue fails it with ``Unroutable``;
- queues are FIFO; a requeued message (reject with requeue, or its transport closed) goes back to
  its original position, which for the usual single in-flight message is the head, and is
  flagged ``redelivered``;
- competing consumers get messages round robin among those with free prefetch; ``prefetch`` <= 0
  means unlimited (AMQP ``prefetch_count=0``);
- dead-lettering (reject without requeue, handler exception, message or queue TTL expiry at the
  head, ``max_length`` overflow which drops the head, quorum ``delivery_limit``) republishes to
  ``dead_letter_exchange`` with ``dead_letter_routing_key`` or the original key, adds ``x-death``
  (``count``, ``reason``, ``queue``, ``time``, ``exchange``, ``routing-keys``,
  ``original-expiration``) and ``x-first-death-*`` headers, and drops the ``expiration``; a
  missing dead-letter exchange drops the message (logged), and dead-letter cycles without a
  rejection are dropped;
- quorum queues add ``x-delivery-count`` (returns so far) to redeliveries and dead-letter with
  reason ``delivery_limit`` once a message was returned more than ``delivery_limit`` times;
- ``expires_ms`` (x-expires) deletes a queue that stayed without consumers and without being
  re-declared for that long;
- re-declaring an exchange or queue with different arguments fails (``PRECONDITION_FAILED``).

Not modelled: persistence (nothing survives the process), exclusive/auto-delete queues, headers
exchanges, exchange-to-exchange bindings, publisher flow control, consumer timeouts; ``max_length``
is enforced when messages are published or dead-lettered in, not when they are requeued.

Threading: one lock per broker guards all state. Routing and dispatch run under it on whichever
thread changed the state (publish, settle, consume, a timer); a dispatch only submits the delivery
to the consumer's own ``ThreadPoolExecutor`` of ``concurrency`` threads, so handlers never run on
the publisher's thread nor under the lock. TTL expiry, x-expires and ``call_later`` use timer
threads that sleep on a condition until the next due time (no polling).
"""

from sustainml.transport.memory.broker import MemoryBroker, MemoryDelivery
from sustainml.transport.memory.state import QueueNotFound, topic_matches
from sustainml.transport.memory.transport import MemoryTransport

__all__ = ["MemoryBroker", "MemoryDelivery", "MemoryTransport", "QueueNotFound", "topic_matches"]
