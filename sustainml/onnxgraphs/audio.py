"""Speech and audio architectures: Whisper, wav2vec 2.0, PANNs CNN14, YAMNet, AST, FastSpeech 2 + HiFi-GAN.

Front ends that are signal processing rather than learned layers (log-mel spectrograms for
Whisper, CNN14, YAMNet and AST) happen before the graph: their inputs are the features. wav2vec 2.0
takes the raw waveform (its feature encoder is learned convolutions).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from onnx import TensorProto

from sustainml.onnxgraphs.graph import BATCH
from sustainml.onnxgraphs.layers import GraphBuilder
from sustainml.onnxgraphs.text import positions, sinusoidal, tied_lookup, token_input, transformer_layer
from sustainml.onnxgraphs.vision.vit import patch_tokens, vit_encoder


def whisper(
    b: GraphBuilder,
    shape: Sequence[int],
    target_length: int = 128,
    vocab: int = 51865,
    dim: int = 384,
    layers: int = 4,
    heads: int = 6,
    max_target: int = 448,
) -> None:
    """OpenAI Whisper: 2 conv layers (GELU) over the 80 x 3000 log-mel of 30 s, sinusoidal positions,
    pre-LN encoder (k projections without bias); decoder with learned positions, causal self- and
    cross-attention, output tied to the token embedding. One inference = encoder over 30 s +
    decoder over ``target_length`` tokens (see ``text`` for the decoder convention)."""
    mel = b.input("input_features", (BATCH, *[int(d) for d in shape[1:]]))
    with b.scope("encoder"):
        x = b.gelu(b.conv(mel, dim, 3, 1, pad=1, name="conv1"))
        x = b.gelu(b.conv(x, dim, 3, 2, pad=1, name="conv2"))
        frames = int(b.shape(x)[2])
        x = b.add(b.transpose(x, [0, 2, 1]), b.const(sinusoidal(frames, dim), "embed_positions"))
        for i in range(layers):
            with b.scope(f"layer{i}"):
                x = transformer_layer(b, x, heads, 4 * dim, pre_norm=True, eps=1e-5, k_bias=False)
        memory = b.layer_norm(x, 1e-5, name="ln_post")
    ids = token_input(b, "decoder_input_ids", target_length, vocab)
    with b.scope("decoder"):
        table = b.param("embed_tokens", (dim, vocab), bound=0.02 * 3**0.5)
        y = b.add(
            tied_lookup(b, table, ids),
            positions(b, b.embedding_table("embed_positions", max_target, dim), target_length),
        )
        for i in range(layers):
            with b.scope(f"layer{i}"):
                y = transformer_layer(
                    b, y, heads, 4 * dim, pre_norm=True, eps=1e-5, k_bias=False, causal=True, context=memory
                )
        y = b.layer_norm(y, 1e-5, name="ln")
    b.output(b.matmul(y, table), "logits")


def wav2vec2(
    b: GraphBuilder,
    shape: Sequence[int],
    vocab: int = 32,
    dim: int = 768,
    layers: int = 12,
    heads: int = 12,
    ff: int = 3072,
) -> None:
    """wav2vec 2.0 base + CTC head (facebook/wav2vec2-base-960h): 7-layer conv feature encoder
    (512 ch, first with GroupNorm), projection, grouped positional convolution (k=128, 16 groups),
    post-LN transformer, linear CTC head. Input: 16 kHz waveform."""
    wave = b.input("input_values", (BATCH, int(shape[1])))
    x = b.reshape(wave, [0, 1, int(shape[1])])
    with b.scope("feature_extractor"):
        for i, (k, s) in enumerate([(10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2)]):
            x = b.conv(x, 512, k, s, pad=0, bias=False, name=f"conv{i}")
            if i == 0:
                x = b.group_norm(x, 512, name="gn0")
            x = b.gelu(x)
    x = b.transpose(x, [0, 2, 1])
    x = b.linear(b.layer_norm(x, 1e-5, name="feature_projection.ln"), dim, name="feature_projection")
    b.param("masked_spec_embed", (dim,), bound=0.02)  # part of the checkpoint, unused at inference
    with b.scope("pos_conv"):
        frames = int(b.shape(x)[1])
        p = b.conv(b.transpose(x, [0, 2, 1]), dim, 128, 1, pad=64, groups=16, name="conv")
        p = b.gelu(b.slice(p, 2, 0, frames))  # SamePad drops the extra frame of the even kernel
    x = b.layer_norm(b.add(x, b.transpose(p, [0, 2, 1])), 1e-5, name="encoder.ln")
    for i in range(layers):
        with b.scope(f"encoder.layer{i}"):
            x = transformer_layer(b, x, heads, ff, pre_norm=False, eps=1e-5)
    b.output(b.linear(x, vocab, name="lm_head"), "logits")


def cnn14(b: GraphBuilder, shape: Sequence[int], classes: int = 527) -> None:
    """PANNs CNN14 on a (1, frames, 64) log-mel: six VGG-style blocks (2 x conv3x3 + BN + ReLU,
    2x2 average pooling), frequency mean + (time max + time mean), fc 2048 + ReLU, sigmoid output."""
    x = b.input("log_mel", (BATCH, *[int(d) for d in shape[1:]]))
    x = b.batch_norm(b.transpose(x, [0, 3, 2, 1]), name="bn0")  # BN over the 64 mel bins
    x = b.transpose(x, [0, 3, 2, 1])
    for i, c in enumerate((64, 128, 256, 512, 1024, 2048)):
        with b.scope(f"block{i + 1}"):
            x = b.conv_act(x, c, 3, name="conv1")
            x = b.conv_act(x, c, 3, name="conv2")
            x = b.avgpool(x, 2, 2) if i < 5 else x
    x = b.reduce_mean(x, [3])  # (N, 2048, T)
    t = b.add(b.op("ReduceMax", [x], (BATCH, 2048), axes=[2], keepdims=0), b.reduce_mean(x, [2]))
    h = b.relu(b.gemm(t, 2048, name="fc1"))
    b.output(b.sigmoid(b.gemm(h, classes, name="fc_audioset")), "clipwise_output")


def yamnet(b: GraphBuilder, shape: Sequence[int], classes: int = 521) -> None:
    """YAMNet: MobileNet-v1 (depthwise-separable) on one 96 x 64 log-mel patch (0.96 s), global
    average pool, logistic layer over 521 AudioSet classes."""
    x = b.input("log_mel_patch", (BATCH, *[int(d) for d in shape[1:]]))
    x = b.conv_act(x, 32, 3, 2, name="layer1")
    cfg = (
        [(1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)] + [(1, 512)] * 5 + [(2, 1024), (1, 1024)]
    )
    for i, (s, c) in enumerate(cfg):
        with b.scope(f"layer{i + 2}"):
            cin = b.channels(x)
            x = b.conv_act(x, cin, 3, s, groups=cin, name="depthwise")
            x = b.conv_act(x, c, 1, name="pointwise")
    y = b.flatten(b.global_avgpool(x))
    b.output(b.sigmoid(b.gemm(y, classes, name="logits")), "scores")


def ds_cnn(
    b: GraphBuilder, shape: Sequence[int], classes: int = 12, filters: int = 64, blocks: int = 4
) -> None:
    """DS-CNN keyword spotter (the MLPerf Tiny reference, DS-CNN S of Zhang et al. 2017): 49 frames
    x 10 MFCC, a 10 x 4 convolution with stride 2 (TensorFlow 'same' padding: 25 x 5 out), four
    depthwise 3 x 3 + pointwise 1 x 1 blocks, average pool, 12 classes; BatchNorm folded."""
    x = b.input("mfcc", (BATCH, *[int(d) for d in shape[1:]]))
    x = b.conv_act(x, filters, (10, 4), 2, pad=[4, 1, 5, 1], name="conv1")
    for i in range(blocks):
        with b.scope(f"ds{i + 1}"):
            x = b.conv_act(x, filters, 3, groups=filters, name="depthwise")
            x = b.conv_act(x, filters, 1, name="pointwise")
    y = b.flatten(b.global_avgpool(x))
    b.output(b.gemm(y, classes, name="fc"), "logits")


def ast(b: GraphBuilder, shape: Sequence[int], classes: int = 527) -> None:
    """Audio Spectrogram Transformer (MIT/ast-finetuned-audioset-10-10-0.4593): 128-bin fbank of
    1024 frames, 16 x 16 patches with stride 10 (12 x 101 = 1212 patches), class + distillation
    tokens, ViT-B encoder, head on the mean of the two tokens."""
    fbank = b.input("input_values", (BATCH, *[int(d) for d in shape[1:]]))
    x = b.transpose(b.reshape(fbank, [0, 1, int(shape[1]), int(shape[2])]), [0, 1, 3, 2])
    tokens = patch_tokens(b, x, 768, 16, stride=10, cls=2)
    y = vit_encoder(b, tokens, 12, 12, 3072, eps=1e-12)
    both = b.slice(y, 1, 0, 2)
    pooled = b.reshape(b.reduce_mean(both, [1], keepdims=True), [0, 768])
    b.output(b.gemm(b.layer_norm(pooled, 1e-5, name="head.ln"), classes, name="head"), "logits")


# ---------------------------------------------------------------------------------- text to speech
def _fft_block(b: GraphBuilder, x: str, heads: int, filt: int, kernel: int) -> str:
    """FastSpeech feed-forward Transformer block: self-attention + conv1d(k=9) ReLU conv1d(k=1), post-LN."""
    x = b.layer_norm(b.add(x, b.mha(x, heads)), 1e-5, name="ln1")
    d = b.channels(x, -1)
    h = b.transpose(x, [0, 2, 1])
    h = b.conv(b.relu(b.conv(h, filt, kernel, name="conv1")), d, 1, name="conv2")
    return b.layer_norm(b.add(x, b.transpose(h, [0, 2, 1])), 1e-5, name="ln2")


def _variance_predictor(b: GraphBuilder, x: str, filt: int = 256) -> str:
    h = b.transpose(x, [0, 2, 1])
    h = b.relu(b.conv(h, filt, 3, name="conv1"))
    h = b.layer_norm(b.transpose(h, [0, 2, 1]), 1e-5, name="ln1")
    h = b.relu(b.conv(b.transpose(h, [0, 2, 1]), filt, 3, name="conv2"))
    h = b.layer_norm(b.transpose(h, [0, 2, 1]), 1e-5, name="ln2")
    return b.linear(h, 1, name="out")


def _quantised_embedding(b: GraphBuilder, x: str, value: str, bins: int, dim: int, name: str) -> str:
    """Pitch/energy: bucketise the predicted value and add its embedding."""
    idx = b.op("Floor", [b.mul(b.sigmoid(value), b.const(np.float32(bins - 1)))], b.shape(value))
    idx = b.op("Cast", [idx], b.shape(value), dtype=TensorProto.INT64, to=TensorProto.INT64)
    idx = b.op(
        "Squeeze", [idx, b.const(np.array([2], dtype=np.int64))], b.shape(value)[:2], dtype=TensorProto.INT64
    )
    return b.add(x, b.gather(b.embedding_table(name, bins, dim), idx))


def _hifigan(
    b: GraphBuilder,
    mel: str,
    upsample: Sequence[int] = (8, 8, 2, 2),
    kernels: Sequence[int] = (16, 16, 4, 4),
    channels: int = 512,
) -> str:
    """HiFi-GAN V1 generator: conv_pre, 4 transposed-conv upsamplers each followed by a
    multi-receptive-field fusion of 3 ResBlock1 (k = 3, 7, 11; dilations 1, 3, 5), conv_post, tanh."""
    x = b.conv(mel, channels, 7, name="conv_pre")
    for i, (u, k) in enumerate(zip(upsample, kernels, strict=True)):
        with b.scope(f"up{i}"):
            c = channels // 2 ** (i + 1)
            x = b.conv_transpose(b.leaky_relu(x, 0.1), c, k, u, pad=(k - u) // 2, name="deconv")
            branches = []
            for j, rk in enumerate((3, 7, 11)):
                with b.scope(f"res{j}"):
                    y = x
                    for n, d in enumerate((1, 3, 5)):
                        t = b.conv(b.leaky_relu(y, 0.1), c, rk, dilation=d, name=f"convs1.{n}")
                        t = b.conv(b.leaky_relu(t, 0.1), c, rk, name=f"convs2.{n}")
                        y = b.add(y, t)
                    branches.append(y)
            x = b.mul(b.add(b.add(branches[0], branches[1]), branches[2]), b.const(np.float32(1.0 / 3.0)))
    x = b.conv(b.leaky_relu(x, 0.01), 1, 7, name="conv_post")
    return b.tanh(x)


def fastspeech2_hifigan(
    b: GraphBuilder,
    shape: Sequence[int],
    vocab: int = 80,
    dim: int = 256,
    layers: int = 4,
    heads: int = 2,
    filt: int = 1024,
    kernel: int = 9,
    frames_per_phoneme: int = 6,
    mels: int = 80,
) -> None:
    """FastSpeech 2 (Ren et al. 2021, hyper-parameters of its appendix: 4+4 FFT blocks, d=256,
    2 heads, conv filter 1024, kernel 9; duration/pitch/energy predictors) + HiFi-GAN V1 vocoder.

    The length regulator expands every phoneme by a fixed ``frames_per_phoneme`` (the reference
    utterance: 64 phonemes -> 384 mel frames -> 98,304 samples at 22.05 kHz, about 4.5 s): graph
    shapes stay static while the predictors still run. One inference = one utterance."""
    length = int(shape[1])
    ids = token_input(b, "phoneme_ids", length, vocab)
    with b.scope("encoder"):
        x = b.gather(b.embedding_table("phoneme_embedding", vocab, dim), ids)
        x = b.add(x, b.const(sinusoidal(length, dim), "position_enc"))
        for i in range(layers):
            with b.scope(f"layer{i}"):
                x = _fft_block(b, x, heads, filt, kernel)
    with b.scope("variance_adaptor"):
        with b.scope("duration"):
            durations = _variance_predictor(b, x)
        frames = length * frames_per_phoneme
        expand = b.const(np.repeat(np.arange(length, dtype=np.int64), frames_per_phoneme), "length_regulator")
        y = b.op("Gather", [x, expand], (BATCH, frames, dim), axis=1)
        with b.scope("pitch"):
            y = _quantised_embedding(b, y, _variance_predictor(b, y), 256, dim, "pitch_embedding")
        with b.scope("energy"):
            y = _quantised_embedding(b, y, _variance_predictor(b, y), 256, dim, "energy_embedding")
    with b.scope("decoder"):
        y = b.add(y, b.const(sinusoidal(frames, dim), "position_dec"))
        for i in range(layers):
            with b.scope(f"layer{i}"):
                y = _fft_block(b, y, heads, filt, kernel)
        mel = b.transpose(b.linear(y, mels, name="mel_linear"), [0, 2, 1])
    b.output(durations, "log_durations")
    with b.scope("hifigan"):
        wave = _hifigan(b, mel)
    b.output(b.reshape(wave, [0, -1]), "waveform")
