"""The pipeline topology: order, names and the queue/exchange specs derived from it."""

from __future__ import annotations

import pytest

from sustainml.messages.kinds import KIND_OF_NODE, NODE_OF_KIND, RECORD_KINDS, USER_INPUT, NodeID
from sustainml.topology import (
    FINAL_STAGE,
    NODE_NAMES,
    PIPELINE,
    Topology,
    failed_routing_key,
    resolve_stage,
    task_key_of_route,
)
from sustainml.transport.memory.state import topic_matches


def test_pipeline_order_and_inputs_follow_the_issue() -> None:
    assert NODE_NAMES == (
        "ML_MODEL_METADATA",
        "APP_REQUIREMENTS",
        "HW_CONSTRAINTS",
        "ML_MODEL",
        "HW_RESOURCES",
        "CARBON_FOOTPRINT",
    )
    previous = USER_INPUT
    for stage in PIPELINE:
        assert stage.input_kind == previous  # each stage consumes the stage before it
        previous = stage.kind
    by_node = {s.node: s for s in PIPELINE}
    assert by_node["HW_RESOURCES"].callback_inputs == ("ml_model", "app_requirements", "hw_constraints")
    assert by_node["CARBON_FOOTPRINT"].callback_inputs == ("ml_model", "user_input", "hw_resources")
    assert by_node["ML_MODEL"].callback_inputs[3:] == (
        "ml_model_baseline",
        "hw_resources_baseline",
        "carbon_footprint_baseline",
    )


def test_node_ids_are_the_originals() -> None:
    assert [(s.node, int(s.node_id)) for s in PIPELINE] == [
        ("ML_MODEL_METADATA", 4),
        ("APP_REQUIREMENTS", 0),
        ("HW_CONSTRAINTS", 2),
        ("ML_MODEL", 5),
        ("HW_RESOURCES", 3),
        ("CARBON_FOOTPRINT", 1),
    ]
    assert int(NodeID.ORCHESTRATOR) == 7


def test_every_name_carries_the_namespace() -> None:
    topo = Topology("blue")
    names = [e.name for e in topo.exchanges()] + [q.name for q in topo.durable_queues()]
    assert all(n.startswith("blue.") for n in names)
    assert len(names) == len(set(names))
    assert {topo.record_exchange(k) for k in RECORD_KINDS} <= {e.name for e in topo.exchanges()}
    assert topo.private_queue("reply", "abc") == "blue.reply.abc"
    assert Topology.routing_key(3, 2) == "3.2"


def test_work_queues_dead_letter_to_their_own_dlq() -> None:
    topo = Topology("ns")
    specs = {q.name: q for q in topo.durable_queues()}
    for stage in PIPELINE:
        q = specs[topo.stage_queue(stage)]
        assert q.durable and q.dead_letter_exchange == "ns.dlx" and q.dead_letter_routing_key == q.name
        assert [(b.exchange, b.routing_key) for b in q.bindings] == [
            (topo.record_exchange(stage.input_kind), "#")
        ]
        dlq = specs[topo.dead_letter_queue(q.name)]
        assert [(b.exchange, b.routing_key) for b in dlq.bindings] == [("ns.dlx", q.name)]
    results = specs[topo.orchestrator_results_queue]
    assert {b.exchange for b in results.bindings} == {topo.record_exchange(s.kind) for s in PIPELINE}
    assert results.dead_letter_exchange == "ns.dlx"
    assert Topology("ns", "quorum").stage_queue_spec(PIPELINE[0]).queue_type == "quorum"


def test_on_quorum_every_shared_queue_is_replicated() -> None:
    """A classic queue lives on one node: on a cluster that loses that node, a client that
    re-declares the topology on reconnect is refused (its home node is down) and stalls."""
    topo = Topology("ns", "quorum")
    shared = [*topo.durable_queues(), *topo.retry_queues()]
    assert shared and {q.queue_type for q in shared} == {"quorum"}
    # a delay queue's every message goes back into work: dead-lettered at least once
    assert all(q.dead_letter_at_least_once for q in topo.retry_queues())
    assert not any(q.dead_letter_at_least_once for q in topo.durable_queues())
    classic = Topology("ns")
    assert {q.queue_type for q in [*classic.durable_queues(), *classic.retry_queues()]} == {"classic"}


@pytest.mark.parametrize(
    ("name", "node"),
    [
        ("hw_resources", "HW_RESOURCES"),
        ("HW-RESOURCES", "HW_RESOURCES"),
        ("3", "HW_RESOURCES"),
        ("carbon_tracker", "CARBON_FOOTPRINT"),
        ("ml-model", "ML_MODEL"),
    ],
)
def test_resolve_stage_accepts_the_usual_spellings(name: str, node: str) -> None:
    assert resolve_stage(name).node == node


def test_resolve_stage_lists_valid_names() -> None:
    with pytest.raises(KeyError, match="expected one of: ml_model_metadata"):
        resolve_stage("gpu_picker")


def test_the_message_models_stage_names_are_the_pipelines() -> None:
    assert list(NODE_OF_KIND.items()) == [(s.kind, s.node) for s in PIPELINE]
    assert {s.node: s.kind for s in PIPELINE} == KIND_OF_NODE


def test_outcomes_go_to_the_durable_results_queue_and_progress_to_the_progress_queue() -> None:
    """The results queue gets each task's outcome once (the final output, or a failed one); the
    progress queue every successful intermediate output and no failed one."""
    topo = Topology("ns")
    specs = {q.name: q for q in topo.durable_queues()}
    results, progress = specs[topo.orchestrator_results_queue], specs[topo.orchestrator_progress_queue]
    assert progress.dead_letter_exchange is None and progress.message_ttl_ms and progress.max_length
    for stage in PIPELINE:
        exchange = topo.record_exchange(stage.kind)
        for key, failed in (("12.3", False), (failed_routing_key("12.3"), True)):
            to_results = any(
                b.exchange == exchange and topic_matches(b.routing_key, key) for b in results.bindings
            )
            to_progress = any(
                b.exchange == exchange and topic_matches(b.routing_key, key) for b in progress.bindings
            )
            final = stage is FINAL_STAGE
            assert to_results == (final or failed), (stage.node, key)
            assert to_progress == (not final and not failed), (stage.node, key)
        queue = specs[topo.stage_queue(stage)]  # the stage queues take failed outputs too
        assert [b.routing_key for b in queue.bindings] == ["#"]
    assert task_key_of_route(failed_routing_key("12.3")) == "12.3" == task_key_of_route("12.3")
