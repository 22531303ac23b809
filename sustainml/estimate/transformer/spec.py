"""A transformer's shape (``TransformerSpec``) and what it costs: parameters, FLOPs, bytes, memory.

Models too large to build as an ONNX graph (Llama, Mixtral, GPT-3, NLLB, Whisper large, ...) are
costed from the shape their model card or ``config.json`` publishes. Pure Python (no numpy), so
every worker may import it. Units: parameters and FLOPs as counts, bytes as bytes, tokens as
tokens.

What is counted, and why:

- **Parameters** of a layer: attention projections q, o (hidden x heads·head_dim) and k, v
  (hidden x kv_heads·head_dim: grouped-query attention, Ainslie et al. 2023, arXiv:2305.13245;
  multi-query when ``kv_heads`` = 1, Shazeer 2019, arXiv:1911.02150); the feed-forward block has
  two matrices (GELU/ReLU MLP, Vaswani et al. 2017) or three (gated SwiGLU/GeGLU, Shazeer 2020,
  arXiv:2002.05202) of hidden x ffn; a mixture-of-experts layer holds ``experts`` copies of the
  feed-forward block plus a router (hidden x experts) and runs ``experts_active`` of them per token
  (Fedus et al. 2021, arXiv:2101.03961; Mixtral, Jiang et al. 2024, arXiv:2401.04088). Norms,
  biases, learned position tables, token-type tables and a pooler are counted when the
  architecture says they exist. Token embeddings count once when the output head shares them
  (``tied_embeddings``), twice otherwise. An encoder-decoder (T5, mT5, BART, NLLB, Whisper) has
  ``encoder_layers`` layers of self-attention + feed-forward and ``decoder_layers`` layers that add
  cross-attention; its token embeddings are shared by both stacks. ``extra_parameters`` holds
  what the stack does not describe (a speech front-end, a vision tower), stated by the catalogue.
- **Forward FLOPs**: 2 FLOPs (multiply + add) per weight used per token (Kaplan et al. 2020,
  arXiv:2001.08361, section 2.1), on the active weights only for MoE, plus attention scores and
  their weighted sum, 2·2·heads·head_dim FLOPs per (query, key) pair and layer. Prefill attends
  causally (n(n+1)/2 pairs, as FlashAttention computes it, Dao 2023, arXiv:2307.08691); an encoder
  attends over all n² pairs. Prefill computes output logits for the last token only (what serving
  engines such as vLLM do); training computes them for every token.
- **Decode**, one generated token per sequence per step: the weights are read once per step for
  the whole batch, each sequence reads its own KV cache (2 · layers · kv_heads · head_dim values per
  cached token) and writes one more entry: decode is memory-bound (Pope et al. 2022, "Efficiently
  Scaling Transformer Inference", arXiv:2211.05102). For MoE, a step reads the experts the batch's
  tokens are routed to: the expected number of distinct experts among ``batch`` tokens each
  choosing ``experts_active`` of ``experts`` uniformly, E·(1 - (1 - k/E)^batch).
- **Training FLOPs** 6·N·D (forward 2·N·D + backward 4·N·D; Kaplan et al. 2020; Hoffmann et al.
  2022, arXiv:2203.15556), N the active parameters for MoE; optionally Kaplan's attention term
  6·layers·context·d_attn per token. An encoder-decoder counts each stack on the tokens that pass
  through it (input tokens: encoder and cross-attention keys/values; target tokens: the rest of the
  decoder and the output head), ``seq2seq_training_flops``.
- **Training memory**: mixed-precision Adam keeps 16 bytes per parameter (fp16/bf16 weights 2 and
  gradients 2, fp32 master weights 4, Adam moments 4 + 4: Rajbhandari et al. 2020, ZeRO,
  arXiv:1910.02054, section 3.1). Activations per layer and sequence: s·b·h·34 bytes with
  FlashAttention (no stored score matrix), + 5·a·s²·b bytes without it, and 2·s·b·h bytes with
  full recomputation (Korthikanti et al. 2022, arXiv:2205.05198, sections 4.1 and 5). A
  temporary-buffer and fragmentation overhead is not added: the figure is a floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

FfnKind = Literal["gelu", "swiglu"]
Kind = Literal["decoder", "encoder", "encoder-decoder"]
Norm = Literal["layernorm", "rmsnorm"]
Positions = Literal["learned", "rotary", "alibi", "relative", "sinusoidal", "none"]

#: Bytes per stored value at each precision (int4: 4 bits; quantisation scales not counted).
BYTES_PER_VALUE: Final[dict[str, float]] = {
    "fp32": 4.0,
    "tf32": 4.0,
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}
#: Mixed-precision Adam: 2 (weights) + 2 (gradients) + 4 (fp32 master) + 4 + 4 (moments).
ADAM_MIXED_BYTES_PER_PARAM: Final = 16.0
#: Activation bytes per token, layer and hidden unit with FlashAttention (Korthikanti et al.).
ACTIVATION_BYTES_PER_TOKEN_HIDDEN: Final = 34.0
#: The same with full activation recomputation: only each layer's input is kept (2 bytes).
RECOMPUTE_BYTES_PER_TOKEN_HIDDEN: Final = 2.0


class ArchitectureError(ValueError):
    """An architecture object that cannot describe a transformer; the message names the field."""


@dataclass(frozen=True)
class TransformerSpec:
    """The shape of a transformer, as a model card or ``config.json`` states it.

    ``layers`` is the decoder depth of a decoder-only model and the encoder depth of an encoder;
    an encoder-decoder sets ``encoder_layers`` and ``decoder_layers`` (``layers`` is then their
    sum). ``head_dim`` defaults to hidden / heads (Gemma states a different one).
    """

    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab: int
    context: int
    kv_heads: int = 0  # 0: as many as heads (multi-head attention)
    head_dim: int = 0  # 0: hidden // heads
    ffn_kind: FfnKind = "gelu"
    experts: int = 1
    experts_active: int = 1
    tied_embeddings: bool = True
    kind: Kind = "decoder"
    encoder_layers: int = 0
    decoder_layers: int = 0
    norm: Norm = "layernorm"
    bias: bool = False  # biases on every linear layer (BERT, GPT-2, OPT, BLOOM, Whisper)
    qkv_bias: bool = False  # biases on the q, k, v projections only (Qwen2)
    positions: Positions = "rotary"
    type_vocab: int = 0  # BERT token-type table
    embedding_norm: bool = False  # a norm right after the embeddings (BERT, BLOOM)
    pooler: bool = False  # BERT's hidden x hidden pooler
    extra_parameters: int = 0  # parts outside the stack (speech front-end, vision tower, ...)
    encoder_context: int = 0  # encoder positions when they differ (Whisper: 1500 audio frames)

    # ------------------------------------------------------------------ shape
    @property
    def dim_head(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads or self.heads

    @property
    def n_decoder_layers(self) -> int:
        """Layers that generate tokens (hold a KV cache)."""
        if self.kind == "encoder-decoder":
            return self.decoder_layers
        return 0 if self.kind == "encoder" else self.layers

    @property
    def n_encoder_layers(self) -> int:
        if self.kind == "encoder-decoder":
            return self.encoder_layers
        return self.layers if self.kind == "encoder" else 0

    # ------------------------------------------------------------ parameters
    def _norm_params(self) -> int:
        return self.hidden * (2 if self.norm == "layernorm" else 1)

    def _attention_params(self) -> int:
        d, q = self.hidden, self.heads * self.dim_head
        kv = self.n_kv_heads * self.dim_head
        weights = d * q + 2 * d * kv + q * d
        if self.bias:
            weights += q + 2 * kv + d
        elif self.qkv_bias:
            weights += q + 2 * kv
        return weights

    def _expert_params(self) -> int:
        """One feed-forward block (one expert)."""
        matrices = 3 if self.ffn_kind == "swiglu" else 2
        weights = matrices * self.hidden * self.ffn
        if self.bias:
            weights += (matrices - 1) * self.ffn + self.hidden
        return weights

    def _router_params(self) -> int:
        return self.hidden * self.experts if self.experts > 1 else 0

    def _layer_params(self, *, cross_attention: bool, active: bool) -> int:
        experts = self.experts_active if active else self.experts
        attention = self._attention_params() * (2 if cross_attention else 1)
        norms = self._norm_params() * (3 if cross_attention else 2)
        return attention + experts * self._expert_params() + self._router_params() + norms

    def _stack_params(self, *, active: bool) -> int:
        if self.kind == "encoder-decoder":
            encoder = self.encoder_layers * self._layer_params(cross_attention=False, active=active)
            decoder = self.decoder_layers * self._layer_params(cross_attention=True, active=active)
            return encoder + decoder + 2 * self._norm_params()  # a final norm per stack
        final_norm = 0 if (self.kind == "encoder" and self.embedding_norm) else self._norm_params()
        return self.layers * self._layer_params(cross_attention=False, active=active) + final_norm

    @property
    def embedding_params(self) -> int:
        """Token (and output head if untied), position and token-type tables."""
        tokens = self.vocab * self.hidden
        head = 0 if (self.tied_embeddings or self.kind == "encoder") else tokens
        positions = 0
        if self.positions == "learned":
            stacks = 2 if self.kind == "encoder-decoder" else 1
            positions = self.context * self.hidden * stacks
            if self.kind == "encoder-decoder" and self.encoder_context:
                positions = (self.context + self.encoder_context) * self.hidden
        types = self.type_vocab * self.hidden
        norm = self._norm_params() if self.embedding_norm else 0
        return tokens + head + positions + types + norm

    @property
    def lm_head_params(self) -> int:
        """Weights of the output projection to the vocabulary (0 for an encoder)."""
        return 0 if self.kind == "encoder" else self.vocab * self.hidden

    def parameters(self) -> int:
        """All parameters (every expert)."""
        pooler = self.hidden * self.hidden + self.hidden if self.pooler else 0
        return self._stack_params(active=False) + self.embedding_params + pooler + self.extra_parameters

    def active_parameters(self) -> int:
        """Parameters one token passes through (MoE: ``experts_active`` experts per layer)."""
        pooler = self.hidden * self.hidden + self.hidden if self.pooler else 0
        return self._stack_params(active=True) + self.embedding_params + pooler + self.extra_parameters

    def _matmul_params(self, *, decoder_only: bool = False) -> int:
        """Weights used as matrix multiplications per token in the stack (no lookup tables)."""
        if not decoder_only or self.kind == "decoder":
            return self._stack_params(active=True)
        if self.kind == "encoder-decoder":
            return self.decoder_layers * self._layer_params(cross_attention=True, active=True)
        return 0

    # ---------------------------------------------------------------- FLOPs
    def _attention_flops(self, queries: int, keys: int, layers: int) -> float:
        """QKᵀ and softmax·V: 2 matmuls x 2 FLOPs per (query, key) pair and head dimension."""
        return 4.0 * layers * self.heads * self.dim_head * queries * keys

    def prefill_flops(self, n_tokens: int, *, all_logits: bool = False) -> float:
        """Forward FLOPs to process ``n_tokens`` of input (prompt) for one sequence.

        Decoder: causal attention; logits for the last token only unless ``all_logits``.
        Encoder: bidirectional attention, no LM head. Encoder-decoder: the encoder pass over the
        input plus the decoder's first step (its start token) with cross-attention over the input.
        """
        check_positive("n_tokens", n_tokens)
        n = float(n_tokens)
        if self.kind == "encoder":
            return 2.0 * self._stack_params(active=True) * n + self._attention_flops(
                n_tokens, n_tokens, self.layers
            )
        if self.kind == "encoder-decoder":
            enc_layer = self._layer_params(cross_attention=False, active=True)
            encoder = 2.0 * self.encoder_layers * enc_layer * n
            encoder += self._attention_flops(n_tokens, n_tokens, self.encoder_layers)
            # Cross-attention keys/values of every input token, computed once per request.
            kv = 2.0 * self.decoder_layers * 2 * self.hidden * self.n_kv_heads * self.dim_head * n
            return encoder + kv + self.decode_flops(1, encoder_tokens=n_tokens)
        causal_pairs = n * (n + 1) / 2
        linear = 2.0 * self._stack_params(active=True) * n
        head = 2.0 * self.lm_head_params * (n if all_logits else 1)
        return linear + head + 4.0 * self.layers * self.heads * self.dim_head * causal_pairs

    def decode_flops(self, context: int, *, encoder_tokens: int = 0) -> float:
        """FLOPs to generate one token with ``context`` tokens already in the KV cache.

        ``encoder_tokens``: an encoder-decoder's input length (cross-attention keys).
        """
        check_non_negative("context", context)
        if self.kind == "encoder":
            raise ArchitectureError("architecture.kind: an encoder generates no tokens (no decode)")
        layers = self.n_decoder_layers
        linear = 2.0 * self._matmul_params(decoder_only=True)
        if self.kind == "encoder-decoder":
            # The cross-attention k, v projections were computed at prefill: not per token.
            linear -= 2.0 * layers * 2 * self.hidden * self.n_kv_heads * self.dim_head
        attention = self._attention_flops(1, context + 1, layers)
        if encoder_tokens:
            attention += self._attention_flops(1, encoder_tokens, layers)
        return linear + 2.0 * self.lm_head_params + attention

    def generate_flops(self, input_tokens: int, output_tokens: int) -> float:
        """Prefill of ``input_tokens`` then ``output_tokens`` decode steps (one sequence)."""
        total = self.prefill_flops(input_tokens)
        check_non_negative("output_tokens", output_tokens)
        enc = input_tokens if self.kind == "encoder-decoder" else 0
        start = 1 if self.kind == "encoder-decoder" else input_tokens
        # The sum of per-step attention over a growing context, in closed form (linear in context).
        if output_tokens:
            first = self.decode_flops(start, encoder_tokens=enc)
            last = self.decode_flops(start + output_tokens - 1, encoder_tokens=enc)
            total += (first + last) / 2 * output_tokens
        return total

    # ---------------------------------------------------------------- bytes
    def kv_cache_bytes_per_token(self, precision: str = "fp16") -> float:
        """Bytes of self-attention keys and values stored per token of context."""
        return 2.0 * self.n_decoder_layers * self.n_kv_heads * self.dim_head * bytes_per_value(precision)

    def weights_bytes(self, precision: str = "fp16", *, active: bool = False) -> float:
        """Memory of the weights at ``precision`` (all experts unless ``active``)."""
        params = self.active_parameters() if active else self.parameters()
        return params * bytes_per_value(precision)

    def decode_step(
        self,
        context: int,
        *,
        batch: int = 1,
        precision: str = "fp16",
        kv_precision: str | None = None,
        encoder_tokens: int = 0,
    ) -> DecodeStep:
        """One decode step of ``batch`` sequences, each with ``context`` cached tokens."""
        check_positive("batch", batch)
        check_non_negative("context", context)
        w, kvb = bytes_per_value(precision), bytes_per_value(kv_precision or precision)
        flops = self.decode_flops(context, encoder_tokens=encoder_tokens) * batch
        weight_bytes = self._weights_read_per_step(batch) * w
        kv_per_token = self.kv_cache_bytes_per_token(kv_precision or precision)
        kv_bytes = batch * kv_per_token * (context + 1)  # read the cache, write one entry
        if encoder_tokens:  # cross-attention keys/values of the input
            kv_bytes += (
                batch * 2.0 * self.n_decoder_layers * self.n_kv_heads * self.dim_head * kvb * encoder_tokens
            )
        return DecodeStep(batch=batch, flops=flops, weight_bytes=weight_bytes, kv_bytes=kv_bytes)

    def _weights_read_per_step(self, batch: int) -> float:
        """Parameters read in one decode step: MoE reads the experts the batch's tokens use."""
        decoder_only = self.kind == "encoder-decoder"
        matmul: float = self._matmul_params(decoder_only=decoder_only)
        if self.experts > 1:
            layers = self.n_decoder_layers
            k, e = self.experts_active, self.experts
            distinct = e * (1.0 - (1.0 - k / e) ** batch)
            matmul += layers * (distinct - k) * self._expert_params()
        return matmul + self.lm_head_params

    # -------------------------------------------------------------- training
    def training_flops(self, tokens: float, *, include_attention: bool = False) -> float:
        """6·N·D with N the active parameters (MoE) and D the training tokens.

        ``include_attention`` adds Kaplan's 6·layers·context·(heads·head_dim) per token.
        """
        if tokens < 0:
            raise ArchitectureError(f"training tokens must be >= 0, got {tokens}")
        flops = 6.0 * self.active_parameters() * tokens
        if include_attention:
            flops += 6.0 * self.layers * self.context * self.heads * self.dim_head * tokens
        return flops

    def seq2seq_training_flops(self, input_tokens: float, target_tokens: float) -> float:
        """Training FLOPs of an encoder-decoder: 6 FLOPs per weight and token that weight sees.

        Each input token passes through the encoder stack and the decoder's cross-attention key and
        value projections; each target token through the rest of the decoder (self-attention,
        cross-attention queries and output, feed-forward) and the output head. 6·N·D with N the
        whole model over-counts: a token goes through one stack, not both (T5 span corruption
        feeds the decoder about a fifth as many tokens as the encoder, Raffel et al. 2020,
        arXiv:1910.10683, section 3.3.4). Attention scores are not counted, as in 6·N·D.
        """
        if self.kind != "encoder-decoder":
            raise ArchitectureError(f"architecture.kind: {self.kind!r} is not an encoder-decoder")
        if input_tokens < 0 or target_tokens < 0:
            raise ArchitectureError(
                f"training tokens must be >= 0, got {input_tokens} input, {target_tokens} target"
            )
        layers = self.decoder_layers
        cross_kv = layers * 2 * self.hidden * self.n_kv_heads * self.dim_head
        encoder = self.encoder_layers * self._layer_params(cross_attention=False, active=True)
        decoder = layers * self._layer_params(cross_attention=True, active=True) - cross_kv
        per_input = encoder + cross_kv + self._norm_params()
        per_target = decoder + self._norm_params() + self.lm_head_params
        return 6.0 * (per_input * input_tokens + per_target * target_tokens)

    def training_memory(
        self,
        *,
        batch: int = 1,
        sequence: int | None = None,
        recompute: bool = False,
        flash_attention: bool = True,
        state_bytes_per_param: float = ADAM_MIXED_BYTES_PER_PARAM,
    ) -> TrainingMemory:
        """Bytes to train with mixed-precision Adam, for ``batch`` sequences of ``sequence`` tokens
        (default: the context). All experts are stored and trained."""
        check_positive("batch", batch)
        s = sequence if sequence is not None else self.context
        check_positive("sequence", s)
        states = self.parameters() * state_bytes_per_param
        h = self.hidden
        per_layer = (
            (RECOMPUTE_BYTES_PER_TOKEN_HIDDEN if recompute else ACTIVATION_BYTES_PER_TOKEN_HIDDEN)
            * s
            * batch
            * h
        )
        if not recompute and not flash_attention:
            per_layer += 5.0 * self.heads * s * s * batch
        activations = per_layer * self.layers
        return TrainingMemory(
            weights=self.parameters() * 2.0,
            gradients=self.parameters() * 2.0,
            optimizer=states - 4.0 * self.parameters(),
            activations=activations,
        )

    def describe(self) -> str:
        """One line for reasoning texts."""
        parts = [
            f"{self.kind}",
            f"{self.layers} layers"
            if self.kind != "encoder-decoder"
            else f"{self.encoder_layers}+{self.decoder_layers} layers",
            f"hidden {self.hidden}",
            f"{self.heads} heads",
        ]
        if self.n_kv_heads != self.heads:
            parts.append(f"{self.n_kv_heads} KV heads")
        parts.append(f"FFN {self.ffn} ({self.ffn_kind})")
        if self.experts > 1:
            parts.append(f"{self.experts} experts, {self.experts_active} active")
        parts.append(f"vocab {self.vocab}, context {self.context}")
        return ", ".join(parts)


@dataclass(frozen=True)
class DecodeStep:
    """FLOPs and bytes moved by one decode step of ``batch`` sequences."""

    batch: int
    flops: float
    weight_bytes: float
    kv_bytes: float

    @property
    def bytes(self) -> float:
        return self.weight_bytes + self.kv_bytes

    @property
    def flops_per_token(self) -> float:
        return self.flops / self.batch

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / self.batch

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte: far below a GPU's ridge point at small batch (memory-bound)."""
        return self.flops / self.bytes


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes held while training: weights, gradients, optimiser states, activations."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    assumptions: str = field(
        default=(
            "mixed-precision Adam, 16 bytes per parameter (ZeRO, arXiv:1910.02054); activations "
            "34·s·b·h bytes per layer with FlashAttention, 2·s·b·h with full recomputation "
            "(arXiv:2205.05198); no buffers or fragmentation"
        )
    )

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations


def bytes_per_value(precision: str) -> float:
    try:
        return BYTES_PER_VALUE[precision.lower()]
    except KeyError:
        raise ArchitectureError(
            f"precision {precision!r} is not one of {', '.join(BYTES_PER_VALUE)}"
        ) from None


def check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ArchitectureError(f"{name}: expected a whole number >= 1, got {value!r}")


def check_non_negative(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ArchitectureError(f"{name}: expected a whole number >= 0, got {value!r}")


def human(count: float) -> str:
    """12_900_000_000 -> '12.9 B' (parameters, FLOPs)."""
    for scale, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(count) >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count:.3g}" if not math.isclose(count, round(count)) else str(int(count))
