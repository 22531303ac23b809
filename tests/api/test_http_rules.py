"""Rules of the HTTP layer on a running server over the in-memory deployment (no broker): bearer
token on mutating routes, terminate/shutdown, body size limits, CORS, the /ui mount, and the pure
translations (keyword routing, UserInput defaults, CSV export, offline model facts)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sustainml.api import hfcompat, views
from sustainml.api.v1 import _safe_name
from sustainml.messages import CO2Footprint, HWResource, MessageError, MLModel, MLModelMetadata
from sustainml.topology import PIPELINE
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from tests.api.conftest import Running

TOKEN = "s3cret-token-value"


@pytest.fixture
def secured(make_memory_api: Callable[..., Running]) -> Running:
    return make_memory_api(
        api_token=TOKEN, cors_origins="http://dash.example", api_max_body=4096, upload_max_bytes=2048
    )


def test_token_guards_mutating_routes_only(secured: Running, caplog: pytest.LogCaptureFixture) -> None:
    c = secured.client
    body = {"problem_short_description": "count cars on a road camera"}
    for method, path, payload in (
        ("POST", "/user_input", body),
        ("POST", "/v1/tasks", body),
        ("POST", "/v1/tasks/batch", {"tasks": [body]}),
        ("POST", "/config_request", {"configuration": "hardwares"}),
        ("POST", "/v1/nodes/hw_resources/config", {"configuration": "hardwares"}),
        ("POST", "/cancel", None),
        ("POST", "/v1/tasks/1/1/cancel", None),
        ("POST", "/v1/tasks/1/1/iterate", {}),
        ("POST", "/terminate", None),
        ("POST", "/shutdown", None),
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = c.request(method, path, json=payload, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.json() == {"error": "missing or invalid bearer token"}
            assert r.headers["www-authenticate"] == "Bearer"
    assert secured.terminations == []
    # an upload is refused before its body is read, and nothing is stored
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = c.post("/v1/datasets", files={"file": ("t.csv", b"a,b\n1,2\n", "text/csv")}, headers=headers)
        assert r.status_code == 401 and r.json() == {"error": "missing or invalid bearer token"}
        assert r.headers["www-authenticate"] == "Bearer"
    assert not list(secured.data_dir.rglob("t-*.csv"))
    ok = c.post("/user_input", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    # read-only routes, including upstream's read-only POSTs, need no token
    assert c.get("/status").status_code == 200
    assert c.post("/status", json={}).status_code == 200
    assert c.post("/results", json={"node_id": 9, "timeout": 20}).status_code == 200
    assert c.get("/v1/tasks").status_code == 200
    assert c.post("/hf_models_info", json={"model_ids": ["resnet-50"]}).status_code == 200
    refused = c.get("/terminate", headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 405 and refused.headers["allow"] == "POST"
    assert secured.terminations == []  # a GET never changes state
    t = c.post("/terminate", headers={"Authorization": f"Bearer {TOKEN}"})
    assert t.json() == {"message": "Terminating...<br>"}
    wait_until(lambda: len(secured.terminations) == 1, 5, "the terminate callback")
    assert TOKEN not in caplog.text  # never logged


def test_terminate_without_token_is_loopback_only(mem_api: Running) -> None:
    r = mem_api.client.post("/shutdown")
    assert r.status_code == 200 and r.json() == {"message": "Terminating...<br>"}
    wait_until(lambda: len(mem_api.terminations) == 1, 5, "the terminate callback")
    # the same rule, for a client address that is not loopback
    from fastapi import HTTPException
    from starlette.requests import Request

    scope: dict[str, Any] = {"type": "http", "headers": [], "client": ("192.0.2.7", 5555)}
    with pytest.raises(HTTPException) as refused:
        mem_api.server.app.state.ctx.auth.authorize_terminate(Request(scope))
    assert refused.value.status_code == 403


def test_body_limits_413(secured: Running) -> None:
    c = secured.client
    auth = {"Authorization": f"Bearer {TOKEN}"}
    big = {"problem_short_description": "x" * 5000}
    r = c.post("/v1/tasks", json=big, headers=auth)
    assert r.status_code == 413 and r.json() == {"error": "request body larger than 4096 bytes"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        yield b'{"problem_short_description": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    r = c.post("/v1/tasks", content=chunks(), headers={**auth, "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "request body larger than 4096 bytes"
    # uploads have their own limit (2048 here), checked on the file itself too
    up = c.post("/v1/datasets", files={"file": ("big.csv", b"a,b\n" * 1000, "text/csv")}, headers=auth)
    assert up.status_code == 413
    assert not list((secured.data_dir).rglob("big-*.csv"))


def test_cors_preflight_for_configured_origin(secured: Running) -> None:
    r = secured.client.options(
        "/v1/tasks",
        headers={"Origin": "http://dash.example", "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://dash.example"
    other = secured.client.get("/status", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    # refusals made before the body is read still carry CORS headers, so the page can read them
    origin = {"Origin": "http://dash.example"}
    refused = secured.client.post(
        "/v1/datasets", files={"file": ("t.csv", b"a\n", "text/csv")}, headers=origin
    )
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "http://dash.example"
    too_big = secured.client.post(
        "/v1/tasks",
        json={"problem_short_description": "x" * 5000},
        headers={**origin, "Authorization": f"Bearer {TOKEN}"},
    )
    assert too_big.status_code == 413
    assert too_big.headers["access-control-allow-origin"] == "http://dash.example"


def test_ui_mount_serves_the_static_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_memory_api: Callable[..., Running]
) -> None:
    from sustainml.api import app as app_module

    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<h1>dashboard</h1>")
    monkeypatch.setattr(app_module, "STATIC_DIR", static)
    with_ui = make_memory_api()
    assert with_ui.client.get("/ui/").text == "<h1>dashboard</h1>"
    monkeypatch.setattr(app_module, "STATIC_DIR", tmp_path / "absent")
    without = make_memory_api()
    assert without.client.get("/ui/").status_code == 404


def test_openapi_documents_every_route(mem_api: Running) -> None:
    spec = mem_api.client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/", "/user_input", "/config_request", "/status", "/results", "/cancel", "/hf_models_info",
        "/hf_models_compare", "/terminate", "/shutdown", "/v1/tasks", "/v1/tasks/batch", "/v1/tasks/{p}/{i}",
        "/v1/tasks/{p}/{i}/iterate", "/v1/tasks/{p}/{i}/cancel", "/v1/tasks/{p}/{i}/export", "/v1/nodes",
        "/v1/nodes/{node}/config", "/v1/datasets", "/v1/events", "/metrics", "/healthz",
    } <= paths  # fmt: skip
    assert set(spec["paths"]["/status"]) == {"get", "post"} and set(spec["paths"]["/results"]) == {
        "get",
        "post",
    }


# -- pure translations -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("configuration", "node_id", "expected"),
    [
        ("hardwares", None, "HW_RESOURCES"),
        ("modality", None, "ML_MODEL_METADATA"),
        ("metrics, cover_tag: nlp", None, "ML_MODEL_METADATA"),
        ("model_info, resnet-50", None, "ML_MODEL_METADATA"),
        ("dataset_path, data/x.csv", None, "ML_MODEL_METADATA"),
        ("model_from_goal, image-classification", None, "ML_MODEL"),
        ("hf_search, summarise hardwares manuals by modality, 5", None, "ML_MODEL"),  # upstream misrouted
        ("goal", None, "ML_MODEL"),
        ("please list in_out_modalities", None, "ML_MODEL_METADATA"),  # substring fallback
        ("anything else", None, "APP_REQUIREMENTS"),
        ("hardwares", 2, "HW_CONSTRAINTS"),  # explicit node_id wins
        ("hardwares", 7, "HW_RESOURCES"),  # not a pipeline node: keyword routing
    ],
)
def test_configuration_routing(configuration: str, node_id: int | None, expected: str) -> None:
    assert views.route_configuration(configuration, node_id) == expected


def test_api_names_the_pipeline_as_the_topology_does() -> None:
    # The API reads stage names from the message model, not the topology: both must agree.
    assert tuple(stage.node for stage in PIPELINE) == views.NODES
    assert {int(stage.node_id): stage.node for stage in PIPELINE} == views.NODE_OF_ID


def test_unknown_node_config_names_the_valid_nodes(mem_api: Running) -> None:
    r = mem_api.client.post("/v1/nodes/nope/config", json={"configuration": "x"})
    assert r.status_code == 404
    error = r.json()["error"]
    assert error.startswith("unknown node 'nope'")
    assert all(stage.kind in error for stage in PIPELINE)


def test_user_input_rules() -> None:
    ui = views.user_input_from_body({"problem_short_description": "x", "inputs": "a b", "unknown": 1})
    assert ui.inputs == ["a", "b"] and ui.get_extra() == {"model_family": "Transformers", "num_outputs": 1}
    x = {"problem_short_description": "x"}  # a new problem needs a description (views.require_problem)
    ui = views.user_input_from_body({**x, "type": "CNNs", "extra_data": {"type": "Other", "num_outputs": 3}})
    assert ui.get_extra()["model_family"] == "CNNs" and ui.get_extra()["num_outputs"] == 3
    ui = views.user_input_from_body({**x, "extra_data": {"model_family": "RNN", "num_outputs": None}})
    assert ui.get_extra() == {"model_family": "RNN", "num_outputs": 1}
    with pytest.raises(MessageError, match=r"extra_data.num_outputs: must be an integer >= 1, got 0"):
        views.user_input_from_body({**x, "extra_data": {"num_outputs": 0}})


def test_task_figures_from_records_and_sentinels() -> None:
    meta = MLModelMetadata(ml_model_metadata=["image-classification"])
    hw = HWResource(
        hw_description="A100", power_consumption=250.0, latency=0.004, memory_footprint_of_ml_model=98.0
    )
    co2 = CO2Footprint(carbon_footprint=0.012, energy_consumption=30.0, carbon_intensity=400.0)
    full = views.task_figures(
        {"ml_model_metadata": meta, "ml_model": MLModel(model="resnet-50"), "hw_resources": hw,
         "carbon_footprint": co2, "app_requirements": None}
    )  # fmt: skip
    assert full == {
        "goal": "image-classification", "model": "resnet-50", "hardware": "A100", "latency": 0.004,
        "memory_footprint_of_ml_model": 98.0, "power_consumption": 250.0, "energy_consumption": 30.0,
        "carbon_footprint": 0.012, "carbon_intensity": 400.0,
        "stages_done": ["ML_MODEL_METADATA", "APP_REQUIREMENTS", "ML_MODEL", "HW_RESOURCES",
                        "CARBON_FOOTPRINT"],
        "alerts": [],
    }  # fmt: skip
    # halfway: what has not answered is null, not zero
    early = views.task_figures({"ml_model_metadata": meta})
    assert early["goal"] == "image-classification" and early["model"] is None and early["latency"] is None
    assert early["stages_done"] == ["ML_MODEL_METADATA"]
    # NO_MODEL: the downstream zeros are placeholders, not figures
    none = views.task_figures(
        {"ml_model": MLModel(model="NO_MODEL"), "hw_resources": HWResource(hw_description="A100"),
         "carbon_footprint": CO2Footprint()}
    )  # fmt: skip
    assert none["model"] == "NO_MODEL" and none["hardware"] == "A100"
    figures = ("latency", "power_consumption", "energy_consumption", "carbon_footprint", "carbon_intensity")
    assert all(none[name] is None for name in figures)


def test_csv_export_flattens_records() -> None:
    text = views.export_csv(
        {
            "task_id": {"problem_id": 1, "iteration_id": 2},
            "state": "succeeded",
            "error": None,
            "ML_MODEL": {"model": "resnet-50", "input_batch": ["AA=="]},
            "HW_RESOURCES": None,
        }
    )
    assert text.splitlines() == [
        "node,field,value",
        'TASK,task_id,"{""iteration_id"": 2, ""problem_id"": 1}"',
        "TASK,state,succeeded",
        "TASK,error,",
        "ML_MODEL,model,resnet-50",
        'ML_MODEL,input_batch,"[""AA==""]"',
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd.csv", ("passwd", ".csv")),
        ("C:\\Users\\me\\Sales Q1 (final).CSV", ("Sales_Q1_final", ".csv")),
        ("...hidden.json", ("hidden", ".json")),
        ("", ("dataset", "")),
        ("noext", ("noext", "")),
    ],
)
def test_upload_names_are_sanitised(raw: str, expected: tuple[str, str]) -> None:
    assert _safe_name(raw) == expected


def test_model_facts_and_comparison_are_offline_and_deterministic() -> None:
    info = hfcompat.models_info(["resnet-50", "mobilenet-v2", "no-such-model"])
    ok = [m for m in info["models"] if m["status"] == 200]
    assert [m["model_id"] for m in ok] == ["resnet-50", "mobilenet-v2"]
    assert ok[0]["info"]["config"]["parameters"] > 20e6 and ok[0]["info"]["cardData"]["license"]
    assert info["errors"][0]["model_id"] == "no-such-model" and "closest" in info["errors"][0]["error"]
    first = hfcompat.compare(info["models"])
    assert first == hfcompat.compare(json.loads(json.dumps(info["models"])))  # deterministic
    assert first["comparison_summary"].startswith(
        "Compared 3 model(s): resnet-50, mobilenet-v2, no-such-model."
    )
    assert "Smallest: mobilenet-v2" in first["comparison_summary"]
    assert [row["model_id"] for row in first["comparison_table"]] == [
        "resnet-50",
        "mobilenet-v2",
        "no-such-model",
    ]
    assert first["comparison_table"][2]["license"] == "—"
    assert first["model_cards"][2]["best_for"] == ["—"]
    # facts come from the catalogue, never from the caller's text
    forged = [{"model_id": "resnet-50", "info": {"cardData": {"license": "forged"}}}]
    assert hfcompat.compare(forged)["comparison_table"][0]["license"] != "forged"
    many = hfcompat.compare([{"model_id": m} for m in ("resnet-50",) * 9])
    assert len(many["comparison_table"]) == hfcompat.MAX_COMPARED
