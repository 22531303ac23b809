"""`sustainml bench`: the pipeline measured side by side with bare pika, Celery and Dramatiq.

Modules: ``ours`` (part 1), ``barepika`` (2), ``celery_chain`` and ``dramatiq_chain`` (3, their
frameworks imported only there), ``scaling`` (4), ``memory`` (5), ``report`` (tables, ratios,
machine), ``common`` (figures, percentiles, payload sizes, child processes); ``latency`` (single
tasks one at a time, ``sustainml bench latency``) and ``logic`` (the stage callbacks without
messaging, ``sustainml eval logic``). The bench commands live in ``sustainml.cli.bench``;
docs/performance.md keeps the latest figures.
"""
