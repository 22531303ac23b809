"""The automatic-iteration policy on its own: records in, a plan out (no transport, no TaskDB)."""

from __future__ import annotations

from typing import Any

import pytest

from sustainml.messages import CO2Footprint, MLModelMetadata, TaskId, UserInput
from sustainml.orchestrator.iteration import (
    inherit,
    next_iteration_input,
    plan_after_success,
)

TID = TaskId(problem_id=4, iteration_id=2)


def _carbon(kg: float, **extra: Any) -> CO2Footprint:
    rec = CO2Footprint(carbon_footprint=kg)
    rec.set_extra(extra)
    return rec


def _optimising(target: float, **extra: Any) -> UserInput:
    ui = UserInput(optimize_carbon_footprint_auto=True, desired_carbon_footprint=target)
    ui.set_extra(extra)
    return ui


def test_a_single_output_task_is_followed_by_nothing() -> None:
    assert plan_after_success(TID, UserInput(), _carbon(1.0), max_num_outputs=10) is None
    assert plan_after_success(TID, UserInput(), _carbon(1.0, num_outputs=1), max_num_outputs=10) is None


def test_num_outputs_starts_the_next_iteration_excluding_the_proposed_models() -> None:
    plan = plan_after_success(
        TID, UserInput(), _carbon(1.0, num_outputs=3, model_restrains=["resnet-50"]), max_num_outputs=10
    )
    assert plan is not None and plan.iterates and plan.note is None
    assert plan.changes == {"num_outputs": 2, "model_restrains": ["resnet-50"]}


def test_a_forged_num_outputs_is_capped_and_a_non_integer_ignored() -> None:
    plan = plan_after_success(TID, UserInput(), _carbon(1.0, num_outputs=500), max_num_outputs=4)
    assert plan is not None and plan.changes is not None
    assert plan.changes["num_outputs"] == 3
    assert plan_after_success(TID, UserInput(), _carbon(1.0, num_outputs="many"), max_num_outputs=4) is None


def test_carbon_target_met_ends_with_a_note_and_no_iteration() -> None:
    plan = plan_after_success(TID, _optimising(2.0), _carbon(1.5), max_num_outputs=10)
    assert plan is not None and not plan.iterates
    assert plan.note is not None and "target 2 kgCO2e met at 4.2" in plan.note


def test_carbon_target_missed_tries_the_next_untried_option() -> None:
    hardware = {"kind": "hardware", "hardware": "Jetson Orin"}
    model = {"kind": "model", "exclude": "resnet-50"}
    ui = _optimising(0.5, optimization={"steps": [{"task": "4.1", "carbon_kg": 3.0, "change": hardware}]})
    carbon = _carbon(2.0, next_options=[hardware, model], model_restrains=["vit-b16"])
    plan = plan_after_success(TID, ui, carbon, max_num_outputs=10)
    assert plan is not None and plan.iterates and plan.changes is not None
    assert plan.changes["model_restrains"] == ["vit-b16", "resnet-50"]  # the hardware was tried
    steps = plan.changes["optimization"]["steps"]
    assert [s["task"] for s in steps] == ["4.1", "4.2"] and steps[-1]["change"] == model


def test_carbon_target_missed_with_no_option_left_names_the_best_iteration() -> None:
    ui = _optimising(0.5, optimization={"steps": [{"task": "4.1", "carbon_kg": 0.9}]})
    plan = plan_after_success(TID, ui, _carbon(2.0, next_options=[]), max_num_outputs=10)
    assert plan is not None and not plan.iterates
    assert plan.note is not None and "no option left" in plan.note and "at 4.1" in plan.note


def test_next_iteration_input_carries_the_goal_the_changes_and_its_base() -> None:
    ui = UserInput(problem_short_description="count cars")
    ui.set_extra({"num_outputs": 3})
    meta = MLModelMetadata(ml_model_metadata=["object-detection"])
    nxt = next_iteration_input(TID, ui, {"num_outputs": 2}, meta)
    assert nxt.previous_iteration == 2 and nxt.task_id is None
    assert nxt.get_extra() == {"num_outputs": 2, "goal": "object-detection", "previous_problem_id": 4}


@pytest.mark.parametrize("given_description", ["", "detect pedestrians"])
def test_an_iteration_inherits_its_base_and_the_request_overrides_it(given_description: str) -> None:
    base = UserInput(problem_short_description="count cars", modality="image")
    base.set_extra({"num_outputs": 3, "model_family": "CNN"})
    given = UserInput(problem_short_description=given_description, previous_iteration=1)
    given.set_extra({"model_family": "Transformers"})
    merged = inherit(base, given)
    assert merged.problem_short_description == (given_description or "count cars")
    assert merged.modality == "image" and merged.previous_iteration == 1 and merged.task_id is None
    assert merged.get_extra() == {"num_outputs": 3, "model_family": "Transformers"}
