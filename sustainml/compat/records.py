"""Accessor-style wrappers around the pydantic records: the upstream (SWIG) calling convention.

Upstream code reads a field by calling it and writes it by calling it with the value::

    hw_constraints.max_memory_footprint()        # read
    hw_constraints.max_memory_footprint(100)     # write
    user_input.extra_data().size()               # bytes, with the SWIG vector's size()/get_buffer()

Each wrapper holds one of our records and writes through to it: a setter validates at once (the
record's own validation, ``MessageError`` naming the field) and the runtime publishes the very
record the wrapper changed. Attribute assignment (``hw.max_memory_footprint = 100``) works too.

``extra_data`` differs on purpose (our records carry msgpack, upstream UTF-8 JSON): the getter
returns the map as JSON-encoded UTF-8 (what upstream code ``json.loads``), the setter takes JSON
text (bytes or str), msgpack bytes of a map, a list of byte values, or a dict, and stores msgpack.
"""

from __future__ import annotations

import base64
import ctypes
import json
from collections.abc import Callable, Iterable, Mapping
from enum import IntEnum
from typing import Any, ClassVar, Generic, TypeVar, cast, overload

from sustainml.messages import types as t
from sustainml.messages.types import MessageError, pack_extra, typed_repr, unpack_extra

R = TypeVar("R", bound=t.Record)
G = TypeVar("G")  # what a getter returns
S = TypeVar("S")  # what a setter accepts
E = TypeVar("E", bound=IntEnum)


# --------------------------------------------------------------------------------------------
# Bytes as upstream hands them out
# --------------------------------------------------------------------------------------------
class ByteVector(bytes):
    """``bytes`` plus the SWIG ``std::vector<uint8_t>`` accessors upstream code uses.

    ``get_buffer()`` is the address of a private copy of the bytes, alive as long as this object
    (and so as long as the record wrapper that handed it out, which keeps it): upstream code reads
    it with ``(ctypes.c_ubyte * size).from_address(int(get_buffer()))``."""

    _buffer: ctypes.Array[ctypes.c_ubyte] | None

    def __new__(cls, data: bytes | bytearray | memoryview = b"") -> ByteVector:
        obj = super().__new__(cls, data)
        obj._buffer = None
        return obj

    def size(self) -> int:
        return len(self)

    def empty(self) -> bool:
        return len(self) == 0

    def get_buffer(self) -> int:
        if self._buffer is None:
            self._buffer = (ctypes.c_ubyte * len(self)).from_buffer_copy(self)
        return ctypes.addressof(self._buffer)


BytesLike = bytes | bytearray | memoryview


def _to_bytes(value: Any, field: str) -> bytes:
    """Bytes from bytes-likes or a sequence of byte values (a SWIG vector converted to a list)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, list | tuple):
        try:
            return bytes(value)
        except (TypeError, ValueError) as exc:
            raise MessageError(field, f"must be bytes or a list of byte values 0..255, got {exc}") from exc
    raise MessageError(field, f"must be bytes, got {typed_repr(value)}")


def _json_default(value: Any) -> Any:
    # JSON has no bytes: upstream code gets them as base64 text (one-way; documented in porting.md).
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def extra_to_json(raw: bytes) -> bytes:
    """Our msgpack ``extra_data`` as upstream's UTF-8 JSON (``b""`` stays ``b""``)."""
    if not raw:
        return b""
    text = json.dumps(unpack_extra(raw), ensure_ascii=False, default=_json_default)
    return text.encode("utf-8")


# msgpack type bytes that start a map: fixmap 0x80-0x8f, map16 0xde, map32 0xdf. JSON text of an
# object starts with "{" (0x7b) after optional whitespace, so the two cannot be confused.
_MSGPACK_MAP_START = frozenset([*range(0x80, 0x90), 0xDE, 0xDF])


def extra_from_any(value: Any, field: str = "extra_data") -> bytes:
    """msgpack ``extra_data`` from JSON text (bytes or str), msgpack bytes of a map, a list of
    byte values or a mapping. ``MessageError`` naming ``field`` when it is none of these."""
    if isinstance(value, Mapping):
        return pack_extra(value, field)
    data = value.encode("utf-8") if isinstance(value, str) else _to_bytes(value, field)
    if not data.strip():
        return b""
    if data[0] in _MSGPACK_MAP_START:
        try:
            decoded_map = unpack_extra(data)
        except Exception as exc:  # msgpack raises several exception types; all mean "not a map"
            raise MessageError(field, f"is not a valid msgpack map ({exc})") from exc
        return pack_extra(decoded_map, field)
    try:
        decoded = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(
            field, f"must be JSON text or msgpack bytes of a map, got {typed_repr(value)} ({exc})"
        ) from exc
    if not isinstance(decoded, dict):
        raise MessageError(field, f"must be a JSON object, got JSON {type(decoded).__name__}")
    return pack_extra(decoded, field)


# --------------------------------------------------------------------------------------------
# Task ids
# --------------------------------------------------------------------------------------------
class TaskId:
    """A task id in accessor style: ``problem_id()``, ``iteration_id()``, and setters.

    Bound to a record (what ``rec.task_id()`` returns) it reads and writes that record's
    ``task_id``; standalone (``TaskId()``) it holds its own value. Our task ids are >= 1: setting one
    part while the other is unset sets the other to 1. The runtime stamps the output's task id
    itself, whatever a callback sets."""

    __slots__ = ("_owner", "_value")

    def __init__(self, value: t.TaskId | None = None, *, owner: t.Record | None = None) -> None:
        self._owner = owner
        self._value = value

    @property
    def value(self) -> t.TaskId | None:
        """Our (frozen) TaskId, or ``None`` when unset."""
        if self._owner is not None:
            return cast("t.TaskId | None", getattr(self._owner, "task_id"))  # noqa: B009
        return self._value

    def _store(self, value: t.TaskId) -> None:
        if self._owner is not None:
            setattr(self._owner, "task_id", value)  # noqa: B010
        else:
            self._value = value

    @overload
    def problem_id(self) -> int: ...
    @overload
    def problem_id(self, value: int, /) -> None: ...
    def problem_id(self, *args: int) -> int | None:
        current = self.value
        if not args:
            return current.problem_id if current is not None else 0  # upstream's {0, 0} = unset
        self._store(t.TaskId(problem_id=args[0], iteration_id=current.iteration_id if current else 1))
        return None

    @overload
    def iteration_id(self) -> int: ...
    @overload
    def iteration_id(self, value: int, /) -> None: ...
    def iteration_id(self, *args: int) -> int | None:
        current = self.value
        if not args:
            return current.iteration_id if current is not None else 0
        self._store(t.TaskId(problem_id=current.problem_id if current else 1, iteration_id=args[0]))
        return None

    def __repr__(self) -> str:
        return f"compat.TaskId({self.problem_id()}.{self.iteration_id()})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TaskId):
            return self.value == other.value
        return NotImplemented


# --------------------------------------------------------------------------------------------
# Accessors
# --------------------------------------------------------------------------------------------
class Bound(Generic[G, S]):
    """``field()`` reads, ``field(value)`` writes: one field of one wrapper."""

    __slots__ = ("_accessor", "_owner")

    def __init__(self, accessor: Accessor[G, S], owner: RecordWrapper[Any]) -> None:
        self._accessor = accessor
        self._owner = owner

    @overload
    def __call__(self) -> G: ...
    @overload
    def __call__(self, value: S, /) -> None: ...
    def __call__(self, *args: Any) -> G | None:
        if not args:
            return self._accessor.get(self._owner)
        if len(args) == 1:
            self._accessor.set(self._owner, args[0])
            return None
        raise TypeError(f"{self._accessor.name}() takes no argument (read) or one (write), got {len(args)}")

    def __repr__(self) -> str:
        return f"<accessor {type(self._owner).__name__}.{self._accessor.name}() = {self()!r}>"


class Accessor(Generic[G, S]):
    """A field of the wrapped record in accessor style. Subclasses convert on the way in/out."""

    name: str

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> Accessor[G, S]: ...
    @overload
    def __get__(self, obj: RecordWrapper[Any], objtype: type | None = None) -> Bound[G, S]: ...
    def __get__(
        self, obj: RecordWrapper[Any] | None, objtype: type | None = None
    ) -> Accessor[G, S] | Bound[G, S]:
        return self if obj is None else Bound(self, obj)

    def __set__(self, obj: RecordWrapper[Any], value: S) -> None:
        self.set(obj, value)

    def path(self, obj: RecordWrapper[Any]) -> str:
        return f"{type(obj.record).__name__}.{self.name}"

    def get(self, obj: RecordWrapper[Any]) -> G:
        return cast(G, getattr(obj.record, self.name))

    def set(self, obj: RecordWrapper[Any], value: S) -> None:
        setattr(obj.record, self.name, self.convert(obj, value))

    def convert(self, obj: RecordWrapper[Any], value: S) -> Any:
        return value


class StrField(Accessor[str, str | bytes]):
    def convert(self, obj: RecordWrapper[Any], value: str | bytes) -> Any:
        if isinstance(value, bytes):  # SWIG accepts bytes for std::string
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MessageError(self.path(obj), f"must be UTF-8 text, got {exc}") from exc
        return value


class IntField(Accessor[int, int]):
    pass  # the record rejects bools, floats and out-of-range values, naming the field


class FloatField(Accessor[float, float]):
    def convert(self, obj: RecordWrapper[Any], value: float) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value


class BoolField(Accessor[bool, bool | int]):
    def convert(self, obj: RecordWrapper[Any], value: bool | int) -> Any:
        if type(value) is int and value in (0, 1):  # C++ bool from 0/1, as SWIG converts it
            return bool(value)
        return value


class EnumField(Accessor[E, E | int]):
    """An enum: our IntEnum member on read; a member or its int value on write (our wire order,
    see porting.md: not always upstream's)."""


class StrListField(Accessor[list[str], Iterable[str]]):
    """A string list. The getter returns the record's own list (changes to it are kept, as
    with the SWIG vector reference); the setter takes any iterable of strings."""

    def convert(self, obj: RecordWrapper[Any], value: Iterable[str]) -> Any:
        if isinstance(value, str | bytes):
            raise MessageError(self.path(obj), f"must be a list of strings, got {typed_repr(value)}")
        return list(value)


class BytesField(Accessor[ByteVector, BytesLike | Iterable[int]]):
    def get(self, obj: RecordWrapper[Any]) -> ByteVector:
        return obj._byte_vector(self.name, getattr(obj.record, self.name), bytes)

    def convert(self, obj: RecordWrapper[Any], value: BytesLike | Iterable[int]) -> Any:
        return _to_bytes(value, self.path(obj))


class BytesListField(Accessor[list[bytes], Iterable[BytesLike]]):
    """``MLModel.input_batch``: serialized ``.npy`` arrays (upstream: a list of strings)."""

    def convert(self, obj: RecordWrapper[Any], value: Iterable[BytesLike]) -> Any:
        return [_to_bytes(v, f"{self.path(obj)}[{i}]") for i, v in enumerate(value)]


class ExtraDataField(Accessor[ByteVector, Any]):
    """``extra_data``: JSON out, JSON or msgpack (or a dict) in; msgpack in the record."""

    def get(self, obj: RecordWrapper[Any]) -> ByteVector:
        return obj._byte_vector(self.name, getattr(obj.record, self.name), extra_to_json)

    def convert(self, obj: RecordWrapper[Any], value: Any) -> Any:
        return extra_from_any(value, self.path(obj))


class TaskIdField(Accessor[TaskId, TaskId | t.TaskId | None]):
    """``task_id``: a :class:`TaskId` view bound to the record (reads and writes go to it)."""

    def get(self, obj: RecordWrapper[Any]) -> TaskId:
        return TaskId(owner=obj.record)

    def convert(self, obj: RecordWrapper[Any], value: TaskId | t.TaskId | None) -> Any:
        if isinstance(value, TaskId):
            return value.value
        return value


# --------------------------------------------------------------------------------------------
# Wrappers
# --------------------------------------------------------------------------------------------
class RecordWrapper(Generic[R]):
    """Base of the accessor-style wrappers. ``RecordWrapper()`` wraps a fresh record;
    ``RecordWrapper(record)`` wraps (and writes through to) an existing one."""

    RECORD: ClassVar[type[t.Record]]
    __slots__ = ("_cache", "_keepalive", "_record")

    def __init__(self, record: R | None = None) -> None:
        if record is None:
            record = cast(R, self.RECORD())
        elif not isinstance(record, self.RECORD):
            raise TypeError(f"{type(self).__name__} wraps {self.RECORD.__name__}, got {typed_repr(record)}")
        self._record: R = record
        self._cache: dict[str, tuple[bytes, ByteVector]] = {}
        self._keepalive: list[ByteVector] = []

    @property
    def record(self) -> R:
        """The wrapped record (ours: attribute access, ``get_extra()`` ...)."""
        return self._record

    def _byte_vector(self, name: str, raw: bytes, render: Callable[[bytes], bytes]) -> ByteVector:
        # One ByteVector per distinct value, kept for the wrapper's lifetime: an address handed
        # out by get_buffer() stays valid even after the field changes.
        cached = self._cache.get(name)
        if cached is not None and cached[0] == raw:
            return cached[1]
        vector = ByteVector(render(raw))
        self._cache[name] = (raw, vector)
        self._keepalive.append(vector)
        return vector

    def __repr__(self) -> str:
        return f"compat.{type(self).__name__}({self._record!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RecordWrapper):
            return bool(self._record == other._record)
        return NotImplemented


class GeoLocation(RecordWrapper[t.GeoLocation]):
    RECORD = t.GeoLocation
    __slots__ = ()
    continent = StrField()
    region = StrField()


class UserInput(RecordWrapper[t.UserInput]):
    RECORD = t.UserInput
    __slots__ = ()
    modality = StrField()
    problem_short_description = StrField()
    problem_definition = StrField()
    inputs = StrListField()
    outputs = StrListField()
    minimum_samples = IntField()
    maximum_samples = IntField()
    optimize_carbon_footprint_manual = BoolField()
    previous_iteration = IntField()
    optimize_carbon_footprint_auto = BoolField()
    desired_carbon_footprint = FloatField()
    geo_location_continent = StrField()
    geo_location_region = StrField()
    extra_data = ExtraDataField()
    task_id = TaskIdField()


class MLModelMetadata(RecordWrapper[t.MLModelMetadata]):
    RECORD = t.MLModelMetadata
    __slots__ = ()
    keywords = StrListField()
    ml_model_metadata = StrListField()
    extra_data = ExtraDataField()
    task_id = TaskIdField()


class AppRequirements(RecordWrapper[t.AppRequirements]):
    RECORD = t.AppRequirements
    __slots__ = ()
    app_requirements = StrListField()
    extra_data = ExtraDataField()
    task_id = TaskIdField()


class HWConstraints(RecordWrapper[t.HWConstraints]):
    RECORD = t.HWConstraints
    __slots__ = ()
    max_memory_footprint = IntField()
    hardware_required = StrListField()
    extra_data = ExtraDataField()
    task_id = TaskIdField()


class MLModel(RecordWrapper[t.MLModel]):
    RECORD = t.MLModel
    __slots__ = ()
    model_path = StrField()
    model = StrField()
    raw_model = BytesField()
    model_properties_path = StrField()
    model_properties = StrField()
    input_batch = BytesListField()
    target_latency = FloatField()
    extra_data = ExtraDataField()
    task_id = TaskIdField()


class HWResource(RecordWrapper[t.HWResource]):
    RECORD = t.HWResource
    __slots__ = ()
    hw_description = StrField()
    power_consumption = FloatField()
    latency = FloatField()
    memory_footprint_of_ml_model = FloatField()
    max_hw_memory_footprint = FloatField()
    extra_data = ExtraDataField()
    task_id = TaskIdField()


class CO2Footprint(RecordWrapper[t.CO2Footprint]):
    RECORD = t.CO2Footprint
    __slots__ = ()
    carbon_footprint = FloatField()
    energy_consumption = FloatField()
    carbon_intensity = FloatField()
    extra_data = ExtraDataField()
    task_id = TaskIdField()


class NodeStatus(RecordWrapper[t.NodeStatus]):
    RECORD = t.NodeStatus
    __slots__ = ()
    node_status: EnumField[t.Status] = EnumField()
    task_status: EnumField[t.TaskStatus] = EnumField()
    error_code: EnumField[t.ErrorCode] = EnumField()
    task_id = TaskIdField()
    error_description = StrField()
    node_name = StrField()
    # sustainml extensions (heartbeat bookkeeping; callbacks rarely need them)
    replica_id = StrField()
    node_id = IntField()
    event = StrField()
    heartbeat_interval = FloatField()
    in_flight = IntField()
    processed = IntField()
    timestamp = FloatField()


class NodeControl(RecordWrapper[t.NodeControl]):
    RECORD = t.NodeControl
    __slots__ = ()
    cmd_node: EnumField[t.CmdNode] = EnumField()
    cmd_task: EnumField[t.CmdTask] = EnumField()
    target_node = StrField()
    task_id = TaskIdField()
    source_node = StrField()


class RequestType(RecordWrapper[t.RequestType]):
    RECORD = t.RequestType
    __slots__ = ()
    node_id = IntField()
    transaction_id = IntField()
    configuration = StrField()


class ResponseType(RecordWrapper[t.ResponseType]):
    RECORD = t.ResponseType
    __slots__ = ()
    node_id = IntField()
    transaction_id = IntField()
    success = BoolField()
    err_code: EnumField[t.ErrorCode] = EnumField()
    configuration = StrField()


WRAPPERS: dict[type[t.Record], type[RecordWrapper[Any]]] = {
    cls.RECORD: cls
    for cls in (
        GeoLocation,
        UserInput,
        MLModelMetadata,
        AppRequirements,
        HWConstraints,
        MLModel,
        HWResource,
        CO2Footprint,
        NodeStatus,
        NodeControl,
        RequestType,
        ResponseType,
    )
}
"""Our record class -> its accessor-style wrapper (every message type but TaskId, see :class:`TaskId`)."""


@overload
def wrap(record: None) -> None: ...
@overload
def wrap(record: t.TaskId) -> TaskId: ...
@overload
def wrap(record: t.GeoLocation) -> GeoLocation: ...
@overload
def wrap(record: t.UserInput) -> UserInput: ...
@overload
def wrap(record: t.MLModelMetadata) -> MLModelMetadata: ...
@overload
def wrap(record: t.AppRequirements) -> AppRequirements: ...
@overload
def wrap(record: t.HWConstraints) -> HWConstraints: ...
@overload
def wrap(record: t.MLModel) -> MLModel: ...
@overload
def wrap(record: t.HWResource) -> HWResource: ...
@overload
def wrap(record: t.CO2Footprint) -> CO2Footprint: ...
@overload
def wrap(record: t.NodeStatus) -> NodeStatus: ...
@overload
def wrap(record: t.NodeControl) -> NodeControl: ...
@overload
def wrap(record: t.RequestType) -> RequestType: ...
@overload
def wrap(record: t.ResponseType) -> ResponseType: ...
@overload
def wrap(record: t.Record) -> RecordWrapper[Any] | TaskId: ...
def wrap(record: t.Record | None) -> RecordWrapper[Any] | TaskId | None:
    """The accessor-style view of ``record`` (writes go to ``record``); ``None`` stays ``None``."""
    if record is None:
        return None
    if isinstance(record, t.TaskId):
        return TaskId(record)
    cls = WRAPPERS.get(type(record))
    if cls is None:
        raise TypeError(f"no accessor-style wrapper for {typed_repr(record)}")
    return cls(record)


def unwrap(obj: RecordWrapper[Any] | TaskId | t.Record) -> t.Record | None:
    """Our record behind a wrapper (a record is returned as is)."""
    if isinstance(obj, RecordWrapper):
        return cast(t.Record, obj.record)
    if isinstance(obj, TaskId):
        return obj.value
    return obj
