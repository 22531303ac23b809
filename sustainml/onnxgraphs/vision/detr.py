"""DETR (Carion et al. 2020, arXiv:2005.12872): a ResNet backbone, a 1x1 projection to the
transformer width, a post-norm transformer encoder-decoder with sine position encodings added to
the queries and keys of every attention, learned object queries, a class head and a 3-layer box MLP.

Configuration of the released facebookresearch/detr models (d 256, 8 heads, FFN 2048, 6 + 6
layers, 100 queries, 91 COCO ids + no-object). The graph ends at the class logits and the sigmoid
boxes of the last decoder layer (training also applies the heads to the five earlier layers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from onnx import TensorProto, helper

from sustainml.onnxgraphs.layers import GraphBuilder
from sustainml.onnxgraphs.vision.cnn import resnet_backbone
from sustainml.onnxgraphs.vision.image import image_input


def sine_positions(b: GraphBuilder, height: int, width: int, dim: int) -> str:
    """DETR's normalised sine encoding, (1, height * width, dim): the first half encodes the row,
    the second the column, sin/cos interleaved. Computed in the graph from the two coordinate
    vectors (an exporter's folded table would be counted as a weight; it has no parameters)."""
    feats = dim // 2
    inv = 10000.0 ** (-2 * (np.arange(feats) // 2) / feats)
    phase = np.where(np.arange(feats) % 2, math.pi / 2, 0.0)  # cos(a) = sin(a + pi/2)
    inv_t = b.const(inv.reshape(1, feats, 1, 1).astype(np.float32), "pos_inv_freq")
    phase_t = b.const(phase.reshape(1, feats, 1, 1).astype(np.float32), "pos_phase")
    full = b.const(np.array([1, feats, height, width], dtype=np.int64), "pos_shape")
    parts = []
    for n, layout in ((height, (1, 1, height, 1)), (width, (1, 1, 1, width))):
        coord = (np.arange(1, n + 1) / (n + 1e-6) * 2 * math.pi).reshape(layout).astype(np.float32)
        angle = b.add(b.mul(b.const(coord, "pos_coord"), inv_t), phase_t)
        parts.append(b.op("Expand", [b.unary("Sin", angle), full], (1, feats, height, width)))
    pos = b.reshape(b.concat(parts, 1), [1, dim, height * width])
    return b.transpose(pos, [0, 2, 1])


def _encoder_layer(b: GraphBuilder, src: str, pos: str, heads: int, ff: int) -> str:
    qk = b.add(src, pos)
    src = b.layer_norm(b.add(src, b.mha(qk, heads, context=qk, value=src, name="self_attn")), name="norm1")
    return b.layer_norm(b.add(src, b.ffn(src, ff, act="relu")), name="norm2")


def _decoder_layer(
    b: GraphBuilder, tgt: str, query_pos: str, memory: str, memory_keys: str, heads: int, ff: int
) -> str:
    qk = b.add(tgt, query_pos)
    tgt = b.layer_norm(b.add(tgt, b.mha(qk, heads, context=qk, value=tgt, name="self_attn")), name="norm1")
    cross = b.mha(b.add(tgt, query_pos), heads, context=memory_keys, value=memory, name="cross_attn")
    tgt = b.layer_norm(b.add(tgt, cross), name="norm2")
    return b.layer_norm(b.add(tgt, b.ffn(tgt, ff, act="relu")), name="norm3")


def detr(
    b: GraphBuilder,
    shape: Sequence[int],
    layers: Sequence[int] = (3, 4, 6, 3),
    dim: int = 256,
    heads: int = 8,
    ff: int = 2048,
    enc_layers: int = 6,
    dec_layers: int = 6,
    queries: int = 100,
    classes: int = 92,
) -> None:
    """DETR with a torchvision ResNet-50 (``layers`` (3, 4, 23, 3): ResNet-101) backbone; its
    frozen BatchNorm is folded into the convolutions like every other BatchNorm here."""
    x = image_input(b, shape)
    with b.scope("backbone"):
        features = resnet_backbone(b, x, layers, bottleneck=True)[-1]
    height, width = (int(d) for d in b.shape(features)[2:])
    tokens = height * width
    src = b.conv(features, dim, 1, name="input_proj")
    src = b.transpose(b.reshape(src, [0, dim, tokens]), [0, 2, 1])
    pos = sine_positions(b, height, width, dim)
    for i in range(enc_layers):
        with b.scope(f"encoder.layer{i}"):
            src = _encoder_layer(b, src, pos, heads, ff)
    memory_keys = b.add(src, pos)
    query_pos = b.embedding_table("query_embed", queries, dim)
    # The decoder starts from zeros of (batch, queries, dim); the batch comes from the memory.
    batch = b.op("Shape", [src], (1,), dtype=TensorProto.INT64, start=0, end=1)
    size = b.op(
        "Concat",
        [batch, b.const(np.array([queries, dim], dtype=np.int64))],
        (3,),
        dtype=TensorProto.INT64,
        axis=0,
    )
    zero = helper.make_tensor("value", TensorProto.FLOAT, [1], [0.0])
    tgt = b.op("ConstantOfShape", [size], (b.shape(src)[0], queries, dim), value=zero)
    for i in range(dec_layers):
        with b.scope(f"decoder.layer{i}"):
            tgt = _decoder_layer(b, tgt, query_pos, src, memory_keys, heads, ff)
    hs = b.layer_norm(tgt, name="decoder.norm")
    b.output(b.linear(hs, classes, name="class_embed"), "logits")
    with b.scope("bbox_embed"):
        h = b.relu(b.linear(hs, dim, name="layer0"))
        h = b.relu(b.linear(h, dim, name="layer1"))
        b.output(b.sigmoid(b.linear(h, 4, name="layer2")), "boxes")
