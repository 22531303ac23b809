"""The analysis behind ``onnxgraphs.analyze.analyze`` (loads onnx; imported on the first analysis)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import onnx
from onnx import TensorProto

from sustainml.onnxgraphs.analyze import AnalysisError, BatchMode, ModelReport, OpCost
from sustainml.onnxgraphs.opcosts import FREE, PARAM_TYPES, VIEWS, TensorInfo, attr, node_compute

# ---------------------------------------------------------------------------- loading and shapes
_BATCH_NAMES = ("batch", "batch_size", "N", "B", "bs")


def _load(model: onnx.ModelProto | str | Path | bytes) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    if isinstance(model, bytes | bytearray):
        return onnx.load_from_string(bytes(model))
    return onnx.load(str(model), load_external_data=False)


def _fix_inputs(
    model: onnx.ModelProto, batch_size: int, dims: Mapping[str, int]
) -> tuple[BatchMode, dict[str, tuple[int, ...]]]:
    initializer_names = {t.name for t in model.graph.initializer}
    # A symbolic dim is the batch when it sits at dim 0 of some input or has a usual batch name
    # (time-major RNN inputs carry the batch on dim 1).
    batch_labels = set(_BATCH_NAMES)
    for vi in model.graph.input:
        dims0 = vi.type.tensor_type.shape.dim if vi.type.HasField("tensor_type") else []
        if dims0 and dims0[0].HasField("dim_param") and dims0[0].dim_param:
            batch_labels.add(dims0[0].dim_param)
    fixed: dict[str, tuple[int, ...]] = {}
    symbolic_batch = False
    fixed_batch_one = True
    unresolved: list[str] = []
    for vi in model.graph.input:
        if vi.name in initializer_names or not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            raise AnalysisError(f"input {vi.name!r} has no shape; give a model with input shapes")
        shape: list[int] = []
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                if i == 0 and d.dim_value != 1:
                    fixed_batch_one = False
                shape.append(d.dim_value)
                continue
            label = d.dim_param if d.HasField("dim_param") else ""
            if label and label in dims:
                value = int(dims[label])
            elif i == 0 or label in batch_labels:
                value = batch_size
                symbolic_batch = True
            else:
                unresolved.append(f"{vi.name}[{i}]{'=' + label if label else ''}")
                value = 1
            d.Clear()
            d.dim_value = value
            shape.append(value)
        fixed[vi.name] = tuple(shape)
    if unresolved:
        raise AnalysisError(
            "symbolic input dimensions need values (pass dims={name: value}): " + ", ".join(unresolved)
        )
    if symbolic_batch:
        return "symbolic", fixed
    return ("scaled" if fixed_batch_one and batch_size != 1 else "fixed"), fixed


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    # Stale value_info/output shapes from an exporter may contradict the new batch: drop them.
    del model.graph.value_info[:]
    for out in model.graph.output:
        if out.type.HasField("tensor_type"):
            out.type.tensor_type.ClearField("shape")
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError / ValidationError subclasses
        raise AnalysisError(f"shape inference failed: {exc}") from exc


def _value_table(model: onnx.ModelProto) -> dict[str, TensorInfo]:
    table: dict[str, TensorInfo] = {}
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        if not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if any(d < 0 for d in dims):
            continue
        table[vi.name] = TensorInfo(tuple(dims), tt.elem_type)
    for init in model.graph.initializer:
        table[init.name] = TensorInfo(tuple(init.dims), init.data_type)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            value = attr(node, "value")
            if isinstance(value, TensorProto):
                table[node.output[0]] = TensorInfo(tuple(value.dims), value.data_type)
    return table


# ---------------------------------------------------------------------------- the analysis
def analyze(
    model: onnx.ModelProto | str | Path | bytes,
    batch_size: int = 1,
    dims: Mapping[str, int] | None = None,
) -> ModelReport:
    """Analyse ``model`` (proto, path or serialized bytes) at ``batch_size``."""
    if batch_size < 1:
        raise AnalysisError(f"batch_size must be >= 1, got {batch_size}")
    proto = _load(model)
    metadata = {p.key: p.value for p in proto.metadata_props}
    mode, input_shapes = _fix_inputs(proto, batch_size, dims or {})
    inferred = _infer(proto)
    table = _value_table(inferred)
    graph = inferred.graph
    scale = batch_size if mode == "scaled" else 1

    weight_names = {t.name for t in graph.initializer}
    weight_names |= {n.output[0] for n in graph.node if n.op_type == "Constant" and n.output}
    parameters = 0
    parameter_bytes = 0
    other_bytes = 0
    for name in sorted(weight_names):
        tensor = table.get(name)
        if tensor is None:
            continue
        if tensor.elem_type in PARAM_TYPES and tensor.numel > 1:
            parameters += tensor.numel
            parameter_bytes += tensor.nbytes
        else:
            other_bytes += tensor.nbytes

    ops: list[OpCost] = []
    unsupported: set[str] = set()
    missing: list[str] = []
    for idx, node in enumerate(graph.node):
        name = node.name or f"{node.op_type}_{idx}"
        known = [n for n in [*node.input, *node.output] if n and n not in table]
        if known:
            if node.op_type in FREE:
                ops.append(OpCost(name, node.op_type, 0, 0, 0, 0, 0, ()))
                continue
            missing.append(f"{name} ({', '.join(known)})")
            continue
        macs, flops, modelled = node_compute(node, table)
        if not modelled:
            unsupported.add(node.op_type)
        in_bytes = 0
        w_bytes = 0
        out_bytes = sum(table[o].nbytes for o in node.output if o)
        if node.op_type not in VIEWS and node.op_type not in FREE:
            for pos, inp in enumerate(node.input):
                if not inp:
                    continue
                size = table[inp].nbytes
                if inp in weight_names:
                    if node.op_type == "Gather" and pos == 0:
                        size = out_bytes * scale  # only the gathered rows are read
                    w_bytes += size
                else:
                    in_bytes += size
        else:
            out_bytes = 0
        shapes = tuple(table[o].shape for o in node.output if o)
        ops.append(
            OpCost(
                name,
                node.op_type,
                macs * scale,
                flops * scale,
                in_bytes * scale,
                w_bytes,
                out_bytes * scale,
                shapes,
            )
        )
    if missing:
        raise AnalysisError(
            f"shapes unknown after inference for {len(missing)} node(s), e.g. " + "; ".join(missing[:3])
        )

    activation_bytes, peak = _activation_memory(graph, table, weight_names)
    outputs = {o.name: table[o.name].shape for o in graph.output if o.name in table}
    return ModelReport(
        batch_size=batch_size,
        batch_mode=mode,
        inputs=input_shapes,
        outputs=outputs,
        parameters=parameters,
        parameter_bytes=parameter_bytes,
        other_constant_bytes=other_bytes,
        macs=sum(o.macs for o in ops),
        flops=sum(o.flops for o in ops),
        bytes_moved=sum(o.bytes_moved for o in ops),
        activation_bytes=activation_bytes * scale,
        peak_activation_bytes=peak * scale,
        ops=tuple(ops),
        unsupported_ops=tuple(sorted(unsupported)),
        metadata=metadata,
    )


def _activation_memory(
    graph: onnx.GraphProto, table: Mapping[str, TensorInfo], weights: Iterable[str]
) -> tuple[int, int]:
    weight_set = set(weights)
    root: dict[str, str] = {}
    size: dict[str, int] = {}

    def buffer(name: str) -> str:
        return root.get(name, name)

    inputs = [i.name for i in graph.input if i.name not in weight_set and i.name in table]
    for name in inputs:
        size[name] = table[name].nbytes
    last_use: dict[str, int] = {}
    for idx, node in enumerate(graph.node):
        for inp in node.input:
            if inp and inp not in weight_set:
                last_use[buffer(inp)] = idx
        for out in node.output:
            if not out or out not in table or out in weight_set:
                continue
            src = node.input[0] if node.input else ""
            if node.op_type in VIEWS and src and src not in weight_set and src in table:
                root[out] = buffer(src)
            elif node.op_type not in FREE:
                size[out] = table[out].nbytes
    keep = {buffer(o.name) for o in graph.output}
    total = sum(size.values())
    live = sum(size[n] for n in inputs)
    peak = live
    alive = set(inputs)
    for idx, node in enumerate(graph.node):
        for out in node.output:
            if out in size and out not in alive:
                alive.add(out)
                live += size[out]
        peak = max(peak, live)
        for inp in {buffer(i) for i in node.input if i}:
            if inp in alive and inp not in keep and last_use.get(inp, -1) <= idx:
                alive.discard(inp)
                live -= size[inp]
    return total, peak


__all__ = ["analyze"]
