"""``sustainml eval latency``: the roofline estimate against onnxruntime on this CPU, and the
calibration of ``local-cpu``.

1. **Models**: every catalogue model that fits here, smallest MACs first: fp32 weights at most
   ``max_weights_fraction`` of this machine's memory and ``max_parameters``, and a quick estimate
   (whole-model roofline with the default factors) of at most ``max_estimated_s`` per run. Models
   are built (``onnxgraphs.cache``; cached) and measured (``estimate.measure``: warm-up, median of
   up to ``runs`` runs, cached by model hash, batch and device) until ``budget_s`` is spent; the
   rest are listed as skipped with the reason.
2. **Honest calibration**: the measured models, sorted by MACs, are split alternately into a *fit*
   half (even positions) and a *held-out* half (odd positions). The three ``local-cpu`` factors of
   the roofline (compute efficiency eta_c, memory efficiency eta_m, overhead per operator) are fitted
   on the fit half only, minimising the mean squared log ratio measured / estimated over a grid
   (eta_c and eta_m 0.02-4 in 41 geometric steps each; overhead 0-100 us in 9 steps). The
   error reported is that of the **held-out** half, which the fit never saw; the defaults' error on
   the same half is reported too. Factors above 1 are allowed: ``local-cpu``'s peak is one measured
   matmul rate, and onnxruntime's fused kernels may beat the per-operator byte count.
   With ``use_cache=False`` every model is measured again and so is ``local-cpu`` itself (peak and
   bandwidth, ``catalogue.localcpu``); otherwise earlier measurements of the same model, batch and
   machine are reused (the report says how many). On a machine shared with other work the
   measurements move with the load: that noise is part of the error reported.
3. Only when asked (``save=True``, ``sustainml eval latency --save-calibration``) are the fitted
   factors written (``<SUSTAINML_DATA_DIR>/latency-calibration.json``, keyed by the machine
   fingerprint and onnxruntime version); HW_RESOURCES then uses them for ``local-cpu``. An
   evaluation on its own never changes what the workers estimate.

Ratio = measured / estimated (1 = exact, 2 = the estimate is twice too fast). "Worst" is the ratio
furthest from 1 either way (by |log ratio|).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from sustainml.catalogue import HardwareEntry, ModelEntry
from sustainml.estimate import measure as measuring
from sustainml.estimate import roofline as rl

DEFAULT_BUDGET_S: Final = 150.0
DEFAULT_MAX_PARAMETERS: Final = 400_000_000
DEFAULT_MAX_ESTIMATED_S: Final = 3.0
DEFAULT_MAX_WEIGHTS_FRACTION: Final = 0.25
DEFAULT_RUNS: Final = 7

_ETA_C: Final = np.geomspace(0.02, 4.0, 41)
_ETA_M: Final = np.geomspace(0.02, 4.0, 41)
_OVERHEAD: Final = np.array([0.0, 1e-6, 2e-6, 5e-6, 10e-6, 20e-6, 35e-6, 50e-6, 100e-6])


@dataclass(frozen=True)
class ModelLatency:
    name: str
    macs: int
    parameters: int
    operators: int
    batch_size: int
    measured_s: float
    runs: int
    cached: bool
    default_estimate_s: float  # with the uncalibrated local factors
    estimate_s: float  # with the fitted factors
    role: str  # "fit" or "held-out"
    bound: str

    @property
    def ratio(self) -> float:
        return self.measured_s / self.estimate_s

    @property
    def default_ratio(self) -> float:
        return self.measured_s / self.default_estimate_s

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "macs": self.macs,
            "parameters": self.parameters,
            "operators": self.operators,
            "batch_size": self.batch_size,
            "measured_s": self.measured_s,
            "runs": self.runs,
            "cached_measurement": self.cached,
            "estimate_s": self.estimate_s,
            "ratio": self.ratio,
            "default_estimate_s": self.default_estimate_s,
            "default_ratio": self.default_ratio,
            "role": self.role,
            "bound": self.bound,
        }


def worst(ratios: Sequence[float]) -> float:
    """The ratio furthest from 1 in either direction (NaN for none)."""
    return max(ratios, key=lambda r: abs(math.log(r))) if ratios else math.nan


def median(ratios: Sequence[float]) -> float:
    return statistics.median(ratios) if ratios else math.nan


def within(ratios: Sequence[float], factor: float) -> float:
    """Fraction of ratios within ``factor`` of 1 (1/factor <= r <= factor)."""
    if not ratios:
        return math.nan
    return sum(1 for r in ratios if 1 / factor <= r <= factor) / len(ratios)


@dataclass
class LatencyReport:
    device: dict[str, Any]
    models: list[ModelLatency]
    skipped: list[tuple[str, str]]
    default_efficiency: rl.Efficiency
    fitted: rl.LocalCalibration | None
    saved_to: str | None
    seconds: float
    notes: list[str] = field(default_factory=list)

    def _ratios(self, role: str | None, default: bool = False) -> list[float]:
        return [
            (m.default_ratio if default else m.ratio) for m in self.models if role is None or m.role == role
        ]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for label, role in (("held_out", "held-out"), ("fit", "fit"), ("all", None)):
            fitted = self._ratios(role)
            default = self._ratios(role, default=True)
            out[label] = {
                "models": len(fitted),
                "median_ratio": median(fitted),
                "worst_ratio": worst(fitted),
                "within_1_5x": within(fitted, 1.5),
                "within_2x": within(fitted, 2.0),
                "default_median_ratio": median(default),
                "default_worst_ratio": worst(default),
            }
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "method": "median of onnxruntime runs vs per-operator roofline; local-cpu factors fitted on "
            "alternate models (by MACs), error reported on the held-out half",
            "default_efficiency": self.default_efficiency.to_dict(),
            "fitted_efficiency": None
            if self.fitted is None
            else {
                "compute": self.fitted.compute,
                "memory": self.fitted.memory,
                "op_overhead_s": self.fitted.op_overhead_s,
            },
            "calibration_file": self.saved_to,
            "summary": self.summary(),
            "models": [m.to_json() for m in self.models],
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
            "seconds": self.seconds,
            "notes": self.notes,
        }

    def render(self) -> str:
        d = self.device
        lines = [
            f"latency on this CPU: {d.get('description', '')}",
            f"  local-cpu peak {d.get('peak_gflops', 0):.1f} GFLOP/s fp32 (measured sgemm), "
            f"bandwidth {d.get('bandwidth_gbs', 0):.1f} GB/s (measured copy); onnxruntime "
            f"{d.get('onnxruntime', '')}, {d.get('threads', '')} threads",
            f"  {len(self.models)} models measured ({sum(m.cached for m in self.models)} from the "
            f"measurement cache), {len(self.skipped)} skipped, {self.seconds:.0f} s",
            "",
            f"{'model':<24} {'GMACs':>8} {'params M':>9} {'measured ms':>12} {'estimate ms':>12} "
            f"{'ratio':>6} {'default':>8}  role",
        ]
        for m in self.models:
            lines.append(
                f"{m.name:<24} {m.macs / 1e9:>8.3f} {m.parameters / 1e6:>9.2f} {m.measured_s * 1e3:>12.3f} "
                f"{m.estimate_s * 1e3:>12.3f} {m.ratio:>6.2f} {m.default_ratio:>8.2f}  {m.role}"
            )
        s = self.summary()
        de = self.default_efficiency
        lines += [
            "",
            "ratio = measured / estimated; 'default' = with the uncalibrated factors "
            f"(eta_c {de.compute:g}, eta_m {de.memory:g}, {de.op_overhead_s * 1e6:g} us per op)",
        ]
        if self.fitted is not None:
            f = self.fitted
            lines.append(
                f"fitted on {s['fit']['models']} models: eta_c {f.compute:.3g}, eta_m {f.memory:.3g}, "
                f"{f.op_overhead_s * 1e6:g} us per op"
            )
        for label in ("held_out", "fit", "all"):
            x = s[label]
            if not x["models"]:
                continue
            lines.append(
                f"{label.replace('_', '-'):>9}: {x['models']:>2} models  "
                f"median ratio {x['median_ratio']:.2f}  "
                f"worst {x['worst_ratio']:.2f}  within 1.5x {x['within_1_5x']:.0%}  within 2x "
                f"{x['within_2x']:.0%}   (defaults: median {x['default_median_ratio']:.2f}, "
                f"worst {x['default_worst_ratio']:.2f})"
            )
        if self.saved_to:
            lines.append(f"calibration saved to {self.saved_to} (HW_RESOURCES uses it for local-cpu)")
        else:
            lines.append(
                "calibration not saved (HW_RESOURCES keeps its current factors; "
                "--save-calibration writes these)"
            )
        if self.skipped:
            lines.append("")
            lines.append("skipped:")
            lines += [f"  {n}: {r}" for n, r in self.skipped]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Fitting
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Costs:
    flops: np.ndarray[Any, Any]
    nbytes: np.ndarray[Any, Any]
    working_ops: int


def predict(costs: _Costs, peak: float, bandwidth: float, eff: rl.Efficiency) -> float:
    t = np.maximum(costs.flops / (peak * eff.compute), costs.nbytes / (bandwidth * eff.memory))
    return float(t.sum()) + costs.working_ops * eff.op_overhead_s


def fit(
    costs: Sequence[_Costs], measured: Sequence[float], peak: float, bandwidth: float
) -> tuple[float, float, float, float]:
    """(eta_c, eta_m, overhead_s, loss) minimising the mean squared log ratio over the grid."""
    if not costs:
        raise ValueError("nothing to fit")
    log_measured = np.log(np.asarray(measured))
    sums = np.empty((len(costs), _ETA_C.size, _ETA_M.size))
    for j, c in enumerate(costs):
        tc = c.flops[:, None] / (peak * _ETA_C[None, :])  # ops x eta_c
        tm = c.nbytes[:, None] / (bandwidth * _ETA_M[None, :])  # ops x eta_m
        sums[j] = np.maximum(tc[:, :, None], tm[:, None, :]).sum(axis=0)
    working = np.array([c.working_ops for c in costs], dtype=float)
    best: tuple[float, int, int, int] = (math.inf, 0, 0, 0)
    for k, overhead in enumerate(_OVERHEAD):
        total = sums + (working * overhead)[:, None, None]
        with np.errstate(divide="ignore"):
            loss = ((np.log(total) - log_measured[:, None, None]) ** 2).mean(axis=0)
        flat = int(np.argmin(loss))
        ic, im = divmod(flat, _ETA_M.size)
        if float(loss[ic, im]) < best[0]:
            best = (float(loss[ic, im]), ic, im, k)
    loss_value, ic, im, k = best
    return float(_ETA_C[ic]), float(_ETA_M[im]), float(_OVERHEAD[k]), loss_value


# ------------------------------------------------------------------------------------------------
# The evaluation
# ------------------------------------------------------------------------------------------------


def _memory_bytes() -> float:
    import os

    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):
        return 8e9


def evaluate(
    *,
    budget_s: float = DEFAULT_BUDGET_S,
    max_parameters: int = DEFAULT_MAX_PARAMETERS,
    max_estimated_s: float = DEFAULT_MAX_ESTIMATED_S,
    max_weights_fraction: float = DEFAULT_MAX_WEIGHTS_FRACTION,
    runs: int = DEFAULT_RUNS,
    names: Sequence[str] | None = None,
    save: bool = False,
    data_dir: Path | None = None,
    use_cache: bool = True,
    progress: Callable[[str], None] | None = None,
) -> LatencyReport:
    """Measure, fit and report (see the module docstring)."""
    import onnxruntime

    from sustainml.catalogue import models
    from sustainml.catalogue.localcpu import local_cpu_entry, usable_cores
    from sustainml.estimate.model_files import analysed, catalogue_file

    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    # A fresh evaluation re-measures the device too: its peak and bandwidth anchor every estimate.
    device: HardwareEntry = local_cpu_entry(force=not use_cache)
    peak, bandwidth = rl.device_rates(device)
    default_eff = rl.EFFICIENCY["local"]
    memory_limit = _memory_bytes() * max_weights_fraction

    catalogue = list(models())
    if names is not None:
        wanted = {models().get(n).name for n in names}
        catalogue = [m for m in catalogue if m.name in wanted]
    catalogue.sort(key=lambda m: (m.macs, m.parameters, m.name))

    skipped: list[tuple[str, str]] = []
    chosen: list[ModelEntry] = []
    for entry in catalogue:
        quick = rl.quick_estimate(entry.macs, entry.parameters, device, efficiency=default_eff)
        if entry.parameters > max_parameters:
            skipped.append(
                (entry.name, f"{entry.parameters / 1e6:.0f} M parameters > {max_parameters / 1e6:.0f} M")
            )
        elif entry.weights_mb_fp32 * 1e6 > memory_limit:
            skipped.append(
                (
                    entry.name,
                    f"fp32 weights {entry.weights_mb_fp32:.0f} MB > {max_weights_fraction:.0%} of RAM",
                )
            )
        elif quick.latency_s > max_estimated_s:
            skipped.append(
                (entry.name, f"quick estimate {quick.latency_s:.1f} s per run > {max_estimated_s:g} s")
            )
        else:
            chosen.append(entry)

    rows: list[tuple[ModelEntry, _Costs, measuring.Measurement, str, int]] = []
    measure_dir = (data_dir / measuring.MEASUREMENTS_DIR) if data_dir is not None else None
    for n, entry in enumerate(chosen):
        elapsed = time.perf_counter() - started
        if elapsed > budget_s:
            skipped.extend((e.name, f"time budget of {budget_s:g} s spent") for e in chosen[n:])
            break
        say(f"[{elapsed:5.0f} s] {entry.name}")
        try:
            path = catalogue_file(entry)
            report = analysed(path, 1)
            m = measuring.measure_latency(
                path,
                1,
                runs=runs,
                budget_s=min(3.0, max(budget_s - elapsed, 0.5)),
                cache_dir=measure_dir,
                use_cache=use_cache,
            )
        except Exception as exc:  # one model failing must not stop the evaluation; it is reported
            skipped.append((entry.name, f"{type(exc).__name__}: {exc}"))
            continue
        flops = np.array([float(o.flops) for o in report.ops])
        nbytes = np.array([float(o.bytes_moved) for o in report.ops])
        working = int(np.count_nonzero((flops > 0) | (nbytes > 0)))
        bound = rl.estimate(report, device, efficiency=default_eff).bound
        rows.append((entry, _Costs(flops, nbytes, working), m, bound, len(report.ops)))

    roles = ["fit" if i % 2 == 0 else "held-out" for i in range(len(rows))]
    notes: list[str] = []
    if len(rows) < 4:
        roles = ["fit"] * len(rows)
        notes.append("fewer than 4 models measured: fitted on all, no held-out error")
    fitted: rl.LocalCalibration | None = None
    saved_to: str | None = None
    eff = default_eff
    if rows:
        fit_idx = [i for i, r in enumerate(roles) if r == "fit"]
        eta_c, eta_m, overhead, _loss = fit(
            [rows[i][1] for i in fit_idx], [rows[i][2].median_s for i in fit_idx], peak, bandwidth
        )
        eff = rl.Efficiency(eta_c, eta_m, overhead, "fitted by sustainml eval latency")

    results: list[ModelLatency] = []
    for (entry, costs, m, bound, n_ops), role in zip(rows, roles, strict=True):
        results.append(
            ModelLatency(
                name=entry.name,
                macs=entry.macs,
                parameters=entry.parameters,
                operators=n_ops,
                batch_size=1,
                measured_s=m.median_s,
                runs=m.runs,
                cached=m.cached,
                default_estimate_s=predict(costs, peak, bandwidth, default_eff),
                estimate_s=predict(costs, peak, bandwidth, eff),
                role=role,
                bound=bound,
            )
        )
    if rows:
        fingerprint, ort_version = rl.machine_key()
        fit_ratios = [r.ratio for r in results if r.role == "fit"]
        test_ratios = [r.ratio for r in results if r.role == "held-out"]
        fitted = rl.LocalCalibration(
            fingerprint=fingerprint,
            onnxruntime=ort_version,
            compute=eff.compute,
            memory=eff.memory,
            op_overhead_s=eff.op_overhead_s,
            fitted_at=datetime.now(UTC).isoformat(timespec="seconds"),
            fit_models=[r.name for r in results if r.role == "fit"],
            test_models=[r.name for r in results if r.role == "held-out"],
            fit_median_ratio=median(fit_ratios),
            test_median_ratio=median(test_ratios) if test_ratios else math.nan,
            test_worst_ratio=worst(test_ratios) if test_ratios else math.nan,
            peak_flops=peak,
            bandwidth_bytes_s=bandwidth,
        )
        if save:
            saved_to = str(rl.save_local_calibration(fitted, data_dir))

    return LatencyReport(
        device={
            "name": device.name,
            "description": device.description,
            "peak_gflops": peak / 1e9,
            "bandwidth_gbs": bandwidth / 1e9,
            "onnxruntime": str(onnxruntime.__version__),
            "threads": usable_cores(),
        },
        models=results,
        skipped=skipped,
        default_efficiency=default_eff,
        fitted=fitted,
        saved_to=saved_to,
        seconds=time.perf_counter() - started,
        notes=notes,
    )


__all__ = ["LatencyReport", "ModelLatency", "evaluate", "fit", "median", "predict", "within", "worst"]
