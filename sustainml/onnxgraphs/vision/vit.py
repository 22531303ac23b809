"""Vision transformers: patch embedding, the pre-norm encoder (shared with audio and captioning
models) and ViT-B/16.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from sustainml.onnxgraphs.layers import GraphBuilder
from sustainml.onnxgraphs.vision.image import image_input


def vit_encoder(
    b: GraphBuilder,
    tokens: str,
    layers: int,
    heads: int,
    mlp: int,
    eps: float = 1e-6,
    pre_norm: bool = True,
    final_norm: bool = True,
) -> str:
    """Pre-norm transformer encoder blocks (ViT/DeiT/BLIP vision/AST)."""
    y = tokens
    for i in range(layers):
        with b.scope(f"encoder.layer{i}"):
            h = b.mha(b.layer_norm(y, eps, name="ln1"), heads, fused_qkv=True)
            y = b.add(y, h)
            h = b.ffn(b.layer_norm(y, eps, name="ln2"), mlp)
            y = b.add(y, h)
    return b.layer_norm(y, eps, name="encoder.ln") if final_norm else y


def patch_tokens(
    b: GraphBuilder,
    x: str,
    dim: int,
    patch: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    cls: int = 1,
) -> str:
    """Patch embedding, flatten to tokens, prepend ``cls`` learned tokens, add position embeddings.

    The class token is written as Pad + Add (equivalent to a concat with a batch-expanded token),
    which keeps every shape static under a symbolic batch."""
    y = b.conv(x, dim, patch, patch if stride is None else stride, pad=0, name="patch_embed")
    shape = b.shape(y)
    n = math.prod(int(d) for d in shape[2:])
    y = b.transpose(b.reshape(y, [0, dim, n]), [0, 2, 1])
    total = n + cls
    if cls:
        y = b.pad(y, [0, cls, 0, 0, 0, 0])
        tok = b.param("cls_token", (1, cls, dim), bound=0.02)
        y = b.add(y, b.pad(tok, [0, 0, 0, 0, n, 0]))
    pos = b.param("pos_embed", (1, total, dim), bound=0.02)
    return b.add(y, pos)


def first_token(b: GraphBuilder, x: str) -> str:
    d = b.channels(x, -1)
    return b.reshape(b.slice(x, 1, 0, 1), [0, d])


def vit(
    b: GraphBuilder,
    shape: Sequence[int],
    patch: int = 16,
    dim: int = 768,
    layers: int = 12,
    heads: int = 12,
    mlp: int = 3072,
    classes: int = 1000,
) -> None:
    """torchvision vit_b_16: conv patch embedding, class token, pre-norm encoder, linear head."""
    tokens = patch_tokens(b, image_input(b, shape), dim, patch)
    y = vit_encoder(b, tokens, layers, heads, mlp)
    b.output(b.gemm(first_token(b, y), classes, name="head"), "logits")
