"""HW_RESOURCES: latency, power, energy and memory of the proposed model on the hardware.

1. **The model** (``MLModel``): its ONNX file (``model_path`` when it is a file in the model cache or
   in an allowed user-model directory; otherwise the catalogue entry ``model`` is built or loaded
   from ``onnxgraphs.cache``; otherwise ``raw_model`` bytes), analysed by ``onnxgraphs.analyze`` at
   the batch size (``model_properties.batch_size``, else dim 0 of ``input_batch``, else 1):
   per-operator MACs, FLOPs (= 2 x MACs for the linear layers; element-wise ops count their own
   FLOPs, see ``analyze``), parameters, bytes moved, peak activation memory.
2. **The hardware** (``HWConstraints.hardware_required``): one catalogue device (names and aliases
   fold case and punctuation); several devices or ``"auto"`` (with ``extra_data.allowed_hardware``,
   default every catalogue device) -> each is evaluated and the device with the **lowest energy per
   inference** that meets the constraints is chosen (ties: lower latency, then name). When none
   meets them, the lowest-energy device that fits in memory (else the lowest-energy one) is
   reported with ``constraints_met = false`` and the violations.
3. **Per device** (``sustainml.estimate``):
   - latency [s] = per-operator roofline of the whole batch (``roofline.estimate``), with the
     documented efficiency factors of the device class (``local-cpu``: fitted on this machine);
   - power [W] = idle + utilisation x (TDP - idle) (``power.device_power_w``; utilisation
     ``extra_data.utilisation`` or ``power.DEFAULT_UTILISATION`` of the class);
   - energy per inference [J] = power x latency / batch size;
   - memory_footprint_of_ml_model [MB] = (parameters + other constants + peak activations) bytes at
     the precision / 1e6; max_hw_memory_footprint [MB] = device memory GB x 1000 (decimal units);
   - constraints: footprint <= device memory, footprint <= ``max_memory_footprint`` (0 = none),
     latency <= ``max_latency_ms``, power <= ``max_power_w`` (requirements, when stated).
4. ``local-cpu`` chosen: the model also **runs** with onnxruntime (warm-up, median of up to 10 runs,
   cached by model hash, batch and device; ``estimate.measure``) on ``input_batch`` when ML_MODEL
   sent it (``extra_data.include_input_batch``), else on the same seeded synthetic arrays regenerated
   here (``measure.feed_for``: ML_MODEL's generator, seed, shapes and input order), and
   ``extra_data.measured`` reports it next to the estimate. ``hw.latency`` stays the estimate so the
   main outputs are reproducible (docs/estimation.md). ``extra_data.measure_local``:
   ``false`` skips the run, ``true`` forces it; by default a model estimated above
   ``MEASURE_MAX_ESTIMATE_S`` per batch is not run (it would hold the worker for minutes) and
   ``measured`` says so.

5. **No graph**: a served generative model (transformer ``architecture``, diffusion pipeline,
   Whisper-style speech recognition) is costed per answer by ``estimate.serving``; a catalogue
   entry with no graph, architecture or per-step pipeline by ``estimate.trees`` (tree ensembles:
   CPUs preferred, devices without a tree runtime marked) or ``roofline.published_estimate``
   (published MACs and parameters).
6. **Audio models** report ``extra_data.real_time`` (real-time factor = processing s / audio s);
   a latency requirement read from "real time" wording is judged on that factor <= 1 for them,
   and ``max_real_time_factor`` is checked when given.

``NO_MODEL`` -> the upstream sentinel (``hw_description`` = the hardware asked for, zeros,
``{"error_code": "NO_MODEL", "error": ...}``). Unknown hardware or an unusable model -> ``ValueError``
(the runtime publishes it as the task's error).

extra_data (units in ``units``): ``hardware``, ``hardware_requested``, ``device_class``, ``device``,
``selection`` (how the device was chosen), ``model``, ``batch_size``, ``precision``, ``analysis``,
``roofline``, ``power``, ``energy_per_inference_j``, ``energy_per_batch_j``, ``memory``,
``requirements``, ``constraints_met``, ``violations``, ``ranking`` (several devices: top 5 with
latency, power and energy), ``measured`` (local-cpu), ``sources``, ``formulas``.

Configuration requests: ``hardwares`` -> ``{"hardwares": "..."}`` (upstream's names in upstream order,
then the other catalogue devices sorted); ``hardware_info, <name>`` -> the catalogue entry with the
efficiency factors and utilisation used for it.

Settings: the node's ``Settings.estimation`` (graph cache, user-model directories, measurements and
calibrations in its data directory), handed in by ``for_settings``; the module-level callbacks use
the process environment's.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Final

from sustainml.catalogue import models
from sustainml.config import EstimationSettings, Settings
from sustainml.estimate import memo
from sustainml.estimate.devices import AUTO, LOCAL_CPU, candidate_devices, hardware_info, hardware_names
from sustainml.estimate.devices import resolve_device as _resolve_device
from sustainml.estimate.model_files import (
    MODEL_DIRS_ENV,
    RANDOM_WEIGHTS_MAX_PARAMETERS,
    USER_MODEL_MAX_BYTES,
    analysed,
    costing_method,
    weights_mode,
)
from sustainml.estimate.model_files import catalogue_file as _catalogue_file
from sustainml.messages.types import (
    AppRequirements,
    HWConstraints,
    HWResource,
    MLModel,
    NodeStatus,
    RequestType,
    ResponseType,
)
from sustainml.workers.logic.common import (
    StageLogic,
    bind,
    estimation_settings,
    reply,
    reply_error,
    reply_unsupported,
    requested_hardware,
)
from sustainml.workers.logic.hw_resources.evaluation import (
    FORMULAS,
    UNITS,
    DeviceEvaluation,
    Limits,
    choose,
    evaluate_device,
    evaluate_serving,
    evaluate_without_graph,
    precision_of,
    ranked,
    utilisation_override,
)
from sustainml.workers.logic.hw_resources.model_file import (
    LoadedModel,
    batch_size_of,
    is_file,
    load_model,
    model_properties_of,
)
from sustainml.workers.logic.hw_resources.outputs import (
    add_ranking,
    add_real_time,
    analysis_summary,
    checks,
    cost_without_graph,
    hardware_sources,
    identity,
    measured_on_this_cpu,
    report_chosen,
    serve,
)
from sustainml.workers.logic.hw_resources.serving_request import (
    ServingRequest,
    audio_window_seconds,
    audio_windows,
    graph_engine_of,
    requirements_of,
    serving_request_of,
)
from sustainml.workers.logic.tables import NO_MODEL, NO_MODEL_HW_ERROR

#: The scaling bench (``sustainml.bench.ours``) empties ``_analysis_memo`` under ``_analysis_lock``
#: before every task, so each task pays the full analysis and roofline cost whichever replica gets it.
_analysis_memo: Final = memo.AllMemos()
_analysis_lock: Final = threading.Lock()

#: local-cpu runs are skipped by default above this estimated latency per batch (seconds).
MEASURE_MAX_ESTIMATE_S: Final = 5.0


def for_settings(settings: Settings) -> StageLogic:
    """The callbacks of one deployment: every estimate reads ``settings.estimation``."""
    return bind(task_callback, configuration_callback, settings.estimation)


# ------------------------------------------------------------------------------------------------
# The callback
# ------------------------------------------------------------------------------------------------


def task_callback(
    ml_model: MLModel,
    app_requirements: AppRequirements,
    hw_constraints: HWConstraints,
    node_status: NodeStatus,
    hw: HWResource,
    *,
    settings: EstimationSettings | None = None,
) -> None:
    est = estimation_settings(settings)
    requested = requested_hardware(hw_constraints)
    if ml_model.model == NO_MODEL:
        hw.hw_description = requested[0]
        hw.power_consumption = 0.0
        hw.latency = 0.0
        hw.memory_footprint_of_ml_model = 0.0
        hw.max_hw_memory_footprint = 0.0
        hw.set_extra({"error_code": NO_MODEL, "error": NO_MODEL_HW_ERROR})
        return

    options = hw_constraints.get_extra()
    props = model_properties_of(ml_model)
    devices, selection = candidate_devices(requested, options.get("allowed_hardware"), est.data_dir)
    utilisation = utilisation_override(options)
    limits = Limits.of(app_requirements, hw_constraints)
    requirements = requirements_of(app_requirements)
    request = serving_request_of(ml_model, props, options, requirements)
    if request is not None:
        serve(request, ml_model, devices, selection, requested, limits, utilisation, hw)
        return
    entry = models().find(ml_model.model) if ml_model.model.strip() else None
    if entry is not None and entry.analytic and not is_file(ml_model.model_path):
        cost_without_graph(
            entry,
            ml_model,
            props,
            options,
            devices,
            selection,
            requested,
            limits,
            utilisation,
            hw,
            est.data_dir,
        )
        return

    batch = batch_size_of(ml_model, props)
    precision = precision_of(props, options)
    engine = graph_engine_of(options, requirements)
    loaded = load_model(ml_model, props, est)
    report = analysed(loaded.path, batch, loaded.dims)
    pass_audio_s = (audio_window_seconds(loaded.entry) or 0.0) if loaded.entry is not None else 0.0
    evaluations = [
        evaluate_device(report, d, precision, limits, utilisation, engine, pass_audio_s, est.data_dir)
        for d in devices
    ]
    chosen = choose(evaluations)
    assert chosen.roofline is not None
    windows, window_s, audio_s, audio_source = audio_windows(loaded.entry, options, requirements)

    report_chosen(hw, chosen)
    extra: dict[str, Any] = {
        **identity(chosen, requested, selection, ml_model),
        "model_file": loaded.describe(),
        "batch_size": batch,
        "precision": precision,
        "engine": chosen.roofline.engine,
        "analysis": analysis_summary(report),
        "roofline": chosen.roofline.to_dict(),
        "power": chosen.power_dict(),
        "energy_per_inference_j": chosen.energy_per_inference_j * windows,
        "energy_per_batch_j": chosen.energy_per_batch_j,
        "latency_per_inference_s": chosen.latency_s * windows,
        **checks(chosen, limits),
        "sources": {
            **hardware_sources(chosen),
            "efficiency": chosen.roofline.efficiency.source,
        },
        "formulas": FORMULAS,
        "units": UNITS,
    }
    if windows > 1:
        extra["audio_windows"] = {
            "windows": windows,
            "seconds_per_window": window_s,
            "audio_seconds": audio_s,
            "source": audio_source,
            "rule": "an audio model's graph covers a fixed window of audio: a longer request runs "
            "ceil(audio / window) forward passes; latency and energy per answer are multiplied by that",
        }
    add_real_time(extra, chosen, limits)
    add_ranking(extra, evaluations)
    measure = options.get("measure_local")
    if chosen.hw.name == LOCAL_CPU and measure is not False:
        if measure is True or chosen.roofline.latency_s <= MEASURE_MAX_ESTIMATE_S:
            extra["measured"] = measured_on_this_cpu(
                loaded, batch, ml_model, chosen.roofline.latency_s, est.data_dir
            )
        else:
            extra["measured"] = {
                "skipped": f"estimated {chosen.roofline.latency_s:.1f} s per batch > "
                f"{MEASURE_MAX_ESTIMATE_S:g} s; set extra_data.measure_local = true to run it anyway"
            }
    hw.set_extra(extra)


def configuration_callback(
    req: RequestType, res: ResponseType, *, settings: EstimationSettings | None = None
) -> None:
    data_dir = estimation_settings(settings).data_dir
    text = req.configuration.strip()
    keyword, _, argument = text.partition(",")
    if text == "hardwares":
        reply(req, res, {"hardwares": ", ".join(hardware_names())})
        return
    if keyword.strip() == "hardware_info":
        name = argument.strip()
        if not name:
            reply_error(req, res, "hardware_info needs a device name: 'hardware_info, <name>'")
            return
        try:
            entry = _resolve_device(name, data_dir)
        except ValueError as exc:
            reply_error(req, res, str(exc))
            return
        reply(req, res, hardware_info(entry, data_dir))
        return
    reply_unsupported(req, res)


def resolve_device(name: str, settings: EstimationSettings | None = None) -> Any:
    """The catalogue device ``name`` spells (``local-cpu``: calibrated in the settings' data dir)."""
    return _resolve_device(name, estimation_settings(settings).data_dir)


def catalogue_file(entry: Any, settings: EstimationSettings | None = None) -> Path:
    """The catalogue entry's ONNX file in the settings' graph cache (built on a miss)."""
    return _catalogue_file(entry, estimation_settings(settings).graph_cache_dir)


def user_model_dirs(settings: EstimationSettings | None = None) -> list[Path]:
    """Directories user ONNX files may be read from: ``SUSTAINML_MODEL_DIRS`` (os.pathsep-separated),
    else ``<SUSTAINML_DATA_DIR>/user-models``."""
    return estimation_settings(settings).user_model_dirs


__all__ = [
    "AUTO",
    "FORMULAS",
    "LOCAL_CPU",
    "MEASURE_MAX_ESTIMATE_S",
    "MODEL_DIRS_ENV",
    "RANDOM_WEIGHTS_MAX_PARAMETERS",
    "UNITS",
    "USER_MODEL_MAX_BYTES",
    "DeviceEvaluation",
    "Limits",
    "LoadedModel",
    "ServingRequest",
    "analysed",
    "audio_window_seconds",
    "catalogue_file",
    "choose",
    "configuration_callback",
    "cost_without_graph",
    "costing_method",
    "evaluate_device",
    "evaluate_serving",
    "evaluate_without_graph",
    "for_settings",
    "hardware_info",
    "hardware_names",
    "load_model",
    "ranked",
    "resolve_device",
    "serving_request_of",
    "task_callback",
    "user_model_dirs",
    "weights_mode",
]
