"""The graph under construction: tensor bookkeeping, element-wise and tensor ops, model writing.

``BaseGraphBuilder`` records nodes and tracks tensor shapes as it goes; it declares parameters as
*weight specs* (shape + initialisation, no data) and materialises the data only when the model is
written, so a 400 M-parameter graph never sits in memory twice. Every graph has a symbolic batch
dimension (``"batch"``) on dim 0 of its inputs: reshapes copy it with ``0`` so the same file runs
at any batch size. The layers (convolution, dense, norms, attention) are in ``layers``.
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
class BaseGraphBuilder:
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
    _shared: dict[str, list[str]] = field(default_factory=dict)
    _record: list[str] | None = None
    _replay: list[str] | None = None

    # ------------------------------------------------------------------ naming and bookkeeping
    @contextmanager
    def scope(self, name: str) -> Iterator[None]:
        self._scope.append(name)
        try:
            yield
        finally:
            self._scope.pop()

    @contextmanager
    def shared(self, key: str) -> Iterator[None]:
        """Layers built inside create their weights once per ``key``: every later block under the
        same key reuses them in creation order (one head applied to every pyramid level)."""
        if self._record is not None or self._replay is not None:
            raise GraphError(f"{self.name}: shared weight blocks do not nest")
        known = self._shared.get(key)
        if known is None:
            self._record = self._shared.setdefault(key, [])
        else:
            self._replay = list(known)
        try:
            yield
            unused = self._replay
        finally:
            self._record = self._replay = None
        if unused:
            raise GraphError(f"{self.name}: block {key!r} used fewer weights than its first use")

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
        dims = tuple(int(d) for d in shape)
        if self._replay is not None:
            if not self._replay or self.shapes[self._replay[0]] != dims:
                raise GraphError(f"{self.name}: shared weight {base!r} {dims} differs from its first use")
            return self._replay.pop(0)
        name = self._fresh(base)
        if self._record is not None:
            self._record.append(name)
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
