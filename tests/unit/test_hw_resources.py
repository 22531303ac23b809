"""HW_RESOURCES: per-operator roofline on the ONNX graph, power, memory, hardware "auto", local-cpu
measurement, sentinels and configuration requests; figures checked against hand-written sums."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sustainml.catalogue import hardware, models
from sustainml.config import EstimationSettings, Settings, environment_settings
from sustainml.estimate import measure as measuring
from sustainml.estimate import roofline as rl
from sustainml.messages.types import (
    AppRequirements,
    ErrorCode,
    HWConstraints,
    HWResource,
    MLModel,
    NodeStatus,
    RequestType,
    ResponseType,
)
from sustainml.onnxgraphs.analyze import analyze
from sustainml.workers.logic import hw_resources

SMALL = "mlp-higgs"  # 139 k parameters: quick to build, analyse and run


@pytest.fixture(scope="module")
def small_path() -> Path:
    return hw_resources.catalogue_file(models().get(SMALL))


@pytest.fixture
def isolated_data(tmp_path: Path) -> EstimationSettings:
    """A deployment whose measurements and calibration live in a fresh data dir; the model cache
    stays where it is."""
    graphs = environment_settings().estimation.graph_cache_dir
    return EstimationSettings(data_dir=tmp_path, graph_cache=graphs)


def model_record(name: str, **props: Any) -> MLModel:
    entry = models().get(name)
    path = hw_resources.catalogue_file(entry)
    properties = {
        "name": name,
        "parameters": entry.parameters,
        "macs": entry.macs,
        "synthetic": True,
        **props,
    }
    return MLModel(model=name, model_path=str(path), model_properties=json.dumps(properties))


def run(
    model: MLModel,
    hardware_required: list[str],
    reqs: list[str] | None = None,
    max_mb: int = 0,
    settings: EstimationSettings | None = None,
    **extra: Any,
) -> HWResource:
    cons = HWConstraints(max_memory_footprint=max_mb, hardware_required=hardware_required)
    cons.set_extra(extra)
    out = HWResource()
    reqs_record = AppRequirements(app_requirements=reqs or [])
    hw_resources.task_callback(model, reqs_record, cons, NodeStatus(), out, settings=settings)
    return out


def configure(text: str) -> tuple[ResponseType, Any]:
    res = ResponseType()
    hw_resources.configuration_callback(RequestType(node_id=3, transaction_id=5, configuration=text), res)
    assert (res.node_id, res.transaction_id) == (3, 5)
    return res, json.loads(res.configuration)


# -------------------------------------------------------------------------------------------------
# figures by hand
# -------------------------------------------------------------------------------------------------


def test_latency_power_and_memory_on_t4_by_hand(small_path: Path) -> None:
    out = run(model_record(SMALL), ["T4"])
    report = analyze(small_path, batch_size=1)
    # T4: 8.1 TFLOP/s fp32, 320 GB/s; compiled engine (cloud default): fused kernels, eta_c 0.8,
    # eta_m 0.9, 2 us per kernel
    expected = 0.0
    for k in rl.fuse(report.ops):
        expected += max(k.flops / (8.1e12 * 0.8), k.bytes_moved / (320e9 * 0.9)) + 2e-6
    assert out.latency == pytest.approx(expected)
    assert out.power_consumption == pytest.approx(10.5 + 0.5 * (70 - 10.5))  # idle + 0.5 x (TDP - idle)
    footprint = (report.parameter_bytes + report.other_constant_bytes + report.peak_activation_bytes) / 1e6
    assert out.memory_footprint_of_ml_model == pytest.approx(footprint)
    assert out.max_hw_memory_footprint == pytest.approx(16_000.0)
    assert out.hw_description == "T4"
    extra = out.get_extra()
    assert extra["energy_per_inference_j"] == pytest.approx(out.power_consumption * out.latency)
    assert extra["analysis"]["flops"] == report.flops and extra["analysis"]["macs"] == report.macs
    assert extra["analysis"]["parameters"] == models().get(SMALL).parameters
    assert extra["roofline"]["efficiency"]["compute"] == 0.8 and extra["roofline"]["engine"] == "compiled"
    assert extra["memory"]["fits_device"] is True and extra["constraints_met"] is True
    assert extra["units"]["latency"] == "s" and extra["units"]["power_consumption"] == "W"
    assert "measured" not in extra and "ranking" not in extra


def test_batch_size_from_model_properties_scales_the_graph(small_path: Path) -> None:
    one = run(model_record(SMALL), ["A100"])
    eight = run(model_record(SMALL, batch_size=8), ["A100"])
    assert eight.get_extra()["batch_size"] == 8
    assert eight.get_extra()["analysis"]["flops"] == 8 * one.get_extra()["analysis"]["flops"]
    expected = rl.estimate(analyze(small_path, batch_size=8), hardware().get("A100")).latency_s
    assert eight.latency == pytest.approx(expected)
    per_inference = eight.get_extra()["energy_per_inference_j"]
    assert per_inference == pytest.approx(eight.power_consumption * eight.latency / 8)


def test_precision_and_utilisation_overrides(small_path: Path) -> None:
    fp32 = run(model_record(SMALL), ["A100"])
    fp16 = run(model_record(SMALL), ["A100"], precision="fp16", utilisation=1.0)
    assert fp16.memory_footprint_of_ml_model == pytest.approx(fp32.memory_footprint_of_ml_model / 2, rel=0.01)
    assert fp16.power_consumption == pytest.approx(250.0)  # TDP at utilisation 1
    assert fp16.get_extra()["power"]["utilisation_source"] == "extra_data.utilisation"
    with pytest.raises(ValueError, match="utilisation"):
        run(model_record(SMALL), ["A100"], utilisation=2)
    with pytest.raises(ValueError, match="precision"):
        run(model_record(SMALL), ["A100"], precision="fp64")


def test_constraints_are_checked_and_reported() -> None:
    out = run(
        model_record("resnet-18"), ["Raspberry Pi 5"], reqs=["max_latency_ms=1", "max_power_w=2"], max_mb=10
    )
    extra = out.get_extra()
    assert extra["constraints_met"] is False
    kinds = [v.split(":")[0] for v in extra["violations"]]
    assert kinds == ["max_memory_footprint", "latency", "power"]
    assert extra["memory"]["within_max_memory_footprint"] is False
    assert extra["requirements"] == {
        "max_latency_s": 0.001,
        "max_memory_footprint_mb": 10.0,
        "max_power_w": 2.0,
        "max_real_time_factor": None,
        "latency_from_real_time_wording": False,
    }


@pytest.mark.parametrize("spelling", ["PIM_AI_1chip", "PIM-AI-1chip", "pim ai 1CHIP", " pim_ai_1chip "])
def test_hardware_names_fold_case_and_punctuation(spelling: str) -> None:
    assert run(model_record(SMALL), [spelling]).hw_description == "PIM_AI_1chip"


def test_unknown_hardware_raises_with_the_closest_names() -> None:
    with pytest.raises(ValueError, match="Quantum Toaster"):
        run(model_record(SMALL), ["Quantum Toaster 9000"])


# -------------------------------------------------------------------------------------------------
# auto
# -------------------------------------------------------------------------------------------------


def test_auto_picks_the_lowest_energy_device_meeting_the_constraints() -> None:
    allowed = ["A100", "T4", "Jetson-Orin-Nano", "Raspberry-Pi-5", "PIM_AI_1chip", "H100", "L4"]
    out = run(model_record("resnet-18"), ["auto"], reqs=["max_latency_ms=5"], allowed_hardware=allowed)
    extra = out.get_extra()
    ranking = extra["ranking"]
    assert len(ranking) == 5 and extra["devices_evaluated"] == len(allowed)
    feasible = [r for r in ranking if r["feasible"]]
    assert feasible and all(r["latency_s"] <= 0.005 for r in feasible)
    assert out.hw_description == feasible[0]["hardware"]
    energies = [r["energy_per_inference_j"] for r in feasible]
    assert energies == sorted(energies)
    # every device, feasible or not, evaluated with the same per-device formulas
    for r in ranking:
        assert r["energy_per_inference_j"] == pytest.approx(r["power_w"] * r["latency_s"])
        assert r["feasible"] == (not r["violations"])
    infeasible_first = [i for i, r in enumerate(ranking) if not r["feasible"]]
    assert all(i >= len(feasible) for i in infeasible_first)  # feasible devices rank first
    # and it is deterministic
    assert run(
        model_record("resnet-18"), ["auto"], reqs=["max_latency_ms=5"], allowed_hardware=allowed
    ).model_dump() == (out.model_dump())


def test_auto_without_a_feasible_device_reports_the_best_and_why() -> None:
    out = run(
        model_record("resnet-18"), ["auto"], reqs=["max_latency_ms=0.001"], allowed_hardware=["T4", "A100"]
    )
    extra = out.get_extra()
    assert extra["constraints_met"] is False and extra["feasible_devices"] == 0
    assert any(v.startswith("latency") for v in extra["violations"])
    best = min(extra["ranking"], key=lambda r: r["energy_per_inference_j"])
    assert out.hw_description == best["hardware"]


def test_several_required_devices_are_ranked_like_auto() -> None:
    out = run(model_record(SMALL), ["T4", "A100"])
    extra = out.get_extra()
    assert {r["hardware"] for r in extra["ranking"]} == {"T4", "A100"}
    assert "2 devices" in extra["selection"]


# -------------------------------------------------------------------------------------------------
# sentinels, model files
# -------------------------------------------------------------------------------------------------


def test_no_model_sentinel() -> None:
    out = run(MLModel(model="NO_MODEL", model_path="N/A"), ["Some-Unlisted-Board"])
    assert out.hw_description == "Some-Unlisted-Board"
    fields = (
        out.latency,
        out.power_consumption,
        out.memory_footprint_of_ml_model,
        out.max_hw_memory_footprint,
    )
    assert fields == (0.0, 0.0, 0.0, 0.0)
    assert out.get_extra() == {
        "error_code": "NO_MODEL",
        "error": "No model selected (NO_MODEL). HW resources not computed.",
    }


def test_catalogue_model_without_a_usable_path_is_built_from_the_catalogue(small_path: Path) -> None:
    out = run(MLModel(model=SMALL, model_path="/nonexistent/elsewhere.onnx"), ["T4"])
    assert out.get_extra()["model_file"]["path"] == str(small_path)


def test_model_files_outside_the_allowed_directories_are_refused(tmp_path: Path, small_path: Path) -> None:
    outside = tmp_path / "stray.onnx"
    outside.write_bytes(small_path.read_bytes())
    with pytest.raises(ValueError, match="outside the model cache"):
        run(MLModel(model="someone/private-net", model_path=str(outside)), ["T4"])
    with pytest.raises(ValueError, match="cannot estimate"):
        run(MLModel(model="someone/private-net"), ["T4"])
    with pytest.raises(ValueError, match="not JSON"):
        run(MLModel(model=SMALL, model_properties="{broken"), ["T4"])


def test_raw_model_bytes_are_validated_and_analysed(small_path: Path) -> None:
    data = small_path.read_bytes()
    out = run(MLModel(model="my-upload", raw_model=data), ["T4"])
    assert out.get_extra()["model_file"]["origin"] == "raw_model"
    assert out.get_extra()["analysis"]["parameters"] == models().get(SMALL).parameters
    with pytest.raises(ValueError):
        run(MLModel(model="my-upload", raw_model=b"not an onnx model"), ["T4"])


# -------------------------------------------------------------------------------------------------
# local-cpu: measured next to estimated
# -------------------------------------------------------------------------------------------------


def test_local_cpu_measures_and_caches(isolated_data: EstimationSettings, small_path: Path) -> None:
    model = model_record(SMALL, batch_size=2)
    first = run(model, ["local-cpu"], settings=isolated_data)
    measured = first.get_extra()["measured"]
    assert measured["cached"] is False and measured["batch_size"] == 2
    assert measured["median_s"] > 0 and measured["runs"] >= 3
    assert measured["estimated_s"] == pytest.approx(first.latency)
    assert measured["ratio_measured_over_estimated"] == pytest.approx(measured["median_s"] / first.latency)
    assert measured["model_hash"] == measuring.model_hash(small_path)
    assert first.hw_description == "local-cpu"
    assert "This machine" in first.get_extra()["device"]
    second = run(model, ["local-cpu"], settings=isolated_data)
    again = second.get_extra()["measured"]
    assert again["cached"] is True and again["median_s"] == measured["median_s"]
    assert second.latency == first.latency  # the main output is the reproducible estimate
    assert len(list((isolated_data.data_dir / measuring.MEASUREMENTS_DIR).glob("*.json"))) == 1
    skipped = run(model, ["local-cpu"], settings=isolated_data, measure_local=False)
    assert "measured" not in skipped.get_extra()


def test_local_cpu_skips_slow_models_unless_forced(
    isolated_data: EstimationSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hw_resources, "MEASURE_MAX_ESTIMATE_S", 0.0)
    slow = run(model_record(SMALL), ["local-cpu"], settings=isolated_data)
    assert "measure_local = true" in slow.get_extra()["measured"]["skipped"]
    forced = run(model_record(SMALL), ["local-cpu"], settings=isolated_data, measure_local=True)
    assert forced.get_extra()["measured"]["median_s"] > 0


# -------------------------------------------------------------------------------------------------
# configuration requests
# -------------------------------------------------------------------------------------------------


def test_configuration_hardwares_in_upstream_order_then_the_rest() -> None:
    from sustainml.catalogue.listing import UPSTREAM_HARDWARE_NAMES

    res, body = configure("hardwares")
    assert res.success is True and res.err_code == ErrorCode.NO_ERROR
    names = body["hardwares"].split(", ")
    upstream = [n for n in UPSTREAM_HARDWARE_NAMES if hardware().find(n) is not None]
    assert names[: len(upstream)] == upstream
    rest = names[len(upstream) :]
    assert rest == sorted(rest) and "local-cpu" in rest and "T4" in rest
    assert sorted(names) == sorted(h.name for h in hardware())


def test_configuration_hardware_info() -> None:
    res, body = configure("hardware_info, nvidia tesla t4")
    assert res.success is True
    assert body["name"] == "T4" and body["memory_gb"] == 16.0 and body["tdp_w"] == 70.0
    assert body["efficiency"]["compute"] == 0.8 and body["default_utilisation"] == 0.5
    assert body["power_at_default_utilisation_w"] == pytest.approx(40.25)
    res, body = configure("hardware_info, Quantum Toaster")
    assert res.success is False and "Quantum Toaster" in body["error"]
    res, body = configure("hardware_info,")
    assert res.success is False
    res, body = configure("modality")
    assert res.success is False and body == {"error": "Unsupported configuration request: modality"}


def test_user_model_dirs_come_from_the_settings(tmp_path: Path) -> None:
    import os

    env = {hw_resources.MODEL_DIRS_ENV: f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}"}
    settings = Settings.from_env(env).estimation
    assert hw_resources.user_model_dirs(settings) == [(tmp_path / "a").resolve(), (tmp_path / "b").resolve()]
    settings = Settings.from_env({"SUSTAINML_DATA_DIR": str(tmp_path)}).estimation
    assert hw_resources.user_model_dirs(settings) == [(tmp_path / "user-models").resolve()]


# -------------------------------------------------------------------------------------------------
# input_batch: opt-in at ML_MODEL, regenerated here when absent
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "batch"), [(SMALL, 3), ("dlinear-etth1", 2), ("all-minilm-l6-v2", 2)])
def test_absent_input_batch_is_regenerated_as_ml_model_would_send_it(name: str, batch: int) -> None:
    # ML_MODEL only sends input_batch with extra_data.include_input_batch; the measurement then feeds
    # onnxruntime the arrays it regenerates, which must be the ones ML_MODEL would have sent.
    import onnxruntime as ort

    from sustainml.workers.logic import ml_model

    path = hw_resources.catalogue_file(models().get(name))
    sent, samples = ml_model.input_arrays(path, batch)
    assert samples == batch and sent
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    regenerated, repeat = measuring.feed_for(session, path, batch)
    assert repeat == 1
    names = [spec.name for spec in session.get_inputs()]
    assert list(regenerated) == names and len(names) == len(sent)
    for array, input_name in zip(sent, names, strict=True):
        assert regenerated[input_name].dtype == array.dtype
        assert regenerated[input_name].tobytes() == array.tobytes(), input_name


def test_local_cpu_says_which_inputs_it_ran(isolated_data: EstimationSettings) -> None:
    from sustainml.workers.logic import ml_model

    model = model_record(SMALL, batch_size=2)
    without = run(model, ["local-cpu"], settings=isolated_data)
    assert without.get_extra()["measured"]["inputs"].startswith("seeded synthetic inputs, regenerated")
    arrays, _ = ml_model.input_arrays(Path(model.model_path), 2)
    model.set_input_arrays(arrays)
    sent = run(model, ["local-cpu"], settings=isolated_data, measure_local=True)
    assert sent.get_extra()["measured"]["inputs"] == "input_batch"
