"""Per-operator counting rules of the static analysis (``analyze``): MACs and FLOPs of one node.

Counting rules (the convention is MACs internally, FLOPs = 2 x MACs for the linear layers):

| op | MACs | FLOPs |
|---|---|---|
| Conv | N x C_out x prod(out spatial) x C_in/groups x prod(kernel) | 2 x MACs |
| ConvTranspose | N x C_in x prod(in spatial) x C_out/groups x prod(kernel) | 2 x MACs |
| MatMul / Gemm (and their integer/QLinear forms) | prod(output) x K | 2 x MACs |
| Einsum (two operands) | product of the sizes of every index letter | 2 x MACs |
| LSTM / GRU / RNN | seq x batch x directions x gates x hidden x (input + hidden) | 2 x MACs + gate math |
| element-wise arithmetic, Relu, Max, Min, Where, Clip ... | 0 | 1 per output element |
| Exp, Log, Erf, Tanh, Sigmoid, Sqrt, Pow, Sin, Cos, Reciprocal | 0 | 4 per output element |
| HardSigmoid 3, HardSwish 4, LeakyRelu 2, Gelu 8 (per element) | 0 | as listed |
| Softmax / LogSoftmax | 0 | 5 per element (max, sub, exp, sum, div) |
| LayerNormalization, InstanceNormalization, GroupNormalization | 0 | 8 per element |
| BatchNormalization (inference) | 0 | 2 per element |
| Reduce* | 0 | 1 per input element |
| MaxPool / AveragePool | 0 | prod(kernel) per output element |
| GlobalAveragePool / GlobalMaxPool | 0 | 1 per input element |
| Resize | 0 | 1 (nearest), 4 (linear), 16 (cubic) per output element |
| data movement (Reshape, Transpose, Concat, Gather, Slice, Pad ...) | 0 | 0 |
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import onnx
from onnx import TensorProto, helper

_ELEMENTWISE_1 = {
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Relu",
    "Max",
    "Min",
    "Where",
    "Clip",
    "Neg",
    "Abs",
    "PRelu",
    "Equal",
    "Greater",
    "Less",
    "GreaterOrEqual",
    "LessOrEqual",
    "And",
    "Or",
    "Not",
    "Xor",
    "Sign",
    "Floor",
    "Ceil",
    "Round",
    "Mod",
    "Cast",
    "CumSum",
    "BitShift",
    "IsNaN",
    "IsInf",
    "Selu",
    "Elu",
    "Celu",
    "ThresholdedRelu",
    "Softsign",
    "Shrink",
}
_ELEMENTWISE_4 = {
    "Exp",
    "Log",
    "Erf",
    "Tanh",
    "Sigmoid",
    "Sqrt",
    "Pow",
    "Sin",
    "Cos",
    "Tan",
    "Reciprocal",
    "Softplus",
    "Asin",
    "Acos",
    "Atan",
    "Sinh",
    "Cosh",
    "Asinh",
    "Acosh",
    "Atanh",
    "Mish",
}
_ELEMENTWISE_OTHER = {"HardSigmoid": 3, "HardSwish": 4, "LeakyRelu": 2, "Gelu": 8, "FastGelu": 8}
_NORM_8 = {"LayerNormalization", "InstanceNormalization", "GroupNormalization", "SkipLayerNormalization"}
VIEWS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}
FREE = {"Shape", "Size", "Constant", "ConstantOfShape"}
_MOVE = {
    "Transpose",
    "Concat",
    "Gather",
    "GatherElements",
    "GatherND",
    "Slice",
    "Pad",
    "Expand",
    "Tile",
    "Split",
    "ScatterND",
    "ScatterElements",
    "DepthToSpace",
    "SpaceToDepth",
    "Range",
    "NonZero",
    "TopK",
    "ArgMax",
    "ArgMin",
    "OneHot",
    "Trilu",
    "EyeLike",
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "ReverseSequence",
    "Compress",
    "Unique",
    "NonMaxSuppression",
}
PARAM_TYPES = {
    TensorProto.FLOAT,
    TensorProto.FLOAT16,
    TensorProto.BFLOAT16,
    TensorProto.DOUBLE,
    TensorProto.INT8,
    TensorProto.UINT8,
    TensorProto.INT4,
    TensorProto.UINT4,
    TensorProto.FLOAT8E4M3FN,
    TensorProto.FLOAT8E5M2,
}


def _itemsize(elem_type: int) -> float:
    if elem_type in (TensorProto.INT4, TensorProto.UINT4):
        return 0.5
    if elem_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return 0.0
    return float(helper.tensor_dtype_to_np_dtype(elem_type).itemsize)


@dataclass
class TensorInfo:
    """Shape and element type of one tensor after shape inference."""

    shape: tuple[int, ...]
    elem_type: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return int(self.numel * _itemsize(self.elem_type))


def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def node_compute(node: onnx.NodeProto, t: dict[str, TensorInfo]) -> tuple[int, int, bool]:
    """(MACs, FLOPs, modelled) of one node."""
    op = node.op_type

    def shp(i: int) -> tuple[int, ...]:
        return t[node.input[i]].shape

    def out_numel() -> int:
        return sum(t[o].numel for o in node.output if o in t)

    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w_idx = 3 if op == "QLinearConv" else 1
        w = shp(w_idx)
        y = t[node.output[0]].shape
        macs = math.prod(y) * math.prod(w[1:])
        return macs, 2 * macs, True
    if op == "ConvTranspose":
        # weight is (C_in, C_out/groups, k...): each input element meets C_out/groups x prod(k) taps
        x, w = shp(0), shp(1)
        macs = math.prod(x) * math.prod(w[1:])
        return macs, 2 * macs, True
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        a = shp(0)
        k = a[-1]
        macs = out_numel() * k
        return macs, 2 * macs, True
    if op == "Gemm":
        a = shp(0)
        k = a[0] if int(attr(node, "transA", 0)) else a[1]
        macs = out_numel() * k
        return macs, 2 * macs, True
    if op == "Einsum":
        raw = attr(node, "equation", b"")
        eq = (raw.decode() if isinstance(raw, bytes) else str(raw)).replace(" ", "").replace("...", "")
        terms = eq.split("->")[0].split(",")
        sizes: dict[str, int] = {}
        for term, name in zip(terms, node.input, strict=False):
            dims_ = t[name].shape[len(t[name].shape) - len(term) :]
            sizes.update(zip(term, dims_, strict=False))
        if len(terms) < 2:
            return 0, out_numel(), True
        macs = math.prod(sizes.values())
        return macs, 2 * macs, True
    if op in ("LSTM", "GRU", "RNN"):
        gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
        x, w = shp(0), shp(1)
        layout = int(attr(node, "layout", 0))
        seq, batch = (x[0], x[1]) if layout == 0 else (x[1], x[0])
        dirs, hidden, inp = w[0], w[1] // gates, w[2]
        macs = seq * batch * dirs * gates * hidden * (inp + hidden)
        gate_flops = seq * batch * dirs * hidden * {"LSTM": 12, "GRU": 10, "RNN": 2}[op]
        return macs, 2 * macs + gate_flops, True
    if op in _ELEMENTWISE_1:
        return 0, out_numel(), True
    if op in _ELEMENTWISE_4:
        return 0, 4 * out_numel(), True
    if op in _ELEMENTWISE_OTHER:
        return 0, _ELEMENTWISE_OTHER[op] * out_numel(), True
    if op in ("Sum", "Mean"):
        return 0, max(len(node.input) - 1, 1) * out_numel(), True
    if op in ("Softmax", "LogSoftmax"):
        return 0, 5 * out_numel(), True
    if op in _NORM_8:
        return 0, 8 * t[node.input[0]].numel, True
    if op == "BatchNormalization":
        return 0, 2 * t[node.input[0]].numel, True
    if op.startswith("Reduce") or op in ("LpNormalization", "MeanVarianceNormalization"):
        return 0, t[node.input[0]].numel, True
    if op in ("MaxPool", "AveragePool", "LpPool"):
        return 0, out_numel() * math.prod(attr(node, "kernel_shape", [1])), True
    if op in ("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"):
        return 0, t[node.input[0]].numel, True
    if op in ("Resize", "Upsample"):
        mode = attr(node, "mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        return 0, {"nearest": 1, "linear": 4, "cubic": 16}.get(mode, 1) * out_numel(), True
    if op in VIEWS or op in FREE or op in _MOVE:
        return 0, 0, True
    return 0, 0, False


__all__ = ["FREE", "PARAM_TYPES", "VIEWS", "TensorInfo", "attr", "node_compute"]
