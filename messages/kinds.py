"""Record kinds and node identifiers: the names the wire format and the pipeline share.

A record kind is the snake-case name of a typed record that flows through the pipeline; the
topology names its exchanges after them and the codec keys a task's context by them.
"""

from __future__ import annotations

from enum import IntEnum


class NodeID(IntEnum):
    """The original framework's node identifiers; they travel on the wire and through REST."""

    APP_REQUIREMENTS = 0
    CARBON_FOOTPRINT = 1
    HW_CONSTRAINTS = 2
    HW_RESOURCES = 3
    ML_MODEL_METADATA = 4
    ML_MODEL = 5
    MAX = 6
    ORCHESTRATOR = 7
    UNKNOWN = 8


USER_INPUT = "user_input"
ML_MODEL_METADATA = "ml_model_metadata"
APP_REQUIREMENTS = "app_requirements"
HW_CONSTRAINTS = "hw_constraints"
ML_MODEL = "ml_model"
HW_RESOURCES = "hw_resources"
CARBON_FOOTPRINT = "carbon_footprint"

RECORD_KINDS: tuple[str, ...] = (
    USER_INPUT,
    ML_MODEL_METADATA,
    APP_REQUIREMENTS,
    HW_CONSTRAINTS,
    ML_MODEL,
    HW_RESOURCES,
    CARBON_FOOTPRINT,
)

# The stage that produces each kind but USER_INPUT, in pipeline order; a stage's node name is its
# kind in capitals. The message model names stages through these, not through the topology above it.
NODE_OF_KIND: dict[str, str] = {kind: kind.upper() for kind in RECORD_KINDS[1:]}
KIND_OF_NODE: dict[str, str] = {node: kind for kind, node in NODE_OF_KIND.items()}

# Records of the previous iteration that the orchestrator attaches to every task (upstream
# "baselines"); a callback input named "<kind>_baseline" receives envelope.baselines[<kind>].
BASELINE_KINDS: tuple[str, ...] = (ML_MODEL, HW_RESOURCES, CARBON_FOOTPRINT)
BASELINE_SUFFIX = "_baseline"
