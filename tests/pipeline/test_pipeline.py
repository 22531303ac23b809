"""End-to-end pipeline scenarios, run on both transports (in-memory and the real broker)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from sustainml.deployment import LocalDeployment
from sustainml.messages import (
    HWConstraints,
    NodeStatus,
    Status,
    TaskId,
    UserInput,
    to_wire,
)
from sustainml.messages import headers as H
from sustainml.messages.tasks import TaskEvent
from sustainml.orchestrator.client import StageEvent
from sustainml.topology import PIPELINE, Topology
from sustainml.transport.base import Delivery, Message
from sustainml.workers.logic import hw_constraints as shipped_hw_constraints
from tests.support.waiting import wait_until

DeploymentFactory = Callable[..., LocalDeployment]

WELD = "detect defects in photos of welded seams"


def _ui(description: str = WELD, **extra: Any) -> UserInput:
    ui = UserInput(problem_short_description=description, modality="image")
    ui.set_extra(extra)
    return ui


def test_one_task_flows_through_all_six_stages(deploy: DeploymentFactory) -> None:
    dep = deploy()
    client = dep.client()
    events: list[StageEvent] = []
    task_id = client.submit(_ui(hardware_required="PIM_AI_1chip"), watch=True)
    assert task_id == TaskId(problem_id=1, iteration_id=1)
    res = client.wait(task_id, 30, events.append)
    assert res.state == "succeeded", res.error
    assert [e.node for e in events] == [s.node for s in PIPELINE]  # in pipeline order, each once
    assert set(res.outputs) == {s.kind for s in PIPELINE}
    for rec in res.outputs.values():
        assert to_wire(rec)["task_id"] == to_wire(task_id)
    hw = res.outputs["hw_constraints"]
    assert isinstance(hw, HWConstraints)
    assert hw.hardware_required == ["PIM_AI_1chip"]
    assert hw.max_memory_footprint == 2000  # the named device's memory (2 GB), not the template's 100 MB
    meta = res.outputs["ml_model_metadata"]
    assert meta.ml_model_metadata and meta.ml_model_metadata[0]  # type: ignore[attr-defined]
    co2 = res.outputs["carbon_footprint"]
    assert co2.carbon_intensity > 0  # type: ignore[attr-defined]


def test_submit_many_starts_a_batch_and_a_running_task_shows_outputs_not_stored_yet(
    deploy: DeploymentFactory,
) -> None:
    """Many new problems in one transaction, all started; records are stored with the outcome."""
    gate = threading.Event()
    from sustainml.workers.logic import hw_resources

    def held_hw_resources(*args: Any) -> None:
        gate.wait(20)
        hw_resources.task_callback(*args)

    dep = deploy(callbacks={"HW_RESOURCES": held_hw_resources})
    assert dep.orchestrator is not None
    outcomes = dep.orchestrator.submit_many([_ui(f"{WELD} #{n}") for n in range(5)])
    ids = [t for t in outcomes if isinstance(t, TaskId)]
    assert len(ids) == 5 and len(set(ids)) == 5 and all(t.iteration_id == 1 for t in ids)
    client = dep.client()
    # current_stage is written behind from the progress queue; outputs are stored only with the
    # outcome, and until then `result` shows the ones the orchestrator saw go by.
    wait_until(lambda: client.result(ids[0]).current_stage == "HW_RESOURCES", 15.0, "progress written")
    assert dep.orchestrator.db.get_outputs(ids[0]) == {}
    assert list(client.result(ids[0]).outputs) == [s.kind for s in PIPELINE[:4]]
    gate.set()
    results = client.wait_many(ids, 30)
    assert {r.state for r in results.values()} == {"succeeded"}
    assert all(set(r.outputs) == {s.kind for s in PIPELINE} for r in results.values())


def test_three_concurrent_tasks_with_random_delays_keep_their_ids(deploy: DeploymentFactory) -> None:
    rng = random.Random(7)
    lock = threading.Lock()
    seen: list[tuple[str, TaskId]] = []

    def slow(inner: Any, node: str) -> Any:
        def callback(*args: Any) -> None:
            with lock:
                delay = rng.uniform(0.0, 0.15)
            time.sleep(delay)
            output = args[-1]
            with lock:
                seen.append((node, output.task_id))
            inner(*args)

        return callback

    callbacks = {}
    for stage in PIPELINE:
        logic = __import__(f"sustainml.workers.logic.{stage.kind}", fromlist=["task_callback"])
        callbacks[stage.node] = slow(logic.task_callback, stage.node)
    dep = deploy(callbacks=callbacks)
    client = dep.client()
    descriptions = [WELD, "translate support tickets from German to English", "forecast hourly power demand"]
    ids = [client.submit(_ui(d), watch=True) for d in descriptions]
    results = client.wait_many(ids, 60)
    assert {r.task_id for r in results.values()} == set(ids)
    for tid in ids:
        res = results[tid]
        assert res.state == "succeeded", res.error
        assert res.user_input is not None and res.user_input.task_id == tid
        assert res.user_input.problem_short_description == descriptions[ids.index(tid)]
        for rec in res.outputs.values():
            assert to_wire(rec)["task_id"] == to_wire(tid)
    # each stage ran each task exactly once
    assert sorted(seen, key=str) == sorted(((s.node, t) for s in PIPELINE for t in ids), key=str)


def test_iteration_inherits_input_and_gets_baselines(deploy: DeploymentFactory) -> None:
    baselines: dict[TaskId, tuple[Any, Any, Any]] = {}
    from sustainml.workers.logic import ml_model as shipped_ml_model

    def recording_ml_model(
        meta: Any, app: Any, hw: Any, mb: Any, hb: Any, cb: Any, status: Any, out: Any
    ) -> None:
        baselines[out.task_id] = (mb, hb, cb)
        shipped_ml_model.task_callback(meta, app, hw, mb, hb, cb, status, out)

    dep = deploy(callbacks={"ML_MODEL": recording_ml_model})
    client = dep.client()
    first = client.wait(client.submit(_ui(region="France"), watch=True), 30)
    assert first.state == "succeeded"
    nxt = UserInput(previous_iteration=1, geo_location_region="Germany")
    nxt.set_extra({"previous_problem_id": first.task_id.problem_id})
    second_id = client.submit(nxt, watch=True)
    assert second_id == TaskId(problem_id=1, iteration_id=2)
    second = client.wait(second_id, 30)
    assert second.state == "succeeded"
    assert second.user_input is not None
    assert second.user_input.problem_short_description == WELD  # inherited
    assert second.user_input.geo_location_region == "Germany"  # overridden
    mb1, hb1, cb1 = baselines[first.task_id]
    assert mb1.model == "" and hb1.latency == 0.0 and cb1.carbon_footprint == 0.0  # empty for iteration 1
    mb2, hb2, cb2 = baselines[second_id]
    assert mb2.task_id == second_id  # re-stamped
    assert mb2.model == first.outputs["ml_model"].model  # type: ignore[attr-defined]
    assert hb2.latency == first.outputs["hw_resources"].latency  # type: ignore[attr-defined]
    assert cb2.carbon_footprint == first.outputs["carbon_footprint"].carbon_footprint  # type: ignore[attr-defined]
    # -1 means "the latest iteration of the problem"
    latest = UserInput(previous_iteration=-1)
    latest.set_extra({"previous_problem_id": 1})
    assert client.submit(latest) == TaskId(problem_id=1, iteration_id=3)
    # a new problem gets the next problem id
    assert client.submit(_ui("classify bird songs")) == TaskId(problem_id=2, iteration_id=1)


def test_automatic_iterations_exclude_previous_models(deploy: DeploymentFactory) -> None:
    dep = deploy()
    client = dep.client()
    # a goal with several image models in the catalogue, so three iterations can differ
    first = client.submit(_ui(num_outputs=3, goal="object-detection"), watch=True)
    client.wait(first, 30)
    ids = [TaskId(problem_id=1, iteration_id=i) for i in (1, 2, 3)]

    def all_done() -> bool:
        try:
            return all(client.result(t).done for t in ids)
        except Exception:
            return False

    wait_until(all_done, 30, "three automatic iterations")
    models = [client.result(t).outputs["ml_model"].model for t in ids]  # type: ignore[attr-defined]
    assert len(set(models)) == 3, models  # each iteration proposes a model not proposed before
    with pytest.raises(Exception, match="does not exist"):
        client.result(TaskId(problem_id=1, iteration_id=4))


def test_cancel_stops_later_stages(deploy: DeploymentFactory) -> None:
    gate = threading.Event()
    reached_later: list[TaskId] = []
    from sustainml.workers.logic import app_requirements, hw_resources

    def blocking_app_requirements(*args: Any) -> None:
        gate.wait(20)
        app_requirements.task_callback(*args)

    def recording_hw_resources(*args: Any) -> None:
        reached_later.append(args[-1].task_id)
        hw_resources.task_callback(*args)

    dep = deploy(
        callbacks={"APP_REQUIREMENTS": blocking_app_requirements, "HW_RESOURCES": recording_hw_resources}
    )
    client = dep.client()
    tid = client.submit(_ui(), watch=True)
    wait_until(
        lambda: client.result(tid).current_stage == "APP_REQUIREMENTS", 15.0, "task at APP_REQUIREMENTS"
    )
    assert client.cancel() == tid  # empty cancel = the latest unfinished task
    time.sleep(0.3)  # let the STOP_TASK broadcast reach every replica's control queue
    gate.set()
    res = client.wait(tid, 10)
    assert res.state == "cancelled"
    time.sleep(1.0)  # give a (wrong) later stage time to run before asserting it did not
    assert tid not in reached_later
    assert "hw_resources" not in client.result(tid).outputs


def test_callback_that_raises_fails_the_task_with_its_message(deploy: DeploymentFactory) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("model catalogue unreadable")

    dep = deploy(callbacks={"ML_MODEL": broken})
    client = dep.client()
    events: list[StageEvent] = []
    tid = client.submit(_ui(), watch=True)
    res = client.wait(tid, 30, events.append)
    assert res.state == "failed"
    assert res.error is not None and "ML_MODEL" in res.error and "model catalogue unreadable" in res.error
    ml_model = res.outputs["ml_model"]
    assert "model catalogue unreadable" in ml_model.get_extra()["error"]
    assert "hw_resources" not in res.outputs  # later stages do not work on a failed task
    # The orchestrator consumes each stage's output queue on its own, so the HW_CONSTRAINTS event
    # may be reported just after ML_MODEL's failure when the two outputs arrive together; what
    # matters is that ML_MODEL's is the one failure and no later stage reported anything.
    assert [e.node for e in events if e.failed] == ["ML_MODEL"]
    assert {e.node for e in events}.isdisjoint({"HW_RESOURCES", "CARBON_FOOTPRINT"})
    # the node is healthy again for the next task (input was acked, no poison loop)
    again = client.wait(client.submit(_ui()), 30)
    assert again.state == "failed" and again.task_id == TaskId(problem_id=2, iteration_id=1)


def test_wait_hands_on_progress_the_last_event_even_when_the_poll_sees_the_end_first(
    deploy: DeploymentFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The orchestrator stores an output before it announces it: a wait() that polls in between
    # finds the task finished while its last events are still on the way.
    dep = deploy()
    assert dep.orchestrator is not None
    announce = dep.orchestrator.watchers.announce

    def late_final_event(event: TaskEvent, watch: Any = None) -> Any:
        if event.state in ("succeeded", "failed"):
            time.sleep(1.4)  # past wait()'s 1 s poll, which then finds the stored result
        return announce(event, watch)

    monkeypatch.setattr(dep.orchestrator.watchers, "announce", late_final_event)
    client = dep.client()
    events: list[StageEvent] = []
    res = client.wait(client.submit(_ui(), watch=True), 30, events.append)
    assert res.state == "succeeded"
    assert [e.node for e in events][-1] == PIPELINE[-1].node


def test_callback_may_mark_the_task_failed_through_node_status(deploy: DeploymentFactory) -> None:
    def refuse(user_input: Any, status: NodeStatus, output: Any) -> None:
        status.node_status = Status.ERROR
        status.error_description = "no hardware matches"

    dep = deploy(callbacks={"HW_CONSTRAINTS": refuse})
    client = dep.client()
    res = client.wait(client.submit(_ui(), watch=True), 30)
    assert res.state == "failed"
    assert res.error == "HW_CONSTRAINTS: no hardware matches"


def test_malformed_message_is_dead_lettered_with_reason(deploy: DeploymentFactory, transports: Any) -> None:
    dep = deploy()
    topo = Topology(dep.settings.namespace)
    stage = PIPELINE[0]
    t = transports("test-publisher")
    t.connect()
    try:
        t.publish(topo.record_exchange(stage.input_kind), "1.1", Message(b"\xc1 not msgpack")).result(5)
        dlq = topo.dead_letter_queue(topo.stage_queue(stage))
        wait_until(lambda: t.queue_counts(dlq)[0] == 1, 15.0, "message in the DLQ")
        got: list[Message] = []

        def take(delivery: Delivery) -> None:
            got.append(delivery.message)
            delivery.ack()

        t.consume(dlq, take, prefetch=1)
        wait_until(lambda: got, 15.0, "dead letter delivered")
        assert got[0].body == b"\xc1 not msgpack"
        assert "invalid message" in got[0].headers[H.H_DEAD_REASON]
        assert got[0].headers[H.H_DEAD_QUEUE] == topo.stage_queue(stage)
        # the worker keeps consuming: a real task still completes
        client = dep.client()
        assert client.wait(client.submit(_ui()), 30).state == "succeeded"
    finally:
        t.close()


def test_config_rpc_round_trip_and_node_errors(deploy: DeploymentFactory) -> None:
    dep = deploy()
    client = dep.client()
    res = client.config("hw_resources", "hardwares")
    assert res.success and res.node_id == 3
    assert "PIM_AI_1chip" in res.configuration
    bad = client.config("hw_constraints", "what is this")
    assert not bad.success and bad.err_code == 1  # the node's own verdict travels back
    assert "Unsupported configuration request" in bad.configuration
    # orchestrator-side API (transaction ids from its counter)
    assert dep.orchestrator is not None
    r1 = dep.orchestrator.config_request("ML_MODEL_METADATA", "modality")
    r2 = dep.orchestrator.config_request(4, "modality")
    assert r1.success and r2.transaction_id == r1.transaction_id + 1


def test_config_rpc_times_out_clearly_without_replica(deploy: DeploymentFactory) -> None:
    dep = deploy(replicas={"carbon_footprint": 0})
    client = dep.client()
    start = time.monotonic()
    res = client.config("carbon_footprint", "regions", timeout=1.0)
    elapsed = time.monotonic() - start
    assert not res.success
    assert "did not answer within 1 s" in res.configuration
    assert elapsed < 3.0


def test_node_registry_tracks_replicas(deploy: DeploymentFactory) -> None:
    dep = deploy(replicas={"hw_resources": 2})
    client = dep.client()

    def all_idle() -> bool:
        st = client.status()
        return all(s == "IDLE" for s in st["nodes"].values())

    wait_until(all_idle, 10, "six IDLE nodes")
    st = client.status()
    assert sum(1 for r in st["replicas"] if r["node_name"] == "HW_RESOURCES") == 2
    victim = next(n for n in dep.nodes if n.node_name == "CARBON_FOOTPRINT")
    dep.stop_node(victim)
    wait_until(
        lambda: client.status()["nodes"]["CARBON_FOOTPRINT"] == "INACTIVE", 10, "CARBON_FOOTPRINT INACTIVE"
    )


def test_many_tasks_from_parallel_clients_get_unique_ids(deploy: DeploymentFactory) -> None:
    dep = deploy()
    clients = [dep.client() for _ in range(3)]

    def submit_some(c: Any) -> list[TaskId]:
        return [c.submit(_ui(f"task {i}")) for i in range(5)]

    with ThreadPoolExecutor(3) as pool:
        ids = [tid for batch in pool.map(submit_some, clients) for tid in batch]
    assert len(set(ids)) == 15
    assert {t.problem_id for t in ids} == set(range(1, 16))
    results = clients[0].wait_many(ids, 60)
    assert all(r.state == "succeeded" for r in results.values())


def test_shipped_hw_constraints_forwards_the_extra_data_as_the_seed_does() -> None:
    # The seed's defaults (PIM_AI_1chip, 100 MB) stay in the seed template (tests/compat); the
    # shipped node lets HW_RESOURCES choose among rentable server devices and takes their memory.
    ui = UserInput(task_id=TaskId(problem_id=1, iteration_id=1))
    ui.set_extra({"hf_token": "x", "model_family": "CNNs"})
    out = HWConstraints(task_id=ui.task_id)
    shipped_hw_constraints.task_callback(ui, NodeStatus(), out)
    assert out.hardware_required == ["auto"] and out.max_memory_footprint > 100_000
    extra = out.get_extra()
    assert {k: extra[k] for k in ("hf_token", "model_family")} == {"hf_token": "x", "model_family": "CNNs"}


def test_control_pause_holds_tasks_in_the_queue_and_resume_finishes_them(deploy: DeploymentFactory) -> None:
    from sustainml.messages import CmdNode

    dep = deploy()
    client = dep.client()
    wait_until(lambda: client.status()["nodes"]["HW_RESOURCES"] == "IDLE", 10, "HW_RESOURCES IDLE")
    client.control("hw_resources", cmd_node=CmdNode.CMD_STOP_NODE)
    wait_until(lambda: client.status()["nodes"]["HW_RESOURCES"] == "INACTIVE", 10, "HW_RESOURCES paused")
    tid = client.submit(_ui(), watch=True)
    wait_until(lambda: client.result(tid).current_stage == "HW_RESOURCES", 15, "task waiting at HW_RESOURCES")
    time.sleep(0.5)
    assert client.result(tid).state == "running"  # held in the durable queue, not lost
    client.control("hw_resources", cmd_node=CmdNode.CMD_START_NODE)
    assert client.wait(tid, 30).state == "succeeded"


def test_orchestrator_restart_resumes_ids_from_the_taskdb(
    deploy: DeploymentFactory, tmp_path: Any, transports: Any
) -> None:
    from sustainml.orchestrator.core import Orchestrator
    from sustainml.orchestrator.taskdb import TaskDB

    db_url = f"sqlite:///{tmp_path / 'restart.sqlite3'}"
    dep = deploy(db_url=db_url)
    client = dep.client()
    first = [client.submit(_ui(f"problem {i}")) for i in range(2)]
    client.wait_many(first, 30)
    assert dep.orchestrator is not None
    dep.orchestrator.close()  # the orchestrator goes away...
    replacement = Orchestrator(dep.settings, transport=transports("orchestrator-2"), db=TaskDB(db_url))
    replacement.start()  # ...and a new one takes over the same TaskDB
    try:
        nxt = client.submit(_ui("after the restart"))
        assert nxt == TaskId(problem_id=3, iteration_id=1)
        it = UserInput(previous_iteration=1)
        it.set_extra({"previous_problem_id": 1})
        assert client.submit(it) == TaskId(problem_id=1, iteration_id=2)
        assert client.wait(nxt, 30).state == "succeeded"
    finally:
        replacement.close()
        replacement.transport.close()
        replacement.db.close()


def test_terminate_command_stops_a_node_gracefully(deploy: DeploymentFactory) -> None:
    from sustainml.messages import CmdNode

    dep = deploy()
    client = dep.client()
    wait_until(lambda: client.status()["nodes"]["APP_REQUIREMENTS"] == "IDLE", 10, "APP_REQUIREMENTS IDLE")
    client.control("app_requirements", cmd_node=CmdNode.CMD_TERMINATE_NODE)
    wait_until(
        lambda: client.status()["nodes"]["APP_REQUIREMENTS"] == "INACTIVE", 10, "APP_REQUIREMENTS gone"
    )
    assert client.status()["nodes"]["ML_MODEL"] == "IDLE"  # only the target stopped


@pytest.mark.postgres
def test_pipeline_with_a_postgresql_taskdb(deploy: DeploymentFactory, postgres_url: str) -> None:
    dep = deploy(db_url=postgres_url)
    client = dep.client()
    ids = [client.submit(_ui(f"segment tumours in MRI scans {i}")) for i in range(3)]
    results = client.wait_many(ids, 60)
    assert [results[t].state for t in ids] == ["succeeded"] * 3
    assert dep.orchestrator is not None and dep.orchestrator.db.dialect == "postgresql"


def test_automatic_carbon_optimisation_iterates_until_the_target_is_met(deploy: DeploymentFactory) -> None:
    """The orchestrator follows the carbon node's next options (here a scripted carbon node whose
    estimate falls with each change) and stops once the estimate is under the target."""
    from sustainml.messages import CO2Footprint

    def scripted_carbon(ml_model: Any, user_input: Any, hw: Any, status: Any, co2: CO2Footprint) -> None:
        steps = len(user_input.get_extra().get("optimization", {}).get("steps", []))
        co2.carbon_footprint = [3.0, 2.0, 0.5][min(steps, 2)]
        co2.energy_consumption = co2.carbon_footprint * 2000
        co2.carbon_intensity = 500.0
        co2.set_extra(
            {
                "model_restrains": [ml_model.model],
                "next_options": [
                    {"kind": "hardware", "hardware": "T4", "estimated_kg": 2.0},
                    {"kind": "model", "exclude": ml_model.model, "estimated_kg": 0.5},
                ],
            }
        )

    dep = deploy(callbacks={"CARBON_FOOTPRINT": scripted_carbon})
    client = dep.client()
    ui = _ui()
    ui.optimize_carbon_footprint_auto = True
    ui.desired_carbon_footprint = 1.0
    first = client.submit(ui, watch=True)
    ids = [TaskId(problem_id=1, iteration_id=i) for i in (1, 2, 3)]

    def chain_done() -> bool:
        try:
            return client.result(ids[2]).note is not None
        except Exception:
            return False

    assert client.wait(first, 30).state == "succeeded"
    wait_until(chain_done, 30, "three optimisation iterations")
    second, third = client.result(ids[1]), client.result(ids[2])
    assert second.user_input is not None and third.user_input is not None
    assert second.user_input.get_extra()["hardware_required"] == "T4"  # first option: other hardware
    assert third.user_input.get_extra()["model_restrains"][-1] == second.outputs["ml_model"].model  # type: ignore[attr-defined]
    note = client.result(ids[2]).note
    assert note is not None and "target 1 kgCO2e met at 1.3" in note
    with pytest.raises(Exception, match="does not exist"):
        client.result(TaskId(problem_id=1, iteration_id=4))


def test_automatic_carbon_optimisation_stops_when_options_run_out(deploy: DeploymentFactory) -> None:
    from sustainml.messages import CO2Footprint

    def stubborn_carbon(ml_model: Any, user_input: Any, hw: Any, status: Any, co2: CO2Footprint) -> None:
        co2.carbon_footprint = 5.0
        co2.carbon_intensity = 500.0
        co2.set_extra(
            {"model_restrains": [ml_model.model], "next_options": [{"kind": "hardware", "hardware": "T4"}]}
        )

    dep = deploy(callbacks={"CARBON_FOOTPRINT": stubborn_carbon})
    client = dep.client()
    ui = _ui()
    ui.optimize_carbon_footprint_auto = True
    ui.desired_carbon_footprint = 1.0
    client.wait(client.submit(ui, watch=True), 30)
    last = TaskId(problem_id=1, iteration_id=2)

    def final_note() -> str | None:
        try:
            return client.result(last).note  # the iteration may not exist yet
        except Exception:
            return None

    wait_until(final_note, 30, "the final note")
    note = client.result(last).note
    assert note is not None and "not met; no option left" in note
