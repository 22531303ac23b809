"""Dataset profiles (the ``dataset_path`` configuration request): CSV, JSON and Parquet files made in
temporary directories, the profile's figures, and every refusal (missing, outside the allowed
directories, traversal, symlink escape, unsupported, unreadable, too large, malformed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sustainml.config import Settings
from sustainml.messages.types import ErrorCode, RequestType, ResponseType
from sustainml.workers.logic import ml_model_metadata
from sustainml.workers.logic.encoder import dataset_profile
from sustainml.workers.logic.encoder.dataset_profile import (
    DATA_DIRS_ENV,
    DatasetError,
    allowed_dirs,
    profile_dataset,
)

CHURN_CSV = (
    "customer_id,age,plan,monthly_fee,signup_date,churn\n"
    "1,34,basic,9.9,2021-01-03,no\n"
    "2,51,premium,29.9,2020-06-11,yes\n"
    "3,,basic,9.9,2022-02-01,no\n"
    "4,23,pro,19.9,2021-09-15,no\n"
    "5,45,premium,,2019-12-30,yes\n"
)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    monkeypatch.setenv(DATA_DIRS_ENV, str(allowed))
    return allowed


def configure(text: str) -> tuple[ResponseType, Any]:
    res = ResponseType()
    ml_model_metadata.configuration_callback(
        RequestType(node_id=4, transaction_id=3, configuration=text), res
    )
    return res, json.loads(res.configuration)


def refused(path: str, *fragments: str) -> str:
    with pytest.raises(DatasetError) as err:
        profile_dataset(path)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)
    # The same refusal through the node: an error reply, never an exception.
    res, body = configure(f"dataset_path, {path}")
    assert res.success is False and res.err_code == ErrorCode.INTERNAL_ERROR
    assert body == {"error": str(err.value)}
    return str(err.value)


def column(reply: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in reply["columns"] if c["name"] == name)


# -------------------------------------------------------------------------------------------------
# profiles
# -------------------------------------------------------------------------------------------------


def test_csv_profile(data_dir: Path) -> None:
    (data_dir / "customers.csv").write_text(CHURN_CSV)
    res, reply = configure("dataset_path, customers.csv")
    assert res.success is True and res.err_code == ErrorCode.NO_ERROR
    assert {"description", "topic", "profile", "keywords", "applications"} <= set(reply)
    assert (reply["rows"], reply["column_count"], reply["format"]) == (5, 6, "csv")
    assert reply["path"] == str((data_dir / "customers.csv").resolve())
    assert reply["size_bytes"] == len(CHURN_CSV)
    assert {"dtype": "int64", "kind": "integer", "missing": 1, "min": 23.0}.items() <= column(
        reply, "age"
    ).items()
    assert column(reply, "age")["missing_fraction"] == 0.2
    assert column(reply, "monthly_fee")["kind"] == "float" and column(reply, "monthly_fee")["missing"] == 1
    assert column(reply, "plan")["kind"] == "categorical" and column(reply, "plan")["unique"] == 3
    assert column(reply, "signup_date")["kind"] == "datetime"
    assert column(reply, "signup_date")["ordered"] is False
    assert column(reply, "churn")["sample"] == ["no", "yes"]
    assert reply["target"] == {
        "name": "churn",
        "task": "classification",
        "reason": "a conventional target name, the last column, 2 distinct values",
    }
    assert reply["modality"] == "tabular"  # a signup date in random order is not a time axis
    assert reply["goal_hints"][0]["goal"] == "tabular-classification"
    assert reply["applications"][0] == "tabular-classification: predict 'churn' from the other 5 columns"
    assert reply["keywords"][:3] == ["customers", "churn", "age"]
    assert "customer id" not in reply["keywords"]  # identifiers are not key words
    assert "5 rows x 6 columns" in reply["description"] and "likely target 'churn'" in reply["description"]
    assert "age=1 (20.0%)" in reply["profile"]
    assert reply["topic"].startswith("tabular data about customers")


def test_json_records_object_and_lines(data_dir: Path) -> None:
    rows = [
        {"review": "The room was clean, quiet and the staff very friendly to us", "sentiment": "positive"},
        {"review": "Noisy street, thin walls and we could not sleep at all", "sentiment": "negative"},
        {"review": "Breakfast was cold and the coffee machine was broken again", "sentiment": "negative"},
        {"review": "Great view over the harbour, would book this hotel again", "sentiment": "positive"},
        {"review": "Average stay, nothing special but the location is good", "sentiment": None},
    ]
    (data_dir / "reviews.json").write_text(json.dumps(rows))
    (data_dir / "wrapped.json").write_text(json.dumps({"meta": {"v": 1}, "data": rows}))
    (data_dir / "lines.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data_dir / "lines.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    replies = [profile_dataset(n) for n in ("reviews.json", "wrapped.json", "lines.jsonl", "lines.json")]
    for reply in replies:
        assert (reply["rows"], reply["column_count"]) == (5, 2)
        assert column(reply, "review")["kind"] == "text"
        assert column(reply, "sentiment")["missing"] == 1
        assert reply["target"]["name"] == "sentiment" and reply["target"]["task"] == "classification"
        assert reply["modality"] == "text"
        assert reply["goal_hints"][0]["goal"] == "text-classification"
    assert [r["format"] for r in replies] == ["json", "json", "jsonl", "json"]


def test_json_with_mixed_types_in_a_column(data_dir: Path) -> None:
    (data_dir / "mixed.json").write_text(json.dumps([{"a": 1, "b": "x"}, {"a": "two", "c": [1, 2]}]))
    reply = profile_dataset("mixed.json")
    assert (reply["rows"], reply["column_count"]) == (2, 3)
    assert column(reply, "a")["dtype"] == "string" and column(reply, "a")["sample"] == ["1", "two"]
    assert column(reply, "b")["missing"] == 1 and column(reply, "c")["missing"] == 1


def test_parquet_time_series_profile(data_dir: Path) -> None:
    table = pa.table(
        {
            "timestamp": pa.array([f"2024-03-0{d} 1{h}:00" for d in range(1, 4) for h in range(3)]),
            "load_kw": pa.array([10.5, 11.0, None, 12.5, 13.0, 12.0, 11.5, float("nan"), 10.0]),
            "temperature": pa.array([5, 6, 7, 5, 6, 7, 5, 6, 7]),
        }
    )
    pq.write_table(table, data_dir / "load.parquet")
    reply = profile_dataset(str(data_dir / "load.parquet"))  # absolute path inside the directory
    assert (reply["format"], reply["rows"], reply["column_count"]) == ("parquet", 9, 3)
    assert column(reply, "timestamp")["kind"] == "datetime" and column(reply, "timestamp")["ordered"] is True
    assert column(reply, "load_kw")["missing"] == 2  # a null and a NaN
    assert column(reply, "load_kw")["max"] == 13.0
    assert reply["modality"] == "time-series"
    assert [h["goal"] for h in reply["goal_hints"]] == ["time-series-forecasting", "anomaly-detection"]


def test_regression_target_and_image_paths(data_dir: Path) -> None:
    lines = ["id,rooms,area_m2,city,price"] + [
        f"{i},{i % 5 + 1},{40 + i * 3},{'ab'[i % 2]},{100000 + i * 1234.5}" for i in range(30)
    ]
    (data_dir / "houses.csv").write_text("\n".join(lines) + "\n")
    reply = profile_dataset("houses.csv")
    assert reply["target"]["name"] == "price" and reply["target"]["task"] == "regression"
    assert reply["goal_hints"][0]["goal"] == "tabular-regression"

    (data_dir / "leaves.tsv").write_text(
        "file\tlabel\n" + "".join(f"img/leaf_{i}.jpg\t{['rust', 'healthy'][i % 2]}\n" for i in range(8))
    )
    reply = profile_dataset("leaves.tsv")
    assert column(reply, "file")["kind"] == "image-path"
    assert reply["modality"] == "image" and reply["goal_hints"][0]["goal"] == "image-classification"


def test_wide_files_keep_the_reply_small(data_dir: Path) -> None:
    header = ",".join(f"feature_{i}" for i in range(300))
    row = ",".join(str(i) for i in range(300))
    (data_dir / "wide.csv").write_text(f"{header}\n{row}\n{row}\n")
    res, reply = configure("dataset_path, wide.csv")
    assert res.success is True and reply["column_count"] == 300
    assert len(reply["columns"]) == dataset_profile.MAX_PROFILE_COLUMNS and reply["columns_truncated"]
    assert len(res.configuration) < dataset_profile.MAX_REPLY_CHARS


def test_default_allowed_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIRS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUSTAINML_DATA_DIR", str(tmp_path / "state"))
    assert allowed_dirs() == [(tmp_path / "data").resolve(), (tmp_path / "state").resolve()]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "c.csv").write_text(CHURN_CSV)
    assert profile_dataset("c.csv")["rows"] == 5
    assert profile_dataset("c.csv") == profile_dataset(str(tmp_path / "data" / "c.csv"))
    several = os.pathsep.join([str(tmp_path / "a"), "", str(tmp_path / "b")])
    explicit = Settings.from_env({DATA_DIRS_ENV: several}).encoder
    assert allowed_dirs(explicit) == [(tmp_path / "a").resolve(), (tmp_path / "b").resolve()]


# -------------------------------------------------------------------------------------------------
# refusals
# -------------------------------------------------------------------------------------------------


def test_missing_file_and_empty_path(data_dir: Path) -> None:
    refused("nope.csv", "dataset 'nope.csv' not found", str(data_dir.resolve()))
    refused(str(data_dir / "nope.csv"), "not found")
    refused("", "no dataset path given")


def test_traversal_and_absolute_paths_outside_are_refused(data_dir: Path) -> None:
    (data_dir.parent / "secret.csv").write_text("a\n1\n")
    refused("../secret.csv", "outside the allowed data directories", DATA_DIRS_ENV)
    refused(str(data_dir.parent / "secret.csv"), "outside the allowed data directories")
    refused(f"{data_dir}/../secret.csv", "outside the allowed data directories")
    refused("/etc/passwd", "outside the allowed data directories")
    # A missing file outside gets the same answer: nothing is revealed about what exists there.
    refused("../does-not-exist.csv", "outside the allowed data directories")


def test_symlink_escapes_are_refused(data_dir: Path) -> None:
    outside = data_dir.parent / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("a\n1\n")
    (data_dir / "link.csv").symlink_to(outside / "secret.csv")
    (data_dir / "dirlink").symlink_to(outside, target_is_directory=True)
    refused("link.csv", "outside the allowed data directories")
    refused("dirlink/secret.csv", "outside the allowed data directories")
    # A symlink that stays inside is fine.
    (data_dir / "real.csv").write_text(CHURN_CSV)
    (data_dir / "alias.csv").symlink_to(data_dir / "real.csv")
    assert profile_dataset("alias.csv")["path"] == str((data_dir / "real.csv").resolve())


def test_unsupported_directory_and_malformed_files(data_dir: Path) -> None:
    (data_dir / "notes.txt").write_text("hello")
    refused("notes.txt", "unsupported file type '.txt'", ".csv, .json")
    (data_dir / "folder.csv").mkdir()
    refused("folder.csv", "is not a regular file")
    (data_dir / "broken.json").write_text('[{"a": 1}, ')
    refused("broken.json", "neither JSON records nor JSON lines")
    (data_dir / "scalar.json").write_text("42")
    refused("scalar.json", "holds a JSON int, not records")
    (data_dir / "list.json").write_text("[1, 2]")
    refused("list.json", "must be a list of JSON objects")
    (data_dir / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    refused("ragged.csv", "cannot parse ragged.csv as CSV")
    (data_dir / "fake.parquet").write_bytes(b"not parquet at all")
    refused("fake.parquet", "cannot parse fake.parquet as PARQUET")
    (data_dir / "latin1.json").write_bytes('[{"a": "caf\xe9"}]'.encode("latin-1"))
    refused("latin1.json", "is not UTF-8 text")


def test_too_large_is_refused_before_reading(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (data_dir / "big.csv").write_text(CHURN_CSV)
    monkeypatch.setattr(dataset_profile, "MAX_DATASET_BYTES", 100)
    refused("big.csv", "the limit is")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_refused(data_dir: Path) -> None:
    path = data_dir / "locked.csv"
    path.write_text(CHURN_CSV)
    path.chmod(0)
    try:
        refused("locked.csv", "not readable")
    finally:
        path.chmod(0o644)


def test_permission_denied_on_open_is_refused(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same path as the test above, for runs as root (where chmod does not stop reading).
    (data_dir / "locked.csv").write_text(CHURN_CSV)

    def denied(path: Any, flags: int, *args: Any) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(DatasetError, match=r"locked\.csv is not readable"):
        profile_dataset("locked.csv")


def test_a_file_swapped_after_the_check_is_refused(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (data_dir / "a.csv").write_text(CHURN_CSV)
    (data_dir / "b.csv").write_text(CHURN_CSV)
    real_open = os.open

    def swapping_open(path: Any, flags: int, *args: Any) -> int:
        # Between the identity check and the open, a.csv is replaced by another file.
        os.replace(data_dir / "b.csv", data_dir / "a.csv")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", swapping_open)
    with pytest.raises(DatasetError, match="changed while it was being opened"):
        profile_dataset("a.csv")
