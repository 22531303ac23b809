"""Part 4: throughput of 1, 2 and 4 replicas of a CPU-bound stage (HW_RESOURCES, its real logic).

A deployment as in part 1 (orchestrator + stage processes), where HW_RESOURCES runs the shipped
logic (ONNX graph analysis, roofline on the device, power) in 1, 2 or 4 replica processes with the
default 2 handler threads each. The stage is measured alone: the benchmark publishes complete
ML_MODEL outputs (task context included; every catalogue model in turn, default hardware,
``measure_local`` off so no onnxruntime run) straight to the stage's input exchange and counts the
HW_RESOURCES outputs on a queue of its own, so neither the orchestrator nor the stages before it
bound the figure. The per-process analysis memo is emptied before each task, so every task pays the
full analysis whichever replica gets it (otherwise the figure would measure the memo). The machine's
core count bounds the scaling.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sustainml.bench.common import SystemResult
from sustainml.bench.ours import ProcessDeployment

REPLICAS = (1, 2, 4)


def write_templates(path: Path) -> int:
    """Recorded ML_MODEL (one per catalogue model) and HW_CONSTRAINTS outputs; returns the model count."""
    import msgpack

    from sustainml.catalogue.schema import models
    from sustainml.messages import HWConstraints, MLModel, to_wire

    names = [m.name for m in models()]
    hw = HWConstraints(max_memory_footprint=0)
    hw.hardware_required = ["PIM_AI_1chip"]
    hw.set_extra({"measure_local": False})
    data: dict[str, list[Any]] = {
        "ml_model": [to_wire(MLModel(model=name)) for name in names],
        "hw_constraints": [to_wire(hw)],
    }
    path.write_bytes(msgpack.packb(data, use_bin_type=True))
    return len(names)


def _envelopes(templates: Path, count: int, first_problem: int) -> list[tuple[str, bytes]]:
    """(routing key, encoded body) of ``count`` ML_MODEL outputs as the stage before HW_RESOURCES
    would publish them: full task context, one catalogue model after the other."""
    from sustainml.bench.ours import load_templates
    from sustainml.messages import RECORD_TYPES, TaskEnvelope, TaskId, UserInput, encode_task
    from sustainml.messages.kinds import BASELINE_KINDS, USER_INPUT

    recorded = load_templates(str(templates))
    out = []
    for n in range(count):
        tid = TaskId(problem_id=first_problem + n, iteration_id=1)
        env = TaskEnvelope(
            kind=USER_INPUT,
            task_id=tid,
            record=UserInput(problem_short_description=f"scaling #{n}", task_id=tid),
            context={},
            baselines={k: RECORD_TYPES[k](task_id=tid) for k in BASELINE_KINDS},
        )
        env = env.next("ml_model_metadata", RECORD_TYPES["ml_model_metadata"](task_id=tid))
        env = env.next("app_requirements", RECORD_TYPES["app_requirements"](task_id=tid))
        hw = recorded["hw_constraints"][0].model_copy(update={"task_id": tid})
        env = env.next("hw_constraints", hw)
        models = recorded["ml_model"]
        env = env.next("ml_model", models[n % len(models)].model_copy(update={"task_id": tid}))
        out.append((tid.key, encode_task(env)))
    return out


def stage_throughput(
    dep: ProcessDeployment, bodies: list[tuple[str, bytes]], timeout: float = 600.0
) -> float:
    """Publish ML_MODEL outputs straight to the stage's input exchange, as fast as confirms allow,
    and count HW_RESOURCES outputs on a queue of our own: outputs/s of the stage alone."""
    from sustainml.attribution import Attribution
    from sustainml.bench.common import BenchError, unique_name
    from sustainml.messages import SCHEMA_VERSION
    from sustainml.messages import headers as H
    from sustainml.topology import Topology
    from sustainml.transport import amqp_transport
    from sustainml.transport.base import Binding, Delivery

    topology = Topology.of(dep.settings)
    transport = amqp_transport(dep.settings, "bench-scaling")
    transport.connect()
    # The bench stands in for ML_MODEL replicas: HW_RESOURCES takes outputs of the worker role only.
    signer = Attribution.of(dep.settings, "worker", transport.user)
    spec = topology.private_queue_spec(
        "bench-out", unique_name("sc"), (Binding(topology.record_exchange("hw_resources"), "#"),)
    )
    cv = threading.Condition()
    seen: dict[str, float] = {}

    def on_output(delivery: Delivery) -> None:
        delivery.ack()
        with cv:
            seen.setdefault(delivery.routing_key, time.perf_counter())
            cv.notify_all()

    try:
        transport.declare_queue(spec)
        tag = transport.consume(spec.name, on_output, prefetch=256, concurrency=1)
        start = time.perf_counter()
        futures = [
            transport.publish(
                topology.record_exchange("ml_model"),
                key,
                signer.sign(
                    H.build_message(
                        body,
                        type_name="MLModel",
                        app_id="ML_MODEL",
                        schema_version=SCHEMA_VERSION,
                        message_id=H.stage_message_id(key, "ml_model"),
                        correlation_id=key,
                    )
                ),
            )
            for key, body in bodies
        ]
        for fut in futures:
            fut.result(60)
        keys = [k for k, _ in bodies]
        deadline = time.monotonic() + timeout
        with cv:
            while not all(k in seen for k in keys):
                if time.monotonic() > deadline:
                    raise BenchError(f"HW_RESOURCES: {sum(k not in seen for k in keys)} outputs missing")
                cv.wait(0.5)
        rate = len(keys) / (max(seen[k] for k in keys) - start)
        transport.cancel(tag)
        transport.delete_queue(spec.name)
        return rate
    finally:
        transport.close()


def run(url: str, tasks: int, replicas: tuple[int, ...] = REPLICAS) -> list[SystemResult]:
    results: list[SystemResult] = []
    with tempfile.TemporaryDirectory(prefix="sustainml-scaling-") as tmp:
        templates = Path(tmp) / "templates.msgpack"
        n_models = write_templates(templates)
        for r in replicas:
            res = SystemResult(
                name=f"HW_RESOURCES x{r}",
                setup=(
                    f"HW_RESOURCES replica processes (2 handler threads each) running the shipped logic "
                    f"over {n_models} catalogue models in turn (no measured run); inputs published "
                    "straight to its input exchange, outputs counted on a queue of ours"
                ),
            )
            warm = max(4, 2 * r)
            bodies = _envelopes(templates, warm + tasks, 1_000_000)
            with ProcessDeployment(
                url,
                replicas={"hw_resources": r},
                templates=templates,
                env={"SUSTAINML_BENCH_SHIPPED": "hw_resources"},
            ) as dep:
                stage_throughput(dep, bodies[:warm])  # imports, graph files, caches
                res.throughput = stage_throughput(dep, bodies[warm:])
                res.tasks = tasks
            results.append(res)
    base = results[0].throughput if results else 0.0
    for res in results:
        res.extra["speedup"] = round(res.throughput / base, 2) if base > 0 else None
    return results
