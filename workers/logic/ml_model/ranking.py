"""ML_MODEL: the ranking of the feasible candidates (quality on one reference scale versus
energy, see the package docstring, step 5)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from sustainml.catalogue import ModelEntry
from sustainml.workers.logic.ml_model.rules import GENERATIVE_GOALS

if TYPE_CHECKING:
    from sustainml.workers.logic.ml_model.candidates import Assessment


def rank(
    feasible: Sequence[Assessment],
    weight: float,
    goal: str = "",
    training: bool = False,
    domain: str | None = None,
) -> list[Assessment]:
    """Score and sort (see the module docstring, step 5)."""
    if not feasible:
        return []
    reference = reference_scale(feasible, goal, training, domain)
    for a in feasible:
        a.comparable = False
        a.quality_norm = NEUTRAL_QUALITY if measures_goal(a.entry, goal, training) else OTHER_TASK_QUALITY
    members = [
        a for a in feasible if quality_key(a.entry) == reference and measures_goal(a.entry, goal, training)
    ]
    # A lone figure from the problem's domain still outranks the general benchmarks' (neutral 0.5);
    # a lone general figure has nothing to be compared with.
    if len(members) > 1 or (members and in_domain(members, goal, training, domain)):
        signed = [
            m.entry.quality.value if m.entry.quality.higher_is_better else -m.entry.quality.value
            for m in members
        ]
        lo, hi = min(signed), max(signed)
        # Differences below QUALITY_SPAN_FLOOR of the best figure are not stretched to the whole
        # scale (37.4 vs 37.3 mAP is not "best vs worst").
        span = max(hi - lo, QUALITY_SPAN_FLOOR * max(abs(hi), abs(lo)))
        for m, v in zip(members, signed, strict=True):
            m.quality_norm = 1.0 if span == 0 else max(0.0, 1.0 - (hi - v) / span)
            m.comparable = True
    energies = [math.log10(a.energy_j) for a in feasible if math.isfinite(a.energy_j) and a.energy_j > 0]
    lo_e, hi_e = (min(energies), max(energies)) if energies else (0.0, 0.0)
    for a in feasible:
        if not (math.isfinite(a.energy_j) and a.energy_j > 0) or hi_e == lo_e:
            a.energy_norm = 0.0
        else:
            a.energy_norm = (math.log10(a.energy_j) - lo_e) / (hi_e - lo_e)
        a.score = a.quality_norm - weight * a.energy_norm
    return sorted(
        feasible,
        key=lambda a: (-a.score, -a.quality_norm, a.energy_j, a.entry.parameters, a.entry.name),
    )


#: Quality of a candidate whose figure is not on the reference scale (neutral), and of one whose
#: figure was measured on another task (a pre-trained backbone: not shown to do this task without
#: fine-tuning, so below a model measured on it).
NEUTRAL_QUALITY: Final = 0.5
#: The smallest quality span normalised over, as a fraction of the best figure's magnitude.
QUALITY_SPAN_FLOOR: Final = 0.10
OTHER_TASK_QUALITY: Final = 0.25


def quality_key(entry: ModelEntry) -> tuple[str, str]:
    """Figures are compared only on the same metric and the same dataset."""
    q = entry.quality
    return q.metric.strip().casefold(), q.dataset.strip().casefold()


def measures_goal(entry: ModelEntry, goal: str, training: bool = False) -> bool:
    """Whether the entry's published figure is about ``goal`` as it will be used: measured for its
    first goal, or a chat/instruction model's general benchmark (MMLU) for a generation task. Not:
    a pre-trained encoder or seq2seq backbone (tag ``base``) for inference, since its figure is
    that of a fine-tuned copy; a backbone listed for token classification with an MNLI accuracy."""
    spec = entry.transformer
    if "base" in entry.tags and spec is not None and spec.kind != "decoder" and not training:
        return False
    if not goal or entry.goals[0] == goal:
        return True
    return bool({"chat", "instruct"} & set(entry.tags)) and goal in GENERATIVE_GOALS


def in_domain(
    feasible: Sequence[Assessment], goal: str, training: bool, domain: str | None
) -> list[Assessment]:
    """The candidates whose figure for ``goal`` was measured in the problem's ``domain`` (tagged
    with it in the catalogue)."""
    if domain is None:
        return []
    return [a for a in feasible if domain in a.entry.tags and measures_goal(a.entry, goal, training)]


def reference_scale(
    feasible: Sequence[Assessment], goal: str, training: bool = False, domain: str | None = None
) -> tuple[str, str] | None:
    """The (metric, dataset) the candidates' quality is compared on: the one most candidates
    measured in the problem's domain report, else the one most feasible candidates report for this
    goal (ties: the metric name, then the dataset). A general benchmark says little about a
    specialised domain (street scenes against tumour scans), so a figure from the domain wins."""
    pool = in_domain(feasible, goal, training, domain) or [
        a for a in feasible if measures_goal(a.entry, goal, training)
    ]
    counts: dict[tuple[str, str], int] = {}
    for a in pool:
        key = quality_key(a.entry)
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return None
    return min(counts, key=lambda k: (-counts[k], k))
