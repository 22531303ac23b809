"""Upstream ``sustainml_py.nodes.MLModelNode`` on sustainml (see ``sustainml.compat``)."""

from __future__ import annotations

from sustainml.compat.node import CompatNode
from sustainml.workers import nodes


class MLModelNode(CompatNode, nodes.MLModelNode):
    """Model provider, accessor-style callback
    (ml_model_metadata, app_requirements, hw_constraints, ml_model_baseline,
    hw_baseline, carbonfootprint_baseline, node_status, ml_model)."""


__all__ = ["MLModelNode"]
