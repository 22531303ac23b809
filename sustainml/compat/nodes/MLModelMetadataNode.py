"""Upstream ``sustainml_py.nodes.MLModelMetadataNode`` on sustainml (see ``sustainml.compat``)."""

from __future__ import annotations

from sustainml.compat.node import CompatNode
from sustainml.workers import nodes


class MLModelMetadataNode(CompatNode, nodes.MLModelMetadataNode):
    """Task encoder, accessor-style callback
    (user_input, node_status, ml_model_metadata)."""


__all__ = ["MLModelMetadataNode"]
