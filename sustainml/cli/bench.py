"""`sustainml bench`: the side-by-side benchmark (figures printed, never asserted).

Parts: 1 our pipeline, 2 bare pika, 3 Celery and Dramatiq, 4 scaling a CPU-bound stage,
5 memory and TaskDB ingest, 6 the shipped logic on descriptions written by others.
``sustainml bench latency`` measures single tasks one at a time.
See docs/performance.md for the latest figures and how to read them.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from sustainml.cli.common import fail, settings_or_env

log = logging.getLogger(__name__)

ALL_PARTS = (1, 2, 3, 4, 5, 6)


def _parse_parts(value: str) -> tuple[int, ...]:
    try:
        parts = tuple(sorted({int(p) for p in value.split(",") if p.strip()}))
    except ValueError:
        raise click.BadParameter(f"expected numbers from 1 to 6 separated by commas, got {value!r}") from None
    if not parts or any(p not in ALL_PARTS for p in parts):
        raise click.BadParameter(f"expected numbers from 1 to 6 separated by commas, got {value!r}")
    return parts


@click.group(invoke_without_command=True, subcommand_metavar="[latency [ARGS]...]")
@click.option(
    "--tasks",
    type=int,
    default=None,
    help="Tasks per throughput run, the same for every system [1000; --quick 30].",
)
@click.option(
    "--latency-tasks", type=int, default=None, help="Sequential tasks per latency run [200; --quick 10]."
)
@click.option(
    "--parts", default="1,2,3,4,5,6", show_default=True, help="Which parts to run (comma-separated)."
)
@click.option("--quick", is_flag=True, help="Tiny runs: checks that everything works, figures are rough.")
@click.option(
    "--defaults-too", is_flag=True, help="Also measure Celery and Dramatiq with their default settings."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report (Markdown) here."
)
@click.pass_context
def bench(
    ctx: click.Context,
    tasks: int | None,
    latency_tasks: int | None,
    parts: str,
    quick: bool,
    defaults_too: bool,
    as_json: bool,
    output: Path | None,
) -> None:
    """Benchmark the pipeline side by side with bare pika, Celery and Dramatiq on the same broker.

    `sustainml bench latency` measures single tasks instead, one at a time."""
    if ctx.invoked_subcommand is not None:
        return  # the subcommand measures; the side-by-side run's options do not apply to it
    from sustainml.bench.common import BenchError, payload_sizes
    from sustainml.bench.report import Report, finish, machine_info

    chosen = _parse_parts(parts)
    url = settings_or_env(ctx).broker_url
    n = tasks if tasks is not None else (30 if quick else 1000)
    lat = latency_tasks if latency_tasks is not None else (10 if quick else 200)
    scaling_tasks = max(8, n // 10) if quick else max(40, n // 5)
    busy_tasks = 4 if quick else 30
    ingest_tasks = 20 if quick else 300
    shipped_tasks = 20 if quick else 200
    if n < 1 or lat < 1:
        raise click.BadParameter("--tasks and --latency-tasks must be >= 1")

    report = Report(machine=machine_info(url))
    report.settings = {
        "tasks": n,
        "latency_tasks": lat,
        "parts": ",".join(map(str, chosen)),
        "payload_bytes": ",".join(map(str, payload_sizes())),
    }
    if 4 in chosen:
        report.settings["scaling_tasks"] = scaling_tasks
    if 5 in chosen:
        report.settings["busy_tasks"] = busy_tasks
        report.settings["ingest_tasks"] = ingest_tasks
    if 6 in chosen:
        report.settings["shipped_tasks"] = shipped_tasks

    def progress(msg: str) -> None:
        click.echo(msg, err=True)

    with tempfile.TemporaryDirectory(prefix="sustainml-bench-logs-") as logs:
        log_dir = Path(logs)
        sizes = payload_sizes()
        counts = {
            "scaling": scaling_tasks,
            "busy": busy_tasks,
            "ingest": ingest_tasks,
            "shipped": shipped_tasks,
        }
        for part, label, run in _part_runs(chosen, url, n, lat, counts, sizes, log_dir, defaults_too):
            progress(f"[bench] part {part}: {label} ...")
            try:
                result = run()
            except ImportError as exc:
                report.skipped[label] = f"not installed ({exc.name}): pip install 'sustainml[bench]'"
                progress(f"[bench]   skipped: {report.skipped[label]}")
                continue
            except BenchError as exc:
                report.skipped[label] = f"failed: {exc}"
                progress(f"[bench]   failed: {exc}")
                continue
            except Exception as exc:  # one part's bug must not cost the figures of the others
                log.exception("bench part %s (%s) failed", part, label)
                report.skipped[label] = f"failed: {type(exc).__name__}: {exc}"
                progress(f"[bench]   failed: {report.skipped[label]}")
                continue
            _store(report, part, result)
            progress(f"[bench]   done: {_summary(result)}")
    finish(report)
    text = report.render_markdown()
    if output is not None:
        output.write_text(text + "\n")
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, default=str))
    else:
        click.echo(text)
    if report.skipped and not (report.systems or report.scaling or report.memory or report.shipped):
        sys.exit(1)


def _part_runs(
    chosen: tuple[int, ...],
    url: str,
    n: int,
    lat: int,
    counts: dict[str, int],
    sizes: list[int],
    log_dir: Path,
    defaults_too: bool,
) -> list[tuple[int, str, Any]]:
    """(part, label, thunk) in run order; frameworks are imported only when their part runs."""
    runs: list[tuple[int, str, Any]] = []
    if 1 in chosen:

        def ours() -> Any:
            from sustainml.bench import ours as m

            return m.run(url, n, lat)

        runs.append((1, "sustainml", ours))
    if 2 in chosen:

        def pika() -> Any:
            from sustainml.bench import barepika

            return barepika.run(url, n, lat, sizes, log_dir)

        runs.append((2, "bare pika", pika))
    if 3 in chosen:
        for reliable in (True, False) if defaults_too else (True,):

            def celery(reliable: bool = reliable) -> Any:
                from sustainml.bench import celery_chain

                return celery_chain.run(url, n, lat, sizes, log_dir, reliable=reliable)

            def dramatiq(reliable: bool = reliable) -> Any:
                from sustainml.bench import dramatiq_chain

                return dramatiq_chain.run(url, n, lat, sizes, log_dir, reliable=reliable)

            suffix = "" if reliable else " (defaults)"
            runs.append((3, f"Celery{suffix}", celery))
            runs.append((3, f"Dramatiq{suffix}", dramatiq))
    if 4 in chosen:

        def scaling() -> Any:
            from sustainml.bench import scaling as m

            return m.run(url, counts["scaling"])

        runs.append((4, "scaling", scaling))
    if 5 in chosen:

        def memory() -> Any:
            from sustainml.bench import memory as m

            return m.run(url, counts["busy"], counts["ingest"])

        runs.append((5, "memory", memory))
    if 6 in chosen:

        def shipped() -> Any:
            from sustainml.bench import shipped_logic

            return shipped_logic.run(url, counts["shipped"], lat)

        runs.append((6, "shipped logic", shipped))
    return runs


def _store(report: Any, part: int, result: Any) -> None:
    if part in (1, 2, 3):
        report.systems.append(result)
    elif part == 4:
        report.scaling.extend(result)
    elif part == 5:
        report.memory.update(result)
    else:
        report.shipped.update(result)


def _summary(result: Any) -> str:
    from sustainml.bench.common import SystemResult

    if isinstance(result, SystemResult):
        return f"{result.throughput:.1f} tasks/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"
    if isinstance(result, list):
        return ", ".join(f"{r.name}: {r.throughput:.2f} tasks/s" for r in result)
    if isinstance(result, dict) and "tasks_per_s" in result:
        return (
            f"{result['tasks_per_s']} tasks/s, single task p50 {result['single_p50_ms']} ms, "
            f"in process {result['in_process_median_ms']} ms per task"
        )
    return "ok"


@bench.command(name="latency")
@click.option(
    "--tasks", type=int, default=30, show_default=True, help="Tasks measured (after 3 warm-up tasks)."
)
@click.option(
    "--in-process", is_flag=True, help="Start a deployment of its own on the broker, in this process."
)
@click.option("--embedded", is_flag=True, help="Start a deployment of its own on the in-memory transport.")
@click.pass_context
def latency(ctx: click.Context, tasks: int, in_process: bool, embedded: bool) -> None:
    """End-to-end latency of single tasks, one at a time: submit -> result stored, and the broker
    hops alone (first -> last stage output). Default: against a running `sustainml up`."""
    from sustainml.bench import latency as m
    from sustainml.bench.common import BenchError
    from sustainml.cli.common import friendly_errors

    if in_process and embedded:
        raise click.UsageError("--in-process and --embedded exclude each other")
    if tasks < 1:
        raise click.BadParameter("--tasks must be >= 1")
    try:
        with friendly_errors():
            click.echo(m.run(settings_or_env(ctx), tasks, in_process=in_process, embedded=embedded))
    except BenchError as exc:
        fail(str(exc))
