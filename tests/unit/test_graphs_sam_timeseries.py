"""The SAM, TCN and N-BEATS graphs: SAM's parts against the catalogue split and a published MACs
figure; N-BEATS' forecast path and the TCN's causal receptive field run in onnxruntime."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest

from sustainml.catalogue import models
from sustainml.onnxgraphs import analyze, build

# Zhang et al., EfficientViT-SAM, arXiv:2402.05008: SAM-ViT-H's image encoder, one 1024x1024 image.
SAM_VIT_H_ENCODER_GMACS = 2973
PE_BUFFER = 2 * 128  # the prompt encoder's random-Fourier matrix: a stored buffer, not a parameter


def _parts(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(parameters, MACs) per top-level scope of a built graph."""
    proto = onnx.load(str(path), load_external_data=False)
    params: dict[str, int] = {}
    for t in proto.graph.initializer:
        n = math.prod(t.dims)
        if t.data_type == onnx.TensorProto.FLOAT and n > 1:
            key = t.name.split(".")[0]
            params[key] = params.get(key, 0) + n
    macs: dict[str, int] = {}
    for op in analyze(proto).ops:
        key = op.name.split(".")[0]
        macs[key] = macs.get(key, 0) + op.macs
    return params, macs


@pytest.mark.parametrize("name", ["sam-vit-b", "sam-vit-h"])
def test_sam_parts_match_the_catalogue_components(name: str, tmp_path: Path) -> None:
    entry = models().get(name)
    params, macs = _parts(build(entry, weights="zeros", cache_dir=tmp_path).path)
    encoder, prompt_and_decoder = entry.components
    assert params["image_encoder"] == encoder.parameters
    assert params["prompt_encoder"] + params["mask_decoder"] == prompt_and_decoder.parameters + PE_BUFFER
    assert macs["image_encoder"] == encoder.macs
    assert macs["prompt_encoder"] + macs["mask_decoder"] == prompt_and_decoder.macs


def test_sam_vit_h_encoder_macs_match_the_published_figure(tmp_path: Path) -> None:
    _, macs = _parts(build(models().get("sam-vit-h"), weights="zeros", cache_dir=tmp_path).path)
    # Windowed attention runs its projections on the grid padded to 70x70: without that the
    # encoder would be 5 % lower.
    assert macs["image_encoder"] / 1e9 == pytest.approx(SAM_VIT_H_ENCODER_GMACS, rel=0.01)


def test_nbeats_with_zero_weights_forecasts_the_last_value(tmp_path: Path) -> None:
    import onnxruntime as ort

    entry = models().get("n-beats-m4")
    session = ort.InferenceSession(
        str(build(entry, weights="zeros", cache_dir=tmp_path).path), providers=["CPUExecutionProvider"]
    )
    history = np.random.default_rng(0).standard_normal((3, entry.input_shape[1])).astype(np.float32)
    (forecast,) = session.run(None, {"past_values": history})
    # Every block adds nothing: the forecast is the level it starts from, the last observation.
    assert forecast.shape == (3, entry.builder_args["horizon"])
    np.testing.assert_array_equal(forecast, np.repeat(history[:, -1:], forecast.shape[1], axis=1))


def test_tcn_forecast_sees_only_its_receptive_field(tmp_path: Path) -> None:
    import onnxruntime as ort

    entry = models().get("tcn-electricity")
    args = entry.builder_args
    # Two causal convolutions per block, dilations 1, 2, 4, ...: 1 + 2 (k - 1) (2^levels - 1) steps.
    field = 1 + 2 * (args["kernel"] - 1) * (2 ** args["levels"] - 1)
    length = entry.input_shape[2]
    assert field < length
    session = ort.InferenceSession(
        str(build(entry, cache_dir=tmp_path).path), providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, length)).astype(np.float32)
    (base,) = session.run(None, {"past_values": x})
    older = x.copy()
    older[..., : length - field] = rng.standard_normal(length - field)
    (same,) = session.run(None, {"past_values": older})
    np.testing.assert_allclose(same, base, rtol=0, atol=1e-6)
    inside = x.copy()
    inside[..., length - field] += 100.0  # the oldest step reaches the output through one path: weak
    (moved,) = session.run(None, {"past_values": inside})
    assert np.abs(moved - base).max() > 1e-4
