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
     (``EstimationSettings.user_model_dirs``): costed analytically (``estimate.transformer``).
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
   (``estimate.model_files.costing_method``; constraint ``costing``; naming one in ``model_selected`` is
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
     dataset that most feasible candidates report for the goal, or, when the description places
     the problem in a domain (``rules.DOMAIN_WORDS``: "brain MRI scans" is biomedical) and
     candidates tagged with it report a figure measured there, the one most of those report (a
     general benchmark says little about tumour scans): those candidates' figures are
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
   t5-small", "2 x H100 (now 1)", "shorten the input to 4096 tokens"); a device count is given in
   the allowed device with the most memory, for training among accelerators only.

Outputs: ``model``; ``model_path`` = the ONNX file (``onnxgraphs.cache``, seeded random weights up to
``estimate.model_files.RANDOM_WEIGHTS_MAX_PARAMETERS`` parameters, zeros above), or
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

Modules: ``context`` (one task's options, limits, devices), ``candidates`` (assessing one model),
``ranking``, ``reasons`` (why, quality note, NO_MODEL report), ``outputs``, ``user_model`` (the
user's own model), ``configuration`` (configuration requests), ``rules`` (the documented numbers).
Settings: the node's ``Settings.estimation`` (graph cache, user-model directories, calibrations),
handed in by ``for_settings``; the module-level callbacks use the process environment's.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Any

from sustainml.catalogue import ModelEntry, models
from sustainml.catalogue.schema import model_fold as fold
from sustainml.config import EstimationSettings, Settings
from sustainml.estimate.model_files import catalogue_file, weights_mode
from sustainml.messages.types import (
    AppRequirements,
    CO2Footprint,
    HWConstraints,
    HWResource,
    MLModel,
    MLModelMetadata,
    NodeStatus,
)
from sustainml.workers.logic.common import StageLogic
from sustainml.workers.logic.ml_model.candidates import Assessment, assess, device_fit, memory_needed_mb
from sustainml.workers.logic.ml_model.configuration import configuration_callback, search
from sustainml.workers.logic.ml_model.context import Context, excluded_entry
from sustainml.workers.logic.ml_model.outputs import (
    add_input_batch,
    add_raw_model,
    input_arrays,
    model_properties,
)
from sustainml.workers.logic.ml_model.ranking import OTHER_TASK_QUALITY, rank
from sustainml.workers.logic.ml_model.reasons import explain_no_model, no_model_report, quality_note
from sustainml.workers.logic.ml_model.rules import (
    DESCRIPTION_KEYS,
    NOT_COSTABLE,
    RANKING_RULE,
    SIZE_BAND,
    TOP_N,
    costable,
)
from sustainml.workers.logic.ml_model.user_model import (
    fill_user_model,
    resolve_user_path,
    user_architecture_entry,
    user_model_request,
)
from sustainml.workers.logic.tables import MODEL_PATH_SCHEME, NO_MODEL, NO_MODEL_ERROR, NO_MODEL_PATH

log = logging.getLogger(__name__)


def for_settings(settings: Settings) -> StageLogic:
    """The callbacks of one deployment: candidates are costed with ``settings.estimation``;
    ``hf_search`` asks the task encoder configured by ``settings.encoder``."""
    return StageLogic(
        partial(task_callback, settings=settings.estimation),
        partial(configuration_callback, settings=settings.estimation, encoder=settings.encoder),
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
    *,
    settings: EstimationSettings | None = None,
) -> None:
    meta = ml_model_metadata.get_extra()
    options: dict[str, Any] = {**hw_constraints.get_extra(), **meta}
    options.setdefault("keywords", list(ml_model_metadata.keywords))
    goal = ml_model_metadata.ml_model_metadata[0].strip() if ml_model_metadata.ml_model_metadata else ""
    ctx = Context.build(goal, options, app_requirements, hw_constraints, settings)

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
        fill_user_model(ml_model, user, ctx, options, extra)
        return

    excluded: list[dict[str, Any]] = []
    selected_by = "ranking"
    wanted = str(options.get("model_selected") or "").strip()
    arch_entry = user_architecture_entry(options, goal, ctx.estimation)
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
                excluded_entry(
                    entry.name, "model_restrains", "model_selected is in model_restrains; chose by ranking"
                )
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
                excluded.append({**excluded_entry(a.entry.name, *a.exclusion), **a.relax})
    ranking = rank(feasible, ctx.energy_weight, goal, ctx.training, ctx.domain)
    extra["selected_by"] = selected_by
    extra["candidates"] = [r.to_json(i + 1, ranking[0]) for i, r in enumerate(ranking[:TOP_N])]
    extra["candidates_feasible"] = len(ranking)
    extra["excluded"] = sorted(excluded, key=lambda e: (e["model"], e["constraint"]))
    if ctx.warnings:
        extra["warnings"] = list(ctx.warnings)

    extra["excluded"] = [{k: v for k, v in e.items() if not k.startswith("_")} for e in extra["excluded"]]
    if ranking and not all(a.comparable for a in ranking):
        extra["quality_note"] = quality_note(ranking, goal, ctx.training, ctx.domain)

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
    props = model_properties(best.entry, ctx, weights=weights_mode(best.entry))
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
    path = catalogue_file(best.entry, ctx.estimation.graph_cache_dir)
    ml_model.model_path = str(path)
    add_input_batch(ml_model, path, ctx, options, props, extra)
    ml_model.model_properties = json.dumps(props, sort_keys=True)
    ml_model.target_latency = ctx.target_latency_s
    add_raw_model(ml_model, path, options, extra)
    ml_model.set_extra(extra)


__all__ = [
    "OTHER_TASK_QUALITY",
    "RANKING_RULE",
    "SIZE_BAND",
    "Assessment",
    "Context",
    "assess",
    "configuration_callback",
    "costable",
    "device_fit",
    "for_settings",
    "input_arrays",
    "memory_needed_mb",
    "model_properties",
    "rank",
    "resolve_user_path",
    "search",
    "task_callback",
]
