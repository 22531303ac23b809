"""sustainml: propose an ML model, hardware and footprint through a pipeline of RabbitMQ workers.

Core package: settings, pipeline topology, transports and the CLI. The message model lives in
``sustainml.messages``, the node runtime and shipped nodes in ``sustainml.workers`` and the
orchestrator in ``sustainml.orchestrator``.
"""

__version__ = "0.1.0"
