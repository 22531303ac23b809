"""The estimators of ``sustainml.estimate``: roofline arithmetic worked out by hand, the power model,
measured latency and its cache, and the local-cpu calibration fit."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, get_args

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sustainml.catalogue import HardwareEntry, hardware
from sustainml.catalogue.schema import DeviceClass
from sustainml.estimate import calibration, latency_eval, power
from sustainml.estimate import measure as measuring
from sustainml.estimate import roofline as rl
from sustainml.onnxgraphs.analyze import ModelReport, OpCost, analyze

# -------------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------------


def device(**overrides: Any) -> HardwareEntry:
    """A made-up device with round numbers: 1 TFLOP/s fp32, 4 TFLOP/s fp16, 100 GB/s, 10-110 W."""
    base = HardwareEntry(
        name="test-device",
        device_class="edge",
        description="made up for arithmetic by hand",
        peak_flops={"fp32": 1e12, "fp16": 4e12},
        memory_bandwidth_gbs=100.0,
        memory_gb=2.0,
        tdp_w=110.0,
        idle_w=10.0,
        source="test",
    )
    return replace(base, **overrides)


def op(name: str, flops: int, input_b: int, weight_b: int, output_b: int) -> OpCost:
    return OpCost(name, "MatMul", flops // 2, flops, input_b, weight_b, output_b, ())


def report(*ops: OpCost, batch: int = 1) -> ModelReport:
    return ModelReport(
        batch_size=batch,
        batch_mode="symbolic",
        inputs={},
        outputs={},
        parameters=0,
        parameter_bytes=0,
        other_constant_bytes=0,
        macs=sum(o.macs for o in ops),
        flops=sum(o.flops for o in ops),
        bytes_moved=sum(o.bytes_moved for o in ops),
        activation_bytes=0,
        peak_activation_bytes=0,
        ops=ops,
    )


EFF = rl.Efficiency(0.5, 0.8, 1e-6, "test")


def matmul_model(k: int = 256, n: int = 256, fixed_batch: bool = False) -> onnx.ModelProto:
    """Y[b, n] = X[b, k] @ W[k, n] with a symbolic (or fixed 1) batch dimension."""
    batch: int | str = 1 if fixed_batch else "batch"
    w = numpy_helper.from_array(np.full((k, n), 0.01, dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm")],
        "mm",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [batch, k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [batch, n])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


# -------------------------------------------------------------------------------------------------
# roofline arithmetic
# -------------------------------------------------------------------------------------------------


def test_per_operator_roofline_by_hand() -> None:
    compute = op("compute", 2_000_000_000, 1_000_000, 0, 1_000_000)  # 2 GFLOP, 2 MB
    memory = op("memory", 1_000_000, 40_000_000, 40_000_000, 0)  # 1 MFLOP, 80 MB
    free = OpCost("view", "Reshape", 0, 0, 0, 0, 0, ())
    est = rl.estimate(report(compute, memory, free), device(), "fp32", EFF, engine="eager")
    # compute op: max(2e9 / (1e12 x 0.5), 2e6 / (100e9 x 0.8)) = max(4 ms, 25 us) = 4 ms, + 1 us
    # memory op:  max(1e6 / 0.5e12, 80e6 / 80e9) = max(2 us, 1 ms) = 1 ms, + 1 us
    # view: moves nothing, no overhead
    assert est.latency_s == pytest.approx(4e-3 + 1e-6 + 1e-3 + 1e-6)
    assert est.compute_s == pytest.approx(4e-3)
    assert est.memory_s == pytest.approx(1e-3)
    assert est.overhead_s == pytest.approx(2e-6)
    assert [o.bound for o in est.ops] == ["compute", "memory", "none"]
    assert (est.compute_bound_ops, est.memory_bound_ops) == (1, 1)
    assert est.bound == "compute"
    assert est.flops == 2_001_000_000
    assert est.slowest(1)[0].name == "compute"
    d = est.to_dict()
    assert d["ops_with_work"] == 2 and d["efficiency"]["compute"] == 0.5


def test_compiled_engine_fuses_epilogues_and_attention_by_hand() -> None:
    conv = OpCost("conv", "Conv", 500, 1000, 100, 40, 100, ())
    relu = OpCost("relu", "Relu", 0, 100, 100, 0, 100, ())
    residual = OpCost("add", "Add", 0, 100, 200, 0, 100, ())  # reads its second operand
    view = OpCost("view", "Reshape", 0, 0, 0, 0, 0, ())
    qk = OpCost("qk", "MatMul", 50, 100, 200, 0, 400, ())
    softmax = OpCost("softmax", "Softmax", 0, 2000, 400, 0, 400, ())
    sv = OpCost("sv", "MatMul", 50, 100, 500, 0, 100, ())  # reads the scores (400) and V (100)
    kernels = rl.fuse([conv, relu, residual, view, qk, softmax, sv])
    assert [k.op_type for k in kernels] == ["Conv+Relu+Add", "MatMul+Softmax+MatMul"]
    first, attention = kernels
    assert first.flops == 1200 and first.input_bytes == 200 and first.output_bytes == 100
    assert first.weight_bytes == 40
    # the 400-byte score matrix is neither written nor read back
    assert attention.flops == 2200 and attention.input_bytes == 300 and attention.output_bytes == 100
    est = rl.estimate(report(conv, relu, residual, qk, softmax, sv), device(), "fp32", EFF, engine="compiled")
    assert len(est.ops) == 2 and est.overhead_s == pytest.approx(2e-6) and est.engine == "compiled"
    eager = rl.estimate(report(conv, relu, residual, qk, softmax, sv), device(), "fp32", EFF, engine="eager")
    assert len(eager.ops) == 6 and eager.latency_s > est.latency_s
    with pytest.raises(ValueError, match="engine"):
        rl.estimate(report(conv), device(), "fp32", EFF, engine="warp-drive")


def test_default_engine_follows_the_device_class() -> None:
    assert rl.default_engine("cloud") == "compiled" and rl.default_engine("edge") == "compiled"
    assert rl.default_engine("local") == "eager" and rl.default_engine("server-cpu") == "eager"


def test_precision_scales_bytes_and_uses_the_faster_peak() -> None:
    memory = op("memory", 1_000_000, 40_000_000, 40_000_000, 0)
    fp16 = rl.estimate(report(memory), device(), "fp16", EFF)
    # bytes halved: 40 MB / 80 GB/s = 0.5 ms; compute 1e6 / (4e12 x 0.5) is negligible
    assert fp16.latency_s == pytest.approx(0.5e-3 + 1e-6)
    assert fp16.peak_flops == 4e12
    # int8 has no faster path on this device: the fp32 peak is used, bytes quartered
    int8 = rl.estimate(report(memory), device(), "int8", EFF)
    assert int8.peak_flops == 1e12 and int8.bytes_moved == pytest.approx(20e6)
    with pytest.raises(ValueError, match="unknown precision"):
        rl.estimate(report(memory), device(), "fp8", EFF)


def test_batch_aware_roofline_on_a_real_graph() -> None:
    model = matmul_model()
    one = analyze(model, batch_size=1)
    eight = analyze(model, batch_size=8)
    # FLOPs = 2 x MACs = 2 x b x 256 x 256; bytes = 4 x (b x 256 in + 65,536 weights + b x 256 out)
    assert one.flops == 2 * 256 * 256 and eight.flops == 8 * one.flops
    assert one.bytes_moved == 4 * (256 + 65_536 + 256)
    assert eight.bytes_moved == 4 * (8 * 256 + 65_536 + 8 * 256)
    dev = device()
    t1 = rl.estimate(one, dev, efficiency=EFF).latency_s
    t8 = rl.estimate(eight, dev, efficiency=EFF).latency_s
    # memory-bound at both sizes: t = bytes / 80 GB/s + 1 us; the weights are read once per batch
    assert t1 == pytest.approx(4 * (512 + 65_536) / 80e9 + 1e-6)
    assert t8 == pytest.approx(4 * (8 * 512 + 65_536) / 80e9 + 1e-6)
    assert t1 < t8 < 8 * t1  # batching amortises the weight traffic


def test_quick_estimate_by_hand() -> None:
    dev = device()
    q = rl.quick_estimate(macs=1e9, parameters=1e6, hw=dev, batch_size=4, efficiency=EFF)
    # FLOPs 2 x 1e9 x 4 = 8e9 -> 16 ms; weights 4 MB -> 50 us: compute-bound
    assert q.latency_s == pytest.approx(8e9 / 0.5e12)
    assert q.bound == "compute" and q.bytes_moved == 4e6
    q16 = rl.quick_estimate(macs=1e3, parameters=1e9, hw=dev, precision="fp16", efficiency=EFF)
    assert q16.latency_s == pytest.approx(2e9 / 80e9)  # 1e9 x 2 bytes at 80 GB/s
    with pytest.raises(ValueError, match="batch_size"):
        rl.quick_estimate(1, 1, dev, batch_size=0)


def test_every_device_class_has_documented_efficiency_and_utilisation() -> None:
    classes = set(get_args(DeviceClass))
    assert classes <= set(rl.EFFICIENCY)
    assert classes <= set(power.DEFAULT_UTILISATION)
    for cls in classes:
        eff = rl.EFFICIENCY[cls]
        assert 0 < eff.compute <= 1 and 0 < eff.memory <= 1 and eff.source
    for hw in hardware():
        if hw.device_class != "local":
            assert rl.efficiency_for(hw, engine="eager") == rl.EFFICIENCY[hw.device_class]
        if hw.device_class in rl.DEFAULT_ENGINE:
            assert rl.efficiency_for(hw) == rl.COMPILED_EFFICIENCY[hw.device_class]
    for eff in rl.COMPILED_EFFICIENCY.values():
        assert 0 < eff.compute <= 1 and 0 < eff.memory <= 1 and "MLPerf" in eff.source


def test_local_calibration_is_used_only_on_the_machine_it_describes(tmp_path: Path) -> None:
    local = replace(device(), name="local-cpu", device_class="local")
    assert rl.efficiency_for(local, tmp_path) == rl.EFFICIENCY["local"]
    fingerprint, ort = rl.machine_key()
    cal = rl.LocalCalibration(
        fingerprint, ort, 0.3, 1.2, 4e-6, "2026-01-01T00:00:00+00:00", test_median_ratio=1.1
    )
    rl.save_local_calibration(cal, tmp_path)
    eff = rl.efficiency_for(local, tmp_path)
    assert (eff.compute, eff.memory, eff.op_overhead_s) == (0.3, 1.2, 4e-6)
    assert "fitted on this machine" in eff.source
    # other classes unaffected
    assert rl.efficiency_for(device(), tmp_path, engine="eager") == rl.EFFICIENCY["edge"]
    # fitted against another measurement of the same machine: rescaled to the same attained rates
    anchored = replace(cal, peak_flops=2e12, bandwidth_bytes_s=50e9)
    rl.save_local_calibration(anchored, tmp_path)
    eff = rl.efficiency_for(local, tmp_path)  # local: 1 TFLOP/s, 100 GB/s now
    assert eff.compute == pytest.approx(0.6) and eff.memory == pytest.approx(0.6)
    other = replace(cal, fingerprint="another-machine", compute=0.9)
    (tmp_path / rl.CALIBRATION_FILE).write_text(
        json.dumps({"version": calibration.CALIBRATION_VERSION, "calibration": asdict(other)})
    )
    assert rl.efficiency_for(local, tmp_path) == rl.EFFICIENCY["local"]


# -------------------------------------------------------------------------------------------------
# power
# -------------------------------------------------------------------------------------------------


def test_power_model_by_hand() -> None:
    dev = device()  # idle 10 W, TDP 110 W
    assert power.device_power_w(dev, 0.5) == pytest.approx(60.0)  # 10 + 0.5 x 100
    assert power.device_power_w(dev, 0.0) == pytest.approx(10.0)
    assert power.device_power_w(dev, 1.0) == pytest.approx(110.0)
    assert power.device_power_w(dev, 1.7) == pytest.approx(110.0)  # clamped
    assert power.device_power_w(dev, -1) == pytest.approx(10.0)
    assert power.device_power_w(replace(dev, idle_w=200.0), 0.5) == pytest.approx(110.0)  # idle capped at TDP
    with pytest.raises(ValueError, match="NaN"):
        power.device_power_w(dev, math.nan)
    t4 = hardware().get("T4")
    assert power.device_power_w(t4, power.default_utilisation("cloud")) == pytest.approx(10.5 + 0.5 * 59.5)
    assert power.default_utilisation("embedded") == 1.0
    assert power.default_utilisation("no-such-class") == power.FALLBACK_UTILISATION


# -------------------------------------------------------------------------------------------------
# measured latency
# -------------------------------------------------------------------------------------------------


def test_measured_latency_is_cached_by_model_batch_and_device(tmp_path: Path) -> None:
    path = tmp_path / "mm.onnx"
    onnx.save_model(matmul_model(), str(path))
    cache = tmp_path / "measurements"
    first = measuring.measure_latency(path, 2, cache_dir=cache, runs=5, warmup=1)
    assert first.cached is False and first.runs >= measuring.DEFAULT_MIN_RUNS
    assert 0 < first.min_s <= first.median_s <= first.max_s
    assert first.batch_size == 2 and first.model_hash == measuring.model_hash(path)
    again = measuring.measure_latency(path, 2, cache_dir=cache)
    assert again.cached is True and again.median_s == first.median_s
    other_batch = measuring.measure_latency(path, 3, cache_dir=cache, runs=3, warmup=0)
    assert other_batch.cached is False
    assert len(list(cache.glob("*.json"))) == 2
    # another model (different bytes) is another key
    path.unlink()
    onnx.save_model(matmul_model(n=128), str(path))
    assert measuring.measure_latency(path, 2, cache_dir=cache, runs=3, warmup=0).cached is False


def test_given_arrays_are_fed_and_fixed_batch_models_run_once_per_sample(tmp_path: Path) -> None:
    import onnxruntime as ort

    path = tmp_path / "fixed.onnx"
    onnx.save_model(matmul_model(fixed_batch=True), str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed, repeat = measuring.feed_for(session, path, 4)
    assert repeat == 4 and feed["X"].shape == (1, 256)
    dyn = tmp_path / "dyn.onnx"
    onnx.save_model(matmul_model(), str(dyn))
    session = ort.InferenceSession(str(dyn), providers=["CPUExecutionProvider"])
    given = np.arange(2 * 256, dtype=np.float32).reshape(2, 256)
    feed, repeat = measuring.feed_for(session, dyn, 5, [given])
    assert repeat == 1 and feed["X"].shape == (5, 256)
    assert np.array_equal(feed["X"][2], given[0])  # samples tiled in order


def test_synthetic_inputs_respect_token_ranges_and_masks() -> None:
    arrays = measuring.synthetic_inputs(
        [("input_ids", (2, 16), np.int64), ("attention_mask", (2, 16), np.int64), ("x", (2, 3), np.float32)],
        {"input_ids": 50},
    )
    assert arrays["input_ids"].dtype == np.int64 and arrays["input_ids"].max() < 50
    assert (arrays["attention_mask"] == 1).all()
    assert arrays["x"].dtype == np.float32
    again = measuring.synthetic_inputs(
        [("input_ids", (2, 16), np.int64), ("attention_mask", (2, 16), np.int64), ("x", (2, 3), np.float32)],
        {"input_ids": 50},
    )
    assert all(np.array_equal(again[k], arrays[k]) for k in arrays)  # seeded: the same every time


# -------------------------------------------------------------------------------------------------
# calibration
# -------------------------------------------------------------------------------------------------


def test_fit_recovers_known_factors_from_synthetic_measurements() -> None:
    rng = np.random.default_rng(3)
    peak, bandwidth = 100e9, 20e9
    truth = rl.Efficiency(0.3, 0.9, 5e-6, "truth")
    costs = []
    for _ in range(8):
        n = int(rng.integers(10, 100))  # compute-heavy ops, then memory-heavy ops, in varying mixes
        m = int(rng.integers(10, 100))
        flops = np.concatenate([rng.uniform(1e7, 5e8, n), rng.uniform(1e3, 1e5, m)])
        nbytes = np.concatenate([rng.uniform(1e3, 1e5, n), rng.uniform(1e7, 5e8, m)])
        costs.append(latency_eval._Costs(flops, nbytes, n + m))
    for k in (200, 500, 1000):  # small models: many tiny ops, where the per-op overhead dominates
        costs.append(latency_eval._Costs(np.full(k, 1e3), np.full(k, 1e3), k))
    measured = [latency_eval.predict(c, peak, bandwidth, truth) for c in costs]
    eta_c, eta_m, overhead, loss = latency_eval.fit(costs, measured, peak, bandwidth)
    step_c = latency_eval._ETA_C[1] / latency_eval._ETA_C[0]
    assert truth.compute / step_c <= eta_c <= truth.compute * step_c
    step_m = latency_eval._ETA_M[1] / latency_eval._ETA_M[0]
    assert truth.memory / step_m <= eta_m <= truth.memory * step_m
    assert overhead == pytest.approx(5e-6)
    assert loss < 1e-3


def test_ratio_summaries() -> None:
    assert latency_eval.worst([0.9, 1.5, 0.5]) == 0.5  # |log 0.5| > |log 1.5|
    assert latency_eval.median([1.0, 2.0, 4.0]) == 2.0
    assert latency_eval.within([1.0, 1.4, 2.5, 0.6], 1.5) == 0.5
    assert math.isnan(latency_eval.worst([]))


@pytest.mark.slow
def test_latency_evaluation_end_to_end_on_small_models(tmp_path: Path) -> None:
    names = ["dagmm-kddcup99", "mlp-california", "mlp-higgs", "dlinear-etth1", "patchtst-etth1"]
    rep = latency_eval.evaluate(names=names, data_dir=tmp_path, budget_s=60, runs=3, save=True)
    measured = {m.name for m in rep.models}
    assert measured | {n for n, _ in rep.skipped} == set(names)
    assert len(rep.models) >= 4
    roles = [m.role for m in rep.models]
    assert roles[0] == "fit" and "held-out" in roles  # alternate split by MACs
    assert [m.macs for m in rep.models] == sorted(m.macs for m in rep.models)
    assert rep.fitted is not None and rep.saved_to is not None
    saved = json.loads(Path(rep.saved_to).read_text())
    assert saved["calibration"]["test_models"] == [m.name for m in rep.models if m.role == "held-out"]
    for m in rep.models:
        assert m.measured_s > 0 and m.estimate_s > 0
        assert m.ratio == pytest.approx(m.measured_s / m.estimate_s)
    text = rep.render()
    assert "held-out" in text and "median ratio" in text and "dagmm-kddcup99" in text
    js = rep.to_json()
    assert js["summary"]["held_out"]["models"] == roles.count("held-out")
    assert js["fitted_efficiency"]["compute"] == rep.fitted.compute
    # Without save=True an evaluation only reports: the calibration HW_RESOURCES uses stays as it was.
    Path(rep.saved_to).unlink()
    again = latency_eval.evaluate(names=names, data_dir=tmp_path, budget_s=60, runs=3)
    assert again.saved_to is None and not Path(rep.saved_to).exists()
    assert "calibration not saved" in again.render()
