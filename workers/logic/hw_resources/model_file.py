"""HW_RESOURCES: the model to estimate: its properties, its batch size, and the ONNX file to
analyse (the model cache, an allowed user directory, the catalogue graph or the raw bytes)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sustainml.catalogue import ModelEntry, models
from sustainml.config import EstimationSettings
from sustainml.estimate.model_files import catalogue_file, dims_of, inside, store_raw_model
from sustainml.messages.types import MLModel
from sustainml.workers.logic.common import estimation_settings
from sustainml.workers.logic.tables import MODEL_PATH_SCHEME

log = logging.getLogger(__name__)

def model_properties_of(ml_model: MLModel) -> dict[str, Any]:
    text = ml_model.model_properties.strip()
    if not text:
        return {}
    try:
        props = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"model_properties of {ml_model.model!r} is not JSON: {exc}") from exc
    if not isinstance(props, dict):
        raise ValueError(f"model_properties of {ml_model.model!r} must be a JSON object")
    return props


def batch_size_of(ml_model: MLModel, props: Mapping[str, Any]) -> int:
    value = props.get("batch_size")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if ml_model.input_batch:
        arrays = ml_model.input_arrays()
        if arrays and arrays[0].ndim >= 1 and arrays[0].shape[0] >= 1:
            return int(arrays[0].shape[0])
    return 1



def is_file(model_path: str) -> bool:
    text = model_path.strip()
    if not text or text.startswith(MODEL_PATH_SCHEME) or text == "N/A":
        return False
    return Path(text).expanduser().is_file()


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    origin: str  # "catalogue", "user file", "raw_model"
    entry: ModelEntry | None = None
    dims: dict[str, int] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "origin": self.origin, "dims": self.dims}


def load_model(
    ml_model: MLModel, props: Mapping[str, Any], settings: EstimationSettings | None = None
) -> LoadedModel:
    """The ONNX file to analyse (see the package docstring, step 1), with the graph cache and user
    model directories of ``settings``."""
    settings = estimation_settings(settings)
    dims = dims_of(props)
    entry = models().find(ml_model.model) if ml_model.model.strip() else None
    path_text = ml_model.model_path.strip()
    if path_text and not path_text.startswith(MODEL_PATH_SCHEME) and path_text != "N/A":
        path = Path(path_text).expanduser()
        if path.is_file():
            trusted = [settings.graph_cache_dir.resolve(), *settings.user_model_dirs]
            if inside(path, trusted):
                origin = "catalogue" if entry is not None and props.get("synthetic") else "user file"
                return LoadedModel(path.resolve(), origin, entry, dims)
            if entry is None:
                raise ValueError(
                    f"model_path {path_text!r} is outside the model cache and the allowed model directories "
                    f"({', '.join(str(d) for d in settings.user_model_dirs)})"
                )
            log.warning("model_path %s is outside the allowed directories; using the catalogue graph", path)
    if entry is not None:
        return LoadedModel(catalogue_file(entry, settings.graph_cache_dir), "catalogue", entry, dims)
    if ml_model.raw_model:
        raw = store_raw_model(bytes(ml_model.raw_model), settings.graph_cache_dir)
        return LoadedModel(raw, "raw_model", None, dims)
    raise ValueError(
        f"cannot estimate model {ml_model.model!r}: it is not a catalogue model and neither model_path "
        "nor raw_model holds an ONNX file"
    )
