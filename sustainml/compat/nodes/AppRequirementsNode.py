"""Upstream ``sustainml_py.nodes.AppRequirementsNode`` on sustainml (see ``sustainml.compat``)."""

from __future__ import annotations

from sustainml.compat.node import CompatNode
from sustainml.workers import nodes


class AppRequirementsNode(CompatNode, nodes.AppRequirementsNode):
    """Application requirements, accessor-style callback
    (user_input, node_status, app_requirements)."""


__all__ = ["AppRequirementsNode"]
