"""What a result must say first, from records built here: no feasible model (with the binding
constraint and the relaxation), constraints not met (with the violations), a question for the
user next to the goal. The CLI, the /v1 views and the dashboard read the same findings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rich.console import Console

from sustainml.api import views
from sustainml.cli import render
from sustainml.display import clarification, config_outcome, figures_are_placeholders, task_alerts
from sustainml.messages import (
    CO2Footprint,
    ErrorCode,
    HWResource,
    MLModel,
    MLModelMetadata,
    ResponseType,
    TaskId,
    UserInput,
)
from sustainml.messages.tasks import TaskResult, TaskState

TID = TaskId(problem_id=3, iteration_id=1)
NO_MODEL = {
    "message": "no image-classification model fits in 1 MB",
    "binding_constraint": "memory: max_memory_footprint 1 MB (smallest candidate 13.8 MB)",
    "relaxation": "allow 14 MB, or choose a device with more memory",
}
QUESTION = {
    "question": "Is the goal image-classification, or rather object-detection?",
    "alternatives": ["image-classification", "object-detection"],
    "threshold": 0.45,
}


def _meta(clarify: object = None) -> MLModelMetadata:
    meta = MLModelMetadata(task_id=TID, keywords=["photos"], ml_model_metadata=["image-classification"])
    extra: dict[str, object] = {"goal": "image-classification", "confidence": 0.31}
    if clarify is not None:
        extra["needs_clarification"] = clarify
    meta.set_extra(extra)
    return meta


def _no_model_result() -> TaskResult:
    model = MLModel(task_id=TID, model="NO_MODEL")
    model.set_extra({"no_model": NO_MODEL, "error_code": "NO_MODEL"})
    hw = HWResource(task_id=TID, hw_description="PIM_AI_1chip", latency=0.0, power_consumption=0.0)
    co2 = CO2Footprint(task_id=TID, carbon_footprint=0.0, energy_consumption=0.0, carbon_intensity=250.0)
    outputs = {
        "ml_model_metadata": _meta(QUESTION),
        "ml_model": model,
        "hw_resources": hw,
        "carbon_footprint": co2,
    }
    return TaskResult(task_id=TID, state=TaskState.SUCCEEDED, user_input=UserInput(), outputs=outputs)


def test_alerts_of_a_task_without_a_feasible_model() -> None:
    res = _no_model_result()
    alerts = task_alerts(res.outputs)
    assert [a.kind for a in alerts] == ["no_model", "needs_clarification"]
    assert alerts[0].title == f"no feasible model: {NO_MODEL['message']}"
    assert alerts[0].details == {
        "binding_constraint": NO_MODEL["binding_constraint"],
        "relaxation": NO_MODEL["relaxation"],
    }
    assert alerts[1].title == f"needs clarification: {QUESTION['question']}"
    assert figures_are_placeholders(res.outputs)


def test_constraints_not_met_and_the_forms_of_a_clarification() -> None:
    hw = HWResource(task_id=TID, hw_description="Jetson Orin Nano", latency=0.2)
    hw.set_extra({"constraints_met": False, "violations": ["latency 200 ms > 50 ms", "power 15 W > 10 W"]})
    alerts = task_alerts({"hw_resources": hw})
    assert [a.kind for a in alerts] == ["constraints_not_met"]
    assert alerts[0].title == "constraints not met: latency 200 ms > 50 ms; power 15 W > 10 W"
    hw.set_extra({"constraints_met": True, "violations": []})
    assert task_alerts({"hw_resources": hw}) == []
    assert clarification({"ml_model_metadata": _meta("Text or audio input?")}) == "Text or audio input?"
    assert clarification({"ml_model_metadata": _meta({"alternatives": ["a", "b"]})}) == "is the goal a or b?"
    assert clarification({"ml_model_metadata": _meta()}) is None
    ok = MLModel(task_id=TID, model="resnet-18")
    assert not figures_are_placeholders({"ml_model": ok}) and task_alerts({"ml_model": ok}) == []


def test_configuration_outcomes() -> None:
    def answer(success: bool, configuration: str) -> ResponseType:
        code = ErrorCode.NO_ERROR if success else ErrorCode.INTERNAL_ERROR
        return ResponseType(
            node_id=3, transaction_id=1, success=success, err_code=code, configuration=configuration
        )

    assert config_outcome(answer(True, '{"models": "a, b"}')) == ("ok", None)
    unsupported = answer(False, '{"models": "", "error": "Unsupported configuration request: foo"}')
    assert config_outcome(unsupported) == ("unsupported", "Unsupported configuration request: foo")
    assert config_outcome(answer(False, '{"error": "hardware_info needs a device name"}'))[0] == "error"
    assert config_outcome(answer(False, "node timed out"))[0] == "error"
    assert views.config_v1(unsupported)["outcome"] == "unsupported"


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    console = Console(record=True, width=100, soft_wrap=True)
    monkeypatch.setattr(render, "out", console)
    yield console


def test_cli_result_says_no_feasible_model_first_and_the_question_next_to_the_goal(recorded: Console) -> None:
    render.print_result(_no_model_result())
    lines = recorded.export_text().splitlines()
    assert lines[0] == "task 3.1: NO FEASIBLE MODEL (every stage ran; read why below)"
    assert lines[1] == f"  ML_MODEL: no feasible model: {NO_MODEL['message']}"
    assert lines[2] == f"    binding constraint: {NO_MODEL['binding_constraint']}"
    assert lines[3] == f"    relaxation: {NO_MODEL['relaxation']}"
    assert "placeholders" in lines[4]
    assert lines[5] == f"goal: image-classification  needs clarification: {QUESTION['question']}"
    assert "succeeded" not in lines[0]


def test_cli_result_cuts_long_values_unless_full(recorded: Console) -> None:
    meta = _meta()
    meta.set_extra({"reason": "because " * 200 + "THE END"})
    res = TaskResult(
        task_id=TID, state=TaskState.SUCCEEDED, user_input=UserInput(), outputs={"ml_model_metadata": meta}
    )
    render.print_result(res)
    text = recorded.export_text()
    assert "THE END" not in text and "more characters" in text and "sustainml result 3 1 --full" in text
    render.print_result(res, full=True)
    assert "THE END" in recorded.export_text()


def test_api_views_carry_the_alerts_and_hide_placeholder_figures() -> None:
    res = _no_model_result()
    detail = views.task_detail(res)
    assert [a["kind"] for a in detail["alerts"]] == ["no_model", "needs_clarification"]
    assert detail["alerts"][0]["details"]["relaxation"] == NO_MODEL["relaxation"]
    figures = views.task_figures(res.outputs)
    assert figures["latency"] is None and figures["carbon_footprint"] is None
    assert [a["kind"] for a in figures["alerts"]] == ["no_model", "needs_clarification"]


def test_an_empty_problem_is_refused_with_the_field_named() -> None:
    from sustainml.messages import MessageError

    for body in ({}, {"modality": "image"}, {"problem_short_description": "   ", "problem_definition": ""}):
        with pytest.raises(MessageError, match=r"^UserInput.problem_short_description: describe the problem"):
            views.user_input_from_body(body)
    # An iteration inherits its description; a dataset can stand for it; a definition is enough.
    assert views.user_input_from_body({"previous_iteration": 1}).previous_iteration == 1
    assert views.user_input_from_body({"extra_data": {"dataset_path": "data/pumps.csv"}})
    assert views.user_input_from_body({"problem_definition": "find faulty pumps"}).problem_definition
