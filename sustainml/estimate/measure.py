"""Measured latency of an ONNX model on this CPU with onnxruntime.

Method: one ``InferenceSession`` (CPU provider, all graph optimisations, one intra-op thread per
usable core, sequential execution), ``warmup`` untimed runs (allocations, first-touch of the
weights, thread-pool start; only one when it takes over a quarter of the budget), then timed runs
of the whole batch until ``runs`` are done or ``budget_s`` has passed (at least ``min_runs``); the
figure is the **median** (robust to a stray slow run), with min and max kept. Session creation is
not part of the latency.

Results are cached on disk by (model hash, batch size, device) in
``<SUSTAINML_DATA_DIR>/measurements/<key>.json``:

- model hash: SHA-256 of the model file and of its external data files (memoised per process by
  path, size and mtime, so a 500 MB model is hashed once);
- batch size: dim 0 of the inputs actually fed;
- device: the ``local-cpu`` fingerprint (CPU model, cores, ISA, memory, BLAS), the onnxruntime
  version and the thread count.

One measurement runs at a time per machine (a file lock next to the cache): concurrent ones
would slow each other down and both be wrong.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import statistics
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import onnx

log = logging.getLogger(__name__)

MEASUREMENTS_DIR: Final = "measurements"
CACHE_VERSION: Final = 1
DEFAULT_WARMUP: Final = 2
DEFAULT_RUNS: Final = 10
DEFAULT_MIN_RUNS: Final = 3
DEFAULT_BUDGET_S: Final = 3.0

#: Token ids are drawn below this when the model does not say its vocabulary size.
DEFAULT_TOKEN_RANGE: Final = 100

_ORT_TYPES: Final[dict[str, Any]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


class MeasurementError(RuntimeError):
    """onnxruntime could not load or run the model."""


@dataclass(frozen=True)
class Measurement:
    median_s: float
    min_s: float
    max_s: float
    runs: int
    warmup: int
    batch_size: int
    threads: int
    model_hash: str
    device: str  # local-cpu fingerprint
    onnxruntime: str
    measured_at: str
    session_s: float  # time to create the session (not part of the latency)
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------
# keys
# ------------------------------------------------------------------------------------------------

_hash_lock = threading.Lock()
_hash_memo: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path, h: Any) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)


def _external_files(path: Path) -> list[Path]:
    proto = onnx.load(str(path), load_external_data=False)
    names: set[str] = set()
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for kv in tensor.external_data:
                if kv.key == "location":
                    names.add(kv.value)
    return [path.parent / n for n in sorted(names)]


def model_hash(path: Path | str) -> str:
    """SHA-256 (hex, 16 chars) over the model file and its external data files."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        memo = _hash_memo.get(key)
    if memo is not None:
        return memo
    h = hashlib.sha256()
    _file_digest(p, h)
    for extra in _external_files(p):
        h.update(extra.name.encode())
        _file_digest(extra, h)
    digest = h.hexdigest()[:16]
    with _hash_lock:
        _hash_memo[key] = digest
    return digest


def _threads() -> int:
    from sustainml.catalogue.localcpu import usable_cores

    return usable_cores()


def device_key() -> str:
    """The device part of the cache key: local-cpu fingerprint, onnxruntime version, threads."""
    from sustainml.estimate.roofline import machine_key

    fingerprint, ort_version = machine_key()
    return f"{fingerprint}-ort{ort_version}-t{_threads()}"


def cache_key(model_digest: str, batch_size: int, device: str) -> str:
    raw = json.dumps([CACHE_VERSION, model_digest, batch_size, device])
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def default_cache_dir() -> Path:
    """For callers without settings: the process environment's data directory."""
    from sustainml.config import environment_settings

    return environment_settings().data_dir / MEASUREMENTS_DIR


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------


def token_ranges(path: Path | str) -> dict[str, int]:
    """Exclusive upper bound of the integer inputs that are token ids: the model's
    ``sustainml.input_range.<input>`` metadata, else the rows of the embedding table a ``Gather``
    reads with that input."""
    proto = onnx.load(str(path), load_external_data=False)
    out: dict[str, int] = {}
    for prop in proto.metadata_props:
        if prop.key.startswith("sustainml.input_range."):
            with contextlib.suppress(ValueError):
                out[prop.key.removeprefix("sustainml.input_range.")] = int(prop.value)
    tables = {t.name: (int(t.dims[0]) if t.dims else 0) for t in proto.graph.initializer}
    inputs = {i.name for i in proto.graph.input}
    for node in proto.graph.node:
        if node.op_type == "Gather" and len(node.input) >= 2:
            data, ids = node.input[0], node.input[1]
            if ids in inputs and ids not in out and tables.get(data, 0) > 0:
                out[ids] = tables[data]
    return out


def synthetic_inputs(
    specs: Sequence[tuple[str, Sequence[int], Any]],
    ranges: Mapping[str, int],
    seed: int = 0,
) -> dict[str, np.ndarray[Any, Any]]:
    """Seeded inputs for ``(name, shape, numpy dtype)``: floats ~ N(0, 1); integer inputs are token
    ids below their range (``DEFAULT_TOKEN_RANGE`` if unknown), or ones for masks; booleans True."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray[Any, Any]] = {}
    for name, shape, dtype in specs:
        dt = np.dtype(dtype)
        if dt.kind == "f":
            out[name] = rng.standard_normal(tuple(shape)).astype(dt)
        elif dt.kind == "b" or "mask" in name.lower():
            out[name] = np.ones(tuple(shape), dtype=dt)
        else:
            high = max(1, int(ranges.get(name, DEFAULT_TOKEN_RANGE)))
            out[name] = rng.integers(0, high, size=tuple(shape)).astype(dt)
    return out


def _fit_batch(array: np.ndarray[Any, Any], batch_size: int) -> np.ndarray[Any, Any]:
    """``array`` with dim 0 repeated or cut to ``batch_size`` (samples tiled in order)."""
    if array.ndim == 0 or array.shape[0] == batch_size:
        return array
    reps = -(-batch_size // max(array.shape[0], 1))
    tiled = np.concatenate([array] * reps, axis=0) if array.shape[0] else array
    return np.ascontiguousarray(tiled[:batch_size])


# ------------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".measure.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_process_lock = threading.Lock()  # flock is per open file: threads of one process need this too


def _read(path: Path) -> Measurement | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("version") != CACHE_VERSION:
            return None
        return replace(Measurement(**raw["measurement"]), cached=True)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("ignoring unreadable measurement %s: %s", path, exc)
        return None


def _write(path: Path, m: Measurement) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps({"version": CACHE_VERSION, "measurement": m.to_dict()}), encoding="utf-8")
    os.replace(tmp, path)


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise MeasurementError(f"onnxruntime cannot load {path.name}: {exc}") from exc


def feed_for(
    session: Any,
    path: Path,
    batch_size: int,
    arrays: Sequence[np.ndarray[Any, Any]] | None = None,
    dims: Mapping[str, int] | None = None,
) -> tuple[dict[str, np.ndarray[Any, Any]], int]:
    """(inputs of one run, runs per batch): ``arrays`` (in the session's input order) when given
    and shaped right, else synthetic inputs, dim 0 fitted to ``batch_size``. A model whose batch
    dimension is fixed at 1 is fed one sample and run ``batch_size`` times per batch."""
    inputs = session.get_inputs()
    fixed_one = all(spec.shape and isinstance(spec.shape[0], int) and spec.shape[0] == 1 for spec in inputs)
    repeat = batch_size if fixed_one else 1
    per_run = 1 if fixed_one else batch_size
    given = list(arrays or [])
    feed: dict[str, np.ndarray[Any, Any]] = {}
    missing: list[tuple[str, list[int], Any]] = []
    for i, spec in enumerate(inputs):
        dtype = _ORT_TYPES.get(spec.type)
        if dtype is None:
            raise MeasurementError(f"input {spec.name!r} has unsupported type {spec.type}")
        shape: list[int] = []
        for j, d in enumerate(spec.shape):
            if isinstance(d, int) and d > 0:
                shape.append(d)
            elif j == 0:
                shape.append(per_run)
            elif dims and isinstance(d, str) and d in dims:
                shape.append(int(dims[d]))
            else:
                raise MeasurementError(
                    f"input {spec.name!r} has a symbolic dimension {d!r}; "
                    "give its value (extra_data.input_dims)"
                )
        if i < len(given) and given[i].dtype == np.dtype(dtype) and list(given[i].shape[1:]) == shape[1:]:
            feed[spec.name] = _fit_batch(given[i], shape[0])
        else:
            missing.append((spec.name, shape, dtype))
    if missing:
        feed.update(synthetic_inputs(missing, token_ranges(path)))
    return feed, repeat


def measure_latency(
    model_path: Path | str,
    batch_size: int = 1,
    arrays: Sequence[np.ndarray[Any, Any]] | None = None,
    *,
    dims: Mapping[str, int] | None = None,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    min_runs: int = DEFAULT_MIN_RUNS,
    budget_s: float = DEFAULT_BUDGET_S,
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> Measurement:
    """Median latency in seconds of one run of the whole batch (see the module docstring)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    path = Path(model_path)
    directory = cache_dir if cache_dir is not None else default_cache_dir()
    digest = model_hash(path)
    device = device_key()
    file = directory / f"{cache_key(digest, batch_size, device)}.json"
    if use_cache and (hit := _read(file)) is not None:
        return hit
    threads = _threads()
    import onnxruntime as ort

    with _process_lock, _exclusive(directory):
        if use_cache and (hit := _read(file)) is not None:  # another process measured meanwhile
            return hit
        start = time.perf_counter()
        session = _session(path, threads)
        session_s = time.perf_counter() - start
        feed, repeat = feed_for(session, path, batch_size, arrays, dims)
        try:
            warmed = 0
            for i in range(max(warmup, 0)):
                t0 = time.perf_counter()
                session.run(None, feed)
                warmed += 1
                if i == 0 and time.perf_counter() - t0 > budget_s / 4:
                    break  # a slow model: one warm-up run is enough, keep the budget for timed runs
            times: list[float] = []
            deadline = time.perf_counter() + budget_s
            while len(times) < max(runs, 1) and (len(times) < min_runs or time.perf_counter() < deadline):
                t0 = time.perf_counter()
                for _ in range(repeat):
                    session.run(None, feed)
                times.append(time.perf_counter() - t0)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise MeasurementError(f"onnxruntime failed running {path.name}: {exc}") from exc
        result = Measurement(
            median_s=statistics.median(times),
            min_s=min(times),
            max_s=max(times),
            runs=len(times),
            warmup=warmed,
            batch_size=batch_size,
            threads=threads,
            model_hash=digest,
            device=device,
            onnxruntime=str(ort.__version__),
            measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
            session_s=session_s,
        )
        if use_cache:
            try:
                _write(file, result)
            except OSError as exc:
                log.warning("measurement of %s not cached in %s: %s", path.name, directory, exc)
    return result


__all__ = [
    "DEFAULT_BUDGET_S",
    "DEFAULT_RUNS",
    "DEFAULT_WARMUP",
    "Measurement",
    "MeasurementError",
    "cache_key",
    "device_key",
    "feed_for",
    "measure_latency",
    "model_hash",
    "synthetic_inputs",
    "token_ranges",
]
