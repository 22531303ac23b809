"""Roofline latency of an analysed ONNX graph on a catalogue device.

Per operator (``onnxgraphs.analyze.OpCost``; FLOPs = 2 x MACs for the linear layers, see there)::

    t_op = max(FLOPs / (peak x eta_c), bytes / (bandwidth x eta_m)) + overhead
    latency = sum over operators of t_op

- ``peak`` is the device's dense peak at the requested precision (fp32 by default: our graphs are
  fp32; a device without a faster path at that precision falls back to fp32, as
  ``HardwareEntry.peak`` does), ``bandwidth`` its memory bandwidth in GB/s x 1e9.
- ``bytes`` = activations read + weights read + outputs written at the graph's dtype, scaled by
  ``PRECISION_BYTES[precision] / 4`` when another precision is asked for (fp16 halves the bytes).
- ``overhead`` is a fixed cost per operator that does work (any FLOPs or bytes): kernel launch on
  accelerators, node dispatch in onnxruntime on CPUs. Views and shape ops cost nothing.
- **Batch**: the analysis is made at the batch size, so activation FLOPs and bytes scale with it
  while weights are read once per batch; the arithmetic intensity of weight-heavy layers grows
  with the batch, as on real hardware. The latency is that of the whole batch.

The efficiency factors and engines per device class are in ``efficiency``, the ``local-cpu``
calibration in ``calibration``; this module chooses the factors (``efficiency_for``) and evaluates.
It re-exports their public names, so ``roofline`` is the one import the latency model's callers need.

**Engines and kernel fusion** (``ENGINES``; ``engine=`` or the device class's default,
``DEFAULT_ENGINE``):

- ``compiled`` (TensorRT, TensorRT-LLM, onnxruntime-gpu with graph optimisations, torch.compile,
  TFLite/Core ML delegates): the operators are grouped into fused kernels (``fuse``) before the
  roofline. Element-wise ops, activations, normalisations (batch and layer norm), softmax and
  layout ops (Transpose, Reshape, ...) fold into the kernel that produces their input, as the
  conv+bias+ReLU, GEMM+bias+GELU and residual-add+LayerNorm epilogues of TensorRT and
  FasterTransformer do: their FLOPs are kept, the intermediate tensor is neither written nor read
  back (a binary op still reads its second operand, e.g. a residual), and they add no launch. An
  attention block (MatMul -> [scale, mask] -> Softmax -> MatMul) is one kernel whose score matrix
  never leaves the chip (FlashAttention, Dao et al. 2022, arXiv:2205.14135; TensorRT's fused
  multi-head attention). The fixed cost is paid once per fused kernel: launch plus the time a
  small kernel needs to fill and drain the device (a batch-1 conv uses a fraction of the SMs),
  which is what dominates single-stream latency on accelerators.
- ``eager`` (PyTorch eager, onnxruntime CPU, micro-controller interpreters): every operator is
  its own kernel with the per-operator overhead of ``EFFICIENCY``.

Default: ``compiled`` for ``cloud``, ``edge`` and ``mobile`` devices (their inference stacks
compile the graph: TensorRT, TFLite, Core ML), ``eager`` elsewhere (the ``local`` calibration is
fitted against onnxruntime per operator).

Not modelled: host-device transfers of inputs and outputs (no link bandwidth in the catalogue),
overlap between kernels, caches (every byte goes to DRAM/HBM); for the eager engine, operator
fusion (onnxruntime fuses e.g. Conv + Relu on CPUs; the CPU calibration absorbs its average
effect).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from sustainml.catalogue.schema import HardwareEntry
from sustainml.estimate.calibration import (
    CALIBRATION_FILE,
    LocalCalibration,
    calibration_path,
    load_local_calibration,
    machine_key,
    save_local_calibration,
)
from sustainml.estimate.efficiency import (
    COMPILED_EFFICIENCY,
    DEFAULT_ENGINE,
    EFFICIENCY,
    ENGINES,
    FALLBACK_EFFICIENCY,
    PRECISION_BYTES,
    Efficiency,
    check_engine,
    default_engine,
    device_rates,
    precision_scale,
)
from sustainml.onnxgraphs.analyze import ModelReport, OpCost


def efficiency_for(
    hw: HardwareEntry, calibration_dir: Path | None = None, engine: str | None = None
) -> Efficiency:
    """The efficiency factors used for ``hw`` with ``engine`` (default: the class's engine): the
    compiled engine's per-kernel factors, or the per-operator ones (``local``: fitted when
    available)."""
    engine = check_engine(engine or default_engine(hw.device_class))
    if engine == "compiled":
        return COMPILED_EFFICIENCY.get(hw.device_class, COMPILED_EFFICIENCY["edge"])
    if hw.device_class == "local":
        cal = load_local_calibration(calibration_dir)
        if cal is not None:
            return cal.efficiency(hw)
    return EFFICIENCY.get(hw.device_class, FALLBACK_EFFICIENCY)


@dataclass(frozen=True)
class OpTime:
    name: str
    op_type: str
    flops: float
    bytes: float
    t_compute_s: float
    t_memory_s: float
    t_overhead_s: float

    @property
    def seconds(self) -> float:
        return max(self.t_compute_s, self.t_memory_s) + self.t_overhead_s

    @property
    def bound(self) -> str:
        if self.flops == 0 and self.bytes == 0:
            return "none"
        return "compute" if self.t_compute_s >= self.t_memory_s else "memory"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op_type": self.op_type,
            "flops": self.flops,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "bound": self.bound,
        }


@dataclass(frozen=True)
class RooflineEstimate:
    device: str
    device_class: str
    precision: str
    batch_size: int
    peak_flops: float  # FLOP/s at the precision
    bandwidth_bytes_s: float
    efficiency: Efficiency
    latency_s: float
    compute_s: float  # time of the compute-bound operators
    memory_s: float  # time of the memory-bound operators
    overhead_s: float  # per-operator overhead total
    flops: float
    bytes_moved: float
    ops: tuple[OpTime, ...] = ()
    method: str = "per-operator roofline"
    engine: str = "eager"

    @property
    def compute_bound_ops(self) -> int:
        return sum(1 for o in self.ops if o.bound == "compute")

    @property
    def memory_bound_ops(self) -> int:
        return sum(1 for o in self.ops if o.bound == "memory")

    @property
    def bound(self) -> str:
        """What dominates: the larger of the compute-bound and memory-bound time."""
        return "compute" if self.compute_s >= self.memory_s else "memory"

    def slowest(self, n: int = 10) -> list[OpTime]:
        return sorted(self.ops, key=lambda o: (-o.seconds, o.name))[:n]

    def to_dict(self, top_ops: int = 10) -> dict[str, Any]:
        return {
            "method": self.method,
            "engine": self.engine,
            "device": self.device,
            "device_class": self.device_class,
            "precision": self.precision,
            "batch_size": self.batch_size,
            "peak_flops": self.peak_flops,
            "bandwidth_bytes_per_s": self.bandwidth_bytes_s,
            "efficiency": self.efficiency.to_dict(),
            "latency_s": self.latency_s,
            "compute_bound_s": self.compute_s,
            "memory_bound_s": self.memory_s,
            "overhead_s": self.overhead_s,
            "bound": self.bound,
            "flops": self.flops,
            "bytes_moved": self.bytes_moved,
            "ops_with_work": sum(1 for o in self.ops if o.bound != "none"),
            "kernels": len(self.ops),
            "compute_bound_ops": self.compute_bound_ops,
            "memory_bound_ops": self.memory_bound_ops,
            "slowest_ops": [o.to_dict() for o in self.slowest(top_ops)],
            "formula": "sum over kernels (fused when compiled, else one per op) of "
            "max(FLOPs / (peak x eta_c), bytes / (bandwidth x eta_m)) + overhead",
        }


def op_times(
    ops: Iterable[OpCost], peak: float, bandwidth: float, eff: Efficiency, byte_scale: float = 1.0
) -> list[OpTime]:
    out: list[OpTime] = []
    for op in ops:
        flops = float(op.flops)
        nbytes = float(op.bytes_moved) * byte_scale
        works = flops > 0 or nbytes > 0
        out.append(
            OpTime(
                op.name,
                op.op_type,
                flops,
                nbytes,
                flops / (peak * eff.compute),
                nbytes / (bandwidth * eff.memory),
                eff.op_overhead_s if works else 0.0,
            )
        )
    return out


#: Operators a compiled engine folds into the kernel that produces their input (epilogues).
FUSIBLE_OPS: Final = frozenset(
    {
        "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "Tanh", "Erf",
        "Gelu", "FastGelu", "HardSigmoid", "HardSwish", "Mish", "Softplus", "Elu", "Selu", "Celu",
        "Exp", "Log", "Sqrt", "Pow", "Reciprocal", "Neg", "Abs", "Max", "Min", "Where", "Cast",
        "BatchNormalization", "LayerNormalization", "SkipLayerNormalization", "InstanceNormalization",
        "GroupNormalization", "Softmax", "LogSoftmax", "Transpose", "Reshape", "Flatten", "Squeeze",
        "Unsqueeze", "Identity", "Dropout", "Expand", "Slice", "Split", "Concat",
    }
)  # fmt: skip
_MATMULS: Final = frozenset({"MatMul", "MatMulInteger", "QLinearMatMul", "Einsum"})
_SOFTMAX: Final = frozenset({"Softmax", "LogSoftmax"})


def _works(op: OpCost) -> bool:
    return op.flops > 0 or op.bytes_moved > 0


def fuse(ops: Sequence[OpCost]) -> list[OpCost]:
    """Group ``ops`` (in graph order) into the fused kernels of a compiled engine (see the module
    docstring). Each kernel is an ``OpCost`` named after its first operator, typed
    ``"Conv+Relu"``-style, with the summed FLOPs and the bytes a fused kernel moves."""
    kernels: list[OpCost] = []
    types: list[list[str]] = []
    softmax_bytes = 0  # score matrix of an open attention block (0: none open)
    for op in ops:
        if not _works(op):
            continue
        current = kernels[-1] if kernels else None
        if current is not None and op.op_type in FUSIBLE_OPS:
            # the producer's output stays on chip; a binary op still reads its other operand
            extra_in = max(0, op.input_bytes - op.output_bytes)
            kernels[-1] = OpCost(
                current.name,
                current.op_type,
                current.macs + op.macs,
                current.flops + op.flops,
                current.input_bytes + extra_in,
                current.weight_bytes + op.weight_bytes,
                current.output_bytes,
                op.output_shapes or current.output_shapes,
            )
            if op.op_type not in types[-1]:
                types[-1].append(op.op_type)
            if op.op_type in _SOFTMAX:
                softmax_bytes = op.output_bytes
            continue
        if current is not None and softmax_bytes and op.op_type in _MATMULS:
            # attention: scores x V in the same kernel; the scores are never written nor read back
            kernels[-1] = OpCost(
                current.name,
                current.op_type,
                current.macs + op.macs,
                current.flops + op.flops,
                current.input_bytes + max(0, op.input_bytes - softmax_bytes),
                current.weight_bytes + op.weight_bytes,
                max(0, current.output_bytes - softmax_bytes) + op.output_bytes,
                op.output_shapes,
            )
            types[-1].append(op.op_type)
            softmax_bytes = 0
            continue
        softmax_bytes = 0
        kernels.append(op)
        types.append([op.op_type])
    return [
        OpCost(
            k.name,
            "+".join(t),
            k.macs,
            k.flops,
            k.input_bytes,
            k.weight_bytes,
            k.output_bytes,
            k.output_shapes,
        )
        for k, t in zip(kernels, types, strict=True)
    ]


def _summed(times: Sequence[OpTime]) -> tuple[float, float, float, float]:
    latency = compute = memory = overhead = 0.0
    for t in times:
        latency += t.seconds
        overhead += t.t_overhead_s
        if t.bound == "compute":
            compute += t.t_compute_s
        elif t.bound == "memory":
            memory += t.t_memory_s
    return latency, compute, memory, overhead


def estimate(
    report: ModelReport,
    hw: HardwareEntry,
    precision: str = "fp32",
    efficiency: Efficiency | None = None,
    engine: str | None = None,
) -> RooflineEstimate:
    """Roofline latency of ``report`` (analysed at its batch size) on ``hw`` with ``engine``
    (default: the device class's, ``DEFAULT_ENGINE``): per fused kernel when compiled, per
    operator when eager."""
    engine = check_engine(engine or default_engine(hw.device_class))
    eff = efficiency if efficiency is not None else efficiency_for(hw, engine=engine)
    peak, bandwidth = device_rates(hw, precision)
    scale = precision_scale(precision)
    kernels = fuse(report.ops) if engine == "compiled" else report.ops
    times = op_times(kernels, peak, bandwidth, eff, scale)
    latency, compute, memory, overhead = _summed(times)
    return RooflineEstimate(
        device=hw.name,
        device_class=hw.device_class,
        precision=precision,
        batch_size=report.batch_size,
        peak_flops=peak,
        bandwidth_bytes_s=bandwidth,
        efficiency=eff,
        latency_s=latency,
        compute_s=compute,
        memory_s=memory,
        overhead_s=overhead,
        flops=float(report.flops),
        bytes_moved=sum(t.bytes for t in times),
        ops=tuple(times),
        method="fused-kernel roofline" if engine == "compiled" else "per-operator roofline",
        engine=engine,
    )


def quick_estimate(
    macs: float,
    parameters: float,
    hw: HardwareEntry,
    batch_size: int = 1,
    precision: str = "fp32",
    efficiency: Efficiency | None = None,
) -> RooflineEstimate:
    """The whole model as one operator, from catalogue figures only (no graph): FLOPs = 2 x MACs x
    batch, bytes = the weights read once. An optimistic bound of the per-operator estimate (no
    activation traffic, no per-op overhead); ML_MODEL uses it to screen candidates cheaply."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    eff = efficiency if efficiency is not None else efficiency_for(hw)
    peak, bandwidth = device_rates(hw, precision)
    flops = 2.0 * float(macs) * batch_size
    nbytes = float(parameters) * PRECISION_BYTES[precision]
    t_c = flops / (peak * eff.compute)
    t_m = nbytes / (bandwidth * eff.memory)
    return RooflineEstimate(
        device=hw.name,
        device_class=hw.device_class,
        precision=precision,
        batch_size=batch_size,
        peak_flops=peak,
        bandwidth_bytes_s=bandwidth,
        efficiency=eff,
        latency_s=max(t_c, t_m),
        compute_s=t_c if t_c >= t_m else 0.0,
        memory_s=t_m if t_m > t_c else 0.0,
        overhead_s=0.0,
        flops=flops,
        bytes_moved=nbytes,
        method="whole-model roofline from catalogue MACs and parameters",
    )


#: Kernels assumed for a model known only by its published MACs and parameters, per engine: the
#: catalogue graphs of that size run 50-420 operators eagerly (ResNet-50 123, ViT-B/16 384,
#: BERT-base 420) and 23-89 fused kernels compiled (ResNet-50 56, ViT-B/16 64, BERT-base 89).
PUBLISHED_KERNELS: Final[dict[str, int]] = {"eager": 200, "compiled": 60}
#: Peak activations of such a model, as a fraction of its weight bytes: unknown without a graph;
#: the catalogue graphs range 0-1.44 (median 0.14), so 0.5 is a conservative middle (assumption).
PUBLISHED_ACTIVATION_FRACTION: Final = 0.5


def published_estimate(
    macs: float,
    parameters: float,
    hw: HardwareEntry,
    batch_size: int = 1,
    precision: str = "fp32",
    engine: str | None = None,
    kernels: int | None = None,
    calibration_dir: Path | None = None,
) -> RooflineEstimate:
    """Latency of a model known only by its published MACs and parameters (no graph, no
    architecture): the whole-model roofline (``quick_estimate``: FLOPs = 2 x MACs x batch, the
    weights read once, the engine's efficiency factors) plus the engine's fixed cost for
    ``kernels`` kernels (``PUBLISHED_KERNELS`` unless given). On the catalogue graphs the
    whole-model roofline is 1.0-1.35x below the per-operator one for models above ~10 M
    parameters and much lower for tiny ones, where the fixed costs dominate and are added here."""
    engine = check_engine(engine or default_engine(hw.device_class))
    eff = efficiency_for(hw, calibration_dir, engine=engine)
    n = PUBLISHED_KERNELS[engine] if kernels is None else kernels
    if n < 1:
        raise ValueError(f"kernels: expected a whole number >= 1, got {n!r}")
    whole = quick_estimate(macs, parameters, hw, batch_size, precision, eff)
    overhead = n * eff.op_overhead_s
    return replace(
        whole,
        latency_s=whole.latency_s + overhead,
        overhead_s=overhead,
        method=f"whole-model roofline from published MACs and parameters + {n} kernels x fixed cost",
        engine=engine,
    )


__all__ = [
    "CALIBRATION_FILE",
    "COMPILED_EFFICIENCY",
    "DEFAULT_ENGINE",
    "EFFICIENCY",
    "ENGINES",
    "FALLBACK_EFFICIENCY",
    "FUSIBLE_OPS",
    "PRECISION_BYTES",
    "PUBLISHED_ACTIVATION_FRACTION",
    "PUBLISHED_KERNELS",
    "Efficiency",
    "LocalCalibration",
    "OpTime",
    "RooflineEstimate",
    "calibration_path",
    "check_engine",
    "default_engine",
    "device_rates",
    "efficiency_for",
    "estimate",
    "fuse",
    "load_local_calibration",
    "machine_key",
    "op_times",
    "precision_scale",
    "published_estimate",
    "quick_estimate",
    "save_local_calibration",
]
