"""The six pipeline nodes under the original framework's class names.

Each class only binds the runtime to a stage of ``sustainml.topology.PIPELINE``; the shipped
behaviour lives in ``sustainml.workers.logic.<stage>`` and any user callback can replace it.
"""

from __future__ import annotations

from sustainml.topology import STAGES_BY_NODE
from sustainml.workers.runtime import Node


class MLModelMetadataNode(Node):
    """Task encoder: (user_input, node_status, ml_model_metadata)."""

    STAGE = STAGES_BY_NODE["ML_MODEL_METADATA"]


class AppRequirementsNode(Node):
    """Application requirements: (user_input, node_status, app_requirements)."""

    STAGE = STAGES_BY_NODE["APP_REQUIREMENTS"]


class HardwareConstraintsNode(Node):
    """Hardware constraints: (user_input, node_status, hw_constraints)."""

    STAGE = STAGES_BY_NODE["HW_CONSTRAINTS"]


class MLModelNode(Node):
    """Model provider: (ml_model_metadata, app_requirements, hw_constraints, ml_model_baseline,
    hw_baseline, carbonfootprint_baseline, node_status, ml_model)."""

    STAGE = STAGES_BY_NODE["ML_MODEL"]


class HardwareResourcesNode(Node):
    """Hardware resources: (ml_model, app_requirements, hw_constraints, node_status, hw)."""

    STAGE = STAGES_BY_NODE["HW_RESOURCES"]


class CarbonFootprintNode(Node):
    """Carbon footprint: (ml_model, user_input, hw, node_status, co2)."""

    STAGE = STAGES_BY_NODE["CARBON_FOOTPRINT"]


NODE_CLASSES: dict[str, type[Node]] = {
    cls.STAGE.node: cls
    for cls in (
        MLModelMetadataNode,
        AppRequirementsNode,
        HardwareConstraintsNode,
        MLModelNode,
        HardwareResourcesNode,
        CarbonFootprintNode,
    )
}
