"""``sustainml eval logic``: the shipped stage logic on problems written by others, without messaging.

Each description of the task encoder's held-out set (``workers/logic/encoder/evaluation_set.jsonl``:
competition titles, dataset-card summaries, paper abstracts, tickets, product requirements, chat
requests) goes through the six shipped stage callbacks in one process, in pipeline order, each
with exactly the inputs the workers give it. Two things are reported:

- **Answers**: how many tasks got a model and figures, how many ended with no feasible model (with
  the binding constraints), how many HW_RESOURCES judged to miss a constraint, and how many failed
  (with the error), so an empty answer by accident shows up as a count, not an anecdote.
- **Time**: per stage and for the whole chain, median and 95th percentile of the warm tasks (the
  first task, which loads the catalogues and builds the encoder, is reported on its own). Figures
  are printed, never asserted; they move with the machine's load.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from sustainml.messages.types import (
    AppRequirements,
    CO2Footprint,
    HWConstraints,
    HWResource,
    MLModel,
    MLModelMetadata,
    NodeStatus,
    UserInput,
)

STAGES = (
    "ML_MODEL_METADATA",
    "APP_REQUIREMENTS",
    "HW_CONSTRAINTS",
    "ML_MODEL",
    "HW_RESOURCES",
    "CARBON_FOOTPRINT",
)
OUTCOMES = ("answered", "constraints_not_met", "no_model", "failed")


def held_out_descriptions() -> list[str]:
    """The texts of the encoder's held-out evaluation set (descriptions in others' styles)."""
    data = resources.files("sustainml.workers.logic.encoder").joinpath("evaluation_set.jsonl")
    lines = data.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


@dataclass
class TaskRun:
    description: str
    seconds: dict[str, float] = field(default_factory=dict)
    outcome: str = "answered"  # answered | no_model | constraints_not_met | failed
    detail: str = ""
    model: str = ""
    hardware: str = ""


def run_one(description: str, extra: dict[str, Any] | None = None) -> TaskRun:
    """The six shipped callbacks on one description (and ``extra_data``), timed; an exception ends
    the task as failed, with the stage and the error."""
    from sustainml.workers.logic import (
        app_requirements,
        carbon_footprint,
        hw_constraints,
        hw_resources,
        ml_model,
        ml_model_metadata,
    )

    run = TaskRun(description)
    ui = UserInput(problem_short_description=description)
    if extra:
        ui.set_extra(extra)
    meta, reqs, cons = MLModelMetadata(), AppRequirements(), HWConstraints()
    model, hw, co2 = MLModel(), HWResource(), CO2Footprint()
    steps: list[tuple[str, Callable[[], None]]] = [
        ("ML_MODEL_METADATA", lambda: ml_model_metadata.task_callback(ui, NodeStatus(), meta)),
        ("APP_REQUIREMENTS", lambda: app_requirements.task_callback(ui, NodeStatus(), reqs)),
        ("HW_CONSTRAINTS", lambda: hw_constraints.task_callback(ui, NodeStatus(), cons)),
        (
            "ML_MODEL",
            lambda: ml_model.task_callback(meta, reqs, cons, None, None, None, NodeStatus(), model),
        ),
        ("HW_RESOURCES", lambda: hw_resources.task_callback(model, reqs, cons, NodeStatus(), hw)),
        ("CARBON_FOOTPRINT", lambda: carbon_footprint.task_callback(model, ui, hw, NodeStatus(), co2)),
    ]
    for stage, step in steps:
        start = time.perf_counter()
        try:
            step()
        except Exception as exc:  # a failed task is a result of this evaluation, reported with its error
            run.seconds[stage] = time.perf_counter() - start
            run.outcome, run.detail = "failed", f"{stage}: {type(exc).__name__}: {exc}"
            return run
        run.seconds[stage] = time.perf_counter() - start
        if stage == "ML_MODEL":
            no_model = model.get_extra().get("no_model")
            if isinstance(no_model, dict):
                run.outcome = "no_model"
                run.detail = str(no_model.get("binding_constraint") or no_model.get("message") or "")
    run.model, run.hardware = model.model, hw.hw_description
    if run.outcome == "answered" and hw.get_extra().get("constraints_met") is False:
        run.outcome = "constraints_not_met"
        violations = hw.get_extra().get("violations")
        run.detail = json.dumps(violations)[:160] if violations else ""
    return run


@dataclass
class LogicReport:
    runs: list[TaskRun]

    def warm(self) -> list[TaskRun]:
        return self.runs[1:] if len(self.runs) > 1 else self.runs

    def stage_ms(self, stage: str) -> tuple[float, float]:
        values = sorted(r.seconds[stage] * 1000 for r in self.warm() if stage in r.seconds)
        if not values:
            return 0.0, 0.0
        return statistics.median(values), values[min(len(values) - 1, int(0.95 * len(values)))]

    def total_ms(self) -> tuple[float, float]:
        values = sorted(sum(r.seconds.values()) * 1000 for r in self.warm())
        return statistics.median(values), values[min(len(values) - 1, int(0.95 * len(values)))]

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": len(self.runs),
            "outcomes": dict(Counter(r.outcome for r in self.runs)),
            "first_task_ms": sum(self.runs[0].seconds.values()) * 1000 if self.runs else None,
            "stage_ms": {s: dict(zip(("median", "p95"), self.stage_ms(s), strict=True)) for s in STAGES},
            "total_ms": dict(zip(("median", "p95"), self.total_ms(), strict=True)),
            "not_answered": [
                {"description": r.description, "outcome": r.outcome, "detail": r.detail}
                for r in self.runs
                if r.outcome != "answered"
            ],
        }

    def render(self) -> str:
        outcomes = Counter(r.outcome for r in self.runs)
        first_ms = sum(self.runs[0].seconds.values()) * 1000 if self.runs else 0.0
        lines = [
            f"## Shipped stage logic on {len(self.runs)} descriptions in others' styles (no messaging)",
            "",
            "outcome               tasks",
            "--------------------  -----",
            *(f"{k:<20}  {outcomes.get(k, 0):>5}" for k in OUTCOMES),
            "",
            "stage               median ms  p95 ms",
            "------------------  ---------  ------",
            *(f"{s:<18}  {m:>9.2f}  {p:>6.2f}" for s in STAGES for m, p in [self.stage_ms(s)]),
            f"{'whole chain':<18}  {self.total_ms()[0]:>9.2f}  {self.total_ms()[1]:>6.2f}",
            "",
            f"first task (loads catalogues, builds the encoder): {first_ms:.0f} ms",
        ]
        for r in self.runs:
            if r.outcome in ("failed", "no_model"):
                lines.append(f"{r.outcome}: {r.description[:70]!r}: {r.detail[:160]}")
        return "\n".join(lines)


def evaluate(descriptions: Sequence[str] | None = None, limit: int | None = None) -> LogicReport:
    texts = list(descriptions) if descriptions is not None else held_out_descriptions()
    if limit is not None:
        texts = texts[:limit]
    return LogicReport([run_one(t) for t in texts])
