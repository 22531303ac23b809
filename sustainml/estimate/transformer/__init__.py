"""Analytic cost model of a transformer: parameters, FLOPs, bytes and memory from its shape.

``spec`` holds the shape (``TransformerSpec``) and its costs, with the counting rules and their
sources; ``architecture`` reads a spec from an ``architecture`` object or a Hugging Face
``config.json``. Pure Python (no numpy), so every worker may import it:

    from sustainml.estimate import transformer
    spec = transformer.from_architecture({"layers": 32, "hidden": 4096, ...})
    spec.parameters(), spec.prefill_flops(512), spec.decode_step(1024, batch=8)
"""

from __future__ import annotations

from sustainml.estimate.transformer.architecture import from_architecture, from_hf_config, with_context
from sustainml.estimate.transformer.spec import (
    ACTIVATION_BYTES_PER_TOKEN_HIDDEN,
    ADAM_MIXED_BYTES_PER_PARAM,
    BYTES_PER_VALUE,
    RECOMPUTE_BYTES_PER_TOKEN_HIDDEN,
    ArchitectureError,
    DecodeStep,
    TrainingMemory,
    TransformerSpec,
    bytes_per_value,
    human,
)

__all__ = [
    "ACTIVATION_BYTES_PER_TOKEN_HIDDEN",
    "ADAM_MIXED_BYTES_PER_PARAM",
    "BYTES_PER_VALUE",
    "RECOMPUTE_BYTES_PER_TOKEN_HIDDEN",
    "ArchitectureError",
    "DecodeStep",
    "TrainingMemory",
    "TransformerSpec",
    "bytes_per_value",
    "from_architecture",
    "from_hf_config",
    "human",
    "with_context",
]
