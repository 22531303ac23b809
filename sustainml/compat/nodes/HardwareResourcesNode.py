"""Upstream ``sustainml_py.nodes.HardwareResourcesNode`` on sustainml (see ``sustainml.compat``)."""

from __future__ import annotations

from sustainml.compat.node import CompatNode
from sustainml.workers import nodes


class HardwareResourcesNode(CompatNode, nodes.HardwareResourcesNode):
    """Hardware resources, accessor-style callback
    (ml_model, app_requirements, hw_constraints, node_status, hw)."""


__all__ = ["HardwareResourcesNode"]
