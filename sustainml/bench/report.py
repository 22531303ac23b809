"""The benchmark report: machine information, the side-by-side table with ratios, scaling, memory,
the shipped logic, and each figure of the throughput plan next to its target (printed, never
asserted)."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from sustainml.bench.common import SystemResult

# The product's throughput plan: each figure is printed next to its target (met or missed,
# never asserted).
TARGET_VS_PIKA = 0.30  # throughput of the zero-cost chain, ours / bare pika
TARGET_VS_CELERY = 3.0
TARGET_VS_DRAMATIQ = 2.0
TARGET_P50_VS_PIKA = 2.0  # latency, ours / bare pika
TARGET_P99_VS_PIKA = 3.0
TARGET_ORCHESTRATOR_CPU_MS = 1.5  # orchestrator CPU per task, zero-cost chain
TARGET_SHIPPED_TASKS_S = 150.0  # shipped logic, varied descriptions, one replica per stage
TARGET_SHIPPED_P50_MS = 15.0  # shipped logic, single task end to end
TARGET_LOGIC_MEDIAN_MS = 20.0  # shipped logic in process, median per task (six callbacks)
TARGET_POSTGRES_RECORDS_S = 5000.0
TARGET_IDLE_RSS_MB = 60.0


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
    shipped: dict[str, Any] = field(default_factory=dict)  # part 6: the shipped logic
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

    def orchestrator_cpu_ms(self) -> float:
        """The orchestrator's CPU per task during part 1's throughput run (utime + stime of its
        process over the run, from its share of a core and the completion rate)."""
        ours = self.system("sustainml")
        if ours is None:
            return math.nan
        percent = (ours.extra.get("cpu_percent_during_throughput") or {}).get("orchestrator")
        if percent is None or not ours.throughput > 0:
            return math.nan
        return float(percent) / 100.0 / ours.throughput * 1e3

    def targets(self) -> list[dict[str, Any]]:
        """Every figure of the throughput plan that was measured, with its target."""
        out: list[dict[str, Any]] = []
        ours = self.system("sustainml")
        if ours is not None:
            for name, want in (
                ("bare pika", TARGET_VS_PIKA),
                ("Celery", TARGET_VS_CELERY),
                ("Dramatiq", TARGET_VS_DRAMATIQ),
            ):
                other = self.system(name)
                if other is not None:
                    r = _ratio(ours.throughput, other.throughput)
                    out.append(_target(f"zero-cost chain throughput, ours / {name}", r, "x", ">=", want))
            pika = self.system("bare pika")
            if pika is not None:
                for q, want in (("p50", TARGET_P50_VS_PIKA), ("p99", TARGET_P99_VS_PIKA)):
                    r = _ratio(getattr(ours, f"{q}_ms"), getattr(pika, f"{q}_ms"))
                    out.append(_target(f"single-task {q}, ours / bare pika", r, "x", "<=", want))
            out.append(
                _target(
                    "orchestrator CPU per task (part 1)",
                    self.orchestrator_cpu_ms(),
                    "ms",
                    "<=",
                    TARGET_ORCHESTRATOR_CPU_MS,
                )
            )
        if self.shipped:
            fig = self.shipped
            out.append(
                _target(
                    "shipped logic, varied descriptions, one replica per stage",
                    float(fig["tasks_per_s"]),
                    "tasks/s",
                    ">=",
                    TARGET_SHIPPED_TASKS_S,
                )
            )
            out.append(
                _target(
                    "shipped logic, single task end to end, p50",
                    float(fig["single_p50_ms"]),
                    "ms",
                    "<=",
                    TARGET_SHIPPED_P50_MS,
                )
            )
            out.append(
                _target(
                    "shipped logic in process, median per task",
                    float(fig["in_process_median_ms"]),
                    "ms",
                    "<",
                    TARGET_LOGIC_MEDIAN_MS,
                )
            )
        pg = (self.memory.get("taskdb") or {}).get("postgresql") or {}
        if "records_per_s" in pg:
            out.append(
                _target(
                    "PostgreSQL TaskDB ingest",
                    float(pg["records_per_s"]),
                    "records/s",
                    ">=",
                    TARGET_POSTGRES_RECORDS_S,
                )
            )
        idle = (self.memory.get("rss") or {}).get("idle_mb") or {}
        workers = [v for k, v in idle.items() if k != "orchestrator"]
        if workers:
            out.append(
                _target("idle worker RSS, largest of the six", max(workers), "MB", "<=", TARGET_IDLE_RSS_MB)
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
            "shipped": self.shipped,
            "orchestrator_cpu_ms_per_task": _finite(self.orchestrator_cpu_ms()),
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
            cpu = self.orchestrator_cpu_ms()
            if math.isfinite(cpu):
                lines += [f"Orchestrator CPU per task (part 1 throughput run): {cpu:.2f} ms", ""]
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
            lines += [
                "| backend | records/s, group commit | tasks/s (1 input + 6 outputs) "
                "| records/s, a task per commit |",
                "|---|---:|---:|---:|",
            ]
            for backend, fig in db.items():
                if "error" in fig:
                    lines.append(f"| {backend} | {fig['error']} | | |")
                else:
                    lines.append(
                        f"| {backend} | {fig['records_per_s']} ({fig.get('batch', 1)} tasks a commit) | "
                        f"{fig['tasks_per_s']} | {fig.get('records_per_s_unbatched', '')} |"
                    )
            lines.append("")
        if self.shipped:
            lines += _render_shipped(self.shipped)
        targets = self.targets()
        if targets:
            lines += ["## Targets", "", "| figure | measured | target | met |", "|---|---:|---:|---|"]
            for t in targets:
                lines.append(
                    f"| {t['figure']} | {_f(t['value'], 2)} {t['unit']} | {t['target']} | "
                    f"{'yes' if t['met'] else 'MISSED'} |"
                )
            lines.append("")
        if self.skipped:
            lines += ["## Not measured", ""]
            lines += [f"- {k}: {v}" for k, v in self.skipped.items()]
            lines.append("")
        return "\n".join(lines)


def _render_shipped(fig: dict[str, Any]) -> list[str]:
    cpu = fig.get("cpu_ms_per_task") or {}
    return [
        "## Shipped stage logic, descriptions written by others (one replica per stage)",
        "",
        "| figure | measured | target |",
        "|---|---:|---:|",
        f"| throughput, {fig['tasks']} tasks ({fig['failed']} failed) | {fig['tasks_per_s']} tasks/s | "
        f">= {TARGET_SHIPPED_TASKS_S:g} tasks/s |",
        f"| single task end to end, p50 ({fig['latency_tasks']} tasks) | {fig['single_p50_ms']} ms | "
        f"<= {TARGET_SHIPPED_P50_MS:g} ms |",
        f"| single task end to end, p95 | {fig['single_p95_ms']} ms | |",
        f"| in process, six callbacks, median per task | {fig['in_process_median_ms']} ms | "
        f"< {TARGET_LOGIC_MEDIAN_MS:g} ms |",
        f"| in process, p95 per task | {fig['in_process_p95_ms']} ms | |",
        "",
        "CPU per task during the throughput run (ms): " + ", ".join(f"{k} {v}" for k, v in cpu.items()),
        "",
    ]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _ratio(a: float, b: float) -> float:
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return math.nan
    return a / b


_COMPARE = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}


def _target(figure: str, value: float, unit: str, compare: str, goal: float) -> dict[str, Any]:
    finite = math.isfinite(value)
    return {
        "figure": figure,
        "target": f"{compare} {goal:,g} {unit}",
        "value": value if finite else None,
        "met": finite and bool(_COMPARE[compare](value, goal)),
        "unit": unit,
    }


def _f(value: float | None, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def finish(report: Report) -> None:
    report.machine["load_avg_end"] = _loadavg()


__all__ = ["Report", "finish", "machine_info"]
