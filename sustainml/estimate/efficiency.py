"""The device side of the roofline: bytes per precision, peak rates, efficiency factors, engines.

Peak FLOP/s and bandwidth come from the hardware catalogue (``device_rates``); the factors below
derate them. Which factors an estimate uses is decided by ``roofline.efficiency_for``.

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
- local: fitted on this machine by ``latency_eval`` against onnxruntime (``calibration``); 0.5, 0.7,
  5 us until then.

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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

from sustainml.catalogue.schema import HardwareEntry

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
