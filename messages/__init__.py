"""The SustainML message model: typed records (seed IDL), their msgpack wire format and JSON views.

    from sustainml.messages import UserInput, TaskId, encode, decode

    ui = UserInput(modality="image", problem_definition="classification")
    ui.update_extra(goal="image-classification")
    assert decode(encode(ui), UserInput) == ui

Stage messages (between workers) are :class:`TaskEnvelope` values (``encode_task`` /
``decode_task``). Every invalid value raises :class:`MessageError` naming the field; undecodable
bytes raise :class:`DecodeError`. Size limits live in :mod:`sustainml.messages.limits`.

``pack_array``/``unpack_array`` (``.npy`` helpers) are imported lazily so that importing this
package does not import numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sustainml.messages import limits
from sustainml.messages.codec import (
    TaskEnvelope,
    decode,
    decode_task,
    decode_task_raw,
    encode,
    encode_task,
    from_json_dict,
    from_wire,
    to_json_dict,
    to_wire,
)
from sustainml.messages.types import (
    KIND_OF_TYPE,
    MESSAGE_TYPES,
    RECORD_TYPES,
    SCHEMA_VERSION,
    UNITS,
    AppRequirements,
    CmdNode,
    CmdTask,
    CO2Footprint,
    DecodeError,
    ErrorCode,
    FieldError,
    GeoLocation,
    HWConstraints,
    HWResource,
    MessageError,
    MLModel,
    MLModelMetadata,
    NodeControl,
    NodeID,
    NodeStatus,
    Record,
    RequestType,
    ResponseType,
    Status,
    TaskId,
    TaskStatus,
    UserInput,
)

if TYPE_CHECKING:
    from sustainml.messages.arrays import pack_array, unpack_array


def __getattr__(name: str) -> Any:
    if name in ("pack_array", "unpack_array"):
        from sustainml.messages import arrays

        return getattr(arrays, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KIND_OF_TYPE",
    "MESSAGE_TYPES",
    "RECORD_TYPES",
    "SCHEMA_VERSION",
    "UNITS",
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
    "TaskEnvelope",
    "TaskId",
    "TaskStatus",
    "UserInput",
    "decode",
    "decode_task",
    "decode_task_raw",
    "encode",
    "encode_task",
    "from_json_dict",
    "from_wire",
    "limits",
    "pack_array",
    "to_json_dict",
    "to_wire",
    "unpack_array",
]
