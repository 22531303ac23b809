"""The dashboard at /ui in a real headless Chromium, over the real API, deployment and broker.

Each test acts as a user would (labels, buttons, the keyboard) and then checks what the page shows
against what the API stores for the same task. Screenshots of the main screens go to
``$SUSTAINML_SCREENSHOTS`` (docs/screenshots when regenerating the docs), else a temporary folder.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import HOLD_MARKER, Dashboard

pytestmark = [pytest.mark.integration, pytest.mark.browser]

STAGE_TIMEOUT_MS = 30_000
NODES = [
    "ML_MODEL_METADATA",
    "APP_REQUIREMENTS",
    "HW_CONSTRAINTS",
    "ML_MODEL",
    "HW_RESOURCES",
    "CARBON_FOOTPRINT",
]


def open_form(page: Page, dash: Dashboard) -> None:
    """The problem view with its lists filled from the nodes' configuration requests."""
    page.goto(f"{dash.url}/ui/#problem")
    for select in ("#f-modality", "#f-goal", "#f-hardware_required", "#f-geo_location_continent"):
        page.wait_for_function(
            "sel => document.querySelector(sel).options.length > 2", arg=select, timeout=STAGE_TIMEOUT_MS
        )


def followed_task(page: Page) -> tuple[int, int]:
    m = re.match(r"Problem (\d+), iteration (\d+)", page.locator("#progress-title").inner_text())
    assert m, page.locator("#progress-title").inner_text()
    return int(m.group(1)), int(m.group(2))


def wait_six_done(page: Page) -> None:
    expect(page.locator("#stages li[data-state=done]")).to_have_count(6, timeout=STAGE_TIMEOUT_MS)
    expect(page.locator("#progress-state")).to_have_attribute("data-state", "succeeded")


def exact_value(title: str | None) -> float:
    """The exact figure a cell carries in its tooltip ("0.00048 kgCO2e")."""
    assert title, "cell without its exact value"
    return float(title.split()[0])


def test_submit_from_the_form_runs_all_six_stages(page: Page, dashboard: Dashboard) -> None:
    open_form(page, dashboard)
    page.get_by_label("Problem short description").fill("detect defects in photos of welded seams")
    page.get_by_label("Modality").select_option("image")
    # Choosing a modality asks ML_MODEL_METADATA for its metrics (the original GUI's behaviour).
    page.wait_for_function("document.querySelector('#f-metric').options.length > 1")
    page.get_by_label("Metric", exact=True).select_option("map@0.5:0.95")
    page.get_by_label("Max memory footprint").fill("200")
    page.get_by_label("Continent").select_option("Europe")
    page.get_by_label("Region").select_option("FR")
    page.get_by_label("Desired carbon footprint").fill("0.5")
    dashboard.shot(page, "problem-form", full_page=True)

    # Keyboard: Enter in a text field submits the form.
    page.get_by_label("Problem short description").press("Enter")
    wait_six_done(page)
    p, i = followed_task(page)
    page.evaluate("window.scrollTo(0, 0)")
    dashboard.shot(page, "progress")
    # The progress came from the server-sent events: each stage output is in the event log.
    expect(page.locator("#conn")).to_have_class(re.compile(r"\bup\b"))
    log = page.locator("#event-log")
    for node in NODES:
        expect(log).to_contain_text(f"Output received. Task {p}.{i}, node {node}")
    page.get_by_role("link", name="Nodes and log").click()
    expect(page.locator("#nodes-table tbody tr")).to_have_count(6)
    dashboard.shot(page, "nodes")
    page.get_by_role("link", name="Problem definition").click()

    task = dashboard.get(f"/v1/tasks/{p}/{i}")
    assert task["state"] == "succeeded"
    ui = task["USER_INPUT"]
    assert ui["problem_short_description"] == "detect defects in photos of welded seams"
    assert ui["modality"] == "image"
    assert ui["geo_location_continent"] == "Europe" and ui["geo_location_region"] == "FR"
    assert ui["desired_carbon_footprint"] == 0.5
    assert ui["extra_data"]["metric"] == "map@0.5:0.95"
    assert task["HW_CONSTRAINTS"]["max_memory_footprint"] == 200
    # The region reached the carbon estimate: France's grid, not the world average.
    assert task["CARBON_FOOTPRINT"]["extra_data"]["grid"]["code"] == "FR"

    # The link at the end opens that iteration in the results.
    page.get_by_role("link", name="Open result").click()
    expect(page.locator("#detail-heading")).to_have_text(f"Problem {p} · iteration {i}")


def test_node_status_panel_lists_every_replica(page: Page, dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.url}/ui/#nodes")
    rows = page.locator("#nodes-table tbody tr")
    expect(rows).to_have_count(6, timeout=10_000)  # one replica per node in this deployment
    api = dashboard.get("/v1/nodes")
    for replica in api["replicas"]:
        row = rows.filter(has_text=replica["replica_id"])
        expect(row).to_have_count(1)
        expect(row.locator(".badge").last).to_have_text(replica["status"])
    strip = page.locator("#node-strip")
    for label in (
        "Task encoder",
        "Requirements",
        "HW constraints",
        "Model provider",
        "HW resources",
        "Carbon footprint",
    ):
        expect(strip).to_contain_text(f"{label} IDLE")


def test_iteration_detail_explains_and_exports(page: Page, dashboard: Dashboard) -> None:
    p, i = dashboard.submit(
        {"problem_short_description": "detect defects in photos of welded seams", "modality": "image"}
    )
    task = dashboard.finished(p, i)
    assert task["state"] == "succeeded", task["error"]
    page.goto(f"{dashboard.url}/ui/#task/{p}/{i}")
    expect(page.locator("#detail-heading")).to_have_text(f"Problem {p} · iteration {i}")

    meta, model, co2 = task["ML_MODEL_METADATA"], task["ML_MODEL"], task["CARBON_FOOTPRINT"]
    goal = meta["ml_model_metadata"][0]
    explain_goal = page.locator("#explain-goal")
    expect(explain_goal).to_contain_text(f"Goal: {goal}")
    expect(explain_goal).to_contain_text(meta["extra_data"]["reason"])

    explain_model = page.locator("#explain-model")
    expect(explain_model).to_contain_text(f"Model: {model['model']}")
    mx = model["extra_data"]
    tables = explain_model.locator("table")
    expect(tables.first.locator("tbody tr")).to_have_count(len(mx["candidates"]))
    if mx["excluded"]:
        excluded = tables.nth(1).locator("tbody tr")
        expect(excluded).to_have_count(len(mx["excluded"]))
        first = mx["excluded"][0]
        expect(excluded.first).to_contain_text(first["reason"])

    explain_carbon = page.locator("#explain-carbon")
    cx = co2["extra_data"]
    expect(explain_carbon.locator(".breakdown li")).to_have_count(len(cx["breakdown"]))
    expect(explain_carbon.locator(".breakdown li").first).to_have_text(cx["breakdown"][0])
    greener = cx["greener_alternatives"]["regions"]["options"]
    expect(explain_carbon).to_contain_text(f"{greener[0]['name']} ({greener[0]['region']})")
    page.locator("#assumptions summary").click()
    expect(page.locator("#assumptions tbody tr")).to_have_count(len(cx["assumptions"]))

    # The headline figures carry their unit, and the exact stored value in the tooltip.
    carbon = page.locator(".kv-row", has_text="Carbon footprint (training)").locator("dd")
    expect(carbon).to_contain_text("CO2e")
    assert exact_value(carbon.get_attribute("title")) == pytest.approx(co2["carbon_footprint"], rel=1e-12)
    intensity = page.locator(".kv-row", has_text="Carbon intensity").locator("dd")
    expect(intensity).to_contain_text("gCO2e/kWh")

    # Every node's raw output is there.
    for node in ["USER_INPUT", *NODES]:
        expect(page.locator(f"#raw-outputs details[data-node={node}]")).to_have_count(1)
    dashboard.shot(page, "iteration-detail", full_page=True)

    with page.expect_download() as info:
        page.get_by_role("link", name="Export JSON").click()
    exported = json.loads(Path(info.value.path()).read_text())
    assert exported["task_id"] == {"problem_id": p, "iteration_id": i}
    assert exported["CARBON_FOOTPRINT"]["carbon_footprint"] == co2["carbon_footprint"]

    with page.expect_download() as info:
        page.get_by_role("link", name="Export CSV").click()
    csv.field_size_limit(1 << 30)  # ML_MODEL's input_batch is megabytes of base64 in one cell
    rows = list(csv.reader(io.StringIO(Path(info.value.path()).read_text())))
    assert rows[0] == ["node", "field", "value"]
    cells = {(r[0], r[1]): r[2] for r in rows[1:]}
    assert cells[("TASK", "state")] == "succeeded"
    assert float(cells[("CARBON_FOOTPRINT", "carbon_footprint")]) == co2["carbon_footprint"]
    assert cells[("ML_MODEL", "model")] == model["model"]


def chart_data(page: Page) -> dict[str, Any]:
    data: dict[str, Any] = page.evaluate(
        """() => {
            const c = window.Chart && Chart.getChart(document.getElementById('compare-chart'));
            return c ? {labels: c.data.labels, values: c.data.datasets[0].data,
                        title: c.options.plugins.title.text} : null;
        }"""
    )
    assert data is not None, "no chart drawn"
    return data


def test_reiterate_then_compare_two_iterations(page: Page, dashboard: Dashboard) -> None:
    p, i = dashboard.submit({"problem_short_description": "detect pedestrians in dashcam video frames"})
    base = dashboard.finished(p, i)
    assert base["state"] == "succeeded", base["error"]
    page.goto(f"{dashboard.url}/ui/#results/{p}")
    expect(page.get_by_role("tab", name=f"Problem {p}")).to_have_attribute("aria-selected", "true")

    # Re-iterate from iteration 1: the form comes back filled, with the previous results shown.
    page.get_by_role("button", name=f"Re-iterate from iteration {i}").click()
    expect(page.locator("#iterate-banner")).to_be_visible()
    expect(page.locator("#previous-results")).to_contain_text(base["ML_MODEL"]["model"])
    expect(page.get_by_label("Problem short description")).to_have_value(
        "detect pedestrians in dashcam video frames"
    )
    page.wait_for_function("document.querySelector('#f-hardware_required').options.length > 2")
    # names that stand for one part (a bare "A100" resolves to the SXM4 part for the task)
    other = "T4" if base["HW_RESOURCES"]["hw_description"] != "T4" else "L4"
    page.get_by_label("Required hardware").select_option(other)
    dashboard.shot(page, "reiterate-form")
    page.get_by_role("button", name=f"Submit iteration of problem {p}").click()
    wait_six_done(page)
    p2, i2 = followed_task(page)
    assert (p2, i2) == (p, i + 1)
    second = dashboard.get(f"/v1/tasks/{p}/{i2}")
    assert second["HW_RESOURCES"]["hw_description"] == other
    assert (
        second["USER_INPUT"]["problem_short_description"] == base["USER_INPUT"]["problem_short_description"]
    )

    # Both iterations in the table; select them and compare.
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(f"{dashboard.url}/ui/#results/{p}")
    expect(page.locator("#iterations-table tbody tr")).to_have_count(2)
    model_cell = page.locator(f"#iterations-table tbody tr[data-iteration='{i2}'] td").nth(3)
    expect(model_cell).to_have_text(second["ML_MODEL"]["model"])
    page.get_by_label(f"Compare iteration {i}").check()
    page.get_by_label(f"Compare iteration {i2}").check()
    page.get_by_role("button", name="Compare selected iterations (2)").click()
    expect(page.locator("#compare-panel")).to_be_visible()
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('compare-chart'))")

    def check(metric: str, values: tuple[float, float], title: str) -> None:
        page.get_by_label("Chart metric").select_option(metric)
        page.wait_for_function(
            "t => Chart.getChart(document.getElementById('compare-chart'))"
            ".options.plugins.title.text.startsWith(t)",
            arg=title,
        )
        data = chart_data(page)
        assert [label[0] for label in data["labels"]] == [f"Iteration {i}", f"Iteration {i2}"]
        assert data["labels"][1][1] == f"{second['ML_MODEL']['model']} on {other}"
        # The chart shows the stored figures in one readable unit: the ratio is the stored one.
        shown = data["values"]
        assert shown[0] / shown[1] == pytest.approx(values[0] / values[1], rel=1e-9)
        assert "[" in data["title"]  # the unit is named

    check("latency", (base["HW_RESOURCES"]["latency"], second["HW_RESOURCES"]["latency"]), "Latency")
    check(
        "power",
        (base["HW_RESOURCES"]["power_consumption"], second["HW_RESOURCES"]["power_consumption"]),
        "Power",
    )
    check(
        "carbon",
        (base["CARBON_FOOTPRINT"]["carbon_footprint"], second["CARBON_FOOTPRINT"]["carbon_footprint"]),
        "Carbon footprint",
    )
    expect(page.locator("#compare-table tbody tr")).to_have_count(2)
    # The table and the chart came from the task list's summaries: one list request for the
    # problem, no request per task.
    assert any(re.search(rf"/v1/tasks\?.*problem_id={p}\b", u) for u in urls), urls
    assert not [u for u in urls if re.search(r"/v1/tasks/\d+/\d+(\?|$)", u)], urls
    dashboard.shot(page, "comparison", full_page=True)


def test_stop_current_task_cancels_it(page: Page, dashboard: Dashboard) -> None:
    gate = dashboard.gate
    gate.held.clear()
    open_form(page, dashboard)
    page.get_by_label("Problem short description").fill(f"{HOLD_MARKER} count cars in traffic camera frames")
    page.get_by_role("button", name="Submit problem").click()
    # The first stage is really working on it (its callback waits on the gate).
    expect(page.locator("#stages li[data-node=ML_MODEL_METADATA]")).to_have_attribute(
        "data-state", "running", timeout=STAGE_TIMEOUT_MS
    )
    assert gate.held.wait(STAGE_TIMEOUT_MS / 1000), "the held task never reached ML_MODEL_METADATA"
    p, i = followed_task(page)
    stop = page.get_by_role("button", name="Stop current task")
    expect(stop).to_be_enabled()
    stop.click()
    expect(page.locator("#progress-state")).to_have_attribute("data-state", "cancelled", timeout=10_000)
    expect(stop).to_be_disabled()
    assert dashboard.get(f"/v1/tasks/{p}/{i}")["state"] == "cancelled"
    dashboard.shot(page, "cancelled")

    # Let the held callback finish: the task stays cancelled and no later stage works on it.
    gate.release.set()
    deadline = time.monotonic() + 15
    while True:
        replicas = dashboard.get("/v1/nodes")["replicas"]
        mm = [r for r in replicas if r["node_name"] == "ML_MODEL_METADATA"]
        if mm and all(r["in_flight"] == 0 for r in mm):
            break
        assert time.monotonic() < deadline, f"ML_MODEL_METADATA still busy: {mm}"
        time.sleep(0.1)  # polling the API with a deadline
    task = dashboard.get(f"/v1/tasks/{p}/{i}")
    assert task["state"] == "cancelled"
    assert [n for n in NODES[1:] if task[n] is not None] == []
    for node in NODES[1:]:
        expect(page.locator(f"#stages li[data-node={node}]")).to_have_attribute("data-state", "skipped")
    expect(page.locator("#progress-state")).to_have_attribute("data-state", "cancelled")


def test_refused_input_names_the_field(page: Page, dashboard: Dashboard, page_errors: list[str]) -> None:
    before = dashboard.get("/v1/tasks?limit=1000")["count"]
    open_form(page, dashboard)
    page.get_by_label("Problem short description").fill("forecast hourly electricity demand")
    page.get_by_label("Minimum samples").fill("-3")
    page.get_by_role("button", name="Submit problem").click()

    field = page.get_by_label("Minimum samples")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    message = page.locator("#e-minimum_samples")
    expect(message).to_be_visible()
    # The page shows the API's own message for the same body.
    status, body = dashboard.http(
        "POST",
        "/v1/tasks",
        {"problem_short_description": "forecast hourly electricity demand", "minimum_samples": -3},
    )
    assert status == 422 and "minimum_samples" in body["error"]
    expect(message).to_have_text(body["error"])
    expect(page.locator("#form-errors")).to_contain_text(body["error"])
    dashboard.shot(page, "validation-error")
    assert dashboard.get("/v1/tasks?limit=1000")["count"] == before
    # Chromium logs the refused request itself; that one error is expected.
    expected = [e for e in page_errors if "422" in e]
    assert len(expected) == 1, page_errors
    page_errors.remove(expected[0])


def test_dataset_upload_fills_the_profile(page: Page, dashboard: Dashboard, tmp_path: Path) -> None:
    rows = ["temperature,vibration,pressure,failure"]
    rows += [f"{20 + k % 7},{0.1 * (k % 5):.1f},{100 + k},{int(k % 9 == 0)}" for k in range(40)]
    csv_file = tmp_path / "pump-sensors.csv"
    csv_file.write_text("\n".join(rows) + "\n")

    open_form(page, dashboard)
    page.get_by_label("Dataset file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Upload and profile").click()
    status = page.locator("#dataset-status")
    expect(status).to_contain_text("Profiled", timeout=STAGE_TIMEOUT_MS)
    expect(status).to_contain_text("40 rows \u00d7 4 columns")  # multiplication sign
    description = page.get_by_label("Description", exact=True)
    expect(description).to_be_visible()
    text = description.input_value()
    assert "40 rows" in text and "pump-sensors" in text
    assert page.get_by_label("Keywords").input_value()
    dashboard.shot(page, "dataset-profile", full_page=True)

    page.get_by_label("Problem short description").fill("predict pump failures from sensor readings")
    page.get_by_role("button", name="Submit problem").click()
    wait_six_done(page)
    p, i = followed_task(page)
    extra = dashboard.get(f"/v1/tasks/{p}/{i}")["USER_INPUT"]["extra_data"]
    stored = Path(extra["dataset_path"])
    assert stored.parent == dashboard.data_dir / "uploads" and stored.read_text() == csv_file.read_text()
    assert extra["dataset_metadata_description"] == text


def test_no_model_message_then_new_problem_with_previous_input(page: Page, dashboard: Dashboard) -> None:
    # Translation models do not fit the original template's 100 MB on PIM_AI_1chip (stated here: the
    # shipped defaults take the hardware's memory): ML_MODEL answers NO_MODEL.
    text = "translate customer emails from German to English"
    template = {"hardware_required": "PIM_AI_1chip", "max_memory_footprint": 100}
    p, i = dashboard.submit({"problem_short_description": text, "extra_data": template})
    task = dashboard.finished(p, i)
    assert task["ML_MODEL"]["model"] == "NO_MODEL"
    page.goto(f"{dashboard.url}/ui/#task/{p}/{i}")
    alert = page.locator("#detail-alert")
    # Said first, with ML_MODEL's own explanation, and in the state cell instead of a bare "succeeded".
    expect(alert).to_contain_text("No feasible model: ")
    expect(alert).to_contain_text(task["ML_MODEL"]["extra_data"].get("explanation", ""))
    expect(page.locator("#detail-summary .alert-no-model")).to_have_text("no feasible model")
    # The zeros behind NO_MODEL are not shown as figures.
    carbon = page.locator(".kv-row", has_text="Carbon footprint (training)").locator("dd")
    expect(carbon).to_have_text("\u2013")  # en dash: no value
    expect(page.get_by_label(f"Compare iteration {i}")).to_be_disabled()

    # New problem with previous input: the form is filled, as a new problem (not an iteration).
    page.get_by_role("button", name="New problem with previous input").click()
    expect(page.get_by_label("Problem short description")).to_have_value(text)
    expect(page.locator("#iterate-banner")).to_be_hidden()
    # Two proposals: the page follows the automatic second iteration to its end.
    page.get_by_label("Max memory footprint").fill("400")
    page.get_by_label("Number of proposals").fill("2")
    page.get_by_role("button", name="Submit problem").click()
    expect(page.locator("#progress-title")).to_contain_text("iteration 2", timeout=STAGE_TIMEOUT_MS)
    wait_six_done(page)
    p2, i2 = followed_task(page)
    assert p2 != p and i2 == 2
    first, second = dashboard.get(f"/v1/tasks/{p2}/1"), dashboard.get(f"/v1/tasks/{p2}/2")
    assert first["USER_INPUT"]["problem_short_description"] == text
    assert first["HW_CONSTRAINTS"]["max_memory_footprint"] == 400
    # The second proposal excludes the first one's model.
    assert second["ML_MODEL"]["model"] != first["ML_MODEL"]["model"]


def test_empty_problem_is_refused_in_the_page_and_by_the_api(
    page: Page, dashboard: Dashboard, page_errors: list[str]
) -> None:
    before = dashboard.get("/v1/tasks?limit=1000")["count"]
    open_form(page, dashboard)
    page.get_by_role("button", name="Submit problem").click()
    field = page.get_by_label("Problem short description")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    expect(page.locator("#e-problem_short_description")).to_contain_text("Describe the problem first")
    # The server refuses the same empty body with the field named (a script, or a page of old).
    status, body = dashboard.http("POST", "/v1/tasks", {"modality": "image"})
    assert status == 422 and body["error"].startswith(
        "UserInput.problem_short_description: describe the problem"
    )
    status, body = dashboard.http("POST", "/user_input", {"problem_short_description": "  "})
    assert status == 422 and "problem_short_description" in body["error"]
    assert dashboard.get("/v1/tasks?limit=1000")["count"] == before  # no failed task was created
    expect(page.locator("#node-strip")).not_to_contain_text("ERROR")
    assert page_errors == []


def test_problem_tabs_carry_their_descriptions(page: Page, dashboard: Dashboard) -> None:
    p, i = dashboard.submit({"problem_short_description": "classify the sentiment of hotel reviews"})
    dashboard.finished(p, i)
    page.goto(f"{dashboard.url}/ui/#results/{p}")
    tab = page.get_by_role("tab", name=re.compile(rf"^Problem {p}\b"))
    expect(tab).to_contain_text("classify the sentiment of hot")
    expect(tab).to_have_attribute("title", f"Problem {p}: classify the sentiment of hotel reviews")
