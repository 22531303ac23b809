"""The main flows against a running server on the real broker: the original GUI's sequence
(submit, six parallel long-polls, node 9, node 7), the /v1 task API with server-sent events,
configuration requests with the node's own success/err_code, dataset upload and profile,
metrics, health, and the fixed defects (404 for unknown tasks, bounded long-polls)."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from tests.api.conftest import Running

pytestmark = pytest.mark.integration

NODES = (
    "ML_MODEL_METADATA",
    "APP_REQUIREMENTS",
    "HW_CONSTRAINTS",
    "ML_MODEL",
    "HW_RESOURCES",
    "CARBON_FOOTPRINT",
)
NODE_IDS = {"APP_REQUIREMENTS": 0, "CARBON_FOOTPRINT": 1, "HW_CONSTRAINTS": 2, "HW_RESOURCES": 3,
            "ML_MODEL_METADATA": 4, "ML_MODEL": 5}  # fmt: skip
WELDS = {
    "problem_short_description": "detect defects in photos of welded seams",
    "modality": "image",
    "inputs": "image photo",
    "outputs": ["label"],
    "minimum_samples": 1,
    "maximum_samples": 3,
    "type": "CNNs",
    # ML_MODEL sends its sample arrays only when asked (they can be megabytes)
    "extra_data": {"include_input_batch": True},
}
BULKY = ("input_batch", "raw_model")


def _submit(api: Running, body: dict[str, Any]) -> dict[str, int]:
    r = api.client.post("/user_input", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["message"] == "User input data sent successfully."
    task_id = answer["task_id"]
    assert set(task_id) == {"problem_id", "iteration_id"} and task_id["problem_id"] >= 1
    return dict(task_id)


def test_gui_sequence_six_long_polls_then_all_and_user_input(broker_api: Running) -> None:
    task_id = _submit(broker_api, WELDS)
    # The GUI fires six parallel long-polls right after submitting, one per node.
    with ThreadPoolExecutor(6) as pool, httpx.Client(base_url=broker_api.url, timeout=60) as c:
        futures = {
            node: pool.submit(c.post, "/results", json={"node_id": NODE_IDS[node], "task_id": task_id})
            for node in NODES
        }
        answers = {node: f.result() for node, f in futures.items()}
    for node, r in answers.items():
        assert r.status_code == 200, (node, r.text)
        body = r.json()
        assert list(body) == [node]
        assert body[node]["task_id"] == task_id
        assert "Error" not in body[node]
    meta = answers["ML_MODEL_METADATA"].json()["ML_MODEL_METADATA"]
    assert isinstance(meta["keywords"], list) and "welded seams" in meta["keywords"]
    assert meta["ml_model_metadata"] and isinstance(meta["ml_model_metadata"], list)
    hw = answers["HW_RESOURCES"].json()["HW_RESOURCES"]
    # every HWResource field, upstream dropped max_hw_memory_footprint and extra_data
    assert set(hw) == {
        "hw_description", "power_consumption", "latency", "memory_footprint_of_ml_model",
        "max_hw_memory_footprint", "extra_data", "task_id",
    }  # fmt: skip
    assert hw["max_hw_memory_footprint"] > 0 and isinstance(hw["extra_data"], dict)
    model = answers["ML_MODEL"].json()["ML_MODEL"]
    assert "raw_model" not in model
    # an array (upstream joined it into one string) of base64 .npy files: WELDS asks for them
    # (extra_data.include_input_batch); without it ML_MODEL sends none and HW_RESOURCES regenerates them
    assert isinstance(model["input_batch"], list) and model["input_batch"]
    for item in model["input_batch"]:
        assert np.load(io.BytesIO(base64.b64decode(item))).size > 0
    constraints = answers["HW_CONSTRAINTS"].json()["HW_CONSTRAINTS"]
    assert isinstance(constraints["hardware_required"], list)
    carbon = answers["CARBON_FOOTPRINT"].json()["CARBON_FOOTPRINT"]
    assert carbon["carbon_intensity"] > 0 and carbon["extra_data"]["num_outputs"] == 1

    everything = broker_api.client.post("/results", json={"node_id": 9, "task_id": task_id}).json()
    assert set(everything) == {*NODES, "task_id"} and everything["task_id"] == task_id
    assert everything["HW_RESOURCES"] == hw
    # GET /results: the latest task (this one, unless another test of the module submitted since)
    latest = broker_api.client.get("/results")
    assert latest.status_code == 200 and set(latest.json()) == {*NODES, "task_id"}

    ui = broker_api.client.post("/results", json={"node_id": 7, "task_id": task_id}).json()["ORCHESTRATOR"]
    assert ui["inputs"] == ["image", "photo"] and ui["outputs"] == ["label"]
    assert ui["extra_data"]["model_family"] == "CNNs"  # top-level `type`, upstream's rule
    assert ui["extra_data"]["num_outputs"] == 1  # defaulted, upstream stored null
    assert ui["task_id"] == task_id
    for node_id, name in ((6, "MAX"), (8, "UNKNOWN")):
        body = broker_api.client.post("/results", json={"node_id": node_id, "task_id": task_id}).json()
        assert body[name]["message"] == f"{name} node does not have any results to show."


def test_unknown_task_is_404_and_bad_bodies_422(broker_api: Running) -> None:
    c = broker_api.client
    missing = {"problem_id": 99999, "iteration_id": 1}
    for node_id in (0, 3, 7, 9):
        r = c.post("/results", json={"node_id": node_id, "task_id": missing})
        assert r.status_code == 404 and r.json() == {"error": "task 99999.1 does not exist"}
    assert c.get("/v1/tasks/99999/1").status_code == 404
    assert c.post("/v1/tasks/99999/1/cancel").status_code == 404
    assert c.post("/v1/tasks/99999/1/iterate", json={}).status_code == 404
    assert c.get("/v1/tasks/99999/1/export").status_code == 404
    assert c.post("/cancel", json=missing).json() == {"status": "not_found"}
    r = c.post("/cancel", json={"problem_id": 1})
    assert r.status_code == 422 and r.json()["error"] == "Either problem_id or iteration_id not selected"
    r = c.post("/user_input", json={"minimum_samples": -3})
    assert r.status_code == 422 and r.json()["error"].startswith("body.minimum_samples: ")
    # what the schema cannot say, the data model's validation names the same way
    r = c.post("/user_input", json={"extra_data": "[1, 2]"})
    assert r.status_code == 422
    assert r.json() == {
        "error": "UserInput.extra_data: must be an object or JSON object text, got list [1, 2]"
    }
    # a union field: the field named once, its accepted shapes listed (not pydantic's type tags)
    r = c.post("/user_input", json={"extra_data": [1, 2]})
    assert r.status_code == 422
    assert r.json() == {
        "error": "body.extra_data: Input should be a valid dictionary or a valid string",
        "detail": [
            {"loc": ["body", "extra_data"], "msg": "Input should be a valid dictionary or a valid string"}
        ],
    }
    # /v1 refuses an unknown field (the compatible route ignores it, as upstream): a wrapped or
    # misspelt body must not become an empty problem that fails at the first stage
    wrapped = {"user_input": {"problem_short_description": "detect defects in welded seams"}}
    for path in ("/v1/tasks", "/v1/tasks/99999/1/iterate"):
        r = c.post(path, json=wrapped)
        assert r.status_code == 422, path
        assert r.json()["error"] == "body.user_input: Extra inputs are not permitted", path
    r = c.post("/results", json={"node_id": "x"})
    assert r.status_code == 422 and r.json()["error"].startswith("body.node_id:")
    r = c.post("/config_request", json={"node_id": 3})
    assert r.status_code == 422 and r.json()["error"] == "body.configuration: Field required"
    r = c.post("/user_input", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "body" in r.json()["error"]
    # one long-poll maximum, 300 s, for both the compatible and the /v1 route
    r = c.get("/v1/tasks/1/1", params={"wait": 301})
    assert r.status_code == 422
    assert r.json()["error"] == "query.wait: Input should be less than or equal to 300"
    r = c.post("/results", json={"node_id": 9, "timeout": 301})
    assert r.status_code == 422
    assert r.json()["error"] == "body.timeout: Input should be less than or equal to 300"
    assert c.get("/results", params={"timeout": 301}).status_code == 422


def test_config_requests_keep_the_node_answer(broker_api: Running) -> None:
    c = broker_api.client
    hw = c.post("/config_request", json={"configuration": "hardwares"}).json()
    assert hw["message"] == "Configuration request sent successfully."
    assert (
        hw["response"]["node_id"] == 3
        and hw["response"]["success"] is True
        and hw["response"]["err_code"] == 0
    )
    assert "PIM_AI_1chip" in json.loads(hw["response"]["configuration"])["hardwares"]
    # the explicit keyword wins over a substring that upstream misrouted ("hardwares" in free text)
    search = c.post(
        "/config_request", json={"configuration": "hf_search, count hardwares in photos, 3"}
    ).json()
    assert (
        search["response"]["node_id"] == 5
        and len(json.loads(search["response"]["configuration"])["models"]) <= 3
    )
    # node_id is honoured; HW_CONSTRAINTS refuses with its own success/err_code
    refused = c.post("/config_request", json={"configuration": "modality", "node_id": 2}).json()["response"]
    assert refused["node_id"] == 2 and refused["success"] is False and refused["err_code"] == 1
    assert "Unsupported configuration request" in json.loads(refused["configuration"])["error"]
    v1 = c.post("/v1/nodes/ml_model/config", json={"configuration": "model_from_goal, image-classification"})
    assert v1.status_code == 200
    body = v1.json()
    assert (
        body["success"] is True and body["err_code"] == "NO_ERROR" and "resnet-50" in body["parsed"]["models"]
    )
    assert c.post("/v1/nodes/nope/config", json={"configuration": "x"}).status_code == 404


def _read_sse(
    url: str, events: list[tuple[str, dict[str, Any]]], stop: threading.Event, ready: threading.Event
) -> None:
    with httpx.Client(timeout=httpx.Timeout(60, read=60)) as c, c.stream("GET", url) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                ready.set()
                if stop.is_set():
                    return


def test_v1_task_lifecycle_with_server_sent_events(broker_api: Running) -> None:
    c = broker_api.client
    events: list[tuple[str, dict[str, Any]]] = []
    stop, ready = threading.Event(), threading.Event()
    reader = threading.Thread(
        target=_read_sse, args=(f"{broker_api.url}/v1/events", events, stop, ready), daemon=True
    )
    reader.start()
    assert ready.wait(10) and events[0][0] == "snapshot"
    assert set(events[0][1]["nodes"]) == set(NODES) and events[0][1]["replicas"]

    r = c.post(
        "/v1/tasks",
        json={
            "problem_short_description": "sort photos of ripe and unripe tomatoes",
            "extra_data": {"include_input_batch": True},
        },
    )
    assert r.status_code == 201, r.text
    task_id = r.json()["task_id"]
    assert r.json()["state"] in ("running", "succeeded")
    detail = c.get(f"/v1/tasks/{task_id['problem_id']}/{task_id['iteration_id']}", params={"wait": 30}).json()
    assert detail["state"] == "succeeded" and all(detail[n] is not None for n in NODES)
    assert detail["USER_INPUT"]["problem_short_description"].startswith("sort photos")

    def mine() -> list[dict[str, Any]]:
        return [d for n, d in events if n == "task" and d["task_id"] == task_id]

    wait_until(lambda: any(d["state"] == "succeeded" for d in mine()), 15, "the succeeded task event")
    # node status changes come on the same stream (a replica running this task, then idle again)
    wait_until(
        lambda: any(n == "node" and d["replica_status"] == "RUNNING" for n, d in events), 10, "a node event"
    )
    node_event = next(d for n, d in events if n == "node" and d["replica_status"] == "RUNNING")
    assert (
        node_event["node"] in NODES
        and node_event["replica_id"]
        and node_event["status"] in ("IDLE", "RUNNING")
    )
    stop.set()
    seen = mine()
    assert seen[0]["state"] == "running" and seen[0]["completed"] is None and seen[0]["stage"] == NODES[0]
    assert [d["completed"] for d in seen[1:]] == list(NODES)  # one per stage, in pipeline order
    assert seen[-1]["state"] == "succeeded"
    for d in seen[1:]:
        assert d["output"]["task_id"] == task_id  # the stored record travels with the event
    assert seen[3]["output"] == detail["HW_CONSTRAINTS"]
    # ...except ML_MODEL's bulky fields: named in `omitted` when they had content, served by
    # GET /v1/tasks/{p}/{i}
    model_event = next(d for d in seen if d["completed"] == "ML_MODEL")
    assert not set(BULKY) & set(model_event["output"])
    assert model_event["output"] == {k: v for k, v in detail["ML_MODEL"].items() if k not in BULKY}
    assert model_event["omitted"] == [name for name in BULKY if detail["ML_MODEL"][name]]
    assert all(d["omitted"] == [] for d in seen if d["completed"] != "ML_MODEL")

    # list, filter, paginate
    listed = c.get("/v1/tasks", params={"state": "succeeded", "limit": 1}).json()
    assert listed["count"] == 1 and listed["limit"] == 1 and listed["tasks"][0]["state"] == "succeeded"
    mine_only = c.get("/v1/tasks", params={"problem_id": task_id["problem_id"]}).json()["tasks"]
    assert [t["task_id"] for t in mine_only] == [task_id]
    assert mine_only[0]["problem_short_description"].startswith("sort photos")
    # each item carries the task's headline, equal to the stored records (no request per task)
    hw, co2 = detail["HW_RESOURCES"], detail["CARBON_FOOTPRINT"]
    assert detail["ML_MODEL"]["model"] not in ("NO_MODEL", "Error")  # real figures to compare
    assert mine_only[0]["summary"] == {
        "goal": detail["ML_MODEL_METADATA"]["ml_model_metadata"][0],
        "model": detail["ML_MODEL"]["model"],
        "hardware": hw["hw_description"],
        "latency": hw["latency"],
        "memory_footprint_of_ml_model": hw["memory_footprint_of_ml_model"],
        "power_consumption": hw["power_consumption"],
        "energy_consumption": co2["energy_consumption"],
        "carbon_footprint": co2["carbon_footprint"],
        "carbon_intensity": co2["carbon_intensity"],
        "stages_done": list(NODES),
        "alerts": [],
    }
    assert mine_only[0]["summary"]["carbon_footprint"] > 0
    bare = c.get("/v1/tasks", params={"problem_id": task_id["problem_id"], "summary": "false"}).json()
    assert bare["tasks"][0]["summary"] is None
    assert c.get("/v1/tasks", params={"state": "bogus"}).status_code == 422

    # iterate: inherits the input, new iteration id of the same problem
    it = c.post(
        f"/v1/tasks/{task_id['problem_id']}/{task_id['iteration_id']}/iterate", json={"modality": "text"}
    )
    assert it.status_code == 201
    second = it.json()["task_id"]
    assert second == {"problem_id": task_id["problem_id"], "iteration_id": task_id["iteration_id"] + 1}
    done = c.get(f"/v1/tasks/{second['problem_id']}/{second['iteration_id']}", params={"wait": 30}).json()
    assert done["state"] == "succeeded"
    assert (
        done["USER_INPUT"]["problem_short_description"] == detail["USER_INPUT"]["problem_short_description"]
    )

    # export
    p, i = task_id["problem_id"], task_id["iteration_id"]
    slim = c.get(f"/v1/tasks/{p}/{i}", params={"omit": "input_batch,raw_model"}).json()
    assert "input_batch" not in slim["ML_MODEL"] and "raw_model" not in slim["ML_MODEL"]
    assert "input_batch" in detail["ML_MODEL"] and slim["HW_RESOURCES"] == detail["HW_RESOURCES"]
    as_json = c.get(f"/v1/tasks/{p}/{i}/export")
    assert as_json.status_code == 200 and "attachment" in as_json.headers["content-disposition"]
    assert as_json.json()["HW_RESOURCES"] == detail["HW_RESOURCES"]
    as_csv = c.get(f"/v1/tasks/{p}/{i}/export", params={"format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = as_csv.text.splitlines()
    assert rows[0] == "node,field,value" and "TASK,state,succeeded" in rows
    power = detail["HW_RESOURCES"]["power_consumption"]
    assert f"HW_RESOURCES,power_consumption,{power}" in rows
    assert c.get(f"/v1/tasks/{p}/{i}/export", params={"format": "xml"}).status_code == 422

    # cancelling a finished task keeps its state
    cancelled = c.post(f"/v1/tasks/{p}/{i}/cancel").json()
    assert cancelled == {"task_id": task_id, "state": "succeeded"}
    reader.join(5)


def test_dataset_upload_is_stored_sanitised_and_profiled(broker_api: Running) -> None:
    csv = (
        b"customer_id,age,plan,monthly_fee,churn\n"
        b"1,34,basic,9.9,no\n2,51,premium,29.9,yes\n3,23,pro,19.9,no\n"
    )
    r = broker_api.client.post(
        "/v1/datasets", files={"file": ("../../etc/Customer Churn!.csv", csv, "text/csv")}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert re.fullmatch(r"Customer_Churn-[0-9a-f]{8}\.csv", body["name"]), body["name"]
    stored = broker_api.data_dir / "uploads" / body["name"]
    assert body["path"] == str(stored.resolve()) or body["path"] == str(stored)
    assert stored.read_bytes() == csv and body["size_bytes"] == len(csv)
    assert body["profile_error"] is None
    profile = body["profile"]
    assert profile["rows"] == 3 and "churn" in json.dumps(profile)
    bad = broker_api.client.post(
        "/v1/datasets", files={"file": ("notes.exe", b"MZ", "application/octet-stream")}
    )
    assert bad.status_code == 415 and "unsupported" in bad.json()["error"]
    assert broker_api.client.post("/v1/datasets").status_code == 422


def test_status_nodes_health_and_metrics(broker_api: Running) -> None:
    c = broker_api.client
    assert c.get("/").json() == {"message": 'Hello world! Use "/terminate" route to stop Back-end node.'}
    assert c.post("/status", json={"node_id": 4}).json() == {"status": "IDLE"}
    assert c.post("/status", json={"node_id": 42}).json() == {"status": "INACTIVE"}
    assert set(c.post("/status", json={}).json()["status"]) == set(NODES)
    nodes = c.get("/v1/nodes").json()
    assert set(nodes["nodes"]) == set(NODES)
    assert {r["node_name"] for r in nodes["replicas"]} == set(NODES)
    assert all(r["age_s"] < 5 for r in nodes["replicas"])
    health = c.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["broker"] is True

    task_id = _submit(broker_api, {"problem_short_description": "forecast electricity demand per hour"})
    assert c.post("/results", json={"node_id": 9, "task_id": task_id}).status_code == 200
    text = c.get("/metrics").text
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]

    def value(prefix: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in samples if line.startswith(prefix))

    assert value('sustainml_tasks{state="succeeded"}') >= 1
    for node in NODES:
        assert value(f'sustainml_stage_latency_seconds_count{{node="{node}"}}') >= 1
        assert value(f'sustainml_replicas_alive{{node="{node}"}}') == 1
    ns = broker_api.settings.namespace
    assert value(f'sustainml_queue_consumers{{queue="{ns}.stage.ml_model"}}') == 1
    assert f'sustainml_queue_messages{{queue="{ns}.stage.ml_model.dlq"}}' in text
    assert value('sustainml_http_requests_total{method="POST",route="/results",status="200"}') >= 1
    # no task id in any label
    values = [
        (name, val)
        for line in samples
        for name, val in re.findall(r'(\w+)="([^"]*)"', line.split(" ", 1)[0])
        if name != "le"
    ]
    assert values and not [v for v in values if re.fullmatch(r"\d+\.\d+", v[1])], values


@pytest.fixture
def stalled_api(amqp_url: str, tmp_path: Any) -> Any:
    """A deployment without CARBON_FOOTPRINT: tasks stop before the last stage."""
    import uuid

    from sustainml.api import ApiServer
    from sustainml.config import Settings
    from sustainml.deployment import LocalDeployment, amqp_transports
    from sustainml.topology import Topology, delete_all
    from sustainml.transport.amqp import AmqpTransport

    settings = Settings(
        broker_url=amqp_url, namespace=f"t-{uuid.uuid4().hex[:8]}", data_dir=tmp_path, heartbeat_interval=0.5
    )
    dep = LocalDeployment(settings, amqp_transports(settings), replicas={"carbon_footprint": 0}).start()
    assert dep.orchestrator is not None
    server = ApiServer(settings, dep.orchestrator, "127.0.0.1", 0).start()
    try:
        yield server
    finally:
        server.stop()
        dep.stop()
        with AmqpTransport(settings.broker_url, name="cleanup") as t:
            delete_all(t, Topology(settings.namespace))


def test_long_poll_is_bounded_then_cancel(stalled_api: Any) -> None:
    with httpx.Client(base_url=stalled_api.url, timeout=30) as c:
        task_id = c.post("/user_input", json={"problem_short_description": "classify bird songs"}).json()[
            "task_id"
        ]
        early = c.post("/results", json={"node_id": 5, "task_id": task_id, "timeout": 20})
        assert early.status_code == 200 and early.json()["ML_MODEL"]["task_id"] == task_id
        wait_until(
            lambda: (
                c.get(f"/v1/tasks/{task_id['problem_id']}/{task_id['iteration_id']}").json()["current_stage"]
                == "CARBON_FOOTPRINT"
            ),
            20,
            "the task to reach CARBON_FOOTPRINT",
        )
        started = time.monotonic()
        late = c.post("/results", json={"node_id": 1, "task_id": task_id, "timeout": 1.0})
        assert 0.9 <= time.monotonic() - started < 5
        assert late.status_code == 504
        body = late.json()
        assert (
            body["ready"] is False and body["state"] == "running" and body["missing"] == ["CARBON_FOOTPRINT"]
        )
        assert "not ready" in body["error"]
        assert c.post("/results", json={"node_id": 9, "task_id": task_id, "timeout": 0.5}).status_code == 504
        # the GUI's "Stop Current Task": empty body = the latest unfinished task
        assert c.post("/cancel").json() == {"status": "cancelled", "task_id": task_id, "state": "cancelled"}
        # a finished (cancelled) task answers at once, the missing output named
        gone = c.post("/results", json={"node_id": 1, "task_id": task_id, "timeout": 20})
        assert gone.status_code == 200
        assert gone.json()["CARBON_FOOTPRINT"]["Error"].startswith(
            "Failed to get CARBON_FOOTPRINT data for task {"
        )
        assert c.post("/cancel").json() == {"status": "not_found"}
