"""Graph-building helpers: a small ONNX graph builder that tracks tensor shapes as it goes.

Builders describe an architecture layer by layer (``conv``, ``linear``, ``attention`` ...); the
builder records nodes, declares parameters as *weight specs* (shape + initialisation, no data)
and materialises the data only when the model is written, so a 400 M-parameter graph never sits
in memory twice. Every graph has a symbolic batch dimension (``"batch"``) on dim 0 of its inputs:
reshapes copy it with ``0`` so the same file runs at any batch size.

Inference-time conventions (documented once here, used by every builder):
- BatchNorm is folded into the preceding convolution (conv bias), as inference exports do.
- GELU is the exact erf form (the tanh approximation has the same shapes and MACs).
- Attention is written out as MatMul/Softmax/MatMul, so the analyser sees its MACs.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
BATCH = "batch"

Dim = int | str
Shape = tuple[Dim, ...]
Init = Literal["uniform", "ones", "zeros"]
WeightsMode = Literal["random", "zeros"]

_NP_TO_ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.bool_): TensorProto.BOOL,
}


class GraphError(ValueError):
    """A builder asked for something inconsistent (shape mismatch, unknown tensor)."""


@dataclass(frozen=True)
class WeightSpec:
    """A parameter tensor: its data is generated when the model is written."""

    name: str
    shape: tuple[int, ...]
    init: Init
    bound: float  # uniform(-bound, bound) for ``init == "uniform"``

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return 4 * self.numel


@dataclass
class GraphBuilder:
    """Accumulates nodes, inputs, outputs, constants and weight specs of one graph."""

    name: str
    seed: int = 0
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    outputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    weights: list[WeightSpec] = field(default_factory=list)
    constants: list[TensorProto] = field(default_factory=list)
    shapes: dict[str, Shape] = field(default_factory=dict)
    dtypes: dict[str, int] = field(default_factory=dict)
    input_ranges: dict[str, int] = field(default_factory=dict)  # int inputs: exclusive upper bound
    _counter: dict[str, int] = field(default_factory=dict)
    _scope: list[str] = field(default_factory=list)
    _const_cache: dict[tuple[str, bytes, tuple[int, ...]], str] = field(default_factory=dict)

    # ------------------------------------------------------------------ naming and bookkeeping
    @contextmanager
    def scope(self, name: str) -> Iterator[None]:
        self._scope.append(name)
        try:
            yield
        finally:
            self._scope.pop()

    def _fresh(self, base: str) -> str:
        prefix = ".".join([*self._scope, base])
        n = self._counter.get(prefix, 0)
        self._counter[prefix] = n + 1
        return prefix if n == 0 else f"{prefix}_{n}"

    def shape(self, x: str) -> Shape:
        try:
            return self.shapes[x]
        except KeyError:
            raise GraphError(f"{self.name}: unknown tensor {x!r}") from None

    def channels(self, x: str, axis: int = 1) -> int:
        dim = self.shape(x)[axis]
        if not isinstance(dim, int):
            raise GraphError(f"{self.name}: dim {axis} of {x!r} is symbolic")
        return dim

    def input(self, name: str, shape: Shape, dtype: int = TensorProto.FLOAT, high: int | None = None) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, dtype, list(shape)))
        self.shapes[name] = shape
        self.dtypes[name] = dtype
        if high is not None:
            self.input_ranges[name] = high
        return name

    def output(self, x: str, name: str | None = None) -> str:
        if name is not None and name != x:
            x = self.op("Identity", [x], self.shape(x), out=name)
        self.outputs.append(
            helper.make_tensor_value_info(x, self.dtypes.get(x, TensorProto.FLOAT), list(self.shape(x)))
        )
        return x

    def param(
        self,
        base: str,
        shape: Sequence[int],
        init: Init = "uniform",
        fan_in: int | None = None,
        bound: float | None = None,
    ) -> str:
        name = self._fresh(base)
        dims = tuple(int(d) for d in shape)
        if fan_in is None:
            fan_in = dims[1] * math.prod(dims[2:]) if len(dims) > 1 else dims[0]
        if bound is None:
            bound = 1.0 / math.sqrt(max(fan_in, 1))
        self.weights.append(WeightSpec(name, dims, init, bound))
        self.shapes[name] = dims
        self.dtypes[name] = TensorProto.FLOAT
        return name

    def embedding_table(self, base: str, rows: int, dim: int) -> str:
        # Embedding tables are initialised like BERT's (std 0.02 -> uniform bound 0.02 * sqrt(3)).
        return self.param(base, (rows, dim), bound=0.02 * math.sqrt(3.0))

    def const(
        self, value: np.ndarray | np.generic | float | int | bool | Sequence[int], base: str = "const"
    ) -> str:
        """A small exact constant (shapes, axes, masks, scalars); identical values are shared."""
        arr = np.asarray(value)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        elif arr.dtype.kind == "i":
            arr = arr.astype(np.int64)
        key = (arr.dtype.str, arr.tobytes(), arr.shape)
        cached = self._const_cache.get(key)
        if cached is not None:
            return cached
        name = f"{base}_{len(self.constants)}"
        tensor = numpy_helper.from_array(arr, name)
        self.constants.append(tensor)
        self._const_cache[key] = name
        self.shapes[name] = tuple(int(d) for d in arr.shape)
        self.dtypes[name] = _NP_TO_ONNX[arr.dtype]
        return name

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        shape: Shape,
        out: str | None = None,
        dtype: int = TensorProto.FLOAT,
        **attrs: Any,
    ) -> str:
        name = out or self._fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=f"{name}/{op_type}", **attrs))
        self.shapes[name] = shape
        self.dtypes[name] = dtype
        return name

    # ------------------------------------------------------------------ elementwise and activations
    def _broadcast(self, a: Shape, b: Shape) -> Shape:
        n = max(len(a), len(b))
        pa = (1,) * (n - len(a)) + tuple(a)
        pb = (1,) * (n - len(b)) + tuple(b)
        out: list[Dim] = []
        for x, y in zip(pa, pb, strict=True):
            if x == y or y == 1:
                out.append(x)
            elif x == 1:
                out.append(y)
            else:
                raise GraphError(f"{self.name}: cannot broadcast {a} with {b}")
        return tuple(out)

    def binary(self, op_type: str, a: str, b: str) -> str:
        return self.op(op_type, [a, b], self._broadcast(self.shape(a), self.shape(b)))

    def add(self, a: str, b: str) -> str:
        return self.binary("Add", a, b)

    def mul(self, a: str, b: str) -> str:
        return self.binary("Mul", a, b)

    def sub(self, a: str, b: str) -> str:
        return self.binary("Sub", a, b)

    def div(self, a: str, b: str) -> str:
        return self.binary("Div", a, b)

    def unary(self, op_type: str, x: str, **attrs: Any) -> str:
        return self.op(op_type, [x], self.shape(x), **attrs)

    def relu(self, x: str) -> str:
        return self.unary("Relu", x)

    def relu6(self, x: str) -> str:
        return self.op("Clip", [x, self.const(np.float32(0.0)), self.const(np.float32(6.0))], self.shape(x))

    def sigmoid(self, x: str) -> str:
        return self.unary("Sigmoid", x)

    def tanh(self, x: str) -> str:
        return self.unary("Tanh", x)

    def silu(self, x: str) -> str:
        return self.mul(x, self.sigmoid(x))

    def hardswish(self, x: str) -> str:
        return self.unary("HardSwish", x)

    def hardsigmoid(self, x: str) -> str:
        return self.unary("HardSigmoid", x, alpha=1.0 / 6.0, beta=0.5)

    def leaky_relu(self, x: str, alpha: float = 0.1) -> str:
        return self.unary("LeakyRelu", x, alpha=alpha)

    def gelu(self, x: str) -> str:
        inner = self.unary("Erf", self.div(x, self.const(np.float32(math.sqrt(2.0)))))
        return self.mul(
            self.mul(x, self.add(inner, self.const(np.float32(1.0)))), self.const(np.float32(0.5))
        )

    def act(self, x: str, kind: str | None) -> str:
        if kind is None or kind == "none":
            return x
        fn = {
            "relu": self.relu,
            "relu6": self.relu6,
            "silu": self.silu,
            "swish": self.silu,
            "hardswish": self.hardswish,
            "hardsigmoid": self.hardsigmoid,
            "gelu": self.gelu,
            "sigmoid": self.sigmoid,
            "tanh": self.tanh,
            "leaky_relu": self.leaky_relu,
        }.get(kind)
        if fn is None:
            raise GraphError(f"{self.name}: unknown activation {kind!r}")
        return fn(x)

    # ------------------------------------------------------------------ convolution and pooling
    @staticmethod
    def _conv_out(size: int, k: int, stride: int, pad_lo: int, pad_hi: int, dilation: int) -> int:
        return (size + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1

    def conv(
        self,
        x: str,
        cout: int,
        k: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        pad: int | Sequence[int] | None = None,
        groups: int = 1,
        dilation: int | Sequence[int] = 1,
        bias: bool = True,
        name: str = "conv",
    ) -> str:
        """N-d convolution (1-d, 2-d or 3-d from the input rank); ``pad=None`` means 'same' for odd k."""
        shape = self.shape(x)
        nd = len(shape) - 2
        ks = [k] * nd if isinstance(k, int) else list(k)
        ss = [stride] * nd if isinstance(stride, int) else list(stride)
        ds = [dilation] * nd if isinstance(dilation, int) else list(dilation)
        if pad is None:
            ps = [d * (kk - 1) // 2 for kk, d in zip(ks, ds, strict=True)]
        else:
            ps = [pad] * nd if isinstance(pad, int) else list(pad)
        pads = ps + ps if len(ps) == nd else ps
        cin = self.channels(x)
        if cin % groups or cout % groups:
            raise GraphError(f"{self.name}: conv {cin}->{cout} not divisible by groups={groups}")
        w = self.param(f"{name}.weight", (cout, cin // groups, *ks))
        ins = [x, w]
        if bias:
            ins.append(self.param(f"{name}.bias", (cout,), init="zeros"))
        spatial = [
            self._conv_out(int(shape[2 + i]), ks[i], ss[i], pads[i], pads[nd + i], ds[i]) for i in range(nd)
        ]
        return self.op(
            "Conv",
            ins,
            (shape[0], cout, *spatial),
            kernel_shape=ks,
            strides=ss,
            pads=pads,
            dilations=ds,
            group=groups,
        )

    def conv_act(
        self,
        x: str,
        cout: int,
        k: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        act: str | None = "relu",
        groups: int = 1,
        pad: int | Sequence[int] | None = None,
        dilation: int | Sequence[int] = 1,
        name: str = "conv",
    ) -> str:
        """Conv + folded BatchNorm + activation (the inference form of Conv-BN-Act)."""
        y = self.conv(x, cout, k, stride, pad=pad, groups=groups, dilation=dilation, bias=True, name=name)
        return self.act(y, act)

    def conv_transpose(
        self, x: str, cout: int, k: int, stride: int, pad: int = 0, bias: bool = True, name: str = "deconv"
    ) -> str:
        shape = self.shape(x)
        nd = len(shape) - 2
        cin = self.channels(x)
        w = self.param(f"{name}.weight", (cin, cout, *([k] * nd)), fan_in=cout * k**nd)
        ins = [x, w]
        if bias:
            ins.append(self.param(f"{name}.bias", (cout,), init="zeros"))
        spatial = [(int(shape[2 + i]) - 1) * stride - 2 * pad + k for i in range(nd)]
        return self.op(
            "ConvTranspose",
            ins,
            (shape[0], cout, *spatial),
            kernel_shape=[k] * nd,
            strides=[stride] * nd,
            pads=[pad] * (2 * nd),
        )

    def pool(
        self,
        op_type: str,
        x: str,
        k: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        pad: int | Sequence[int] = 0,
        ceil: bool = False,
    ) -> str:
        shape = self.shape(x)
        nd = len(shape) - 2
        ks = [k] * nd if isinstance(k, int) else list(k)
        st = ks if stride is None else ([stride] * nd if isinstance(stride, int) else list(stride))
        ps = [pad] * nd if isinstance(pad, int) else list(pad)
        spatial = []
        for i in range(nd):
            num = int(shape[2 + i]) + 2 * ps[i] - ks[i]
            spatial.append((-(-num // st[i]) if ceil else num // st[i]) + 1)
        attrs: dict[str, Any] = {"kernel_shape": ks, "strides": st, "pads": ps + ps}
        if ceil:
            attrs["ceil_mode"] = 1
        if op_type == "AveragePool":
            attrs["count_include_pad"] = 0
        return self.op(op_type, [x], (shape[0], shape[1], *spatial), **attrs)

    def maxpool(
        self, x: str, k: int | Sequence[int], stride: int | Sequence[int] | None = None, pad: int = 0
    ) -> str:
        return self.pool("MaxPool", x, k, stride, pad)

    def avgpool(
        self, x: str, k: int | Sequence[int], stride: int | Sequence[int] | None = None, pad: int = 0
    ) -> str:
        return self.pool("AveragePool", x, k, stride, pad)

    def global_avgpool(self, x: str) -> str:
        shape = self.shape(x)
        return self.op("GlobalAveragePool", [x], (shape[0], shape[1], *([1] * (len(shape) - 2))))

    def global_maxpool(self, x: str) -> str:
        shape = self.shape(x)
        return self.op("GlobalMaxPool", [x], (shape[0], shape[1], *([1] * (len(shape) - 2))))

    def upsample(self, x: str, scale: int | Sequence[int], mode: str = "nearest") -> str:
        shape = self.shape(x)
        nd = len(shape) - 2
        sc = [scale] * nd if isinstance(scale, int) else list(scale)
        scales = self.const(np.array([1.0, 1.0, *sc], dtype=np.float32))
        spatial = [int(shape[2 + i]) * sc[i] for i in range(nd)]
        attrs: dict[str, Any] = {"mode": mode}
        if mode == "nearest":
            attrs["nearest_mode"] = "floor"
            attrs["coordinate_transformation_mode"] = "asymmetric"
        return self.op("Resize", [x, "", scales], (shape[0], shape[1], *spatial), **attrs)

    def resize_to(self, x: str, size: Sequence[int], mode: str = "linear") -> str:
        shape = self.shape(x)
        # 'sizes' must carry the batch: build it from Shape(x)[0] so batch stays symbolic.
        batch = self.op("Shape", [x], (1,), dtype=TensorProto.INT64, start=0, end=1)
        tail = self.const(np.array([int(shape[1]), *size], dtype=np.int64))
        full = self.op("Concat", [batch, tail], (len(size) + 2,), dtype=TensorProto.INT64, axis=0)
        return self.op("Resize", [x, "", "", full], (shape[0], shape[1], *size), mode=mode)

    # ------------------------------------------------------------------ tensors
    def reshape(self, x: str, target: Sequence[int]) -> str:
        """Reshape with ONNX semantics: 0 copies the input dim (keeps 'batch'), -1 is inferred."""
        shape = self.shape(x)
        out: list[Dim] = []
        for i, t in enumerate(target):
            out.append(shape[i] if t == 0 else int(t))
        if -1 in out:
            known = math.prod(int(d) for d in out if d != -1 and isinstance(d, int))
            sym = [d for d in out if isinstance(d, str)]
            total_known = math.prod(int(d) for d in shape if isinstance(d, int))
            sym_in = [d for d in shape if isinstance(d, str)]
            if sorted(sym) != sorted(sym_in):
                raise GraphError(f"{self.name}: reshape {shape} -> {tuple(target)} moves a symbolic dim")
            out[out.index(-1)] = total_known // known
        return self.op("Reshape", [x, self.const(np.array(list(target), dtype=np.int64))], tuple(out))

    def transpose(self, x: str, perm: Sequence[int]) -> str:
        shape = self.shape(x)
        return self.op("Transpose", [x], tuple(shape[p] for p in perm), perm=list(perm))

    def concat(self, xs: Sequence[str], axis: int) -> str:
        shapes = [self.shape(x) for x in xs]
        out = list(shapes[0])
        ax = axis % len(out)
        out[ax] = sum(int(s[ax]) for s in shapes)
        return self.op(
            "Concat", list(xs), tuple(out), dtype=self.dtypes.get(xs[0], TensorProto.FLOAT), axis=axis
        )

    def split(self, x: str, sizes: Sequence[int], axis: int) -> list[str]:
        shape = self.shape(x)
        ax = axis % len(shape)
        names = [self._fresh("split") for _ in sizes]
        self.nodes.append(
            helper.make_node(
                "Split",
                [x, self.const(np.array(list(sizes), dtype=np.int64))],
                names,
                name=f"{names[0]}/Split",
                axis=axis,
            )
        )
        for n, s in zip(names, sizes, strict=True):
            sh = list(shape)
            sh[ax] = s
            self.shapes[n] = tuple(sh)
            self.dtypes[n] = TensorProto.FLOAT
        return names

    def slice(self, x: str, axis: int, start: int, end: int, step: int = 1) -> str:
        shape = list(self.shape(x))
        ax = axis % len(shape)
        size = int(shape[ax])
        s0 = max(0, start + size if start < 0 else start)
        e0 = min(size, end + size if end < 0 else end)
        shape[ax] = max(0, -(-(e0 - s0) // step))
        return self.op(
            "Slice",
            [
                x,
                self.const(np.array([start], dtype=np.int64)),
                self.const(np.array([end], dtype=np.int64)),
                self.const(np.array([axis], dtype=np.int64)),
                self.const(np.array([step], dtype=np.int64)),
            ],
            tuple(shape),
        )

    def pad(self, x: str, pads: Sequence[int], mode: str = "constant") -> str:
        shape = self.shape(x)
        n = len(shape)
        out: list[Dim] = []
        for i, d in enumerate(shape):
            if pads[i] == 0 and pads[n + i] == 0:
                out.append(d)
            else:
                out.append(int(d) + pads[i] + pads[n + i])
        return self.op("Pad", [x, self.const(np.array(list(pads), dtype=np.int64))], tuple(out), mode=mode)

    def flatten(self, x: str) -> str:
        shape = self.shape(x)
        return self.op("Flatten", [x], (shape[0], math.prod(int(d) for d in shape[1:])), axis=1)

    def reduce_mean(self, x: str, axes: Sequence[int], keepdims: bool = False) -> str:
        shape = list(self.shape(x))
        axs = sorted(a % len(shape) for a in axes)
        out = (
            [1 if i in axs else d for i, d in enumerate(shape)]
            if keepdims
            else [d for i, d in enumerate(shape) if i not in axs]
        )
        return self.op(
            "ReduceMean", [x], tuple(out), axes=list(axes), keepdims=1 if keepdims else 0
        )  # opset 17: axes is an attribute

    def gather(self, table: str, ids: str) -> str:
        rows = self.shape(table)
        return self.op("Gather", [table, ids], (*self.shape(ids), *rows[1:]), axis=0)

    def matmul(self, a: str, b: str) -> str:
        sa, sb = self.shape(a), self.shape(b)
        if sa[-1] != sb[-2]:
            raise GraphError(f"{self.name}: matmul {sa} x {sb}")
        batch = self._broadcast(sa[:-2], sb[:-2]) if len(sa) > 2 or len(sb) > 2 else ()
        return self.op("MatMul", [a, b], (*batch, sa[-2], sb[-1]))

    def softmax(self, x: str, axis: int = -1) -> str:
        return self.unary("Softmax", x, axis=axis)

    # ------------------------------------------------------------------ dense layers and norms
    def linear(self, x: str, dout: int, bias: bool = True, name: str = "linear") -> str:
        """y = x W + b on the last axis (MatMul + Add, as exporters write it)."""
        din = self.channels(x, -1)
        w = self.param(f"{name}.weight", (din, dout), fan_in=din)
        y = self.matmul(x, w)
        if bias:
            y = self.add(y, self.param(f"{name}.bias", (dout,), init="zeros"))
        return y

    def gemm(self, x: str, dout: int, name: str = "fc") -> str:
        """Classifier head on a 2-d (batch, features) tensor: one Gemm with bias."""
        shape = self.shape(x)
        din = int(shape[1])
        w = self.param(f"{name}.weight", (dout, din), fan_in=din)
        b = self.param(f"{name}.bias", (dout,), init="zeros")
        return self.op("Gemm", [x, w, b], (shape[0], dout), transB=1)

    def layer_norm(self, x: str, eps: float = 1e-5, name: str = "ln", bias: bool = True) -> str:
        d = self.channels(x, -1)
        ins = [x, self.param(f"{name}.weight", (d,), init="ones")]
        if bias:
            ins.append(self.param(f"{name}.bias", (d,), init="zeros"))
        return self.op("LayerNormalization", ins, self.shape(x), axis=-1, epsilon=eps)

    def rms_norm(self, x: str, eps: float = 1e-6, name: str = "rmsnorm") -> str:
        d = self.channels(x, -1)
        sq = self.mul(x, x)
        ms = self.reduce_mean(sq, [-1], keepdims=True)
        inv = self.unary("Sqrt", self.add(ms, self.const(np.float32(eps))))
        y = self.div(x, inv)
        return self.mul(y, self.param(f"{name}.weight", (d,), init="ones"))

    def group_norm(self, x: str, groups: int, eps: float = 1e-5, name: str = "gn") -> str:
        """GroupNorm as exporters write it for opset < 21: reshape + InstanceNorm + affine."""
        shape = self.shape(x)
        c = int(shape[1])
        rest = math.prod(int(d) for d in shape[2:])
        r = self.reshape(x, [0, groups, -1]) if rest else x
        ones = self.const(np.ones(groups, dtype=np.float32))
        zeros = self.const(np.zeros(groups, dtype=np.float32))
        n = self.op("InstanceNormalization", [r, ones, zeros], self.shape(r), epsilon=eps)
        back = self.reshape(n, [0, c, *[int(d) for d in shape[2:]]])
        gamma = self.param(f"{name}.weight", (c, *([1] * (len(shape) - 2))), init="ones")
        beta = self.param(f"{name}.bias", (c, *([1] * (len(shape) - 2))), init="zeros")
        return self.add(self.mul(back, gamma), beta)

    def batch_norm(self, x: str, name: str = "bn") -> str:
        """An explicit BatchNorm (only where it cannot be folded, e.g. after a concat or pooling)."""
        c = self.channels(x)
        ins = [x]
        for part, init in (
            ("weight", "ones"),
            ("bias", "zeros"),
            ("running_mean", "zeros"),
            ("running_var", "ones"),
        ):
            ins.append(self.param(f"{name}.{part}", (c,), init=init))  # type: ignore[arg-type]
        return self.op("BatchNormalization", ins, self.shape(x), epsilon=1e-5)

    # ------------------------------------------------------------------ attention
    def heads(self, x: str, n_heads: int) -> str:
        """(B, L, D) -> (B, H, L, D/H)."""
        d = self.channels(x, -1)
        r = self.reshape(x, [0, 0, n_heads, d // n_heads])
        return self.transpose(r, [0, 2, 1, 3])

    def merge_heads(self, x: str) -> str:
        """(B, H, L, Dh) -> (B, L, H*Dh)."""
        shape = self.shape(x)
        t = self.transpose(x, [0, 2, 1, 3])
        return self.reshape(t, [0, 0, int(shape[1]) * int(shape[3])])

    def sdpa(
        self,
        q: str,
        k: str,
        v: str,
        causal: bool = False,
        bias: str | None = None,
        scale: float | None = None,
    ) -> str:
        """Scaled dot-product attention on (B, H, L, Dh) tensors."""
        dh = self.channels(q, -1)
        qs = self.mul(q, self.const(np.float32(scale if scale is not None else 1.0 / math.sqrt(dh))))
        kt = self.transpose(k, [0, 1, 3, 2])
        scores = self.matmul(qs, kt)
        if bias is not None:
            scores = self.add(scores, bias)
        if causal:
            lq, lk = int(self.shape(q)[2]), int(self.shape(k)[2])
            mask = np.tril(np.ones((lq, lk), dtype=np.bool_), k=lk - lq)
            scores = self.op(
                "Where",
                [self.const(mask, "causal_mask"), scores, self.const(np.float32(-1e9))],
                self.shape(scores),
            )
        probs = self.softmax(scores, -1)
        return self.matmul(probs, v)

    def mha(
        self,
        x: str,
        n_heads: int,
        context: str | None = None,
        causal: bool = False,
        qkv_bias: bool = True,
        out_bias: bool = True,
        k_bias: bool | None = None,
        fused_qkv: bool = False,
        bias: str | None = None,
        scale: float | None = None,
        name: str = "attn",
    ) -> str:
        """Multi-head attention with separate (or fused) Q/K/V projections and an output projection."""
        d = self.channels(x, -1)
        with self.scope(name):
            if fused_qkv and context is None:
                qkv = self.linear(x, 3 * d, bias=qkv_bias, name="qkv")
                q, k, v = self.split(qkv, [d, d, d], axis=-1)
            else:
                src = x if context is None else context
                q = self.linear(x, d, bias=qkv_bias, name="q")
                k = self.linear(src, d, bias=qkv_bias if k_bias is None else k_bias, name="k")
                v = self.linear(src, d, bias=qkv_bias, name="v")
            o = self.sdpa(
                self.heads(q, n_heads), self.heads(k, n_heads), self.heads(v, n_heads), causal, bias, scale
            )
            return self.linear(self.merge_heads(o), d, bias=out_bias, name="out")

    def ffn(self, x: str, hidden: int, act: str = "gelu", bias: bool = True, name: str = "ffn") -> str:
        d = self.channels(x, -1)
        with self.scope(name):
            h = self.act(self.linear(x, hidden, bias=bias, name="fc1"), act)
            return self.linear(h, d, bias=bias, name="fc2")

    def gated_ffn(self, x: str, hidden: int, act: str = "silu", bias: bool = False, name: str = "mlp") -> str:
        """SwiGLU/GEGLU: down(act(gate(x)) * up(x))."""
        d = self.channels(x, -1)
        with self.scope(name):
            g = self.act(self.linear(x, hidden, bias=bias, name="gate"), act)
            u = self.linear(x, hidden, bias=bias, name="up")
            return self.linear(self.mul(g, u), d, bias=bias, name="down")

    # ------------------------------------------------------------------ model assembly and writing
    def parameter_count(self) -> int:
        return sum(w.numel for w in self.weights)

    def to_model(
        self,
        weights: WeightsMode = "random",
        external: Path | None = None,
        metadata: dict[str, str] | None = None,
    ) -> onnx.ModelProto:
        """The ModelProto; with ``external`` the parameters go to that file (written here)."""
        if not self.outputs:
            raise GraphError(f"{self.name}: graph has no outputs")
        initializers: list[TensorProto] = list(self.constants)
        if external is None:
            initializers.extend(self._materialise(w, weights) for w in self.weights)
        else:
            with open(external, "wb") as fh:
                initializers.extend(_write_external(fh, external.name, self.weights, weights, self._rng_for))
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="sustainml.onnxgraphs",
            producer_version="1",
        )
        model.ir_version = 8  # readable by onnxruntime >= 1.10
        props = dict(metadata or {})
        for name, high in sorted(self.input_ranges.items()):
            props[f"sustainml.input_range.{name}"] = str(high)
        helper.set_model_props(model, props)
        return model

    def _rng_for(self, name: str) -> np.random.Generator:
        # One independent stream per tensor: the data of a tensor never depends on build order.
        return np.random.Generator(np.random.SFC64(zlib.crc32(f"{self.name}/{name}".encode()) ^ self.seed))

    def _materialise(self, spec: WeightSpec, weights: WeightsMode) -> TensorProto:
        arr = _weight_data(spec, weights, self._rng_for)
        return numpy_helper.from_array(arr, spec.name)


def _weight_data(spec: WeightSpec, weights: WeightsMode, rng_for: object) -> np.ndarray:
    if weights == "zeros" or spec.init == "zeros":
        return np.zeros(spec.shape, dtype=np.float32)
    if spec.init == "ones":
        return np.ones(spec.shape, dtype=np.float32)
    rng = rng_for(spec.name)  # type: ignore[operator]
    data: np.ndarray = rng.random(spec.numel, dtype=np.float32)
    data -= 0.5
    data *= np.float32(2.0 * spec.bound)
    return data.reshape(spec.shape)


_ALIGN = 64


def _write_external(
    fh: BinaryIO, location: str, specs: Sequence[WeightSpec], weights: WeightsMode, rng_for: object
) -> list[TensorProto]:
    """Stream every parameter into ``fh`` (64-byte aligned) and return the referencing protos.

    With ``weights="zeros"`` nothing is written: the file is extended with ``truncate`` so it is
    sparse on file systems that support it (instant, no disk blocks) and reads back as zeros.
    """
    tensors: list[TensorProto] = []
    offset = 0
    for spec in specs:
        offset = -(-offset // _ALIGN) * _ALIGN
        if weights == "random" and spec.init != "zeros":
            fh.seek(offset)
            fh.write(_weight_data(spec, weights, rng_for).tobytes())
        t = TensorProto()
        t.name = spec.name
        t.data_type = TensorProto.FLOAT
        t.dims.extend(spec.shape)
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", str(offset)), ("length", str(spec.nbytes))):
            entry = t.external_data.add()
            entry.key = key
            entry.value = value
        tensors.append(t)
        offset += spec.nbytes
    fh.truncate(offset)
    return tensors
