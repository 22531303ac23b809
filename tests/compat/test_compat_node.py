"""The compat node classes in a deployment on the in-memory transport: the seed template's callbacks,
an accessor-style ML_MODEL callback, failures, configuration replies and class-level terminate()."""

from __future__ import annotations

import importlib
import importlib.util
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sustainml.compat.node import CompatNode
from sustainml.compat.nodes.HardwareConstraintsNode import HardwareConstraintsNode
from sustainml.compat.nodes.MLModelNode import MLModelNode
from sustainml.config import Settings
from sustainml.deployment import LocalDeployment, TransportFactory, memory_transports
from sustainml.messages import HWConstraints, MLModel, UserInput
from sustainml.messages.types import ErrorCode
from sustainml.orchestrator.client import Client
from sustainml.transport.base import Transport
from sustainml.workers import nodes as runtime_nodes

SEED = Path(__file__).with_name("seed_hw_constraints_node.py")
SEED_EXTRA = {
    "hardware_required": "PIM_AI_1chip",
    "max_memory_footprint": 200,
    "hf_token": "x",
    "model_family": "CNNs",
}


def load_seed() -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"seed_{uuid.uuid4().hex[:6]}", SEED)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the template's main block is guarded: nothing runs
    return module


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        broker_url="amqp://unused/",
        namespace=f"t-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        heartbeat_interval=0.5,
        rpc_timeout=5.0,
    )


class Running:
    """A deployment without one shipped node, and helpers to run compat replicas beside it."""

    def __init__(self, settings: Settings, transports: TransportFactory, dep: LocalDeployment) -> None:
        self.settings = settings
        self.transports = transports
        self.dep = dep
        self.client: Client = dep.client()
        self.threads: list[threading.Thread] = []
        self.opened: list[Transport] = []

    def spin(self, node_cls: type[CompatNode], callback: Any, service_callback: Any = None) -> CompatNode:
        transport = self.transports(node_cls.STAGE.node)
        self.opened.append(transport)
        node = node_cls(callback, service_callback, settings=self.settings, transport=transport)
        thread = threading.Thread(target=node.spin, name=f"compat-{node_cls.__name__}", daemon=True)
        thread.start()
        self.threads.append(thread)
        return node

    def wait_status(self, node: str, wanted: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.client.status()["nodes"][node] != wanted:
            assert time.monotonic() < deadline, f"{node} never became {wanted}"
            time.sleep(0.05)


def _deployment(settings: Settings, without: str) -> Iterator[Running]:
    transports = memory_transports()
    with LocalDeployment(settings, transports, replicas={without: 0}) as dep:
        running = Running(settings, transports, dep)
        try:
            yield running
        finally:
            CompatNode.terminate()  # every compat node of this test
            for thread in running.threads:
                thread.join(15)
            for transport in running.opened:
                transport.close(timeout=5.0)
    assert not any(th.is_alive() for th in running.threads)


@pytest.fixture
def without_hw_constraints(settings: Settings) -> Iterator[Running]:
    yield from _deployment(settings, "hw_constraints")


@pytest.fixture
def without_ml_model(settings: Settings) -> Iterator[Running]:
    yield from _deployment(settings, "ml_model")


def _ui(**extra: Any) -> UserInput:
    record = UserInput(problem_short_description="segment cracks in photos of concrete", modality="image")
    record.set_extra(extra)
    return record


@pytest.mark.parametrize("name", sorted(runtime_nodes.NODE_CLASSES))
def test_each_upstream_module_path_gives_the_compat_class(name: str) -> None:
    runtime_cls = runtime_nodes.NODE_CLASSES[name]
    module = importlib.import_module(f"sustainml.compat.nodes.{runtime_cls.__name__}")
    compat_cls = getattr(module, runtime_cls.__name__)
    assert issubclass(compat_cls, CompatNode) and issubclass(compat_cls, runtime_cls)
    assert compat_cls.STAGE is runtime_cls.STAGE


def test_the_seed_template_callbacks_run_as_hw_constraints(without_hw_constraints: Running) -> None:
    run = without_hw_constraints
    seed = load_seed()
    run.spin(HardwareConstraintsNode, seed.task_callback, seed.configuration_callback)
    run.wait_status("HW_CONSTRAINTS", "IDLE")

    tid = run.client.submit(_ui(**SEED_EXTRA), watch=True)
    res = run.client.wait(tid, 30)
    assert res.state == "succeeded", res.error
    out = res.outputs["hw_constraints"]
    assert isinstance(out, HWConstraints)
    assert out.hardware_required == ["PIM_AI_1chip"] and out.max_memory_footprint == 200
    assert out.get_extra() == SEED_EXTRA  # stored as msgpack, read back whole

    reply = run.client.config("hw_constraints", "hardwares")
    assert reply.success is False and reply.err_code == ErrorCode.INTERNAL_ERROR
    assert json.loads(reply.configuration) == {"error": "Unsupported configuration request: hardwares"}
    assert reply.transaction_id >= 1

    HardwareConstraintsNode.terminate()  # class-level, as the template's signal handler calls it
    run.threads[0].join(15)
    assert not run.threads[0].is_alive()
    run.wait_status("HW_CONSTRAINTS", "INACTIVE")


def test_an_accessor_style_callback_with_eight_arguments(without_ml_model: Running) -> None:
    run = without_ml_model
    seen: dict[str, Any] = {}

    def task_callback(
        ml_model_metadata: Any,
        app_requirements: Any,
        hw_constraints: Any,
        ml_model_baseline: Any,
        hw_baseline: Any,
        carbonfootprint_baseline: Any,
        node_status: Any,
        ml_model: Any,
    ) -> None:
        seen["goal"] = ml_model_metadata.ml_model_metadata()[0]
        seen["hardware"] = list(hw_constraints.hardware_required())
        seen["memory"] = hw_constraints.max_memory_footprint()
        seen["baseline"] = (
            ml_model_baseline.model(),
            hw_baseline.latency(),
            carbonfootprint_baseline.carbon_footprint(),
        )
        seen["task"] = (ml_model.task_id().problem_id(), ml_model.task_id().iteration_id())
        seen["extra"] = json.loads(hw_constraints.extra_data()) if hw_constraints.extra_data().size() else {}
        ml_model.model("unet")
        ml_model.model_path("catalogue://unet")
        ml_model.extra_data(json.dumps({"picked_by": "accessor callback"}).encode("utf-8"))

    run.spin(MLModelNode, task_callback)
    tid = run.client.submit(_ui(hardware_required="nvidia t4", hf_token="x"), watch=True)
    res = run.client.wait(tid, 30)
    assert res.state == "succeeded", res.error
    assert seen["goal"] == "image-segmentation"
    # the shipped HW_CONSTRAINTS takes the named device's memory (T4: 16 GB) when no limit is stated
    assert seen["hardware"] == ["T4"] and seen["memory"] == 16_000
    assert seen["baseline"] == ("", 0.0, 0.0)  # iteration 1: empty baselines, as upstream
    assert seen["task"] == (tid.problem_id, tid.iteration_id)
    assert seen["extra"]["hf_token"] == "x"
    model = res.outputs["ml_model"]
    assert isinstance(model, MLModel)
    assert model.model == "unet" and model.get_extra() == {"picked_by": "accessor callback"}
    assert res.outputs["hw_resources"].hw_description == "T4"  # type: ignore[attr-defined]


def test_a_failing_accessor_callback_fails_the_task_with_its_message(without_hw_constraints: Running) -> None:
    run = without_hw_constraints

    def task_callback(user_input: Any, node_status: Any, hw_constraints: Any) -> None:
        hw_constraints.max_memory_footprint(-1)  # refused by the record, naming the field

    run.spin(HardwareConstraintsNode, task_callback)
    tid = run.client.submit(_ui(), watch=True)
    res = run.client.wait(tid, 30)
    assert res.state == "failed"
    assert res.error is not None and "HWConstraints.max_memory_footprint" in res.error


def test_node_status_error_set_through_accessors_fails_the_task(without_hw_constraints: Running) -> None:
    from sustainml.compat import sustainml_swig as swig

    run = without_hw_constraints

    def task_callback(user_input: Any, node_status: Any, hw_constraints: Any) -> None:
        node_status.node_status(swig.NODE_ERROR)
        node_status.error_description("no hardware fits")

    run.spin(HardwareConstraintsNode, task_callback)
    res = run.client.wait(run.client.submit(_ui(), watch=True), 30)
    assert res.state == "failed" and res.error is not None and "no hardware fits" in res.error


def test_terminate_before_the_node_is_up_still_stops_it(settings: Settings) -> None:
    transports = memory_transports()
    transport = transports("HW_CONSTRAINTS")
    node = HardwareConstraintsNode(lambda *a: None, settings=settings, transport=transport)
    HardwareConstraintsNode.terminate()  # e.g. Ctrl-C while the node is still connecting
    thread = threading.Thread(target=node.spin, daemon=True)
    thread.start()
    thread.join(15)
    assert not thread.is_alive()
    transport.close(timeout=5.0)


def test_terminate_on_one_class_leaves_other_node_classes_running(settings: Settings) -> None:
    transports = memory_transports()
    opened = [transports("HW_CONSTRAINTS"), transports("ML_MODEL")]
    hw = HardwareConstraintsNode(lambda *a: None, settings=settings, transport=opened[0])
    ml = MLModelNode(lambda *a: None, settings=settings, transport=opened[1])
    threads = [threading.Thread(target=n.spin, daemon=True) for n in (hw, ml)]
    for th in threads:
        th.start()
    HardwareConstraintsNode.terminate()
    threads[0].join(15)
    assert not threads[0].is_alive() and threads[1].is_alive()
    ml.terminate()  # instance-level
    threads[1].join(15)
    assert not threads[1].is_alive()
    for transport in opened:
        transport.close(timeout=5.0)


def test_a_callback_is_required() -> None:
    with pytest.raises(ValueError, match="HardwareConstraintsNode constructor expects a callback"):
        HardwareConstraintsNode()
