"""Registry of graph builders (catalogue ``builder`` key -> function) and example inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from sustainml.catalogue import ModelEntry
from sustainml.onnxgraphs import audio, tabular, text, vision
from sustainml.onnxgraphs.layers import GraphBuilder

SEED = 20240611

Builder = Callable[..., None]

BUILDERS: dict[str, Builder] = {
    "resnet": vision.resnet,
    "mobilenet_v2": vision.mobilenet_v2,
    "mobilenet_v3": vision.mobilenet_v3,
    "efficientnet_b0": vision.efficientnet_b0,
    "vit": vision.vit,
    "convnext": vision.convnext,
    "ssdlite_mobilenet_v3": vision.ssdlite_mobilenet_v3,
    "ssd300_vgg16": vision.ssd300_vgg16,
    "retinanet_resnet50_fpn_v2": vision.retinanet_resnet50_fpn_v2,
    "detr": vision.detr,
    "yolov5": vision.yolov5,
    "yolov8": vision.yolov8,
    "unet": vision.unet,
    "deeplabv3_resnet50": vision.deeplabv3_resnet50,
    "lraspp_mobilenet_v3": vision.lraspp_mobilenet_v3,
    "sam": vision.sam,
    "video_resnet": vision.video_resnet,
    "sd_unet": vision.sd_unet,
    "patchcore": vision.patchcore,
    "bert": text.bert,
    "gpt2": text.gpt2,
    "bart": text.bart,
    "t5": text.t5,
    "blip_captioning": text.blip_captioning,
    "whisper": audio.whisper,
    "wav2vec2": audio.wav2vec2,
    "cnn14": audio.cnn14,
    "yamnet": audio.yamnet,
    "ds_cnn": audio.ds_cnn,
    "ast": audio.ast,
    "fastspeech2_hifigan": audio.fastspeech2_hifigan,
    "dlinear": tabular.dlinear,
    "patchtst": tabular.patchtst,
    "deepar": tabular.deepar,
    "tcn": tabular.tcn,
    "nbeats": tabular.nbeats,
    "ft_transformer": tabular.ft_transformer,
    "mlp": tabular.mlp,
    "dagmm": tabular.dagmm,
}

# What one inference of each builder's graph is (catalogue MACs use the same definition).
INFERENCE: dict[str, str] = {
    "bert": "one encoder forward pass over the reference sequence",
    "gpt2": "one forward pass over the reference length L (= MACs of generating L tokens with a KV cache, "
    "up to the attention term)",
    "bart": "encoder over the source + decoder over the reference target length, teacher-forced "
    "(= greedy decoding of that many tokens with a KV cache, up to the attention term)",
    "t5": "encoder over the source + decoder over the reference target length, teacher-forced",
    "blip_captioning": "image encoder once + text decoder over the reference caption length",
    "whisper": "encoder over 30 s of log-mel + decoder over the reference number of tokens",
    "sd_unet": "one denoising step of the U-Net at batch 1 (classifier-free guidance doubles it; "
    "a sampler runs it once or twice per step)",
    "fastspeech2_hifigan": "one utterance: 64 phonemes -> 384 mel frames -> 98,304 samples",
    "deepar": "one sample path over context + horizon steps",
    "yamnet": "one 0.96 s log-mel patch",
    "ds_cnn": "one 1 s utterance (49 MFCC frames; features computed outside the graph)",
    "cnn14": "one 10 s clip (log-mel computed outside the graph)",
    "ast": "one 10.24 s clip (fbank computed outside the graph)",
    "wav2vec2": "one 10 s, 16 kHz waveform",
    "patchcore": "one image scored against the memory bank",
    "sam": "one click on a new image: image encoder once + prompt encoder and mask decoder for one point "
    "(4 low-resolution masks); each further click on the same image reruns only the decoder",
}


class UnknownBuilder(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def inference_definition(entry: ModelEntry) -> str:
    return INFERENCE.get(entry.builder, "one forward pass at the reference input shape")


def build_graph(entry: ModelEntry) -> GraphBuilder:
    """Run the entry's builder with its reference input shape and builder arguments."""
    fn = BUILDERS.get(entry.builder)
    if fn is None:
        raise UnknownBuilder(
            f"model {entry.name!r}: no graph builder {entry.builder!r}; known: {sorted(BUILDERS)}"
        )
    graph = GraphBuilder(entry.name, seed=SEED)
    fn(graph, tuple(entry.input_shape), **dict(entry.builder_args))
    return graph


_NP_FLOATS = (np.float16, np.float32, np.float64)


def example_inputs(
    model: onnx.ModelProto | str | Path,
    batch_size: int = 1,
    seed: int = 0,
    dims: Mapping[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """Deterministic inputs for every graph input: floats ~ N(0, 1), integer ids uniform below the
    range recorded in ``metadata_props`` (``sustainml.input_range.<input>``) or zeros."""
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model), load_external_data=False)
    ranges = {
        p.key.removeprefix("sustainml.input_range."): int(p.value)
        for p in proto.metadata_props
        if p.key.startswith("sustainml.input_range.")
    }
    inits = {t.name for t in proto.graph.initializer}
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape: list[int] = []
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                shape.append(d.dim_value)
            elif dims and d.dim_param in dims:
                shape.append(int(dims[d.dim_param]))
            elif i == 0:
                shape.append(batch_size)
            else:
                raise ValueError(f"input {vi.name!r} dim {i} is symbolic ({d.dim_param!r}); pass dims")
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if dtype in _NP_FLOATS:
            out[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif np.issubdtype(dtype, np.integer):
            high = ranges.get(vi.name, 1)
            out[vi.name] = rng.integers(0, high, size=shape).astype(dtype)
        elif dtype == np.bool_:
            out[vi.name] = np.ones(shape, dtype=np.bool_)
        else:
            raise ValueError(f"input {vi.name!r}: unsupported dtype {dtype}")
    return out


def builder_keys() -> list[str]:
    return sorted(BUILDERS)


__all__: list[str] = [
    "BUILDERS",
    "INFERENCE",
    "SEED",
    "build_graph",
    "builder_keys",
    "example_inputs",
    "inference_definition",
]
