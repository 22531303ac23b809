"""Offline profile of a local dataset file (the ``dataset_path, <path>`` configuration request).

**Where files may be read from.** Only files inside the allowed data directories of the encoder
settings (``EncoderSettings.data_dirs``, the node's or else the process environment's):
``SUSTAINML_DATA_DIRS`` (``os.pathsep``-separated), default the current working directory's
``data/`` folder and the settings data directory (``SUSTAINML_DATA_DIR``). A relative path is tried
against each allowed directory in order. Paths are resolved with symlinks followed before the check,
so ``..`` traversal and symlinks pointing outside are refused; the file is then opened without
following a final symlink and its identity (device, inode) is compared with the checked one, so
swapping the file between check and read is refused too. Files larger than ``MAX_DATASET_BYTES``
(64 MiB) are refused before reading.

**Formats.** CSV (``.csv``; ``.tsv`` tab-separated), JSON (``.json``: an array of records, an
object holding one array of records, or JSON lines), JSON lines (``.jsonl``, ``.ndjson``) and
Parquet (``.parquet``, ``.pq``), read with pyarrow.

**Profile.** Rows, columns, and per column: arrow type, a kind (``integer``, ``float``,
``boolean``, ``datetime``, ``categorical``, ``text``, ``image-path``, ``audio-path``,
``video-path``, ``other``), missing values (nulls, NaN, and empty/``NA``/``null`` strings),
distinct values, a few sample values, min/max/mean of numbers, mean length of strings.

**Likely target column** (heuristic, documented in ``likely_target``): identifier-like, free-text,
path, date and constant columns are never targets; the others score +3 for a conventional target
name (``target``, ``label``, ``class``, ``y``, ``churn``, ``price`` ...), +2 when such a word is
part of the name (``is_fraud``, ``sale_price``), +1 for ``is_``/``has_`` prefixes, +1 for being the
last column, +0.5 for having 2 to 20 distinct values; the best positive score wins, ties to the
rightmost column. A target with few distinct values or a non-numeric type is a classification
target, a numeric one with many values a regression target.

**Modality and goal hints.** Paths to image/audio/video files make the data that modality; a
dominant free-text column makes it text; a date/time column whose values run in order down the
rows, next to numeric columns, makes it a time series; anything else is tabular. The goal hints
follow from the modality and the target kind (e.g. tabular + classification target ->
tabular-classification).
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sustainml.config import EncoderSettings, environment_settings


class _LazyModule:
    """A module imported at its first attribute access: pyarrow costs ~60 MB of resident memory
    and only tasks that name a dataset need it."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


pa = _LazyModule("pyarrow")
pc = _LazyModule("pyarrow.compute")
pa_csv = _LazyModule("pyarrow.csv")
pa_json = _LazyModule("pyarrow.json")
pq = _LazyModule("pyarrow.parquet")

DATA_DIRS_ENV: Final = "SUSTAINML_DATA_DIRS"
MAX_DATASET_BYTES: Final = 64 * 1024 * 1024

#: Columns described one by one in the reply (the reply is a string field of at most 64 Ki chars).
MAX_PROFILE_COLUMNS: Final = 100
MAX_REPLY_CHARS: Final = 60_000

FORMATS: Final[dict[str, str]] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

_MISSING_STRINGS: Final = frozenset({"", "na", "n/a", "nan", "null", "none", "-", "?"})
_IMAGE_EXT: Final = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".dcm")
_AUDIO_EXT: Final = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac")
_VIDEO_EXT: Final = (".mp4", ".avi", ".mov", ".mkv", ".webm")
_DATE_RE: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
_ID_RE: Final = re.compile(r"(?:^|_)(?:id|uuid|guid|key|index|idx)$")

#: Conventional names of target columns (compared after lower-casing and ``-``/space -> ``_``).
TARGET_NAMES: Final = frozenset(
    {
        "target", "label", "labels", "class", "y", "outcome", "result", "category", "churn",
        "churned", "default", "fraud", "survived", "diagnosis", "price", "sales", "sentiment",
        "rating", "score", "quality", "species", "status", "response", "output", "defect",
        "failure", "value", "cost", "revenue", "yield", "demand",
    }
)  # fmt: skip


class DatasetError(ValueError):
    """The path cannot be profiled; the message says why (missing, outside, unsupported ...)."""


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    dtype: str
    kind: str
    missing: int
    unique: int
    sample: list[str]
    stats: dict[str, float]
    ordered: bool = False  # datetime columns: values never decrease down the rows

    def to_json(self, rows: int) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "kind": self.kind,
            "missing": self.missing,
            "missing_fraction": round(self.missing / rows, 4) if rows else 0.0,
            "unique": self.unique,
            "sample": self.sample,
            **self.stats,
            **({"ordered": self.ordered} if self.kind == "datetime" else {}),
        }


# ------------------------------------------------------------------------------------------------
# paths
# ------------------------------------------------------------------------------------------------


def allowed_dirs(settings: EncoderSettings | None = None) -> list[Path]:
    """The allowed data directories of ``settings`` (the process environment's without), resolved
    (see the module docstring)."""
    section = settings if settings is not None else environment_settings().encoder
    return section.allowed_data_dirs()


def resolve_dataset_path(raw: str, dirs: Sequence[Path]) -> Path:
    """The real path of ``raw`` if it is an existing regular file inside one of ``dirs``."""
    text = raw.strip().strip("'\"").strip()
    if not text:
        raise DatasetError("no dataset path given")
    if "\x00" in text:
        raise DatasetError("the dataset path contains a NUL character")
    where = ", ".join(str(d) for d in dirs)
    given = Path(text).expanduser()
    candidates = [given] if given.is_absolute() else [d / given for d in dirs]
    inside_but_missing = False
    for candidate in candidates:
        try:
            real = candidate.resolve()  # follows every symlink that exists
        except (OSError, RuntimeError) as exc:  # symlink loop, permission on a component
            raise DatasetError(f"cannot resolve {text!r}: {exc}") from exc
        if not any(real.is_relative_to(d) for d in dirs):
            continue
        if not real.exists():
            inside_but_missing = True
            continue
        if not real.is_file():
            raise DatasetError(f"{text!r} is not a regular file")
        return real
    if inside_but_missing:
        raise DatasetError(f"dataset {text!r} not found (looked in: {where})")
    raise DatasetError(f"{text!r} is outside the allowed data directories ({where}); set {DATA_DIRS_ENV}")


def _read_checked(path: Path) -> bytes:
    """The bytes of ``path``, refusing a file that changed identity since it was checked."""
    try:
        before = path.stat()
        if before.st_size > MAX_DATASET_BYTES:
            raise DatasetError(
                f"{path.name} is {before.st_size / 1e6:.1f} MB; "
                f"the limit is {MAX_DATASET_BYTES // (1024 * 1024)} MiB"
            )
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except PermissionError as exc:
        raise DatasetError(f"{path.name} is not readable (permission denied)") from exc
    except OSError as exc:
        raise DatasetError(f"cannot open {path.name}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as fh:
        now = os.fstat(fh.fileno())
        if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(now.st_mode):
            raise DatasetError(f"{path.name} changed while it was being opened; refused")
        try:
            data = fh.read(MAX_DATASET_BYTES + 1)
        except OSError as exc:
            raise DatasetError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    if len(data) > MAX_DATASET_BYTES:
        raise DatasetError(f"{path.name} is larger than {MAX_DATASET_BYTES // (1024 * 1024)} MiB")
    return data


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------


def _table_from_records(records: list[Any], what: str) -> Any:
    if not records:
        raise DatasetError(f"{what} holds no records")
    if not all(isinstance(r, dict) for r in records):
        raise DatasetError(f"{what} must be a list of JSON objects (records)")
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(str(k) for k in r))
    columns: dict[str, Any] = {}
    for name in names:
        values = [r.get(name) for r in records]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            # mixed types in one column: keep them as text, as a CSV reader would
            columns[name] = pa.array(
                [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values],
                type=pa.string(),
            )
    return pa.table(columns)


def _read_json(data: bytes, name: str) -> Any:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{name} is not UTF-8 text: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return _read_json_lines(data, name)  # several documents: JSON lines
    if isinstance(doc, list):
        return _table_from_records(doc, name)
    if isinstance(doc, dict):
        for key, value in doc.items():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                return _table_from_records(value, f"{name} (key {key!r})")
        return _table_from_records([doc], name)  # a single record
    raise DatasetError(f"{name} holds a JSON {type(doc).__name__}, not records")


def _read_json_lines(data: bytes, name: str) -> Any:
    try:
        return pa_json.read_json(pa.BufferReader(data))
    except pa.ArrowException as exc:
        raise DatasetError(f"{name} is neither JSON records nor JSON lines: {exc}") from exc


def read_table(data: bytes, fmt: str, name: str) -> Any:
    """A pyarrow Table of the file's bytes in format ``fmt`` (a ``FORMATS`` value)."""
    try:
        if fmt in ("csv", "tsv"):
            parse = pa_csv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
            return pa_csv.read_csv(pa.BufferReader(data), parse_options=parse)
        if fmt == "json":
            return _read_json(data, name)
        if fmt == "jsonl":
            return _read_json_lines(data, name)
        if fmt == "parquet":
            return pq.read_table(pa.BufferReader(data))
    except pa.ArrowException as exc:
        raise DatasetError(f"cannot parse {name} as {fmt.upper()}: {exc}") from exc
    raise DatasetError(f"unsupported format {fmt!r}")


# ------------------------------------------------------------------------------------------------
# profiling
# ------------------------------------------------------------------------------------------------


def _kind(column: Any, non_missing: list[str]) -> str:
    t = column.type
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return "datetime"
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        return "other"
    if not non_missing:
        return "categorical"
    lowered = [v.casefold() for v in non_missing]
    for kind, ext in (("image-path", _IMAGE_EXT), ("audio-path", _AUDIO_EXT), ("video-path", _VIDEO_EXT)):
        if sum(v.endswith(ext) for v in lowered) >= 0.9 * len(lowered):
            return kind
    if sum(bool(_DATE_RE.match(v)) for v in non_missing) >= 0.9 * len(non_missing):
        return "datetime"
    mean_words = sum(len(v.split()) for v in non_missing) / len(non_missing)
    distinct = len(set(non_missing))
    if mean_words >= 5 and distinct > min(20, len(non_missing) // 2):
        return "text"
    return "categorical"


def profile_column(name: str, column: Any) -> ColumnProfile:
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    missing = column.null_count
    stats: dict[str, float] = {}
    t = column.type
    non_missing: list[str] = []
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        values = [v for v in column.to_pylist() if v is not None]
        non_missing = [v for v in values if v.strip().casefold() not in _MISSING_STRINGS]
        missing += len(values) - len(non_missing)
        if non_missing:
            stats["mean_length"] = round(sum(len(v) for v in non_missing) / len(non_missing), 2)
        unique = len(set(non_missing))
    else:
        if pa.types.is_floating(t):
            missing += int(pc.sum(pc.is_nan(column)).as_py() or 0)
        try:
            unique = int(pc.count_distinct(column).as_py())
        except pa.ArrowNotImplementedError:  # nested types
            unique = len({json.dumps(v, sort_keys=True, default=str) for v in column.to_pylist()})
    kind = _kind(column, non_missing)
    if kind in ("integer", "float"):
        valid = pc.drop_null(column)
        if pa.types.is_floating(t):
            valid = pc.filter(valid, pc.invert(pc.is_nan(valid)))
        if len(valid):
            mm = pc.min_max(valid).as_py()
            stats.update(
                min=float(mm["min"]), max=float(mm["max"]), mean=round(float(pc.mean(valid).as_py()), 6)
            )
    ordered = False
    if kind == "datetime":
        times = non_missing or [v for v in column.to_pylist() if v is not None]
        try:
            ordered = len(times) >= 3 and all(a <= b for a, b in itertools.pairwise(times))
        except TypeError:  # mixed date and datetime values
            ordered = False
    sample: list[str] = []
    for v in non_missing or column.to_pylist():
        s = (json.dumps(v, default=str) if isinstance(v, dict | list) else str(v))[:40]
        if v is None or s in sample:
            continue
        sample.append(s)
        if len(sample) == 3:
            break
    return ColumnProfile(name, str(t), kind, int(missing), unique, sample, stats, ordered)


def _name_words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.casefold()) if w]


def likely_target(columns: Sequence[ColumnProfile], rows: int) -> tuple[ColumnProfile, str, str] | None:
    """(column, task, reason) of the likely target column, or ``None`` (module docstring)."""
    best: tuple[float, int, ColumnProfile, list[str]] | None = None
    for i, col in enumerate(columns):
        norm = "_".join(_name_words(col.name))
        id_like = bool(_ID_RE.search(norm)) or (
            col.kind in ("integer", "categorical") and rows > 20 and col.unique == rows - col.missing
        )
        if id_like or col.kind in ("text", "datetime", "image-path", "audio-path", "video-path", "other"):
            continue
        if col.unique <= 1:
            continue
        score = 0.0
        why: list[str] = []
        words = set(_name_words(col.name))
        if norm in TARGET_NAMES:
            score += 3
            why.append("a conventional target name")
        elif words & TARGET_NAMES:
            score += 2
            why.append(f"its name contains '{sorted(words & TARGET_NAMES)[0]}'")
        if norm.startswith(("is_", "has_")):
            score += 1
            why.append("a yes/no flag name")
        if i == len(columns) - 1:
            score += 1
            why.append("the last column")
        if 2 <= col.unique <= 20:
            score += 0.5
            why.append(f"{col.unique} distinct values")
        if score > 0 and (best is None or (score, i) >= (best[0], best[1])):
            best = (score, i, col, why)
    if best is None or best[0] < 1:
        return None
    _, _, col, why = best
    few = col.unique <= 20 and col.kind != "float"
    task = "classification" if col.kind in ("boolean", "categorical") or few else "regression"
    return col, task, ", ".join(why)


def _modality(columns: Sequence[ColumnProfile], target: ColumnProfile | None) -> tuple[str, str]:
    kinds = [c.kind for c in columns]
    for kind, modality in (("image-path", "image"), ("video-path", "video"), ("audio-path", "audio")):
        if kind in kinds:
            return modality, f"column '{columns[kinds.index(kind)].name}' holds {modality} file paths"
    features = [c for c in columns if c is not target]
    texts = [c for c in features if c.kind == "text"]
    if texts and len(features) - len(texts) <= 2:
        return "text", f"free-text column '{texts[0].name}'"
    # Rows are observations over time when a date/time column runs in order down the file; a date
    # in random order (a customer's signup date) is just another attribute.
    times = [c for c in features if c.kind == "datetime" and c.ordered]
    numeric = [c for c in features if c.kind in ("integer", "float")]
    if times and numeric:
        return "time-series", f"time column '{times[0].name}' in order, with numeric measurements"
    return "tabular", "rows of typed columns"


def _goal_hints(
    modality: str, columns: Sequence[ColumnProfile], target: tuple[ColumnProfile, str, str] | None
) -> list[dict[str, str]]:
    hints: list[dict[str, str]] = []

    def add(goal: str, why: str) -> None:
        if all(h["goal"] != goal for h in hints):
            hints.append({"goal": goal, "reason": why})

    names = {"_".join(_name_words(c.name)) for c in columns}
    texts = [c for c in columns if c.kind == "text"]
    tname = target[0].name if target else ""
    if modality in ("image", "audio", "video"):
        if modality == "audio" and texts:
            add("automatic-speech-recognition", f"audio paths with text column '{texts[0].name}'")
        if modality == "image" and texts:
            add("image-to-text", f"image paths with text column '{texts[0].name}'")
        if target:
            add(f"{modality}-classification", f"{modality} paths labelled by '{tname}'")
        if modality == "image":
            add("object-detection", "image files (if the labels are boxes)")
        if modality == "audio":
            add("audio-classification", "audio files")
        if modality == "video":
            add("video-classification", "video files")
    elif modality == "text":
        if {"question", "context"} <= names or {"question", "answer"} <= names:
            add("question-answering", "question and context/answer columns")
        if names & {"summary", "abstract", "highlights", "tldr"}:
            add("summarization", "a summary column next to the text")
        if len(texts) >= 2 and target and target[1] == "regression":
            add("sentence-similarity", f"two text columns scored by '{tname}'")
        if target and target[1] == "classification":
            add("text-classification", f"text labelled by '{tname}'")
        if names & {"tokens", "tags", "ner_tags", "entities"}:
            add("token-classification", "token/tag columns")
        add("text-classification", "free text")
        add("text-generation", "free text")
    elif modality == "time-series":
        add("time-series-forecasting", "measurements over time")
        add("anomaly-detection", "measurements over time")
    else:
        if target and target[1] == "classification":
            add("tabular-classification", f"categorical target '{tname}'")
        if target and target[1] == "regression":
            add("tabular-regression", f"numeric target '{tname}'")
        add("anomaly-detection", "rows of measurements (unsupervised)")
    return hints


def _keywords(stem: str, columns: Sequence[ColumnProfile], target: ColumnProfile | None) -> list[str]:
    out: list[str] = []
    stem_words = " ".join(w for w in _name_words(stem) if w not in ("data", "dataset", "train", "test"))
    ordered = ([target] if target else []) + [c for c in columns if c is not target]
    for phrase in [stem_words, *(" ".join(_name_words(c.name)) for c in ordered)]:
        if phrase and phrase not in out and not _ID_RE.search(phrase.replace(" ", "_")):
            out.append(phrase)
        if len(out) == 10:
            break
    return out


def profile_table(table: Any, name: str, fmt: str) -> dict[str, Any]:
    """The profile reply for an already-read table (see ``profile_dataset``)."""
    rows = table.num_rows
    columns = [profile_column(str(n), table.column(i)) for i, n in enumerate(table.column_names)]
    target = likely_target(columns, rows)
    target_col = target[0] if target else None
    modality, modality_why = _modality(columns, target_col)
    hints = _goal_hints(modality, columns, target)
    keywords = _keywords(Path(name).stem, columns, target_col)
    kinds: dict[str, int] = {}
    for c in columns:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    kind_text = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    with_missing = [c for c in columns if c.missing]
    description = f"{fmt.upper()} file '{name}': {rows} rows x {len(columns)} columns ({kind_text})"
    if target:
        description += f"; likely target '{target[0].name}' ({target[1]})"
    description += f"; {len(with_missing)} column{'s' if len(with_missing) != 1 else ''} with missing values"
    profile = f"rows={rows}; columns={len(columns)}; kinds: " + ", ".join(
        f"{k}={n}" for k, n in sorted(kinds.items())
    )
    if with_missing:
        profile += "; missing: " + ", ".join(
            f"{c.name}={c.missing} ({c.missing / rows:.1%})" for c in with_missing[:20]
        )
    applications = []
    for h in hints:
        if target and h["goal"] in ("tabular-classification", "tabular-regression", "text-classification"):
            applications.append(
                f"{h['goal']}: predict '{target[0].name}' from the other {len(columns) - 1} columns"
            )
        else:
            applications.append(f"{h['goal']}: {h['reason']}")
    reply: dict[str, Any] = {
        "description": description,
        "topic": f"{modality} data about {', '.join(keywords[:3]) or name}",
        "profile": profile,
        "keywords": keywords,
        "applications": applications,
        "format": fmt,
        "rows": rows,
        "column_count": len(columns),
        "columns": [c.to_json(rows) for c in columns[:MAX_PROFILE_COLUMNS]],
        "target": ({"name": target[0].name, "task": target[1], "reason": target[2]} if target else None),
        "modality": modality,
        "modality_reason": modality_why,
        "goal_hints": hints,
    }
    if len(columns) > MAX_PROFILE_COLUMNS:
        reply["columns_truncated"] = True
    # The reply travels in a string field of at most 64 Ki characters: shed detail if needed.
    if len(json.dumps(reply)) > MAX_REPLY_CHARS:
        for col in reply["columns"]:
            col.pop("sample", None)
        while reply["columns"] and len(json.dumps(reply)) > MAX_REPLY_CHARS:
            reply["columns"] = reply["columns"][: len(reply["columns"]) // 2]
            reply["columns_truncated"] = True
    return reply


def profile_dataset(
    raw_path: str, dirs: Sequence[Path] | None = None, settings: EncoderSettings | None = None
) -> dict[str, Any]:
    """Profile the dataset at ``raw_path`` (``DatasetError`` with a clear message on any refusal),
    read from ``dirs`` (default: the allowed data directories of ``settings``)."""
    allowed = list(dirs) if dirs is not None else allowed_dirs(settings)
    path = resolve_dataset_path(raw_path, allowed)
    fmt = FORMATS.get(path.suffix.casefold())
    if fmt is None:
        raise DatasetError(
            f"unsupported file type {path.suffix or '(none)'!r} for {path.name}; "
            f"supported: {', '.join(sorted(FORMATS))}"
        )
    data = _read_checked(path)
    table = read_table(data, fmt, path.name)
    reply = profile_table(table, path.name, fmt)
    reply["path"] = str(path)
    reply["size_bytes"] = len(data)
    return reply
