"""ML_MODEL (model provider): a catalogue model for the goal, within the constraints, ranked by a
documented quality-versus-energy score; or the user's own ONNX model.

Options are read from the forwarded user ``extra_data`` (HW_CONSTRAINTS forwards all of it) with the
metadata's ``extra_data`` on top (``model_restrains``, ``model_selected``, ``modality``).

1. **Candidates**: catalogue models whose goals include the goal (``ml_model_metadata[0]``), of the
   input modality (``extra_data.modality`` of the metadata: catalogue modalities or cover tags such
   as cv/nlp; ignored, with a note, when it would leave no model), minus ``model_restrains``.
2. **model_selected wins if valid**: a catalogue name or alias (any goal; not when restrained), or
   an ONNX file: ``model_selected`` ending in ``.onnx`` or ``extra_data.model_path`` (inside the
   allowed model directories, ``hw_resources.user_model_dirs``), or ``extra_data.raw_model`` bytes.
   A user model is validated and analysed like a catalogue model; constraints it breaks are reported
   in ``constraint_warnings`` but do not overrule the user's choice.
3. **Constraints** (each exclusion names its constraint):
   - ``max_parameters`` (requirement);
   - memory: weights (parameters x bytes of the precision, MB) <= the smaller non-zero of
     ``max_memory_footprint`` and the ``max_model_size_mb`` requirement; HW_RESOURCES later adds the
     peak activations from the graph;
   - quality: ``min_accuracy``, ``min_f1``, ``min_map``, ``min_iou``, ``min_auc``, ``max_wer``,
     ``max_cer`` when the model's published metric is of that kind;
   - hardware: the devices are the ``hardware_required`` ones, or with ``auto`` the
     ``allowed_hardware`` HW_CONSTRAINTS derived from the deployment target (``deployment``
     constraint); the model must fit the memory of one of them and, with ``max_latency_ms``, its
     quick roofline latency (``roofline.quick_estimate`` from catalogue MACs and parameters, whole
     batch) must meet the limit there. The model's device is the feasible one with the lowest
     energy per inference.
4. **Ranking** (deterministic): ``score = quality - w x energy`` with
   - quality in [0, 1]: the published figure min-max normalised among the feasible candidates
     sharing its metric name (lower-is-better metrics flipped; the datasets or splits behind the
     figures may differ, and every candidate's figure is shown with its dataset); a model whose
     metric no other candidate shares gets 0.5 (not comparable: neutral);
   - energy in [0, 1]: log10 of the estimated energy per inference (power at the class's default
     utilisation x quick latency / batch, on the model's device) min-max normalised among them;
   - ``w`` = 0.5 (quality counts twice as much as the energy span), 0.25 with
     ``extra_data.priority = "accuracy"``, 1.0 with ``"energy"``, or ``extra_data.energy_weight``.
   Ties: higher quality, lower energy, fewer parameters, name.
5. Nothing fits: ``NO_MODEL``, ``model_path = "N/A"``, ``error_code``/``error`` as upstream and the
   exclusions as the explanation.

Outputs: ``model``; ``model_path`` = the ONNX file (``onnxgraphs.cache``, seeded random weights up to
``hw_resources.RANDOM_WEIGHTS_MAX_PARAMETERS`` parameters, zeros above); ``model_properties`` (JSON:
name, family, goals, modality, parameters, MACs, FLOPs, quality, licence, source, year,
``synthetic: true``, weights, input shape, batch size, precision); ``target_latency``
= ``max_latency_ms`` / 1000 (0 = none); ``input_batch`` only with ``extra_data.include_input_batch``:
seeded arrays of the model's inputs (token ids below the vocabulary for text) at the batch size
(``extra_data.batch_size``, default 1; at most ``messages.limits.MAX_INPUT_BATCH_BYTES``: above,
fewer samples are sent and ``model_properties.batch_size`` keeps the real size). They are synthetic
and seeded, so HW_RESOURCES regenerates the same arrays when they are absent
(``estimate.measure.feed_for``) and every task does not carry megabytes of them (yolov8n at
batch 1: 4.9 MB on the wire, 6.5 MB as base64 JSON); without them ``extra_data.input_batch_note``
says so. ``raw_model`` only with ``extra_data.include_raw_model`` and at most ``RAW_MODEL_LIMIT``
bytes.

Configuration requests: ``model_from_goal, <goal>[, <hw>[, <family>]]`` -> ``{"models": "m1, m2"}``
(at most ``MAX_LISTED``; hw: weights must fit its memory; family: substring, plural-insensitive;
goal ``U_NET_MODELS`` -> the U-Net models); ``hf_search, <description>, <limit>`` -> the upstream
shape, answered from the catalogue (task encoder goal probabilities + word overlap); ``models`` ->
every name.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from sustainml.catalogue import HardwareEntry, ModelEntry, models
from sustainml.catalogue.schema import fold
from sustainml.estimate import measure as measuring
from sustainml.estimate import power as pw
from sustainml.estimate import roofline as rl
from sustainml.messages import limits as msg_limits
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
from sustainml.workers.logic import hw_resources as hwr
from sustainml.workers.logic.common import parse_requirements, reply, reply_error, words
from sustainml.workers.logic.tables import NO_MODEL, NO_MODEL_ERROR, NO_MODEL_PATH

log = logging.getLogger(__name__)

TOP_N: Final = 5
MAX_LISTED: Final = 50
DEFAULT_ENERGY_WEIGHT: Final = 0.5
PRIORITY_WEIGHTS: Final = {"accuracy": 0.25, "quality": 0.25, "balanced": 0.5, "energy": 1.0}
MAX_BATCH: Final = 1024
#: raw_model is sent only below this (the message limit; onnxgraphs' own limit is larger).
RAW_MODEL_LIMIT: Final = msg_limits.MAX_RAW_MODEL_BYTES
#: Headroom left in input_batch for the .npy headers.
_INPUT_BATCH_BUDGET: Final = int(msg_limits.MAX_INPUT_BATCH_BYTES * 0.95)
HF_SEARCH_DEFAULT_LIMIT: Final = 20
MODEL_CONFIG_PREFIX: Final = "__MODEL_CONFIG__:"

#: Cover tags (upstream modalities) -> catalogue input modalities.
COVER_TAG_MODALITIES: Final[dict[str, tuple[str, ...]]] = {
    "cv": ("image", "video"),
    "vision": ("image", "video"),
    "nlp": ("text",),
    "audio": ("audio",),
    "tabular": ("tabular", "time-series"),
    "timeseries": ("time-series",),
}

#: Quality requirements -> (metric words that make a model's metric comparable, lower is better).
QUALITY_REQUIREMENTS: Final[dict[str, tuple[tuple[str, ...], bool]]] = {
    "min_accuracy": (("accuracy", "acc"), False),
    "min_f1": (("f1",), False),
    "min_map": (("map",), False),
    "min_iou": (("iou", "miou"), False),
    "min_auc": (("auc",), False),
    "max_wer": (("wer",), True),
    "max_cer": (("cer",), True),
}

RANKING_RULE: Final = (
    "score = quality - w x energy; quality = published figure min-max normalised among feasible "
    "candidates sharing its metric (0.5 when no other shares it); energy = log10(J per inference on the "
    "model's device) min-max normalised; ties: quality, energy, parameters, name"
)


# ------------------------------------------------------------------------------------------------
# The callback
# ------------------------------------------------------------------------------------------------


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
    options: dict[str, Any] = {**hw_constraints.get_extra(), **meta}
    goal = ml_model_metadata.ml_model_metadata[0].strip() if ml_model_metadata.ml_model_metadata else ""
    ctx = Context.build(goal, options, app_requirements, hw_constraints)

    extra: dict[str, Any] = {
        "goal": goal,
        "modality": ctx.modality_note,
        "batch_size": ctx.batch,
        "precision": ctx.precision,
        "devices": ctx.device_note,
        "limits": ctx.limits_dict(),
        "ranking_rule": RANKING_RULE,
        "energy_weight": ctx.energy_weight,
        "model_restrains": sorted(ctx.restrained_names),
        "unsupported_models": [],
    }
    if ml_model_baseline is not None and ml_model_baseline.model:
        # The previous iteration's proposal, for comparison (the ranking does not depend on it).
        extra["baseline"] = {
            "model": ml_model_baseline.model,
            "hw_description": hw_baseline.hw_description if hw_baseline is not None else "",
            "latency_s": hw_baseline.latency if hw_baseline is not None else 0.0,
            "power_w": hw_baseline.power_consumption if hw_baseline is not None else 0.0,
            "carbon_footprint_kg": carbonfootprint_baseline.carbon_footprint
            if carbonfootprint_baseline is not None
            else 0.0,
        }
    if ctx.warnings:
        extra["warnings"] = list(ctx.warnings)

    user = user_model_request(options)
    if user is not None:
        _fill_user_model(ml_model, user, ctx, options, extra)
        return

    excluded: list[dict[str, str]] = []
    pool = ctx.candidates(excluded)
    selected_by = "ranking"
    wanted = str(options.get("model_selected") or "").strip()
    if wanted:
        entry = models().find(wanted)
        if entry is None:
            excluded.append(
                _excl(wanted, "model_selected", "not a catalogue model or an .onnx file; chose by ranking")
            )
        elif fold(entry.name) in ctx.restrained:
            excluded.append(
                _excl(entry.name, "model_restrains", "model_selected is in model_restrains; chose by ranking")
            )
        else:
            pool, selected_by = [entry], "model_selected"

    assessed = [assess(entry, ctx) for entry in pool]
    feasible = [a for a in assessed if a.exclusion is None]
    for a in assessed:
        if a.exclusion is not None:
            if selected_by == "model_selected":
                # The user's explicit choice wins; what it breaks is reported, not enforced.
                ctx.warnings.append(f"model_selected {a.entry.name}: {a.exclusion[1]}")
                feasible.append(a)
            else:
                excluded.append(_excl(a.entry.name, *a.exclusion))
    ranking = rank(feasible, ctx.energy_weight)
    extra["selected_by"] = selected_by
    extra["candidates"] = [r.to_json(i + 1, ranking[0]) for i, r in enumerate(ranking[:TOP_N])]
    extra["candidates_feasible"] = len(ranking)
    extra["excluded"] = sorted(excluded, key=lambda e: (e["model"], e["constraint"]))
    if ctx.warnings:
        extra["warnings"] = list(ctx.warnings)

    if not ranking:
        ml_model.model = NO_MODEL
        ml_model.model_path = NO_MODEL_PATH
        ml_model.model_properties = ""
        ml_model.target_latency = 0.0
        extra["explanation"] = explain_no_model(goal, excluded)
        ml_model.set_extra({"error_code": NO_MODEL, "error": NO_MODEL_ERROR, **extra})
        return

    best = ranking[0]
    path = hwr.catalogue_file(best.entry)
    ml_model.model = best.entry.name
    ml_model.model_path = str(path)
    props = model_properties(best.entry, ctx, weights=hwr.weights_mode(best.entry))
    props["estimate"] = best.figures()
    _maybe_input_batch(ml_model, path, ctx, options, props, extra)
    ml_model.model_properties = json.dumps(props, sort_keys=True)
    ml_model.target_latency = ctx.target_latency_s
    _maybe_raw_model(ml_model, path, options, extra)
    ml_model.set_extra(extra)


# ------------------------------------------------------------------------------------------------
# Context: options, limits and devices of one task
# ------------------------------------------------------------------------------------------------


@dataclass
class Context:
    goal: str
    modalities: tuple[str, ...]
    modality_note: str
    restrained: set[str]
    restrained_names: set[str]
    batch: int
    precision: str
    dims: dict[str, int]
    memory_limit_mb: float | None
    memory_source: str
    max_parameters: float | None
    max_latency_s: float | None
    max_power_w: float | None
    quality_limits: dict[str, float]
    deployment: str | None
    devices: list[HardwareEntry]
    device_note: str
    auto: bool
    energy_weight: float
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        goal: str,
        options: Mapping[str, Any],
        app_requirements: AppRequirements,
        hw_constraints: HWConstraints,
    ) -> Context:
        warnings: list[str] = []
        reqs = parse_requirements(app_requirements)
        raw_modality = str(options.get("modality") or "").strip()
        modalities = resolve_modalities(raw_modality)
        restrained_names = {str(n) for n in as_list(options.get("model_restrains"), "model_restrains")}
        restrained: set[str] = set()
        for name in restrained_names:
            entry = models().find(name)
            restrained.add(fold(entry.name) if entry is not None else fold(name))
        batch = positive_int(options.get("batch_size", 1), "extra_data.batch_size", MAX_BATCH)
        precision = str(options.get("precision") or "fp32")
        if precision not in rl.PRECISION_BYTES:
            raise ValueError(
                f"extra_data.precision must be one of {', '.join(rl.PRECISION_BYTES)}, got {precision!r}"
            )
        memory: list[tuple[float, str]] = []
        if hw_constraints.max_memory_footprint > 0:
            memory.append((float(hw_constraints.max_memory_footprint), "hw_constraints.max_memory_footprint"))
        size = reqs.get("max_model_size_mb")
        if isinstance(size, float) and size > 0:
            memory.append((size, "app_requirements.max_model_size_mb"))
        memory_limit, memory_source = min(memory) if memory else (None, "none")
        try:
            devices, device_note = hwr.candidate_devices(hw_constraints)
        except ValueError as exc:
            devices, device_note = [], f"no device: {exc}"
            warnings.append(f"hardware not usable for the latency estimate: {exc}")
        auto = any(h.strip().casefold() == hwr.AUTO for h in hw_constraints.hardware_required)
        deployment = reqs.get("deployment")
        quality = {k: float(v) for k, v in reqs.items() if k in QUALITY_REQUIREMENTS and isinstance(v, float)}

        def num(key: str) -> float | None:
            v = reqs.get(key)
            return float(v) if isinstance(v, float) and v > 0 else None

        latency_ms = num("max_latency_ms")
        return cls(
            goal=goal,
            modalities=modalities,
            modality_note=raw_modality,
            restrained=restrained,
            restrained_names=restrained_names,
            batch=batch,
            precision=precision,
            dims=hwr._dims_of(options),
            memory_limit_mb=memory_limit,
            memory_source=memory_source,
            max_parameters=num("max_parameters"),
            max_latency_s=None if latency_ms is None else latency_ms / 1000.0,
            max_power_w=num("max_power_w"),
            quality_limits=quality,
            deployment=deployment if isinstance(deployment, str) and deployment else None,
            devices=devices,
            device_note=device_note,
            auto=auto,
            energy_weight=energy_weight(options),
            warnings=warnings,
        )

    @property
    def target_latency_s(self) -> float:
        return self.max_latency_s if self.max_latency_s is not None else 0.0

    def limits_dict(self) -> dict[str, Any]:
        return {
            "memory_limit_mb": self.memory_limit_mb,
            "memory_limit_source": self.memory_source,
            "max_parameters": self.max_parameters,
            "max_latency_ms": None if self.max_latency_s is None else self.max_latency_s * 1000.0,
            "max_power_w": self.max_power_w,
            "quality": self.quality_limits,
            "deployment": self.deployment,
        }

    def candidates(self, excluded: list[dict[str, str]]) -> list[ModelEntry]:
        """Models for the goal and modality, minus model_restrains (those are listed in ``excluded``)."""
        for_goal = models().for_goal(self.goal)
        pool = for_goal
        if self.modalities:
            same = [m for m in for_goal if m.modality in self.modalities]
            if same:
                for m in for_goal:
                    if m.modality not in self.modalities:
                        excluded.append(
                            _excl(
                                m.name, "modality", f"input modality {m.modality}, not {self.modality_note}"
                            )
                        )
                pool = same
            elif for_goal:
                self.warnings.append(
                    f"no {self.goal} model takes modality {self.modality_note!r}; modality filter ignored"
                )
        out: list[ModelEntry] = []
        for m in pool:
            if fold(m.name) in self.restrained:
                excluded.append(_excl(m.name, "model_restrains", "proposed before (model_restrains)"))
            else:
                out.append(m)
        return out


def _excl(model: str, constraint: str, reason: str) -> dict[str, str]:
    return {"model": model, "constraint": constraint, "reason": reason}


def resolve_modalities(raw: str) -> tuple[str, ...]:
    key = fold(raw)
    if not key:
        return ()
    catalogue = {fold(m.modality): m.modality for m in models()}
    if key in catalogue:
        return (catalogue[key],)
    return COVER_TAG_MODALITIES.get(key, ())


def as_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError(f"extra_data.{what} must be a list of names, got {value!r}")


def positive_int(value: Any, what: str, maximum: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ValueError(f"{what} must be an integer between 1 and {maximum}, got {value!r}")
    return value


def energy_weight(options: Mapping[str, Any]) -> float:
    explicit = options.get("energy_weight")
    if explicit is not None:
        if isinstance(explicit, bool) or not isinstance(explicit, int | float) or not 0 <= explicit <= 10:
            raise ValueError(f"extra_data.energy_weight must be a number between 0 and 10, got {explicit!r}")
        return float(explicit)
    priority = str(options.get("priority") or "").strip().casefold()
    if priority and priority not in PRIORITY_WEIGHTS:
        raise ValueError(
            f"extra_data.priority must be one of {', '.join(PRIORITY_WEIGHTS)}, "
            f"got {options.get('priority')!r}"
        )
    return PRIORITY_WEIGHTS.get(priority, DEFAULT_ENERGY_WEIGHT)


# ------------------------------------------------------------------------------------------------
# Assessing one candidate
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceFit:
    hw: HardwareEntry
    latency_s: float
    power_w: float
    fits_memory: bool

    @property
    def energy_per_batch_j(self) -> float:
        return self.power_w * self.latency_s


@dataclass
class Assessment:
    entry: ModelEntry
    weights_mb: float
    device: DeviceFit | None  # the model's device (lowest energy among feasible ones)
    batch: int
    exclusion: tuple[str, str] | None  # (constraint, reason)
    quality_norm: float = 0.0
    energy_norm: float = 0.0
    score: float = 0.0

    @property
    def energy_j(self) -> float:
        """Energy per inference (J) on the model's device."""
        return self.device.energy_per_batch_j / self.batch if self.device is not None else math.inf

    def figures(self) -> dict[str, Any]:
        q = self.entry.quality
        out: dict[str, Any] = {
            "parameters": self.entry.parameters,
            "macs": self.entry.macs,
            "weights_mb": self.weights_mb,
            "quality": {"metric": q.metric, "value": q.value, "dataset": q.dataset},
        }
        if self.device is not None:
            out.update(
                {
                    "device": self.device.hw.name,
                    "quick_latency_s": self.device.latency_s,
                    "power_w": self.device.power_w,
                    "energy_per_inference_j": self.energy_j,
                    "method": "whole-model roofline from catalogue MACs (HW_RESOURCES refines per operator)",
                }
            )
        return out

    def to_json(self, rank: int, top: Assessment) -> dict[str, Any]:
        return {
            "rank": rank,
            "name": self.entry.name,
            "family": self.entry.family,
            "score": round(self.score, 6),
            "quality_norm": round(self.quality_norm, 6),
            "energy_norm": round(self.energy_norm, 6),
            **self.figures(),
            "why": why(self, rank, top),
        }


def assess(entry: ModelEntry, ctx: Context) -> Assessment:
    weights_mb = entry.parameters * rl.PRECISION_BYTES[ctx.precision] / 1e6
    a = Assessment(entry, weights_mb, None, ctx.batch, None)
    if ctx.max_parameters is not None and entry.parameters > ctx.max_parameters:
        a.exclusion = (
            "max_parameters",
            f"{entry.parameters / 1e6:.3g} M parameters > max_parameters {ctx.max_parameters / 1e6:.3g} M",
        )
        return a
    if ctx.memory_limit_mb is not None and weights_mb > ctx.memory_limit_mb:
        a.exclusion = (
            "memory",
            f"{ctx.precision} weights {weights_mb:.1f} MB > limit {ctx.memory_limit_mb:g} MB "
            f"({ctx.memory_source})",
        )
        return a
    quality = quality_violation(entry, ctx.quality_limits)
    if quality is not None:
        a.exclusion = quality
        return a
    if not ctx.devices:
        return a
    fits = [device_fit(entry, d, ctx) for d in ctx.devices]
    in_memory = [f for f in fits if f.fits_memory]
    if not in_memory:
        largest = max(ctx.devices, key=lambda d: d.memory_gb)
        constraint = "deployment" if ctx.auto and ctx.deployment else "device memory"
        where = (
            f"any {ctx.deployment} device"
            if constraint == "deployment"
            else "the memory of any allowed device"
        )
        a.exclusion = (
            constraint,
            f"{ctx.precision} weights {weights_mb:.1f} MB do not fit {where} (largest: {largest.name}, "
            f"{largest.memory_gb * 1000:g} MB)",
        )
        return a
    meeting = in_memory
    if ctx.max_latency_s is not None:
        meeting = [f for f in in_memory if f.latency_s <= ctx.max_latency_s]
        if not meeting:
            fastest = min(in_memory, key=lambda f: (f.latency_s, f.hw.name))
            a.exclusion = (
                "latency",
                f"estimated {fastest.latency_s * 1000:.3g} ms for a batch of {ctx.batch} on "
                f"{fastest.hw.name} (fastest allowed device) > max_latency_ms {ctx.max_latency_s * 1000:g}",
            )
            return a
    if ctx.max_power_w is not None:
        within = [f for f in meeting if f.power_w <= ctx.max_power_w]
        if not within:
            frugal = min(meeting, key=lambda f: (f.power_w, f.hw.name))
            a.exclusion = (
                "power",
                f"{frugal.power_w:.3g} W on {frugal.hw.name} > max_power_w {ctx.max_power_w:g}",
            )
            return a
        meeting = within
    a.device = min(meeting, key=lambda f: (f.energy_per_batch_j, f.latency_s, f.hw.name))
    return a


def device_fit(entry: ModelEntry, device: HardwareEntry, ctx: Context) -> DeviceFit:
    quick = rl.quick_estimate(entry.macs, entry.parameters, device, ctx.batch, ctx.precision)
    power = pw.device_power_w(device, pw.default_utilisation(device.device_class))
    weights_mb = entry.parameters * rl.PRECISION_BYTES[ctx.precision] / 1e6
    return DeviceFit(device, quick.latency_s, power, weights_mb <= device.memory_gb * 1000.0)


def _comparable_value(metric: str, value: float, words_: tuple[str, ...]) -> float | None:
    tokens = set(re.findall(r"[a-z0-9]+", metric.casefold()))
    if not tokens & set(words_):
        return None
    return value / 100.0 if value > 1.0 else value


def quality_violation(entry: ModelEntry, limits: Mapping[str, float]) -> tuple[str, str] | None:
    q = entry.quality
    for key, bound in sorted(limits.items()):
        words_, lower_better = QUALITY_REQUIREMENTS[key]
        value = _comparable_value(q.metric, q.value, words_)
        if value is None:
            continue
        if (lower_better and value > bound) or (not lower_better and value < bound):
            return "quality", f"{q.metric} {q.value:g} on {q.dataset} does not meet {key}={bound:g}"
    return None


# ------------------------------------------------------------------------------------------------
# Ranking
# ------------------------------------------------------------------------------------------------


def rank(feasible: Sequence[Assessment], weight: float) -> list[Assessment]:
    """Score and sort (see the module docstring, step 4)."""
    if not feasible:
        return []
    groups: dict[str, list[Assessment]] = {}
    for a in feasible:
        groups.setdefault(a.entry.quality.metric.strip().casefold(), []).append(a)
    for members in groups.values():
        signed = [
            m.entry.quality.value if m.entry.quality.higher_is_better else -m.entry.quality.value
            for m in members
        ]
        lo, hi = min(signed), max(signed)
        for m, v in zip(members, signed, strict=True):
            m.quality_norm = 0.5 if len(members) == 1 else (1.0 if hi == lo else (v - lo) / (hi - lo))
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


def why(a: Assessment, rank_: int, top: Assessment) -> str:
    q = a.entry.quality
    figures = f"quality {a.quality_norm:.2f} ({q.metric} {q.value:g} on {q.dataset})"
    if a.device is not None:
        figures += f", energy {a.energy_norm:.2f} ({a.energy_j:.3g} J/inference on {a.device.hw.name})"
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


def explain_no_model(goal: str, excluded: Sequence[Mapping[str, str]]) -> str:
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


# ------------------------------------------------------------------------------------------------
# Outputs
# ------------------------------------------------------------------------------------------------


def model_properties(
    entry: ModelEntry, ctx: Context | None = None, weights: str = "random"
) -> dict[str, Any]:
    """``MLModel.model_properties`` of a catalogue model (as JSON-ready dict)."""
    q = entry.quality
    return {
        "name": entry.name,
        "family": entry.family,
        "goals": list(entry.goals),
        "modality": entry.modality,
        "parameters": entry.parameters,
        "macs": entry.macs,
        "flops": entry.flops,
        "flops_convention": "FLOPs = 2 x MACs",
        "fp32_weight_mb": entry.weights_mb_fp32,
        "quality": {
            "metric": q.metric,
            "value": q.value,
            "dataset": q.dataset,
            "source": q.source,
            "higher_is_better": q.higher_is_better,
        },
        "licence": entry.licence,
        "year": entry.year,
        "source": entry.source,
        "estimated_fields": list(entry.estimated),
        "synthetic": True,
        "weights": "random_seeded" if weights == "random" else "zeros",
        "input_shape": list(entry.input_shape),
        "input_dtype": entry.input_dtype,
        "batch_size": ctx.batch if ctx is not None else 1,
        "precision": ctx.precision if ctx is not None else "fp32",
        "catalogue": True,
    }


def input_specs(path: Path, batch: int, dims: Mapping[str, int]) -> list[tuple[str, list[int], Any]]:
    """(name, shape at ``batch``, numpy dtype) of the model's graph inputs."""
    import onnx
    from onnx import helper

    proto = onnx.load(str(path), load_external_data=False)
    initializers = {t.name for t in proto.graph.initializer}
    specs: list[tuple[str, list[int], Any]] = []
    for vi in proto.graph.input:
        if vi.name in initializers or not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        shape: list[int] = []
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                shape.append(int(d.dim_value))
            elif d.HasField("dim_param") and d.dim_param in dims:
                shape.append(int(dims[d.dim_param]))
            elif i == 0:
                shape.append(batch)
            else:
                raise ValueError(
                    f"input {vi.name!r} dimension {i} ({d.dim_param or '?'}) is symbolic; give its size in "
                    "extra_data.input_dims"
                )
        specs.append((vi.name, shape, helper.tensor_dtype_to_np_dtype(tt.elem_type)))
    return specs


def input_arrays(
    path: Path, batch: int, dims: Mapping[str, int] | None = None
) -> tuple[list[np.ndarray[Any, Any]], int]:
    """(seeded input arrays, samples sent): the whole batch, or as many samples as fit the message."""
    specs = input_specs(path, batch, dims or {})
    per_sample = 0
    for _name, shape, dtype in specs:
        n = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        per_sample += n * np.dtype(dtype).itemsize
    dynamic = all(shape and shape[0] == batch for _n, shape, _d in specs)
    samples = batch if dynamic else min((shape[0] for _n, shape, _d in specs if shape), default=1)
    if per_sample * samples > _INPUT_BATCH_BUDGET:
        samples = max(0, min(samples, _INPUT_BATCH_BUDGET // max(per_sample, 1)))
    if samples == 0 or per_sample > _INPUT_BATCH_BUDGET:
        return [], 0
    if samples != batch:
        specs = [(n, [samples, *shape[1:]], d) for n, shape, d in specs]
    arrays = measuring.synthetic_inputs(specs, measuring.token_ranges(path))
    return [arrays[name] for name, _s, _d in specs], samples


INPUT_BATCH_OMITTED: Final = (
    "input_batch not sent: the inputs are synthetic and seeded, HW_RESOURCES regenerates them; "
    "set extra_data.include_input_batch = true to receive them"
)


def _maybe_input_batch(
    ml_model: MLModel,
    path: Path,
    ctx: Context,
    options: Mapping[str, Any],
    props: dict[str, Any],
    extra: dict[str, Any],
) -> None:
    """``input_batch`` = the seeded input arrays, only with ``extra_data.include_input_batch``."""
    if options.get("include_input_batch") is not True:
        extra["input_batch_note"] = INPUT_BATCH_OMITTED
        return
    arrays, sent = input_arrays(path, ctx.batch, ctx.dims)
    ml_model.set_input_arrays(arrays)
    if sent < ctx.batch:
        props["input_batch_samples"] = sent
        extra["input_batch_note"] = (
            f"input_batch holds {sent} of {ctx.batch} samples (message limit "
            f"{msg_limits.MAX_INPUT_BATCH_BYTES} bytes, or a model with a fixed batch of 1); "
            "model_properties.batch_size is the real batch"
        )


def _maybe_raw_model(
    ml_model: MLModel, path: Path, options: Mapping[str, Any], extra: dict[str, Any]
) -> None:
    if options.get("include_raw_model") is not True:
        return
    from sustainml.onnxgraphs import cache as onnx_cache

    try:
        ml_model.raw_model = onnx_cache.model_bytes(path, RAW_MODEL_LIMIT)
    except onnx_cache.ModelTooLarge as exc:
        extra["raw_model_omitted"] = str(exc)


# ------------------------------------------------------------------------------------------------
# User models
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserModelRequest:
    path: str | None
    raw: bytes | None
    name: str


def user_model_request(options: Mapping[str, Any]) -> UserModelRequest | None:
    """The user's own model, if the options name one (``model_selected`` *.onnx, ``model_path`` or
    ``raw_model``)."""
    selected = str(options.get("model_selected") or "").strip()
    path = options.get("model_path")
    raw = options.get("raw_model")
    name = str(options.get("model_name") or "").strip()
    if isinstance(path, str) and path.strip():
        p = path.strip()
        return UserModelRequest(p, None, name or Path(p).stem)
    if selected.casefold().endswith(".onnx"):
        return UserModelRequest(selected, None, name or Path(selected).stem)
    if raw is not None:
        if isinstance(raw, str):
            import base64
            import binascii

            try:
                raw = base64.b64decode(raw, validate=True)
            except binascii.Error as exc:
                raise ValueError("extra_data.raw_model must be bytes or base64 text") from exc
        if not isinstance(raw, bytes | bytearray) or not raw:
            raise ValueError("extra_data.raw_model must be non-empty bytes (a serialized ONNX model)")
        return UserModelRequest(None, bytes(raw), name or "user-model")
    return None


def resolve_user_path(raw: str) -> Path:
    """The real path of the user's ONNX file, validated by ``onnxgraphs.load_user_model``: inside an
    allowed directory (``hw_resources.user_model_dirs``; a relative path is looked up in each), at
    most ``hw_resources.USER_MODEL_MAX_BYTES``, parsable, checker- and shape-inference-clean."""
    from sustainml.onnxgraphs import UserModelError, load_user_model

    dirs = hwr.user_model_dirs()
    text = raw.strip().strip("'\"")
    if "\x00" in text:
        raise ValueError("model path contains a NUL character")
    given = Path(text).expanduser()
    candidates = [given] if given.is_absolute() else [d / given for d in dirs]
    errors: list[str] = []
    for candidate in candidates:
        try:
            loaded = load_user_model(candidate, dirs, hwr.USER_MODEL_MAX_BYTES)
        except UserModelError as exc:
            errors.append(str(exc))
            continue
        assert loaded.path is not None
        return loaded.path
    hint = f" (allowed directories: {', '.join(str(d) for d in dirs)}; set {hwr.MODEL_DIRS_ENV})"
    raise ValueError("; ".join(dict.fromkeys(errors)) + hint)


def _fill_user_model(
    ml_model: MLModel, user: UserModelRequest, ctx: Context, options: Mapping[str, Any], extra: dict[str, Any]
) -> None:
    if user.path is not None:
        path = resolve_user_path(user.path)
        origin = "extra_data.model_path" if options.get("model_path") else "extra_data.model_selected"
    else:
        assert user.raw is not None
        path = hwr.store_raw_model(user.raw)
        origin = "extra_data.raw_model"
    report = hwr.analysed(path, 1, ctx.dims)
    weights_mb = report.parameter_bytes * rl.precision_scale(ctx.precision) / 1e6
    warnings = ctx.warnings
    if ctx.memory_limit_mb is not None and weights_mb > ctx.memory_limit_mb:
        warnings.append(
            f"weights {weights_mb:.1f} MB > memory limit {ctx.memory_limit_mb:g} MB ({ctx.memory_source})"
        )
    if ctx.max_parameters is not None and report.parameters > ctx.max_parameters:
        warnings.append(f"{report.parameters} parameters > max_parameters {ctx.max_parameters:g}")
    if ctx.max_latency_s is not None and ctx.devices:
        best = min(
            (
                rl.quick_estimate(report.macs, report.parameters, d, ctx.batch, ctx.precision)
                for d in ctx.devices
            ),
            key=lambda e: e.latency_s,
        )
        if best.latency_s > ctx.max_latency_s:
            warnings.append(
                f"estimated {best.latency_s * 1000:.3g} ms on {best.device} > "
                f"max_latency_ms {ctx.max_latency_s * 1000:g}"
            )
    ml_model.model = user.name
    ml_model.model_path = str(path)
    props: dict[str, Any] = {
        "name": user.name,
        "family": "user",
        "goals": [ctx.goal] if ctx.goal else [],
        "parameters": report.parameters,
        "macs": report.macs,
        "flops": report.flops,
        "flops_convention": "FLOPs = 2 x MACs for linear layers (onnxgraphs.analyze)",
        "quality": None,
        "licence": "unknown (user-provided)",
        "source": origin if user.path is None else f"{origin}: {path}",
        "synthetic": False,
        "batch_size": ctx.batch,
        "precision": ctx.precision,
        "input_dims": ctx.dims,
        "inputs": {k: list(v) for k, v in report.inputs.items()},
        "catalogue": False,
    }
    _maybe_input_batch(ml_model, path, ctx, options, props, extra)
    ml_model.model_properties = json.dumps(props, sort_keys=True)
    ml_model.target_latency = ctx.target_latency_s
    extra["selected_by"] = origin
    extra["candidates"] = []
    extra["excluded"] = []
    if warnings:
        extra["constraint_warnings"] = list(warnings)
    _maybe_raw_model(ml_model, path, options, extra)
    ml_model.set_extra(extra)


# ------------------------------------------------------------------------------------------------
# Configuration requests
# ------------------------------------------------------------------------------------------------


def configuration_callback(req: RequestType, res: ResponseType) -> None:
    text = req.configuration.strip()
    keyword, sep, rest = text.partition(",")
    keyword = keyword.strip()
    if text == "models":
        reply(req, res, {"models": ", ".join(sorted(m.name for m in models()))})
    elif keyword == "model_from_goal" and sep:
        _model_from_goal(req, res, [p.strip() for p in rest.split(",")])
    elif keyword == "hf_search" and sep:
        _hf_search(req, res, rest)
    else:
        reply_error(req, res, f"Unsupported configuration request: {req.configuration}")
        body = json.loads(res.configuration)
        res.configuration = json.dumps({"models": "", **body})  # upstream's reply key, plus the reason


def _unets() -> list[ModelEntry]:
    """Segmentation U-Nets (upstream's ``U_NET_MODELS``)."""
    return [m for m in models().for_goal("image-segmentation") if "unet" in fold(m.name)]


def _model_from_goal(req: RequestType, res: ResponseType, args: list[str]) -> None:
    goal = args[0] if args else ""
    hw_name = args[1] if len(args) > 1 else ""
    family = args[2] if len(args) > 2 else ""
    chosen = _unets() if goal.casefold() in ("u_net_models", "unet_models") else models().for_goal(goal)
    if hw_name:
        try:
            device = hwr.resolve_device(hw_name)
        except ValueError as exc:
            reply_error(req, res, str(exc))
            return
        if family and "fpga" in hw_name.casefold() and fold(family) in ("cnns", "cnn"):
            chosen = _unets() or chosen  # upstream: CNNs on an FPGA list the U-Net models
        chosen = [m for m in chosen if m.weights_mb_fp32 <= device.memory_gb * 1000.0]
    if family:
        want = fold(family).removesuffix("s")
        chosen = [m for m in chosen if want and want in fold(m.family)]
    names = sorted({m.name for m in chosen})
    if not names:
        reply_error(
            req,
            res,
            f"No catalogue model for goal {goal!r}"
            + (f" on {hw_name}" if hw_name else "")
            + (f" of family {family!r}" if family else ""),
        )
        return
    reply(req, res, {"models": ", ".join(names[:MAX_LISTED])})


def _tooltip(m: ModelEntry) -> str:
    q = m.quality
    return (
        f"{m.name} ({m.family}, {m.year}): {m.parameters / 1e6:.1f} M parameters, "
        f"{m.macs / 1e9:.2f} GMACs at input {'x'.join(str(d) for d in m.input_shape)}; "
        f"{q.metric} {q.value:g} on {q.dataset}; licence {m.licence}"
    )


def _card(m: ModelEntry, score: float, goal: str) -> dict[str, Any]:
    author = (
        m.source.split("/")[3]
        if m.source.startswith("https://github.com/") and m.source.count("/") >= 4
        else ""
    )
    return {
        "model_id": m.name,
        "author": author,
        "downloads": 0,
        "likes": 0,
        "pipeline_tag": goal if goal in m.goals else m.goals[0],
        "library_name": "onnx",
        "tags": sorted({*m.goals, m.modality, m.family, *m.aliases}),
        "cardData": {
            "license": m.licence,
            "quality": {"metric": m.quality.metric, "value": m.quality.value, "dataset": m.quality.dataset},
        },
        "card_text": _tooltip(m) + f". Source: {m.source}",
        "sha": "",
        "lastModified": str(m.year),
        "url": m.source if m.source.startswith("http") else "",
        "score": round(score, 6),
        "tooltip": _tooltip(m),
    }


def goal_probabilities(description: str) -> tuple[dict[str, float], str]:
    """Goal -> probability from the task encoder, or ({}, reason) when it is not available."""
    try:
        from sustainml.workers.logic.encoder import encode
    except ImportError as exc:
        return {}, f"task encoder not available ({exc}); word overlap only"
    try:
        enc = encode(description)
    except Exception as exc:  # the encoder is another module: fall back and say so
        log.warning("hf_search: the task encoder failed (%s); word overlap only", exc)
        return {}, f"task encoder failed ({type(exc).__name__}); word overlap only"
    return {g: float(s) for g, s in enc.top_goals}, "task encoder"


def _model_words(m: ModelEntry) -> set[str]:
    text = " ".join([m.name, m.family, " ".join(m.goals), m.modality, " ".join(m.aliases), m.quality.dataset])
    return set(words(text.replace("-", " ")))


def search(description: str, limit: int) -> tuple[list[tuple[ModelEntry, float]], str, str]:
    """(ranked (model, score), inferred goal, method): score = 0.7 x P(goal) + 0.3 x word overlap."""
    probs, method = goal_probabilities(description)
    query = set(words(description.replace("-", " ")))
    scored: list[tuple[ModelEntry, float]] = []
    for m in models():
        mw = _model_words(m)
        overlap = len(query & mw) / math.sqrt(len(query) * len(mw)) if query and mw else 0.0
        goal_p = max((probs.get(g, 0.0) for g in m.goals), default=0.0)
        score = 0.7 * goal_p + 0.3 * overlap if probs else overlap
        if score > 0:
            scored.append((m, score))
    scored.sort(key=lambda t: (-t[1], t[0].macs, t[0].name))
    goal = max(probs, key=lambda g: (probs[g], g)) if probs else (scored[0][0].goals[0] if scored else "")
    return scored[:limit], goal, method


def _hf_search(req: RequestType, res: ResponseType, rest: str) -> None:
    description, limit = rest, HF_SEARCH_DEFAULT_LIMIT
    head, sep, tail = rest.rpartition(",")
    if sep and tail.strip().lstrip("-").isdigit():
        description, limit = head, int(tail.strip())
    description = description.strip()
    if description.startswith(MODEL_CONFIG_PREFIX):
        model_id = description[len(MODEL_CONFIG_PREFIX) :].strip()
        entry = models().find(model_id)
        if entry is None:
            reply(
                req,
                res,
                {"model_id": model_id, "tooltip": "", "error": f"unknown catalogue model {model_id!r}"},
            )
        else:
            reply(req, res, {"model_id": entry.name, "tooltip": _tooltip(entry)})
        return
    if not description:
        reply(req, res, {"models": [], "error": "hf_search needs a description"})
        return
    if limit < 1:
        reply(req, res, {"models": [], "error": f"limit must be >= 1, got {limit}"})
        return
    found, goal, method = search(description, min(limit, MAX_LISTED))
    if not found:
        reply(
            req,
            res,
            {
                "models": [],
                "error": "no catalogue model matches the description",
                "task": goal,
                "pipeline_tag": goal,
                "candidates": 0,
            },
        )
        return
    reply(
        req,
        res,
        {
            "models": [_card(m, s, goal) for m, s in found],
            "task": goal,
            "pipeline_tag": goal,
            "candidates": len(models()),
            "method": method,
        },
    )


__all__ = [
    "RANKING_RULE",
    "Assessment",
    "Context",
    "assess",
    "configuration_callback",
    "input_arrays",
    "model_properties",
    "rank",
    "search",
    "task_callback",
]
