"""The typed records: IDL fidelity (names, order, defaults, enum orders), strict validation with
errors that name the field, extra_data helpers, unknown fields, TaskId, and the .npy helpers."""

from __future__ import annotations

import io
import math
from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sustainml.messages import (
    KIND_OF_TYPE,
    MESSAGE_TYPES,
    RECORD_TYPES,
    SCHEMA_VERSION,
    AppRequirements,
    CmdNode,
    CmdTask,
    CO2Footprint,
    DecodeError,
    ErrorCode,
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
    limits,
    pack_array,
    unpack_array,
)
from sustainml.messages.kinds import RECORD_KINDS
from sustainml.messages.kinds import NodeID as KindsNodeID
from sustainml.messages.types import packb
from sustainml.topology import PIPELINE

# -- IDL fidelity ------------------------------------------------------------------------------

# Field names in the order of upstream's IDL (data-model.txt), then the documented extensions.
IDL_FIELDS: dict[type[Record], list[str]] = {
    TaskId: ["problem_id", "iteration_id"],
    GeoLocation: ["continent", "region"],
    NodeStatus: [
        "node_status",
        "task_status",
        "error_code",
        "task_id",
        "error_description",
        "node_name",
        # sustainml extensions
        "replica_id",
        "node_id",
        "event",
        "heartbeat_interval",
        "in_flight",
        "processed",
        "timestamp",
    ],
    NodeControl: ["cmd_node", "cmd_task", "target_node", "task_id", "source_node"],
    UserInput: [
        "modality",
        "problem_short_description",
        "problem_definition",
        "inputs",
        "outputs",
        "minimum_samples",
        "maximum_samples",
        "optimize_carbon_footprint_manual",
        "previous_iteration",
        "optimize_carbon_footprint_auto",
        "desired_carbon_footprint",
        "geo_location_continent",
        "geo_location_region",
        "extra_data",
        "task_id",
    ],
    MLModelMetadata: ["keywords", "ml_model_metadata", "extra_data", "task_id"],
    AppRequirements: ["app_requirements", "extra_data", "task_id"],
    HWConstraints: ["max_memory_footprint", "hardware_required", "extra_data", "task_id"],
    MLModel: [
        "model_path",
        "model",
        "raw_model",
        "model_properties_path",
        "model_properties",
        "input_batch",
        "target_latency",
        "extra_data",
        "task_id",
    ],
    HWResource: [
        "hw_description",
        "power_consumption",
        "latency",
        "memory_footprint_of_ml_model",
        "max_hw_memory_footprint",
        "extra_data",
        "task_id",
    ],
    CO2Footprint: ["carbon_footprint", "energy_consumption", "carbon_intensity", "extra_data", "task_id"],
    RequestType: ["node_id", "transaction_id", "configuration"],
    ResponseType: ["node_id", "transaction_id", "success", "err_code", "configuration"],
}

# Every class except TaskId can be built with no argument: each field defaults to its type's zero value.
TYPE_DEFAULTS = {
    str: "",
    int: 0,
    float: 0.0,
    bool: False,
    bytes: b"",
    list: [],
}


def test_every_message_type_is_registered_with_idl_field_order() -> None:
    assert set(MESSAGE_TYPES.values()) == set(IDL_FIELDS)
    assert len(MESSAGE_TYPES) == 13
    for cls, names in IDL_FIELDS.items():
        assert MESSAGE_TYPES[cls.__name__] is cls
        assert list(cls.model_fields) == names, cls.__name__


def test_record_types_follow_topology_kinds() -> None:
    assert list(RECORD_TYPES) == list(RECORD_KINDS)
    assert [c.__name__ for c in RECORD_TYPES.values()] == [
        "UserInput",
        "MLModelMetadata",
        "AppRequirements",
        "HWConstraints",
        "MLModel",
        "HWResource",
        "CO2Footprint",
    ]
    assert {KIND_OF_TYPE[c]: c for c in KIND_OF_TYPE} == RECORD_TYPES


@pytest.mark.parametrize("cls", [c for c in IDL_FIELDS if c is not TaskId], ids=lambda c: c.__name__)
def test_defaults_are_the_zero_values(cls: type[Record]) -> None:
    rec = cls()
    for name in cls.model_fields:
        value = getattr(rec, name)
        if name == "task_id":
            assert value is None
        elif name == "node_id" and cls is NodeStatus:
            assert value == int(NodeID.UNKNOWN) == 8
        elif name == "event":
            assert value == "heartbeat"
        elif isinstance(value, Status | TaskStatus | ErrorCode | CmdNode | CmdTask):
            assert int(value) == 0, name  # first enum member
        else:
            assert value == TYPE_DEFAULTS[type(value)], name
            assert type(value) is type(TYPE_DEFAULTS[type(value)])


def test_list_defaults_are_not_shared() -> None:
    a, b = UserInput(), UserInput()
    a.inputs.append("x")
    assert b.inputs == []


def test_enum_orders_match_the_seed() -> None:
    assert [(m.name, m.value) for m in Status] == [
        ("INACTIVE", 0),
        ("INITIALIZING", 1),
        ("IDLE", 2),
        ("RUNNING", 3),
        ("ERROR", 4),
        ("TERMINATING", 5),
    ]
    assert [m.name for m in TaskStatus] == ["WAITING", "RUNNING", "ERROR", "SUCCEEDED"]
    assert [m.name for m in ErrorCode] == ["NO_ERROR", "INTERNAL_ERROR"]
    assert [m.name for m in CmdNode] == [
        "NO_CMD",
        "CMD_START_NODE",
        "CMD_STOP_NODE",
        "CMD_RESET_NODE",
        "CMD_TERMINATE_NODE",
    ]
    assert [m.name for m in CmdTask] == [
        "NO_CMD",
        "CMD_STOP_TASK",
        "CMD_RESET_TASK",
        "CMD_PREEMPT_TASK",
        "CMD_TERMINATE_TASK",
    ]
    for enum_cls in (TaskStatus, ErrorCode, CmdNode, CmdTask):
        assert [m.value for m in enum_cls] == list(range(len(enum_cls)))


def test_node_id_is_the_topology_enum_and_schema_version_is_1() -> None:
    assert NodeID is KindsNodeID
    assert all(type(stage.node_id) is NodeID for stage in PIPELINE)  # the topology's stages share it
    assert SCHEMA_VERSION == 1


@pytest.mark.parametrize(
    ("cls", "field", "unit"),
    [
        (CO2Footprint, "carbon_footprint", "kgCO2e"),
        (CO2Footprint, "energy_consumption", "Wh"),
        (CO2Footprint, "carbon_intensity", "gCO2e/kWh"),
        (HWResource, "power_consumption", "W"),
        (HWResource, "latency", "seconds"),
        (HWResource, "memory_footprint_of_ml_model", "MB"),
        (HWResource, "max_hw_memory_footprint", "MB"),
        (MLModel, "target_latency", "seconds"),
        (HWConstraints, "max_memory_footprint", "MB"),
        (UserInput, "desired_carbon_footprint", "kgCO2e"),
    ],
)
def test_units_are_documented(cls: type[Record], field: str, unit: str) -> None:
    description = cls.model_fields[field].description or ""
    assert description.endswith(unit), description


# -- strict validation, errors naming the field ----------------------------------------------


R = TypeVar("R", bound=Record)


def make(cls: type[R], **kwargs: Any) -> R:
    """Construct with arguments mypy would (rightly) reject: wrong types on purpose, or the int
    form of an enum."""
    return cls(**kwargs)


def _error(fn: Any) -> MessageError:
    with pytest.raises(MessageError) as info:
        fn()
    return info.value


def test_error_names_field_and_says_what_and_got() -> None:
    err = _error(lambda: UserInput(minimum_samples=-1))
    assert isinstance(err, ValueError)
    assert err.field == "UserInput.minimum_samples"
    assert str(err) == "UserInput.minimum_samples: must be >= 0, got -1"


def test_all_errors_are_kept() -> None:
    err = _error(lambda: make(UserInput, minimum_samples=-1, modality=3, inputs=["ok", 7]))
    fields = {e.field for e in err.errors}
    assert fields == {"UserInput.minimum_samples", "UserInput.modality", "UserInput.inputs[1]"}
    assert err.field == err.errors[0].field


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"minimum_samples": "5"}, "UserInput.minimum_samples", "must be an integer, got str '5'"),
        ({"minimum_samples": 1.5}, "UserInput.minimum_samples", "must be an integer, got float 1.5"),
        ({"minimum_samples": 2.0}, "UserInput.minimum_samples", "must be an integer"),
        ({"minimum_samples": True}, "UserInput.minimum_samples", "must be an integer, got bool True"),
        ({"modality": 5}, "UserInput.modality", "must be a string, got int 5"),
        ({"modality": b"img"}, "UserInput.modality", "must be a string"),
        ({"inputs": "a b"}, "UserInput.inputs", "must be a list"),
        ({"inputs": ("a",)}, "UserInput.inputs", "must be a list"),
        ({"inputs": ["a", 1]}, "UserInput.inputs[1]", "must be a string, got int 1"),
        (
            {"optimize_carbon_footprint_auto": 1},
            "UserInput.optimize_carbon_footprint_auto",
            "must be a boolean",
        ),
        ({"desired_carbon_footprint": "1.0"}, "UserInput.desired_carbon_footprint", "must be a number"),
        ({"desired_carbon_footprint": True}, "UserInput.desired_carbon_footprint", "must be a number"),
        ({"extra_data": "{}"}, "UserInput.extra_data", "must be bytes"),
        ({"extra_data": bytearray(b"")}, "UserInput.extra_data", "must be bytes"),
        ({"task_id": "1.1"}, "UserInput.task_id", "must be a map"),
        ({"task_id": {"problem_id": 1}}, "UserInput.task_id.iteration_id", "is required"),
    ],
)
def test_wrong_types_are_errors_not_coercions(kwargs: dict[str, Any], field: str, text: str) -> None:
    err = _error(lambda: UserInput(**kwargs))
    assert err.field == field
    assert text in str(err)
    assert str(err).startswith(f"{field}: ")


def test_int_is_accepted_for_double() -> None:
    rec = HWResource(power_consumption=3, latency=0)
    assert rec.power_consumption == 3.0 and type(rec.power_consumption) is float
    assert type(rec.latency) is float


ULONG_FIELDS = [
    (UserInput, "minimum_samples"),
    (UserInput, "maximum_samples"),
    (HWConstraints, "max_memory_footprint"),
]
LONG_FIELDS = [
    (UserInput, "previous_iteration"),
    (RequestType, "node_id"),
    (RequestType, "transaction_id"),
    (ResponseType, "node_id"),
    (ResponseType, "transaction_id"),
    (NodeStatus, "node_id"),
]


@pytest.mark.parametrize(("cls", "field"), ULONG_FIELDS, ids=lambda x: getattr(x, "__name__", x))
def test_unsigned_long_range(cls: type[Record], field: str) -> None:
    assert getattr(cls(**{field: 0}), field) == 0
    assert getattr(cls(**{field: 2**32 - 1}), field) == 2**32 - 1
    err = _error(lambda: cls(**{field: 2**32}))
    assert (err.field, str(err)) == (
        f"{cls.__name__}.{field}",
        f"{cls.__name__}.{field}: must be <= 4294967295, got 4294967296",
    )
    assert _error(lambda: cls(**{field: -1})).field == f"{cls.__name__}.{field}"


@pytest.mark.parametrize(("cls", "field"), LONG_FIELDS, ids=lambda x: getattr(x, "__name__", x))
def test_signed_long_range(cls: type[Record], field: str) -> None:
    assert getattr(cls(**{field: -(2**31)}), field) == -(2**31)
    assert getattr(cls(**{field: 2**31 - 1}), field) == 2**31 - 1
    for bad in (2**31, -(2**31) - 1):
        err = _error(lambda bad=bad: cls(**{field: bad}))
        assert err.field == f"{cls.__name__}.{field}"
        assert f"got {bad}" in str(err)


def test_previous_iteration_accepts_minus_one() -> None:
    assert UserInput(previous_iteration=-1).previous_iteration == -1


DOUBLE_FIELDS = [
    (cls, name) for cls in IDL_FIELDS for name, info in cls.model_fields.items() if info.annotation is float
]


def test_double_field_list_is_complete() -> None:
    assert {f"{c.__name__}.{n}" for c, n in DOUBLE_FIELDS} == {
        "UserInput.desired_carbon_footprint",
        "MLModel.target_latency",
        "HWResource.power_consumption",
        "HWResource.latency",
        "HWResource.memory_footprint_of_ml_model",
        "HWResource.max_hw_memory_footprint",
        "CO2Footprint.carbon_footprint",
        "CO2Footprint.energy_consumption",
        "CO2Footprint.carbon_intensity",
        "NodeStatus.heartbeat_interval",
        "NodeStatus.timestamp",
    }


@pytest.mark.parametrize(("cls", "field"), DOUBLE_FIELDS, ids=lambda x: getattr(x, "__name__", x))
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_nan_and_infinities_rejected(cls: type[Record], field: str, bad: float) -> None:
    err = _error(lambda: cls(**{field: bad}))
    assert err.field == f"{cls.__name__}.{field}"
    assert "must be a finite number" in str(err)
    rec = cls()
    err = _error(lambda: setattr(rec, field, bad))  # assignment is validated too
    assert err.field == f"{cls.__name__}.{field}"
    assert getattr(rec, field) == 0.0


def test_assignment_is_validated_and_raises_message_error() -> None:
    rec = HWConstraints()
    rec.max_memory_footprint = 100
    err = _error(lambda: setattr(rec, "max_memory_footprint", "100"))
    assert err.field == "HWConstraints.max_memory_footprint"
    assert rec.max_memory_footprint == 100


def test_enum_fields_accept_member_or_int_only() -> None:
    assert NodeStatus(node_status=Status.RUNNING).node_status is Status.RUNNING
    assert make(NodeStatus, node_status=3).node_status is Status.RUNNING
    ctl = make(NodeControl, cmd_node=1, cmd_task=CmdTask.CMD_STOP_TASK)
    assert ctl.cmd_node is CmdNode.CMD_START_NODE and ctl.cmd_task is CmdTask.CMD_STOP_TASK
    assert make(ResponseType, err_code=1).err_code is ErrorCode.INTERNAL_ERROR
    for bad, text in [
        ("RUNNING", "must be a Status member or its int value, got str 'RUNNING'"),
        (True, "got bool True"),
        (3.0, "got float 3.0"),
        (TaskStatus.RUNNING, "must be a Status member"),  # another enum, even with the same value
        (6, "must be one of 0 (INACTIVE), 1 (INITIALIZING)"),
        (-1, "got -1"),
    ]:
        err = _error(lambda bad=bad: NodeStatus(node_status=bad))
        assert err.field == "NodeStatus.node_status"
        assert text in str(err), str(err)


def test_node_status_extensions() -> None:
    st_ = NodeStatus(
        node_status=Status.IDLE,
        node_name="ML_MODEL_METADATA",
        replica_id="r-1",
        node_id=4,
        event="online",
        heartbeat_interval=2,
        in_flight=1,
        processed=2**40,
        timestamp=1.7e9,
    )
    assert (st_.event, st_.heartbeat_interval, st_.processed) == ("online", 2.0, 2**40)
    assert "must be one of 'online', 'heartbeat', 'task' or 'offline'" in str(
        _error(lambda: make(NodeStatus, event="busy"))
    )
    assert _error(lambda: NodeStatus(in_flight=-1)).field == "NodeStatus.in_flight"
    assert _error(lambda: NodeStatus(heartbeat_interval=-0.5)).field == "NodeStatus.heartbeat_interval"


# -- size limits -------------------------------------------------------------------------------


def test_limits_have_the_documented_values() -> None:
    assert limits.MAX_STRING_CHARS == 65_536
    assert limits.MAX_LIST_ITEMS == 1_024
    assert limits.MAX_EXTRA_DATA_BYTES == 1024 * 1024
    assert limits.MAX_RAW_MODEL_BYTES == 8 * 1024 * 1024
    assert limits.MAX_INPUT_BATCH_BYTES == 8 * 1024 * 1024
    assert limits.MAX_MESSAGE_BYTES == 32 * 1024 * 1024


def test_oversized_string() -> None:
    assert len(UserInput(modality="é" * limits.MAX_STRING_CHARS).modality) == limits.MAX_STRING_CHARS
    err = _error(lambda: UserInput(modality="é" * (limits.MAX_STRING_CHARS + 1)))
    assert err.field == "UserInput.modality"
    assert str(err).endswith("must have at most 65536 characters, got 65537")
    err = _error(lambda: MLModelMetadata(keywords=["ok", "x" * (limits.MAX_STRING_CHARS + 1)]))
    assert err.field == "MLModelMetadata.keywords[1]"


def test_oversized_list() -> None:
    AppRequirements(app_requirements=["a"] * limits.MAX_LIST_ITEMS)
    err = _error(lambda: AppRequirements(app_requirements=["a"] * (limits.MAX_LIST_ITEMS + 1)))
    assert err.field == "AppRequirements.app_requirements"
    assert "must have at most 1024 items, got 1025" in str(err)


def test_oversized_bytes() -> None:
    MLModel(raw_model=b"\0" * limits.MAX_RAW_MODEL_BYTES)
    err = _error(lambda: MLModel(raw_model=b"\0" * (limits.MAX_RAW_MODEL_BYTES + 1)))
    assert err.field == "MLModel.raw_model"
    assert f"must have at most {limits.MAX_RAW_MODEL_BYTES} bytes" in str(err)
    assert len(str(err)) < 200  # the value is not dumped into the message

    big_extra = packb({"k": b"\0" * limits.MAX_EXTRA_DATA_BYTES})
    err = _error(lambda: CO2Footprint(extra_data=big_extra))
    assert err.field == "CO2Footprint.extra_data"
    assert "at most 1048576 bytes" in str(err)


def test_input_batch_total_size() -> None:
    half = b"\0" * (limits.MAX_INPUT_BATCH_BYTES // 2)
    assert len(MLModel(input_batch=[half, half]).input_batch) == 2
    err = _error(lambda: MLModel(input_batch=[half, half, b"x"]))
    assert err.field == "MLModel.input_batch"
    assert "at most 8388608 bytes in total" in str(err)
    assert f"got {limits.MAX_INPUT_BATCH_BYTES + 1} bytes" in str(err)
    err = _error(lambda: make(MLModel, input_batch=[b"x", "not bytes"]))
    assert err.field == "MLModel.input_batch[1]"


# -- extra_data --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (packb([1, 2]), "decodes to list, not a map"),
        (packb(5), "decodes to int, not a map"),
        (packb({1: "a"}), ""),  # int key: refused by the strict unpacker
        (b"\xc1", "FormatError"),
        (packb({"a": 1}) + b"\x00", ""),  # trailing bytes
        (packb({"a": 1})[:-1], ""),  # truncated
        (b'{"goal": "x"}', ""),  # upstream JSON text is not msgpack
    ],
)
def test_bad_extra_data_bytes_are_rejected(raw: bytes, reason: str) -> None:
    err = _error(lambda: UserInput(extra_data=raw))
    assert err.field == "UserInput.extra_data"
    assert "must be empty or msgpack bytes of a map with str keys" in str(err)
    assert reason in str(err)
    rec = UserInput()
    assert _error(lambda: setattr(rec, "extra_data", raw)).field == "UserInput.extra_data"


def test_extra_data_helpers() -> None:
    rec = MLModelMetadata()
    assert rec.get_extra() == {}
    rec.set_extra({"goal": "image-classification", "restrains": ["a", "b"], "n": 2})
    assert rec.get_extra() == {"goal": "image-classification", "restrains": ["a", "b"], "n": 2}
    merged = rec.update_extra(n=3, blob=b"\x00\x01", name="Zürich ✓")
    assert merged == {
        "goal": "image-classification",
        "restrains": ["a", "b"],
        "n": 3,
        "blob": b"\x00\x01",
        "name": "Zürich ✓",
    }
    assert rec.get_extra() == merged
    got = rec.get_extra()
    got["n"] = 99  # get_extra returns a fresh dict
    assert rec.get_extra()["n"] == 3
    rec.set_extra({})
    assert rec.extra_data == b""


def test_set_extra_errors_name_the_field() -> None:
    rec = HWResource()
    err = _error(lambda: rec.set_extra({1: "x"}))  # type: ignore[dict-item]
    assert err.field == "HWResource.extra_data"
    assert "keys must be strings" in str(err)
    err = _error(lambda: rec.update_extra(value={1, 2}))
    assert err.field == "HWResource.extra_data"
    assert "cannot be encoded" in str(err)
    assert rec.extra_data == b""
    with pytest.raises(MessageError, match="at most 1048576 bytes"):
        rec.set_extra({"big": "x" * limits.MAX_EXTRA_DATA_BYTES})


def test_records_without_extra_data_refuse_the_helpers() -> None:
    with pytest.raises(AttributeError, match="NodeStatus has no extra_data"):
        NodeStatus().get_extra()


# -- unknown fields ----------------------------------------------------------------------------


def test_unknown_fields_are_kept() -> None:
    rec = AppRequirements(app_requirements=["x"], future_field={"a": [1, 2]}, other=3)
    assert rec.model_extra == {"future_field": {"a": [1, 2]}, "other": 3}
    assert rec.app_requirements == ["x"]
    rec2 = AppRequirements.validate_mapping({"app_requirements": ["y"], "new": "v"})
    assert rec2.model_extra == {"new": "v"}


def test_validate_mapping_prefix_and_error_class() -> None:
    with pytest.raises(DecodeError) as info:
        UserInput.validate_mapping({"task_id": {"problem_id": 0, "iteration_id": 1}}, "record", DecodeError)
    assert info.value.field == "record.task_id.problem_id"
    with pytest.raises(MessageError) as info2:
        UserInput.validate_mapping([1, 2])
    assert info2.value.field == "UserInput"
    assert "must be a map, got list" in str(info2.value)


# -- TaskId ------------------------------------------------------------------------------------


def test_task_id_basics() -> None:
    tid = TaskId(problem_id=3, iteration_id=2)
    assert tid.key == "3.2" and str(tid) == "3.2"
    assert TaskId.parse("3.2") == tid
    assert TaskId.parse(" 4294967295.1 ") == TaskId(problem_id=2**32 - 1, iteration_id=1)
    assert hash(tid) == hash(TaskId(problem_id=3, iteration_id=2))
    assert {tid: "x"}[TaskId.parse("3.2")] == "x"
    assert sorted([TaskId(problem_id=2, iteration_id=1), TaskId(problem_id=1, iteration_id=9), tid]) == [
        TaskId(problem_id=1, iteration_id=9),
        TaskId(problem_id=2, iteration_id=1),
        tid,
    ]
    assert (
        max([TaskId(problem_id=1, iteration_id=3), TaskId(problem_id=1, iteration_id=10)]).iteration_id == 10
    )


def test_task_id_is_frozen() -> None:
    tid = TaskId(problem_id=1, iteration_id=1)
    err = _error(lambda: setattr(tid, "problem_id", 2))
    assert err.field == "TaskId.problem_id"
    assert tid.problem_id == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"problem_id": 0, "iteration_id": 1}, "TaskId.problem_id"),
        ({"problem_id": 1, "iteration_id": 0}, "TaskId.iteration_id"),
        ({"problem_id": 2**32, "iteration_id": 1}, "TaskId.problem_id"),
        ({"problem_id": "1", "iteration_id": 1}, "TaskId.problem_id"),
        ({"iteration_id": 1}, "TaskId.problem_id"),
    ],
)
def test_task_id_invalid(kwargs: dict[str, Any], field: str) -> None:
    assert _error(lambda: TaskId(**kwargs)).field == field


@pytest.mark.parametrize("text", ["", "1", "1.2.3", "0.1", "a.b", "-1.2", "1,2", "\u0661.\u0662"])
def test_task_id_parse_invalid(text: str) -> None:
    err = _error(lambda: TaskId.parse(text))
    assert err.field.startswith("TaskId")


def test_task_id_on_records_accepts_instance_or_mapping() -> None:
    tid = TaskId(problem_id=5, iteration_id=6)
    assert UserInput(task_id=tid).task_id == tid
    assert make(CO2Footprint, task_id={"problem_id": 5, "iteration_id": 6}).task_id == tid
    assert NodeControl(task_id=tid).task_id == tid
    assert "task_id" not in RequestType.model_fields and "task_id" not in ResponseType.model_fields
    err = _error(lambda: make(CO2Footprint, task_id={"problem_id": 0, "iteration_id": 6}))
    assert err.field == "CO2Footprint.task_id.problem_id"


@given(st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1))
@settings(max_examples=100)
def test_task_id_parse_round_trip(p: int, i: int) -> None:
    tid = TaskId(problem_id=p, iteration_id=i)
    assert TaskId.parse(str(tid)) == tid
    assert TaskId.parse(tid.key).as_tuple() == (p, i)


def test_geo_location_view() -> None:
    ui = UserInput(geo_location_continent="Europe", geo_location_region="Spain")
    assert ui.geo_location == GeoLocation(continent="Europe", region="Spain")


# -- arrays ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4),
        np.array([[1, 2], [3, 4]], dtype=np.int64, order="F"),
        np.array([True, False]),
        np.zeros((0, 3), dtype=np.uint8),
        np.array(3.5),
        np.array(["ab", "ç"]),
    ],
)
def test_pack_unpack_array_round_trip(array: np.ndarray[Any, Any]) -> None:
    back = unpack_array(pack_array(array))
    assert back.dtype == array.dtype and back.shape == array.shape
    assert np.array_equal(back, array)


def test_object_arrays_are_rejected() -> None:
    err = _error(lambda: pack_array(np.array([{"a": 1}], dtype=object), index=2))
    assert err.field == "input_batch[2]"
    buf = io.BytesIO()
    np.save(buf, np.array([1, None], dtype=object), allow_pickle=True)  # a pickled payload
    err = _error(lambda: unpack_array(buf.getvalue(), index=0))
    assert err.field == "input_batch[0]"
    assert "not a valid .npy array" in str(err)


def test_unpack_array_rejects_garbage_and_npz() -> None:
    assert _error(lambda: unpack_array(b"not numpy", index=4)).field == "input_batch[4]"
    assert _error(lambda: unpack_array(b"")).field == "input_batch"
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(3))
    err = _error(lambda: unpack_array(buf.getvalue(), index=1))
    assert err.field == "input_batch[1]"
    assert "single .npy array" in str(err)


def test_ml_model_array_helpers() -> None:
    arrays: list[np.ndarray[Any, Any]] = [np.ones((2, 3, 4, 4), dtype=np.float32), np.arange(5)]
    rec = MLModel()
    rec.set_input_arrays(arrays)
    assert len(rec.input_batch) == 2 and all(isinstance(b, bytes) for b in rec.input_batch)
    out = rec.input_arrays()
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(arrays, out, strict=True))
    bad: list[np.ndarray[Any, Any]] = [np.arange(2), np.array([object()])]
    err = _error(lambda: rec.set_input_arrays(bad))
    assert err.field == "MLModel.input_batch[1]"
    rec.input_batch = [rec.input_batch[0], b"junk"]
    assert _error(rec.input_arrays).field == "MLModel.input_batch[1]"
