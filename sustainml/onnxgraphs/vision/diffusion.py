"""The latent-diffusion denoiser: the Stable-Diffusion v1 U-Net."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sustainml.onnxgraphs.graph import BATCH
from sustainml.onnxgraphs.layers import GraphBuilder


def _sd_resnet(b: GraphBuilder, x: str, temb: str, cout: int) -> str:
    h = b.conv(b.silu(b.group_norm(x, 32, name="norm1")), cout, 3, name="conv1")
    t = b.linear(b.silu(temb), cout, name="time_emb_proj")
    h = b.add(h, b.reshape(t, [0, cout, 1, 1]))
    h = b.conv(b.silu(b.group_norm(h, 32, name="norm2")), cout, 3, name="conv2")
    skip = x if b.channels(x) == cout else b.conv(x, cout, 1, name="conv_shortcut")
    return b.add(skip, h)


def _sd_transformer(b: GraphBuilder, x: str, context: str, heads: int = 8) -> str:
    shape = b.shape(x)
    c, hh, ww = int(shape[1]), int(shape[2]), int(shape[3])
    with b.scope("attn"):
        h = b.conv(b.group_norm(x, 32, eps=1e-6, name="norm"), c, 1, name="proj_in")
        t = b.transpose(b.reshape(h, [0, c, hh * ww]), [0, 2, 1])
        t = b.add(t, b.mha(b.layer_norm(t, name="norm1"), heads, qkv_bias=False, name="attn1"))
        t = b.add(
            t, b.mha(b.layer_norm(t, name="norm2"), heads, context=context, qkv_bias=False, name="attn2")
        )
        with b.scope("ff"):
            n = b.layer_norm(t, name="norm3")
            proj = b.linear(n, 8 * c, name="geglu")
            val, gate = b.split(proj, [4 * c, 4 * c], axis=-1)
            t = b.add(t, b.linear(b.mul(val, b.gelu(gate)), c, name="out"))
        h = b.reshape(b.transpose(t, [0, 2, 1]), [0, c, hh, ww])
        return b.add(x, b.conv(h, c, 1, name="proj_out"))


def sd_unet(
    b: GraphBuilder,
    shape: Sequence[int],
    channels: Sequence[int] = (320, 640, 1280, 1280),
    attention: Sequence[bool] = (True, True, True, False),
    layers: int = 2,
    mid_block: bool = True,
    context_len: int = 77,
    context_dim: int = 768,
) -> None:
    """Stable-Diffusion-v1 U-Net (diffusers UNet2DConditionModel layout): ResNet blocks with a
    time embedding, spatial transformers (self-attention, cross-attention to the text encoding,
    GEGLU feed-forward). One inference = ONE denoising step at batch 1 (classifier-free guidance
    doubles it; a 25-step sampler runs it 25 or 50 times). The default arguments are SD v1.4;
    BK-SDM variants drop blocks (fewer layers, no mid block, fewer stages)."""
    sample = b.input("sample", (BATCH, *[int(d) for d in shape[1:]]))
    timestep = b.input("timestep", (BATCH,))
    context = b.input("encoder_hidden_states", (BATCH, context_len, context_dim))
    with b.scope("time"):
        half = channels[0] // 2
        freqs = np.exp(-math.log(10000.0) * np.arange(half, dtype=np.float64) / half).astype(np.float32)
        t = b.op("Unsqueeze", [timestep, b.const(np.array([1]))], (BATCH, 1))
        ang = b.mul(t, b.const(freqs.reshape(1, half)))
        emb = b.concat([b.unary("Cos", ang), b.unary("Sin", ang)], 1)
        temb = b.linear(
            b.silu(b.linear(emb, 4 * channels[0], name="linear_1")), 4 * channels[0], name="linear_2"
        )
    y = b.conv(sample, channels[0], 3, name="conv_in")
    skips = [y]
    for i, (c, attn) in enumerate(zip(channels, attention, strict=True)):
        for j in range(layers):
            with b.scope(f"down{i}.{j}"):
                y = _sd_resnet(b, y, temb, c)
                if attn:
                    y = _sd_transformer(b, y, context)
            skips.append(y)
        if i < len(channels) - 1:
            y = b.conv(y, c, 3, 2, name=f"down{i}.downsample")
            skips.append(y)
    if mid_block:
        with b.scope("mid"):
            y = _sd_resnet(b, y, temb, channels[-1])
            y = _sd_transformer(b, y, context)
            y = _sd_resnet(b, y, temb, channels[-1])
    for i, (c, attn) in enumerate(zip(reversed(channels), reversed(attention), strict=True)):
        for j in range(layers + 1):
            with b.scope(f"up{i}.{j}"):
                y = _sd_resnet(b, b.concat([y, skips.pop()], 1), temb, c)
                if attn:
                    y = _sd_transformer(b, y, context)
        if i < len(channels) - 1:
            y = b.conv(b.upsample(y, 2), c, 3, name=f"up{i}.upsample")
    y = b.conv(b.silu(b.group_norm(y, 32, name="norm_out")), int(shape[1]), 3, name="conv_out")
    b.output(y, "noise_pred")
