"""ONNX graph building, the analyser on hand-computed graphs, the cache and user-model validation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from sustainml.catalogue import models
from sustainml.onnxgraphs import (
    AnalysisError,
    ModelTooLarge,
    UserModelError,
    analyze,
    build,
    cache_key,
    example_inputs,
    load_user_model,
    model_bytes,
)
from sustainml.onnxgraphs import cache as cache_mod
from sustainml.onnxgraphs.graph import GraphError
from sustainml.onnxgraphs.layers import GraphBuilder


def _model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    inits: Sequence[onnx.TensorProto] = (),
) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _w(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ones(shape, dtype=np.float32), name)


def _vi(name: str, shape: Sequence[int | str], dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, list(shape))


# ------------------------------------------------------------------------------ analyser, by hand
def conv_model(batch: int | str = "N") -> onnx.ModelProto:
    # 3 -> 8 channels, 3x3, stride 2, pad 1 on 16x16: output 8x8x8.
    node = helper.make_node(
        "Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
    )
    return _model(
        [node],
        [_vi("x", [batch, 3, 16, 16])],
        [_vi("y", [batch, 8, 8, 8])],
        [_w("w", 8, 3, 3, 3), _w("b", 8)],
    )


def test_conv_macs_flops_params_and_bytes() -> None:
    r = analyze(conv_model())
    macs = 8 * 8 * 8 * 3 * 3 * 3  # C_out * H_out * W_out * C_in * k * k
    assert r.macs == macs == 13_824
    assert r.flops == 2 * macs
    assert r.parameters == 8 * 27 + 8
    assert r.parameter_bytes == 4 * (8 * 27 + 8)
    (op,) = r.ops
    assert op.input_bytes == 4 * 3 * 16 * 16
    assert op.weight_bytes == 4 * (8 * 27 + 8)
    assert op.output_bytes == 4 * 8 * 8 * 8
    assert op.bytes_moved == op.input_bytes + op.weight_bytes + op.output_bytes
    assert r.bytes_moved == op.bytes_moved
    assert op.arithmetic_intensity == pytest.approx(op.flops / op.bytes_moved)


def test_grouped_conv_counts_input_channels_per_group() -> None:
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=4)
    m = _model([node], [_vi("x", ["N", 8, 10, 10])], [_vi("y", ["N", 8, 10, 10])], [_w("w", 8, 2, 3, 3)])
    assert analyze(m).macs == 8 * 10 * 10 * 2 * 9


def test_batch_scales_activations_not_weights() -> None:
    one, four = analyze(conv_model(), batch_size=1), analyze(conv_model(), batch_size=4)
    assert four.batch_mode == "symbolic"
    assert four.inputs == {"x": (4, 3, 16, 16)}
    assert four.macs == 4 * one.macs
    assert four.ops[0].weight_bytes == one.ops[0].weight_bytes
    assert four.ops[0].input_bytes == 4 * one.ops[0].input_bytes
    assert four.peak_activation_bytes == 4 * one.peak_activation_bytes


def test_fixed_batch_one_models_are_scaled() -> None:
    fixed = analyze(conv_model(batch=1), batch_size=3)
    assert fixed.batch_mode == "scaled"
    assert fixed.macs == 3 * analyze(conv_model(batch=1)).macs
    assert analyze(conv_model(batch=1)).batch_mode == "fixed"


def test_gemm_and_matmul() -> None:
    gemm = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
    m = _model([gemm], [_vi("x", ["N", 64])], [_vi("y", ["N", 10])], [_w("w", 10, 64), _w("b", 10)])
    r = analyze(m, batch_size=5)
    assert r.macs == 5 * 10 * 64 and r.flops == 2 * 5 * 10 * 64
    assert r.parameters == 650
    # Batched activation x activation MatMul: (N, 4, 6, 8) x (N, 4, 8, 7).
    mm = helper.make_node("MatMul", ["a", "c"], ["y"])
    m2 = _model([mm], [_vi("a", ["N", 4, 6, 8]), _vi("c", ["N", 4, 8, 7])], [_vi("y", ["N", 4, 6, 7])])
    r2 = analyze(m2, batch_size=2)
    assert r2.macs == 2 * 4 * 6 * 7 * 8
    assert r2.parameters == 0
    assert r2.ops[0].weight_bytes == 0 and r2.ops[0].input_bytes == 4 * (2 * 4 * 6 * 8 + 2 * 4 * 8 * 7)


def test_elementwise_softmax_and_norm_flops_are_documented_constants() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Softmax", ["r"], ["s"], axis=-1),
        helper.make_node("LayerNormalization", ["s", "g", "bb"], ["y"], axis=-1),
    ]
    m = _model(nodes, [_vi("x", ["N", 10])], [_vi("y", ["N", 10])], [_w("g", 10), _w("bb", 10)])
    r = analyze(m, batch_size=2)
    assert r.macs == 0
    assert [o.flops for o in r.ops] == [20, 5 * 20, 8 * 20]


def test_gather_reads_only_the_rows_it_gathers() -> None:
    node = helper.make_node("Gather", ["table", "ids"], ["y"], axis=0)
    m = _model(
        [node], [_vi("ids", ["N", 3], TensorProto.INT64)], [_vi("y", ["N", 3, 16])], [_w("table", 1000, 16)]
    )
    r = analyze(m)
    assert r.parameters == 16_000
    assert r.ops[0].weight_bytes == 3 * 16 * 4  # not the 64 kB table


def test_lstm_macs() -> None:
    hidden, inp, seq = 5, 3, 7
    node = helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=hidden)
    m = _model(
        [node],
        [_vi("x", [seq, "N", inp])],
        [_vi("y", [seq, 1, "N", hidden])],
        [_w("W", 1, 4 * hidden, inp), _w("R", 1, 4 * hidden, hidden)],
    )
    assert analyze(m, batch_size=2).macs == seq * 2 * 4 * hidden * (inp + hidden)


def test_peak_activation_memory_frees_dead_tensors() -> None:
    # x -> a -> b -> y, every tensor 400 bytes; at most two live at once (a node's input and output).
    nodes = [helper.make_node("Relu", [i], [o]) for i, o in (("x", "a"), ("a", "b"), ("b", "y"))]
    m = _model(nodes, [_vi("x", ["N", 100])], [_vi("y", ["N", 100])])
    r = analyze(m)
    assert r.activation_bytes == 4 * 400
    assert r.peak_activation_bytes == 2 * 400


def test_views_alias_their_source() -> None:
    shape = numpy_helper.from_array(np.array([0, 10, 10], dtype=np.int64), "shape")
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["v"]), helper.make_node("Relu", ["v"], ["y"])]
    m = _model(nodes, [_vi("x", ["N", 100])], [_vi("y", ["N", 10, 10])], [shape])
    r = analyze(m)
    assert r.ops[0].bytes_moved == 0 and r.ops[0].op_type == "Reshape"
    assert r.parameters == 0 and r.other_constant_bytes == 24
    assert r.activation_bytes == 2 * 400


def test_unresolved_symbolic_dims_are_reported() -> None:
    node = helper.make_node("Relu", ["x"], ["y"])
    m = _model([node], [_vi("x", ["N", "seq"])], [_vi("y", ["N", "seq"])])
    with pytest.raises(AnalysisError, match=r"x\[1\]=seq"):
        analyze(m)
    assert analyze(m, dims={"seq": 7}).ops[0].flops == 7


def test_report_serialises() -> None:
    d = analyze(conv_model()).to_dict(with_ops=True)
    assert d["macs"] == 13_824 and d["ops"][0]["bytes_moved"] > 0
    assert d["by_op_type"][0]["op_type"] == "Conv"


# ------------------------------------------------------------------------------ builder and layers
def test_builder_graph_passes_checker_and_strict_inference() -> None:
    b = GraphBuilder("tiny", seed=1)
    x = b.input("x", ("batch", 3, 8, 8))
    y = b.conv_act(x, 4, 3, 2)
    t = b.transpose(b.reshape(y, [0, 4, 16]), [0, 2, 1])
    t = b.add(t, b.mha(b.layer_norm(t), 2))
    b.output(b.gemm(b.flatten(t), 5), "logits")
    model = b.to_model("random")
    onnx.checker.check_model(model)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    r = analyze(model, batch_size=2)
    assert r.parameters == b.parameter_count()
    sess = ort.InferenceSession(model.SerializeToString())
    (out,) = sess.run(None, {"x": np.ones((2, 3, 8, 8), dtype=np.float32)})
    assert out.shape == (2, 5) and np.isfinite(out).all()


def test_a_shared_block_creates_its_weights_once() -> None:
    b = GraphBuilder("pyramid", seed=1)
    levels = [b.input(f"p{i}", ("batch", 8, 16 >> i, 16 >> i)) for i in range(3)]
    for i, f in enumerate(levels):
        with b.shared("head"), b.scope("head"):
            y = b.group_norm(b.conv(f, 8, 3, bias=False), 4)
        b.output(b.conv(y, 2, 1, name=f"level{i}"), f"out{i}")
    head = 8 * 8 * 9 + 2 * 8  # conv weight + GroupNorm scale and shift, counted once
    assert b.parameter_count() == head + 3 * (2 * 8 + 2)
    model = b.to_model("random")
    sess = ort.InferenceSession(model.SerializeToString())
    feeds = {f"p{i}": np.ones((1, 8, 16 >> i, 16 >> i), dtype=np.float32) for i in range(3)}
    assert [o.shape[2] for o in sess.run(None, feeds)] == [16, 8, 4]
    with pytest.raises(GraphError, match="differs from its first use"), b.shared("head"):
        b.conv(levels[0], 4, 3, bias=False)


def test_detr_sine_positions_follow_the_reference_formula() -> None:
    from sustainml.onnxgraphs.vision.detr import sine_positions

    h, w, dim = 3, 5, 16
    b = GraphBuilder("positions")
    b.output(sine_positions(b, h, w, dim), "pos")
    (pos,) = ort.InferenceSession(b.to_model("random").SerializeToString()).run(None, {})
    # DETR's normalised encoding written out: cumulative coordinates scaled to (0, 2 pi], divided by
    # 10000^(2 floor(i / 2) / (dim / 2)), sine on even and cosine on odd features; rows, then columns.
    feats = dim // 2
    freq = 10000.0 ** (2 * (np.arange(feats) // 2) / feats)
    rows = np.arange(1, h + 1) / (h + 1e-6) * 2 * np.pi
    cols = np.arange(1, w + 1) / (w + 1e-6) * 2 * np.pi

    def encode(coord: np.ndarray) -> np.ndarray:
        a = coord[:, None] / freq[None, :]
        return np.where(np.arange(feats) % 2 == 0, np.sin(a), np.cos(a))

    expected = np.concatenate(
        [np.repeat(encode(rows), w, axis=0), np.tile(encode(cols), (h, 1))], axis=1
    ).reshape(1, h * w, dim)
    np.testing.assert_allclose(pos, expected, atol=1e-5)
    # Stored: the coordinates and the frequency and phase vectors, not an (h * w, dim) table.
    assert analyze(b.to_model("zeros")).parameters == h + w + dim


# ------------------------------------------------------------------------------ cache
@pytest.fixture
def small_entry() -> str:
    return "mlp-california"


def test_second_build_is_a_load(tmp_path: Path, small_entry: str) -> None:
    first = build(small_entry, cache_dir=tmp_path)
    second = build(small_entry, cache_dir=tmp_path)
    assert first.built and not second.built
    assert first.path == second.path and first.key == second.key
    assert first.path.name == f"{small_entry}-{first.key}.onnx"
    mtime = first.path.stat().st_mtime_ns
    assert build(small_entry, cache_dir=tmp_path).path.stat().st_mtime_ns == mtime
    assert build(small_entry, cache_dir=tmp_path, force=True).built
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_key_depends_on_weights_mode_and_entry(small_entry: str) -> None:
    e = models().get(small_entry)
    assert cache_key(e, "random") != cache_key(e, "zeros")
    assert cache_key(e) != cache_key(models().get("mlp-higgs"))
    assert cache_key(e) == cache_key(e)


def test_builder_code_hash_covers_every_graph_building_module() -> None:
    # An architecture module missing from the hash would leave stale graphs in the cache after an edit.
    here = Path(cache_mod.__file__).parent
    building = {p.relative_to(here).as_posix() for p in (here / "vision").glob("*.py")}
    building |= {"graph.py", "layers.py", "text.py", "audio.py", "tabular.py", "builders.py", "cache.py"}
    hashed = set(cache_mod._CODE_MODULES)
    assert building <= hashed
    assert all((here / name).is_file() for name in hashed)


def test_random_weights_are_seeded_and_marked_synthetic(tmp_path: Path, small_entry: str) -> None:
    a = build(small_entry, cache_dir=tmp_path / "a")
    b = build(small_entry, cache_dir=tmp_path / "b")
    assert a.path.read_bytes() == b.path.read_bytes()
    proto = onnx.load(str(a.path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["sustainml.synthetic"] == "true"
    assert meta["sustainml.weights"] == "random_seeded"
    assert meta["sustainml.model"] == small_entry
    weights = [numpy_helper.to_array(t) for t in proto.graph.initializer if t.name.endswith(".weight")]
    assert weights and all(np.abs(w).max() > 0 for w in weights)


def test_built_model_runs_in_onnxruntime(tmp_path: Path) -> None:
    result = build("mobilenet-v3-small", cache_dir=tmp_path)
    sess = ort.InferenceSession(str(result.path))
    feeds = example_inputs(result.path, batch_size=2)
    (logits,) = sess.run(None, feeds)
    assert logits.shape == (2, 1000) and np.isfinite(logits).all()


def test_token_inputs_stay_in_vocabulary_range(tmp_path: Path) -> None:
    result = build("distilbert-sst2", weights="zeros", cache_dir=tmp_path)
    feeds = example_inputs(result.path, batch_size=3, seed=7)
    ids = feeds["input_ids"]
    assert ids.shape == (3, 128) and ids.dtype == np.int64
    assert ids.min() >= 0 and ids.max() < 30522
    (logits,) = ort.InferenceSession(str(result.path)).run(None, feeds)
    assert logits.shape == (3, 2)


def test_external_data_model_bytes_and_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_mod, "INLINE_LIMIT_BYTES", 0)  # force external data on a small model
    result = build("dlinear-etth1", cache_dir=tmp_path)
    assert result.data_path is not None and result.data_path.is_file()
    blob = model_bytes(result.path, limit=10_000_000)
    inlined = onnx.load_from_string(blob)
    assert all(t.data_location != TensorProto.EXTERNAL for t in inlined.graph.initializer)
    assert analyze(inlined).parameters == models().get("dlinear-etth1").parameters
    with pytest.raises(ModelTooLarge, match="above the raw_model limit of 1000 bytes"):
        model_bytes(result.path, limit=1000)


def test_zeros_build_is_sparse_and_fast(tmp_path: Path) -> None:
    result = build("gpt2-medium", weights="zeros", cache_dir=tmp_path)
    assert result.data_path is not None
    assert result.data_path.stat().st_size >= 4 * 354_000_000
    assert result.seconds < 30


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUSTAINML_CACHE_DIR", str(tmp_path / "c"))
    assert cache_mod.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SUSTAINML_CACHE_DIR")
    monkeypatch.setenv("SUSTAINML_DATA_DIR", str(tmp_path / "d"))
    assert cache_mod.default_cache_dir() == tmp_path / "d" / "models"


# ------------------------------------------------------------------------------ user models
@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    onnx.save(conv_model(), str(d / "conv.onnx"))
    return d


def test_valid_user_model_from_path_and_bytes(user_dir: Path) -> None:
    um = load_user_model(user_dir / "conv.onnx", [user_dir], max_bytes=1_000_000)
    assert um.path == (user_dir / "conv.onnx").resolve()
    assert um.size_bytes == (user_dir / "conv.onnx").stat().st_size and len(um.sha256) == 64
    assert analyze(um.model).macs == 13_824
    raw = load_user_model((user_dir / "conv.onnx").read_bytes(), [], max_bytes=1_000_000)
    assert raw.path is None and raw.sha256 == um.sha256


def test_user_model_paths_are_confined(user_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.onnx"
    onnx.save(conv_model(), str(outside))
    with pytest.raises(UserModelError, match="outside the allowed directories"):
        load_user_model(outside, [user_dir], 1_000_000)
    with pytest.raises(UserModelError, match="outside the allowed directories"):
        load_user_model(user_dir / ".." / "outside.onnx", [user_dir], 1_000_000)
    (user_dir / "link.onnx").symlink_to(outside)
    with pytest.raises(UserModelError, match="outside the allowed directories"):
        load_user_model(user_dir / "link.onnx", [user_dir], 1_000_000)
    with pytest.raises(UserModelError, match="does not exist"):
        load_user_model(user_dir / "missing.onnx", [user_dir], 1_000_000)
    with pytest.raises(UserModelError, match="no model directories"):
        load_user_model(user_dir / "conv.onnx", [], 1_000_000)
    with pytest.raises(UserModelError, match="not a regular file"):
        load_user_model(user_dir, [user_dir], 1_000_000)


def test_user_model_size_limit(user_dir: Path) -> None:
    with pytest.raises(UserModelError, match="above the limit of 100 bytes"):
        load_user_model(user_dir / "conv.onnx", [user_dir], max_bytes=100)
    with pytest.raises(UserModelError, match=r"raw_model is .* above the limit of 100 bytes"):
        load_user_model((user_dir / "conv.onnx").read_bytes(), [], max_bytes=100)


def test_user_model_content_is_validated(user_dir: Path) -> None:
    (user_dir / "junk.onnx").write_bytes(b"\x00not a protobuf at all\xff" * 10)
    with pytest.raises(UserModelError, match=r"cannot be read as ONNX|not a valid ONNX"):
        load_user_model(user_dir / "junk.onnx", [user_dir], 1_000_000)
    with pytest.raises(UserModelError, match="raw_model"):
        load_user_model(b"\x08\x07garbage", [], 1_000_000)
    # A node whose input was never produced: the checker refuses it.
    bad = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["nowhere"], ["y"])], "g", [_vi("x", [1])], [_vi("y", [1])]
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    with pytest.raises(UserModelError, match="not a valid ONNX model"):
        load_user_model(bad.SerializeToString(), [], 1_000_000)
    # Checker-valid but shapes contradict: strict shape inference refuses it.
    clash = helper.make_model(
        helper.make_graph(
            [helper.make_node("Add", ["a", "b"], ["y"])],
            "g",
            [_vi("a", [2, 3]), _vi("b", [4, 5])],
            [_vi("y", [2, 3])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    with pytest.raises(UserModelError, match="shape inference failed"):
        load_user_model(clash.SerializeToString(), [], 1_000_000)


def test_user_model_external_data_cannot_escape(user_dir: Path, tmp_path: Path) -> None:
    model = conv_model()
    onnx.save(
        model,
        str(user_dir / "ext.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.data",
        size_threshold=0,
    )
    ok = load_user_model(user_dir / "ext.onnx", [user_dir], 1_000_000)
    assert ok.external_data == ((user_dir / "ext.data").resolve(),)
    assert ok.size_bytes > (user_dir / "ext.onnx").stat().st_size
    (tmp_path / "secret.data").write_bytes(os.urandom(64))
    (user_dir / "ext.data").unlink()
    (user_dir / "ext.data").symlink_to(tmp_path / "secret.data")
    with pytest.raises(UserModelError, match="points outside the model directory"):
        load_user_model(user_dir / "ext.onnx", [user_dir], 1_000_000)
    with pytest.raises(UserModelError, match="external data"):
        load_user_model((user_dir / "ext.onnx").read_bytes(), [], 1_000_000)
