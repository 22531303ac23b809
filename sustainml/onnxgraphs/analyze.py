"""Static cost analysis of any ONNX model: MACs, FLOPs, parameters, bytes moved, activation memory.

``analyze(model, batch_size=1)`` fixes the symbolic dimensions, runs ONNX shape inference and
walks the nodes once. It works on our synthetic graphs and on users' models alike, and never
loads external weight data (only tensor shapes are needed).

The per-operator MACs and FLOPs follow the counting rules of ``opcosts`` (MACs internally,
FLOPs = 2 x MACs for the linear layers).

Bytes moved by an op = activation inputs read + weights read + outputs written, at their dtype.
A Gather from a weight table reads only the gathered rows. Views (Reshape, Flatten, Squeeze,
Unsqueeze, Identity, Dropout) and shape ops (Shape, Size, Constant) move nothing. Parameters are
the elements of initializers and Constant tensors of floating-point or 8/4-bit integer type with
more than one element; int32/int64/bool tensors (shapes, indices, masks, zero points) and scalars
(epsilons, scales) are reported as other constants.

Activation memory: ``activation_bytes`` is the sum of every tensor produced at run time (plus
the graph inputs); ``peak_activation_bytes`` simulates execution in graph order, allocating an
output when its node runs and freeing a tensor after its last consumer (views share the buffer
of their source); graph outputs stay alive to the end.

Batch: dim 0 of every input that is symbolic (or 0/-1) becomes ``batch_size``, and so does any dim
carrying the same symbol or a usual batch name (``batch``, ``batch_size``, ``N``, ``B``, ``bs``);
other symbolic dims need a value in ``dims`` (e.g. ``{"sequence": 128}``). A model with a fixed batch of 1 is
analysed at batch 1 and its activation-dependent costs are scaled by ``batch_size`` (weights
are read once per batch): ``batch_mode`` says which applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import onnx

BatchMode = Literal["symbolic", "scaled", "fixed"]


@dataclass(frozen=True)
class OpCost:
    name: str
    op_type: str
    macs: int
    flops: int
    input_bytes: int  # activations read
    weight_bytes: int  # initializers / constants read
    output_bytes: int
    output_shapes: tuple[tuple[int, ...], ...]

    @property
    def bytes_moved(self) -> int:
        return self.input_bytes + self.weight_bytes + self.output_bytes

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte moved (0 for ops that move nothing)."""
        return self.flops / self.bytes_moved if self.bytes_moved else 0.0


@dataclass(frozen=True)
class OpTypeSummary:
    op_type: str
    count: int
    macs: int
    flops: int
    bytes_moved: int


@dataclass(frozen=True)
class ModelReport:
    batch_size: int
    batch_mode: BatchMode
    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]
    parameters: int
    parameter_bytes: int
    other_constant_bytes: int
    macs: int
    flops: int
    bytes_moved: int
    activation_bytes: int
    peak_activation_bytes: int
    ops: tuple[OpCost, ...]
    unsupported_ops: tuple[str, ...] = ()  # op types whose compute is not modelled (counted as 0)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def weight_bytes(self) -> int:
        return self.parameter_bytes

    def by_op_type(self) -> list[OpTypeSummary]:
        agg: dict[str, list[int]] = {}
        for op in self.ops:
            a = agg.setdefault(op.op_type, [0, 0, 0, 0])
            a[0] += 1
            a[1] += op.macs
            a[2] += op.flops
            a[3] += op.bytes_moved
        rows = [OpTypeSummary(k, v[0], v[1], v[2], v[3]) for k, v in agg.items()]
        return sorted(rows, key=lambda r: (-r.flops, -r.bytes_moved, r.op_type))

    def to_dict(self, with_ops: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d["ops"] = (
            [asdict(o) | {"bytes_moved": o.bytes_moved} for o in self.ops] if with_ops else len(self.ops)
        )
        d["by_op_type"] = [asdict(s) for s in self.by_op_type()]
        return d


class AnalysisError(ValueError):
    """The model cannot be analysed (unresolved dimensions, failed shape inference ...)."""


def analyze(
    model: onnx.ModelProto | str | Path | bytes,
    batch_size: int = 1,
    dims: Mapping[str, int] | None = None,
) -> ModelReport:
    """Analyse ``model`` (proto, path or serialized bytes) at ``batch_size``. The analysis (and
    onnx, ~20 MB) is imported on the first call: the estimators that only read reports, and the
    idle workers, never load it."""
    from sustainml.onnxgraphs import analysis

    return analysis.analyze(model, batch_size, dims)


__all__ = ["AnalysisError", "BatchMode", "ModelReport", "OpCost", "OpTypeSummary", "analyze"]
