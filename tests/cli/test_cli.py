"""The command line as a user runs it (subprocesses, real exit codes and output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from sustainml.topology import PIPELINE, Topology, delete_all
from tests.support.cli import run_cli

_run = run_cli


def test_embedded_submit_prints_the_complete_result_as_json() -> None:
    proc = _run("submit", "--embedded", "--description", "detect defects in photos of welded seams", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["task_id"] == {"problem_id": 1, "iteration_id": 1}
    assert result["state"] == "succeeded"
    for stage in PIPELINE:
        assert result[stage.node]["task_id"] == {"problem_id": 1, "iteration_id": 1}
    assert isinstance(result["ML_MODEL_METADATA"]["keywords"], list)
    assert isinstance(result["HW_CONSTRAINTS"]["extra_data"], dict)
    assert result["HW_CONSTRAINTS"]["hardware_required"] == ["auto"]  # chosen among server devices
    allowed = result["HW_CONSTRAINTS"]["extra_data"]["allowed_hardware"]
    assert result["HW_RESOURCES"]["hw_description"] in allowed
    assert result["CARBON_FOOTPRINT"]["carbon_intensity"] > 0


def test_embedded_batch_prints_one_result_per_line_in_input_order(tmp_path: Path) -> None:
    batch = tmp_path / "tasks.jsonl"
    descriptions = [
        "translate product manuals to Spanish",
        "forecast daily sales",
        "detect cars in traffic video",
    ]
    batch.write_text("\n".join(json.dumps({"problem_short_description": d}) for d in descriptions) + "\n")
    proc = _run("submit", "--embedded", "--batch", str(batch), "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["USER_INPUT"]["problem_short_description"] for r in lines] == descriptions
    # Submitted pipelined: the ids are the order the orchestrator handled them in, not the file's.
    assert sorted(r["task_id"]["problem_id"] for r in lines) == [1, 2, 3]
    assert "submitted 3 task(s)" in proc.stderr and "refused" not in proc.stderr


def test_embedded_batch_refuses_bad_lines_by_number_and_field_and_submits_the_rest(tmp_path: Path) -> None:
    batch = tmp_path / "tasks.jsonl"
    lines = [
        json.dumps({"problem_short_description": "forecast daily sales"}),
        json.dumps({"problem_short_description": "count cars", "minimum_samples": -3}),  # read: refused
        "",
        "translate product manuals to Spanish",  # plain text: a description
        '{"problem_short_description": "broken',
        json.dumps({"problem_short_description": "count cars", "extra_data": {"num_outputs": 99}}),
        json.dumps("detect cars in traffic video"),  # a JSON string: a description
    ]
    batch.write_text("\n".join(lines) + "\n")
    proc = _run("submit", "--embedded", "--batch", str(batch), "--json")
    assert proc.returncode == 1, proc.stderr  # some lines refused
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [a.get("line") or a["USER_INPUT"]["problem_short_description"] for a in answers] == [
        "forecast daily sales",
        2,
        "translate product manuals to Spanish",
        5,
        6,
        "detect cars in traffic video",
    ]
    assert all(a["state"] == "succeeded" for a in answers if "state" in a)
    assert answers[1]["error"].startswith("UserInput.minimum_samples: must be >= 0")
    assert answers[3]["error"].startswith("not JSON (")
    assert answers[4]["error"].startswith("extra_data.num_outputs: at most 10")  # refused by the orchestrator
    assert f"refused: --batch {batch}:2: UserInput.minimum_samples" in proc.stderr
    assert f"submitted 3 task(s) from {batch}; 3 line(s) refused (2, 5, 6); 3 succeeded" in proc.stderr


def test_input_file_shaped_like_the_rest_body(tmp_path: Path) -> None:
    task = tmp_path / "task.json"
    task.write_text(
        json.dumps(
            {
                "modality": "image",
                "problem_short_description": "count pallets in warehouse photos",
                "inputs": ["photo"],
                "outputs": ["count"],
                "minimum_samples": 1,
                "maximum_samples": 3,
                "geo_location_continent": "Europe",
                "geo_location_region": "Spain",
                "extra_data": {"hardware_required": "PIM_AI_1chip", "max_memory_footprint": 200},
            }
        )
    )
    proc = _run("submit", "--embedded", "--input", str(task), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["USER_INPUT"]["inputs"] == ["photo"]
    assert result["HW_CONSTRAINTS"]["max_memory_footprint"] == 200


def test_bad_input_names_the_field(tmp_path: Path) -> None:
    task = tmp_path / "task.json"
    task.write_text(json.dumps({"problem_short_description": "x", "minimum_samples": -3}))
    proc = _run("submit", "--embedded", "--input", str(task))
    assert proc.returncode != 0
    assert "minimum_samples" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_broker_is_one_clear_line_not_a_traceback() -> None:
    proc = _run(
        "submit",
        "--description",
        "x",
        env={"SUSTAINML_BROKER_URL": "amqp://guest:secret@127.0.0.1:1/"},
        timeout=60,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "cannot connect to RabbitMQ" in proc.stderr and "connection refused" in proc.stderr
    assert "--embedded" in proc.stderr
    assert "secret" not in proc.stderr  # credentials never printed


@pytest.mark.integration
def test_up_then_submit_wait_on_the_real_broker(amqp_url: str, tmp_path: Path) -> None:
    env = {
        "SUSTAINML_BROKER_URL": amqp_url,
        "SUSTAINML_NAMESPACE": f"t-{uuid.uuid4().hex[:8]}",
        "SUSTAINML_DATA_DIR": str(tmp_path),
        "SUSTAINML_HTTP": "off",  # tests/api covers the HTTP server; 5001 may be taken here
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "sustainml.cli", "up"],
        env={**os.environ, **env},
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until all six nodes report IDLE
            st = _run("status", "--json", env=env, timeout=60)
            if st.returncode == 0 and all(v == "IDLE" for v in json.loads(st.stdout)["nodes"].values()):
                break
            assert up.poll() is None, "sustainml up exited"
            assert time.monotonic() < deadline, f"nodes never all IDLE: {st.stdout} {st.stderr}"
            time.sleep(0.5)
        proc = _run("submit", "--description", "detect defects in photos of welded seams", "--wait", env=env)
        assert proc.returncode == 0, proc.stderr
        for stage in PIPELINE:
            assert stage.node in proc.stdout
        assert "succeeded" in proc.stdout
        res = _run("result", "1", "1", "--json", env=env)
        assert json.loads(res.stdout)["state"] == "succeeded"
    finally:
        up.send_signal(2)  # Ctrl-C stops everything cleanly
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, out
    assert "stopped" in out
    from sustainml.transport.amqp import AmqpTransport

    with AmqpTransport(amqp_url, name="cleanup") as t:
        delete_all(t, Topology(env["SUSTAINML_NAMESPACE"]))


def test_eval_encoder_descriptions_prints_each_answer_and_names_a_bad_line(tmp_path: Path) -> None:
    mine = tmp_path / "mine.jsonl"
    mine.write_text(
        json.dumps({"text": "Turn our recorded phone calls into written text", "modality": "audio"}) + "\n"
    )
    proc = run_cli("eval", "encoder", "--descriptions", str(mine), "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    (answer,) = json.loads(proc.stdout)
    assert answer["text"].startswith("Turn our recorded") and answer["expected_modality"] == "audio"
    assert answer["goal"] and answer["reason"] and isinstance(answer["requirements"], list)
    mine.write_text('{"text": "x", "modality": "smell"}\n')
    proc = run_cli("eval", "encoder", "--descriptions", str(mine))
    assert proc.returncode != 0 and "mine.jsonl:1" in proc.stderr
    assert "Traceback" not in proc.stderr
