"""ML_MODEL (model provider): the model the user names, or a catalogue model for the goal within
the constraints, ranked by a documented quality-versus-energy score; or the user's own ONNX model.

Options are read from the forwarded user ``extra_data`` (HW_CONSTRAINTS forwards all of it) with the
metadata's ``extra_data`` on top (``model_restrains``, ``model_selected``, ``modality``), and the
extracted requirements (``AppRequirements.extra_data["requirements"]``; explicit ``extra_data`` keys
of the same name win): ``languages``, ``input_tokens``, ``output_tokens``, ``num_devices``,
``model_parameters``, ``diffusion_steps``, ``batch_size``, ``training_hours``/``training_tokens``/
``training_samples``/``epochs``.

1. **What the user names is honoured or refused, never replaced** (a refusal is a ``ValueError``
   naming the field and the closest catalogue names, which fails the task with that message):
   - ``model_selected``: a catalogue name or alias ("bert-large-uncased", "Llama-2-7b-chat",
     "meta-llama/Llama-2-7b-chat-hf", "GPT-3 175B"), any goal; or an ONNX file (``*.onnx``,
     ``extra_data.model_path`` inside the allowed model directories, ``extra_data.raw_model``). The
     constraints it breaks are reported in ``warnings`` / ``constraint_warnings``, not enforced.
   - ``extra_data.architecture``: a transformer shape (the catalogue's ``architecture`` fields), or
     the path of a Hugging Face ``config.json`` inside the allowed model directories
     (``hw_resources.user_model_dirs``): costed analytically (``estimate.transformer``).
   - ``model_parameters`` ("a 7B model"): the goal's models within ``SIZE_BAND`` (1.35x) of that
     size compete in the ranking; none of that size -> refused with the nearest sizes.
   - A catalogue name or alias written in the description ("... with Llama-3.1-70B-Instruct on 4
     H100s") counts as ``model_selected`` when none is given (``selected_by: description``):
     spans of up to 4 words with a digit, '-' or '/' (so "whisper" or "bloom" as words are not).
   - A description asking for chat ("chat", "assistant", "instruct") keeps chat/instruction models
     of a text-generation goal when there are any.
2. **Candidates**: catalogue models whose goals include the goal (``ml_model_metadata[0]``), of the
   input modality (catalogue modalities or cover tags such as cv/nlp; ignored, with a note, when it
   would leave no model), minus ``model_restrains``, minus models that do not cover every requested
   language (ISO 639-1; "multilingual" alone asks for >= 10 languages), minus text models whose
   context is shorter than ``input_tokens`` ("long" documents with no length: 8,192 tokens,
   said in ``warnings``), minus any entry HW_RESOURCES says it cannot cost
   (``hw_resources.costing_method``; constraint ``costing``; naming one in ``model_selected`` is
   refused with the reason).
3. **Constraints** (each exclusion names its constraint):
   - ``max_parameters`` (requirement);
   - memory: weights (parameters x bytes of the precision, MB) <= the smaller non-zero of
     ``max_memory_footprint`` and the ``max_model_size_mb`` requirement;
   - quality: ``min_accuracy``, ``min_f1``, ``min_map``, ``min_iou``, ``min_auc``, ``max_wer``,
     ``max_cer`` when the model's published metric is of that kind;
   - hardware: the devices are the ``hardware_required`` ones, or with ``auto`` the
     ``allowed_hardware`` HW_CONSTRAINTS derived from the deployment target (``deployment``
     constraint). What must fit is ``num_devices`` x the device's memory (a 70B model fits 8 x
     80 GB): for inference the weights (+ the KV cache of the input and output tokens for a
     generative transformer), for training (a training requirement, or "train"/"fine-tune" in the
     description) the mixed-precision Adam state and activations
     (``TransformerSpec.training_memory``; 16 bytes per parameter for other models). With
     ``max_latency_ms``, the screening latency must meet it; with ``max_power_w``, the power.
   - Precision: ``extra_data.precision``, else each model's released precision
     (``default_precision``: fp32 for the small graph-built models, bf16/fp16 for LLMs, diffusion).
4. **Screening latency and energy** (HW_RESOURCES refines them): generative transformers per
   *answer*: prefill of the input (``input_tokens``, else the reference length) plus
   ``output_tokens`` (else ``DEFAULT_OUTPUT_TOKENS`` per goal) decode steps, each bounded by compute
   or by reading the weights and KV cache; diffusion pipelines per image (``diffusion_steps``, default
   30, plus the parts run once); others the whole-model roofline of the catalogue MACs. Several
   devices are taken as ideally sharded (peak and bandwidth x ``num_devices``, power x
   ``num_devices``).
5. **Ranking** (deterministic): ``score = quality - w x energy`` with
   - quality in [0, 1]: figures are compared on one scale only, the reference metric **and**
     dataset that most feasible candidates report for the goal: those candidates' figures are
     normalised as 1 - (best - figure) / span, span = max(best - worst, 10 % of the best figure)
     (lower-is-better metrics flipped; a 0.1-point gap is not stretched to the whole scale);
     every other candidate gets 0.5 (not
     comparable: neutral); a figure measured on another task gets 0.25 (a backbone's MNLI accuracy
     for token classification; a chat model's MMLU counts for generation tasks), as does a
     pre-trained encoder or seq2seq backbone (tag ``base``) unless the task is training: its
     figure is that of a fine-tuned copy; and
     ``quality_note`` names the reference scale and the models not on it;
   - energy in [0, 1]: log10 of the energy per inference or per answer (power at the class's
     default utilisation x screening latency / batch, on the model's device) min-max normalised;
   - ``w`` = 0.5 (quality counts twice as much as the energy span), 0.25 with
     ``extra_data.priority = "accuracy"``, 1.0 with ``"energy"``, or ``extra_data.energy_weight``.
   Ties: higher quality, lower energy, fewer parameters, name.
6. Nothing fits: ``NO_MODEL``, ``model_path = "N/A"``, ``error_code``/``error`` as upstream, the
   exclusions as the explanation, and ``extra_data.no_model = {"message", "binding_constraint",
   "relaxation"}``: the constraint that excluded the candidate closest to feasible and the
   smallest change that admits a model (e.g. "raise the memory limit from 100 to 242 MB; admits
   t5-small", "2 x H100 (now 1)", "shorten the input to 4096 tokens").

Outputs: ``model``; ``model_path`` = the ONNX file (``onnxgraphs.cache``, seeded random weights up to
``hw_resources.RANDOM_WEIGHTS_MAX_PARAMETERS`` parameters, zeros above), or
``catalogue://<name>`` for a model costed analytically (no graph: LLMs, pipelines);
``model_properties`` (JSON: name, family, goals, modality, parameters, MACs, FLOPs, quality,
licence, source, year, languages, context, architecture and its summary, active parameters,
components, ``synthetic: true``, weights, input shape, batch size, precision, num_devices, mode
(training or inference), input/output tokens); ``target_latency`` = ``max_latency_ms`` / 1000
(0 = none); ``input_batch`` only with ``extra_data.include_input_batch``: seeded arrays of the
model's inputs (token ids below the vocabulary for text) at the batch size
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
from sustainml.catalogue.schema import model_fold as fold
from sustainml.estimate import measure as measuring
from sustainml.estimate import power as pw
from sustainml.estimate import roofline as rl
from sustainml.estimate import transformer as tfm
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
from sustainml.workers.logic.tables import MODEL_PATH_SCHEME, NO_MODEL, NO_MODEL_ERROR, NO_MODEL_PATH

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
    "score = quality - w x energy; quality = 1 - (best - figure) / max(best - worst, 10 % of best) among "
    "the feasible candidates reporting the reference metric and dataset (the one most report for this goal); "
    "0.5 (not comparable) for the others and for figures measured on another task; "
    "energy = log10(J per inference or per answer on the model's device) min-max normalised; "
    "ties: quality, energy, parameters, name"
)

#: Goals whose answer is generated token by token: an answer costs prefill + N decode steps.
GENERATIVE_GOALS: Final = frozenset(
    {
        "text-generation",
        "summarization",
        "translation",
        "image-text-to-text",
        "image-to-text",
        "automatic-speech-recognition",
        "question-answering",
    }
)
#: Generated tokens per answer when the requirement ``output_tokens`` is not given (screening only;
#: HW_RESOURCES states its own per-answer figures): a chat reply, a summary, a short answer, the
#: text of 30 s of speech (~150 words per minute, ~1.3 tokens per word).
DEFAULT_OUTPUT_TOKENS: Final[dict[str, int]] = {
    "text-generation": 256,
    "summarization": 200,
    "translation": 128,
    "question-answering": 32,
    "image-text-to-text": 128,
    "image-to-text": 32,
    "automatic-speech-recognition": 100,
}
#: Denoising steps per image when ``diffusion_steps`` is not given (the common scheduler default).
DEFAULT_DIFFUSION_STEPS: Final = 30
#: "a 7B model": catalogue models within this factor of the stated size are "that size".
SIZE_BAND: Final = 1.35
#: "multilingual" with no language named: a model must cover at least this many languages.
MULTILINGUAL_MIN_LANGUAGES: Final = 10
#: Words of the description (ML_MODEL_METADATA keywords) that ask for a chat/instruction model.
CHAT_WORDS: Final = frozenset({"chat", "chatbot", "assistant", "instruct", "instruction", "conversational"})
#: Words that say the task is training (fine-tuning) rather than inference.
TRAINING_WORDS: Final = frozenset(
    {"train", "training", "fine-tune", "finetune", "fine-tuning", "finetuning", "pretrain", "pre-train"}
)
TRAINING_KEYS: Final = ("training_hours", "training_tokens", "training_samples", "epochs")
#: "long documents" with no stated length: tokens assumed (a 15-20 page contract or report is
#: ~8,000 words of English or French, ~10,000 tokens; 8,192 is the common context step).
LONG_INPUT_TOKENS: Final = 8192
LONG_WORDS: Final = frozenset({"long", "lengthy", "long-form", "book", "books"})
#: Training sequence length for the activation memory when none is stated (tokens).
DEFAULT_TRAINING_SEQUENCE: Final = 2048


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
    options.setdefault("keywords", list(ml_model_metadata.keywords))
    goal = ml_model_metadata.ml_model_metadata[0].strip() if ml_model_metadata.ml_model_metadata else ""
    ctx = Context.build(goal, options, app_requirements, hw_constraints)

    extra: dict[str, Any] = {
        "goal": goal,
        "modality": ctx.modality_note,
        "batch_size": ctx.batch,
        "precision": ctx.precision if ctx.precision_explicit else "each model's default_precision",
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

    excluded: list[dict[str, Any]] = []
    selected_by = "ranking"
    wanted = str(options.get("model_selected") or "").strip()
    arch_entry = user_architecture_entry(options, goal)
    if not wanted and arch_entry is None:
        named = models().named_in_text(" ".join(str(options.get(k) or "") for k in DESCRIPTION_KEYS))
        if named is not None and costable(named):
            wanted = named.name
            extra["model_named_in_description"] = named.name
    pool: list[ModelEntry]
    if arch_entry is not None:
        pool, selected_by = [arch_entry], "architecture"
    elif wanted:
        entry = models().find(wanted)
        if entry is None:
            close = models().closest(wanted)
            raise ValueError(
                f"extra_data.model_selected: {wanted!r} is not a catalogue model, an alias or an .onnx file; "
                f"closest catalogue names: {', '.join(close) or 'none'}"
            )
        if not costable(entry):
            raise ValueError(
                f"extra_data.model_selected: {entry.name}: {NOT_COSTABLE}; models of its goal that "
                "can be costed: "
                f"{', '.join(m.name for m in models().for_goal(entry.goals[0]) if costable(m))[:300]}"
            )
        if fold(entry.name) in ctx.restrained:
            pool = ctx.candidates(excluded)
            excluded.append(
                _excl(entry.name, "model_restrains", "model_selected is in model_restrains; chose by ranking")
            )
        else:
            pool = [entry]
            selected_by = "description" if "model_named_in_description" in extra else "model_selected"
    else:
        pool = ctx.candidates(excluded)
        if ctx.model_parameters is not None:
            pool = ctx.nearest_size(pool, excluded)
            selected_by = "model_parameters"

    assessed = [assess(entry, ctx) for entry in pool]
    feasible = [a for a in assessed if a.exclusion is None]
    for a in assessed:
        if a.exclusion is not None:
            if selected_by == "model_selected":
                # The user's explicit choice wins; what it breaks is reported, not enforced.
                ctx.warnings.append(f"model_selected {a.entry.name}: {a.exclusion[1]}")
                feasible.append(a)
            else:
                excluded.append({**_excl(a.entry.name, *a.exclusion), **a.relax})
    ranking = rank(feasible, ctx.energy_weight, goal, ctx.training)
    extra["selected_by"] = selected_by
    extra["candidates"] = [r.to_json(i + 1, ranking[0]) for i, r in enumerate(ranking[:TOP_N])]
    extra["candidates_feasible"] = len(ranking)
    extra["excluded"] = sorted(excluded, key=lambda e: (e["model"], e["constraint"]))
    if ctx.warnings:
        extra["warnings"] = list(ctx.warnings)

    extra["excluded"] = [{k: v for k, v in e.items() if not k.startswith("_")} for e in extra["excluded"]]
    if ranking and not all(a.comparable for a in ranking):
        extra["quality_note"] = quality_note(ranking, goal, ctx.training)

    if not ranking:
        ml_model.model = NO_MODEL
        ml_model.model_path = NO_MODEL_PATH
        ml_model.model_properties = ""
        ml_model.target_latency = 0.0
        extra["explanation"] = explain_no_model(goal, excluded)
        extra["no_model"] = no_model_report(goal, excluded, ctx)
        ml_model.set_extra({"error_code": NO_MODEL, "error": NO_MODEL_ERROR, **extra})
        return

    best = ranking[0]
    ml_model.model = best.entry.name
    props = model_properties(best.entry, ctx, weights=hwr.weights_mode(best.entry))
    props["estimate"] = best.figures()
    if best.entry.analytic:
        # No ONNX graph: HW_RESOURCES costs it from its architecture / published figures.
        ml_model.model_path = MODEL_PATH_SCHEME + best.entry.name
        props["weights"] = "none (analytic: no graph is built)"
        extra["input_batch_note"] = "no input_batch: the model is costed analytically, without a graph"
        ml_model.model_properties = json.dumps(props, sort_keys=True)
        ml_model.target_latency = ctx.target_latency_s
        ml_model.set_extra(extra)
        return
    path = hwr.catalogue_file(best.entry)
    ml_model.model_path = str(path)
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
    precision_explicit: bool = True
    languages: tuple[str, ...] = ()
    multilingual: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    diffusion_steps: int = DEFAULT_DIFFUSION_STEPS
    num_devices: int = 1
    training: bool = False
    chat: bool = False
    model_parameters: float | None = None

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
            precision_explicit=precision_explicit,
            languages=languages,
            multilingual=multilingual,
            input_tokens=input_tokens,
            output_tokens=count_of(typed, "output_tokens"),
            diffusion_steps=count_of(typed, "diffusion_steps") or DEFAULT_DIFFUSION_STEPS,
            num_devices=count_of(typed, "num_devices") or 1,
            training=training,
            chat=bool(words_ & CHAT_WORDS),
            model_parameters=positive_number(size, "model_parameters") if size not in (None, "") else None,
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
                    _excl(
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
                excluded.append(_excl(m.name, "chat", "a base model; the description asks for chat"))
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
                continue
            if not costable(m):
                excluded.append(_excl(m.name, "costing", NOT_COSTABLE))
                continue
            missing = [code for code in self.languages if not m.covers([code])]
            if missing:
                excluded.append(
                    _excl(
                        m.name,
                        "languages",
                        f"does not cover {', '.join(missing)} (covers {_langs(m)})",
                        missing=missing,
                    )
                )
                continue
            if self.multilingual and m.languages and len(m.languages) < MULTILINGUAL_MIN_LANGUAGES:
                excluded.append(
                    _excl(
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
                    _excl(
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


def _excl(
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


DESCRIPTION_KEYS: Final = ("problem_short_description", "problem_definition", "description")
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


# ------------------------------------------------------------------------------------------------
# Assessing one candidate
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceFit:
    hw: HardwareEntry
    latency_s: float
    power_w: float
    fits_memory: bool
    method: str = "whole-model roofline from catalogue MACs (HW_RESOURCES refines per operator)"

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
    precision: str = "fp32"
    memory_mb: float = 0.0  # what must fit the devices: training state, or weights (+ KV cache)
    memory_what: str = "weights"
    per: str = "inference"  # what the energy is per: inference, or answer (generated)
    relax: dict[str, Any] = field(default_factory=dict)  # need/limit of the exclusion, for NO_MODEL
    comparable: bool = False  # its quality figure is on the ranking's reference scale

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
            "precision": self.precision,
            "memory_mb": self.memory_mb,
            "memory_counted": self.memory_what,
            "quality": {"metric": q.metric, "value": q.value, "dataset": q.dataset},
        }
        if self.entry.active_parameters:
            out["active_parameters"] = self.entry.active_parameters
        if self.device is not None:
            out.update(
                {
                    "device": self.device.hw.name,
                    "quick_latency_s": self.device.latency_s,
                    "power_w": self.device.power_w,
                    "energy_per_inference_j": self.energy_j,
                    "energy_per": self.per,
                    "method": self.device.method,
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
    precision = ctx.precision_for(entry)
    weights_mb = entry.parameters * rl.PRECISION_BYTES[precision] / 1e6
    a = Assessment(entry, weights_mb, None, ctx.batch, None, precision=precision)
    a.memory_mb, a.memory_what = memory_needed_mb(entry, ctx, precision)
    a.per = "answer" if generative(entry, ctx.goal) else "inference"
    if ctx.max_parameters is not None and entry.parameters > ctx.max_parameters:
        a.exclusion = (
            "max_parameters",
            f"{entry.parameters / 1e6:.3g} M parameters > max_parameters {ctx.max_parameters / 1e6:.3g} M",
        )
        a.relax = {"_need": float(entry.parameters), "_limit": ctx.max_parameters, "_unit": "parameters"}
        return a
    if ctx.memory_limit_mb is not None and weights_mb > ctx.memory_limit_mb:
        a.exclusion = (
            "memory",
            f"{precision} weights {weights_mb:.1f} MB > limit {ctx.memory_limit_mb:g} MB "
            f"({ctx.memory_source})",
        )
        a.relax = {"_need": weights_mb, "_limit": ctx.memory_limit_mb, "_unit": "MB"}
        return a
    quality = quality_violation(entry, ctx.quality_limits)
    if quality is not None:
        a.exclusion = quality
        return a
    if not ctx.devices:
        return a
    fits = [device_fit(entry, d, ctx, precision, a.memory_mb) for d in ctx.devices]
    in_memory = [f for f in fits if f.fits_memory]
    if not in_memory:
        largest = max(ctx.devices, key=lambda d: d.memory_gb)
        constraint = "deployment" if ctx.auto and ctx.deployment else "device memory"
        where = (
            f"any {ctx.deployment} device"
            if constraint == "deployment"
            else "the memory of any allowed device"
        )
        count = f"{ctx.num_devices} x " if ctx.num_devices > 1 else ""
        a.exclusion = (
            constraint,
            f"{a.memory_what} {a.memory_mb:.1f} MB do not fit {where} (largest: {count}{largest.name}, "
            f"{ctx.num_devices * largest.memory_gb * 1000:g} MB)",
        )
        a.relax = {
            "_need": a.memory_mb,
            "_limit": ctx.num_devices * largest.memory_gb * 1000.0,
            "_unit": "MB",
            "_device": largest.name,
            "_device_mb": largest.memory_gb * 1000.0,
        }
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
            a.relax = {"_need": fastest.latency_s * 1000, "_limit": ctx.max_latency_s * 1000, "_unit": "ms"}
            return a
    if ctx.max_power_w is not None:
        within = [f for f in meeting if f.power_w <= ctx.max_power_w]
        if not within:
            frugal = min(meeting, key=lambda f: (f.power_w, f.hw.name))
            a.exclusion = (
                "power",
                f"{frugal.power_w:.3g} W on {frugal.hw.name} > max_power_w {ctx.max_power_w:g}",
            )
            a.relax = {"_need": frugal.power_w, "_limit": ctx.max_power_w, "_unit": "W"}
            return a
        meeting = within
    a.device = min(meeting, key=lambda f: (f.energy_per_batch_j, f.latency_s, f.hw.name))
    return a


NOT_COSTABLE: Final = (
    "HW_RESOURCES cannot estimate it (no graph, transformer shape, pipeline, or published MACs and "
    "parameters in the catalogue)"
)


def costable(entry: ModelEntry) -> bool:
    """True when HW_RESOURCES can cost the entry (``hw_resources.costing_method``: a graph, a
    transformer shape or diffusion pipeline, a tree ensemble, or published MACs and parameters).
    An entry it cannot cost is excluded with constraint ``costing``, never proposed."""
    return bool(hwr.costing_method(entry))


def generative(entry: ModelEntry, goal: str) -> bool:
    """True when an answer of ``entry`` for ``goal`` is generated token by token (costed per answer)."""
    spec = entry.transformer
    return spec is not None and spec.kind != "encoder" and goal in GENERATIVE_GOALS


def memory_needed_mb(entry: ModelEntry, ctx: Context, precision: str) -> tuple[float, str]:
    """(MB that must fit the devices, what it counts). Training: mixed-precision Adam state plus
    activations (``TransformerSpec.training_memory``; 16 bytes per parameter for other models).
    Inference: the weights, plus the KV cache of one batch for a generative transformer."""
    spec = entry.transformer
    if ctx.training:
        if spec is not None:
            seq = min(spec.context, ctx.input_tokens or DEFAULT_TRAINING_SEQUENCE)
            mem = spec.training_memory(batch=ctx.batch, sequence=max(seq, 1))
            return mem.total / 1e6, "training memory (weights, gradients, Adam states, activations)"
        return (
            entry.parameters * tfm.ADAM_MIXED_BYTES_PER_PARAM / 1e6,
            "training memory (16 bytes per parameter)",
        )
    weights = entry.parameters * rl.PRECISION_BYTES[precision] / 1e6
    if spec is not None and generative(entry, ctx.goal):
        tokens = (ctx.input_tokens or entry.input_shape[-1]) + (
            ctx.output_tokens or DEFAULT_OUTPUT_TOKENS.get(ctx.goal, 128)
        )
        tokens = min(tokens, spec.context) if spec.kind == "decoder" else tokens
        kv = spec.kv_cache_bytes_per_token(precision) * tokens * ctx.batch / 1e6
        return weights + kv, f"{precision} weights + KV cache of {tokens} tokens x batch {ctx.batch}"
    return weights, f"{precision} weights"


def answer_seconds(entry: ModelEntry, hw: HardwareEntry, ctx: Context, precision: str) -> tuple[float, str]:
    """Screening latency of one batch on ``ctx.num_devices`` x ``hw`` (ideal sharding), and the method.

    Generative transformers: prefill of the input, then one decode step per generated token at the
    middle context, each step bounded by compute or by reading the weights and KV cache (the
    transformer module's figures). Pipelines (diffusion): the parts run once plus the per-step part
    x ``diffusion_steps``. Everything else: the whole-model roofline of the catalogue MACs."""
    eff = rl.efficiency_for(hw)
    peak, bandwidth = rl.device_rates(hw, precision)
    peak *= ctx.num_devices
    bandwidth *= ctx.num_devices
    spec = entry.transformer
    if spec is not None and generative(entry, ctx.goal):
        n_out = ctx.output_tokens or DEFAULT_OUTPUT_TOKENS.get(ctx.goal, 128)
        if spec.kind == "encoder-decoder" and spec.encoder_context:
            n_in = spec.encoder_context  # speech: 30 s of audio frames per window
        else:
            n_in = ctx.input_tokens or entry.input_shape[-1]
            if spec.kind == "decoder":
                n_in = min(n_in, spec.context)
        weights = spec.weights_bytes(precision, active=spec.experts > 1)
        prefill = max(
            spec.prefill_flops(n_in) * ctx.batch / (peak * eff.compute), weights / (bandwidth * eff.memory)
        )
        mid = (n_in if spec.kind == "decoder" else 1) + n_out // 2
        step = spec.decode_step(
            mid,
            batch=ctx.batch,
            precision=precision,
            encoder_tokens=n_in if spec.kind == "encoder-decoder" else 0,
        )
        decode = max(step.flops / (peak * eff.compute), step.bytes / (bandwidth * eff.memory))
        once = (
            sum(c.macs for c in entry.components if c.runs == "once") * 2.0 * ctx.batch / (peak * eff.compute)
        )
        return prefill + n_out * decode + once, (
            f"per answer: prefill {n_in} tokens + {n_out} generated tokens (memory-bound decode), "
            f"{precision}, {ctx.num_devices} x {hw.name}"
        )
    macs = float(entry.macs)
    method = "whole-model roofline from catalogue MACs (HW_RESOURCES refines per operator)"
    if any(c.runs == "per-step" for c in entry.components):
        once_macs = sum(c.macs for c in entry.components if c.runs == "once")
        step_macs = sum(c.macs for c in entry.components if c.runs == "per-step")
        macs = once_macs + step_macs * ctx.diffusion_steps
        method = f"per image: {ctx.diffusion_steps} denoising steps + text encoders and VAE once"
    quick = rl.quick_estimate(macs, entry.parameters, hw, ctx.batch, precision)
    return quick.latency_s / ctx.num_devices if ctx.num_devices > 1 else quick.latency_s, method


def device_fit(
    entry: ModelEntry,
    device: HardwareEntry,
    ctx: Context,
    precision: str | None = None,
    memory_mb: float | None = None,
) -> DeviceFit:
    precision = precision or ctx.precision_for(entry)
    latency, method = answer_seconds(entry, device, ctx, precision)
    power = pw.device_power_w(device, pw.default_utilisation(device.device_class)) * ctx.num_devices
    need = memory_mb if memory_mb is not None else memory_needed_mb(entry, ctx, precision)[0]
    return DeviceFit(device, latency, power, need <= ctx.num_devices * device.memory_gb * 1000.0, method)


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


def rank(
    feasible: Sequence[Assessment], weight: float, goal: str = "", training: bool = False
) -> list[Assessment]:
    """Score and sort (see the module docstring, step 5)."""
    if not feasible:
        return []
    reference = reference_scale(feasible, goal, training)
    for a in feasible:
        a.comparable = False
        a.quality_norm = NEUTRAL_QUALITY if measures_goal(a.entry, goal, training) else OTHER_TASK_QUALITY
    members = [
        a for a in feasible if quality_key(a.entry) == reference and measures_goal(a.entry, goal, training)
    ]
    if len(members) > 1:
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


def reference_scale(
    feasible: Sequence[Assessment], goal: str, training: bool = False
) -> tuple[str, str] | None:
    """The (metric, dataset) most feasible candidates report for this goal: the one scale their
    quality is compared on (ties: the metric name, then the dataset)."""
    counts: dict[tuple[str, str], int] = {}
    for a in feasible:
        if measures_goal(a.entry, goal, training):
            key = quality_key(a.entry)
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return None
    return min(counts, key=lambda k: (-counts[k], k))


def quality_note(ranking: Sequence[Assessment], goal: str, training: bool = False) -> str:
    """Which figure the ranking compares, and which candidates it cannot compare."""
    reference = reference_scale(ranking, goal, training)
    other_task = [a.entry.name for a in ranking if not measures_goal(a.entry, goal, training)]
    other_scale = [a.entry.name for a in ranking if not a.comparable and a.entry.name not in other_task]
    parts = []
    if reference is not None and any(a.comparable for a in ranking):
        parts.append(
            f"quality compared on {reference[0]} on {reference[1]}, the figure most candidates report"
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


# ------------------------------------------------------------------------------------------------
# Outputs
# ------------------------------------------------------------------------------------------------


def model_properties(
    entry: ModelEntry, ctx: Context | None = None, weights: str = "random"
) -> dict[str, Any]:
    """``MLModel.model_properties`` of a catalogue model (as JSON-ready dict)."""
    q = entry.quality
    out: dict[str, Any] = {
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
        "languages": list(entry.languages),
        "context": entry.context,
        "default_precision": entry.default_precision,
        "analytic": entry.analytic,
        "synthetic": True,
        "weights": "random_seeded" if weights == "random" else "zeros",
        "input_shape": list(entry.input_shape),
        "input_dtype": entry.input_dtype,
        "batch_size": ctx.batch if ctx is not None else 1,
        "precision": ctx.precision_for(entry) if ctx is not None else entry.default_precision,
        "catalogue": True,
    }
    if entry.architecture is not None:
        out["architecture"] = dict(entry.architecture)
        spec = entry.transformer
        assert spec is not None
        out["architecture_summary"] = spec.describe()
        out["active_parameters"] = spec.active_parameters()
    if entry.components:
        out["components"] = [
            {"name": c.name, "parameters": c.parameters, "runs": c.runs, "macs": c.macs}
            for c in entry.components
        ]
    if ctx is not None:
        out["num_devices"] = ctx.num_devices
        out["mode"] = "training" if ctx.training else "inference"
        if ctx.input_tokens:
            out["input_tokens"] = ctx.input_tokens
        out["output_tokens"] = ctx.output_tokens or DEFAULT_OUTPUT_TOKENS.get(ctx.goal, 0)
    return out


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


#: Largest config.json read from the allowed model directories.
CONFIG_MAX_BYTES: Final = 1_000_000


def user_architecture_entry(options: Mapping[str, Any], goal: str) -> ModelEntry | None:
    """The model the user describes by its shape: ``extra_data.architecture`` as an object (the
    catalogue's architecture fields) or as the path of a Hugging Face ``config.json`` inside the
    allowed model directories (``hw_resources.user_model_dirs``). Costed analytically; refused
    with a ValueError naming the field when it cannot describe a transformer."""
    raw = options.get("architecture")
    if raw is None or raw == "":
        return None
    name = str(options.get("model_name") or "").strip()
    if isinstance(raw, Mapping):
        try:
            spec = tfm.from_architecture(raw, where="extra_data.architecture")
        except tfm.ArchitectureError as exc:
            raise ValueError(str(exc)) from None
        arch = dict(raw)
        origin = "extra_data.architecture"
    elif isinstance(raw, str):
        path = _config_path(raw)
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
            spec = tfm.from_hf_config(config, where=f"extra_data.architecture ({path.name})")
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"extra_data.architecture: cannot read {path}: {exc}") from None
        except tfm.ArchitectureError as exc:
            raise ValueError(str(exc)) from None
        arch = architecture_dict(spec)
        origin = f"extra_data.architecture: {path}"
        name = name or str(config.get("_name_or_path") or path.parent.name or "user-architecture")
    else:
        raise ValueError(
            "extra_data.architecture: expected an object or the path of a config.json, "
            f"got {type(raw).__name__}"
        )
    params = spec.parameters()
    tokens = min(128, spec.context)
    from sustainml.catalogue.schema import Quality

    return ModelEntry(
        name=name or "user-architecture",
        family="Transformer (user architecture)",
        goals=(goal,) if goal else ("text-generation",),
        modality="text",
        input_shape=(1, tokens),
        input_dtype="int64",
        parameters=params,
        macs=int(spec.prefill_flops(tokens) / 2),
        quality=Quality(metric="none", value=0.0, dataset="not published", source=origin),
        licence="unknown (user-provided)",
        year=0,
        source=origin,
        builder="",
        architecture=arch,
        context=spec.context,
        default_precision="bf16",
        active_parameters=spec.active_parameters() if spec.experts > 1 else 0,
        estimated=("parameters", "macs"),
    )


def architecture_dict(spec: tfm.TransformerSpec) -> dict[str, Any]:
    """The catalogue ``architecture`` object of ``spec`` (non-default fields only)."""
    from dataclasses import fields

    default = tfm.TransformerSpec(layers=1, hidden=1, heads=1, ffn=1, vocab=1, context=1)
    out: dict[str, Any] = {}
    for f in fields(spec):
        value = getattr(spec, f.name)
        if f.name in ("layers", "hidden", "heads", "ffn", "vocab", "context") or value != getattr(
            default, f.name
        ):
            out[f.name] = value
    if spec.kind == "encoder-decoder":
        out.pop("layers", None)
    return out


def _config_path(raw: str) -> Path:
    """A config.json inside the allowed model directories (relative paths looked up in each)."""
    dirs = hwr.user_model_dirs()
    text = raw.strip().strip("'\"")
    given = Path(text).expanduser()
    candidates = [given] if given.is_absolute() else [d / given for d in dirs]
    for candidate in candidates:
        real = candidate.resolve()
        if candidate.is_dir():
            real = (candidate / "config.json").resolve()
        if not any(real.is_relative_to(d) for d in dirs):
            continue
        if real.is_file():
            if real.stat().st_size > CONFIG_MAX_BYTES:
                raise ValueError(f"extra_data.architecture: {real} is larger than {CONFIG_MAX_BYTES} bytes")
            return real
    raise ValueError(
        f"extra_data.architecture: no config.json {text!r} inside the allowed model directories "
        f"({', '.join(str(d) for d in dirs)}; set {hwr.MODEL_DIRS_ENV})"
    )


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
        # weights at the precision each model is released in (fp32 for the small graph-built ones)
        chosen = [
            m
            for m in chosen
            if m.parameters * rl.PRECISION_BYTES[m.default_precision] / 1e6 <= device.memory_gb * 1000.0
        ]
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
        "library_name": "analytic" if m.analytic else "onnx",
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
