"""Fuzzing the message decoder: whatever bytes arrive, ``decode``/``decode_task`` either
return a valid record or raise ``MessageError`` (``DecodeError``) naming the field. Never another
exception type, never a crash.

Every strategy below is one class of hostile input from the issue: random bytes, truncated
msgpack, wrong types, missing fields, huge strings and arrays, wrong schema versions, NaN/inf,
negative ids. Runs are derandomized (the same cases on every run) and each test counts the cases
it actually executed, so the 10 000-case total is asserted, not assumed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sustainml.messages import (
    SCHEMA_VERSION,
    DecodeError,
    MessageError,
    MLModel,
    MLModelMetadata,
    Record,
    TaskEnvelope,
    TaskId,
    UserInput,
    decode,
    decode_task,
    encode,
    encode_task,
    limits,
)
from sustainml.messages.types import MESSAGE_TYPES, RECORD_TYPES

# Cases per test; the sum is checked in test_total_case_budget below.
CASES: dict[str, int] = {
    "random_bytes": 3500,
    "truncated": 2000,
    "mutated_stage": 2000,
    "mutated_standalone": 1200,
    "missing_fields": 800,
    "schema_versions": 400,
    "numbers": 800,
    "huge": 120,
    "valid_round_trip": 400,
}

_executed: dict[str, int] = {}


def fuzz_settings(name: str) -> settings:
    return settings(
        max_examples=CASES[name],
        derandomize=True,  # reproducible: the same cases on every run and in CI
        deadline=None,  # the machine is shared; a slow example is not a bug
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def check_outcome(fn: Callable[[bytes], object], data: bytes) -> object | None:
    """The fuzzing oracle: a valid result or a MessageError with a non-empty field and message."""
    try:
        result = fn(data)
    except MessageError as exc:
        assert isinstance(exc, DecodeError), f"decode raised a non-DecodeError MessageError: {exc!r}"
        assert exc.field, f"error without a field: {exc!r}"
        assert exc.message, f"error without a message: {exc!r}"
        assert len(str(exc)) < 20_000, "error text must stay bounded whatever the input"
        return None
    # Anything else propagates and fails the test with its traceback.
    if fn is decode_task:
        assert isinstance(result, TaskEnvelope)
        assert getattr(result.record, "task_id", None) == result.task_id
    else:
        assert isinstance(result, Record)
    return result


def _count(name: str) -> None:
    _executed[name] = _executed.get(name, 0) + 1


def _decoders() -> st.SearchStrategy[Callable[[bytes], object]]:
    return st.sampled_from([decode, decode_task])


# ------------------------------------------------------------------ valid material to mutate
def _task_body(problem: int = 3, iteration: int = 1) -> dict[str, Any]:
    tid = TaskId(problem_id=problem, iteration_id=iteration)
    ui = UserInput(problem_short_description="classify photos of welds", modality="image", task_id=tid)
    ui.update_extra(goal="image-classification", num_outputs=2)
    meta = MLModelMetadata(
        keywords=["weld", "photo"], ml_model_metadata=["image-classification"], task_id=tid
    )
    env = TaskEnvelope(kind="ml_model_metadata", task_id=tid, record=meta, context={"user_input": ui})
    body = msgpack.unpackb(encode_task(env), raw=False)
    assert isinstance(body, dict)
    return body


def _standalone_body() -> dict[str, Any]:
    body = msgpack.unpackb(encode(UserInput(problem_short_description="x", inputs=["a", "b"])), raw=False)
    assert isinstance(body, dict)
    return body


VALID_TASK = encode_task(
    TaskEnvelope(
        kind="ml_model",
        task_id=TaskId(problem_id=7, iteration_id=2),
        record=MLModel(model="resnet18", model_path="/tmp/x.onnx", raw_model=b"\x08\x07", target_latency=0.1),
        context={
            "user_input": UserInput(problem_short_description="defects"),
            "ml_model_metadata": MLModelMetadata(keywords=["a"]),
        },
        baselines={"ml_model": MLModel(task_id=TaskId(problem_id=7, iteration_id=1))},
    )
)
VALID_STANDALONE = encode(
    UserInput(problem_short_description="x" * 40, extra_data=msgpack.packb({"k": [1, 2]}))
)

# Any msgpack-representable value, including the awkward ones: NaN/inf, negative and 64-bit
# integers, bytes, nested containers, non-str map keys.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), -1, 0, -(2**63), 2**64 - 1, 2**32]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=10), children, max_size=5),
        st.dictionaries(st.integers(-5, 5), children, max_size=3),  # non-str keys
    ),
    max_leaves=10,  # enough to reach nested shapes; more only slows generation
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into nested dicts (the places a mutation can hit)."""
    out: list[tuple[Any, ...]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    return out


def _set(obj: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool) -> None:
    for k in path[:-1]:
        obj = obj[k]
    if delete:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


def _pack(body: Any) -> bytes:
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return data


# ------------------------------------------------------------------ the fuzz targets
def _random_bytes() -> None:
    @fuzz_settings("random_bytes")
    @given(fn=_decoders(), data=st.binary(max_size=512))
    def run(fn: Callable[[bytes], object], data: bytes) -> None:
        _count("random_bytes")
        check_outcome(fn, data)

    run()


def _truncated() -> None:
    @fuzz_settings("truncated")
    @given(
        fn=_decoders(),
        source=st.sampled_from([VALID_TASK, VALID_STANDALONE]),
        cut=st.integers(min_value=0, max_value=len(VALID_TASK)),
        flip=st.one_of(st.none(), st.tuples(st.integers(0, len(VALID_TASK) - 1), st.integers(0, 255))),
    )
    def run(fn: Callable[[bytes], object], source: bytes, cut: int, flip: tuple[int, int] | None) -> None:
        _count("truncated")
        data = bytearray(source[:cut])
        if flip is not None and data:
            data[flip[0] % len(data)] = flip[1]
        check_outcome(fn, bytes(data))

    run()


def _mutated(name: str, make_body: Callable[[], dict[str, Any]], fn: Callable[[bytes], object]) -> None:
    paths = _paths(make_body())

    @fuzz_settings(name)
    @given(
        mutations=st.lists(st.tuples(st.sampled_from(paths), values, st.booleans()), min_size=1, max_size=3)
    )
    def run(mutations: list[tuple[tuple[Any, ...], Any, bool]]) -> None:
        _count(name)
        body = make_body()
        for path, value, delete in mutations:
            try:
                _set(body, path, value, delete)
            except (KeyError, TypeError, IndexError):
                continue  # an earlier mutation removed or replaced the parent: skip this one
        try:
            data = _pack(body)
        except (TypeError, ValueError, OverflowError):
            assume(False)  # not representable as msgpack: no sender can produce it
            return
        check_outcome(fn, data)

    run()


def _missing_fields() -> None:
    task_paths = _paths(_task_body())

    @fuzz_settings("missing_fields")
    @given(drop=st.lists(st.sampled_from(task_paths), min_size=1, max_size=4, unique=True))
    def run(drop: list[tuple[Any, ...]]) -> None:
        _count("missing_fields")
        body = _task_body()
        for path in drop:
            try:
                _set(body, path, None, True)
            except (KeyError, TypeError):
                continue
        env = check_outcome(decode_task, _pack(body))
        if env is not None:
            # Only optional parts may be missing from a body that still decodes.
            top = {p[0] for p in drop if len(p) == 1}
            assert not top & {"schema_version", "kind", "type", "task_id", "record"}

    run()


def _schema_versions() -> None:
    @fuzz_settings("schema_versions")
    @given(fn=_decoders(), version=values)
    def run(fn: Callable[[bytes], object], version: Any) -> None:
        _count("schema_versions")
        body = _task_body() if fn is decode_task else _standalone_body()
        body["schema_version"] = version
        try:
            data = _pack(body)
        except (TypeError, ValueError, OverflowError):
            assume(False)
            return
        result = check_outcome(fn, data)
        ok_version = type(version) is int and 1 <= version <= SCHEMA_VERSION
        assert (result is not None) == ok_version, f"schema_version {version!r}"

    run()


NUMERIC_FIELDS = [
    ("task_id", "problem_id"),
    ("task_id", "iteration_id"),
    ("record", "task_id", "problem_id"),
    ("context", "user_input", "minimum_samples"),
    ("context", "user_input", "maximum_samples"),
    ("context", "user_input", "previous_iteration"),
    ("context", "user_input", "desired_carbon_footprint"),
]


def _numbers() -> None:
    @fuzz_settings("numbers")
    @given(
        path=st.sampled_from(NUMERIC_FIELDS),
        value=st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(min_value=-(2**63), max_value=2**64 - 1),
            st.sampled_from([float("nan"), float("inf"), float("-inf"), -1, 0, -(2**31), 2**32]),
        ),
    )
    def run(path: tuple[str, ...], value: float | int) -> None:
        _count("numbers")
        body = _task_body()
        _set(body, path, value, False)
        env = check_outcome(decode_task, _pack(body))
        if isinstance(value, float) and not math.isfinite(value):
            assert env is None, f"{path}={value} must be rejected"
        if path[-1] in ("problem_id", "iteration_id") and (not isinstance(value, int) or value < 1):
            assert env is None, f"{path}={value!r} must be rejected"
        if path[-1] in ("minimum_samples", "maximum_samples") and isinstance(value, int) and value < 0:
            assert env is None, f"{path}={value!r} must be rejected"

    run()


DEEP_PLACEHOLDER = b"<deep nesting goes here>"


def _huge() -> None:
    # Each case builds a body around one oversized value; fewer cases, because each is megabytes.
    @fuzz_settings("huge")
    @given(
        where=st.sampled_from(
            [
                ("record", "keywords"),
                ("context", "user_input", "problem_short_description"),
                ("context", "user_input", "inputs"),
                ("context", "user_input", "extra_data"),
                ("record", "extra_data"),
                ("record", "unknown_field"),
            ]
        ),
        shape=st.sampled_from(["long_str", "many_items", "big_bytes", "deep"]),
        factor=st.sampled_from([1, 2, 16]),
    )
    def run(where: tuple[str, ...], shape: str, factor: int) -> None:
        _count("huge")
        body = _task_body()
        if shape == "long_str":
            value: Any = "x" * (limits.MAX_STRING_CHARS + factor)
        elif shape == "many_items":
            value = ["k"] * (limits.MAX_LIST_ITEMS * factor + 1)
        elif shape == "big_bytes":
            value = b"\x00" * (limits.MAX_EXTRA_DATA_BYTES + factor)
        else:
            value = DEEP_PLACEHOLDER  # spliced below: msgpack's packer refuses such depth itself
        _set(body, where, value, False)
        data = _pack(body)
        if shape == "deep":
            depth = limits.MAX_NESTING_DEPTH * factor + 1
            data = data.replace(_pack(DEEP_PLACEHOLDER), b"\x91" * depth + b"\xc0")
        env = check_outcome(decode_task, data)
        if where[-1] == "unknown_field" and shape != "deep":
            # Unknown fields are kept for forward compatibility; only the whole-body size and the
            # nesting depth bound them (typed fields have their own limits).
            assert isinstance(env, TaskEnvelope)
            assert len(str((env.record.model_extra or {})["unknown_field"])) > 1000
        else:
            assert env is None, f"{where} with {shape}x{factor} must be rejected"

    run()


def _valid_round_trip() -> None:
    texts = st.text(max_size=50)

    @fuzz_settings("valid_round_trip")
    @given(
        problem=st.integers(1, 2**32 - 1),
        iteration=st.integers(1, 2**32 - 1),
        description=texts,
        keywords=st.lists(texts, max_size=5),
        extra=st.dictionaries(
            st.text(max_size=8), st.one_of(st.integers(-(2**63), 2**63 - 1), texts), max_size=4
        ),
    )
    def run(
        problem: int, iteration: int, description: str, keywords: list[str], extra: dict[str, Any]
    ) -> None:
        _count("valid_round_trip")
        assume(all(c < "\ud800" or c > "\udfff" for c in description + "".join(keywords)))
        tid = TaskId(problem_id=problem, iteration_id=iteration)
        ui = UserInput(problem_short_description=description, task_id=tid)
        ui.set_extra(extra)
        meta = MLModelMetadata(keywords=keywords, task_id=tid)
        env = TaskEnvelope("ml_model_metadata", tid, meta, context={"user_input": ui})
        back = check_outcome(decode_task, encode_task(env))
        assert isinstance(back, TaskEnvelope)
        assert back.records() == env.records()
        assert decode(encode(ui), UserInput) == ui

    run()


# ------------------------------------------------------------------ tests
def test_random_bytes() -> None:
    _random_bytes()
    assert _executed["random_bytes"] >= CASES["random_bytes"]


def test_truncated_and_bit_flipped_msgpack() -> None:
    _truncated()
    assert _executed["truncated"] >= CASES["truncated"]


def test_wrong_types_in_stage_messages() -> None:
    _mutated("mutated_stage", _task_body, decode_task)
    # assume() discards unrepresentable bodies; hypothesis still runs max_examples valid ones.
    assert _executed["mutated_stage"] >= CASES["mutated_stage"]


def test_wrong_types_in_standalone_messages() -> None:
    _mutated("mutated_standalone", _standalone_body, decode)
    assert _executed["mutated_standalone"] >= CASES["mutated_standalone"]


def test_missing_fields() -> None:
    _missing_fields()
    # A small search space: hypothesis stops once it has tried every distinct case.
    assert _executed["missing_fields"] >= 100


def test_schema_versions() -> None:
    _schema_versions()
    assert _executed["schema_versions"] >= CASES["schema_versions"]


def test_nan_inf_and_negative_ids() -> None:
    _numbers()
    assert _executed["numbers"] >= CASES["numbers"]


def test_huge_strings_arrays_and_nesting() -> None:
    _huge()
    # 6 places x 4 shapes x 3 factors = 72 distinct cases; hypothesis stops when all are tried.
    assert _executed["huge"] >= 72


def test_valid_messages_round_trip() -> None:
    _valid_round_trip()
    assert _executed["valid_round_trip"] >= CASES["valid_round_trip"]


def test_every_message_type_is_reachable() -> None:
    # The type registry the fuzzers hit: a decodable body for each of them must round-trip.
    for name, cls in MESSAGE_TYPES.items():
        rec = cls(problem_id=1, iteration_id=1) if cls is TaskId else cls()
        assert type(decode(encode(rec))) is cls, name
    assert set(RECORD_TYPES) >= {"user_input", "ml_model"}


def test_total_case_budget() -> None:
    """The issue asks for at least 10 000 generated inputs: counted, when the whole module ran."""
    assert sum(CASES.values()) >= 10_000
    if set(_executed) != set(CASES):
        pytest.skip(f"only {sorted(_executed)} ran in this session; the total needs the whole module")
    total = sum(_executed.values())
    print(f"decoder fuzzing: {total} generated inputs executed {dict(sorted(_executed.items()))}")
    assert total >= 10_000
