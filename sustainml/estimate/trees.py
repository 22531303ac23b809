"""Latency, energy and memory of a tree ensemble (gradient-boosted trees, random forests).

A tree ensemble has no graph of matrix products: one prediction walks every tree from the root to
a leaf, one comparison per level. Each step loads a node (feature index, threshold), loads the
feature, compares and branches to a child whose address depends on the comparison, so the steps of
one tree form a chain of dependent loads and hard-to-predict branches: the cost is a *latency per
level*, not FLOP/s or bandwidth. Per answer (one row)::

    node visits = trees x depth                       (one comparison per level of each tree)
    latency     = call overhead + ceil(batch / lanes) x node visits x t_level   (CPU)
    latency     = call overhead + ceil(batch x trees / lanes) x depth x t_level (parallel devices)
    memory      = nodes x NODE_BYTES + batch x features x 4 B

**CPUs** (server, desktop, laptop, the boards' and phones' CPU cores, this machine) walk the trees
of one row on one core, rows spread over the cores (treelite, LightGBM and XGBoost distribute
rows, not trees, across threads). ``t_level`` = 10 ns on an x86 server or desktop core: the
LightGBM inferencing benchmark (microsoft/lightgbm-benchmark, docs/results/inferencing.md: one
thread, 16-vCPU x86 Linux VM, treelite 1.3 compiled models) reports 34-101 us per prediction for
1,000 trees of 31 leaves and 202-289 us for 5,000 trees, i.e. 34-58 ns per tree of ~5 levels
(log2 31), 7-12 ns per level. ARM cores of edge boards are taken at 2x that (lower clocks, smaller
caches; assumption), phone big cores at 1.5x (assumption). The call overhead is 5 us: the same
benchmark's LightGBM Python API needs 5.5 us for 10 trees (50 levels), i.e. the fixed cost of a
predict call. Micro-controllers: 20 cycles per level at the core clock (compiled if-else code
reading thresholds from flash with wait states; assumption), 1 us per call.

**Parallel devices** (GPUs and other cloud accelerators, PIM, FPGA): one thread per (row, tree)
pair walks its tree, as RAPIDS cuML's Forest Inference Library does on GPUs; each level is a
dependent load from device memory (``t_level`` 0.5 us: DRAM/HBM latency with the thread's other
work; assumption), ``lanes`` pairs at once (4,096; assumption), plus a 30 us call overhead (kernel
launch, host-to-device copy of the rows and back, synchronisation; assumption): at batch 1 it
dominates, so a GPU only pays off for large batches. Accelerators without a published tree runtime
(TPU, Gaudi, Trainium, Inferentia, PIM, FPGA) are costed the same way and marked unsupported
(``unsupported_reason``).

**Power**: a CPU request occupies ``min(batch, cores)`` cores, so it is charged that share of the
socket's power at the class's utilisation (the other cores serve other requests); a parallel device
is charged whole (it is dedicated to the model while the kernel runs).

Trees and depth come from the catalogue entry: ``builder_args.trees`` / ``builder_args.depth``
when present, else solved from its convention ``parameters = trees x (2^(depth+1) - 1)`` node
values and ``macs = trees x depth`` comparisons; failing both, ``macs`` comparisons per row and
``parameters`` nodes are used as they are.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Final

from sustainml.catalogue.schema import HardwareEntry, ModelEntry
from sustainml.estimate import power as pw

#: Bytes of one node: a 4-byte threshold or leaf value and 4 bytes of feature index and child
#: offset (the dense node layout of RAPIDS FIL and of treelite's runtime arrays).
NODE_BYTES: Final = 8
FEATURE_BYTES: Final = 4

CPU_T_LEVEL_S: Final = 10e-9
CPU_CALL_OVERHEAD_S: Final = 5e-6
MCU_CYCLES_PER_LEVEL: Final = 20
MCU_CALL_OVERHEAD_S: Final = 1e-6
PARALLEL_T_LEVEL_S: Final = 0.5e-6
PARALLEL_LANES: Final = 4096
PARALLEL_CALL_OVERHEAD_S: Final = 30e-6

#: How each device class runs a tree ensemble: (path, seconds per level, call overhead).
CLASS_PATH: Final[dict[str, tuple[str, float, float]]] = {
    "server-cpu": ("cpu", CPU_T_LEVEL_S, CPU_CALL_OVERHEAD_S),
    "desktop": ("cpu", CPU_T_LEVEL_S, CPU_CALL_OVERHEAD_S),
    "local": ("cpu", CPU_T_LEVEL_S, CPU_CALL_OVERHEAD_S),
    "edge": ("cpu", 2 * CPU_T_LEVEL_S, CPU_CALL_OVERHEAD_S),
    "mobile": ("cpu", 1.5 * CPU_T_LEVEL_S, CPU_CALL_OVERHEAD_S),
    "embedded": ("mcu", 0.0, MCU_CALL_OVERHEAD_S),
    "cloud": ("parallel", PARALLEL_T_LEVEL_S, PARALLEL_CALL_OVERHEAD_S),
    "pim": ("parallel", PARALLEL_T_LEVEL_S, PARALLEL_CALL_OVERHEAD_S),
    "fpga": ("parallel", PARALLEL_T_LEVEL_S, PARALLEL_CALL_OVERHEAD_S),
}

#: CPU cores of the catalogue devices (their descriptions and datasheets); edge boards, phones and
#: MCUs: the CPU cores that would run the ensemble.
CPU_CORES: Final[dict[str, int]] = {
    "Xeon-Platinum-8480+": 56,
    "EPYC-9654": 96,
    "EPYC-7763": 64,
    "Xeon-Gold-6248": 20,
    "Graviton3": 64,
    "Apple-M1": 8,
    "Apple-M2": 8,
    "Apple-M3": 8,
    "Apple-M4": 10,
    "Core-Ultra-7-155H": 16,
    "Ryzen-7-7840U": 8,
    "Ryzen-9-7950X": 16,
    "Jetson-Orin-Nano": 6,
    "Jetson-Orin-NX": 8,
    "Jetson-AGX-Orin": 12,
    "Raspberry-Pi-5": 4,
    "Raspberry-Pi-4": 4,
    "Coral-Edge-TPU": 4,
    "A17Pro": 6,
    "Snapdragon8gen3": 8,
    "Dimensity9300": 8,
    "STM32H7": 1,
    "Arduino-Nano-33-BLE-Sense": 1,
}
#: Core clocks of the catalogue micro-controllers (their descriptions).
MCU_CLOCK_HZ: Final[dict[str, float]] = {"STM32H7": 480e6, "Arduino-Nano-33-BLE-Sense": 64e6}
DEFAULT_MCU_CLOCK_HZ: Final = 100e6

_CORES_RE: Final = re.compile(r"(\d+)(?:-core|\s+(?:usable\s+)?cores)\b")
_MHZ_RE: Final = re.compile(r"at\s+(\d+(?:\.\d+)?)\s*MHz")


def is_tree_ensemble(entry: ModelEntry) -> bool:
    """True for a catalogue entry whose family is a tree ensemble."""
    family = entry.family.casefold()
    return any(word in family for word in ("tree", "forest", "boost"))


@dataclass(frozen=True)
class TreeEnsemble:
    trees: int
    depth: int  # levels walked per tree (one comparison each)
    nodes: int  # node values stored (splits + leaves)
    features: int
    source: str

    @property
    def visits(self) -> int:
        """Node visits (comparisons) per row."""
        return self.trees * self.depth

    def validated(self) -> TreeEnsemble:
        for name in ("trees", "depth", "nodes", "features"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"tree ensemble {name}: expected a whole number >= 1, got {value!r}")
        return self


def _whole(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 1:
        return None
    return int(value) if float(value).is_integer() else None


def ensemble_of(entry: ModelEntry) -> TreeEnsemble:
    """The ensemble's shape from the catalogue entry (see the module docstring)."""
    features = int(entry.input_shape[-1]) if entry.input_shape else 1
    args = entry.builder_args or {}
    trees, depth = _whole(args.get("trees")), _whole(args.get("depth"))
    if trees and depth:
        nodes = _whole(args.get("nodes")) or trees * (2 ** (depth + 1) - 1)
        return TreeEnsemble(trees, depth, nodes, features, f"catalogue {entry.name} builder_args").validated()
    for d in range(1, 21):
        if entry.macs % d:
            continue
        t = entry.macs // d
        if t >= 1 and t * (2 ** (d + 1) - 1) == entry.parameters:
            return TreeEnsemble(
                t,
                d,
                entry.parameters,
                features,
                f"catalogue {entry.name}: parameters = trees x (2^(depth+1) - 1) and macs = trees x depth "
                f"-> {t} trees of depth {d}",
            ).validated()
    if entry.macs < 1 or entry.parameters < 1:
        raise ValueError(
            f"model {entry.name}: a tree ensemble needs builder_args.trees and .depth, or positive "
            f"macs (comparisons per row) and parameters (nodes); got macs={entry.macs}, "
            f"parameters={entry.parameters}"
        )
    return TreeEnsemble(
        1,
        int(entry.macs),
        int(entry.parameters),
        features,
        f"catalogue {entry.name}: macs = {entry.macs} comparisons per row, parameters = nodes "
        "(trees and depth not recoverable: the comparisons are costed as one chain)",
    ).validated()


def cpu_cores(hw: HardwareEntry) -> tuple[int, str]:
    """(cores, where the figure comes from) of ``hw``'s CPU."""
    if hw.name in CPU_CORES:
        return CPU_CORES[hw.name], "catalogue description / datasheet"
    m = _CORES_RE.search(hw.description)
    if m:
        return max(1, int(m.group(1))), "device description"
    return 1, "unknown: one core assumed (the whole device is charged)"


@dataclass(frozen=True)
class TreeEstimate:
    ensemble: TreeEnsemble
    device: str
    path: str  # cpu, mcu, parallel
    batch_size: int
    t_level_s: float
    call_overhead_s: float
    lanes: int
    traversal_s: float
    latency_s: float  # the batch; also each answer's
    power_w: float
    utilisation: float
    share_of_device: float
    model_bytes: float
    input_bytes: float
    notes: tuple[str, ...]

    @property
    def bound(self) -> str:
        return "latency" if self.traversal_s >= self.call_overhead_s else "overhead"

    @property
    def energy_per_inference_j(self) -> float:
        """Power x batch time / batch."""
        return self.power_w * self.latency_s / self.batch_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "tree-ensemble traversal (sustainml.estimate.trees)",
            "ensemble": asdict(self.ensemble),
            "node_visits_per_row": self.ensemble.visits,
            "device": self.device,
            "path": self.path,
            "batch_size": self.batch_size,
            "t_level_s": self.t_level_s,
            "call_overhead_s": self.call_overhead_s,
            "parallel_lanes": self.lanes,
            "traversal_s": self.traversal_s,
            "latency_s": self.latency_s,
            "bound": self.bound,
            "power_w": self.power_w,
            "utilisation": self.utilisation,
            "share_of_device": self.share_of_device,
            "energy_per_inference_j": self.energy_per_inference_j,
            "model_bytes": self.model_bytes,
            "input_bytes": self.input_bytes,
            "formula": FORMULA[self.path],
            "notes": list(self.notes),
        }


FORMULA: Final = {
    "cpu": "call overhead + ceil(batch / cores) x trees x depth x t_level",
    "mcu": "call overhead + batch x trees x depth x cycles per level / clock",
    "parallel": "call overhead + ceil(batch x trees / lanes) x depth x t_level",
}
_NO_TREE_RUNTIME: Final = ("TPU", "Gaudi", "Trainium", "Inferentia")


def unsupported_reason(hw: HardwareEntry) -> str:
    """Why ``hw`` has no tree-ensemble runtime ("" when it has one: CPUs, micro-controllers and
    GPUs, which XGBoost, LightGBM, treelite, emlearn and RAPIDS FIL target). HW_RESOURCES treats a
    non-empty reason as a violation, so ``auto`` never picks such a device while another fits."""
    if hw.device_class in ("pim", "fpga") or any(
        k.casefold() in hw.name.casefold() for k in _NO_TREE_RUNTIME
    ):
        return (
            f"no published tree-ensemble runtime for {hw.name} ({hw.device_class}); the figures assume a "
            "GPU-like forest-inference kernel"
        )
    return ""


def estimate(
    ensemble: TreeEnsemble, hw: HardwareEntry, batch_size: int = 1, utilisation: float | None = None
) -> TreeEstimate:
    """Latency of a batch of ``batch_size`` rows and the power charged for it on ``hw``."""
    ensemble = ensemble.validated()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a whole number >= 1, got {batch_size!r}")
    path, t_level, overhead = CLASS_PATH.get(hw.device_class, CLASS_PATH["cloud"])
    u = pw.default_utilisation(hw.device_class) if utilisation is None else utilisation
    device_power = pw.device_power_w(hw, u)
    notes: list[str] = []
    if path == "parallel":
        lanes = PARALLEL_LANES
        rounds = math.ceil(batch_size * ensemble.trees / lanes)
        traversal = rounds * ensemble.depth * t_level
        share = 1.0
        if unsupported_reason(hw):
            notes.append(unsupported_reason(hw))
    else:
        cores, where = cpu_cores(hw)
        lanes = cores
        if path == "mcu":
            clock = MCU_CLOCK_HZ.get(hw.name)
            if clock is None:
                m = _MHZ_RE.search(hw.description)
                clock = float(m.group(1)) * 1e6 if m else DEFAULT_MCU_CLOCK_HZ
            t_level = MCU_CYCLES_PER_LEVEL / clock
            notes.append(f"{MCU_CYCLES_PER_LEVEL} cycles per level at {clock / 1e6:g} MHz")
        traversal = math.ceil(batch_size / cores) * ensemble.visits * t_level
        share = min(batch_size, cores) / cores
        notes.append(
            f"{cores} CPU cores ({where}); {min(batch_size, cores)} busy -> {share:.3g} of the power"
        )
    model_bytes = float(ensemble.nodes * NODE_BYTES)
    input_bytes = float(batch_size * ensemble.features * FEATURE_BYTES)
    return TreeEstimate(
        ensemble=ensemble,
        device=hw.name,
        path=path,
        batch_size=batch_size,
        t_level_s=t_level,
        call_overhead_s=overhead,
        lanes=lanes,
        traversal_s=traversal,
        latency_s=overhead + traversal,
        power_w=device_power * share,
        utilisation=u,
        share_of_device=share,
        model_bytes=model_bytes,
        input_bytes=input_bytes,
        notes=tuple(notes),
    )


SOURCES: Final = {
    "t_level_cpu": "LightGBM inferencing benchmark (microsoft/lightgbm-benchmark, docs/results/"
    "inferencing.md): treelite 1.3, one thread, 1,000-5,000 trees of 31 leaves: 7-12 ns per level",
    "call_overhead_cpu": "same benchmark: LightGBM Python API, 10 trees, 5.5 us per prediction",
    "parallel": "RAPIDS cuML Forest Inference Library (one thread per row and tree); t_level 0.5 us, "
    "4,096 lanes and 30 us per call are assumptions",
    "mcu": "20 cycles per level (assumption: compiled if-else from flash)",
    "node_bytes": "8 bytes per node (FIL dense node: 4-byte value + 4-byte index/flags)",
}

__all__ = [
    "CLASS_PATH",
    "CPU_CORES",
    "NODE_BYTES",
    "SOURCES",
    "TreeEnsemble",
    "TreeEstimate",
    "cpu_cores",
    "ensemble_of",
    "estimate",
    "is_tree_ensemble",
    "unsupported_reason",
]
