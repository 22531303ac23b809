"""The ``sustainml`` command line, one module per command group (``main`` gathers them).

This package imports nothing itself, so ``python -m sustainml.cli.health`` (the container and
Kubernetes probes) loads only the probe, not the whole CLI. The console script is
``sustainml.cli.main:main``; ``python -m sustainml.cli`` runs the same command.
"""
