"""The wire format and JSON views: round trips of every type (property-based), body validation,
stage envelopes, and decode robustness on arbitrary input."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sustainml.messages import (
    MESSAGE_TYPES,
    RECORD_TYPES,
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
    NodeStatus,
    Record,
    RequestType,
    ResponseType,
    Status,
    TaskEnvelope,
    TaskId,
    TaskStatus,
    UserInput,
    decode,
    decode_task,
    encode,
    encode_task,
    from_json_dict,
    from_wire,
    limits,
    to_json_dict,
    to_wire,
)
from sustainml.messages.kinds import BASELINE_KINDS, RECORD_KINDS
from sustainml.topology import PIPELINE

# -- strategies: valid values for every field of every type ------------------------------------

ULONG = st.integers(0, 2**32 - 1)
LONG = st.integers(-(2**31), 2**31 - 1)
COUNTER = st.integers(0, 2**63 - 1)
TEXT = st.text(max_size=40)  # full unicode (hypothesis leaves out lone surrogates)
TEXTS = st.lists(TEXT, max_size=5)
# ints are valid doubles (msgpack may carry 0 for 0.0); they come back as equal floats
DOUBLE = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)
TASK_IDS = st.builds(TaskId, problem_id=st.integers(1, 2**32 - 1), iteration_id=st.integers(1, 2**32 - 1))
OPT_TASK_ID = st.none() | TASK_IDS

# Values msgpack carries unchanged (JSON-like plus bytes and 64-bit ints); no NaN (NaN != NaN).
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
WIRE_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _extra_data(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    maps = st.dictionaries(st.text(max_size=12), values, max_size=5)
    return st.just(b"") | maps.map(lambda d: msgpack.packb(d, use_bin_type=True) if d else b"")


def field_strategies(json_safe: bool = False) -> dict[type[Record], dict[str, st.SearchStrategy[Any]]]:
    """Per class, per field (IDL order) a strategy of valid values. ``json_safe`` limits
    extra_data contents to what the JSON view carries losslessly (no bytes, no infinities)."""
    extra = _extra_data(JSON_VALUES if json_safe else WIRE_VALUES)
    return {
        TaskId: {"problem_id": st.integers(1, 2**32 - 1), "iteration_id": st.integers(1, 2**32 - 1)},
        GeoLocation: {"continent": TEXT, "region": TEXT},
        NodeStatus: {
            "node_status": st.sampled_from(Status) | st.integers(0, 5),
            "task_status": st.sampled_from(TaskStatus),
            "error_code": st.sampled_from(ErrorCode),
            "task_id": OPT_TASK_ID,
            "error_description": TEXT,
            "node_name": TEXT,
            "replica_id": TEXT,
            "node_id": LONG,
            "event": st.sampled_from(["online", "heartbeat", "task", "offline"]),
            "heartbeat_interval": st.floats(min_value=0, allow_nan=False, allow_infinity=False),
            "in_flight": COUNTER,
            "processed": COUNTER,
            "timestamp": DOUBLE,
        },
        NodeControl: {
            "cmd_node": st.sampled_from(CmdNode),
            "cmd_task": st.sampled_from(CmdTask) | st.integers(0, 4),
            "target_node": TEXT,
            "task_id": OPT_TASK_ID,
            "source_node": TEXT,
        },
        UserInput: {
            "modality": TEXT,
            "problem_short_description": TEXT,
            "problem_definition": TEXT,
            "inputs": TEXTS,
            "outputs": TEXTS,
            "minimum_samples": ULONG,
            "maximum_samples": ULONG,
            "optimize_carbon_footprint_manual": st.booleans(),
            "previous_iteration": LONG,
            "optimize_carbon_footprint_auto": st.booleans(),
            "desired_carbon_footprint": DOUBLE,
            "geo_location_continent": TEXT,
            "geo_location_region": TEXT,
            "extra_data": extra,
            "task_id": OPT_TASK_ID,
        },
        MLModelMetadata: {
            "keywords": TEXTS,
            "ml_model_metadata": TEXTS,
            "extra_data": extra,
            "task_id": OPT_TASK_ID,
        },
        AppRequirements: {"app_requirements": TEXTS, "extra_data": extra, "task_id": OPT_TASK_ID},
        HWConstraints: {
            "max_memory_footprint": ULONG,
            "hardware_required": TEXTS,
            "extra_data": extra,
            "task_id": OPT_TASK_ID,
        },
        MLModel: {
            "model_path": TEXT,
            "model": TEXT,
            "raw_model": st.binary(max_size=200),
            "model_properties_path": TEXT,
            "model_properties": TEXT,
            "input_batch": st.lists(st.binary(max_size=64), max_size=4),
            "target_latency": DOUBLE,
            "extra_data": extra,
            "task_id": OPT_TASK_ID,
        },
        HWResource: {
            "hw_description": TEXT,
            "power_consumption": DOUBLE,
            "latency": DOUBLE,
            "memory_footprint_of_ml_model": DOUBLE,
            "max_hw_memory_footprint": DOUBLE,
            "extra_data": extra,
            "task_id": OPT_TASK_ID,
        },
        CO2Footprint: {
            "carbon_footprint": DOUBLE,
            "energy_consumption": DOUBLE,
            "carbon_intensity": DOUBLE,
            "extra_data": extra,
            "task_id": OPT_TASK_ID,
        },
        RequestType: {"node_id": LONG, "transaction_id": LONG, "configuration": TEXT},
        ResponseType: {
            "node_id": LONG,
            "transaction_id": LONG,
            "success": st.booleans(),
            "err_code": st.sampled_from(ErrorCode) | st.integers(0, 1),
            "configuration": TEXT,
        },
    }


FIELDS = field_strategies()
JSON_FIELDS = field_strategies(json_safe=True)


def records_of(
    cls: type[Record], *, extras: bool = True, json_safe: bool = False
) -> st.SearchStrategy[Record]:
    fields = st.fixed_dictionaries((JSON_FIELDS if json_safe else FIELDS)[cls])
    if not extras or cls is TaskId:  # TaskId drops unknown fields by design
        return fields.map(lambda kw: cls(**kw))
    unknown = st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda k: k not in cls.model_fields), WIRE_VALUES, max_size=3
    )
    return st.tuples(fields, unknown).map(lambda t: cls(**t[0], **t[1]))


def _json_records_of(cls: type[Record]) -> st.SearchStrategy[Record]:
    return records_of(cls, extras=False, json_safe=True)


def _plain_records_of(cls: type[Record]) -> st.SearchStrategy[Record]:
    return records_of(cls, extras=False)


ALL_TYPES: list[type[Record]] = list(MESSAGE_TYPES.values())
ANY_RECORD = st.sampled_from(ALL_TYPES).flatmap(records_of)
ANY_JSON_RECORD = st.sampled_from(ALL_TYPES).flatmap(_json_records_of)


def test_strategies_cover_every_field_of_every_type() -> None:
    assert set(FIELDS) == set(MESSAGE_TYPES.values())
    for cls, fields in FIELDS.items():
        assert list(fields) == list(cls.model_fields), cls.__name__


# -- round trips -------------------------------------------------------------------------------


@given(ANY_RECORD)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_wire_round_trip_every_type(rec: Record) -> None:
    cls = type(rec)
    back = decode(encode(rec), cls)
    assert back == rec
    assert type(back) is cls
    assert back.model_extra == rec.model_extra
    assert from_wire(cls, to_wire(rec)) == rec
    assert decode(encode(rec)) == rec  # no expected type: the body's type is used


@given(ANY_JSON_RECORD)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_json_round_trip_every_type(rec: Record) -> None:
    cls = type(rec)
    text = json.dumps(to_json_dict(rec), allow_nan=False)  # strict JSON
    assert from_json_dict(cls, json.loads(text)) == rec


@given(ANY_RECORD)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_json_view_is_always_strict_json(rec: Record) -> None:
    json.dumps(to_json_dict(rec), allow_nan=False)


SOME_TYPES: list[type[Record]] = [UserInput, MLModel, HWResource]


@given(st.sampled_from(SOME_TYPES).flatmap(_plain_records_of))
@settings(max_examples=100, deadline=None)
def test_encoding_is_deterministic(rec: Record) -> None:
    assert encode(rec) == encode(decode(encode(rec)))


# -- wire dict and bodies ----------------------------------------------------------------------


def test_wire_dict_shape() -> None:
    ns = NodeStatus(node_status=Status.IDLE, task_id=TaskId(problem_id=4, iteration_id=2), future=[1])
    wire = to_wire(ns)
    assert list(wire)[: len(NodeStatus.model_fields)] == list(NodeStatus.model_fields)
    assert wire["node_status"] == 2 and type(wire["node_status"]) is int
    assert type(wire["task_status"]) is int and type(wire["error_code"]) is int
    assert wire["task_id"] == {"problem_id": 4, "iteration_id": 2}
    assert wire["future"] == [1]
    assert to_wire(NodeStatus())["task_id"] is None
    ml = MLModel(raw_model=b"\x00\xff", input_batch=[b"a"])
    assert to_wire(ml)["raw_model"] == b"\x00\xff"
    body = msgpack.unpackb(encode(ml), raw=False)
    assert body["record"]["raw_model"] == b"\x00\xff"  # msgpack bin, not str


def test_standalone_body_layout() -> None:
    ui = UserInput(modality="text", task_id=TaskId(problem_id=1, iteration_id=1))
    body = msgpack.unpackb(encode(ui), raw=False)
    assert body == {"schema_version": 1, "type": "UserInput", "record": to_wire(ui)}


def test_unknown_fields_survive_a_round_trip() -> None:
    wire = to_wire(HWResource(latency=0.5))
    wire["added_in_v2"] = {"nested": [1, "two", b"3"]}
    body = msgpack.packb({"schema_version": 1, "type": "HWResource", "record": wire}, use_bin_type=True)
    rec = decode(body, HWResource)
    assert rec.latency == 0.5
    assert rec.model_extra == {"added_in_v2": {"nested": [1, "two", b"3"]}}
    again = msgpack.unpackb(encode(rec), raw=False)
    assert again["record"]["added_in_v2"] == {"nested": [1, "two", b"3"]}


def test_unknown_top_level_keys_are_ignored() -> None:
    body = msgpack.packb(
        {"schema_version": 1, "type": "RequestType", "record": {"node_id": 3}, "trace": {"id": "x"}},
        use_bin_type=True,
    )
    assert decode(body, RequestType) == RequestType(node_id=3)


def test_decode_accepts_an_int_for_a_double_and_an_int_for_an_enum() -> None:
    body = msgpack.packb(
        {"schema_version": 1, "type": "HWResource", "record": {"power_consumption": 0, "latency": 7}}
    )
    rec = decode(body, HWResource)
    assert rec.power_consumption == 0.0 and rec.latency == 7.0


def _body(**kw: Any) -> bytes:
    out: bytes = msgpack.packb(kw, use_bin_type=True)
    return out


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        (b"", "body", "not a valid msgpack message"),
        (b"\xc1", "body", "not a valid msgpack message"),
        (_body(schema_version=1, type="UserInput", record={})[:-3], "body", "not a valid msgpack message"),
        (
            _body(schema_version=1, type="UserInput", record={}) + b"\x00",
            "body",
            "not a valid msgpack message",
        ),
        (msgpack.packb([1, 2]), "body", "must be a map, got list"),
        (msgpack.packb("x"), "body", "must be a map"),
        (msgpack.packb({1: 2}), "body", "not a valid msgpack message"),  # int keys refused
        (msgpack.packb(msgpack.ExtType(5, b"x")), "body", "extension type 5 is not allowed"),
        (_body(type="UserInput", record={}), "schema_version", "is required"),
        (
            _body(schema_version="1", type="UserInput", record={}),
            "schema_version",
            "must be an integer, got str",
        ),
        (_body(schema_version=True, type="UserInput", record={}), "schema_version", "must be an integer"),
        (_body(schema_version=1.0, type="UserInput", record={}), "schema_version", "must be an integer"),
        (_body(schema_version=2, type="UserInput", record={}), "schema_version", "must be <= 1"),
        (_body(schema_version=0, type="UserInput", record={}), "schema_version", "must be >= 1"),
        (_body(schema_version=1, record={}), "type", "is required"),
        (_body(schema_version=1, type=3, record={}), "type", "must be a string"),
        (_body(schema_version=1, type="Nope", record={}), "type", "unknown message type, got 'Nope'"),
        (_body(schema_version=1, type="UserInput"), "record", "is required"),
        (_body(schema_version=1, type="UserInput", record=[1]), "record", "must be a map, got list"),
        (_body(schema_version=1, type="UserInput", record={b"k": 1}), "record.b'k'", "keys must be strings"),
        (
            _body(schema_version=1, type="UserInput", record={"minimum_samples": -1}),
            "record.minimum_samples",
            "must be >= 0, got -1",
        ),
        (
            _body(schema_version=1, type="UserInput", record={"minimum_samples": "5"}),
            "record.minimum_samples",
            "must be an integer, got str '5'",
        ),
        (
            _body(schema_version=1, type="CO2Footprint", record={"carbon_intensity": float("nan")}),
            "record.carbon_intensity",
            "finite",
        ),
        (
            _body(schema_version=1, type="NodeStatus", record={"node_status": 9}),
            "record.node_status",
            "must be one of",
        ),
        (
            _body(
                schema_version=1, type="UserInput", record={"task_id": {"problem_id": 0, "iteration_id": 1}}
            ),
            "record.task_id.problem_id",
            "must be >= 1, got 0",
        ),
        (
            _body(schema_version=1, type="UserInput", record={"extra_data": b"\x01"}),
            "record.extra_data",
            "must be empty or msgpack bytes of a map",
        ),
        (
            _body(schema_version=1, type="UserInput", record={"extra_data": "{}"}),
            "record.extra_data",
            "must be bytes, got str",
        ),
        (
            _body(
                schema_version=1, type="UserInput", record={"inputs": ["a" * (limits.MAX_STRING_CHARS + 1)]}
            ),
            "record.inputs[0]",
            "must have at most 65536 characters",
        ),
    ],
)
def test_decode_errors_name_the_field(data: bytes, field: str, text: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.field == field, str(info.value)
    assert text in str(info.value)
    assert str(info.value).startswith(f"{field}: ")


def test_decode_non_bytes_and_expected_type() -> None:
    with pytest.raises(DecodeError, match="body: must be bytes"):
        decode("text")  # type: ignore[call-overload]
    data = encode(RequestType(node_id=1))
    assert decode(bytearray(data), RequestType) == RequestType(node_id=1)
    assert decode(memoryview(data)) == RequestType(node_id=1)
    assert decode(data, Record) == RequestType(node_id=1)  # the base class matches any type
    with pytest.raises(DecodeError) as info:
        decode(data, ResponseType)
    assert info.value.field == "type"
    assert "must be ResponseType, got 'RequestType'" in str(info.value)


def test_message_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = MLModel(raw_model=b"\0" * 4096)
    data = encode(rec)
    monkeypatch.setattr(limits, "MAX_MESSAGE_BYTES", len(data) - 1)
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.field == "body"
    assert f"at most {len(data) - 1} bytes, got {len(data)}" in str(info.value)
    with pytest.raises(MessageError) as info2:
        encode(rec)
    assert info2.value.field == "body"
    with pytest.raises(DecodeError, match="body: must be at most"):
        decode_task(data)


def test_encode_rejects_unregistered_types() -> None:
    class Custom(UserInput):
        pass

    with pytest.raises(MessageError) as info:
        encode(Custom())
    assert info.value.field == "type"


def test_encode_names_the_field_msgpack_cannot_carry() -> None:
    with pytest.raises(MessageError) as info:
        UserInput(modality="ok", problem_definition="bad \ud800 surrogate")
    assert info.value.field == "UserInput.problem_definition"
    assert "must be valid unicode text" in str(info.value)
    rec = UserInput()
    rec.inputs.append("\udfff")  # in-place mutation is not validated until encode
    with pytest.raises(MessageError) as info:
        encode(rec)
    assert info.value.field == "UserInput.inputs[0]"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"later": {1, 2}}, "UserInput.later"),
        ({"later": {"a": [1, object()]}}, "UserInput.later.a[1]"),
        ({"later": {3: "int key"}}, "UserInput.later"),
        ({"later": 2**64}, "UserInput.later"),
    ]
    for extra, field in cases:
        with pytest.raises(MessageError) as info:
            encode(UserInput(**extra))
        assert info.value.field == field


def test_in_place_list_mutation_is_caught_on_encode() -> None:
    rec = MLModelMetadata()
    rec.keywords.append(42)  # type: ignore[arg-type]  # bypasses assignment validation
    with pytest.raises(MessageError) as info:
        encode(rec)
    assert info.value.field == "MLModelMetadata.keywords[0]"


def test_deeply_nested_unknown_fields_are_bounded() -> None:
    value: Any = 1
    for _ in range(limits.MAX_NESTING_DEPTH + 5):
        value = [value]
    body = _body(schema_version=1, type="AppRequirements", record={"deep": value})
    with pytest.raises(DecodeError) as info:
        decode(body)
    assert info.value.field.startswith("record.deep[0]")
    assert "must nest at most" in str(info.value)
    nested: Any = {}
    for _ in range(limits.MAX_NESTING_DEPTH + 5):
        nested = {"a": nested}
    rec = AppRequirements(extra_data=msgpack.packb(nested))  # bytes stay opaque on the wire
    assert decode(encode(rec)) == rec
    with pytest.raises(MessageError, match="must nest at most"):
        to_json_dict(rec)


# -- JSON views --------------------------------------------------------------------------------


def test_json_view_shapes() -> None:
    ns = NodeStatus(
        node_status=Status.IDLE,
        error_code=ErrorCode.INTERNAL_ERROR,
        task_id=TaskId(problem_id=2, iteration_id=3),
    )
    view = to_json_dict(ns)
    assert view["node_status"] == "IDLE"
    assert view["task_status"] == "WAITING"
    assert view["error_code"] == "INTERNAL_ERROR"
    assert view["task_id"] == {"problem_id": 2, "iteration_id": 3}
    assert to_json_dict(NodeControl(cmd_task=CmdTask.CMD_PREEMPT_TASK))["cmd_task"] == "CMD_PREEMPT_TASK"

    ml = MLModel(raw_model=b"\x00\x01", input_batch=[b"ab", b""], model="resnet")
    ml.update_extra(units={"latency": "s"}, blob=b"\xff")
    view = to_json_dict(ml)
    assert view["raw_model"] == base64.b64encode(b"\x00\x01").decode()
    assert view["input_batch"] == ["YWI=", ""]
    assert view["extra_data"] == {"units": {"latency": "s"}, "blob": "/w=="}
    assert view["task_id"] is None
    assert to_json_dict(TaskId(problem_id=7, iteration_id=1)) == {"problem_id": 7, "iteration_id": 1}

    weird = CO2Footprint(later={"x": b"\x01", "f": float("inf")})
    weird.set_extra({"ratio": float("nan")})
    view = to_json_dict(weird)
    assert view["later"] == {"x": "AQ==", "f": "Infinity"}
    assert view["extra_data"] == {"ratio": "NaN"}
    json.dumps(view, allow_nan=False)


def test_from_json_dict_accepts_the_rest_user_input_body() -> None:
    body = {
        "modality": "video",
        "problem_short_description": "Classify cars",
        "problem_definition": "classification",
        "inputs": "video  frames",
        "outputs": ["car", "class"],
        "minimum_samples": 1,
        "maximum_samples": 3,
        "optimize_carbon_footprint_manual": False,
        "previous_iteration": 0,
        "desired_carbon_footprint": 0,  # JSON int for a double
        "geo_location_continent": None,  # null = default
        "extra_data": {"goal": "image-classification", "num_outputs": 2, "model_restrains": []},
        "type": "Transformers",  # unknown top-level keys are ignored
    }
    ui = from_json_dict(UserInput, body)
    assert ui.inputs == ["video", "frames"] and ui.outputs == ["car", "class"]
    assert ui.desired_carbon_footprint == 0.0 and ui.geo_location_continent == ""
    assert ui.get_extra() == {"goal": "image-classification", "num_outputs": 2, "model_restrains": []}
    assert ui.model_extra == {}
    assert ui.task_id is None and ui.geo_location_region == ""
    assert from_json_dict(UserInput, {}) == UserInput()
    # upstream stores extra_data as JSON text; accept it too
    assert from_json_dict(UserInput, {"extra_data": '{"a": 1}'}).get_extra() == {"a": 1}
    assert from_json_dict(UserInput, {"extra_data": ""}).extra_data == b""
    assert from_json_dict(UserInput, {"task_id": "3.4"}).task_id == TaskId(problem_id=3, iteration_id=4)


def test_from_json_dict_enums_by_name_or_int() -> None:
    assert from_json_dict(NodeStatus, {"node_status": "RUNNING"}).node_status is Status.RUNNING
    assert from_json_dict(NodeStatus, {"node_status": 3}).node_status is Status.RUNNING
    assert from_json_dict(ResponseType, {"err_code": "INTERNAL_ERROR"}).err_code is ErrorCode.INTERNAL_ERROR
    with pytest.raises(MessageError) as info:
        from_json_dict(NodeStatus, {"node_status": "BUSY"})
    assert info.value.field == "NodeStatus.node_status"
    assert "INACTIVE, INITIALIZING" in str(info.value)


@pytest.mark.parametrize(
    ("cls", "body", "field"),
    [
        (UserInput, {"minimum_samples": "3"}, "UserInput.minimum_samples"),
        (UserInput, {"minimum_samples": -1}, "UserInput.minimum_samples"),
        (UserInput, {"inputs": [1, 2]}, "UserInput.inputs[0]"),
        (UserInput, {"extra_data": [1]}, "UserInput.extra_data"),
        (UserInput, {"extra_data": "[1]"}, "UserInput.extra_data"),
        (UserInput, {"extra_data": "{not json"}, "UserInput.extra_data"),
        (UserInput, {"task_id": {"problem_id": 0, "iteration_id": 1}}, "UserInput.task_id.problem_id"),
        (UserInput, {"task_id": "x"}, "TaskId"),
        (MLModel, {"raw_model": "not base64!"}, "MLModel.raw_model"),
        (MLModel, {"input_batch": ["YWI=", "%%"]}, "MLModel.input_batch[1]"),
        (HWResource, {"latency": "1.0"}, "HWResource.latency"),
        (TaskId, {"problem_id": 1}, "TaskId.iteration_id"),
    ],
)
def test_from_json_dict_errors_name_the_field(cls: type[Record], body: dict[str, Any], field: str) -> None:
    with pytest.raises(MessageError) as info:
        from_json_dict(cls, body)
    assert info.value.field == field, str(info.value)


def test_from_json_dict_rejects_non_objects() -> None:
    with pytest.raises(MessageError) as info:
        from_json_dict(UserInput, ["modality"])  # type: ignore[arg-type]
    assert info.value.field == "UserInput"


# -- stage envelopes ---------------------------------------------------------------------------


TID = TaskId(problem_id=3, iteration_id=2)


def _pipeline_envelope() -> TaskEnvelope:
    env = TaskEnvelope("user_input", TID, UserInput(modality="image", task_id=TID))
    env = env.next("ml_model_metadata", MLModelMetadata(ml_model_metadata=["image-classification"]))
    env = env.next("app_requirements", AppRequirements(app_requirements=["fast"]))
    env = env.next(
        "hw_constraints", HWConstraints(max_memory_footprint=100, hardware_required=["PIM_AI_1chip"])
    )
    env.baselines["ml_model"] = MLModel(model="baseline", task_id=TaskId(problem_id=3, iteration_id=1))
    return env.next("ml_model", MLModel(model="resnet18", target_latency=0.02))


def test_envelope_next_and_records() -> None:
    env = _pipeline_envelope()
    assert env.kind == "ml_model" and env.task_id == TID
    assert list(env.context) == ["user_input", "ml_model_metadata", "app_requirements", "hw_constraints"]
    assert list(env.records()) == [*env.context, "ml_model"]
    assert env.records()["ml_model"] is env.record
    assert all(getattr(r, "task_id", None) == TID for r in env.records().values())  # stamped
    baseline = env.baselines["ml_model"]
    assert isinstance(baseline, MLModel)
    assert baseline.task_id == TaskId(problem_id=3, iteration_id=1)  # left alone


def test_task_round_trip_and_body_layout() -> None:
    env = _pipeline_envelope()
    data = encode_task(env)
    assert decode_task(data) == env
    body = msgpack.unpackb(data, raw=False)
    assert body["schema_version"] == 1
    assert body["type"] == "MLModel" and body["kind"] == "ml_model"
    assert body["task_id"] == {"problem_id": 3, "iteration_id": 2}
    assert set(body["context"]) == {"user_input", "ml_model_metadata", "app_requirements", "hw_constraints"}
    assert body["context"]["hw_constraints"]["max_memory_footprint"] == 100
    assert set(body["baselines"]) == {"ml_model"}


@st.composite
def envelopes(draw: st.DrawFn) -> TaskEnvelope:
    tid = draw(TASK_IDS)
    depth = draw(st.integers(0, len(PIPELINE)))
    kinds = list(RECORD_KINDS[: depth + 1])
    recs: dict[str, Any] = {k: draw(records_of(RECORD_TYPES[k])) for k in kinds}
    for rec in recs.values():
        rec.task_id = tid if draw(st.booleans()) else None  # None is stamped by the envelope
    baselines = {
        k: draw(records_of(RECORD_TYPES[k]))
        for k in draw(st.lists(st.sampled_from(BASELINE_KINDS), unique=True))
    }
    kind = kinds[-1]
    context = {k: recs[k] for k in kinds[:-1]}
    return TaskEnvelope(kind, tid, recs[kind], context, baselines)


@given(envelopes())
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)
def test_task_round_trip_property(env: TaskEnvelope) -> None:
    back = decode_task(encode_task(env))
    assert back == env
    assert all(type(back.records()[k]) is RECORD_TYPES[k] for k in back.records())


def test_envelope_invariants() -> None:
    ui = UserInput(task_id=TID)
    other = TaskId(problem_id=9, iteration_id=9)
    cases: list[tuple[Any, str]] = [
        (lambda: TaskEnvelope("user_input", TID, UserInput(task_id=other)), "record.task_id"),
        (lambda: TaskEnvelope("nope", TID, ui), "kind"),
        (lambda: TaskEnvelope("ml_model", TID, ui), "record"),
        (lambda: TaskEnvelope("user_input", "3.2", ui), "task_id"),  # type: ignore[arg-type]
        (
            lambda: TaskEnvelope("ml_model", TID, MLModel(), {"hw_resources": MLModel()}),
            "context.hw_resources",
        ),
        (lambda: TaskEnvelope("ml_model", TID, MLModel(), {"ml_model": MLModel()}), "context.ml_model"),
        (lambda: TaskEnvelope("ml_model", TID, MLModel(), {"bogus": ui}), "context.bogus"),
        (
            lambda: TaskEnvelope("ml_model", TID, MLModel(), {"user_input": UserInput(task_id=other)}),
            "context.user_input.task_id",
        ),
        (lambda: TaskEnvelope("ml_model", TID, MLModel(), {}, {"user_input": ui}), "baselines.user_input"),
        (
            lambda: TaskEnvelope("ml_model", TID, MLModel(), {}, {"ml_model": HWResource()}),
            "baselines.ml_model",
        ),
    ]
    for make, field in cases:
        with pytest.raises(MessageError) as info:
            make()
        assert info.value.field == field, str(info.value)


def test_encode_task_rechecks_a_mutated_envelope() -> None:
    env = TaskEnvelope("user_input", TID, UserInput())
    assert isinstance(env.record, UserInput)
    assert env.record.task_id == TID  # stamped in place
    env.record.task_id = TaskId(problem_id=1, iteration_id=1)
    with pytest.raises(MessageError) as info:
        encode_task(env)
    assert info.value.field == "record.task_id"


def _task_body(**overrides: Any) -> bytes:
    body = msgpack.unpackb(encode_task(_pipeline_envelope()), raw=False)
    for path, value in overrides.items():
        target = body
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[key]
        if value is _DROP:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    out: bytes = msgpack.packb(body, use_bin_type=True)
    return out


_DROP = object()


@pytest.mark.parametrize(
    ("overrides", "field", "text"),
    [
        ({"kind": "nope"}, "kind", "must be one of"),
        ({"kind": _DROP}, "kind", "is required"),
        ({"type": "HWResource"}, "type", "must be MLModel for kind 'ml_model'"),
        ({"task_id": _DROP}, "task_id", "is required"),
        ({"task_id": None}, "task_id", "must be a map, got None"),
        ({"task_id__problem_id": 0}, "task_id.problem_id", "must be >= 1"),
        ({"record__task_id": None}, "record.task_id", "must equal the envelope task_id 3.2, got None"),
        ({"record__task_id": {"problem_id": 3, "iteration_id": 1}}, "record.task_id", "got 3.1"),
        ({"record__target_latency": "fast"}, "record.target_latency", "must be a number"),
        (
            {"context__ml_model_metadata__keywords": [1]},
            "context.ml_model_metadata.keywords[0]",
            "must be a string",
        ),
        ({"context__user_input__task_id": None}, "context.user_input.task_id", "must equal the envelope"),
        ({"context__bogus": {}}, "context.bogus", "must be one of"),
        ({"context": []}, "context", "must be a map"),
        ({"baselines__user_input": {}}, "baselines.user_input", "must be one of"),
        (
            {"baselines__ml_model__target_latency": float("inf")},
            "baselines.ml_model.target_latency",
            "finite",
        ),
        ({"schema_version": 7}, "schema_version", "must be <= 1"),
    ],
)
def test_decode_task_errors_name_the_field(overrides: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_task(_task_body(**overrides))
    assert info.value.field == field, str(info.value)
    assert text in str(info.value)


def test_decode_task_context_error_path_for_hw_resources() -> None:
    env = _pipeline_envelope().next("hw_resources", HWResource(latency=0.1))
    body = msgpack.unpackb(encode_task(env), raw=False)
    body["context"]["ml_model"]["target_latency"] = float("nan")
    with pytest.raises(DecodeError) as info:
        decode_task(msgpack.packb(body, use_bin_type=True))
    assert info.value.field == "context.ml_model.target_latency"


def test_decode_task_tolerates_missing_groups_and_unknown_keys() -> None:
    body = msgpack.unpackb(encode_task(TaskEnvelope("user_input", TID, UserInput())), raw=False)
    del body["context"], body["baselines"]
    body["routing_hint"] = "x"
    env = decode_task(msgpack.packb(body, use_bin_type=True))
    assert env.context == {} and env.baselines == {}


def test_standalone_and_stage_bodies_are_not_interchangeable() -> None:
    with pytest.raises(DecodeError) as info:
        decode_task(encode(UserInput(task_id=TID)))
    assert info.value.field == "kind"
    # a stage body has a "type" and a "record", so decode() reads its record
    assert decode(encode_task(_pipeline_envelope())) == _pipeline_envelope().record


# -- robustness: nothing but DecodeError on arbitrary input ------------------------------------


def _decode_only_raises_decode_errors(data: bytes) -> None:
    for fn in (decode, decode_task):
        with contextlib.suppress(DecodeError):
            fn(data)


@given(st.binary(max_size=512))
@settings(max_examples=300, deadline=None)
def test_decode_arbitrary_bytes(data: bytes) -> None:
    _decode_only_raises_decode_errors(data)


ANY_KEY = st.text(max_size=12) | st.sampled_from(
    [
        "schema_version",
        "type",
        "record",
        "kind",
        "task_id",
        "context",
        "baselines",
        "__class__",
        "model_config",
    ]
)
JUNK = st.recursive(
    SCALARS | st.floats(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_KEY, inner, max_size=5),
    max_leaves=20,
)


@st.composite
def body_like(draw: st.DrawFn) -> bytes:
    """Structures shaped like bodies, with junk in every slot, so decoding gets past the header."""
    cls = draw(st.sampled_from(list(MESSAGE_TYPES.values())))
    field_names = list(cls.model_fields)
    record = draw(
        st.dictionaries(
            st.sampled_from(field_names) | ANY_KEY, JUNK | st.sampled_from([0, -1, 2**32, ""]), max_size=6
        )
    )
    kind = draw(st.sampled_from([*RECORD_KINDS, "x"]))
    group = st.dictionaries(st.sampled_from([*RECORD_KINDS, "x"]), st.just(record) | JUNK, max_size=3)
    body = {
        "schema_version": draw(st.sampled_from([1, 1, 1, 0, 2, "1", None, True])),
        "type": draw(st.sampled_from([cls.__name__, RECORD_TYPES[kind].__name__ if kind != "x" else "x"])),
        "kind": kind,
        "task_id": draw(st.just({"problem_id": 1, "iteration_id": 1}) | JUNK),
        "record": record,
        "context": draw(group | JUNK),
        "baselines": draw(group),
    }
    drop = draw(st.lists(st.sampled_from(list(body)), max_size=2))
    for key in drop:
        body.pop(key, None)
    out: bytes = msgpack.packb(body, use_bin_type=True)
    return out


@given(body_like())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_decode_arbitrary_msgpack_structures(data: bytes) -> None:
    _decode_only_raises_decode_errors(data)


@given(JUNK)
@settings(max_examples=200, deadline=None)
def test_decode_arbitrary_msgpack_values(value: Any) -> None:
    _decode_only_raises_decode_errors(msgpack.packb(value, use_bin_type=True))


@given(st.dictionaries(ANY_KEY, JUNK, max_size=6))
@settings(max_examples=200, deadline=None)
def test_from_json_dict_arbitrary_objects(d: dict[str, Any]) -> None:
    for cls in (UserInput, MLModel, NodeStatus, TaskId):
        try:
            rec = from_json_dict(cls, d)
        except MessageError:
            continue
        assert type(rec) is cls
