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
- server-cpu: 0.5, 0.7, 2 us. Theoretical AVX-512 peaks are rarely sustained; STREAM-like copies
  reach ~70 % of the DDR peak; onnxruntime node dispatch costs microseconds (assumption).
- edge, mobile, pim, fpga: 0.5, 0.7, 10 us. Low ends of both ranges: thermally limited devices,
  less mature kernels (assumption).
- embedded: 0.5, 0.7, 1 us. MCU kernels run inline: no launch, tiny dispatch (assumption).
- local: fitted on this machine by ``latency_eval`` against onnxruntime; 0.5, 0.7, 5 us until then.

``local-cpu``'s peak is the *achieved* numpy sgemm rate and its bandwidth a measured copy rate
(``catalogue/localcpu.py``), so its fitted factors are relative to what this machine demonstrably
does, not to a datasheet. The calibration lives in ``<SUSTAINML_DATA_DIR>/latency-calibration.json``
and is used only when it describes this machine (local-cpu fingerprint) and this onnxruntime.

Not modelled: host-device transfers of inputs and outputs (no link bandwidth in the catalogue),
overlap between operators, operator fusion (onnxruntime fuses e.g. Conv + Relu; the CPU
calibration absorbs its average effect), caches (every byte goes to DRAM/HBM).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
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

_RANGE_SOURCE = "estimation-sources.md section 6 (eta_c 0.5-0.7, eta_m 0.7-0.9, after cli99/llm-analysis)"


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
    if directory is None:
        from sustainml.config import Settings

        directory = Settings.from_env().data_dir
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


def efficiency_for(hw: HardwareEntry, calibration_dir: Path | None = None) -> Efficiency:
    """The efficiency factors used for ``hw``: the fitted ones for ``local`` when available."""
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
            "compute_bound_ops": self.compute_bound_ops,
            "memory_bound_ops": self.memory_bound_ops,
            "slowest_ops": [o.to_dict() for o in self.slowest(top_ops)],
            "formula": "sum over ops of max(FLOPs / (peak x eta_c), bytes / (bandwidth x eta_m)) + overhead",
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
) -> RooflineEstimate:
    """Per-operator roofline latency of ``report`` (analysed at its batch size) on ``hw``."""
    eff = efficiency if efficiency is not None else efficiency_for(hw)
    peak, bandwidth = device_rates(hw, precision)
    scale = precision_scale(precision)
    times = op_times(report.ops, peak, bandwidth, eff, scale)
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
        bytes_moved=float(report.bytes_moved) * scale,
        ops=tuple(times),
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


__all__ = [
    "CALIBRATION_FILE",
    "EFFICIENCY",
    "FALLBACK_EFFICIENCY",
    "PRECISION_BYTES",
    "Efficiency",
    "LocalCalibration",
    "OpTime",
    "RooflineEstimate",
    "calibration_path",
    "device_rates",
    "efficiency_for",
    "estimate",
    "load_local_calibration",
    "machine_key",
    "op_times",
    "precision_scale",
    "quick_estimate",
    "save_local_calibration",
]
