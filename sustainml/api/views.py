"""Pure translations between HTTP bodies and the orchestrator's types (no I/O): UserInput from a
REST body, results in the upstream and /v1 shapes, the upstream keyword routing of configuration
requests, CSV export."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sustainml.display import MODEL_SENTINELS, config_outcome, figures_are_placeholders, task_alerts
from sustainml.messages import MessageError, ResponseType, TaskId, UserInput, from_json_dict, to_json_dict
from sustainml.messages.kinds import KIND_OF_NODE, NODE_OF_KIND, NodeID
from sustainml.messages.tasks import TaskResult, TaskSummary

#: The pipeline's nodes in order; each produces the record kind ``KIND_OF_NODE[node]``.
NODES: tuple[str, ...] = tuple(NODE_OF_KIND.values())
#: The pipeline's nodes by upstream node id (0-5).
NODE_OF_ID: dict[int, str] = {int(NodeID[node]): node for node in NODES}

DEFAULT_MODEL_FAMILY = "Transformers"
#: Record fields that can hold megabytes (ML_MODEL's sample arrays and model file): left out of
#: the event stream, and of a result on request (``omit``).
BULKY_FIELDS = ("input_batch", "raw_model")
#: The records a task list item summarises (kinds), and the figures taken from them.
SUMMARY_KINDS = ("ml_model_metadata", "ml_model", "hw_resources", "carbon_footprint")
_FIGURES = (
    ("hw_resources", "latency"),
    ("hw_resources", "memory_footprint_of_ml_model"),
    ("hw_resources", "power_consumption"),
    ("carbon_footprint", "energy_consumption"),
    ("carbon_footprint", "carbon_footprint"),
    ("carbon_footprint", "carbon_intensity"),
)

# Upstream §12.2, tried in this order (substring tests); the explicit prefix is tried first.
_KEYWORD_ROUTES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("hardwares",), "HW_RESOURCES"),
    (
        (
            "modality",
            "in_out_modalities",
            "metrics",
            "model_info",
            "mode_info",
            "problem_from_modality",
            "dataset_path",
        ),
        "ML_MODEL_METADATA",
    ),
    (("goal", "model_from_goal", "hf_search"), "ML_MODEL"),
)


def user_input_from_body(body: dict[str, Any]) -> UserInput:
    """``require_problem``, then the upstream ``/user_input`` rules: ``extra_data.model_family`` =
    first non-empty of ``extra_data.model_family``, top-level ``type``, ``extra_data.type``,
    ``"Transformers"``; ``extra_data.num_outputs`` defaults to 1 (upstream stored null and
    crashed). ``hf_token`` is not injected: nothing here talks to the Hub, and a secret must not be
    stored in every task."""
    ui = from_json_dict(UserInput, body)
    extra = ui.get_extra()
    require_problem(ui, extra)
    family = next(
        (
            v
            for v in (extra.get("model_family"), body.get("type"), extra.get("type"))
            if isinstance(v, str) and v
        ),
        DEFAULT_MODEL_FAMILY,
    )
    extra["model_family"] = family
    if extra.get("num_outputs") is None:
        extra["num_outputs"] = 1
    num = extra["num_outputs"]
    if not isinstance(num, int) or isinstance(num, bool) or num < 1:
        raise MessageError("UserInput.extra_data.num_outputs", f"must be an integer >= 1, got {num!r}")
    ui.set_extra(extra)
    return ui


def require_problem(ui: UserInput, extra: dict[str, Any]) -> None:
    """A new problem must say what it is: a description, a definition or a dataset to read it
    from. Refused here, with the field named, rather than accepted as a task the task encoder can
    only fail (an iteration inherits its base's description, so it may leave it out)."""
    if ui.previous_iteration != 0:
        return
    if ui.problem_short_description.strip() or ui.problem_definition.strip():
        return
    if extra.get("dataset_path") or extra.get("dataset_metadata_description"):
        return
    raise MessageError(
        "UserInput.problem_short_description",
        "describe the problem (the description is empty), e.g. 'detect defects in photos of welded seams'",
    )


def task_id_json(task_id: TaskId) -> dict[str, int]:
    return {"problem_id": task_id.problem_id, "iteration_id": task_id.iteration_id}


def task_detail(res: TaskResult) -> dict[str, Any]:
    """The complete result, plus ``alerts``: what changes its meaning (no feasible model, the
    constraints not met, a question for the user), most important first."""
    out = res.to_json()
    out["current_stage"] = res.current_stage
    out["alerts"] = [a.to_json() for a in task_alerts(res.outputs)]
    return out


def omit_fields(detail: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Leave bulky record fields (``input_batch``, ``raw_model``) out of every record of a result."""
    drop = {n.strip() for n in names if n.strip()}
    if not drop:
        return detail
    for node in ("USER_INPUT", *NODES):
        rec = detail.get(node)
        if isinstance(rec, dict):
            for name in drop:
                rec.pop(name, None)
    return detail


def task_figures(outputs: dict[str, Any]) -> dict[str, Any]:
    """The headline of a task from its stored records (by kind): the goal, the chosen model and
    hardware and the six figures in the data model's units, ``None`` where the stage has no output
    yet; the figures are ``None`` too when ML_MODEL answered with a sentinel (``NO_MODEL``,
    ``Error``) or found no feasible model, whose downstream zeros are placeholders, not
    measurements; ``alerts`` as in ``task_detail``."""
    meta = outputs.get("ml_model_metadata")
    model = outputs.get("ml_model")
    hw = outputs.get("hw_resources")
    goals = list(getattr(meta, "ml_model_metadata", None) or [])
    model_name = getattr(model, "model", None) if model is not None else None
    sentinel = model_name in MODEL_SENTINELS or figures_are_placeholders(outputs)
    out: dict[str, Any] = {
        "goal": (goals[0] or None) if goals else None,
        "model": model_name,
        "hardware": hw.hw_description if hw is not None else None,
    }
    for kind, name in _FIGURES:
        rec = outputs.get(kind)
        out[name] = float(getattr(rec, name)) if rec is not None and not sentinel else None
    out["stages_done"] = [node for node in NODES if KIND_OF_NODE[node] in outputs]
    out["alerts"] = [a.to_json() for a in task_alerts(outputs)]
    return out


def task_summary(task: TaskSummary, figures: dict[str, Any] | None = None) -> dict[str, Any]:
    """One item of ``GET /v1/tasks``; ``figures`` (``task_figures``) when asked for."""
    return {
        "task_id": task_id_json(task.task_id),
        "state": task.state.value,
        "current_stage": task.current_stage,
        "error": task.error,
        "note": task.note,
        "problem_short_description": task.description or "",
        "base_iteration": task.base_iteration,
        "created_at": task.created_at.isoformat() if task.created_at else None,
        "finished_at": task.finished_at.isoformat() if task.finished_at else None,
        "summary": figures,
    }


def compat_record(res: TaskResult, node: str) -> dict[str, Any]:
    """One node's output as the upstream ``/results`` shows it, with every field and lists as
    arrays; ``raw_model`` is left out as upstream does (model bytes do not belong in a poll)."""
    rec = res.outputs.get(KIND_OF_NODE[node])
    if rec is None:
        p, i = res.task_id.problem_id, res.task_id.iteration_id
        return {
            "Error": f"Failed to get {node} data for task {{{p}, {i}}}",
            "task_id": task_id_json(res.task_id),
        }
    out = to_json_dict(rec)
    out.pop("raw_model", None)
    return out


def compat_all(res: TaskResult) -> dict[str, Any]:
    out: dict[str, Any] = {node: compat_record(res, node) for node in NODES}
    out["task_id"] = task_id_json(res.task_id)
    return out


def compat_user_input(res: TaskResult) -> dict[str, Any]:
    ui = res.user_input or UserInput()
    out = to_json_dict(ui)
    out["task_id"] = task_id_json(res.task_id)
    return out


def missing_nodes(res: TaskResult) -> list[str]:
    return [node for node in NODES if KIND_OF_NODE[node] not in res.outputs]


def route_configuration(configuration: str, node_id: int | None) -> str:
    """Which node a ``/config_request`` goes to: an explicit ``node_id`` (0-5) wins; else the
    keyword before the first comma; else upstream's substring tests in their order; else
    APP_REQUIREMENTS (upstream's default)."""
    if node_id is not None and node_id in NODE_OF_ID:
        return NODE_OF_ID[node_id]
    head = configuration.partition(",")[0].strip().casefold()
    for keywords, node in _KEYWORD_ROUTES:
        if head in keywords:
            return node
    for keywords, node in _KEYWORD_ROUTES:
        if any(k in configuration for k in keywords):
            return node
    return "APP_REQUIREMENTS"


def config_compat(res: ResponseType) -> dict[str, Any]:
    return {
        "node_id": res.node_id,
        "transaction_id": res.transaction_id,
        "success": res.success,
        "err_code": int(res.err_code),
        "configuration": res.configuration,
    }


def config_v1(res: ResponseType) -> dict[str, Any]:
    try:
        parsed: Any = json.loads(res.configuration) if res.configuration else None
    except json.JSONDecodeError:
        parsed = None
    out = config_compat(res)
    out["err_code"] = res.err_code.name
    out["parsed"] = parsed
    out["outcome"] = config_outcome(res)[0]
    return out


def status_of(statuses: dict[str, Any], node_id: int) -> str:
    try:
        name = NodeID(node_id).name
    except ValueError:
        return "INACTIVE"
    s = statuses.get(name)
    return s.name if s is not None else "INACTIVE"


def export_csv(detail: dict[str, Any]) -> str:
    """``node,field,value``: the task's own fields under ``TASK``, then every record field; lists
    and objects as JSON text."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["node", "field", "value"])
    records = ("USER_INPUT", *NODES)
    for key, value in detail.items():
        if key in records:
            continue
        w.writerow(["TASK", key, _cell(value)])
    for node in records:
        rec = detail.get(node)
        if isinstance(rec, dict):
            for field, value in rec.items():
                w.writerow([node, field, _cell(value)])
    return buf.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)
