"""Time-series forecasters, tabular networks and a tabular anomaly detector.

Inputs are float32 feature tensors prepared outside the graph (scaling, lags, one-hot columns),
as in the reference implementations' data pipelines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sustainml.onnxgraphs.graph import BATCH
from sustainml.onnxgraphs.layers import GraphBuilder


def _input(b: GraphBuilder, shape: Sequence[int], name: str) -> str:
    return b.input(name, (BATCH, *[int(d) for d in shape[1:]]))


# ---------------------------------------------------------------------------------- forecasting
def dlinear(b: GraphBuilder, shape: Sequence[int], horizon: int = 96, kernel: int = 25) -> None:
    """DLinear (Zeng et al., AAAI 2023): moving-average trend/seasonal decomposition (replicate
    padding), one shared linear layer per component from the look-back window to the horizon."""
    x = _input(b, shape, "past_values")  # (N, L, C)
    seq = b.transpose(x, [0, 2, 1])  # (N, C, L)
    half = (kernel - 1) // 2
    padded = b.pad(seq, [0, 0, half, 0, 0, half], mode="edge")
    trend = b.avgpool(padded, kernel, 1)
    seasonal = b.sub(seq, trend)
    out = b.add(
        b.linear(seasonal, horizon, name="linear_seasonal"), b.linear(trend, horizon, name="linear_trend")
    )
    b.output(b.transpose(out, [0, 2, 1]), "forecast")


def patchtst(
    b: GraphBuilder,
    shape: Sequence[int],
    horizon: int = 96,
    patch: int = 16,
    stride: int = 8,
    dim: int = 16,
    heads: int = 4,
    ff: int = 128,
    layers: int = 3,
) -> None:
    """PatchTST/42 (Nie et al., ICLR 2023; ETTh1 configuration): RevIN, channel-independent patches
    (16, stride 8, end padding -> 42 patches), learned positions, 3 Transformer layers with
    BatchNorm, flatten head to the horizon. Channels stay a tensor axis (no batch folding)."""
    x = _input(b, shape, "past_values")  # (N, L, C)
    length, chans = int(shape[1]), int(shape[2])
    with b.scope("revin"):
        mean = b.reduce_mean(x, [1], keepdims=True)
        centred = b.sub(x, mean)
        std = b.unary(
            "Sqrt",
            b.add(b.reduce_mean(b.mul(centred, centred), [1], keepdims=True), b.const(np.float32(1e-5))),
        )
        w = b.param("affine_weight", (chans,), init="ones")
        bias = b.param("affine_bias", (chans,), init="zeros")
        xn = b.add(b.mul(b.div(centred, std), w), bias)
    seq = b.pad(b.transpose(xn, [0, 2, 1]), [0, 0, 0, 0, 0, stride], mode="edge")  # (N, C, L + stride)
    n_patch = (length + stride - patch) // stride + 1
    idx = np.arange(n_patch)[:, None] * stride + np.arange(patch)[None, :]
    patches = b.op(
        "Gather", [seq, b.const(idx.astype(np.int64), "patch_index")], (BATCH, chans, n_patch, patch), axis=2
    )
    z = b.add(b.linear(patches, dim, name="W_P"), b.param("W_pos", (n_patch, dim), bound=0.02))
    dh = dim // heads
    for i in range(layers):
        with b.scope(f"layer{i}"):
            q, k, v = (
                b.transpose(b.reshape(b.linear(z, dim, name=n), [0, 0, 0, heads, dh]), [0, 1, 3, 2, 4])
                for n in ("q", "k", "v")
            )
            scores = b.matmul(
                b.mul(q, b.const(np.float32(1.0 / math.sqrt(dh)))), b.transpose(k, [0, 1, 2, 4, 3])
            )
            att = b.matmul(b.softmax(scores, -1), v)
            att = b.reshape(b.transpose(att, [0, 1, 3, 2, 4]), [0, 0, 0, dim])
            z = b.add(z, b.linear(att, dim, name="out"))
            z = b.transpose(b.batch_norm(b.transpose(z, [0, 3, 1, 2]), name="bn1"), [0, 2, 3, 1])
            z = b.add(z, b.ffn(z, ff))
            z = b.transpose(b.batch_norm(b.transpose(z, [0, 3, 1, 2]), name="bn2"), [0, 2, 3, 1])
    flat = b.reshape(z, [0, 0, n_patch * dim])
    y = b.linear(flat, horizon, name="head")  # (N, C, H)
    y = b.transpose(y, [0, 2, 1])
    with b.scope("revin"):
        y = b.add(b.mul(b.div(b.sub(y, bias), w), std), mean)
    b.output(y, "forecast")


def deepar(b: GraphBuilder, shape: Sequence[int], hidden: int = 40, layers: int = 2) -> None:
    """DeepAR (Salinas et al. 2020; GluonTS defaults): stacked LSTM over context + horizon steps,
    Student-t head (df, loc, scale). Input per step: lagged targets, time features, the series
    embedding and the scale, assembled by the data pipeline. One inference = one sample path
    (the sampling loop repeats it per path)."""
    x = _input(b, shape, "features")  # (N, T, F)
    steps, feats = int(shape[1]), int(shape[2])
    h = b.transpose(x, [1, 0, 2])  # (T, N, F)
    din = feats
    for i in range(layers):
        with b.scope(f"lstm{i}"):
            w = b.param("W", (1, 4 * hidden, din), fan_in=hidden)
            r = b.param("R", (1, 4 * hidden, hidden), fan_in=hidden)
            bias = b.param("B", (1, 8 * hidden), init="zeros")
            y = b.op("LSTM", [h, w, r, bias], (steps, 1, BATCH, hidden), hidden_size=hidden)
            h = b.op("Squeeze", [y, b.const(np.array([1], dtype=np.int64))], (steps, BATCH, hidden))
        din = hidden
    out = b.transpose(h, [1, 0, 2])
    b.output(b.linear(out, 3, name="student_t_args"), "distribution_args")


def tcn(
    b: GraphBuilder,
    shape: Sequence[int],
    horizon: int = 24,
    channels: int = 64,
    levels: int = 4,
    kernel: int = 3,
) -> None:
    """TCN (Bai et al. 2018, arXiv:1803.01271): ``levels`` residual blocks of two dilated causal
    convolutions (dilation 2**i, ReLU), a 1x1 convolution on the skip path when the width changes,
    and a linear head on the last time step to the horizon. Weight norm is folded into the
    convolution weights (one tensor per convolution, as an inference export writes it). Causal
    padding is on the left only: the reference pads both sides and chomps the right, which gives
    the same outputs after computing positions it discards."""
    x = _input(b, shape, "past_values")  # (N, C, L)
    y = x
    for i in range(levels):
        dilation = 2**i
        causal = [(kernel - 1) * dilation, 0]
        with b.scope(f"block{i}"):
            h = b.relu(b.conv(y, channels, kernel, pad=causal, dilation=dilation, name="conv1"))
            h = b.relu(b.conv(h, channels, kernel, pad=causal, dilation=dilation, name="conv2"))
            skip = y if b.channels(y) == channels else b.conv(y, channels, 1, pad=0, name="downsample")
            y = b.relu(b.add(h, skip))
    last = b.reshape(b.slice(y, 2, -1, int(shape[2])), [0, channels])
    b.output(b.gemm(last, horizon, name="head"), "forecast")


def nbeats(
    b: GraphBuilder,
    shape: Sequence[int],
    horizon: int = 18,
    stacks: int = 30,
    layers: int = 4,
    width: int = 512,
) -> None:
    """N-BEATS generic (Oreshkin et al., ICLR 2020; N-BEATS-G: 30 stacks of one block, 4 ReLU
    layers of 512, no weight sharing): each block maps the residual look-back window to
    backcast + forecast through one linear layer (the generic basis is the identity on it), the
    backcast is subtracted from the residual and the forecasts summed, starting from the last
    observed value as the reference implementation does. The reference also reverses the window
    and multiplies by a padding mask; both are left out (a fixed permutation of the first layer's
    inputs, and all ones for a full window)."""
    x = _input(b, shape, "past_values")  # (N, L)
    lookback = int(shape[1])
    residual = x
    forecast = b.slice(x, 1, lookback - 1, lookback)  # (N, 1), broadcast over the horizon
    for i in range(stacks):
        with b.scope(f"block{i}"):
            h = residual
            for j in range(layers):
                h = b.relu(b.gemm(h, width, name=f"fc{j}"))
            backcast, block_forecast = b.split(
                b.gemm(h, lookback + horizon, name="theta"), [lookback, horizon], 1
            )
        residual = b.sub(residual, backcast)
        forecast = b.add(forecast, block_forecast)
    b.output(forecast, "forecast")


# ---------------------------------------------------------------------------------- tabular
def ft_transformer(
    b: GraphBuilder,
    shape: Sequence[int],
    outputs: int = 1,
    dim: int = 192,
    blocks: int = 3,
    heads: int = 8,
    ffn: int = 256,
) -> None:
    """FT-Transformer (Gorishniy et al., NeurIPS 2021; default configuration): per-feature linear
    tokenizer, [CLS] token, pre-norm blocks (no norm before the first attention), ReGLU FFN,
    head LN + ReLU + linear on [CLS]."""
    x = _input(b, shape, "features")
    feats = int(shape[1])
    tok_w = b.param("tokenizer.weight", (feats, dim), bound=1 / math.sqrt(dim))
    tok_b = b.param("tokenizer.bias", (feats, dim), bound=1 / math.sqrt(dim))
    t = b.add(b.mul(b.reshape(x, [0, feats, 1]), tok_w), tok_b)
    t = b.pad(t, [0, 1, 0, 0, 0, 0])
    cls = b.param("cls", (1, 1, dim), bound=1 / math.sqrt(dim))
    t = b.add(t, b.pad(cls, [0, 0, 0, 0, feats, 0]))
    for i in range(blocks):
        with b.scope(f"block{i}"):
            h = t if i == 0 else b.layer_norm(t, name="ln_attn")
            t = b.add(t, b.mha(h, heads))
            h = b.layer_norm(t, name="ln_ffn")
            a, g = b.split(b.linear(h, 2 * ffn, name="ffn.fc1"), [ffn, ffn], axis=-1)
            t = b.add(t, b.linear(b.mul(a, b.relu(g)), dim, name="ffn.fc2"))
    c = b.reshape(b.slice(t, 1, 0, 1), [0, dim])
    b.output(b.gemm(b.relu(b.layer_norm(c, name="head.ln")), outputs, name="head"), "prediction")


def mlp(
    b: GraphBuilder, shape: Sequence[int], hidden: Sequence[int] = (256, 256, 256), outputs: int = 1
) -> None:
    """Plain MLP (Linear-ReLU blocks, dropout inactive at inference)."""
    y = _input(b, shape, "features")
    for i, h in enumerate(hidden):
        y = b.relu(b.gemm(y, h, name=f"block{i}"))
    b.output(b.gemm(y, outputs, name="head"), "prediction")


def dagmm(b: GraphBuilder, shape: Sequence[int], components: int = 4) -> None:
    """DAGMM (Zong et al., ICLR 2018; KDDCUP99 network): tanh autoencoder 120-60-30-10-1,
    reconstruction features (relative Euclidean distance, cosine similarity), estimation network
    3-10-4 (softmax) and the sample energy under the fitted GMM (constants after training)."""
    x = _input(b, shape, "features")
    y = x
    for i, h in enumerate((60, 30, 10)):
        y = b.tanh(b.gemm(y, h, name=f"enc{i}"))
    zc = b.gemm(y, 1, name="enc3")
    y = zc
    for i, h in enumerate((10, 30, 60)):
        y = b.tanh(b.gemm(y, h, name=f"dec{i}"))
    xr = b.gemm(y, int(shape[1]), name="dec3")
    diff = b.sub(x, xr)
    nx = b.op("ReduceL2", [x], (BATCH, 1), axes=[1], keepdims=1)
    eps = b.const(np.float32(1e-12))
    rel = b.div(b.op("ReduceL2", [diff], (BATCH, 1), axes=[1], keepdims=1), b.add(nx, eps))
    cos = b.div(
        b.op("ReduceSum", [b.mul(x, xr), b.const(np.array([1], dtype=np.int64))], (BATCH, 1), keepdims=1),
        b.add(b.mul(nx, b.op("ReduceL2", [xr], (BATCH, 1), axes=[1], keepdims=1)), eps),
    )
    z = b.concat([zc, rel, cos], 1)  # (N, 3)
    gamma = b.softmax(b.gemm(b.tanh(b.gemm(z, 10, name="est0")), components, name="est1"), -1)
    # Energy: -log sum_k phi_k N(z | mu_k, Sigma_k); mu, Sigma^-1 and log-normalisers are fitted constants.
    mu = b.param("gmm.mu", (components, 3), bound=1.0)
    prec = b.param("gmm.precision", (components, 3, 3), bound=1.0)
    logc = b.param("gmm.log_coef", (components,), init="zeros")
    d = b.sub(b.reshape(z, [0, 1, 3]), mu)  # (N, K, 3)
    m = b.matmul(b.reshape(d, [0, components, 1, 3]), prec)  # (N, K, 1, 3)
    maha = b.reshape(b.matmul(m, b.reshape(d, [0, components, 3, 1])), [0, components])
    logp = b.sub(logc, b.mul(maha, b.const(np.float32(0.5))))
    energy = b.op("ReduceLogSumExp", [logp], (BATCH,), axes=[1], keepdims=0)
    b.output(b.unary("Neg", energy), "energy")
    b.output(gamma, "membership")
