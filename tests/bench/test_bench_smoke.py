"""`sustainml bench --quick` end to end on the real broker: every part runs and reports sane figures.

No timing is asserted (the figures depend on the machine and its load); the test checks that each
system, ratio, scaling row and memory figure is there, positive and finite, and that the run left
no queue of its own behind.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pika
import pytest
from click.testing import CliRunner

from sustainml.cli.main import cli

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_quick_bench_reports_every_part(amqp_url: str) -> None:
    pytest.importorskip("celery")
    pytest.importorskip("dramatiq")
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["--broker", amqp_url, "bench", "--quick", "--tasks", "8", "--latency-tasks", "3", "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)

    assert report["skipped"] == {}, report["skipped"]
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["cpu"] and machine["rabbitmq"][0].isdigit()

    systems = {s["name"]: s for s in report["systems"]}
    assert set(systems) == {"sustainml", "bare pika", "Celery", "Dramatiq"}
    for s in systems.values():
        assert s["tasks"] == 8 and s["latency_tasks"] == 3 and s["failed"] == 0, s
        assert _positive(s["throughput"]), s
        assert all(_positive(s[k]) for k in ("p50_ms", "p95_ms", "p99_ms")), s
        assert s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"], s
    ours = systems["sustainml"]["extra"]
    assert _positive(ours["orchestrator_rss_mb"]) and ours["cpu_percent_during_throughput"]

    ratios = {r["vs"]: r for r in report["ratios"]}
    assert set(ratios) == {"bare pika", "Celery", "Dramatiq"}
    for r in ratios.values():
        assert _positive(r["throughput_ratio"]) and _positive(r["p50_ratio"]), r

    scaling = report["scaling"]
    assert [s["name"] for s in scaling] == ["HW_RESOURCES x1", "HW_RESOURCES x2", "HW_RESOURCES x4"]
    assert all(_positive(s["throughput"]) and s["failed"] == 0 for s in scaling), scaling

    rss = report["memory"]["rss"]
    assert set(rss["idle_mb"]) == {
        "orchestrator",
        "ML_MODEL_METADATA",
        "APP_REQUIREMENTS",
        "HW_CONSTRAINTS",
        "ML_MODEL",
        "HW_RESOURCES",
        "CARBON_FOOTPRINT",
    }
    for name, idle in rss["idle_mb"].items():
        assert _positive(idle) and rss["busy_peak_mb"][name] >= idle, (name, rss)
    assert rss["busy_failed"] == 0
    taskdb = report["memory"]["taskdb"]
    assert _positive(taskdb["sqlite"]["records_per_s"])
    pg = taskdb["postgresql"]
    assert "error" in pg or _positive(pg["records_per_s"]), pg

    shipped = report["shipped"]
    assert shipped["tasks"] == 20 and shipped["failed"] == 0, shipped
    for key in ("tasks_per_s", "single_p50_ms", "single_p95_ms", "in_process_median_ms"):
        assert _positive(shipped[key]), (key, shipped)
    assert set(shipped["cpu_ms_per_task"]) == set(rss["idle_mb"]), shipped
    assert _positive(report["orchestrator_cpu_ms_per_task"])

    # Every figure of the throughput plan is reported next to its target, met or missed.
    targets = [t for t in report["targets"] if t["value"] is not None]
    expected = 10 + ("records_per_s" in pg)  # 3 ratios, p50/p99, orchestrator CPU, 3 shipped, RSS
    assert len(targets) == expected, report["targets"]

    # Each system names the queues it declared (unique per run): none may be left behind.
    queues = [q for s in systems.values() for q in s["extra"]["queues"]]
    assert len(queues) >= 4 * 6
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        left = []
        for name in queues:
            ch = conn.channel()
            try:
                ch.queue_declare(name, passive=True)
                left.append(name)
                ch.close()
            except pika.exceptions.ChannelClosedByBroker as exc:
                assert exc.reply_code == 404, exc
        assert left == []
    finally:
        conn.close()
