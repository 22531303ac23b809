"""Segment Anything (Kirillov et al., ICCV 2023; the segment-anything reference implementation):
ViT image encoder with windowed and global attention, prompt encoder, two-way-transformer mask
decoder.

One inference is one click on a new image: the image encoder once, then the prompt encoder and
mask decoder for one point (plus the padding point the predictor appends when no box is given),
four low-resolution masks and their IoU predictions. Resizing the masks to the image is left to
post-processing, as in the reference ONNX export.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from onnx import TensorProto

from sustainml.onnxgraphs.graph import BATCH
from sustainml.onnxgraphs.layers import GraphBuilder
from sustainml.onnxgraphs.vision.cnn import _layer_norm_2d
from sustainml.onnxgraphs.vision.image import image_input

PROMPT_DIM = 256  # image embedding and prompt token width
MASK_TOKENS = 4  # 3 multimask outputs + 1 single-mask output


# ---------------------------------------------------------------------------------- image encoder
def _rel_table(b: GraphBuilder, side: int, head_dim: int, name: str) -> str:
    """Relative position embeddings gathered for every (query, key) pair along one axis:
    (side, head_dim, side), ready to multiply the queries."""
    table = b.param(name, (2 * side - 1, head_dim), bound=0.02)
    offsets = np.arange(side)[:, None] - np.arange(side)[None, :] + side - 1
    rel = b.gather(table, b.const(offsets.astype(np.int64), "rel_index"))  # (q, k, head_dim)
    return b.transpose(rel, [0, 2, 1])


def _encoder_attention(b: GraphBuilder, x: str, heads: int, side: int) -> str:
    """Attention inside each window of (B, windows, side*side, C) tokens, with the decomposed
    relative-position bias (a height and a width term computed from the unscaled queries)."""
    windows, tokens, dim = (int(d) for d in b.shape(x)[1:])
    hd = dim // heads
    wh = windows * heads
    qkv = b.linear(x, 3 * dim, name="qkv")

    def split_heads(t: str) -> str:  # (B, W, T, C) -> (B, W*heads, T, hd)
        t = b.transpose(b.reshape(t, [0, windows, tokens, heads, hd]), [0, 1, 3, 2, 4])
        return b.reshape(t, [0, wh, tokens, hd])

    q, k, v = (split_heads(t) for t in b.split(qkv, [dim] * 3, axis=-1))
    rq = b.reshape(q, [0, wh, side, side, hd])
    rel_h = b.matmul(rq, _rel_table(b, side, hd, "rel_pos_h"))  # (B, WH, qh, qw, kh)
    rel_w = b.matmul(b.transpose(rq, [0, 1, 3, 2, 4]), _rel_table(b, side, hd, "rel_pos_w"))
    rel_w = b.transpose(rel_w, [0, 1, 3, 2, 4])  # (B, WH, qh, qw, kw)
    bias = b.add(
        b.reshape(rel_h, [0, wh, side, side, side, 1]), b.reshape(rel_w, [0, wh, side, side, 1, side])
    )
    o = b.sdpa(q, k, v, bias=b.reshape(bias, [0, wh, tokens, tokens]))
    o = b.transpose(b.reshape(o, [0, windows, heads, tokens, hd]), [0, 1, 3, 2, 4])
    return b.linear(b.reshape(o, [0, windows, tokens, dim]), dim, name="proj")


def _windowed(b: GraphBuilder, x: str, heads: int, window: int) -> str:
    """Pad the (B, H, W, C) grid to whole windows, attend inside each, crop back."""
    grid, dim = b.channels(x, 1), b.channels(x, 3)
    n = -(-grid // window)
    padded = b.pad(x, [0, 0, 0, 0, 0, n * window - grid, n * window - grid, 0])
    t = b.reshape(padded, [0, n, window, n, window, dim])
    t = b.reshape(b.transpose(t, [0, 1, 3, 2, 4, 5]), [0, n * n, window * window, dim])
    o = _encoder_attention(b, t, heads, window)
    o = b.transpose(b.reshape(o, [0, n, n, window, window, dim]), [0, 1, 3, 2, 4, 5])
    o = b.reshape(o, [0, n * window, n * window, dim])
    return b.slice(b.slice(o, 1, 0, grid), 2, 0, grid)


def sam_image_encoder(
    b: GraphBuilder,
    x: str,
    dim: int,
    layers: int,
    heads: int,
    global_layers: Sequence[int],
    patch: int = 16,
    window: int = 14,
) -> str:
    """ImageEncoderViT: 16x16 patches, absolute positions, pre-norm blocks (windowed attention
    except ``global_layers``, relative positions in all), neck 1x1 + 3x3 convs to 256 channels."""
    y = b.conv(x, dim, patch, patch, pad=0, name="patch_embed")
    grid = int(b.shape(y)[2])
    y = b.add(b.transpose(y, [0, 2, 3, 1]), b.param("pos_embed", (1, grid, grid, dim), bound=0.02))
    for i in range(layers):
        with b.scope(f"blocks.{i}"):
            h = b.layer_norm(y, 1e-6, name="norm1")
            with b.scope("attn"):
                if i in global_layers:
                    h = _encoder_attention(b, b.reshape(h, [0, 1, grid * grid, dim]), heads, grid)
                    h = b.reshape(h, [0, grid, grid, dim])
                else:
                    h = _windowed(b, h, heads, window)
            y = b.add(y, h)
            y = b.add(y, b.ffn(b.layer_norm(y, 1e-6, name="norm2"), 4 * dim, name="mlp"))
    with b.scope("neck"):
        y = b.conv(b.transpose(y, [0, 3, 1, 2]), PROMPT_DIM, 1, pad=0, bias=False, name="conv1")
        y = _layer_norm_2d(b, y, "ln1")
        y = b.conv(y, PROMPT_DIM, 3, bias=False, name="conv2")
        return _layer_norm_2d(b, y, "ln2")


# ---------------------------------------------------------------------------------- prompt encoder
def _fourier(b: GraphBuilder, coords: str, gaussian: str) -> str:
    """Random Fourier features of coordinates in [0, 1]: sin and cos of 2 pi (2c - 1) G."""
    c = b.sub(b.mul(coords, b.const(np.float32(2.0))), b.const(np.float32(1.0)))
    proj = b.mul(b.matmul(c, gaussian), b.const(np.float32(2.0 * math.pi)))
    return b.concat([b.unary("Sin", proj), b.unary("Cos", proj)], -1)


def _with_tokens(b: GraphBuilder, x: str, tokens: str, before: bool) -> str:
    """(B, T, D) tokens with the learned (1, N, D) ``tokens`` placed before or after them; written
    as Pad + Add so the batch stays symbolic."""
    t, n = int(b.shape(x)[1]), int(b.shape(tokens)[1])
    y = b.pad(x, [0, n, 0, 0, 0, 0] if before else [0, 0, 0, 0, n, 0])
    return b.add(y, b.pad(tokens, [0, 0, 0, 0, t, 0] if before else [0, t, 0, 0, 0, 0]))


def sam_prompt_encoder(b: GraphBuilder, grid: int, image_size: int) -> tuple[str, str, str]:
    """(sparse point tokens (B, 2, 256), dense mask embedding (B, 256, grid, grid), image positional
    encoding (1, grid * grid, 256)). Inputs: one click in input-image pixels and its label
    (0 negative, 1 positive), the previous low-resolution mask and whether it is given."""
    half = PROMPT_DIM // 2
    coords = b.input("point_coords", (BATCH, 1, 2))
    labels = b.input("point_labels", (BATCH, 1), TensorProto.INT64, high=2)
    mask = b.input("mask_input", (BATCH, 1, 4 * grid, 4 * grid))
    has_mask = b.input("has_mask_input", (BATCH, 1, 1, 1))
    with b.scope("prompt_encoder"):
        gaussian = b.param("pe_layer.gaussian_matrix", (2, half), bound=1.0)
        # Pixel centres, normalised by the input size.
        norm = b.div(b.add(coords, b.const(np.float32(0.5))), b.const(np.float32(image_size)))
        point = b.add(
            _fourier(b, norm, gaussian), b.gather(b.param("point_embeddings", (4, PROMPT_DIM)), labels)
        )
        sparse = _with_tokens(b, point, b.param("not_a_point_embed", (1, 1, PROMPT_DIM)), before=False)
        with b.scope("mask_downscaling"):
            m = b.conv(mask, 4, 2, 2, pad=0, name="conv1")
            m = b.gelu(_layer_norm_2d(b, m, "ln1"))
            m = b.conv(m, 16, 2, 2, pad=0, name="conv2")
            m = b.gelu(_layer_norm_2d(b, m, "ln2"))
            m = b.conv(m, PROMPT_DIM, 1, pad=0, name="conv3")
        no_mask = b.param("no_mask_embed", (1, PROMPT_DIM, 1, 1))
        one = b.const(np.float32(1.0))
        dense = b.add(b.mul(m, has_mask), b.mul(no_mask, b.sub(one, has_mask)))
        # Grid of cell centres, stored as integers (2i + 1) so no float table counts as weights.
        idx = np.stack(np.meshgrid(np.arange(grid), np.arange(grid)), -1).reshape(-1, 2) * 2 + 1
        cells = b.op("Cast", [b.const(idx.astype(np.int64), "grid")], (grid * grid, 2), to=TensorProto.FLOAT)
        image_pe = _fourier(b, b.mul(cells, b.const(np.float32(0.5 / grid))), gaussian)
    return sparse, dense, b.reshape(image_pe, [1, grid * grid, PROMPT_DIM])


# ---------------------------------------------------------------------------------- mask decoder
def _attention(b: GraphBuilder, q: str, k: str, v: str, heads: int, downsample: int, name: str) -> str:
    """SAM's Attention: q/k/v projected to dim / downsample, heads, output back to dim."""
    dim = b.channels(q, -1)
    inner = dim // downsample
    with b.scope(name):
        qh = b.heads(b.linear(q, inner, name="q_proj"), heads)
        kh = b.heads(b.linear(k, inner, name="k_proj"), heads)
        vh = b.heads(b.linear(v, inner, name="v_proj"), heads)
        return b.linear(b.merge_heads(b.sdpa(qh, kh, vh)), dim, name="out_proj")


def _mlp(b: GraphBuilder, x: str, hidden: int, out: int, layers: int, name: str) -> str:
    with b.scope(name):
        for i in range(layers - 1):
            x = b.relu(b.linear(x, hidden, name=f"layers.{i}"))
        return b.linear(x, out, name=f"layers.{layers - 1}")


def _two_way_transformer(
    b: GraphBuilder, image: str, image_pe: str, tokens: str, depth: int = 2, heads: int = 8, mlp: int = 2048
) -> tuple[str, str]:
    """TwoWayTransformer: token self-attention, token-to-image and image-to-token cross-attention
    (internal width halved), ReLU MLP on the tokens; final token-to-image attention."""
    queries, keys = tokens, image
    with b.scope("transformer"):
        for i in range(depth):
            with b.scope(f"layers.{i}"):
                if i == 0:  # the first layer's queries are the prompt tokens themselves
                    queries = _attention(b, queries, queries, queries, heads, 1, "self_attn")
                else:
                    q = b.add(queries, tokens)
                    queries = b.add(queries, _attention(b, q, q, queries, heads, 1, "self_attn"))
                queries = b.layer_norm(queries, name="norm1")
                q, k = b.add(queries, tokens), b.add(keys, image_pe)
                queries = b.add(queries, _attention(b, q, k, keys, heads, 2, "cross_attn_token_to_image"))
                queries = b.layer_norm(queries, name="norm2")
                queries = b.add(queries, b.ffn(queries, mlp, act="relu", name="mlp"))
                queries = b.layer_norm(queries, name="norm3")
                q, k = b.add(queries, tokens), b.add(keys, image_pe)
                keys = b.add(keys, _attention(b, k, q, queries, heads, 2, "cross_attn_image_to_token"))
                keys = b.layer_norm(keys, name="norm4")
        q, k = b.add(queries, tokens), b.add(keys, image_pe)
        queries = b.add(queries, _attention(b, q, k, keys, heads, 2, "final_attn_token_to_image"))
        return b.layer_norm(queries, name="norm_final_attn"), keys


def sam_mask_decoder(b: GraphBuilder, image: str, image_pe: str, sparse: str, dense: str) -> tuple[str, str]:
    """MaskDecoder: IoU and mask tokens before the prompt tokens, two-way transformer over the
    image embedding (+ dense prompt), 4x transposed-conv upscaling, one hypernetwork MLP per mask
    token, IoU head. Returns (masks (B, 4, 4 grid, 4 grid), IoU predictions (B, 4))."""
    dim, grid = b.channels(image), b.channels(image, 2)
    with b.scope("mask_decoder"):
        out_tokens = b.concat(
            [b.param("iou_token", (1, 1, dim)), b.param("mask_tokens", (1, MASK_TOKENS, dim))], 1
        )
        tokens = _with_tokens(b, sparse, out_tokens, before=True)
        src = b.transpose(b.reshape(b.add(image, dense), [0, dim, grid * grid]), [0, 2, 1])
        hs, src = _two_way_transformer(b, src, image_pe, tokens)
        up = b.reshape(b.transpose(src, [0, 2, 1]), [0, dim, grid, grid])
        with b.scope("output_upscaling"):
            up = b.gelu(_layer_norm_2d(b, b.conv_transpose(up, dim // 4, 2, 2, name="deconv1"), "ln"))
            up = b.gelu(b.conv_transpose(up, dim // 8, 2, 2, name="deconv2"))
        hyper = b.concat(
            [
                _mlp(b, b.slice(hs, 1, 1 + i, 2 + i), dim, dim // 8, 3, f"output_hypernetworks_mlps.{i}")
                for i in range(MASK_TOKENS)
            ],
            1,
        )  # (B, 4, 32)
        side = 4 * grid
        masks = b.matmul(hyper, b.reshape(up, [0, dim // 8, side * side]))
        iou = _mlp(b, b.slice(hs, 1, 0, 1), dim, MASK_TOKENS, 3, "iou_prediction_head")
        return b.reshape(masks, [0, MASK_TOKENS, side, side]), b.reshape(iou, [0, MASK_TOKENS])


def sam(
    b: GraphBuilder,
    shape: Sequence[int],
    dim: int = 768,
    layers: int = 12,
    heads: int = 12,
    global_layers: Sequence[int] = (2, 5, 8, 11),
) -> None:
    """SAM ViT-B (defaults) / ViT-L / ViT-H at 1024x1024: image encoder, prompt encoder for one
    click, mask decoder (4 masks at 256x256 and their predicted IoU)."""
    x = image_input(b, shape)
    with b.scope("image_encoder"):
        embedding = sam_image_encoder(b, x, dim, layers, heads, tuple(global_layers))
    grid = int(b.shape(embedding)[2])
    sparse, dense, image_pe = sam_prompt_encoder(b, grid, int(shape[2]))
    masks, iou = sam_mask_decoder(b, embedding, image_pe, sparse, dense)
    b.output(masks, "low_res_masks")
    b.output(iou, "iou_predictions")
