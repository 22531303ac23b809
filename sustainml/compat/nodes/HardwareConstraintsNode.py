"""Upstream ``sustainml_py.nodes.HardwareConstraintsNode`` on sustainml (see ``sustainml.compat``)."""

from __future__ import annotations

from sustainml.compat.node import CompatNode
from sustainml.workers import nodes


class HardwareConstraintsNode(CompatNode, nodes.HardwareConstraintsNode):
    """Hardware constraints, accessor-style callback
    (user_input, node_status, hw_constraints)."""


__all__ = ["HardwareConstraintsNode"]
