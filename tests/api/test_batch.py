"""``POST /v1/tasks/batch`` on a server over the in-memory deployment: every item checked as
``POST /v1/tasks`` checks its body, refusals naming the item's index and field while the other
items are still submitted, the size bounds, and a retry with the same ``Idempotency-Key``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sustainml.api.schemas import MAX_BATCH_TASKS

if TYPE_CHECKING:
    from tests.api.conftest import Running


def _description(api: Running, task_id: dict[str, int]) -> str:
    detail = api.client.get(f"/v1/tasks/{task_id['problem_id']}/{task_id['iteration_id']}").json()
    return str(detail["USER_INPUT"]["problem_short_description"])


def test_valid_items_are_submitted_and_each_bad_one_is_named_by_index_and_field(mem_api: Running) -> None:
    items: list[dict[str, Any]] = [
        {"problem_short_description": "forecast daily sales of a bakery"},
        {"problem_short_description": "count cars", "minimum_samples": -3},  # the schema's check
        {"modality": "image"},  # no description: the data model's check
        {"problem_short_description": "count cars", "extra_data": {"num_outputs": 99}},  # the orchestrator's
        {"problem_short_description": "count cars", "colour": "red"},  # unknown field
        {"problem_short_description": "detect defects in photos of welded seams", "modality": "image"},
    ]
    r = mem_api.client.post("/v1/tasks/batch", json={"tasks": items})
    assert r.status_code == 201, r.text
    answer = r.json()
    assert (answer["submitted"], answer["refused"]) == (2, 4)
    assert [item["index"] for item in answer["tasks"]] == list(range(6))
    errors = [item["error"] for item in answer["tasks"]]
    assert errors[0] is None and errors[5] is None
    assert errors[1] == "tasks[1].minimum_samples: Input should be greater than or equal to 0"
    assert errors[2].startswith("tasks[2]: UserInput.problem_short_description: describe the problem")
    assert errors[3].startswith("tasks[3]: extra_data.num_outputs: at most 10")
    assert errors[4] == "tasks[4].colour: Extra inputs are not permitted"
    assert answer["error"] == errors[1]  # the first refusal, as every error answer carries one
    created = [item["task_id"] for item in answer["tasks"] if item["task_id"] is not None]
    assert [_description(mem_api, t) for t in created] == [
        items[0]["problem_short_description"],
        items[5]["problem_short_description"],
    ]


def test_a_batch_of_only_refused_items_is_422_and_creates_nothing(mem_api: Running) -> None:
    before = mem_api.client.get("/v1/tasks", params={"summary": False}).json()["count"]
    r = mem_api.client.post("/v1/tasks/batch", json={"tasks": [{"minimum_samples": "many"}, {}]})
    assert r.status_code == 422
    answer = r.json()
    assert (answer["submitted"], answer["refused"]) == (0, 2)
    assert (
        answer["error"]
        == "tasks[0].minimum_samples: Input should be a valid integer, unable to parse string as an integer"
    )
    assert mem_api.client.get("/v1/tasks", params={"summary": False}).json()["count"] == before


def test_the_batch_itself_is_bounded(make_memory_api: Callable[..., Running]) -> None:
    api = make_memory_api(api_max_body=4096)
    none = api.client.post("/v1/tasks/batch", json={"tasks": []})
    assert none.status_code == 422
    assert none.json()["error"] == "body.tasks: List should have at least 1 item after validation, not 0"
    not_objects = api.client.post("/v1/tasks/batch", json={"tasks": ["count cars"]})
    assert not_objects.status_code == 422
    assert not_objects.json()["error"] == "body.tasks.0: Input should be a valid dictionary"
    big = {"problem_short_description": "x" * 5000}
    assert api.client.post("/v1/tasks/batch", json={"tasks": [big]}).status_code == 413


def test_too_many_items_are_refused_naming_the_limit(mem_api: Running) -> None:
    r = mem_api.client.post("/v1/tasks/batch", json={"tasks": [{}] * (MAX_BATCH_TASKS + 1)})
    assert r.status_code == 422
    limit = f"at most {MAX_BATCH_TASKS} items after validation, not {MAX_BATCH_TASKS + 1}"
    assert r.json()["error"] == f"body.tasks: List should have {limit}"


def test_a_retry_with_the_same_idempotency_key_returns_the_same_tasks(mem_api: Running) -> None:
    body = {"tasks": [{"problem_short_description": f"forecast sales of shop {i}"} for i in range(3)]}
    first = mem_api.client.post("/v1/tasks/batch", json=body, headers={"Idempotency-Key": "nightly-42"})
    again = mem_api.client.post("/v1/tasks/batch", json=body, headers={"Idempotency-Key": "nightly-42"})
    other = mem_api.client.post("/v1/tasks/batch", json=body, headers={"Idempotency-Key": "nightly-43"})
    assert first.status_code == again.status_code == other.status_code == 201
    ids = [item["task_id"] for item in first.json()["tasks"]]
    assert [item["task_id"] for item in again.json()["tasks"]] == ids
    assert not {str(item["task_id"]) for item in other.json()["tasks"]} & {str(t) for t in ids}
