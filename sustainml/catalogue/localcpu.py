"""``local-cpu``: this machine, measured rather than assumed.

A short calibration (well under 2 s) measures what the CPU actually delivers:

- **fp32 compute**: numpy float32 matrix multiply (the installed BLAS, all cores; n = 1024 and
  1536, or 512 on slow CPUs), FLOPs counted as ``2 n^3``, best of up to 12 runs. This is
  *achieved* sgemm throughput, not the theoretical peak; the theoretical figure (cores x clock x
  FLOP/cycle of the ISA) is recorded next to it for comparison.
- **memory bandwidth**: copy of a 128 MB float32 array into another (larger than any last-level
  cache), with 1 thread and with one thread per core, best of several runs, counting read + write
  bytes (the STREAM "copy" convention).
- **power**: RAPL when the kernel exposes it (TDP = package long-term power limit, idle = package
  energy over a short sleep); otherwise the documented estimate TDP = 12 W per core (Green
  Algorithms' default for unknown CPUs, CC BY 4.0) and idle = 25 % of TDP (the server-CPU rule of
  hardware.json), both flagged as estimates.

The result is cached in ``<SUSTAINML_DATA_DIR>/localcpu.json`` together with a fingerprint of the
machine (CPU model, usable cores, ISA flags, memory, BLAS); a different machine or library
recalibrates. ``local_cpu_entry()`` returns the measured ``HardwareEntry``; the ``local-cpu`` row
of hardware.json only holds fallback figures used when measuring fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import platform
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sustainml.catalogue.schema import HardwareEntry, hardware

log = logging.getLogger(__name__)

LOCAL_CPU = "local-cpu"
CACHE_FILE = "localcpu.json"
#: Bumped whenever the measuring method changes, so old caches are not reused.
CALIBRATION_VERSION = 1

#: Estimate used when RAPL is not readable: Green Algorithms' default TDP per core for an unknown
#: CPU (GreenAlgorithms/green-algorithms-tool data, CC BY 4.0; docs/estimation.md).
WATTS_PER_CORE = 12.0
#: Idle power as a fraction of TDP for CPUs: the ``idle-fraction`` rule of hardware.json.
IDLE_FRACTION = 0.25

_COPY_BYTES = 128 * 1024 * 1024
_MATMUL_BUDGET_S = 0.8
_COPY_RUNS = 5
_RAPL_ROOT = Path("/sys/class/powercap")


@dataclass(frozen=True)
class Calibration:
    """What one calibration measured, plus the machine it describes."""

    fingerprint: str
    machine: dict[str, Any]
    fp32_flops: float  # achieved sgemm FLOP/s
    theoretical_fp32_flops: float  # cores x clock x FLOP/cycle (0 when the clock is unknown)
    memory_bandwidth_gbs: float
    memory_gb: float
    cores: int
    tdp_w: float
    idle_w: float
    power_source: str  # "rapl" or "estimate"
    measured_at: str  # ISO 8601, UTC
    duration_s: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def estimated(self) -> tuple[str, ...]:
        if self.power_source == "rapl":
            return ()
        return ("tdp_w", "idle_w")


# ------------------------------------------------------------------------------------------------
# The machine
# ------------------------------------------------------------------------------------------------


def _cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def usable_cores() -> int:
    """CPUs this process may run on (affinity/cgroup-restricted containers report fewer)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _memory_gb() -> float:
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page = os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0.0
    return round(pages * page / 1e9, 1)


def _flop_per_cycle(flags: set[str], arch: str) -> int:
    """fp32 FLOP per cycle per core of the widest FMA path the flags reveal (two FMA units assumed)."""
    if "avx512f" in flags:
        return 64
    if "avx2" in flags and "fma" in flags:
        return 32
    if "avx" in flags:
        return 16
    if arch in ("aarch64", "arm64"):
        return 16  # two 128-bit NEON FMA pipes
    return 8


@functools.cache
def _cpu_identity() -> tuple[str, tuple[str, ...], str]:
    """(CPU model, ISA extensions, BLAS) of this process's machine: read once, they cannot change
    while the process runs (the clock, cores and memory are read afresh)."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    model = info.get("model name") or info.get("Model") or platform.processor() or platform.machine()
    blas = "unknown"
    with contextlib.suppress(Exception):  # numpy's build-info API varies between versions
        config = np.show_config(mode="dicts")
        if isinstance(config, dict):
            deps = config.get("Build Dependencies", {})
            blas_info = deps.get("blas", {}) if isinstance(deps, dict) else {}
            blas = f"{blas_info.get('name', 'unknown')} {blas_info.get('version', '')}".strip()
    isa = sorted(f for f in flags if re.fullmatch(r"avx\w*|fma|amx\w*|asimd\w*|sve\w*|neon", f))
    return model, tuple(isa), blas


def machine_info(*, clock: bool = True) -> dict[str, Any]:
    """What identifies this machine's compute: the basis of the cache fingerprint. ``clock=False``
    leaves out the current clock (not part of the fingerprint; reading it rereads /proc/cpuinfo)."""
    model, isa, blas = _cpu_identity()
    info: dict[str, Any] = {
        "cpu_model": model,
        "arch": platform.machine(),
        "cores": usable_cores(),
        "isa": list(isa),
        "memory_gb": _memory_gb(),
        "numpy": np.__version__,
        "blas": blas,
    }
    if clock:
        mhz = 0.0
        with contextlib.suppress(ValueError):
            mhz = float(_cpuinfo().get("cpu MHz", "0") or 0)
        info["mhz"] = round(mhz)
    return info


def fingerprint(info: dict[str, Any]) -> str:
    # The clock is left out: it drifts with frequency scaling on the same machine.
    stable = {k: v for k, v in info.items() if k != "mhz"}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------


def measure_fp32_flops(budget_s: float = _MATMUL_BUDGET_S) -> tuple[float, dict[str, Any]]:
    """Best achieved float32 matmul FLOP/s over square sizes of 1024 and 1536 (512 on slow CPUs)."""
    rng = np.random.default_rng(0)
    warm = rng.standard_normal((256, 256), dtype=np.float32)
    np.matmul(warm, warm)  # load the BLAS and start its threads outside the timing
    mats = {}

    def operands(n: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        if n not in mats:
            mats[n] = (
                rng.standard_normal((n, n), dtype=np.float32),
                rng.standard_normal((n, n), dtype=np.float32),
                np.empty((n, n), dtype=np.float32),
            )
        return mats[n]

    def timed(n: int) -> float:
        a, b, out = operands(n)
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        return time.perf_counter() - start

    probe = timed(1024)
    # Small sizes under-use a multi-core BLAS; big ones cost too long on slow CPUs. 1536 only when a
    # 1024 run is quick (over ~40 GFLOP/s), 512 when it is slow (under ~9 GFLOP/s).
    sizes = [512] if probe > 0.25 else ([1024, 1536] if probe < 0.05 else [1024])
    best_rate = 0.0
    best_n = sizes[0]
    runs = 0
    deadline = time.perf_counter() + budget_s
    while runs < 2 * len(sizes) or (runs < 12 and time.perf_counter() < deadline):
        n = sizes[runs % len(sizes)]
        rate = 2 * n**3 / timed(n)
        if rate > best_rate:
            best_rate, best_n = rate, n
        runs += 1
    return best_rate, {"matmul_n": best_n, "matmul_sizes": sizes, "matmul_runs": runs}


def measure_bandwidth(nbytes: int = _COPY_BYTES, runs: int = _COPY_RUNS) -> tuple[float, dict[str, Any]]:
    """Best copy bandwidth in GB/s (read + write bytes), single-threaded and one thread per core."""
    n = nbytes // 4
    src = np.ones(n, dtype=np.float32)
    dst = np.zeros(n, dtype=np.float32)  # np.zeros may map lazily: the warm-up copy faults it in
    results: dict[str, float] = {}
    for threads in sorted({1, min(usable_cores(), 8)}):
        bounds = [(i * n // threads, (i + 1) * n // threads) for i in range(threads)]

        def copy(part: tuple[int, int]) -> None:
            np.copyto(dst[part[0] : part[1]], src[part[0] : part[1]])

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(copy, bounds))
            best = float("inf")
            for _ in range(runs):
                start = time.perf_counter()
                list(pool.map(copy, bounds))
                best = min(best, time.perf_counter() - start)
        results[str(threads)] = 2 * nbytes / best / 1e9
    gbs = max(results.values())
    return gbs, {
        "copy_mb": nbytes // (1024 * 1024),
        "copy_gbs_by_threads": {k: round(v, 2) for k, v in results.items()},
    }


@dataclass(frozen=True)
class _RaplZone:
    energy: Path
    max_range_uj: int
    limit_w: float | None


def _rapl_zones(root: Path = _RAPL_ROOT) -> list[_RaplZone]:
    """Package-level RAPL zones (``intel-rapl:N``, not their sub-zones), readable or not."""
    zones: list[_RaplZone] = []
    if not root.is_dir():
        return zones
    for zone in sorted(root.glob("intel-rapl:*")):
        if zone.name.count(":") != 1 or not (zone / "energy_uj").exists():
            continue
        max_range = 0
        with contextlib.suppress(OSError, ValueError):
            max_range = int((zone / "max_energy_range_uj").read_text().strip())
        limit = None
        with contextlib.suppress(OSError, ValueError):
            limit = int((zone / "constraint_0_power_limit_uw").read_text().strip()) / 1e6
        zones.append(_RaplZone(zone / "energy_uj", max_range, limit))
    return zones


def _rapl_energy_j(zones: list[_RaplZone]) -> float | None:
    """Summed package energy counter in joules, or None when not readable (often root-only)."""
    total = 0.0
    for zone in zones:
        try:
            total += int(zone.energy.read_text().strip()) / 1e6
        except (OSError, ValueError):
            return None
    return total


def _rapl_delta(zones: list[_RaplZone], before: float, after: float) -> float:
    delta = after - before
    if delta < 0:  # a counter wrapped; assume one wrap of the largest range
        delta += max((z.max_range_uj for z in zones), default=0) / 1e6
    return delta


def measure_power(
    cores: int, load: Callable[[], None] | None = None
) -> tuple[float, float, str, dict[str, Any]]:
    """(TDP W, idle W, "rapl"|"estimate", details). RAPL when readable, else the documented estimate."""
    zones = _rapl_zones()
    details: dict[str, Any] = {"rapl_zones": len(zones)}
    limits = [z.limit_w for z in zones if z.limit_w]
    tdp = sum(limits) if limits and len(limits) == len(zones) else None
    idle: float | None = None
    first = _rapl_energy_j(zones) if zones else None
    if first is not None:
        start = time.perf_counter()
        time.sleep(0.25)  # idle window: this process does nothing while the counter runs
        second = _rapl_energy_j(zones)
        elapsed = time.perf_counter() - start
        if second is not None and elapsed > 0:
            idle = _rapl_delta(zones, first, second) / elapsed
            details["rapl_idle_window_s"] = round(elapsed, 3)
        if load is not None and second is not None:
            start = time.perf_counter()
            load()
            third = _rapl_energy_j(zones)
            elapsed = time.perf_counter() - start
            if third is not None and elapsed > 0:
                details["rapl_load_w"] = round(_rapl_delta(zones, second, third) / elapsed, 2)
    if tdp is not None and idle is not None:
        return tdp, min(idle, tdp), "rapl", details
    estimate_tdp = WATTS_PER_CORE * cores
    if tdp is not None or idle is not None:
        details["rapl_partial"] = {"tdp_w": tdp, "idle_w": idle}
        log.info("local-cpu: RAPL only partly readable (%s); using the documented power estimate", details)
    return estimate_tdp, estimate_tdp * IDLE_FRACTION, "estimate", details


# ------------------------------------------------------------------------------------------------
# Calibration, cache and the catalogue entry
# ------------------------------------------------------------------------------------------------


def measure(info: dict[str, Any] | None = None) -> Calibration:
    """Run the calibration now (about 1 s), without the cache."""
    info = info or machine_info()
    started = time.perf_counter()
    flops, mm_details = measure_fp32_flops()
    gbs, copy_details = measure_bandwidth()
    cores = int(info["cores"])
    a = np.ones((1024, 1024), dtype=np.float32)

    def load() -> None:
        for _ in range(3):
            np.matmul(a, a)

    tdp, idle, power_source, power_details = measure_power(cores, load)
    theoretical = cores * float(info.get("mhz") or 0) * 1e6 * _flop_per_cycle(set(info["isa"]), info["arch"])
    return Calibration(
        fingerprint=fingerprint(info),
        machine=info,
        fp32_flops=flops,
        theoretical_fp32_flops=theoretical,
        memory_bandwidth_gbs=round(gbs, 2),
        memory_gb=float(info["memory_gb"]),
        cores=cores,
        tdp_w=round(tdp, 2),
        idle_w=round(idle, 2),
        power_source=power_source,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        duration_s=round(time.perf_counter() - started, 3),
        details={**mm_details, **copy_details, **power_details},
    )


def default_cache_dir() -> Path:
    """For callers without settings: the process environment's data directory."""
    from sustainml.config import environment_settings

    return environment_settings().data_dir


def _read_cache(path: Path, expected: str) -> Calibration | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("local-cpu: ignoring unreadable calibration cache %s: %s", path, exc)
        return None
    if not isinstance(raw, dict) or raw.get("version") != CALIBRATION_VERSION:
        log.info("local-cpu: calibration cache %s is from another version; recalibrating", path)
        return None
    data = raw.get("calibration")
    if not isinstance(data, dict) or data.get("fingerprint") != expected:
        log.info("local-cpu: calibration cache %s describes another machine; recalibrating", path)
        return None
    try:
        return Calibration(**data)
    except TypeError as exc:
        log.warning("local-cpu: malformed calibration cache %s: %s", path, exc)
        return None


def _write_cache(path: Path, calibration: Calibration) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(
        json.dumps({"version": CALIBRATION_VERSION, "calibration": asdict(calibration)}, indent=1),
        encoding="utf-8",
    )
    os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One calibration per machine at a time: parallel ones would slow each other down."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_memo: dict[Path, Calibration] = {}
_entry_memo: dict[int, tuple[Calibration, HardwareEntry]] = {}


def calibrate(cache_dir: Path | None = None, *, force: bool = False) -> Calibration:
    """This machine's calibration: from the cache when it matches the machine, else measured and cached.

    A cache directory that cannot be written is logged and the fresh measurement is still returned.
    """
    directory = cache_dir if cache_dir is not None else default_cache_dir()
    path = directory / CACHE_FILE
    expected = fingerprint(machine_info(clock=False))
    if not force:
        memo = _memo.get(path)
        if memo is not None and memo.fingerprint == expected:
            return memo
    info = machine_info()
    try:
        with _exclusive(directory / (CACHE_FILE + ".lock")):
            cached = None if force else _read_cache(path, expected)
            if cached is not None:
                _memo[path] = cached
                return cached
            calibration = measure(info)
            _write_cache(path, calibration)
    except OSError as exc:
        log.warning(
            "local-cpu: calibration cache in %s not usable (%s); measuring without caching", directory, exc
        )
        calibration = measure(info)
    log.info(
        "local-cpu calibrated in %.2f s: %.1f GFLOP/s fp32, %.1f GB/s",
        calibration.duration_s,
        calibration.fp32_flops / 1e9,
        calibration.memory_bandwidth_gbs,
    )
    _memo[path] = calibration
    return calibration


def entry_from(calibration: Calibration) -> HardwareEntry:
    """The measured ``local-cpu`` catalogue entry (aliases from hardware.json)."""
    base = hardware().get(LOCAL_CPU)
    info = calibration.machine
    isa = ", ".join(info.get("isa", [])[:6]) or "unknown ISA"
    theoretical = calibration.theoretical_fp32_flops
    peak_note = (
        f"; theoretical fp32 peak {theoretical / 1e9:.0f} GFLOP/s (cores x clock x FLOP/cycle)"
        if theoretical
        else ""
    )
    d = calibration.details
    power = (
        "power from RAPL (TDP = package power limit, idle = energy over a 0.25 s sleep)"
        if calibration.power_source == "rapl"
        else f"power estimated: TDP = {WATTS_PER_CORE:g} W x {calibration.cores} cores (Green Algorithms "
        f"default, CC BY 4.0), idle = {IDLE_FRACTION:.0%} of TDP (RAPL not readable)"
    )
    return replace(
        base,
        description=(
            f"This machine: {info.get('cpu_model', 'unknown CPU')}, {calibration.cores} usable cores "
            f"({isa}), {calibration.memory_gb:g} GB RAM; measured {calibration.measured_at}"
        ),
        peak_flops={"fp32": calibration.fp32_flops},
        memory_bandwidth_gbs=calibration.memory_bandwidth_gbs,
        memory_gb=calibration.memory_gb,
        tdp_w=calibration.tdp_w,
        idle_w=calibration.idle_w,
        source=(
            f"measured on this machine: fp32 = best achieved numpy float32 matmul (best at "
            f"n={d.get('matmul_n')}, {d.get('matmul_runs')} runs, BLAS {info.get('blas')}){peak_note}; "
            f"bandwidth = best {d.get('copy_mb')} MB array copy counting read + write bytes "
            f"(GB/s by threads {d.get('copy_gbs_by_threads')}); {power}"
        ),
        estimated=calibration.estimated,
        vendor=_vendor(str(info.get("cpu_model", ""))),
        year=0,
    )


def _vendor(model: str) -> str:
    lowered = model.lower()
    for key, name in (("intel", "Intel"), ("amd", "AMD"), ("apple", "Apple"), ("arm", "Arm")):
        if key in lowered:
            return name
    return ""


def local_cpu_entry(cache_dir: Path | None = None, *, force: bool = False) -> HardwareEntry:
    """``local-cpu`` as measured on this machine (cached); the hardware.json fallback if measuring fails."""
    try:
        calibration = calibrate(cache_dir, force=force)
        # One entry object per calibration: estimate memos key devices by identity.
        made = _entry_memo.get(id(calibration))
        if made is None or made[0] is not calibration:
            made = (calibration, entry_from(calibration))
            if len(_entry_memo) >= 8:  # recalibrations replace the entry; keep the memo small
                _entry_memo.clear()
            _entry_memo[id(calibration)] = made
        return made[1]
    except Exception as exc:
        log.exception("local-cpu: calibration failed; using the fallback figures of hardware.json")
        base = hardware().get(LOCAL_CPU)
        return replace(base, description=f"{base.description} (calibration failed: {exc})")
