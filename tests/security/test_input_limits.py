"""Every size a user controls is bounded, and breaking a bound gives an error naming the field.

The table in docs/security.md lists the same limits; ``test_docs_list_every_limit`` keeps them in
step."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack
import pytest

from sustainml.messages import (
    DecodeError,
    MessageError,
    MLModel,
    TaskEnvelope,
    TaskId,
    UserInput,
    decode,
    decode_task,
    encode,
    encode_task,
    limits,
)
from sustainml.workers.logic.encoder import dataset_profile

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"
TID = TaskId(problem_id=1, iteration_id=1)


def _err(exc: pytest.ExceptionInfo[MessageError]) -> str:
    return f"{exc.value.field}: {exc.value.message}"


def test_string_and_list_limits_name_the_field() -> None:
    with pytest.raises(MessageError) as e:
        UserInput(problem_short_description="x" * (limits.MAX_STRING_CHARS + 1))
    assert e.value.field == "UserInput.problem_short_description"
    assert str(limits.MAX_STRING_CHARS) in _err(e)
    with pytest.raises(MessageError) as e:
        UserInput(inputs=["a"] * (limits.MAX_LIST_ITEMS + 1))
    assert e.value.field == "UserInput.inputs"
    with pytest.raises(MessageError) as e:
        UserInput(inputs=["a", "b" * (limits.MAX_STRING_CHARS + 1)])
    assert e.value.field == "UserInput.inputs[1]"


def test_extra_data_limit() -> None:
    big = {"blob": b"\x00" * limits.MAX_EXTRA_DATA_BYTES}
    ui = UserInput()
    with pytest.raises(MessageError) as e:
        ui.set_extra(big)
    assert e.value.field == "UserInput.extra_data"
    # received bytes are checked as well, before anything decodes them
    with pytest.raises(MessageError) as e:
        UserInput(extra_data=b"\x80" * (limits.MAX_EXTRA_DATA_BYTES + 1))
    assert e.value.field == "UserInput.extra_data"


def test_raw_model_and_input_batch_limits() -> None:
    with pytest.raises(MessageError) as e:
        MLModel(raw_model=b"\x00" * (limits.MAX_RAW_MODEL_BYTES + 1))
    assert e.value.field == "MLModel.raw_model"
    half = b"\x00" * (limits.MAX_INPUT_BATCH_BYTES // 2 + 1)
    with pytest.raises(MessageError) as e:
        MLModel(input_batch=[half, half])
    assert e.value.field == "MLModel.input_batch"
    assert "in total" in e.value.message
    with pytest.raises(MessageError) as e:
        MLModel(input_batch=[b""] * (limits.MAX_LIST_ITEMS + 1))
    assert e.value.field == "MLModel.input_batch"


def test_whole_message_limit_on_encode_and_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    body = encode(UserInput(problem_short_description="x" * 1000))
    monkeypatch.setattr(limits, "MAX_MESSAGE_BYTES", len(body) - 1)
    with pytest.raises(MessageError) as e:
        encode(UserInput(problem_short_description="x" * 1000))
    assert e.value.field == "body" and "at most" in e.value.message
    with pytest.raises(DecodeError) as d:
        decode(body)
    assert d.value.field == "body" and f"got {len(body)}" in d.value.message


def test_nesting_depth_of_unknown_fields_is_bounded() -> None:
    deep: object = "leaf"
    for _ in range(limits.MAX_NESTING_DEPTH + 2):
        deep = [deep]
    good = msgpack.unpackb(encode_task(TaskEnvelope("user_input", TID, UserInput())), raw=False)
    good["record"]["future_field"] = deep
    with pytest.raises(DecodeError) as e:
        decode_task(msgpack.packb(good))
    assert e.value.field.startswith("record.future_field")
    assert "levels deep" in e.value.message


def test_dataset_size_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    with big.open("wb") as fh:  # sparse: no real disk use
        fh.truncate(dataset_profile.MAX_DATASET_BYTES + 1)
    with pytest.raises(dataset_profile.DatasetError, match="the limit is 64 MiB"):
        dataset_profile.profile_dataset("big.csv", [tmp_path])


def test_dataset_profile_reply_is_bounded(tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"
    cols = dataset_profile.MAX_PROFILE_COLUMNS * 3
    wide.write_text(
        ",".join(f"c{i}" for i in range(cols)) + "\n" + ",".join("x" * 200 for _ in range(cols)) + "\n"
    )
    profile = dataset_profile.profile_dataset("wide.csv", [tmp_path])
    assert len(json.dumps(profile)) <= dataset_profile.MAX_REPLY_CHARS
    assert len(profile["columns"]) <= dataset_profile.MAX_PROFILE_COLUMNS


def test_docs_list_every_limit() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name in (
        "MAX_STRING_CHARS",
        "MAX_LIST_ITEMS",
        "MAX_EXTRA_DATA_BYTES",
        "MAX_RAW_MODEL_BYTES",
        "MAX_INPUT_BATCH_BYTES",
        "MAX_NESTING_DEPTH",
        "MAX_MESSAGE_BYTES",
        "MAX_DATASET_BYTES",
    ):
        assert name in text, f"docs/security.md does not list {name}"
