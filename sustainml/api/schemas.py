"""Request and response models of the HTTP API, so the generated OpenAPI document says what each
route takes and returns. Records travel as their JSON view (``to_json_dict``); those are open
objects here (``dict[str, Any]``), their fields are documented in docs/api.md and the data model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ULONG_MAX = 2**32 - 1
LONG_MAX = 2**31 - 1
#: Longest wait of a long-poll (`/results` `timeout`, `/v1/tasks/{p}/{i}` `wait`), in seconds: a
#: whole pipeline with measured carbon can take minutes; a larger value is refused with 422.
LONG_POLL_MAX_S = 300
#: Most items of one ``POST /v1/tasks/batch`` (the body is also bounded by SUSTAINML_API_MAX_BODY).
MAX_BATCH_TASKS = 1000
TaskStateName = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class ErrorBody(BaseModel):
    """Every error answer: one line that names the field or the missing thing."""

    model_config = ConfigDict(extra="allow")
    error: str


class TaskIdBody(BaseModel):
    problem_id: int = Field(ge=1, le=2**32 - 1)
    iteration_id: int = Field(ge=1, le=2**32 - 1)


class UserInputBody(BaseModel):
    """A UserInput as the original REST ``POST /user_input`` takes it. Every field is optional
    (defaults as in the data model); unknown fields are ignored."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "problem_short_description": "detect defects in photos of welded seams",
                    "modality": "image",
                    "inputs": ["image"],
                    "outputs": ["label"],
                    "minimum_samples": 1,
                    "maximum_samples": 3,
                    "geo_location_region": "Spain",
                    "extra_data": {"hardware_required": "PIM_AI_1chip", "num_outputs": 1},
                }
            ]
        },
    )

    modality: str | None = None
    problem_short_description: str | None = None
    problem_definition: str | None = None
    inputs: list[str] | str | None = Field(None, description="array, or one space-separated string")
    outputs: list[str] | str | None = Field(None, description="array, or one space-separated string")
    minimum_samples: int | None = Field(None, ge=0, le=ULONG_MAX)
    maximum_samples: int | None = Field(None, ge=0, le=ULONG_MAX)
    optimize_carbon_footprint_manual: bool | None = None
    previous_iteration: int | None = Field(
        None, ge=-1, le=LONG_MAX, description="0 new problem, -1 latest, i: iterate on i"
    )
    optimize_carbon_footprint_auto: bool | None = None
    desired_carbon_footprint: float | None = Field(None, description="kgCO2e")
    geo_location_continent: str | None = None
    geo_location_region: str | None = None
    extra_data: dict[str, Any] | str | None = Field(None, description="object (or JSON object text)")
    type: str | None = Field(None, description="upstream type limiter (Transformers/CNNs) -> model_family")


class V1UserInputBody(UserInputBody):
    """A UserInput for the ``/v1`` routes: the same fields, but an unknown one is refused (422
    naming it) instead of ignored, so a misspelt or wrapped field cannot become an empty problem.
    The compatible ``POST /user_input`` keeps ignoring them, as the original GUI sends extras."""

    model_config = ConfigDict(extra="forbid")


# -- compatible routes ---------------------------------------------------------------------------
class MessageBody(BaseModel):
    message: str


class UserInputAccepted(BaseModel):
    message: str = "User input data sent successfully."
    task_id: TaskIdBody


class ConfigRequestBody(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{"configuration": "hardwares"}, {"configuration": "modality"}]},
    )
    configuration: str = Field(max_length=65_535)
    node_id: int | None = Field(None, ge=0, le=5, description="0-5: send to this node; else keyword routing")
    timeout: float | None = Field(None, gt=0, le=300, description="seconds (default SUSTAINML_RPC_TIMEOUT)")


class ConfigResponseCompat(BaseModel):
    node_id: int
    transaction_id: int
    success: bool
    err_code: int
    configuration: str


class ConfigRequestAccepted(BaseModel):
    message: str = "Configuration request sent successfully."
    response: ConfigResponseCompat


class StatusQuery(BaseModel):
    model_config = ConfigDict(extra="allow")
    node_id: int | None = None


class ResultsQuery(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{"node_id": 9}]})
    node_id: int = Field(ge=0, le=9, description="0-5 one node, 7 the user input, 9 all six")
    task_id: TaskIdBody | None = Field(None, description="default: the latest task")
    timeout: float = Field(
        30.0, ge=0, le=LONG_POLL_MAX_S, description="seconds to wait for the output(s), at most 300"
    )


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    problem_id: int | None = Field(None, ge=1, le=2**32 - 1)
    iteration_id: int | None = Field(None, ge=1, le=2**32 - 1)


class CancelAnswer(BaseModel):
    status: Literal["cancelled", "not_found", "already_finished"]
    task_id: TaskIdBody | None = None
    state: TaskStateName | None = None


class HfModelsInfoBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"model_ids": ["resnet-50", "bert-base"]}]})
    model_ids: list[str] = Field(min_length=1, max_length=100)


class HfModelsCompareBody(BaseModel):
    models: list[dict[str, Any]] = Field(min_length=1, max_length=100, description="items of /hf_models_info")


class HfModelInfo(BaseModel):
    model_id: str
    status: int
    info: dict[str, Any]
    error: str | None = None


class HfModelError(BaseModel):
    model_id: str
    error: str


class HfModelsInfoAnswer(BaseModel):
    models: list[HfModelInfo]
    errors: list[HfModelError]


class ModelCard(BaseModel):
    model_id: str
    purpose: str
    best_for: list[str]
    watch_out_for: list[str]


class ComparisonRow(BaseModel):
    model_id: str
    license: str
    model_family: str
    architectures: str
    languages: str


class HfModelsCompareAnswer(BaseModel):
    comparison_summary: str
    model_cards: list[ModelCard]
    comparison_table: list[ComparisonRow]


class StatusAll(BaseModel):
    status: dict[str, str]


class StatusOne(BaseModel):
    status: str


# -- /v1 -------------------------------------------------------------------------------------------
class TaskAccepted(BaseModel):
    task_id: TaskIdBody
    state: TaskStateName


class TaskBatchBody(BaseModel):
    """Many problems in one request (``POST /v1/tasks/batch``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "tasks": [
                        {"problem_short_description": "detect defects in photos of welded seams"},
                        {"problem_short_description": "forecast daily sales", "modality": "time-series"},
                    ]
                }
            ]
        },
    )
    tasks: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH_TASKS,
        description=f"1 to {MAX_BATCH_TASKS} UserInput objects, each as `POST /v1/tasks` takes it",
    )


class BatchItemOutcome(BaseModel):
    """One item of a batch: the task it created, or why it was refused (no task)."""

    index: int = Field(description="the item's position in `tasks`, from 0")
    task_id: TaskIdBody | None = Field(None, description="null when refused")
    error: str | None = Field(None, description="null when created; else names the item and the field")


class TaskBatchAccepted(BaseModel):
    submitted: int = Field(description="tasks created")
    refused: int = Field(description="items refused")
    tasks: list[BatchItemOutcome] = Field(description="one per item, in the order sent")
    error: str | None = Field(None, description="the first refusal, when any item was refused")


class Alert(BaseModel):
    """What changes the meaning of a result (``sustainml.display.task_alerts``)."""

    kind: Literal["no_model", "constraints_not_met", "needs_clarification"]
    node: str = Field(description="the node that reported it")
    title: str = Field(description="one line to show first")
    details: dict[str, str] = Field(
        description="no_model: binding_constraint, relaxation; constraints_not_met: violations"
    )


class TaskFigures(BaseModel):
    """A task's headline, in the data model's units; null where the stage has not answered (and the
    figures null when ML_MODEL answered NO_MODEL or Error: their zeros are placeholders)."""

    goal: str | None = Field(description="ML_MODEL_METADATA's goal")
    model: str | None = Field(description="ML_MODEL's model (or its sentinel NO_MODEL / Error)")
    hardware: str | None = Field(description="HW_RESOURCES' hw_description")
    latency: float | None = Field(description="s")
    memory_footprint_of_ml_model: float | None = Field(description="MB")
    power_consumption: float | None = Field(description="W")
    energy_consumption: float | None = Field(description="Wh")
    carbon_footprint: float | None = Field(description="kgCO2e")
    carbon_intensity: float | None = Field(description="gCO2e/kWh")
    stages_done: list[str] = Field(description="nodes whose output is stored, in pipeline order")
    alerts: list[Alert] = Field(description="no feasible model, constraints not met, a question for the user")


class TaskSummary(BaseModel):
    task_id: TaskIdBody
    state: TaskStateName
    current_stage: str | None
    error: str | None
    note: str | None
    problem_short_description: str
    base_iteration: int | None
    created_at: str
    finished_at: str | None
    summary: TaskFigures | None = Field(description="null with `summary=false`")


class TaskList(BaseModel):
    tasks: list[TaskSummary]
    limit: int
    offset: int
    count: int


class TaskDetail(BaseModel):
    """The complete result; the six node outputs are keyed by their node names (null = none yet)."""

    model_config = ConfigDict(extra="allow")
    task_id: TaskIdBody
    state: TaskStateName
    error: str | None
    note: str | None
    current_stage: str | None
    alerts: list[Alert] = Field(description="no feasible model, constraints not met, a question for the user")
    USER_INPUT: dict[str, Any] | None
    ML_MODEL_METADATA: dict[str, Any] | None
    APP_REQUIREMENTS: dict[str, Any] | None
    HW_CONSTRAINTS: dict[str, Any] | None
    ML_MODEL: dict[str, Any] | None
    HW_RESOURCES: dict[str, Any] | None
    CARBON_FOOTPRINT: dict[str, Any] | None
    created_at: str | None
    finished_at: str | None


class Replica(BaseModel):
    node_name: str
    replica_id: str
    status: str
    age_s: float
    in_flight: int
    processed: int
    error_description: str
    task_id: str | None


class NodesAnswer(BaseModel):
    nodes: dict[str, str]
    replicas: list[Replica]


class NodeConfigBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"configuration": "model_from_goal, image-classification"}]}
    )
    configuration: str = Field(max_length=65_535)
    timeout: float | None = Field(None, gt=0, le=300, description="seconds (default SUSTAINML_RPC_TIMEOUT)")


class NodeConfigAnswer(BaseModel):
    node_id: int
    transaction_id: int
    success: bool
    err_code: Literal["NO_ERROR", "INTERNAL_ERROR"]
    configuration: str
    parsed: Any = Field(None, description="configuration parsed as JSON (null when it is not JSON)")
    outcome: Literal["ok", "unsupported", "error"] = Field(
        description="ok; unsupported: the node does not know this request; error: it failed to answer"
    )


class DatasetAnswer(BaseModel):
    path: str
    name: str
    size_bytes: int
    profile: dict[str, Any] | None
    profile_error: str | None


class HealthAnswer(BaseModel):
    status: Literal["ok", "unavailable"]
    broker: bool
    database: bool
    orchestrator: str
