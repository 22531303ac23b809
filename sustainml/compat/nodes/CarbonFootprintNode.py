"""Upstream ``sustainml_py.nodes.CarbonFootprintNode`` on sustainml (see ``sustainml.compat``)."""

from __future__ import annotations

from sustainml.compat.node import CompatNode
from sustainml.workers import nodes


class CarbonFootprintNode(CompatNode, nodes.CarbonFootprintNode):
    """Carbon footprint, accessor-style callback
    (ml_model, user_input, hw, node_status, co2)."""


__all__ = ["CarbonFootprintNode"]
