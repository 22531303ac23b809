"""Property tests against the generated OpenAPI document: schemathesis generates requests for every
operation (valid and invalid bodies, parameters at their bounds) and sends them to a running
server on the real broker; no answer may be a 5xx, and every answer must conform to the schema
(documented status code, content type and body shape).

``/v1/events`` is left out (an endless stream); ``/terminate`` and ``/shutdown`` are included —
the server's terminate callback only records the call here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err

if TYPE_CHECKING:
    from tests.api.conftest import Running

pytestmark = pytest.mark.integration


MAX_EXAMPLES = 12
# No 5xx, and every answer as documented. Not `positive_data_acceptance`: a schema-valid UserInput
# may still be refused with 422 for a reason a schema cannot state (an iteration base that does
# not exist, an extra_data value of the wrong type).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def _bounded(case: Any) -> Any:
    """Long-polls may ask for up to 300 s by the schema; two are enough to exercise them."""
    if isinstance(case.body, dict) and isinstance(case.body.get("timeout"), int | float):
        case.body["timeout"] = min(case.body["timeout"], 2)
    if isinstance(case.query, dict) and isinstance(case.query.get("wait"), int | float):
        case.query["wait"] = min(case.query["wait"], 2)
    return case


def test_no_server_error_and_every_answer_conforms_to_the_schema(broker_api: Running) -> None:
    # One finished task, so the routes that read "the latest task" have something to read.
    r = broker_api.client.post(
        "/user_input", json={"problem_short_description": "spot potholes in road photos"}
    )
    task_id = r.json()["task_id"]
    assert broker_api.client.post("/results", json={"node_id": 9, "task_id": task_id}).status_code == 200

    schema = schemathesis.openapi.from_url(f"{broker_api.url}/openapi.json").exclude(path="/v1/events")
    failures: dict[str, str] = {}
    tested: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures[f"schema error {len(failures)}"] = str(result.err())
            continue
        operation = result.ok()
        tested.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            _bounded(case).call_and_validate(checks=CHECKS, timeout=30)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    assert len(tested) >= 22, tested
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
