"""Prometheus metrics of one API server (own registry, so several servers in one process — tests —
do not collide). Gauges that describe the deployment (tasks by state, queue depths, live
replicas) are read when scraped; counters and the stage-latency histogram are fed by the event
hub. No task id ever becomes a label (unbounded cardinality)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sustainml.messages.kinds import NODE_OF_KIND
from sustainml.orchestrator.service import OrchestratorService, TransportError, monitored_queues

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class _DeploymentCollector(Collector):
    def __init__(self, orch: OrchestratorService) -> None:
        self._orch = orch

    def collect(self) -> Iterator[Metric]:
        orch = self._orch
        tasks = GaugeMetricFamily("sustainml_tasks", "Tasks in the TaskDB by state", labels=["state"])
        try:
            for state, n in orch.task_counts().items():
                tasks.add_metric([state.value], n)
        except Exception as exc:  # a scrape must still answer; the log says why the gauge is missing
            log.warning("metrics: could not count tasks: %s", exc)
        yield tasks

        depth = GaugeMetricFamily("sustainml_queue_messages", "Ready messages in a queue", labels=["queue"])
        consumers = GaugeMetricFamily("sustainml_queue_consumers", "Consumers of a queue", labels=["queue"])
        for name in monitored_queues(orch.topology):
            try:
                ready, n_consumers = orch.queue_counts(name)
            except KeyError:
                continue  # not declared (yet)
            except TransportError as exc:
                log.warning("metrics: queue %s not counted: %s", name, exc)
                continue
            depth.add_metric([name], ready)
            consumers.add_metric([name], n_consumers)
        yield depth
        yield consumers

        alive = GaugeMetricFamily("sustainml_replicas_alive", "Live replicas per node", labels=["node"])
        per_node = dict.fromkeys(NODE_OF_KIND.values(), 0)
        for r in orch.nodes().replicas:
            per_node[r.node_name] = per_node.get(r.node_name, 0) + 1
        for node, n in per_node.items():
            alive.add_metric([node], n)
        yield alive


class ApiMetrics:
    def __init__(self, orch: OrchestratorService) -> None:
        self.registry = CollectorRegistry()
        self.stage_latency = Histogram(
            "sustainml_stage_latency_seconds",
            "Time from a task's previous event to this node's stored output, seen by the API server",
            ["node"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.task_events = Counter(
            "sustainml_task_events", "Task events seen by the API server", ["state"], registry=self.registry
        )
        self.requests = Counter(
            "sustainml_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.registry.register(_DeploymentCollector(orch))

    def observe_stage(self, node: str, seconds: float) -> None:
        self.stage_latency.labels(node=node).observe(seconds)

    def count_event(self, state: str) -> None:
        self.task_events.labels(state=state).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
