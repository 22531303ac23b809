"""Build and run the shipped implementation of a node (what `sustainml worker <node>` starts)."""

from __future__ import annotations

import importlib
import logging
import sys

from sustainml.config import Settings
from sustainml.topology import resolve_stage
from sustainml.transport.base import BrokerUnavailable, Transport
from sustainml.workers.nodes import NODE_CLASSES
from sustainml.workers.runtime import Node


def shipped_node(
    name: str,
    *,
    settings: Settings,
    transport: Transport | None = None,
    replica_id: str | None = None,
) -> Node:
    """The node class of ``name`` wired to its shipped logic module ``sustainml.workers.logic.<kind>``,
    configured by ``settings`` (the caller's: the CLI's, a deployment's)."""
    stage = resolve_stage(name)
    logic = importlib.import_module(f"sustainml.workers.logic.{stage.kind}")
    cls = NODE_CLASSES[stage.node]
    settings = settings or Settings.from_env()
    # The stage's callbacks bound to this node's settings, so that two deployments can share a process.
    bound = logic.for_settings(settings) if hasattr(logic, "for_settings") else logic
    warm_up = getattr(bound, "warm_up", None)
    if callable(warm_up):
        warm_up()  # e.g. train or load the task encoder now, not on the first task
    return cls(
        callback=bound.task_callback,
        service_callback=bound.configuration_callback,
        settings=settings,
        transport=transport,
        replica_id=replica_id,
    )


def run_shipped(name: str) -> None:
    """Entry point of ``python -m sustainml.workers.<node>``: configured by the environment."""
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        shipped_node(name, settings=settings).spin()
    except BrokerUnavailable as exc:  # the message says what to do; a traceback would only bury it
        logging.getLogger(__name__).error("%s", exc)
        sys.exit(1)
