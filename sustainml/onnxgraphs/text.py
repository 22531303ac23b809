"""Transformer text architectures: BERT-style encoders, GPT-2, BART/Marian/T5 seq2seq, MPNet, BLIP.

Token models take int64 token ids of a fixed reference length (``input_shape[1]``), batch
symbolic; the attention mask is omitted (every position valid at the reference length).

What one inference is (the catalogue MACs use the same definition):
- encoders: one forward pass over the reference sequence;
- decoder-only LMs: one forward pass over the reference length L. Its linear-layer MACs equal
  those of producing L tokens with a KV cache; attention MACs differ by < 2 %;
- seq2seq (and the captioning/ASR decoders): encoder once over the source, then the decoder over
  the reference target length T, teacher-forced (same MACs as greedy decoding T tokens with a KV
  cache, up to the attention term).
Tied input/output embeddings are one (d, V) initializer: the lookup is a Gather on axis 1 and the
LM head a MatMul, so the shared matrix is counted once, as in the published parameter counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from onnx import TensorProto

from sustainml.onnxgraphs.graph import BATCH
from sustainml.onnxgraphs.layers import GraphBuilder


def token_input(b: GraphBuilder, name: str, length: int, vocab: int) -> str:
    return b.input(name, (BATCH, length), TensorProto.INT64, high=vocab)


def lookup(b: GraphBuilder, table: str, ids: str) -> str:
    """Embedding lookup on a (V, d) table."""
    return b.gather(table, ids)


def tied_lookup(b: GraphBuilder, table_t: str, ids: str) -> str:
    """Embedding lookup on a (d, V) tied table: Gather columns, then move d last."""
    d = int(b.shape(table_t)[0])
    g = b.op("Gather", [table_t, ids], (d, *b.shape(ids)), axis=1)
    return b.transpose(g, [1, 2, 0])


def positions(b: GraphBuilder, table: str, length: int, offset: int = 0) -> str:
    """Rows offset .. offset+length of a learned position table, shape (1, L, d)."""
    idx = b.const(np.arange(offset, offset + length, dtype=np.int64).reshape(1, length), "positions")
    return b.gather(table, idx)


def sinusoidal(length: int, dim: int) -> np.ndarray:
    """Fairseq/Marian/Whisper-style sinusoidal table (sin half, cos half)."""
    half = dim // 2
    freq = np.exp(-math.log(10000.0) * np.arange(half) / max(half - 1, 1))
    ang = np.arange(length)[:, None] * freq[None, :]
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=1).astype(np.float32)


def relative_buckets(
    q_len: int, k_len: int, bidirectional: bool, buckets: int = 32, max_distance: int = 128
) -> np.ndarray:
    """T5/MPNet relative-position bucket of every (query, key) pair."""
    rel = np.arange(k_len)[None, :] - np.arange(q_len)[:, None]
    out = np.zeros_like(rel)
    n = buckets
    if bidirectional:
        n //= 2
        out += (rel > 0).astype(np.int64) * n
        rel = np.abs(rel)
    else:
        rel = -np.minimum(rel, 0)
    exact = n // 2
    large = exact + (
        np.log(np.maximum(rel, 1) / exact) / math.log(max_distance / exact) * (n - exact)
    ).astype(np.int64)
    large = np.minimum(large, n - 1)
    out += np.where(rel < exact, rel, large)
    return out.astype(np.int64)


def relative_bias(b: GraphBuilder, table: str, q_len: int, k_len: int, bidirectional: bool) -> str:
    """(1, H, Lq, Lk) additive attention bias gathered from a (buckets, H) table."""
    idx = b.const(relative_buckets(q_len, k_len, bidirectional), "rel_buckets")
    g = b.gather(table, idx)  # (Lq, Lk, H)
    heads = int(b.shape(table)[1])
    return b.reshape(b.transpose(g, [2, 0, 1]), [1, heads, q_len, k_len])


def transformer_layer(
    b: GraphBuilder,
    x: str,
    heads: int,
    ff: int,
    *,
    pre_norm: bool,
    eps: float,
    act: str = "gelu",
    causal: bool = False,
    context: str | None = None,
    bias: bool = True,
    k_bias: bool | None = None,
    norm: str = "ln",
    attn_bias: str | None = None,
    scale: float | None = None,
    fused_qkv: bool = False,
    gated: bool = False,
) -> str:
    """Self-attention (+ cross-attention when ``context``) + FFN, pre- or post-norm."""

    def nrm(y: str, name: str) -> str:
        return b.rms_norm(y, eps, name=name) if norm == "rms" else b.layer_norm(y, eps, name=name)

    def ffn(y: str) -> str:
        return b.gated_ffn(y, ff, act, bias=bias) if gated else b.ffn(y, ff, act, bias=bias)

    def attn(y: str, ctx: str | None, name: str, is_causal: bool, ab: str | None) -> str:
        return b.mha(
            y,
            heads,
            context=ctx,
            causal=is_causal,
            qkv_bias=bias,
            out_bias=bias,
            k_bias=k_bias,
            fused_qkv=fused_qkv and ctx is None,
            bias=ab,
            scale=scale,
            name=name,
        )

    if pre_norm:
        x = b.add(x, attn(nrm(x, "ln_attn"), None, "attn", causal, attn_bias))
        if context is not None:
            x = b.add(x, attn(nrm(x, "ln_cross"), context, "cross", False, None))
        return b.add(x, ffn(nrm(x, "ln_ffn")))
    x = nrm(b.add(x, attn(x, None, "attn", causal, attn_bias)), "ln_attn")
    if context is not None:
        x = nrm(b.add(x, attn(x, context, "cross", False, None)), "ln_cross")
    return nrm(b.add(x, ffn(x)), "ln_ffn")


# ---------------------------------------------------------------------------------- encoders
def bert_encoder(
    b: GraphBuilder,
    ids: str,
    vocab: int,
    dim: int,
    layers: int,
    heads: int,
    ff: int,
    max_pos: int = 512,
    type_vocab: int = 2,
    pos_offset: int = 0,
    eps: float = 1e-12,
    relative: bool = False,
) -> str:
    """BERT / DistilBERT / RoBERTa / MiniLM / MPNet encoder (post-LN)."""
    length = int(b.shape(ids)[1])
    with b.scope("embeddings"):
        x = lookup(b, b.embedding_table("word", vocab, dim), ids)
        x = b.add(x, positions(b, b.embedding_table("position", max_pos, dim), length, pos_offset))
        if type_vocab:
            types = b.const(np.zeros((1, length), dtype=np.int64), "token_types")
            x = b.add(x, b.gather(b.embedding_table("token_type", type_vocab, dim), types))
        x = b.layer_norm(x, eps)
    bias = None
    if relative:
        bias = relative_bias(
            b, b.param("relative_attention_bias", (32, heads), bound=0.02), length, length, True
        )
    for i in range(layers):
        with b.scope(f"layer{i}"):
            x = transformer_layer(b, x, heads, ff, pre_norm=False, eps=eps, attn_bias=bias)
    return x


def _cls(b: GraphBuilder, x: str) -> str:
    d = b.channels(x, -1)
    return b.reshape(b.slice(x, 1, 0, 1), [0, d])


def bert(
    b: GraphBuilder,
    shape: Sequence[int],
    vocab: int,
    dim: int = 768,
    layers: int = 12,
    heads: int = 12,
    ff: int = 3072,
    max_pos: int = 512,
    type_vocab: int = 2,
    pos_offset: int = 0,
    head: str = "sequence",
    labels: int = 2,
    pooler: bool = True,
    relative: bool = False,
) -> None:
    """An encoder plus one of the task heads:

    - ``sequence``: BERT pooler (tanh) + classifier; ``distil``: DistilBERT pre_classifier+ReLU;
      ``roberta``: dense+tanh+out on the first token;
    - ``token``: per-token classifier; ``qa``: per-token start/end logits;
    - ``embedding``: mean pooling + L2 normalisation (sentence-transformers), pooler kept when
      the checkpoint has one (it is in the parameter count but unused)."""
    ids = token_input(b, "input_ids", int(shape[1]), vocab)
    x = bert_encoder(
        b, ids, vocab, dim, layers, heads, ff, max_pos, type_vocab, pos_offset, relative=relative
    )
    if head == "sequence":
        p = b.tanh(b.gemm(_cls(b, x), dim, name="pooler"))
        b.output(b.gemm(p, labels, name="classifier"), "logits")
    elif head == "distil":
        p = b.relu(b.gemm(_cls(b, x), dim, name="pre_classifier"))
        b.output(b.gemm(p, labels, name="classifier"), "logits")
    elif head == "roberta":
        p = b.tanh(b.gemm(_cls(b, x), dim, name="classifier.dense"))
        b.output(b.gemm(p, labels, name="classifier.out"), "logits")
    elif head == "token":
        b.output(b.linear(x, labels, name="classifier"), "logits")
    elif head == "qa":
        start, end = b.split(b.linear(x, 2, name="qa_outputs"), [1, 1], axis=-1)
        b.output(b.reshape(start, [0, -1]), "start_logits")
        b.output(b.reshape(end, [0, -1]), "end_logits")
    elif head == "embedding":
        if pooler:
            b.output(b.tanh(b.gemm(_cls(b, x), dim, name="pooler")), "pooler_output")
        mean = b.reduce_mean(x, [1])
        norm = b.op("ReduceL2", [mean], (BATCH, 1), axes=[1], keepdims=1)
        b.output(b.div(mean, b.add(norm, b.const(np.float32(1e-12)))), "sentence_embedding")
    else:
        raise ValueError(f"unknown head {head!r}")


# ---------------------------------------------------------------------------------- decoders
def gpt2(
    b: GraphBuilder,
    shape: Sequence[int],
    vocab: int = 50257,
    dim: int = 768,
    layers: int = 12,
    heads: int = 12,
    max_pos: int = 1024,
) -> None:
    """GPT-2 (pre-LN, fused c_attn, GELU MLP x4, final LN, LM head tied to wte)."""
    length = int(shape[1])
    ids = token_input(b, "input_ids", length, vocab)
    wte = b.param("wte", (dim, vocab), bound=0.02 * math.sqrt(3.0))
    x = b.add(tied_lookup(b, wte, ids), positions(b, b.embedding_table("wpe", max_pos, dim), length))
    for i in range(layers):
        with b.scope(f"h{i}"):
            x = transformer_layer(b, x, heads, 4 * dim, pre_norm=True, eps=1e-5, causal=True, fused_qkv=True)
    x = b.layer_norm(x, 1e-5, name="ln_f")
    b.output(b.matmul(x, wte), "logits")


# ---------------------------------------------------------------------------------- seq2seq
def bart(
    b: GraphBuilder,
    shape: Sequence[int],
    target_length: int,
    vocab: int,
    dim: int,
    enc_layers: int,
    dec_layers: int,
    heads: int,
    ff: int,
    max_pos: int = 1024,
    style: str = "bart",
) -> None:
    """BART (learned positions offset 2, embedding LN, GELU) or Marian (sinusoidal positions,
    sqrt(d) embedding scale, SiLU); post-LN; encoder, decoder and LM head share one embedding."""
    src_len = int(shape[1])
    src = token_input(b, "input_ids", src_len, vocab)
    tgt = token_input(b, "decoder_input_ids", target_length, vocab)
    shared = b.param("shared", (dim, vocab), bound=0.02 * math.sqrt(3.0))
    act = "gelu" if style == "bart" else "silu"

    def embed(ids: str, length: int, part: str) -> str:
        with b.scope(part):
            x = tied_lookup(b, shared, ids)
            if style == "bart":
                x = b.add(x, positions(b, b.embedding_table("positions", max_pos + 2, dim), length, 2))
                return b.layer_norm(x, 1e-5, name="ln_embedding")
            x = b.mul(x, b.const(np.float32(math.sqrt(dim))))
            # Sinusoidal table: a constant, but a stored weight of the checkpoint (so counted).
            return b.add(x, positions(b, b.const(sinusoidal(max_pos, dim), "sinusoidal"), length))

    x = embed(src, src_len, "encoder")
    for i in range(enc_layers):
        with b.scope(f"encoder.layer{i}"):
            x = transformer_layer(b, x, heads, ff, pre_norm=False, eps=1e-5, act=act)
    memory = x
    y = embed(tgt, target_length, "decoder")
    for i in range(dec_layers):
        with b.scope(f"decoder.layer{i}"):
            y = transformer_layer(
                b, y, heads, ff, pre_norm=False, eps=1e-5, act=act, causal=True, context=memory
            )
    logits = b.add(b.matmul(y, shared), b.param("final_logits_bias", (1, vocab), init="zeros"))
    b.output(logits, "logits")


def t5(
    b: GraphBuilder,
    shape: Sequence[int],
    target_length: int,
    vocab: int = 32128,
    dim: int = 512,
    layers: int = 6,
    heads: int = 8,
    ff: int = 2048,
    gated: bool = False,
) -> None:
    """T5 (v1.0: ReLU FFN, RMS norm, no biases, unscaled attention with relative position buckets
    in the first layer of each stack; LM head tied with a d^-0.5 rescale)."""
    src_len = int(shape[1])
    src = token_input(b, "input_ids", src_len, vocab)
    tgt = token_input(b, "decoder_input_ids", target_length, vocab)
    shared = b.param("shared", (dim, vocab), bound=1.0)
    act = "gelu" if gated else "relu"
    with b.scope("encoder"):
        x = tied_lookup(b, shared, src)
        enc_bias = relative_bias(
            b, b.param("relative_attention_bias", (32, heads), bound=0.02), src_len, src_len, True
        )
        for i in range(layers):
            with b.scope(f"block{i}"):
                x = transformer_layer(
                    b,
                    x,
                    heads,
                    ff,
                    pre_norm=True,
                    eps=1e-6,
                    act=act,
                    bias=False,
                    norm="rms",
                    attn_bias=enc_bias,
                    scale=1.0,
                    gated=gated,
                )
        memory = b.rms_norm(x, 1e-6, name="final_norm")
    with b.scope("decoder"):
        y = tied_lookup(b, shared, tgt)
        dec_bias = relative_bias(
            b,
            b.param("relative_attention_bias", (32, heads), bound=0.02),
            target_length,
            target_length,
            False,
        )
        for i in range(layers):
            with b.scope(f"block{i}"):
                y = transformer_layer(
                    b,
                    y,
                    heads,
                    ff,
                    pre_norm=True,
                    eps=1e-6,
                    act=act,
                    bias=False,
                    norm="rms",
                    attn_bias=dec_bias,
                    scale=1.0,
                    causal=True,
                    context=memory,
                    gated=gated,
                )
        y = b.rms_norm(y, 1e-6, name="final_norm")
    y = b.mul(y, b.const(np.float32(dim**-0.5)))
    b.output(b.matmul(y, shared), "logits")


# ---------------------------------------------------------------------------------- image captioning
def blip_captioning(
    b: GraphBuilder,
    shape: Sequence[int],
    target_length: int = 32,
    vocab: int = 30524,
    dim: int = 768,
    layers: int = 12,
    heads: int = 12,
    ff: int = 3072,
) -> None:
    """BLIP captioning (base): ViT-B/16 image encoder at 384x384 (577 tokens), BERT-base text
    decoder with causal self-attention and cross-attention to the image in every layer, LM head
    (dense + GELU + LN + untied decoder with bias, as the released checkpoint stores it)."""
    from sustainml.onnxgraphs.vision.image import image_input
    from sustainml.onnxgraphs.vision.vit import patch_tokens, vit_encoder

    pixels = image_input(b, shape)
    with b.scope("vision"):
        tokens = patch_tokens(b, pixels, dim, 16)
        image = vit_encoder(b, tokens, layers, heads, ff, eps=1e-5)
    ids = token_input(b, "input_ids", target_length, vocab)
    with b.scope("text"):
        with b.scope("embeddings"):
            x = lookup(b, b.embedding_table("word", vocab, dim), ids)
            x = b.add(x, positions(b, b.embedding_table("position", 512, dim), target_length))
            x = b.layer_norm(x, 1e-12)
        for i in range(layers):
            with b.scope(f"layer{i}"):
                x = transformer_layer(b, x, heads, ff, pre_norm=False, eps=1e-12, causal=True, context=image)
        with b.scope("lm_head"):
            h = b.layer_norm(b.gelu(b.linear(x, dim, name="transform")), 1e-12)
            b.output(b.linear(h, vocab, name="decoder"), "logits")
