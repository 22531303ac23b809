"""ML_MODEL_METADATA (task encoder): the goal of the problem, its input modality and key phrases.

The work is done by ``sustainml.workers.logic.encoder`` (see its package docstring for the method,
the corpus and the backends). This module maps records to it and answers the node's configuration
requests.

Task output:

- ``ml_model_metadata[0]``: the goal (a Hugging Face task name); ``keywords``: up to 10 key phrases
  of the short description and definition, most important first;
- ``extra_data``: upstream pass-through (``model_selected`` and ``type`` when non-empty,
  ``model_restrains`` default ``[]``, ``problem_short_description``) plus ``goal``,
  ``goal_source``, ``modality``, ``modality_source``, ``confidence``, ``top_goals``, ``reason``,
  and when relevant ``needs_clarification`` and ``warnings``.

The text classified is the short description, the definition, the ``inputs``/``outputs`` items and
the ``dataset_metadata_description``/``_topic`` extra_data keys (filled by the dataset screen).
``extra_data.goal`` overrides inference; an unknown goal raises ``ValueError`` naming the closest
goals, which the runtime turns into a failed task with that message.

Configuration requests (upstream strings; replies are JSON text, lists sorted and joined ", "):

- ``modality`` -> ``{"modalities", "goals"}``;
- ``in_out_modalities`` -> ``{"inputs", "outputs"}``;
- ``metrics, cover_tag: <modality>[, <goal>]`` | ``metrics, modality: <input>[, <output>]`` |
  ``metrics, problem: <goal>[, <hf tag>]`` | ``metrics, all[: ...]`` -> ``{"metrics", "goals"}``;
- ``problem_from_modality, <modality>`` -> ``{"goals"}`` (goals taking that input);
- ``model_info, <name>`` (also upstream's ``mode_info``) -> the upstream keys from the shipped
  model catalogue; Hub-only facts (library, downloads, likes, lastModified) are ``null`` offline;
- ``dataset_path, <path>`` -> a profile of a local CSV/JSON/Parquet file (``dataset_profile.py``).

Failures answer ``success=False``, ``err_code=INTERNAL_ERROR`` and ``{"error": ...}``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from sustainml.catalogue import UnknownEntry, models
from sustainml.config import EncoderSettings, Settings
from sustainml.messages.types import MLModelMetadata, NodeStatus, RequestType, ResponseType, UserInput
from sustainml.workers.logic.common import StageLogic, reply, reply_error, reply_unsupported
from sustainml.workers.logic.encoder.dataset_profile import DatasetError, profile_dataset
from sustainml.workers.logic.encoder.vocabulary import (
    GOAL_INPUTS,
    GOAL_METRICS,
    GOAL_OUTPUT,
    GOALS,
    MODALITIES,
    OUTPUTS,
    goals_for_modality,
    resolve_goal,
    resolve_modality,
    resolve_output,
    unknown_goal_message,
)
from sustainml.workers.logic.tables import MODEL_PATH_SCHEME

if TYPE_CHECKING:
    from sustainml.workers.logic.encoder.inference import Encoding

log = logging.getLogger(__name__)

_DATASET_TEXT_KEYS = ("dataset_metadata_description", "dataset_metadata_topic")


def warm_up(settings: EncoderSettings | None = None) -> None:
    """At start: train and export the encoder now if no export of the corpus exists (a fresh data
    directory: training takes seconds, too long for a first task or a configuration request). The
    model itself (numpy and ~20 MB of weights) is loaded by the first task, a few tenths of a
    second from the export, so an idle replica stays small."""
    from sustainml.workers.logic.encoder.export import export_path

    if export_path(settings).is_file():
        return
    load_encoder(settings)


def load_encoder(settings: EncoderSettings | None = None) -> None:
    """Load (or train and cache) the encoder model now instead of on the first task."""
    from sustainml.workers.logic.encoder.model import get_model

    get_model(settings)


def for_settings(settings: Settings) -> StageLogic:
    """The callbacks of one deployment, configured by its ``encoder`` section: where the encoder's
    weights are cached, which backend answers, where dataset files may be read from."""
    return StageLogic(
        partial(task_callback, settings=settings.encoder),
        partial(configuration_callback, settings=settings.encoder),
        partial(warm_up, settings.encoder),
    )


def task_callback(
    user_input: UserInput,
    node_status: NodeStatus,
    ml_model_metadata: MLModelMetadata,
    *,
    settings: EncoderSettings | None = None,
) -> None:
    # The encoder (numpy and the model, ~35 MB) is loaded by the first task, not at start.
    from sustainml.workers.logic.encoder.inference import encode

    incoming = user_input.get_extra()
    described = [user_input.problem_short_description, user_input.problem_definition]
    context = [*user_input.inputs, *user_input.outputs]
    context += [v for k in _DATASET_TEXT_KEYS if isinstance(v := incoming.get(k), str)]
    text = ". ".join(p.strip() for p in [*described, *context] if p.strip())

    user_goal = incoming.get("goal")
    if user_goal is not None and not isinstance(user_goal, str):
        raise ValueError(f"extra_data.goal must be a string, got {type(user_goal).__name__}")
    encoding = encode(
        text,
        user_input.modality,
        user_goal or "",
        keyword_text=". ".join(p.strip() for p in described if p.strip()),
        settings=settings,
    )

    if not user_goal:
        encoding = _goal_of_a_named_model(encoding, incoming, described)
        encoding = _goal_of_the_chosen_metric(encoding, incoming)
    ml_model_metadata.ml_model_metadata = [encoding.goal]
    ml_model_metadata.keywords = encoding.keywords
    out: dict[str, Any] = {}
    # Upstream pass-through: model_selected and type only when non-empty, model_restrains always.
    model_selected = incoming.get("model_selected")
    if model_selected:
        out["model_selected"] = model_selected
    restrains = incoming.get("model_restrains")
    out["model_restrains"] = list(restrains) if isinstance(restrains, list | tuple) else []
    type_limiter = incoming.get("type")
    if type_limiter:
        out["type"] = type_limiter
    out["problem_short_description"] = user_input.problem_short_description
    out.update(encoding.extra())
    ml_model_metadata.set_extra(out)


def _goal_of_a_named_model(encoding: Encoding, incoming: dict[str, Any], described: list[str]) -> Encoding:
    """When the text names a catalogue model (or ``model_selected`` does) and the encoder is unsure
    ("Mixtral-8x7B on 4 H100s"), or sure of a goal on another modality than the model's ("fine-tune
    Mistral 7B ... for 12 hours" read as time-series forecasting), the model's task is the goal:
    ML_MODEL honours the named model anyway, and a goal it cannot serve would only confuse the
    answer. A confident encoder keeps a goal on the model's modality (a named LLM can summarise)."""
    wanted = incoming.get("model_selected")
    named = models().find(wanted) if isinstance(wanted, str) and wanted.strip() else None
    source = "extra_data.model_selected"
    if named is None:
        named = models().named_in_text(" ".join(described))
        source = "the description"
    if named is None or not named.goals or encoding.goal in named.goals:
        return encoding
    confident = encoding.needs_clarification is None
    if confident and named.modality == encoding.modality:
        return encoding
    why = (
        f"the text alone pointed to {encoding.goal} ({encoding.confidence:.2f}), a {encoding.modality} "
        f"task, and {named.name} takes {named.modality}"
        if confident
        else f"the text alone was unclear: {encoding.goal} at {encoding.confidence:.2f}"
    )
    goal = named.goals[0]
    modality = named.modality if encoding.modality_source != "hint" else encoding.modality
    return replace(
        encoding,
        goal=goal,
        goal_source="named model",
        modality=modality,
        modality_source=encoding.modality_source if modality == encoding.modality else "named model",
        reason=f"{named.name} is named in {source}: its task {goal} is the goal ({why}). {encoding.reason}",
        needs_clarification=None,
    )


def _goal_of_the_chosen_metric(encoding: Encoding, incoming: dict[str, Any]) -> Encoding:
    """A metric the user chose (``extra_data.metric``, the dashboard's Metric field) says which
    task they measure: mAP is reported for object detection, WER for speech recognition. When the
    encoder's goal does not report that metric, the best-scoring goal that does becomes the goal,
    and the reason says so. A metric shared by many goals (accuracy, f1) only moves the goal when
    the encoder's goal reports none of it; an unknown metric changes nothing."""
    metric = incoming.get("metric")
    if not isinstance(metric, str) or not metric.strip():
        return encoding
    wanted = metric.strip().casefold()
    reporting = {g for g, names in GOAL_METRICS.items() if wanted in names}
    if not reporting or encoding.goal in reporting:
        return encoding
    ranked = [g for g, _score in encoding.top_goals if g in reporting]
    if ranked:
        goal = ranked[0]
    elif len(reporting) == 1:
        goal = next(iter(reporting))
    else:
        return encoding
    return replace(
        encoding,
        goal=goal,
        goal_source="metric",
        reason=f"the metric {metric.strip()!r} chosen is reported for {goal}, not for {encoding.goal} "
        f"(the text alone: {encoding.goal} at {encoding.confidence:.2f}). {encoding.reason}",
        needs_clarification=None,
    )


class _Refused(Exception):
    """A configuration request that cannot be answered; the message goes to the requester."""


def configuration_callback(
    req: RequestType, res: ResponseType, *, settings: EncoderSettings | None = None
) -> None:
    request = req.configuration.strip()
    head, _, arg = request.partition(",")
    head = head.strip().casefold()
    try:
        if request == "modality":
            reply(req, res, {"modalities": ", ".join(sorted(MODALITIES)), "goals": ", ".join(sorted(GOALS))})
        elif head == "metrics":
            reply(req, res, _metrics(arg))
        elif head == "problem_from_modality":
            modality = _modality_arg(arg)
            reply(req, res, {"goals": ", ".join(sorted(goals_for_modality(modality)))})
        elif head in ("model_info", "mode_info"):
            reply(req, res, _model_info(arg.strip()))
        elif head == "dataset_path":
            reply(req, res, _dataset(arg, settings))
        elif "in_out_modalities" in request:  # upstream matches it anywhere in the request
            reply(req, res, {"inputs": ", ".join(sorted(MODALITIES)), "outputs": ", ".join(OUTPUTS)})
        else:
            reply_unsupported(req, res)
    except _Refused as exc:
        reply_error(req, res, str(exc))


def _modality_arg(raw: str) -> str:
    modality = resolve_modality(raw)
    if not modality:
        shown = raw.strip() or "(empty)"
        raise _Refused(f"unknown modality {shown!r}; known: {', '.join(sorted(MODALITIES))} (or an alias)")
    return modality


def _goal_arg(raw: str) -> str:
    goal = resolve_goal(raw)
    if not goal:
        raise _Refused(unknown_goal_message(raw, "goal"))
    return goal


def _metrics(arg: str) -> dict[str, str]:
    kind, _, rest = arg.partition(":")
    kind = kind.strip().casefold().replace(" ", "_")
    values = [v.strip() for v in rest.split(",") if v.strip()]
    if kind == "all":
        goals: tuple[str, ...] = GOALS
    elif kind == "cover_tag":
        if not values:
            raise _Refused("metrics, cover_tag: needs a modality, e.g. 'metrics, cover_tag: cv'")
        goals = goals_for_modality(_modality_arg(values[0]))
        if len(values) > 1:
            goals = (_goal_arg(values[1]),)
    elif kind == "modality":
        if not values:
            raise _Refused("metrics, modality: needs an input modality, e.g. 'metrics, modality: text, text'")
        modality = _modality_arg(values[0])
        goals = goals_for_modality(modality)
        if len(values) > 1:
            output = resolve_output(values[1])
            if not output:
                raise _Refused(f"unknown output {values[1]!r}; known: {', '.join(OUTPUTS)}")
            goals = tuple(g for g in goals if GOAL_OUTPUT[g] == output)
            if not goals:
                raise _Refused(f"no goal takes {modality} and produces {output}")
    elif kind == "problem":
        if not values:
            raise _Refused("metrics, problem: needs a goal, e.g. 'metrics, problem: summarization'")
        goals = (_goal_arg(values[0]),)
    else:
        shown = kind or "(none)"
        raise _Refused(f"unknown metrics kind {shown!r}; use cover_tag, modality, problem or all")
    metrics = sorted({m for g in goals for m in GOAL_METRICS[g]})
    return {"metrics": ", ".join(metrics), "goals": ", ".join(sorted(goals))}


def _model_info(name: str) -> dict[str, Any]:
    try:
        spec = models().get(name)  # the model catalogue, with its aliases (HF ids users type)
    except UnknownEntry as exc:
        raise _Refused(f"{exc} (known offline: the model catalogue, `sustainml catalogue models`)") from None
    problem = spec.goals[0] if spec.goals else ""
    return {
        "model_uri": MODEL_PATH_SCHEME + spec.name,
        "id": spec.name,
        "name": spec.name,
        "problem": problem,
        "coverTag": GOAL_INPUTS[problem][0] if problem in GOAL_INPUTS else "",
        # Hub facts are not known offline: null rather than invented numbers.
        "library": None,
        "downloads": None,
        "likes": None,
        "lastModified": None,
        "goals": list(spec.goals),
        "family": spec.family,
        "parameters": spec.parameters,
        "macs": spec.macs,
        "input": "x".join(str(d) for d in spec.input_shape),
        "quality": {
            "metric": spec.quality.metric,
            "value": spec.quality.value,
            "dataset": spec.quality.dataset,
        },
        "licence": spec.licence,
        "source": spec.source,
    }


def _dataset(arg: str, settings: EncoderSettings | None) -> dict[str, Any]:
    try:
        return profile_dataset(arg, settings=settings)
    except DatasetError as exc:
        raise _Refused(str(exc)) from exc
    except Exception as exc:  # a reader bug must not leave the requester without an answer
        log.exception("dataset_path %r: profiling failed", arg.strip())
        raise _Refused(f"cannot profile {arg.strip()!r}: {type(exc).__name__}: {exc}") from exc
