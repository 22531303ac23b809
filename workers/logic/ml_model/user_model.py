"""ML_MODEL: naming the user's own model: a transformer shape (object or Hugging Face
config.json) or an ONNX file (path in the allowed directories, or raw bytes)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sustainml.catalogue import ModelEntry
from sustainml.config import EstimationSettings
from sustainml.estimate import roofline as rl
from sustainml.estimate import transformer as tfm
from sustainml.estimate.model_files import (
    MODEL_DIRS_ENV,
    USER_MODEL_MAX_BYTES,
    analysed,
    store_raw_model,
)
from sustainml.messages.types import (
    MLModel,
)
from sustainml.workers.logic.common import (
    estimation_settings,
)
from sustainml.workers.logic.ml_model.outputs import add_input_batch, add_raw_model

if TYPE_CHECKING:
    from sustainml.workers.logic.ml_model.context import Context


#: Largest config.json read from the allowed model directories.
CONFIG_MAX_BYTES: Final = 1_000_000


def user_architecture_entry(
    options: Mapping[str, Any], goal: str, settings: EstimationSettings | None = None
) -> ModelEntry | None:
    """The model the user describes by its shape: ``extra_data.architecture`` as an object (the
    catalogue's architecture fields) or as the path of a Hugging Face ``config.json`` inside the
    allowed model directories (``EstimationSettings.user_model_dirs``). Costed analytically; refused
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
        path = _config_path(raw, estimation_settings(settings).user_model_dirs)
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


def _config_path(raw: str, dirs: Sequence[Path]) -> Path:
    """A config.json inside the allowed model directories (relative paths looked up in each)."""
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
        f"({', '.join(str(d) for d in dirs)}; set {MODEL_DIRS_ENV})"
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


def resolve_user_path(raw: str, settings: EstimationSettings | None = None) -> Path:
    """The real path of the user's ONNX file, validated by ``onnxgraphs.load_user_model``: inside an
    allowed directory (``EstimationSettings.user_model_dirs``; a relative path is looked up in each), at
    most ``estimate.model_files.USER_MODEL_MAX_BYTES``, parsable, checker- and shape-inference-clean."""
    from sustainml.onnxgraphs import UserModelError, load_user_model

    dirs = estimation_settings(settings).user_model_dirs
    text = raw.strip().strip("'\"")
    if "\x00" in text:
        raise ValueError("model path contains a NUL character")
    given = Path(text).expanduser()
    candidates = [given] if given.is_absolute() else [d / given for d in dirs]
    errors: list[str] = []
    for candidate in candidates:
        try:
            loaded = load_user_model(candidate, dirs, USER_MODEL_MAX_BYTES)
        except UserModelError as exc:
            errors.append(str(exc))
            continue
        assert loaded.path is not None
        return loaded.path
    hint = f" (allowed directories: {', '.join(str(d) for d in dirs)}; set {MODEL_DIRS_ENV})"
    raise ValueError("; ".join(dict.fromkeys(errors)) + hint)


def fill_user_model(
    ml_model: MLModel, user: UserModelRequest, ctx: Context, options: Mapping[str, Any], extra: dict[str, Any]
) -> None:
    if user.path is not None:
        path = resolve_user_path(user.path, ctx.estimation)
        origin = "extra_data.model_path" if options.get("model_path") else "extra_data.model_selected"
    else:
        assert user.raw is not None
        path = store_raw_model(user.raw, ctx.estimation.graph_cache_dir)
        origin = "extra_data.raw_model"
    report = analysed(path, 1, ctx.dims)
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
                rl.quick_estimate(
                    report.macs,
                    report.parameters,
                    d,
                    ctx.batch,
                    ctx.precision,
                    rl.efficiency_for(d, ctx.estimation.data_dir),
                )
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
    add_input_batch(ml_model, path, ctx, options, props, extra)
    ml_model.model_properties = json.dumps(props, sort_keys=True)
    ml_model.target_latency = ctx.target_latency_s
    extra["selected_by"] = origin
    extra["candidates"] = []
    extra["excluded"] = []
    if warnings:
        extra["constraint_warnings"] = list(warnings)
    add_raw_model(ml_model, path, options, extra)
    ml_model.set_extra(extra)
