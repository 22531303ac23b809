"""The accessor-style wrappers (``sustainml.compat``): every record type and the service types, the
``extra_data`` encodings, ``get_buffer()`` through ctypes exactly as upstream code reads it, and the
``sustainml_swig`` names."""

from __future__ import annotations

import ctypes
import gc
import json
from typing import Any

import msgpack
import numpy as np
import pytest

from sustainml.compat import ByteVector, RecordWrapper, TaskId, extra_from_any, extra_to_json, unwrap, wrap
from sustainml.compat import records as cr
from sustainml.compat import sustainml_swig as swig
from sustainml.messages import types as t
from sustainml.messages.types import MESSAGE_TYPES, MessageError


def read_like_the_template(vector_owner: Any) -> bytes:
    """The seed template's read of ``extra_data``, verbatim but for the names."""
    buffer = ctypes.c_ubyte * vector_owner.extra_data().size()
    buffer = buffer.from_address(int(vector_owner.extra_data().get_buffer()))
    return np.frombuffer(buffer, dtype=np.uint8).tobytes()


# -------------------------------------------------------------------------------------------------
# coverage of the data model
# -------------------------------------------------------------------------------------------------


def test_every_message_type_has_a_wrapper() -> None:
    wrapped = set(cr.WRAPPERS) | {t.TaskId}
    assert wrapped == set(MESSAGE_TYPES.values())
    for record_cls, wrapper_cls in cr.WRAPPERS.items():
        assert wrapper_cls.__name__ == record_cls.__name__  # the upstream type names
        assert getattr(swig, record_cls.__name__) is wrapper_cls


@pytest.mark.parametrize("wrapper_cls", list(cr.WRAPPERS.values()), ids=lambda c: c.__name__)
def test_every_field_has_an_accessor(wrapper_cls: type[RecordWrapper[Any]]) -> None:
    accessors = {
        name
        for klass in wrapper_cls.__mro__
        for name, value in vars(klass).items()
        if isinstance(value, cr.Accessor)
    }
    assert accessors == set(wrapper_cls.RECORD.model_fields)


def _sample(record_cls: type[t.Record], name: str, accessor: cr.Accessor[Any, Any]) -> tuple[Any, Any]:
    """(value to set through the accessor, what the record then holds)."""
    if record_cls is t.NodeStatus and name == "event":
        return "task", "task"
    if isinstance(accessor, cr.TaskIdField):
        tid = t.TaskId(problem_id=4, iteration_id=2)
        return tid, tid
    if isinstance(accessor, cr.ExtraDataField):
        return b'{"k": [1, 2]}', msgpack.packb({"k": [1, 2]})
    if isinstance(accessor, cr.EnumField):
        enum_cls = type(getattr(record_cls(), name))
        return 1, enum_cls(1)
    if isinstance(accessor, cr.BoolField):
        return True, True
    if isinstance(accessor, cr.FloatField):
        return 3, 3.0  # an int is accepted for a double
    if isinstance(accessor, cr.IntField):
        return 7, 7
    if isinstance(accessor, cr.StrListField):
        return ("a", "b"), ["a", "b"]  # any iterable of strings
    if isinstance(accessor, cr.BytesListField):
        return [b"\x93NUMPY", bytearray(b"x")], [b"\x93NUMPY", b"x"]
    if isinstance(accessor, cr.BytesField):
        return [0, 1, 255], b"\x00\x01\xff"  # a SWIG vector arrives as a list of ints
    assert isinstance(accessor, cr.StrField), accessor
    return "héllo", "héllo"


@pytest.mark.parametrize(
    ("wrapper_cls", "name"),
    [(cls, name) for cls in cr.WRAPPERS.values() for name in cls.RECORD.model_fields],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_every_accessor_writes_through_and_reads_back(
    wrapper_cls: type[RecordWrapper[Any]], name: str
) -> None:
    record = wrapper_cls.RECORD()
    wrapper = wrap(record)
    assert isinstance(wrapper, wrapper_cls) and wrapper.record is record
    accessor = getattr(wrapper_cls, name)
    given, stored = _sample(wrapper_cls.RECORD, name, accessor)
    assert getattr(wrapper, name)(given) is None  # a setter returns nothing
    assert getattr(record, name) == stored
    value = getattr(wrapper, name)()
    if isinstance(accessor, cr.ExtraDataField):
        assert json.loads(value) == {"k": [1, 2]}
    elif isinstance(accessor, cr.TaskIdField):
        assert (value.problem_id(), value.iteration_id()) == (4, 2)
    else:
        assert value == stored


# -------------------------------------------------------------------------------------------------
# setters validate at once, naming the field
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda w: w.max_memory_footprint(-1), "HWConstraints.max_memory_footprint"),
        (lambda w: w.max_memory_footprint("100"), "HWConstraints.max_memory_footprint"),
        (lambda w: w.max_memory_footprint(True), "HWConstraints.max_memory_footprint"),
        (lambda w: w.hardware_required("T4"), "HWConstraints.hardware_required"),
        (lambda w: w.hardware_required([1]), "HWConstraints.hardware_required[0]"),
        (lambda w: w.extra_data(b"[1, 2]"), "HWConstraints.extra_data"),
        (lambda w: w.extra_data(b"not json"), "HWConstraints.extra_data"),
        (lambda w: w.extra_data(b"\x81\xa1"), "HWConstraints.extra_data"),  # truncated msgpack map
        (lambda w: w.extra_data(12), "HWConstraints.extra_data"),
        (lambda w: w.extra_data([300]), "HWConstraints.extra_data"),
    ],
)
def test_a_bad_value_is_refused_naming_the_field(call: Any, field: str) -> None:
    record = t.HWConstraints(max_memory_footprint=5, hardware_required=["T4"])
    with pytest.raises(MessageError) as info:
        call(wrap(record))
    assert info.value.field == field
    assert (record.max_memory_footprint, record.hardware_required, record.extra_data) == (5, ["T4"], b"")


def test_service_types_take_upstream_style_values() -> None:
    res = swig.ResponseType()
    res.success(0)  # a C++ bool from an int
    res.err_code(1)  # "0: No error || 1: Error", as the template writes it
    assert res.record.success is False and res.record.err_code is t.ErrorCode.INTERNAL_ERROR
    res.err_code(swig.ErrorCode.NO_ERROR)
    res.success(True)
    assert res.err_code() is t.ErrorCode.NO_ERROR and res.success() is True
    with pytest.raises(MessageError, match=r"ResponseType\.err_code"):
        res.err_code(7)
    req = wrap(t.RequestType(node_id=2, transaction_id=9, configuration="hardwares"))
    assert (req.node_id(), req.transaction_id(), req.configuration()) == (2, 9, "hardwares")


def test_node_status_is_set_by_name() -> None:
    status = t.NodeStatus()
    w = wrap(status)
    w.node_status(swig.NODE_ERROR)
    w.error_description("out of memory")
    assert status.node_status is t.Status.ERROR and status.error_description == "out of memory"
    assert w.node_status() == swig.Status.NODE_ERROR


def test_attribute_style_assignment_also_writes_through_and_typos_fail() -> None:
    record = t.HWConstraints()
    w = wrap(record)
    w.max_memory_footprint = 64
    assert record.max_memory_footprint == 64
    with pytest.raises(AttributeError):
        w.max_memory_footprnt = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="takes no argument"):
        w.max_memory_footprint(1, 2)  # type: ignore[call-overload]


def test_list_getters_return_the_records_own_list() -> None:
    record = t.HWConstraints(hardware_required=["T4"])
    wrap(record).hardware_required().append("A100")  # as with the SWIG vector reference
    assert record.hardware_required == ["T4", "A100"]


def test_wrap_and_unwrap() -> None:
    record = t.MLModel(model="resnet-18")
    w = wrap(record)
    assert unwrap(w) is record and unwrap(record) is record
    assert wrap(None) is None
    assert w == wrap(record) and w != wrap(t.MLModel(model="other"))
    assert "resnet-18" in repr(w) and "resnet-18" in repr(w.model)
    with pytest.raises(TypeError, match="wraps MLModel"):
        swig.MLModel(t.HWResource())  # type: ignore[arg-type]
    fresh = swig.HWConstraints()
    fresh.max_memory_footprint(3)
    assert isinstance(fresh.record, t.HWConstraints) and fresh.record.max_memory_footprint == 3


# -------------------------------------------------------------------------------------------------
# extra_data: JSON out, JSON or msgpack in, msgpack stored
# -------------------------------------------------------------------------------------------------


def test_extra_data_reads_as_json_through_ctypes_exactly_like_the_template() -> None:
    record = t.UserInput()
    record.set_extra(
        {"hardware_required": "PIM_AI_1chip", "text": "naïve \u00e9 ok \u2013 \U0001f600", "n": 2}
    )
    w = wrap(record)
    raw = read_like_the_template(w)
    assert json.loads(raw.decode("utf-8")) == {
        "hardware_required": "PIM_AI_1chip",
        "text": "naïve \u00e9 ok \u2013 \U0001f600",
        "n": 2,
    }
    assert w.extra_data().size() == len(raw) and bytes(w.extra_data()) == raw


def test_get_buffer_stays_valid_while_the_wrapper_lives() -> None:
    record = t.UserInput()
    record.set_extra({"a": "x" * 1000})
    w = wrap(record)
    address = int(w.extra_data().get_buffer())  # the ByteVector is a temporary here
    size = w.extra_data().size()
    record.set_extra({"b": 1})  # the field changes afterwards
    w.extra_data().get_buffer()
    gc.collect()
    assert json.loads(bytes((ctypes.c_ubyte * size).from_address(address))) == {"a": "x" * 1000}
    assert json.loads(read_like_the_template(w)) == {"b": 1}


def test_empty_extra_data_is_size_zero() -> None:
    w = swig.UserInput()
    assert w.extra_data().size() == 0 and not w.extra_data() and w.extra_data().empty()
    assert isinstance(w.extra_data().get_buffer(), int)  # a zero-size buffer still has an address


@pytest.mark.parametrize(
    "value",
    [
        b'{"hf_token": "x", "n": 1}',
        '{"hf_token": "x", "n": 1}',
        bytearray(b'  {"hf_token": "x", "n": 1}\n'),
        '\ufeff{"hf_token": "x", "n": 1}'.encode(),  # a UTF-8 BOM
        list(b'{"hf_token": "x", "n": 1}'),  # a SWIG vector as a list of ints
        msgpack.packb({"hf_token": "x", "n": 1}),
        {"hf_token": "x", "n": 1},
    ],
    ids=["json-bytes", "json-str", "bytearray", "bom", "int-list", "msgpack", "dict"],
)
def test_extra_data_setter_accepts_json_or_msgpack_and_stores_msgpack(value: Any) -> None:
    record = t.HWConstraints()
    wrap(record).extra_data(value)
    assert msgpack.unpackb(record.extra_data) == {"hf_token": "x", "n": 1}
    assert record.get_extra() == {"hf_token": "x", "n": 1}


@pytest.mark.parametrize("value", [b"", b"  ", "", b"{}", {}])
def test_empty_extra_data_values_store_nothing(value: Any) -> None:
    record = t.HWConstraints(extra_data=msgpack.packb({"old": 1}))
    wrap(record).extra_data(value)
    assert record.extra_data == b""


def test_bytes_values_become_base64_text_for_json_readers() -> None:
    assert json.loads(extra_to_json(msgpack.packb({"blob": b"\x00\x01"}))) == {"blob": "AAE="}
    assert extra_to_json(b"") == b""
    assert extra_from_any(b'{"a": 1}') == msgpack.packb({"a": 1})


def test_byte_vector_is_bytes() -> None:
    v = ByteVector(b"abc")
    assert v == b"abc" and list(v) == [97, 98, 99] and v.size() == 3
    assert bytes((ctypes.c_ubyte * 3).from_address(v.get_buffer())) == b"abc"
    assert v.get_buffer() == v.get_buffer()  # one buffer per vector


def test_raw_model_reads_as_a_byte_vector() -> None:
    record = t.MLModel(raw_model=b"\x08\x01onnx")
    w = wrap(record)
    assert isinstance(w.raw_model(), ByteVector) and w.raw_model() == b"\x08\x01onnx"
    assert w.raw_model() is w.raw_model()


# -------------------------------------------------------------------------------------------------
# task ids
# -------------------------------------------------------------------------------------------------


def test_task_id_bound_to_a_record_reads_and_writes_it() -> None:
    record = t.HWConstraints()
    tid = wrap(record).task_id()
    assert (tid.problem_id(), tid.iteration_id()) == (0, 0)  # upstream's "unset"
    tid.problem_id(5)
    assert record.task_id == t.TaskId(problem_id=5, iteration_id=1)
    tid.iteration_id(3)
    assert record.task_id == t.TaskId(problem_id=5, iteration_id=3)
    other = wrap(t.UserInput())
    other.task_id(tid)
    assert unwrap(other).task_id == t.TaskId(problem_id=5, iteration_id=3)  # type: ignore[union-attr]
    with pytest.raises(MessageError, match="problem_id"):
        tid.problem_id(0)


def test_standalone_task_id() -> None:
    tid = TaskId()
    tid.iteration_id(2)
    assert tid.value == t.TaskId(problem_id=1, iteration_id=2)
    assert wrap(t.TaskId(problem_id=3, iteration_id=4)) == swig.TaskId(t.TaskId(problem_id=3, iteration_id=4))
    assert repr(tid) == "compat.TaskId(1.2)"


# -------------------------------------------------------------------------------------------------
# sustainml_swig names
# -------------------------------------------------------------------------------------------------


def test_upstream_enum_names_carry_our_values() -> None:
    assert swig.Status.NODE_INACTIVE is t.Status.INACTIVE
    assert swig.Status.NODE_INITIALIZING is t.Status.INITIALIZING
    assert swig.Status.NODE_TERMINATING is t.Status.TERMINATING
    assert swig.TaskStatus.TASK_ERROR is t.TaskStatus.ERROR
    assert swig.TaskStatus.TASK_SUCCEEDED is t.TaskStatus.SUCCEEDED
    assert swig.ErrorCode.INTERNAL_ERROR is t.ErrorCode.INTERNAL_ERROR
    assert swig.CmdNode.TERMINATE_NODE is t.CmdNode.CMD_TERMINATE_NODE
    assert swig.CmdTask.PREEMPT_TASK is t.CmdTask.CMD_PREEMPT_TASK
    for namespace in (swig.Status, swig.TaskStatus, swig.ErrorCode, swig.CmdNode, swig.CmdTask):
        for name, member in vars(namespace).items():
            if not name.startswith("_"):
                assert getattr(swig, name) is member  # also at module level, as SWIG exports them
    assert set(swig.__all__) <= set(dir(swig))
