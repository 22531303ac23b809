"""ML_MODEL: the output record of a catalogue model: its properties, and the seeded input batch
and the raw model when asked for."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sustainml.catalogue import ModelEntry
from sustainml.messages import limits as msg_limits
from sustainml.messages.types import (
    MLModel,
)
from sustainml.workers.logic.ml_model.rules import DEFAULT_OUTPUT_TOKENS, INPUT_BATCH_BUDGET, RAW_MODEL_LIMIT

if TYPE_CHECKING:
    import numpy.typing as npt

    from sustainml.workers.logic.ml_model.context import Context


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
) -> tuple[list[npt.NDArray[Any]], int]:
    """(seeded input arrays, samples sent): the whole batch, or as many samples as fit the message."""
    import numpy as np  # loaded by the first task that sends an input batch, not at start

    specs = input_specs(path, batch, dims or {})
    per_sample = 0
    for _name, shape, dtype in specs:
        n = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        per_sample += n * np.dtype(dtype).itemsize
    dynamic = all(shape and shape[0] == batch for _n, shape, _d in specs)
    samples = batch if dynamic else min((shape[0] for _n, shape, _d in specs if shape), default=1)
    if per_sample * samples > INPUT_BATCH_BUDGET:
        samples = max(0, min(samples, INPUT_BATCH_BUDGET // max(per_sample, 1)))
    if samples == 0 or per_sample > INPUT_BATCH_BUDGET:
        return [], 0
    if samples != batch:
        specs = [(n, [samples, *shape[1:]], d) for n, shape, d in specs]
    from sustainml.estimate import measure as measuring  # onnx: loaded on the first input batch

    arrays = measuring.synthetic_inputs(specs, measuring.token_ranges(path))
    return [arrays[name] for name, _s, _d in specs], samples


INPUT_BATCH_OMITTED: Final = (
    "input_batch not sent: the inputs are synthetic and seeded, HW_RESOURCES regenerates them; "
    "set extra_data.include_input_batch = true to receive them"
)


def add_input_batch(
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


def add_raw_model(ml_model: MLModel, path: Path, options: Mapping[str, Any], extra: dict[str, Any]) -> None:
    if options.get("include_raw_model") is not True:
        return
    from sustainml.onnxgraphs import cache as onnx_cache

    try:
        ml_model.raw_model = onnx_cache.model_bytes(path, RAW_MODEL_LIMIT)
    except onnx_cache.ModelTooLarge as exc:
        extra["raw_model_omitted"] = str(exc)
