"""The wire format: msgpack bodies for standalone messages and stage (task) messages, and the JSON
views used by the CLI and the REST API.

Record wire dict: every field by name, enums as ints, ``task_id`` as ``{"problem_id": p,
"iteration_id": i}`` or nil, bytes as msgpack bin, unknown (extra) fields kept.

Standalone body (NodeStatus, NodeControl, RequestType, ResponseType, UserInput on submission)::

    {"schema_version": 1, "type": "<ClassName>", "record": {...}}

Stage body (what flows between workers)::

    {"schema_version": 1, "type": "<ClassName of record>", "kind": "<record kind>",
     "task_id": {...}, "record": {...}, "context": {"<kind>": {...}, ...},
     "baselines": {"ml_model": {...}, "hw_resources": {...}, "carbon_footprint": {...}}}

Decoding accepts bodies of this schema version or older, ignores unknown top-level keys and raises
only :class:`DecodeError` (a :class:`MessageError`) whose ``field`` names what was wrong. Nothing is
ever unpickled or evaluated; msgpack extension types are refused.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Annotated, Any, TypeVar, get_args, get_origin, overload

from sustainml.messages import limits
from sustainml.messages.kinds import BASELINE_KINDS
from sustainml.messages.types import (
    MESSAGE_TYPES,
    RECORD_TYPES,
    SCHEMA_VERSION,
    DecodeError,
    MessageError,
    Record,
    TaskId,
    UserInput,
    check_wire_value,
    pack_extra,
    packb,
    short_repr,
    typed_repr,
    unpack_extra,
    unpackb,
)

R = TypeVar("R", bound=Record)
Buffer = bytes | bytearray | memoryview


# --------------------------------------------------------------------------------------------
# Record <-> wire dict
# --------------------------------------------------------------------------------------------
def to_wire(rec: Record) -> dict[str, Any]:
    """The record as a msgpack-ready dict (see the module docstring)."""
    wire = rec.model_dump(warnings=False)  # a bad in-place mutation is reported by encode instead
    extra = rec.__pydantic_extra__
    if extra:  # typed fields are validated; unknown ones must still survive a round trip
        for key in extra:
            check_wire_value(wire[key], f"{type(rec).__name__}.{key}")
    return wire


def _checked_wire(rec: Record) -> dict[str, Any]:
    """``to_wire`` plus a re-validation of the result: list fields mutated in place
    (``out.keywords.append(...)``) bypass assignment validation, and the producer, not the
    consumer, should be the one to hear about a bad value."""
    wire = to_wire(rec)
    type(rec).validate_mapping(wire)
    return wire


def from_wire(cls: type[R], d: Any, path: str | None = None) -> R:
    """Validate a wire dict into ``cls``; ``MessageError`` fields are prefixed by ``path`` (default:
    the class name)."""
    return cls.validate_mapping(d, path)


# --------------------------------------------------------------------------------------------
# Body helpers
# --------------------------------------------------------------------------------------------
def _pack_body(body: dict[str, Any]) -> bytes:
    try:
        data = packb(body)
    except (TypeError, ValueError, OverflowError) as exc:  # fields were validated: a defensive net
        raise MessageError("body", f"cannot be encoded as msgpack ({exc})") from exc
    if len(data) > limits.MAX_MESSAGE_BYTES:
        limit = limits.MAX_MESSAGE_BYTES
        raise MessageError("body", f"must encode to at most {limit} bytes, got {len(data)}")
    return data


def _unpack_body(data: Any) -> dict[str, Any]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("body", f"must be bytes, got {type(data).__name__}")
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    if size > limits.MAX_MESSAGE_BYTES:
        raise DecodeError("body", f"must be at most {limits.MAX_MESSAGE_BYTES} bytes, got {size}")
    try:
        body = unpackb(data)
    except Exception as exc:  # msgpack raises several unrelated types; all mean "not a message"
        raise DecodeError("body", f"is not a valid msgpack message ({type(exc).__name__}: {exc})") from exc
    if not isinstance(body, dict):
        raise DecodeError("body", f"must be a map, got {type(body).__name__} {short_repr(body)}")
    if "schema_version" not in body:
        raise DecodeError("schema_version", "is required, got nothing")
    version = body["schema_version"]
    if type(version) is not int:
        raise DecodeError("schema_version", f"must be an integer, got {typed_repr(version)}")
    if version > SCHEMA_VERSION:
        raise DecodeError(
            "schema_version",
            f"must be <= {SCHEMA_VERSION} (a newer schema this release cannot read), got {version}",
        )
    if version < 1:
        raise DecodeError("schema_version", f"must be >= 1, got {version}")
    return body


def _require_str(body: dict[str, Any], key: str) -> str:
    if key not in body:
        raise DecodeError(key, "is required, got nothing")
    value = body[key]
    if not isinstance(value, str):
        raise DecodeError(key, f"must be a string, got {type(value).__name__} {short_repr(value)}")
    return value


def _require(body: dict[str, Any], key: str) -> Any:
    if key not in body:
        raise DecodeError(key, "is required, got nothing")
    return body[key]


# --------------------------------------------------------------------------------------------
# Standalone messages
# --------------------------------------------------------------------------------------------
def encode(rec: Record) -> bytes:
    """A standalone message body for ``rec`` (any of the 13 message types)."""
    name = type(rec).__name__
    if MESSAGE_TYPES.get(name) is not type(rec):
        raise MessageError("type", f"must be one of the message types {sorted(MESSAGE_TYPES)}, got {name}")
    return _pack_body({"schema_version": SCHEMA_VERSION, "type": name, "record": _checked_wire(rec)})


@overload
def decode(data: Buffer, expected: type[R]) -> R: ...


@overload
def decode(data: Buffer, expected: None = None) -> Record: ...


def decode(data: Buffer, expected: type[Record] | None = None) -> Record:
    """Decode a standalone message body. With ``expected``, a body of another type is an error."""
    body = _unpack_body(data)
    name = _require_str(body, "type")
    cls = MESSAGE_TYPES.get(name)
    if cls is None:
        raise DecodeError("type", f"unknown message type, got {short_repr(name)}")
    if expected is not None and expected is not Record and cls is not expected:
        raise DecodeError("type", f"must be {expected.__name__}, got {short_repr(name)}")
    return cls.validate_mapping(_require(body, "record"), "record", DecodeError)


# --------------------------------------------------------------------------------------------
# Stage messages
# --------------------------------------------------------------------------------------------
@dataclass
class TaskEnvelope:
    """One stage message: the record a stage produced for ``task_id`` (of ``kind``), the records
    produced before it for the same task (``context``, by kind) and the previous iteration's
    records the orchestrator attached (``baselines``, kinds from ``BASELINE_KINDS``).

    Construction checks the invariants (``MessageError``) and stamps ``task_id`` into the record
    and context records that have none (in place, as the runtime owns the output record)."""

    kind: str
    task_id: TaskId
    record: Record
    context: dict[str, Record] = field(default_factory=dict)
    baselines: dict[str, Record] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_envelope(
            self.kind, self.task_id, self.record, self.context, self.baselines, MessageError, stamp=True
        )

    def records(self) -> dict[str, Record]:
        """Every record of the task so far: ``context`` plus ``{kind: record}``."""
        return {**self.context, self.kind: self.record}

    def next(self, kind: str, record: Record) -> TaskEnvelope:
        """The envelope a stage publishes: ``record`` (of ``kind``) becomes the envelope's record and
        the current record moves into the context. Baselines are carried over."""
        return TaskEnvelope(
            kind=kind,
            task_id=self.task_id,
            record=record,
            context=self.records(),
            baselines=dict(self.baselines),
        )


def _check_envelope(
    kind: Any,
    task_id: Any,
    record: Any,
    context: Any,
    baselines: Any,
    error: type[MessageError],
    *,
    stamp: bool,
) -> None:
    if not isinstance(kind, str) or kind not in RECORD_TYPES:
        raise error("kind", f"must be one of {list(RECORD_TYPES)}, got {short_repr(kind)}")
    if not isinstance(task_id, TaskId):
        raise error("task_id", f"must be a TaskId, got {type(task_id).__name__} {short_repr(task_id)}")
    _check_member("record", kind, record, task_id, error, stamp)
    if not isinstance(context, dict):
        raise error("context", f"must be a dict, got {type(context).__name__}")
    for ckind, rec in context.items():
        if ckind not in RECORD_TYPES:
            kinds = list(RECORD_TYPES)
            raise error(f"context.{ckind}", f"must be a record kind {kinds}, got {short_repr(ckind)}")
        if ckind == kind:
            raise error(f"context.{ckind}", "must not repeat the envelope's own record kind")
        _check_member(f"context.{ckind}", ckind, rec, task_id, error, stamp)
    if not isinstance(baselines, dict):
        raise error("baselines", f"must be a dict, got {type(baselines).__name__}")
    for bkind, rec in baselines.items():
        if bkind not in BASELINE_KINDS:
            kinds = list(BASELINE_KINDS)
            raise error(f"baselines.{bkind}", f"must be a baseline kind {kinds}, got {short_repr(bkind)}")
        _check_type(f"baselines.{bkind}", bkind, rec, error)  # baselines belong to an earlier task


def _check_type(path: str, kind: str, rec: Any, error: type[MessageError]) -> None:
    cls = RECORD_TYPES[kind]
    if type(rec) is not cls:
        raise error(path, f"must be a {cls.__name__} for kind {kind!r}, got {type(rec).__name__}")


def _check_member(
    path: str, kind: str, rec: Record, task_id: TaskId, error: type[MessageError], stamp: bool
) -> None:
    _check_type(path, kind, rec, error)
    own: TaskId | None = getattr(rec, "task_id", None)
    if own is None and stamp:
        setattr(rec, "task_id", task_id)  # noqa: B010 - every record kind has task_id
    elif own != task_id:
        raise error(f"{path}.task_id", f"must equal the envelope task_id {task_id}, got {own}")


def encode_task(env: TaskEnvelope) -> bytes:
    """The stage message body for ``env``."""
    _check_envelope(env.kind, env.task_id, env.record, env.context, env.baselines, MessageError, stamp=False)
    return _pack_body(
        {
            "schema_version": SCHEMA_VERSION,
            "type": type(env.record).__name__,
            "kind": env.kind,
            "task_id": to_wire(env.task_id),
            "record": _checked_wire(env.record),
            "context": {k: to_wire(r) for k, r in env.context.items()},
            "baselines": {k: to_wire(r) for k, r in env.baselines.items()},
        }
    )


def decode_task(data: Buffer) -> TaskEnvelope:
    """Decode a stage message body (``DecodeError`` naming the field on any problem)."""
    return decode_task_raw(data)[0]


def decode_task_raw(data: Buffer) -> tuple[TaskEnvelope, dict[str, Any]]:
    """``decode_task`` and the wire map it was decoded from, unaltered: for a reader that keeps
    the records as they came (the orchestrator stores them) without unpacking the body twice."""
    body = _unpack_body(data)
    kind = _require_str(body, "kind")
    cls = RECORD_TYPES.get(kind)
    if cls is None:
        raise DecodeError("kind", f"must be one of {list(RECORD_TYPES)}, got {short_repr(kind)}")
    name = _require_str(body, "type")
    if name != cls.__name__:
        raise DecodeError("type", f"must be {cls.__name__} for kind {kind!r}, got {short_repr(name)}")
    task_id = TaskId.validate_mapping(_require(body, "task_id"), "task_id", DecodeError)
    record = cls.validate_mapping(_require(body, "record"), "record", DecodeError)
    context = _decode_group(body, "context", RECORD_TYPES)
    baselines = _decode_group(body, "baselines", {k: RECORD_TYPES[k] for k in BASELINE_KINDS})
    # Checked first with DecodeError and no stamping: a received record must carry its task id.
    _check_envelope(kind, task_id, record, context, baselines, DecodeError, stamp=False)
    return TaskEnvelope(kind=kind, task_id=task_id, record=record, context=context, baselines=baselines), body


def _decode_group(body: dict[str, Any], key: str, types: Mapping[str, type[Record]]) -> dict[str, Record]:
    raw = body.get(key, {})  # absent = empty: a sender with nothing to attach may omit it
    if not isinstance(raw, dict):
        raise DecodeError(key, f"must be a map, got {type(raw).__name__} {short_repr(raw)}")
    out: dict[str, Record] = {}
    for kind, wire in raw.items():
        cls = types.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise DecodeError(f"{key}.{kind}", f"must be one of {list(types)}, got {short_repr(kind)}")
        out[kind] = cls.validate_mapping(wire, f"{key}.{kind}", DecodeError)
    return out


# --------------------------------------------------------------------------------------------
# JSON views
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Shape:
    """Per-class field roles, computed once per class (no per-message reflection)."""

    names: tuple[str, ...]
    enums: dict[str, type[IntEnum]]
    bytes_fields: frozenset[str]
    bytes_lists: frozenset[str]
    split_fields: frozenset[str]  # list[str] fields that also accept a space-separated string


@functools.cache
def _shape(cls: type[Record]) -> _Shape:
    enums: dict[str, type[IntEnum]] = {}
    bytes_fields: set[str] = set()
    bytes_lists: set[str] = set()
    for name, info in cls.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, IntEnum):
            enums[name] = ann
        elif ann is bytes:
            bytes_fields.add(name)
        elif get_origin(ann) is list:
            item = get_args(ann)[0]
            if get_origin(item) is Annotated:
                item = get_args(item)[0]
            if item is bytes:
                bytes_lists.add(name)
    # upstream REST/GUI send inputs/outputs as one space-separated string
    split = frozenset({"inputs", "outputs"}) if cls is UserInput else frozenset()
    return _Shape(tuple(cls.model_fields), enums, frozenset(bytes_fields), frozenset(bytes_lists), split)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _jsonable(value: Any, path: str, depth: int = 0) -> Any:
    """A msgpack-decoded value as strict JSON types: bytes become base64 strings, map keys strings,
    non-finite floats the strings "NaN"/"Infinity"/"-Infinity" (strict JSON has no such numbers)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if depth > limits.MAX_NESTING_DEPTH:
        raise MessageError(path, f"must nest at most {limits.MAX_NESTING_DEPTH} levels deep")
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes | bytearray):
        return _b64(bytes(value))
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {
            (k if isinstance(k, str) else str(k)): _jsonable(v, f"{path}.{k}", depth + 1)
            for k, v in value.items()
        }
    to_unix = getattr(value, "to_unix", None)  # msgpack.Timestamp (ext -1 is decoded natively)
    if callable(to_unix):
        return float(to_unix())
    raise MessageError(path, f"cannot be shown as JSON, got {type(value).__name__} {short_repr(value)}")


def to_json_dict(rec: Record) -> dict[str, Any]:
    """The record as JSON-ready data: ``task_id`` as an object, enums by name, ``extra_data`` as a
    decoded object, bytes fields as base64 strings, lists as arrays, unknown fields kept."""
    cls = type(rec)
    shape = _shape(cls)
    out = rec.model_dump()
    for name in shape.enums:
        out[name] = getattr(rec, name).name
    for name in shape.bytes_fields:
        if name == "extra_data":
            out[name] = _jsonable(unpack_extra(out[name]), f"{cls.__name__}.extra_data")
        else:
            out[name] = _b64(out[name])
    for name in shape.bytes_lists:
        out[name] = [_b64(b) for b in out[name]]
    if rec.__pydantic_extra__:
        for key in rec.__pydantic_extra__:
            out[key] = _jsonable(out[key], f"{cls.__name__}.{key}")
    return out


def from_json_dict(cls: type[R], d: Mapping[str, Any]) -> R:
    """Build ``cls`` from its JSON view (:func:`to_json_dict`) or, for ``UserInput``, from the
    upstream REST ``/user_input`` body: ``extra_data`` as an object (or JSON text), ``inputs`` and
    ``outputs`` as arrays or one space-separated string, enums by name or int, ``task_id`` as an
    object or ``"p.i"``. Missing or null keys take the default; unknown keys are ignored (the JSON
    view is a boundary; forward compatibility lives in the wire format)."""
    name = cls.__name__
    if not isinstance(d, Mapping):
        raise MessageError(name, f"must be a JSON object, got {type(d).__name__} {short_repr(d)}")
    shape = _shape(cls)
    data: dict[str, Any] = {}
    for key in shape.names:
        value = d.get(key)
        if value is None:
            continue
        path = f"{name}.{key}"
        if key in shape.enums:
            value = _enum_from_json(shape.enums[key], value, path)
        elif key == "extra_data":
            value = _extra_from_json(value, path)
        elif key in shape.bytes_fields:
            value = _bytes_from_json(value, path)
        elif key in shape.bytes_lists and isinstance(value, list):
            value = [_bytes_from_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
        elif key in shape.split_fields and isinstance(value, str):
            value = value.split()
        elif key == "task_id" and isinstance(value, str):
            value = TaskId.parse(value)
        data[key] = value
    return cls.validate_mapping(data)


def _enum_from_json(enum_cls: type[IntEnum], value: Any, path: str) -> Any:
    if isinstance(value, str):
        try:
            return enum_cls[value]
        except KeyError:
            names = ", ".join(m.name for m in enum_cls)
            msg = f"must be one of {names} (or its int value), got {short_repr(value)}"
            raise MessageError(path, msg) from None
    return value  # ints (and wrong types) are judged by the field's validator


def _bytes_from_json(value: Any, path: str) -> Any:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MessageError(path, f"must be base64 text, got {short_repr(value)} ({exc})") from exc
    return value  # bytes pass; anything else is judged by the field's validator


def _extra_from_json(value: Any, path: str) -> Any:
    if isinstance(value, Mapping):
        return pack_extra(value, path)
    if isinstance(value, str):  # upstream stores extra_data as JSON text
        if not value.strip():
            return b""
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            msg = f"must be an object or JSON object text, got {short_repr(value)}"
            raise MessageError(path, msg) from exc
        if not isinstance(parsed, dict):
            raise MessageError(path, f"must be an object or JSON object text, got {typed_repr(parsed)}")
        return pack_extra(parsed, path)
    return value  # bytes pass; anything else is judged by the field's validator


__all__ = [
    "Buffer",
    "TaskEnvelope",
    "decode",
    "decode_task",
    "decode_task_raw",
    "encode",
    "encode_task",
    "from_json_dict",
    "from_wire",
    "to_json_dict",
    "to_wire",
]
