"""ML_MODEL: what the answer says about itself: why each candidate ranks where it does, which
quality figures are compared, and why nothing fits (NO_MODEL) with the smallest relaxation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sustainml.catalogue import models
from sustainml.workers.logic.ml_model.ranking import (
    OTHER_TASK_QUALITY,
    in_domain,
    measures_goal,
    reference_scale,
)

if TYPE_CHECKING:
    from sustainml.workers.logic.ml_model.candidates import Assessment
    from sustainml.workers.logic.ml_model.context import Context


def quality_note(
    ranking: Sequence[Assessment], goal: str, training: bool = False, domain: str | None = None
) -> str:
    """Which figure the ranking compares, and which candidates it cannot compare."""
    reference = reference_scale(ranking, goal, training, domain)
    why_reference = (
        f"the figure measured in the problem's domain ({domain})"
        if in_domain(ranking, goal, training, domain)
        else "the figure most candidates report"
    )
    other_task = [a.entry.name for a in ranking if not measures_goal(a.entry, goal, training)]
    other_scale = [a.entry.name for a in ranking if not a.comparable and a.entry.name not in other_task]
    parts = []
    if reference is not None and any(a.comparable for a in ranking):
        parts.append(
            f"quality compared on {reference[0]} on {reference[1]}, {why_reference}"
        )
    if other_scale:
        parts.append(f"not comparable (another metric or dataset, neutral 0.5): {_names(other_scale)}")
    if other_task:
        parts.append(
            f"figure measured on another task, or of a fine-tuned copy of a pre-trained backbone "
            f"({OTHER_TASK_QUALITY}): {_names(other_task)}"
        )
    return "; ".join(parts)


def _names(names: Sequence[str]) -> str:
    return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def why(a: Assessment, rank_: int, top: Assessment) -> str:
    q = a.entry.quality
    scale = "" if a.comparable else ", not comparable"
    figures = f"quality {a.quality_norm:.2f} ({q.metric} {q.value:g} on {q.dataset}{scale})"
    if a.device is not None:
        figures += f", energy {a.energy_norm:.2f} ({a.energy_j:.3g} J/{a.per} on {a.device.hw.name})"
    if rank_ == 1:
        return f"best score {a.score:.3f}: {figures}"
    gap = top.score - a.score
    if a.quality_norm < top.quality_norm and a.energy_norm >= top.energy_norm:
        reason = "lower quality and no less energy"
    elif a.quality_norm < top.quality_norm:
        reason = "uses less energy, but its quality gap outweighs it"
    elif a.energy_norm > top.energy_norm:
        reason = "quality at least as good, but its extra energy outweighs it"
    else:
        reason = "same score; tie broken by quality, energy, parameters, then name"
    return f"score {a.score:.3f}, {gap:.3f} below #1: {reason}; {figures}"


def no_model_report(goal: str, excluded: Sequence[Mapping[str, Any]], ctx: Context) -> dict[str, str]:
    """``{"message", "binding_constraint", "relaxation"}``: the constraint that excluded the
    candidate closest to feasible, and the smallest change that admits a model."""
    message = explain_no_model(goal, excluded)
    if not goal or not models().for_goal(goal):
        return {
            "message": message,
            "binding_constraint": "goal",
            "relaxation": "describe the problem with a goal the catalogue serves "
            "(sustainml catalogue models)",
        }
    numeric = [e for e in excluded if "_need" in e and e["_limit"] > 0]
    if numeric:
        best = min(numeric, key=lambda e: (e["_need"] / e["_limit"], e["model"]))
        unit, need, limit = best["_unit"], best["_need"], best["_limit"]
        constraint = best["constraint"]
        if constraint in ("device memory", "deployment") and "_device_mb" in best:
            devices = math.ceil(need / best["_device_mb"])
            relax = (
                f"{devices} x {best['_device']} (now {ctx.num_devices}), or hardware with "
                f"{need:.0f} MB in total; admits {best['model']}"
            )
        elif constraint == "context":
            relax = f"shorten the input to {limit:.0f} tokens or fewer (chunk it); admits {best['model']}"
        else:
            word = "lower" if constraint == "context" else "raise"
            relax = (
                f"{word} the {constraint} limit from {limit:.4g} to {need:.4g} {unit}; admits {best['model']}"
            )
        return {"message": message, "binding_constraint": constraint, "relaxation": relax}
    langs = [e for e in excluded if e["constraint"] == "languages"]
    if langs:
        best = min(langs, key=lambda e: (len(e.get("_missing", [])), e["model"]))
        missing = ", ".join(best.get("_missing", []))
        return {
            "message": message,
            "binding_constraint": "languages",
            "relaxation": f"drop the language requirement {missing}; admits {best['model']}",
        }
    counts: dict[str, int] = {}
    for e in excluded:
        counts[e["constraint"]] = counts.get(e["constraint"], 0) + 1
    binding = max(sorted(counts), key=lambda c: counts[c]) if counts else "none"
    hint = {
        "quality": "lower the quality requirement (min_*/max_wer) to a figure a model publishes",
        "model_restrains": "allow a model proposed before (clear model_restrains)",
        "modality": "state another input modality",
        "chat": "accept a base (non-chat) model",
    }.get(binding, f"relax the {binding} requirement")
    return {"message": message, "binding_constraint": binding, "relaxation": hint}


def _num(value: float) -> str:
    """1234.5 -> '1,235'; 12.34 -> '12.3': readable limits in relaxation texts."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def explain_no_model(goal: str, excluded: Sequence[Mapping[str, Any]]) -> str:
    if not goal:
        return "no goal: ML_MODEL_METADATA gave none (see its extra_data.error)"
    if not models().for_goal(goal):
        return f"the catalogue has no model for goal {goal!r}"
    if not excluded:
        return f"no candidate for goal {goal!r}"
    counts: dict[str, int] = {}
    for e in excluded:
        counts[e["constraint"]] = counts.get(e["constraint"], 0) + 1
    parts = ", ".join(f"{n} by {c}" for c, n in sorted(counts.items()))
    return f"every {goal} model was excluded ({parts}); see extra_data.excluded"
