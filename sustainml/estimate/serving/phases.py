"""The phases of serving one batch (each a roofline of its FLOPs and bytes), the estimate they
add up to, the all-reduces of tensor parallelism (see ``llm``), and the power drawn meanwhile.

**Power and energy**: each device draws ``idle + u x (TDP - idle)`` (``power.device_power_w``)
with ``u`` the time-weighted utilisation of the phases (``UTILISATION_BY_BOUND``: 0.85 while
compute-bound, 0.65 while memory-bound, 0.45 while waiting on fixed costs; the last two fitted on
the fitting rows of the ML.ENERGY table, the first from its diffusion rows: a compute-bound U-Net
batch draws near TDP), unless the caller gives one; energy of the batch = power x devices x
(prefill + decode) time; per answer = / batch. **Latency per answer** = the batch's time (every
request of a static batch finishes with the batch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

from sustainml.catalogue.schema import HardwareEntry
from sustainml.estimate import power as pw
from sustainml.estimate.serving.scenario import Engine, Scenario

#: All-reduce latency per call and link bandwidth per GPU for tensor parallelism (assumptions).
ALLREDUCE_LATENCY_S: Final = 10e-6
LINK_BANDWIDTH_BYTES_S: Final = 300e9


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    flops: float
    bytes: float
    bound: str
    overhead_s: float = 0.0  # part of ``seconds`` spent on fixed costs (launches, scheduling)


@dataclass(frozen=True)
class ServingEstimate:
    scenario: Scenario
    device: str
    num_devices: int
    engine: Engine
    phases: tuple[Phase, ...]
    batch_seconds: float
    power_w: float  # all devices together
    utilisation: float
    weights_gb: float
    kv_cache_gb: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def latency_per_inference_s(self) -> float:
        return self.batch_seconds

    @property
    def energy_per_batch_j(self) -> float:
        return self.power_w * self.batch_seconds

    @property
    def energy_per_inference_j(self) -> float:
        return self.energy_per_batch_j / self.scenario.batch_size

    @property
    def memory_gb(self) -> float:
        return self.weights_gb + self.kv_cache_gb

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "analytic serving estimate (sustainml.estimate.serving)",
            "scenario": self.scenario.to_dict(),
            "device": self.device,
            "num_devices": self.num_devices,
            "engine": asdict(self.engine),
            "phases": [asdict(p) for p in self.phases],
            "batch_seconds": self.batch_seconds,
            "latency_per_inference_s": self.latency_per_inference_s,
            "energy_per_inference_j": self.energy_per_inference_j,
            "energy_per_batch_j": self.energy_per_batch_j,
            "power_w_all_devices": self.power_w,
            "utilisation": self.utilisation,
            "weights_gb": self.weights_gb,
            "kv_cache_gb": self.kv_cache_gb,
            "memory_gb_per_device": self.memory_gb / self.num_devices,
            "notes": list(self.notes),
        }


def peak_rates(hw: HardwareEntry, precision: str) -> tuple[float, float]:
    peak_precision = {"fp8": "int8"}.get(precision, precision)
    peak = float(hw.peak_flops.get(peak_precision) or hw.peak_flops.get("fp16") or hw.peak_flops["fp32"])
    return peak, float(hw.memory_bandwidth_gbs) * 1e9


def roofline_phase(
    name: str, flops: float, nbytes: float, n: int, peak: float, bw: float, eng: Engine
) -> Phase:
    t_c = flops / (n * peak * eng.compute)
    t_m = nbytes / (n * bw * eng.memory)
    return Phase(name, max(t_c, t_m), flops, nbytes, "compute" if t_c >= t_m else "memory")


def allreduce_s(layers: int, batch_tokens: int, hidden: int, n: int) -> float:
    if n <= 1:
        return 0.0
    message = batch_tokens * hidden * 2.0
    return 2 * layers * (ALLREDUCE_LATENCY_S + 2 * (n - 1) / n * message / LINK_BANDWIDTH_BYTES_S)


#: Utilisation of the idle-to-TDP range while the device is compute-bound, memory-bound, or
#: waiting on fixed costs (launches, scheduling); the serving estimate weights them by time.
UTILISATION_BY_BOUND: Final[dict[str, float]] = {"compute": 0.85, "memory": 0.65, "overhead": 0.45}


def utilisation_of(phases: tuple[Phase, ...] | list[Phase]) -> float:
    """Time-weighted utilisation of ``phases`` (``UTILISATION_BY_BOUND``)."""
    total = sum(p.seconds for p in phases)
    if total <= 0:
        return UTILISATION_BY_BOUND["memory"]
    busy = sum(
        (p.seconds - p.overhead_s) * UTILISATION_BY_BOUND[p.bound]
        + p.overhead_s * UTILISATION_BY_BOUND["overhead"]
        for p in phases
    )
    return busy / total


def power_and_utilisation(
    hw: HardwareEntry, sc: Scenario, phases: tuple[Phase, ...] | list[Phase]
) -> tuple[float, float]:
    u = sc.utilisation if sc.utilisation is not None else utilisation_of(phases)
    return pw.device_power_w(hw, u) * sc.num_devices, u
