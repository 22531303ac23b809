"""ML_MODEL (model provider): pick a catalogue model for the goal within the memory limit.

Rule:
1. Candidates = catalogue models whose goals include the goal (``ml_model_metadata[0]``), minus
   ``extra_data.model_restrains`` of the metadata (models already tried by earlier iterations).
2. ``extra_data.model_selected`` naming a catalogue model (case/punctuation-insensitive) is used
   as the only candidate, whatever its goal, unless it is restrained or too big (then step 1).
3. Memory: keep models whose fp32 weights (parameters x 4 bytes, MB) fit the limit = the smaller of
   ``hw_constraints.max_memory_footprint`` and the ``max_model_size_mb`` requirement (0 / absent =
   no limit).
4. Rank by MACs ascending (the cheapest model that fits), then parameters, then name.
None left -> the upstream ``NO_MODEL`` sentinel. The baselines are recorded, not used for ranking.
"""

from __future__ import annotations

import json
from typing import Any

from sustainml.messages.types import (
    AppRequirements,
    CO2Footprint,
    HWConstraints,
    HWResource,
    MLModel,
    MLModelMetadata,
    NodeStatus,
    RequestType,
    ResponseType,
)
from sustainml.workers.logic.common import (
    find_model,
    format_number,
    norm_key,
    parse_requirements,
    reply,
    reply_error,
    reply_unsupported,
)
from sustainml.workers.logic.tables import (
    MODEL_CATALOGUE,
    MODEL_PATH_SCHEME,
    NO_MODEL,
    NO_MODEL_ERROR,
    NO_MODEL_PATH,
    ModelSpec,
)

RANKING_RULE = (
    "models for the goal minus model_restrains; fp32 weights (params x 4 B) must fit the memory limit; "
    "smallest MACs first, then parameters, then name"
)


def task_callback(
    ml_model_metadata: MLModelMetadata,
    app_requirements: AppRequirements,
    hw_constraints: HWConstraints,
    ml_model_baseline: MLModel | None,
    hw_baseline: HWResource | None,
    carbonfootprint_baseline: CO2Footprint | None,
    node_status: NodeStatus,
    ml_model: MLModel,
) -> None:
    meta = ml_model_metadata.get_extra()
    goal = ml_model_metadata.ml_model_metadata[0].strip() if ml_model_metadata.ml_model_metadata else ""
    restrained = {norm_key(str(name)) for name in _as_list(meta.get("model_restrains"))}
    requirements = parse_requirements(app_requirements)
    limit_mb, limit_source = _memory_limit(hw_constraints, requirements)

    def exclusion(model: ModelSpec) -> str | None:
        if norm_key(model.name) in restrained:
            return "in model_restrains"
        if limit_mb > 0 and model.fp32_weight_mb > limit_mb:
            return (
                f"fp32 weights {format_number(model.fp32_weight_mb)} MB > limit {format_number(limit_mb)} MB"
            )
        return None

    excluded: dict[str, str] = {}
    pool = [m for m in MODEL_CATALOGUE if goal in m.goals]
    how = "goal"
    wanted = str(meta.get("model_selected") or "").strip()
    if wanted:
        selected = find_model(wanted)
        if selected is None:
            excluded[wanted] = "model_selected is not a catalogue model; chose by goal"
        elif (why := exclusion(selected)) is not None:
            excluded[selected.name] = f"model_selected {why}; chose by goal"
        else:
            pool, how = [selected], "model_selected"

    candidates: list[ModelSpec] = []
    for model in pool:
        why = exclusion(model)
        if why is None:
            candidates.append(model)
        else:
            excluded.setdefault(model.name, why)
    candidates.sort(key=lambda m: (m.macs, m.parameters, m.name))

    extra: dict[str, Any] = {
        "goal": goal,
        "selected_by": how,
        "ranking_rule": RANKING_RULE,
        "memory_limit_mb": limit_mb,
        "memory_limit_source": limit_source,
        "candidates": [_summary(m) for m in candidates],
        "excluded": excluded,
    }
    baseline_model = ml_model_baseline.model if ml_model_baseline is not None else ""
    if baseline_model:
        extra["baseline_model"] = baseline_model

    if not candidates:
        ml_model.model = NO_MODEL
        ml_model.model_path = NO_MODEL_PATH
        ml_model.model_properties = ""
        ml_model.target_latency = 0.0
        ml_model.set_extra({"error_code": NO_MODEL, "error": NO_MODEL_ERROR, **extra})
        return

    best = candidates[0]
    ml_model.model = best.name
    ml_model.model_path = MODEL_PATH_SCHEME + best.name
    ml_model.model_properties = json.dumps(model_properties(best), sort_keys=True)
    latency_ms = requirements.get("max_latency_ms")
    ml_model.target_latency = float(latency_ms) / 1000.0 if isinstance(latency_ms, float) else 0.0
    ml_model.set_extra(extra)


def configuration_callback(req: RequestType, res: ResponseType) -> None:
    head, sep, rest = req.configuration.partition(",")
    if head.strip() == "model_from_goal" and sep:
        goal = rest.split(",")[0].strip()  # optional ", <hw>, <family>" arguments are not used here
        names = sorted(m.name for m in MODEL_CATALOGUE if goal in m.goals)
        if not names:
            reply_error(req, res, f"No catalogue model for goal {goal!r}")
            return
        reply(req, res, {"models": ", ".join(names)})
        return
    reply_unsupported(req, res)


def model_properties(model: ModelSpec) -> dict[str, Any]:
    """What HW_RESOURCES needs to estimate the model (``MLModel.model_properties`` as JSON)."""
    return {
        "name": model.name,
        "family": model.family,
        "goals": list(model.goals),
        "parameters": model.parameters,
        "macs": model.macs,
        "input": model.input,
        "fp32_weight_mb": model.fp32_weight_mb,
        "source": model.source,
    }


def _summary(model: ModelSpec) -> dict[str, Any]:
    return {
        "name": model.name,
        "macs": model.macs,
        "parameters": model.parameters,
        "fp32_weight_mb": model.fp32_weight_mb,
    }


def _memory_limit(hw_constraints: HWConstraints, requirements: dict[str, float | str]) -> tuple[float, str]:
    limits: list[tuple[float, str]] = []
    if hw_constraints.max_memory_footprint > 0:
        limits.append((float(hw_constraints.max_memory_footprint), "hw_constraints.max_memory_footprint"))
    size = requirements.get("max_model_size_mb")
    if isinstance(size, float) and size > 0:
        limits.append((size, "app_requirements.max_model_size_mb"))
    if not limits:
        return 0.0, "none"
    return min(limits)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError(f"extra_data.model_restrains must be a list of model names, got {value!r}")
