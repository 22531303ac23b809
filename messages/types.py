"""The typed records of the SustainML data model (the original framework's IDL).

One pydantic model per IDL type, fields named, ordered and defaulted exactly as the IDL. Validation
is strict: a wrong type is an error, never a coercion (``"5"`` is not an ``unsigned long``, ``1.5``
is not an ``int``), with two deliberate exceptions: an ``int`` is accepted for a ``double`` (msgpack
may carry ``0`` for ``0.0``) and an enum field accepts its member or the member's int value (that is
how enums travel). NaN and infinities are rejected on every ``double``. Unknown fields are kept
(``model_extra``) and re-encoded, so an older worker forwards what a newer one added.

Every failure raises :class:`MessageError` whose ``field`` is the dotted path of the offending value
(``UserInput.minimum_samples``, ``record.task_id.problem_id``) and whose text says what was expected
and what was got.

Deviations from the IDL, on purpose:
- ``task_id`` is a :class:`TaskId` ``{problem_id, iteration_id}`` (or ``None`` until the runtime
  stamps it) on every record except ``RequestType``/``ResponseType``;
- ``extra_data`` carries msgpack bytes of a map with str keys (upstream: UTF-8 JSON text);
- ``MLModel.input_batch`` is ``list[bytes]`` of serialized ``.npy`` arrays (IDL: ``sequence<string>``);
- ``NodeStatus`` has typed heartbeat/event extensions (``replica_id``, ``event`` ...).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from sustainml.messages import limits
from sustainml.messages.enums import CmdNode, CmdTask, ErrorCode, Status, TaskStatus
from sustainml.messages.errors import DecodeError, FieldError, MessageError, clip, short_repr, typed_repr
from sustainml.messages.kinds import RECORD_KINDS, NodeID
from sustainml.messages.packing import check_wire_value, pack_extra, packb, unpack_extra, unpackb

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

SCHEMA_VERSION: Final = 1

ULONG_MAX: Final = 2**32 - 1
LONG_MIN: Final = -(2**31)
LONG_MAX: Final = 2**31 - 1
COUNTER_MAX: Final = 2**63 - 1  # sustainml counters (signed 64-bit: SQL BIGINT and msgpack safe)


# --------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------
_AS_INT = PlainSerializer(int, return_type=int)  # enums leave a record as plain ints


def _enum_coercer(enum_cls: type[IntEnum]) -> Callable[[Any], Any]:
    by_value = {int(m): m for m in enum_cls}
    allowed = ", ".join(f"{int(m)} ({m.name})" for m in enum_cls)

    def coerce(value: Any) -> Any:
        if isinstance(value, enum_cls):
            return value
        if type(value) is int:  # exact int: bools and other IntEnums are not this enum
            member = by_value.get(value)
            if member is None:
                raise PydanticCustomError(
                    "enum_value", f"must be one of {allowed}", {"got": short_repr(value)}
                )
            return member
        raise PydanticCustomError(
            "enum_type", f"must be a {enum_cls.__name__} member or its int value", {"got": typed_repr(value)}
        )

    return coerce


StatusField = Annotated[Status, BeforeValidator(_enum_coercer(Status)), _AS_INT]
TaskStatusField = Annotated[TaskStatus, BeforeValidator(_enum_coercer(TaskStatus)), _AS_INT]
ErrorCodeField = Annotated[ErrorCode, BeforeValidator(_enum_coercer(ErrorCode)), _AS_INT]
CmdNodeField = Annotated[CmdNode, BeforeValidator(_enum_coercer(CmdNode)), _AS_INT]
CmdTaskField = Annotated[CmdTask, BeforeValidator(_enum_coercer(CmdTask)), _AS_INT]

ULong = Annotated[int, Field(ge=0, le=ULONG_MAX)]  # IDL unsigned long
Long = Annotated[int, Field(ge=LONG_MIN, le=LONG_MAX)]  # IDL long / int
Counter = Annotated[int, Field(ge=0, le=COUNTER_MAX)]
Str = Annotated[str, Field(max_length=limits.MAX_STRING_CHARS)]
StrList = Annotated[list[Str], Field(max_length=limits.MAX_LIST_ITEMS)]


def _check_extra_data(value: bytes) -> bytes:
    if value:
        try:
            unpack_extra(value)
        except Exception as exc:  # any msgpack failure means "not a map"; reported, not swallowed
            raise PydanticCustomError(
                "extra_data",
                "must be empty or msgpack bytes of a map with str keys ({reason})",
                {"reason": clip(str(exc) or type(exc).__name__, 80), "got": short_repr(value)},
            ) from exc
    return value


def _check_batch_total(value: list[bytes]) -> list[bytes]:
    total = sum(len(b) for b in value)
    if total > limits.MAX_INPUT_BATCH_BYTES:
        raise PydanticCustomError(
            "batch_too_large",
            f"must hold at most {limits.MAX_INPUT_BATCH_BYTES} bytes in total",
            {"got": f"{total} bytes"},
        )
    return value


ExtraData = Annotated[bytes, Field(max_length=limits.MAX_EXTRA_DATA_BYTES), AfterValidator(_check_extra_data)]
RawModel = Annotated[bytes, Field(max_length=limits.MAX_RAW_MODEL_BYTES)]
InputBatch = Annotated[
    list[Annotated[bytes, Field(max_length=limits.MAX_INPUT_BATCH_BYTES)]],
    Field(max_length=limits.MAX_LIST_ITEMS),
    AfterValidator(_check_batch_total),
]

_EXTRA_DOC = "msgpack bytes of a map with str keys for out-of-scope data (b'' = none)"
_TASK_DOC = "the task (ML problem iteration) this record belongs to; stamped by the runtime"


def _extra_field() -> Any:
    return Field(b"", description=_EXTRA_DOC)


def _task_field() -> Any:
    return Field(None, description=_TASK_DOC)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------
class Record(BaseModel):
    """Base of every message type: strict validation, unknown fields kept, errors as
    :class:`MessageError`, and the ``extra_data`` helpers."""

    model_config = ConfigDict(
        strict=True,  # wrong types are errors, not coercions (see the module docstring)
        extra="allow",  # forward compatibility: keep and re-encode fields we do not know
        validate_assignment=True,
        allow_inf_nan=False,
        protected_namespaces=(),  # MLModel has model_path, model, model_properties...
        validate_default=False,
        revalidate_instances="never",
    )

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise MessageError.from_validation(type(self).__name__, exc) from exc

    # Tell pydantic this __init__ only wraps the base one: validation from a mapping (nested
    # TaskId, model_validate) then stays in pydantic-core instead of calling back into Python.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise MessageError.from_validation(type(self).__name__, exc) from exc

    @classmethod
    def validate_mapping(
        cls, data: Any, path: str | None = None, error: type[MessageError] = MessageError
    ) -> Self:
        """Validate a plain mapping (e.g. a decoded wire dict) into this record. Errors are raised as
        ``error`` with fields prefixed by ``path`` (default: the class name)."""
        prefix = cls.__name__ if path is None else path
        try:
            rec = cls.model_validate(data)
        except ValidationError as exc:
            raise error.from_validation(prefix, exc) from exc
        extra = rec.__pydantic_extra__
        if extra:  # unknown fields are kept only if they can be forwarded unchanged
            for key, value in extra.items():
                check_wire_value(value, f"{prefix}.{key}", error)
        return rec

    # -- extra_data -------------------------------------------------------------------------
    def _require_extra(self) -> str:
        if "extra_data" not in type(self).model_fields:
            raise AttributeError(f"{type(self).__name__} has no extra_data field")
        return f"{type(self).__name__}.extra_data"

    def get_extra(self) -> dict[str, Any]:
        """``extra_data`` decoded (a fresh dict; ``{}`` when empty)."""
        self._require_extra()
        raw: bytes = getattr(self, "extra_data")  # noqa: B009 - declared on subclasses only
        return unpack_extra(raw)

    def set_extra(self, d: Mapping[str, Any]) -> None:
        """Encode ``d`` into ``extra_data`` (validated, size-limited)."""
        field = self._require_extra()
        setattr(self, "extra_data", pack_extra(d, field))  # noqa: B010 - declared on subclasses only

    def update_extra(self, **kv: Any) -> dict[str, Any]:
        """Merge ``kv`` into ``extra_data``, store it and return the new dict."""
        merged = self.get_extra()
        merged.update(kv)
        self.set_extra(merged)
        return merged


@functools.total_ordering
class TaskId(Record):
    """Identifier of a task: ``{problem_id, iteration_id}``, both >= 1 (``{0, 0}`` is invalid).

    Frozen and hashable (usable as a dict key); ordered lexicographically; ``str()`` and ``key``
    give ``"<problem_id>.<iteration_id>"``, the AMQP routing key. Unknown fields are dropped: an
    identity must compare equal however it was received."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    problem_id: Annotated[int, Field(ge=1, le=ULONG_MAX)] = Field(
        description="ML problem number (IDL unsigned long, >= 1)"
    )
    iteration_id: Annotated[int, Field(ge=1, le=ULONG_MAX)] = Field(
        description="iteration of the problem (IDL unsigned long, >= 1)"
    )

    _PATTERN: ClassVar[re.Pattern[str]] = re.compile(r"([0-9]+)\.([0-9]+)")

    @property
    def key(self) -> str:
        return f"{self.problem_id}.{self.iteration_id}"

    def __str__(self) -> str:
        return self.key

    def as_tuple(self) -> tuple[int, int]:
        return (self.problem_id, self.iteration_id)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, TaskId):
            return NotImplemented
        return self.as_tuple() < other.as_tuple()

    @classmethod
    def parse(cls, text: str) -> TaskId:
        """``"3.2"`` -> ``TaskId(problem_id=3, iteration_id=2)``."""
        match = cls._PATTERN.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            msg = f"must look like '<problem_id>.<iteration_id>', got {typed_repr(text)}"
            raise MessageError("TaskId", msg)
        return cls(problem_id=int(match[1]), iteration_id=int(match[2]))


class GeoLocation(Record):
    """Where the ML problem runs (IDL struct; ``UserInput`` carries it flattened)."""

    continent: Str = Field("", description="continent, e.g. 'Europe'")
    region: Str = Field("", description="region within the continent, e.g. 'Spain'")


class NodeStatus(Record):
    """A node's status: heartbeats and per-task events, published by every node replica.

    IDL fields first, then typed sustainml extensions (all defaulted, so an IDL-only sender is
    valid)."""

    node_status: StatusField = Field(Status.INACTIVE, description="node state")
    task_status: TaskStatusField = Field(TaskStatus.WAITING, description="state of task_id on this node")
    error_code: ErrorCodeField = Field(ErrorCode.NO_ERROR, description="error code of the last failure")
    task_id: TaskId | None = Field(None, description="task the event is about (None for heartbeats)")
    error_description: Str = Field("", description="human-readable error text")
    node_name: Str = Field("", description="upstream node name, e.g. 'ML_MODEL_METADATA'")
    # -- sustainml extensions --
    replica_id: Str = Field("", description="unique id of the publishing replica (process)")
    node_id: Long = Field(int(NodeID.UNKNOWN), description="NodeID integer of the node (8 = UNKNOWN)")
    event: Literal["online", "heartbeat", "task", "offline"] = Field(
        "heartbeat", description="why this status was published"
    )
    heartbeat_interval: Annotated[float, Field(ge=0.0)] = Field(
        0.0, description="seconds between this replica's heartbeats (0 = unknown)"
    )
    in_flight: Counter = Field(0, description="tasks the replica is processing now")
    processed: Counter = Field(0, description="tasks the replica has finished since it started")
    timestamp: float = Field(0.0, description="publication time, seconds since the Unix epoch")


class NodeControl(Record):
    """A lifecycle or task command to one node (``target_node``) or to all."""

    cmd_node: CmdNodeField = Field(CmdNode.NO_CMD, description="node command")
    cmd_task: CmdTaskField = Field(CmdTask.NO_CMD, description="task command (applies to task_id)")
    target_node: Str = Field("", description="node name the command is for ('' or 'all' = every node)")
    task_id: TaskId | None = Field(None, description="task the task command applies to")
    source_node: Str = Field("", description="sender, e.g. 'ORCHESTRATOR'")


class UserInput(Record):
    """The user's description of an ML problem (one task); entry point of the pipeline."""

    modality: Str = Field("", description="modality of the input data: image, video, text, audio, ...")
    problem_short_description: Str = Field("", description="short free-text description of the problem")
    problem_definition: Str = Field("", description="type of problem: classification, regression, ...")
    inputs: StrList = Field(default_factory=list, description="input data descriptions")
    outputs: StrList = Field(default_factory=list, description="output data descriptions")
    minimum_samples: ULong = Field(0, description="minimum number of samples required")
    maximum_samples: ULong = Field(0, description="maximum number of samples required")
    optimize_carbon_footprint_manual: bool = Field(
        False, description="optimize the carbon footprint manually"
    )
    previous_iteration: Long = Field(
        0, description="iteration to continue from: 0 = new problem, -1 = latest iteration"
    )
    optimize_carbon_footprint_auto: bool = Field(
        False, description="iterate automatically until desired_carbon_footprint"
    )
    desired_carbon_footprint: float = Field(0.0, description="target carbon footprint, kgCO2e")
    geo_location_continent: Str = Field("", description="continent where the problem runs")
    geo_location_region: Str = Field("", description="region where the problem runs")
    extra_data: ExtraData = _extra_field()
    task_id: TaskId | None = _task_field()

    @property
    def geo_location(self) -> GeoLocation:
        return GeoLocation(continent=self.geo_location_continent, region=self.geo_location_region)


class MLModelMetadata(Record):
    """Output of ML_MODEL_METADATA (the task encoder)."""

    keywords: StrList = Field(default_factory=list, description="key words of the problem description")
    ml_model_metadata: StrList = Field(
        default_factory=list, description="model metadata; element 0 is the chosen goal"
    )
    extra_data: ExtraData = _extra_field()
    task_id: TaskId | None = _task_field()


class AppRequirements(Record):
    """Output of APP_REQUIREMENTS."""

    app_requirements: StrList = Field(default_factory=list, description="application-level requirements")
    extra_data: ExtraData = _extra_field()
    task_id: TaskId | None = _task_field()


class HWConstraints(Record):
    """Output of HW_CONSTRAINTS: the user's hardware constraints."""

    max_memory_footprint: ULong = Field(0, description="maximum memory footprint of the ML model, MB")
    hardware_required: StrList = Field(
        default_factory=list, description="hardware to consider; element 0 is used"
    )
    extra_data: ExtraData = _extra_field()
    task_id: TaskId | None = _task_field()


class MLModel(Record):
    """Output of ML_MODEL (the model provider). ``target_latency`` in seconds; ``input_batch``
    holds serialized ``.npy`` arrays (see :meth:`set_input_arrays`)."""

    model_path: Str = Field("", description="path to the ML model (e.g. an ONNX file)")
    model: Str = Field("", description="model name")
    raw_model: RawModel = Field(b"", description="raw model bytes (remote approach)")
    model_properties_path: Str = Field("", description="path to the model properties")
    model_properties: Str = Field("", description="model properties (remote approach)")
    input_batch: InputBatch = Field(
        default_factory=list, description="serialized numpy .npy arrays (Batch x Channels x Height x Width)"
    )
    target_latency: float = Field(0.0, description="target latency, seconds")
    extra_data: ExtraData = _extra_field()
    task_id: TaskId | None = _task_field()

    def set_input_arrays(self, arrays: Sequence[npt.NDArray[Any]]) -> None:
        """Serialize ``arrays`` into ``input_batch`` (object arrays rejected)."""
        from sustainml.messages.arrays import pack_array  # numpy is imported only when used

        self.input_batch = [pack_array(a, index=i, field="MLModel.input_batch") for i, a in enumerate(arrays)]

    def input_arrays(self) -> list[np.ndarray[Any, Any]]:
        """``input_batch`` deserialized (``MessageError`` naming ``input_batch[i]`` if one is bad)."""
        from sustainml.messages.arrays import unpack_array

        return [unpack_array(b, index=i, field="MLModel.input_batch") for i, b in enumerate(self.input_batch)]


class HWResource(Record):
    """Output of HW_RESOURCES: the proposed hardware and its estimates."""

    hw_description: Str = Field("", description="detailed hardware description")
    power_consumption: float = Field(0.0, description="power consumption, W")
    latency: float = Field(0.0, description="estimated latency of the model on the input batch, seconds")
    memory_footprint_of_ml_model: float = Field(0.0, description="memory footprint of the ML model, MB")
    max_hw_memory_footprint: float = Field(0.0, description="maximum memory footprint the hardware holds, MB")
    extra_data: ExtraData = _extra_field()
    task_id: TaskId | None = _task_field()


class CO2Footprint(Record):
    """Output of CARBON_FOOTPRINT: carbon_footprint kgCO2e, energy_consumption Wh, carbon_intensity
    gCO2e/kWh."""

    carbon_footprint: float = Field(0.0, description="carbon footprint, kgCO2e")
    energy_consumption: float = Field(0.0, description="energy consumption, Wh")
    carbon_intensity: float = Field(0.0, description="grid carbon intensity, gCO2e/kWh")
    extra_data: ExtraData = _extra_field()
    task_id: TaskId | None = _task_field()


class RequestType(Record):
    """Node configuration request (orchestrator -> node)."""

    node_id: Long = Field(0, description="NodeID integer of the target node")
    transaction_id: Long = Field(0, description="orchestrator-unique request counter")
    configuration: Str = Field("", description="configuration to apply")


class ResponseType(Record):
    """Node configuration response (node -> orchestrator)."""

    node_id: Long = Field(0, description="NodeID integer of the answering node")
    transaction_id: Long = Field(0, description="transaction_id of the request")
    success: bool = Field(False, description="whether the request succeeded")
    err_code: ErrorCodeField = Field(ErrorCode.NO_ERROR, description="error code when not successful")
    configuration: Str = Field("", description="configuration after the request (JSON text)")


# --------------------------------------------------------------------------------------------
# Registries
# --------------------------------------------------------------------------------------------
RECORD_TYPES: Final[dict[str, type[Record]]] = dict(
    zip(
        RECORD_KINDS,
        (UserInput, MLModelMetadata, AppRequirements, HWConstraints, MLModel, HWResource, CO2Footprint),
        strict=True,
    )
)
"""Record kind (``sustainml.messages.kinds.RECORD_KINDS``) -> record class."""

KIND_OF_TYPE: Final[dict[type[Record], str]] = {cls: kind for kind, cls in RECORD_TYPES.items()}
"""Record class -> record kind (inverse of ``RECORD_TYPES``)."""

MESSAGE_TYPES: Final[dict[str, type[Record]]] = {
    cls.__name__: cls
    for cls in (
        TaskId,
        GeoLocation,
        NodeStatus,
        NodeControl,
        UserInput,
        MLModelMetadata,
        AppRequirements,
        HWConstraints,
        MLModel,
        HWResource,
        CO2Footprint,
        RequestType,
        ResponseType,
    )
}
"""Class name (the wire ``type``) -> class, for all 13 message types."""

__all__ = [
    "COUNTER_MAX",
    "KIND_OF_TYPE",
    "LONG_MAX",
    "LONG_MIN",
    "MESSAGE_TYPES",
    "RECORD_TYPES",
    "SCHEMA_VERSION",
    "ULONG_MAX",
    "AppRequirements",
    "CO2Footprint",
    "CmdNode",
    "CmdTask",
    "DecodeError",
    "ErrorCode",
    "FieldError",
    "GeoLocation",
    "HWConstraints",
    "HWResource",
    "MLModel",
    "MLModelMetadata",
    "MessageError",
    "NodeControl",
    "NodeID",
    "NodeStatus",
    "Record",
    "RequestType",
    "ResponseType",
    "Status",
    "TaskId",
    "TaskStatus",
    "UserInput",
    "check_wire_value",
    "pack_extra",
    "packb",
    "short_repr",
    "typed_repr",
    "unpack_extra",
    "unpackb",
]


# Units of the numeric fields (the seed's units): one table for the CLI, docs and REST views.
UNITS: Final[dict[str, str]] = {
    "carbon_footprint": "kgCO2e",
    "desired_carbon_footprint": "kgCO2e",
    "energy_consumption": "Wh",
    "carbon_intensity": "gCO2e/kWh",
    "power_consumption": "W",
    "latency": "s",
    "target_latency": "s",
    "max_memory_footprint": "MB",
    "memory_footprint_of_ml_model": "MB",
    "max_hw_memory_footprint": "MB",
}
