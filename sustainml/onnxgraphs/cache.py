"""Build-or-load catalogue graphs by content hash, and hand out their bytes under a size limit.

The cache key is a SHA-256 over the entry fields that shape the graph (name, builder, builder
arguments, input shape and dtype), the weights mode and the *builder code version* (a hash of the
source of the graph-building modules), so editing a builder invalidates exactly what it built.

Files live in ``SUSTAINML_CACHE_DIR`` if set, else ``<SUSTAINML_DATA_DIR>/models``:
``<name>-<key>.onnx`` plus, when the parameters exceed ``INLINE_LIMIT_BYTES``, the external data
file ``<name>-<key>.onnx.data`` next to it (written first, so a visible ``.onnx`` always has its
data). Every file is written to a temporary name in the same directory and renamed into place
(atomic on POSIX), so concurrent builders and readers never see a partial file.

Weights policy: ``weights="random"`` (default) writes seeded uniform(-1/sqrt(fan_in), +..) weights
(biases zero, norm scales one), deterministic per (model, tensor name). ``weights="zeros"`` writes
the same graph with all-zero parameters in a sparse external data file (created with truncate: no
time, no disk blocks), which is what the catalogue test uses to build every entry in seconds. Both
modes run in onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import onnx

from sustainml.catalogue import ModelEntry, models
from sustainml.onnxgraphs import builders
from sustainml.onnxgraphs.graph import WeightsMode
from sustainml.onnxgraphs.layers import GraphBuilder

CACHE_ENV = "SUSTAINML_CACHE_DIR"
FORMAT_VERSION = "1"
INLINE_LIMIT_BYTES = 64 * 1024 * 1024
DEFAULT_RAW_MODEL_LIMIT = 16 * 1024 * 1024
_CODE_MODULES = (
    "graph.py",
    "layers.py",
    "vision/__init__.py",
    "vision/image.py",
    "vision/cnn.py",
    "vision/vit.py",
    "vision/detection.py",
    "vision/detr.py",
    "vision/segmentation.py",
    "vision/video.py",
    "vision/anomaly.py",
    "vision/diffusion.py",
    "vision/sam.py",
    "text.py",
    "audio.py",
    "tabular.py",
    "builders.py",
    "cache.py",
)


class ModelTooLarge(ValueError):
    """The model's bytes exceed the limit given to ``model_bytes``."""


@dataclass(frozen=True)
class BuildResult:
    entry: str
    path: Path
    data_path: Path | None  # external data file, when the parameters are stored outside
    key: str
    weights: WeightsMode
    built: bool  # False: loaded from the cache
    seconds: float

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size + (self.data_path.stat().st_size if self.data_path else 0)


def default_cache_dir() -> Path:
    """For callers without settings: the process environment's graph cache."""
    from sustainml.config import environment_settings

    return environment_settings().estimation.graph_cache_dir


@cache
def code_version() -> str:
    """Hash of the graph-building source: any edit to a builder changes every affected key."""
    h = hashlib.sha256(FORMAT_VERSION.encode())
    here = Path(__file__).parent
    for name in _CODE_MODULES:
        h.update(name.encode())
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]


def cache_key(entry: ModelEntry, weights: WeightsMode = "random") -> str:
    fields = {
        "name": entry.name,
        "builder": entry.builder,
        "builder_args": entry.builder_args,
        "input_shape": list(entry.input_shape),
        "input_dtype": entry.input_dtype,
        "weights": weights,
        "code": code_version(),
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def _resolve(entry: ModelEntry | str) -> ModelEntry:
    return entry if isinstance(entry, ModelEntry) else models().get(entry)


def graph_for(entry: ModelEntry | str) -> GraphBuilder:
    """Run the entry's builder (no file written)."""
    return builders.build_graph(_resolve(entry))


def metadata_for(entry: ModelEntry, weights: WeightsMode, key: str) -> dict[str, str]:
    return {
        "sustainml.synthetic": "true",
        "sustainml.model": entry.name,
        "sustainml.family": entry.family,
        "sustainml.builder": entry.builder,
        "sustainml.catalogue_source": entry.source,
        "sustainml.weights": "random_seeded" if weights == "random" else "zeros",
        "sustainml.seed": str(builders.SEED),
        "sustainml.cache_key": key,
        "sustainml.inference": builders.inference_definition(entry),
        "sustainml.note": "architecture-faithful graph with synthetic weights; not the published weights",
    }


def build(
    entry: ModelEntry | str,
    weights: WeightsMode = "random",
    cache_dir: Path | str | None = None,
    force: bool = False,
) -> BuildResult:
    """Path of the entry's ONNX graph, building it on a cache miss (or when ``force``)."""
    if weights not in ("random", "zeros"):
        raise ValueError(f"weights must be 'random' or 'zeros', got {weights!r}")
    e = _resolve(entry)
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    key = cache_key(e, weights)
    stem = f"{e.name}-{key}"
    path = directory / f"{stem}.onnx"
    data_path = directory / f"{stem}.onnx.data"
    start = time.perf_counter()
    if not force and path.is_file():
        return BuildResult(
            e.name,
            path,
            data_path if data_path.is_file() else None,
            key,
            weights,
            False,
            time.perf_counter() - start,
        )
    graph = builders.build_graph(e)
    # Zeros builds always go external: their data file is sparse, so they cost no disk space.
    external = weights == "zeros" or sum(w.nbytes for w in graph.weights) > INLINE_LIMIT_BYTES
    meta = metadata_for(e, weights, key)
    token = f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp_model = directory / f".{stem}.onnx{token}"
    tmp_data = directory / f".{stem}.onnx.data{token}"
    try:
        if external:
            # The data file is named by its final name inside the proto; write it first.
            model = graph.to_model(weights, external=tmp_data, metadata=meta)
            for tensor in model.graph.initializer:
                for kv in tensor.external_data:
                    if kv.key == "location":
                        kv.value = data_path.name
            os.replace(tmp_data, data_path)
        else:
            model = graph.to_model(weights, metadata=meta)
        onnx.save_model(model, str(tmp_model))
        # Validate what was written (external data resolves next to the model) before publishing it.
        onnx.checker.check_model(str(tmp_model))
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        os.replace(tmp_model, path)
    finally:
        for leftover in (tmp_model, tmp_data):
            if leftover.exists():
                leftover.unlink()
    return BuildResult(
        e.name, path, data_path if external else None, key, weights, True, time.perf_counter() - start
    )


def model_path(
    entry: ModelEntry | str, weights: WeightsMode = "random", cache_dir: Path | str | None = None
) -> Path:
    return build(entry, weights, cache_dir).path


def _external_locations(model: onnx.ModelProto) -> set[str]:
    locations: set[str] = set()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for kv in tensor.external_data:
                if kv.key == "location":
                    locations.add(kv.value)
    return locations


def model_bytes(path: Path | str, limit: int = DEFAULT_RAW_MODEL_LIMIT) -> bytes:
    """The model as one self-contained serialized ModelProto, refused above ``limit`` bytes.

    The size checked is the model file plus its external data files, before anything is read."""
    p = Path(path)
    proto = onnx.load(str(p), load_external_data=False)
    locations = _external_locations(proto)
    total = p.stat().st_size + sum((p.parent / loc).stat().st_size for loc in locations)
    if total > limit:
        raise ModelTooLarge(
            f"model {p.name} is {total} bytes (with external data), above the raw_model limit of {limit} "
            "bytes; use model_path instead"
        )
    if not locations:
        return p.read_bytes()
    full = onnx.load(str(p), load_external_data=True)
    return bytes(full.SerializeToString())


def clean_tmp(directory: Path | str | None = None, older_than_s: float = 3600.0) -> int:
    """Remove temporary files left by builds that died (older than ``older_than_s``)."""
    d = Path(directory) if directory is not None else default_cache_dir()
    removed = 0
    now = time.time()
    for f in d.glob(".*.tmp-*"):
        if now - f.stat().st_mtime > older_than_s:
            f.unlink(missing_ok=True)
            removed += 1
    return removed


__all__ = [
    "CACHE_ENV",
    "DEFAULT_RAW_MODEL_LIMIT",
    "INLINE_LIMIT_BYTES",
    "BuildResult",
    "ModelTooLarge",
    "build",
    "cache_key",
    "code_version",
    "default_cache_dir",
    "graph_for",
    "model_bytes",
    "model_path",
]
