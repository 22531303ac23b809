"""What a person must see first about a task or an answer, derived from stored records (no I/O).
The CLI, the HTTP views and, through them, the dashboard show the same findings:

- ``config_outcome``: a configuration answer is ``ok``, ``unsupported`` (the node does not know
  the request: the wire's only failure code is ``INTERNAL_ERROR``, so the node's error text, the
  original framework's "Unsupported configuration request: ..." convention, tells it apart) or
  ``error``.
- ``task_alerts``: the findings that change what a result means: ML_MODEL found no feasible model
  (``MLModel.extra_data["no_model"]``: message, binding constraint, relaxation), HW_RESOURCES says
  the constraints are not met (``HWResource.extra_data["constraints_met"] is False`` with its
  ``violations``), the task encoder needs a clarification (``MLModelMetadata.extra_data
  ["needs_clarification"]``: the question to answer when its confidence is low).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sustainml.messages import ResponseType

UNSUPPORTED_PREFIX = "Unsupported configuration request"
#: ML_MODEL's sentinel model names: the figures downstream of them are placeholders.
MODEL_SENTINELS = frozenset({"NO_MODEL", "Error"})


def config_outcome(res: ResponseType) -> tuple[str, str | None]:
    """(``ok`` | ``unsupported`` | ``error``, the node's error text or None)."""
    if res.success:
        return "ok", None
    message: str | None = None
    try:
        parsed: Any = json.loads(res.configuration) if res.configuration else None
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        message = parsed["error"]
    elif res.configuration:
        message = res.configuration
    if message is not None and message.startswith(UNSUPPORTED_PREFIX):
        return "unsupported", message
    return "error", message


@dataclass(frozen=True)
class Alert:
    """One finding about a task: ``kind`` (``no_model``, ``constraints_not_met``,
    ``needs_clarification``), the node it comes from, a one-line ``title`` and the details."""

    kind: str
    node: str
    title: str
    details: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "node": self.node, "title": self.title, "details": dict(self.details)}


def _extra(record: Any) -> dict[str, Any]:
    if record is None:
        return {}
    get = getattr(record, "get_extra", None)
    if get is None:
        return {}
    try:
        extra = get()
    except ValueError:  # undecodable extra_data: nothing to show from it
        return {}
    return extra if isinstance(extra, dict) else {}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def no_model(outputs: dict[str, Any]) -> dict[str, str] | None:
    """ML_MODEL's explanation when it found no feasible model (message, binding_constraint,
    relaxation), or a minimal one for a bare ``NO_MODEL``; None when it proposed a model."""
    model = outputs.get("ml_model")
    if model is None:
        return None
    info = _extra(model).get("no_model")
    if isinstance(info, dict):
        return {
            "message": _text(info.get("message")),
            "binding_constraint": _text(info.get("binding_constraint")),
            "relaxation": _text(info.get("relaxation")),
        }
    if getattr(model, "model", None) == "NO_MODEL":  # an ML_MODEL that does not explain itself yet
        extra = _extra(model)
        message = _text(extra.get("explanation")) or _text(extra.get("error"))
        return {"message": message, "binding_constraint": "", "relaxation": ""}
    return None


def _violations(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    return _text(value)


def task_alerts(outputs: dict[str, Any]) -> list[Alert]:
    """The findings of a task's stored outputs (records by kind), most important first."""
    alerts: list[Alert] = []
    nm = no_model(outputs)
    if nm is not None:
        details = {k: v for k, v in nm.items() if v and k != "message"}
        title = f"no feasible model: {nm['message']}" if nm["message"] else "no feasible model"
        alerts.append(Alert("no_model", "ML_MODEL", title, details))
    hw_extra = _extra(outputs.get("hw_resources"))
    if hw_extra.get("constraints_met") is False:
        violations = _violations(hw_extra.get("violations"))
        alerts.append(
            Alert(
                "constraints_not_met",
                "HW_RESOURCES",
                "constraints not met" + (f": {violations}" if violations else ""),
                {"violations": violations} if violations else {},
            )
        )
    question = clarification(outputs)
    if question is not None:
        alerts.append(Alert("needs_clarification", "ML_MODEL_METADATA", f"needs clarification: {question}"))
    return alerts


def clarification(outputs: dict[str, Any]) -> str | None:
    """The question the task encoder needs answered (its confidence in the goal is low), or None.
    ``needs_clarification`` is the question itself or an object with ``question`` (and
    ``alternatives``)."""
    value = _extra(outputs.get("ml_model_metadata")).get("needs_clarification")
    if not value:
        return None
    if isinstance(value, dict):
        question = _text(value.get("question"))
        alternatives = value.get("alternatives")
        if not question and isinstance(alternatives, list) and alternatives:
            question = "is the goal " + " or ".join(_text(a) for a in alternatives) + "?"
        return question or "the goal is uncertain: describe the problem in more detail or set the goal"
    if value is True:
        return "the goal is uncertain: describe the problem in more detail or set the goal"
    return _text(value)


def figures_are_placeholders(outputs: dict[str, Any]) -> bool:
    """True when ML_MODEL proposed no model: downstream latency, energy and carbon are zeros that
    describe nothing."""
    model = outputs.get("ml_model")
    return model is not None and (
        getattr(model, "model", None) in MODEL_SENTINELS or no_model(outputs) is not None
    )
