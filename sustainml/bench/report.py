"""The benchmark report: machine information, the side-by-side table with ratios, scaling, memory,
and how each of the issue's targets fared (figures printed, never asserted)."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from sustainml.bench.common import SystemResult

# The targets (reported as met/missed, never asserted).
TARGET_VS_PIKA = 0.75
TARGET_VS_CELERY = 3.0
TARGET_P50_MS = 15.0
TARGET_P99_MS = 50.0
TARGET_IDLE_RSS_MB = 80.0


def machine_info(url: str) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = math.nan
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "rabbitmq": _rabbitmq_version(url),
        "load_avg_start": _loadavg(),
    }
    for pkg in ("pika", "celery", "kombu", "dramatiq", "SQLAlchemy"):
        try:
            info[pkg.lower()] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            info[pkg.lower()] = "not installed"
    return info


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _rabbitmq_version(url: str) -> str:
    import pika

    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
    except Exception as exc:  # the report still prints; the parts that need the broker say why
        return f"unreachable ({type(exc).__name__})"
    try:
        props = conn._impl.server_properties or {}  # type: ignore[attr-defined]
        version = props.get("version", b"?")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        conn.close()


@dataclass
class Report:
    machine: dict[str, Any]
    systems: list[SystemResult] = field(default_factory=list)
    scaling: list[SystemResult] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # part or system -> why
    settings: dict[str, Any] = field(default_factory=dict)

    def system(self, name: str) -> SystemResult | None:
        return next((s for s in self.systems if s.name == name), None)

    def ratios(self) -> list[dict[str, Any]]:
        ours = self.system("sustainml")
        if ours is None:
            return []
        rows = []
        for other in self.systems:
            if other is ours:
                continue
            rows.append(
                {
                    "vs": other.name,
                    "throughput_ratio": _ratio(ours.throughput, other.throughput),
                    "p50_ratio": _ratio(ours.p50_ms, other.p50_ms),
                    "p99_ratio": _ratio(ours.p99_ms, other.p99_ms),
                }
            )
        return rows

    def targets(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        ours = self.system("sustainml")
        pika = self.system("bare pika")
        celery = self.system("Celery")
        if ours is not None and pika is not None:
            r = _ratio(ours.throughput, pika.throughput)
            out.append(_target(f"throughput >= {TARGET_VS_PIKA} x bare pika", r, r >= TARGET_VS_PIKA, "x"))
        if ours is not None and celery is not None:
            r = _ratio(ours.throughput, celery.throughput)
            out.append(_target(f"throughput >= {TARGET_VS_CELERY:g} x Celery", r, r >= TARGET_VS_CELERY, "x"))
        if ours is not None:
            out.append(
                _target(
                    f"single-task p50 < {TARGET_P50_MS:g} ms", ours.p50_ms, ours.p50_ms < TARGET_P50_MS, "ms"
                )
            )
            out.append(
                _target(
                    f"single-task p99 < {TARGET_P99_MS:g} ms", ours.p99_ms, ours.p99_ms < TARGET_P99_MS, "ms"
                )
            )
        idle = (self.memory.get("rss") or {}).get("idle_mb") or {}
        workers = {k: v for k, v in idle.items() if k != "orchestrator"}
        if workers:
            worst = max(workers.values())
            out.append(
                _target(
                    f"idle worker RSS < {TARGET_IDLE_RSS_MB:g} MB (largest of the six)",
                    worst,
                    worst < TARGET_IDLE_RSS_MB,
                    "MB",
                )
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "settings": self.settings,
            "systems": [s.to_json() for s in self.systems],
            "ratios": self.ratios(),
            "scaling": [s.to_json() for s in self.scaling],
            "memory": self.memory,
            "targets": self.targets(),
            "skipped": self.skipped,
        }

    def render_markdown(self) -> str:
        m = self.machine
        lines = [
            "## Machine",
            "",
            f"- CPU: {m.get('cpu')} ({m.get('cores')} cores), RAM {m.get('ram_gb')} GB, {m.get('os')}",
            f"- Python {m.get('python')}, RabbitMQ {m.get('rabbitmq')} (local), pika {m.get('pika')}, "
            f"Celery {m.get('celery')} (kombu {m.get('kombu')}), Dramatiq {m.get('dramatiq')}, "
            f"SQLAlchemy {m.get('sqlalchemy')}",
            f"- load average (1/5/15 min) at start: {m.get('load_avg_start')}, at end: "
            f"{m.get('load_avg_end', '?')}",
            f"- run: {', '.join(f'{k}={v}' for k, v in self.settings.items())}",
            "",
        ]
        if self.systems:
            lines += [
                "## Six-stage chain, zero-cost stages, same broker and payload sizes",
                "",
                "| system | setup | tasks/s | p50 ms | p95 ms | p99 ms | failed |",
                "|---|---|---:|---:|---:|---:|---:|",
            ]
            for s in self.systems:
                lines.append(
                    f"| {s.name} | {s.setup} | {_f(s.throughput, 1)} | {_f(s.p50_ms, 1)} | "
                    f"{_f(s.p95_ms, 1)} | {_f(s.p99_ms, 1)} | {s.failed} |"
                )
            lines.append("")
            ratios = self.ratios()
            if ratios:
                lines += [
                    "| ours / ... | throughput ratio | p50 latency ratio | p99 latency ratio |",
                    "|---|---:|---:|---:|",
                ]
                for r in ratios:
                    lines.append(
                        f"| {r['vs']} | {_f(r['throughput_ratio'], 2)} | {_f(r['p50_ratio'], 2)} | "
                        f"{_f(r['p99_ratio'], 2)} |"
                    )
                lines.append("")
            shown = {s.name: {k: v for k, v in s.extra.items() if k != "queues"} for s in self.systems}
            extra = [f"{name}: {e}" for name, e in shown.items() if e]
            if extra:
                lines += ["Per-system measurements: " + "; ".join(extra), ""]
        if self.scaling:
            lines += [
                "## Scaling a CPU-bound stage (HW_RESOURCES, shipped logic)",
                "",
                "| replicas | tasks | tasks/s | speed-up vs 1 | failed |",
                "|---|---:|---:|---:|---:|",
            ]
            for s in self.scaling:
                lines.append(
                    f"| {s.name} | {s.tasks} | {_f(s.throughput, 2)} | {s.extra.get('speedup')} | "
                    f"{s.failed} |"
                )
            lines += ["", f"Setup: {self.scaling[0].setup}.", ""]
        rss = self.memory.get("rss")
        if rss:
            lines += [
                "## Memory (VmRSS, MB)",
                "",
                "| process | idle | busy (peak) |",
                "|---|---:|---:|",
            ]
            for name, idle in rss["idle_mb"].items():
                lines.append(f"| {name} | {idle} | {rss['busy_peak_mb'].get(name)} |")
            lines += [
                "",
                f"Busy: {rss['busy_tasks']} real tasks (shipped logic) at {rss['busy_rate']} tasks/s.",
                "",
            ]
        db = self.memory.get("taskdb")
        if db:
            lines += ["## TaskDB ingest (one thread, the orchestrator's write path)", ""]
            lines += ["| backend | records/s | tasks/s (1 input + 6 outputs) |", "|---|---:|---:|"]
            for backend, fig in db.items():
                if "error" in fig:
                    lines.append(f"| {backend} | {fig['error']} | |")
                else:
                    lines.append(f"| {backend} | {fig['records_per_s']} | {fig['tasks_per_s']} |")
            lines.append("")
        targets = self.targets()
        if targets:
            lines += ["## Targets", "", "| target | measured | met |", "|---|---:|---|"]
            for t in targets:
                lines.append(
                    f"| {t['target']} | {_f(t['value'], 2)} {t['unit']} | {'yes' if t['met'] else 'MISSED'} |"
                )
            lines.append("")
        if self.skipped:
            lines += ["## Not measured", ""]
            lines += [f"- {k}: {v}" for k, v in self.skipped.items()]
            lines.append("")
        return "\n".join(lines)


def _ratio(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return math.nan
    return a / b


def _target(name: str, value: float, met: bool, unit: str) -> dict[str, Any]:
    return {"target": name, "value": value if math.isfinite(value) else None, "met": bool(met), "unit": unit}


def _f(value: float | None, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def finish(report: Report) -> None:
    report.machine["load_avg_end"] = _loadavg()


__all__ = ["Report", "finish", "machine_info"]
