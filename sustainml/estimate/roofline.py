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

Efficiency factors per device class (``EFFICIENCY``): the roofline with eta = 1 is a lower bound;
published practice derates it. docs/estimation.md (after cli99/llm-analysis, whose
README and constants give ~0.5 FLOP efficiency for Megatron-LM training, up to 0.7 for
inference, and 0.9 as an aggressive memory efficiency) recommends eta_c 0.5-0.7 and eta_m 0.7-0.9:

- cloud: eta_c 0.5, eta_m 0.8, 5 us per op. fp32 small-batch inference sits at the low end for
  compute; HBM/GDDR streams well; ~5 us is the usual CUDA kernel-launch latency (assumption).
- server-cpu and desktop (laptop and desktop CPUs/SoCs): 0.5, 0.7, 2 us. Theoretical AVX-512 peaks
  are rarely sustained; STREAM-like copies reach ~70 % of the DDR peak; onnxruntime node dispatch
  costs microseconds (assumption).
- edge, mobile, pim, fpga: 0.5, 0.7, 10 us. Low ends of both ranges: thermally limited devices,
  less mature kernels (assumption).
- embedded: 0.5, 0.7, 1 us. MCU kernels run inline: no launch, tiny dispatch (assumption).
- local: fitted on this machine by ``latency_eval`` against onnxruntime; 0.5, 0.7, 5 us until then.

``local-cpu``'s peak is the *achieved* numpy sgemm rate and its bandwidth a measured copy rate
(``catalogue/localcpu.py``), so its fitted factors are relative to what this machine demonstrably
does, not to a datasheet. The calibration lives in ``<SUSTAINML_DATA_DIR>/latency-calibration.json``
and is used only when it describes this machine (local-cpu fingerprint) and this onnxruntime.

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

Efficiency of the compiled engine per device class (``COMPILED_EFFICIENCY``):

- cloud: eta_c 0.8, eta_m 0.9, 2 us per fused kernel; edge and mobile: 0.4, 0.8, 6 us. These
  four numbers were fitted (least squares of log(estimate / published), grid search) on the rows
  with an even index of our MLPerf Inference table (``sustainml.validation.mlperf``: TensorRT int8
  on Jetson AGX Orin, Orin NX, L4, A100 and H100); that table reports the held-out half on its own.
  Compute efficiency is high on datacenter GPUs because TensorRT's int8 kernels at large batch
  run near peak (ResNet-50 offline on H100: 88,714 samples/s x 8.2 GFLOP = 37 % of the int8 peak
  *including* the memory-bound layers), and low on Jetson where batch-1 kernels occupy few SMs.
  The fixed cost per kernel is of the order of a CUDA launch (~2-5 us, CUDA C++ Best Practices
  Guide) plus the fill/drain of partly occupied kernels, larger on the small Jetson GPUs.

Not modelled: host-device transfers of inputs and outputs (no link bandwidth in the catalogue),
overlap between kernels, caches (every byte goes to DRAM/HBM); for the eager engine, operator
fusion (onnxruntime fuses e.g. Conv + Relu on CPUs; the CPU calibration absorbs its average
effect).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from sustainml.catalogue.schema import HardwareEntry
from sustainml.onnxgraphs.analyze import ModelReport, OpCost

log = logging.getLogger(__name__)

#: Bytes per element of each precision (int4 packs two values per byte).
PRECISION_BYTES: Final[dict[str, float]] = {
    "fp32": 4.0,
    "tf32": 4.0,
    "fp16": 2.0,
    "bf16": 2.0,
    "int8": 1.0,
    "int4": 0.5,
}
GRAPH_BYTES: Final = 4.0  # the catalogue graphs are fp32

CALIBRATION_FILE: Final = "latency-calibration.json"
CALIBRATION_VERSION: Final = 1

_RANGE_SOURCE = "docs/estimation.md (eta_c 0.5-0.7, eta_m 0.7-0.9, after cli99/llm-analysis)"


@dataclass(frozen=True)
class Efficiency:
    """Fractions of peak compute and bandwidth attained, plus a fixed cost per operator."""

    compute: float
    memory: float
    op_overhead_s: float
    source: str

    def __post_init__(self) -> None:
        if not (self.compute > 0 and self.memory > 0 and self.op_overhead_s >= 0):
            raise ValueError(f"invalid efficiency factors: {self}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Documented efficiency factors per device class (see the module docstring).
EFFICIENCY: Final[dict[str, Efficiency]] = {
    "cloud": Efficiency(
        0.5, 0.8, 5e-6, f"{_RANGE_SOURCE}: compute low end, memory middle; 5 us kernel launch (assumption)"
    ),
    "server-cpu": Efficiency(
        0.5, 0.7, 2e-6, f"{_RANGE_SOURCE}: low ends; 2 us onnxruntime node dispatch (assumption)"
    ),
    "desktop": Efficiency(
        0.5,
        0.7,
        2e-6,
        f"{_RANGE_SOURCE}: low ends, as server CPUs; 2 us onnxruntime node dispatch (assumption)",
    ),
    "edge": Efficiency(0.5, 0.7, 10e-6, f"{_RANGE_SOURCE}: low ends; 10 us per op (assumption)"),
    "mobile": Efficiency(0.5, 0.7, 10e-6, f"{_RANGE_SOURCE}: low ends; 10 us per op (assumption)"),
    "pim": Efficiency(0.5, 0.7, 10e-6, f"{_RANGE_SOURCE}: low ends; 10 us per op (assumption)"),
    "fpga": Efficiency(0.5, 0.7, 10e-6, f"{_RANGE_SOURCE}: low ends; 10 us per op (assumption)"),
    "embedded": Efficiency(0.5, 0.7, 1e-6, f"{_RANGE_SOURCE}: low ends; 1 us per op (assumption)"),
    "local": Efficiency(
        0.5,
        0.7,
        5e-6,
        f"{_RANGE_SOURCE}: low ends, 5 us per op; not calibrated yet "
        "(run sustainml eval latency --save-calibration)",
    ),
}
FALLBACK_EFFICIENCY: Final = EFFICIENCY["edge"]

#: Engines: ``compiled`` groups operators into fused kernels, ``eager`` runs one kernel per operator.
ENGINES: Final = ("compiled", "eager")
#: The engine assumed when none is asked for, by device class (others: ``eager``).
DEFAULT_ENGINE: Final[dict[str, str]] = {"cloud": "compiled", "edge": "compiled", "mobile": "compiled"}

_COMPILED_SOURCE = (
    f"{_RANGE_SOURCE}; fixed cost per fused kernel = CUDA launch (~2-5 us, CUDA C++ Best Practices "
    "Guide) + fill/drain of partly occupied kernels, chosen on the fitting half of the MLPerf table"
)
#: Efficiency of the compiled engine per device class; ``op_overhead_s`` is per fused kernel.
COMPILED_EFFICIENCY: Final[dict[str, Efficiency]] = {
    "cloud": Efficiency(0.8, 0.9, 2e-6, f"{_COMPILED_SOURCE}: eta_c 0.8, eta_m 0.9, 2 us on datacenter GPUs"),
    "edge": Efficiency(
        0.4, 0.8, 6e-6, f"{_COMPILED_SOURCE}: eta_c 0.4, eta_m 0.8, 6 us on Jetson-class GPUs"
    ),
    "mobile": Efficiency(0.4, 0.8, 6e-6, f"{_COMPILED_SOURCE}: as edge (assumption, no mobile rows)"),
}


def default_engine(device_class: str) -> str:
    """The engine assumed for ``device_class`` when the caller names none."""
    return DEFAULT_ENGINE.get(device_class, "eager")


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    return engine


# ------------------------------------------------------------------------------------------------
# local-cpu calibration (written by latency_eval, read here)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalCalibration:
    """Efficiency factors fitted for ``local-cpu`` on one machine with one onnxruntime."""

    fingerprint: str  # catalogue.localcpu fingerprint of the machine
    onnxruntime: str
    compute: float
    memory: float
    op_overhead_s: float
    fitted_at: str
    fit_models: list[str] = field(default_factory=list)
    test_models: list[str] = field(default_factory=list)
    fit_median_ratio: float = 0.0  # measured / estimated, models used for the fit
    test_median_ratio: float = 0.0  # measured / estimated, held-out models
    test_worst_ratio: float = 0.0  # the held-out ratio furthest from 1 (either way)
    peak_flops: float = 0.0  # the local-cpu peak the factors were fitted against (0 = unknown)
    bandwidth_bytes_s: float = 0.0  # likewise its bandwidth

    def efficiency(self, hw: HardwareEntry | None = None) -> Efficiency:
        """The fitted factors; for ``hw`` measured differently since (a recalibrated local-cpu),
        rescaled so that the attained FLOP/s and bytes/s stay those that were fitted."""
        compute, memory = self.compute, self.memory
        if hw is not None and self.peak_flops > 0 and self.bandwidth_bytes_s > 0:
            peak, bandwidth = device_rates(hw)
            compute *= self.peak_flops / peak
            memory *= self.bandwidth_bytes_s / bandwidth
        return Efficiency(
            compute,
            memory,
            self.op_overhead_s,
            f"fitted on this machine {self.fitted_at} against onnxruntime {self.onnxruntime} "
            f"({len(self.fit_models)} models; held-out median measured/estimated "
            f"{self.test_median_ratio:.2f}, worst {self.test_worst_ratio:.2f})",
        )


_calibration_lock = threading.Lock()
_calibration_memo: dict[Path, tuple[tuple[int, int], LocalCalibration | None]] = {}


def calibration_path(directory: Path | None = None) -> Path:
    if directory is None:  # a caller without settings: the process environment's data directory
        from sustainml.config import environment_settings

        directory = environment_settings().data_dir
    return directory / CALIBRATION_FILE


def _machine_key() -> tuple[str, str]:
    import onnxruntime

    from sustainml.catalogue import localcpu

    return localcpu.fingerprint(localcpu.machine_info()), str(onnxruntime.__version__)


_machine_memo: list[tuple[str, str]] = []


def machine_key() -> tuple[str, str]:
    """(local-cpu fingerprint, onnxruntime version) of this process (computed once)."""
    if not _machine_memo:
        _machine_memo.append(_machine_key())
    return _machine_memo[0]


def load_local_calibration(directory: Path | None = None) -> LocalCalibration | None:
    """The saved calibration if it describes this machine and onnxruntime, else ``None``."""
    path = calibration_path(directory)
    try:
        st = path.stat()
        mtime = (st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("latency calibration %s not readable: %s", path, exc)
        return None
    with _calibration_lock:
        memo = _calibration_memo.get(path)
        if memo is not None and memo[0] == mtime:
            return memo[1]
    result: LocalCalibration | None = None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(raw, dict) and raw.get("version") == CALIBRATION_VERSION:
            cal = LocalCalibration(**raw["calibration"])
            if (cal.fingerprint, cal.onnxruntime) == machine_key():
                result = cal
            else:
                log.info("latency calibration %s describes another machine or onnxruntime; not used", path)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring unreadable latency calibration %s: %s", path, exc)
    with _calibration_lock:
        _calibration_memo[path] = (mtime, result)
    return result


def save_local_calibration(calibration: LocalCalibration, directory: Path | None = None) -> Path:
    """Write ``calibration`` atomically; returns the file."""
    path = calibration_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(
        json.dumps({"version": CALIBRATION_VERSION, "calibration": asdict(calibration)}, indent=1),
        encoding="utf-8",
    )
    os.replace(tmp, path)
    return path


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


# ------------------------------------------------------------------------------------------------
# The estimate
# ------------------------------------------------------------------------------------------------


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


def precision_scale(precision: str) -> float:
    """Bytes at ``precision`` relative to the fp32 graph."""
    if precision not in PRECISION_BYTES:
        raise ValueError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISION_BYTES)}")
    return PRECISION_BYTES[precision] / GRAPH_BYTES


def device_rates(hw: HardwareEntry, precision: str = "fp32") -> tuple[float, float]:
    """(peak FLOP/s at ``precision``, bandwidth bytes/s) of ``hw``."""
    peak = float(hw.peak(precision))
    bandwidth = float(hw.memory_bandwidth_gbs) * 1e9
    if peak <= 0 or bandwidth <= 0:
        raise ValueError(f"hardware {hw.name!r} has no positive peak or bandwidth in the catalogue")
    return peak, bandwidth


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
