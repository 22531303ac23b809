"""The automatic-iteration policy: what follows the success of a task, and the input of an
iteration. Pure functions of records (no transport, no database), so every rule is tested alone.

Iterations the orchestrator starts by itself:

- automatic carbon optimisation (``optimize_carbon_footprint_auto`` with
  ``desired_carbon_footprint`` kgCO2e): while the estimate is above the target, try the carbon
  node's next option (other hardware, or exclude the model) in a new iteration; stop when the
  target is met or no untried option is left, and say which in the note;
- otherwise upstream "Nº outputs": ``num_outputs`` > 1 starts the next iteration, excluding the
  models proposed so far.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sustainml.messages import CO2Footprint, MLModelMetadata, TaskId, UserInput

log = logging.getLogger(__name__)

# UserInput fields an iteration never inherits from the request (they identify the request).
_NOT_INHERITED = frozenset({"task_id", "previous_iteration", "extra_data"})


@dataclass(frozen=True)
class AutoPlan:
    """What follows a succeeded task: a note for it, and/or the next iteration to submit."""

    note: str | None
    user_input: UserInput | None  # the task's input, to derive the next iteration from
    changes: dict[str, Any] | None  # merged into the next iteration's extra_data; None: no iteration

    @property
    def iterates(self) -> bool:
        return self.changes is not None and self.user_input is not None


def plan_after_success(
    task_id: TaskId, user_input: UserInput, carbon: CO2Footprint, max_num_outputs: int
) -> AutoPlan | None:
    """The plan after ``task_id`` succeeded with ``carbon`` (its final output), from its input.
    ``num_outputs`` above ``max_num_outputs`` (checked at submission; a forged output may carry
    more) is capped."""
    extra = carbon.get_extra()
    if user_input.optimize_carbon_footprint_auto and user_input.desired_carbon_footprint > 0:
        return optimise_step(task_id, user_input, carbon, extra)
    try:
        num_outputs = int(extra.get("num_outputs") or 1)
    except (TypeError, ValueError):
        log.warning("task %s: ignoring num_outputs=%r (not an integer)", task_id, extra.get("num_outputs"))
        return None
    if num_outputs > max_num_outputs:
        log.warning("task %s: num_outputs=%d capped to %d", task_id, num_outputs, max_num_outputs)
        num_outputs = max_num_outputs
    if num_outputs > 1:
        changes = {
            "num_outputs": num_outputs - 1,
            "model_restrains": list(extra.get("model_restrains") or []),
        }
        return AutoPlan(None, user_input, changes)
    return None


def optimise_step(
    task_id: TaskId, user_input: UserInput, carbon: CO2Footprint, extra: dict[str, Any]
) -> AutoPlan:
    """One step of the carbon optimisation: met, exhausted (a note each), or the next option."""
    target = user_input.desired_carbon_footprint
    history = dict(user_input.get_extra().get("optimization") or {})
    steps = list(history.get("steps") or [])
    steps.append({"task": task_id.key, "carbon_kg": carbon.carbon_footprint})
    if carbon.carbon_footprint <= target:
        note = (
            f"carbon optimisation: target {target:g} kgCO2e met at {task_id} "
            f"({carbon.carbon_footprint:.4g} kgCO2e after {len(steps)} iteration(s))"
        )
        log.info("task %s: %s", task_id, note)
        return AutoPlan(note, None, None)
    tried = [s.get("change") for s in steps if s.get("change")]
    options = [o for o in extra.get("next_options") or [] if isinstance(o, dict) and o not in tried]
    if not options:
        best = min(steps, key=lambda s: float(s.get("carbon_kg") or 0.0))
        note = (
            f"carbon optimisation: target {target:g} kgCO2e not met; no option left "
            f"(best {best['carbon_kg']:.4g} kgCO2e at {best['task']})"
        )
        log.info("task %s: %s", task_id, note)
        return AutoPlan(note, None, None)
    option = options[0]
    steps[-1]["change"] = option
    changes: dict[str, Any] = {"optimization": {"target_kg": target, "steps": steps}}
    restrains = list(extra.get("model_restrains") or [])
    if option.get("kind") == "hardware" and option.get("hardware"):
        changes["hardware_required"] = option["hardware"]
        # keep the model: only the hardware changes in this step
        restrains = [m for m in restrains if m not in restrains[:1]]
    elif option.get("kind") == "model" and option.get("exclude"):
        restrains = list(dict.fromkeys([*restrains, str(option["exclude"])]))
    changes["model_restrains"] = restrains
    return AutoPlan(None, user_input, changes)


def next_iteration_input(
    task_id: TaskId, user_input: UserInput, changes: dict[str, Any], meta: MLModelMetadata | None
) -> UserInput:
    """Iteration i+1 of the task's problem: the same input, the goal already found (``meta``), and
    ``changes`` merged into extra_data. ``user_input`` is changed in place and returned."""
    ui_extra = user_input.get_extra()
    if meta is not None and meta.ml_model_metadata:
        ui_extra["goal"] = meta.ml_model_metadata[0]
    ui_extra.update(changes)
    ui_extra["previous_problem_id"] = task_id.problem_id
    user_input.set_extra(ui_extra)
    user_input.previous_iteration = task_id.iteration_id
    user_input.task_id = None
    return user_input


def inherit(base: UserInput, given: UserInput) -> UserInput:
    """An iteration copies its base's UserInput; fields the request sets to a non-default value
    override it, and extra_data is merged key by key (the request's keys win)."""
    merged = base.model_copy(deep=True)
    defaults = UserInput()
    for name in UserInput.model_fields:
        if name in _NOT_INHERITED:
            continue
        value = getattr(given, name)
        if value != getattr(defaults, name):
            setattr(merged, name, value)
    extra = base.get_extra()
    extra.update(given.get_extra())
    merged.set_extra(extra)
    merged.previous_iteration = given.previous_iteration
    merged.task_id = None
    return merged
