"""The ONNX files estimates are made from: a catalogue entry's graph (built into the graph cache on a
miss), a user's raw model stored there by content hash, their memoised analysis, and how an entry
without a graph is costed instead (``costing_method``)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sustainml.catalogue import ModelEntry
from sustainml.estimate import memo
from sustainml.estimate import serving as sv
from sustainml.estimate import trees as tr
from sustainml.onnxgraphs.analyze import AnalysisError, ModelReport, analyze

if TYPE_CHECKING:
    from sustainml.onnxgraphs.graph import WeightsMode

MODEL_DIRS_ENV: Final = "SUSTAINML_MODEL_DIRS"
#: Largest user model file (with external data) read from the allowed directories.
USER_MODEL_MAX_BYTES: Final = 2 * 1024**3
#: Catalogue graphs above this many parameters are built with zero weights (a sparse file, no
#: time to generate); the graph, shapes and runtime are the same (``onnxgraphs.cache``).
RANDOM_WEIGHTS_MAX_PARAMETERS: Final = 150_000_000


def weights_mode(entry: ModelEntry) -> WeightsMode:
    return "random" if entry.parameters <= RANDOM_WEIGHTS_MAX_PARAMETERS else "zeros"


def catalogue_file(entry: ModelEntry, cache_dir: Path | None = None) -> Path:
    """The entry's ONNX file in the graph cache ``cache_dir`` (built on a cache miss)."""
    from sustainml.onnxgraphs import cache as onnx_cache  # onnx: loaded on the first graph

    return onnx_cache.build(entry, weights_mode(entry), cache_dir=cache_dir).path


def inside(path: Path, dirs: Sequence[Path]) -> bool:
    """True when ``path`` (symlinks resolved) lies in one of ``dirs``."""
    real = path.resolve()
    return any(real.is_relative_to(d) for d in dirs)


def dims_of(props: Mapping[str, Any]) -> dict[str, int]:
    """``model_properties.input_dims``: symbolic input dimension -> size, checked."""
    raw = props.get("input_dims") or {}
    if not isinstance(raw, dict):
        raise ValueError(f"model_properties.input_dims must map dimension names to sizes, got {raw!r}")
    out: dict[str, int] = {}
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"model_properties.input_dims[{k!r}] must be a positive integer, got {v!r}")
        out[str(k)] = v
    return out


def store_raw_model(data: bytes, cache_dir: Path) -> Path:
    """Validate ``data`` (a serialized ONNX model, ``onnxgraphs.load_user_model``) and write it into
    the graph cache ``cache_dir`` by content hash."""
    from sustainml.onnxgraphs import cache as onnx_cache
    from sustainml.onnxgraphs import load_user_model

    digest = hashlib.sha256(data).hexdigest()[:16]
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"user-{digest}.onnx"
    if not path.is_file():
        load_user_model(data, [], onnx_cache.DEFAULT_RAW_MODEL_LIMIT)  # UserModelError is a ValueError
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


#: Graph analyses per (file, size, modification time, batch, dims): large enough for every graph
#: model of the catalogue at one batch size.
_analyses: Final = memo.Memo[ModelReport]("model_files.analysed", 64)


def analysed(path: Path, batch_size: int, dims: Mapping[str, int] | None = None) -> ModelReport:
    """``onnxgraphs.analyze`` of ``path`` at ``batch_size`` (memoised by file identity)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, batch_size, json.dumps(dict(dims or {}), sort_keys=True))
    return _analyses.get(key, lambda: _analyse(path, batch_size, dims))


def _analyse(path: Path, batch_size: int, dims: Mapping[str, int] | None) -> ModelReport:
    try:
        return analyze(path, batch_size=batch_size, dims=dims or None)
    except AnalysisError as exc:
        raise ValueError(f"cannot analyse {path.name}: {exc}") from exc


def costing_method(entry: ModelEntry) -> str:
    """How a catalogue entry sent by name is costed: ``graph`` (ONNX graph, or its transformer
    shape when it generates), ``serving`` (architecture or diffusion pipeline), ``trees`` (tree
    ensemble), ``published`` (published MACs and parameters); ``""`` when it cannot be (no graph,
    shape, pipeline, and no positive MACs and parameters)."""
    if entry.builder:
        return "graph"
    if entry.architecture is not None or getattr(entry, "diffusion", None) is not None:
        return "serving"
    if sv.diffusion_from_components(entry.components, entry.input_shape, entry.name) is not None:
        return "serving"
    if tr.is_tree_ensemble(entry):
        return "trees"
    return "published" if entry.macs > 0 and entry.parameters > 0 else ""


__all__ = [
    "MODEL_DIRS_ENV",
    "RANDOM_WEIGHTS_MAX_PARAMETERS",
    "USER_MODEL_MAX_BYTES",
    "analysed",
    "catalogue_file",
    "costing_method",
    "dims_of",
    "inside",
    "store_raw_model",
    "weights_mode",
]
