"""ML_MODEL: one task's context (options, limits, devices, precision, the candidate pool) and the
helpers that read the options."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sustainml.catalogue import HardwareEntry, ModelEntry, models
from sustainml.catalogue.schema import model_fold as fold
from sustainml.config import EstimationSettings
from sustainml.estimate import roofline as rl
from sustainml.estimate import transformer as tfm
from sustainml.estimate.devices import AUTO, candidate_devices
from sustainml.estimate.efficiency import Efficiency
from sustainml.estimate.model_files import (
    dims_of,
)
from sustainml.messages.types import (
    AppRequirements,
    HWConstraints,
)
from sustainml.workers.logic.common import (
    estimation_settings,
    parse_requirements,
    requested_hardware,
    words,
)
from sustainml.workers.logic.ml_model.rules import (
    CHAT_WORDS,
    COVER_TAG_MODALITIES,
    DEFAULT_DIFFUSION_STEPS,
    DEFAULT_ENERGY_WEIGHT,
    DESCRIPTION_KEYS,
    DOMAIN_WORDS,
    GENERATIVE_GOALS,
    LONG_INPUT_TOKENS,
    LONG_WORDS,
    MAX_BATCH,
    MULTILINGUAL_MIN_LANGUAGES,
    NOT_COSTABLE,
    PRIORITY_WEIGHTS,
    QUALITY_REQUIREMENTS,
    SIZE_BAND,
    TRAINING_KEYS,
    TRAINING_WORDS,
    costable,
)


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
    precision_explicit: bool = True
    languages: tuple[str, ...] = ()
    multilingual: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    diffusion_steps: int = DEFAULT_DIFFUSION_STEPS
    num_devices: int = 1
    training: bool = False
    chat: bool = False
    domain: str | None = None  # rules.DOMAIN_WORDS key the description places the problem in
    model_parameters: float | None = None
    #: the node's estimation settings (graph cache, user-model directories, calibrations)
    estimation: EstimationSettings = field(default_factory=lambda: estimation_settings(None))

    @classmethod
    def build(
        cls,
        goal: str,
        options: Mapping[str, Any],
        app_requirements: AppRequirements,
        hw_constraints: HWConstraints,
        settings: EstimationSettings | None = None,
    ) -> Context:
        est = estimation_settings(settings)
        warnings: list[str] = []
        reqs = parse_requirements(app_requirements)
        raw_modality = str(options.get("modality") or "").strip()
        modalities = resolve_modalities(raw_modality)
        restrained_names = {str(n) for n in as_list(options.get("model_restrains"), "model_restrains")}
        restrained: set[str] = set()
        for name in restrained_names:
            entry = models().find(name)
            restrained.add(fold(entry.name) if entry is not None else fold(name))
        typed = typed_requirements(app_requirements, options)
        batch = positive_int(
            options.get("batch_size", typed.get("batch_size", 1)), "extra_data.batch_size", MAX_BATCH
        )
        precision_explicit = bool(options.get("precision"))
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
            allowed = hw_constraints.get_extra().get("allowed_hardware")
            requested = requested_hardware(hw_constraints)
            devices, device_note = candidate_devices(requested, allowed, est.data_dir)
        except ValueError as exc:
            devices, device_note = [], f"no device: {exc}"
            warnings.append(f"hardware not usable for the latency estimate: {exc}")
        auto = any(h.strip().casefold() == AUTO for h in hw_constraints.hardware_required)
        deployment = reqs.get("deployment")
        quality = {k: float(v) for k, v in reqs.items() if k in QUALITY_REQUIREMENTS and isinstance(v, float)}

        def num(key: str) -> float | None:
            v = reqs.get(key)
            return float(v) if isinstance(v, float) and v > 0 else None

        latency_ms = num("max_latency_ms")
        languages, multilingual = requested_languages(typed.get("languages"))
        words_ = {w for k in keywords_of(options) for w in words(k)}
        training = any(typed.get(k) not in (None, "", 0) for k in TRAINING_KEYS) or bool(
            words_ & TRAINING_WORDS
        )
        if options.get("mode") in ("training", "inference"):
            training = options.get("mode") == "training"
        size = typed.get("model_parameters")
        input_tokens = count_of(typed, "input_tokens")
        if (
            input_tokens is None
            and words_ & LONG_WORDS
            and goal in GENERATIVE_GOALS | {"text-classification"}
        ):
            input_tokens = LONG_INPUT_TOKENS
            warnings.append(
                f"input_tokens not stated; 'long' documents taken as {LONG_INPUT_TOKENS} tokens "
                "(state input_tokens to change it)"
            )
        return cls(
            goal=goal,
            modalities=modalities,
            modality_note=raw_modality,
            restrained=restrained,
            restrained_names=restrained_names,
            batch=batch,
            precision=precision,
            dims=dims_of(options),
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
            precision_explicit=precision_explicit,
            languages=languages,
            multilingual=multilingual,
            input_tokens=input_tokens,
            output_tokens=count_of(typed, "output_tokens"),
            diffusion_steps=count_of(typed, "diffusion_steps") or DEFAULT_DIFFUSION_STEPS,
            num_devices=count_of(typed, "num_devices") or 1,
            training=training,
            chat=bool(words_ & CHAT_WORDS),
            domain=next((d for d, ws in DOMAIN_WORDS.items() if words_ & ws), None),
            model_parameters=positive_number(size, "model_parameters") if size not in (None, "") else None,
            estimation=est,
        )

    @cached_property
    def efficiencies(self) -> tuple[Efficiency, ...]:
        """The efficiency factors of ``devices``, in order (``local``: calibrated in the data
        directory when the task began)."""
        return tuple(rl.efficiency_for(d, self.estimation.data_dir) for d in self.devices)

    def screening_key(self) -> tuple[Any, ...]:
        """What a candidate's screening on ``devices`` depends on besides the model, its precision
        and memory need: the devices' efficiency factors and the task's shape."""
        return (
            self.efficiencies,
            self.goal,
            self.input_tokens,
            self.output_tokens,
            self.batch,
            self.num_devices,
            self.diffusion_steps,
        )

    def precision_for(self, entry: ModelEntry) -> str:
        """The stated precision, else the one the model is released and usually run in."""
        return self.precision if self.precision_explicit else entry.default_precision

    def nearest_size(self, pool: list[ModelEntry], excluded: list[dict[str, Any]]) -> list[ModelEntry]:
        """The candidates of about ``model_parameters`` (within ``SIZE_BAND``); refuses with the
        nearest names when the goal has none of that size."""
        assert self.model_parameters is not None
        want = self.model_parameters
        band = [m for m in pool if want / SIZE_BAND <= m.parameters <= want * SIZE_BAND]
        if not band:
            nearest = sorted(pool, key=lambda m: (abs(math.log(m.parameters / want)), m.name))[:5]
            names = ", ".join(f"{m.name} ({tfm.human(m.parameters)})" for m in nearest) or "none"
            raise ValueError(
                f"model_parameters: no {self.goal or 'catalogue'} model of about "
                f"{tfm.human(want)} parameters "
                f"(within {SIZE_BAND}x) for these requirements; nearest: {names}"
            )
        for m in pool:
            if m not in band:
                excluded.append(
                    excluded_entry(
                        m.name,
                        "model_parameters",
                        f"{tfm.human(m.parameters)} parameters, not about {tfm.human(want)}",
                    )
                )
        return self.prefer_chat(band, excluded)

    def prefer_chat(self, pool: list[ModelEntry], excluded: list[dict[str, Any]]) -> list[ModelEntry]:
        """Chat/instruction models only, when the description asks for chat and some are left."""
        if not (self.chat and self.goal == "text-generation"):
            return pool
        chat = [m for m in pool if {"chat", "instruct"} & set(m.tags)]
        if not chat:
            return pool
        for m in pool:
            if m not in chat:
                excluded.append(excluded_entry(m.name, "chat", "a base model; the description asks for chat"))
        return chat

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
                            excluded_entry(
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
                excluded.append(
                    excluded_entry(m.name, "model_restrains", "proposed before (model_restrains)")
                )
                continue
            if not costable(m):
                excluded.append(excluded_entry(m.name, "costing", NOT_COSTABLE))
                continue
            missing = [code for code in self.languages if not m.covers([code])]
            if missing:
                excluded.append(
                    excluded_entry(
                        m.name,
                        "languages",
                        f"does not cover {', '.join(missing)} (covers {_langs(m)})",
                        missing=missing,
                    )
                )
                continue
            if self.multilingual and m.languages and len(m.languages) < MULTILINGUAL_MIN_LANGUAGES:
                excluded.append(
                    excluded_entry(
                        m.name,
                        "languages",
                        f"covers {len(m.languages)} languages; 'multilingual' asks for "
                        f">= {MULTILINGUAL_MIN_LANGUAGES}",
                        missing=["multilingual"],
                    )
                )
                continue
            if self.input_tokens and m.context and m.modality == "text" and self.input_tokens > m.context:
                excluded.append(
                    excluded_entry(
                        m.name,
                        "context",
                        f"context {m.context} tokens < input_tokens {self.input_tokens}",
                        need=float(self.input_tokens),
                        limit=float(m.context),
                        unit="tokens",
                    )
                )
                continue
            out.append(m)
        return out if self.model_parameters is not None else self.prefer_chat(out, excluded)


def excluded_entry(
    model: str,
    constraint: str,
    reason: str,
    *,
    need: float | None = None,
    limit: float | None = None,
    unit: str = "",
    missing: list[str] | None = None,
) -> dict[str, Any]:
    """One excluded candidate. ``need``/``limit`` (and ``missing`` languages) let the NO_MODEL
    report compute the smallest relaxation; keys starting with ``_`` are not published."""
    out: dict[str, Any] = {"model": model, "constraint": constraint, "reason": reason}
    if need is not None and limit is not None:
        out.update({"_need": need, "_limit": limit, "_unit": unit})
    if missing:
        out["_missing"] = list(missing)
    return out


def _langs(m: ModelEntry) -> str:
    return ", ".join(m.languages) if len(m.languages) <= 8 else f"{len(m.languages)} languages"


def typed_requirements(
    app_requirements: AppRequirements | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    """The extracted requirements (typed), with explicit ``extra_data`` keys of the same name on top."""
    typed: dict[str, Any] = {}
    if app_requirements is not None:
        raw = app_requirements.get_extra().get("requirements")
        if isinstance(raw, Mapping):
            typed.update(raw)
        for k, v in parse_requirements(app_requirements).items():
            typed.setdefault(k, v)
    for key in (
        "languages",
        "input_tokens",
        "output_tokens",
        "num_devices",
        "model_parameters",
        "diffusion_steps",
        "batch_size",
        *TRAINING_KEYS,
    ):
        if options.get(key) not in (None, ""):
            typed[key] = options[key]
    return typed


def requested_languages(raw: Any) -> tuple[tuple[str, ...], bool]:
    """(ISO 639-1 codes, multilingual?) of the ``languages`` requirement (list or comma text)."""
    if raw in (None, ""):
        return (), False
    items = raw.split(",") if isinstance(raw, str) else list(raw) if isinstance(raw, list | tuple) else None
    if items is None:
        raise ValueError(f"languages: expected ISO 639-1 codes (list or comma-separated), got {raw!r}")
    codes = [str(c).strip().casefold() for c in items if str(c).strip()]
    multilingual = "multilingual" in codes
    codes = [c for c in codes if c != "multilingual"]
    for c in codes:
        if not re.fullmatch(r"[a-z]{2,3}", c):
            raise ValueError(f"languages: {c!r} is not an ISO 639-1 code (e.g. 'fr', 'es')")
    return tuple(dict.fromkeys(codes)), multilingual


def keywords_of(options: Mapping[str, Any]) -> list[str]:
    out = [str(k) for k in options.get("keywords") or [] if isinstance(k, str)]
    for key in DESCRIPTION_KEYS:
        if isinstance(options.get(key), str):
            out.append(options[key])
    return out


def count_of(typed: Mapping[str, Any], key: str) -> int | None:
    value = typed.get(key)
    if value in (None, ""):
        return None
    number = positive_number(value, key)
    if number != int(number):
        raise ValueError(f"{key}: expected a whole number, got {value!r}")
    return int(number)


def positive_number(value: Any, key: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: expected a positive number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise ValueError(f"{key}: expected a positive number, got {value!r}")
    return number


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
