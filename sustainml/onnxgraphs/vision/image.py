"""Image input and classification head shared by the vision architectures."""

from __future__ import annotations

from collections.abc import Sequence

from sustainml.onnxgraphs.graph import BATCH
from sustainml.onnxgraphs.layers import GraphBuilder


def image_input(b: GraphBuilder, shape: Sequence[int], name: str = "pixel_values") -> str:
    return b.input(name, (BATCH, *[int(d) for d in shape[1:]]))


def classifier_head(
    b: GraphBuilder, x: str, classes: int, hidden: Sequence[int] = (), act: str = "relu"
) -> str:
    """Global average pool, flatten, optional hidden layers, final linear layer."""
    y = b.flatten(b.global_avgpool(x))
    for i, h in enumerate(hidden):
        y = b.act(b.gemm(y, h, name=f"classifier.{i}"), act)
    return b.gemm(y, classes, name="fc")
