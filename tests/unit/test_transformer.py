"""The analytic transformer cost model (``sustainml.estimate.transformer``).

Parameter counts are checked against the figures the model authors publish (each cited at the
case); FLOPs and bytes against values worked out by hand on a small made-up shape.
"""

from __future__ import annotations

from typing import Any

import pytest

from sustainml.estimate import transformer as tf

LLAMA = {"ffn_kind": "swiglu", "norm": "rmsnorm", "tied_embeddings": False, "positions": "rotary"}

# (architecture as the config/paper states it, published total, published active, source)
PUBLISHED: dict[str, tuple[dict[str, Any], float, float, str]] = {
    "Llama-2-7B": (
        {"layers": 32, "hidden": 4096, "heads": 32, "ffn": 11008, "vocab": 32000, "context": 4096, **LLAMA},
        6.74e9,
        6.74e9,
        "Touvron et al. 2023, arXiv:2307.09288; 6.74B in huggingface.co/meta-llama/Llama-2-7b-hf",
    ),
    "Llama-3-8B": (
        {
            "layers": 32,
            "hidden": 4096,
            "heads": 32,
            "kv_heads": 8,
            "ffn": 14336,
            "vocab": 128256,
            "context": 8192,
            **LLAMA,
        },
        8.03e9,
        8.03e9,
        "huggingface.co/meta-llama/Meta-Llama-3-8B (8.03B parameters in the model card)",
    ),
    "Mixtral-8x7B": (
        {
            "layers": 32,
            "hidden": 4096,
            "heads": 32,
            "kv_heads": 8,
            "ffn": 14336,
            "vocab": 32000,
            "context": 32768,
            "experts": 8,
            "experts_active": 2,
            **LLAMA,
        },
        46.7e9,
        12.9e9,
        "Jiang et al. 2024, arXiv:2401.04088, section 2 (47B total, 13B active); "
        "mistral.ai/news/mixtral-of-experts (46.7B / 12.9B)",
    ),
    "GPT-3 175B": (
        {
            "layers": 96,
            "hidden": 12288,
            "heads": 96,
            "ffn": 49152,
            "vocab": 50257,
            "context": 2048,
            "positions": "learned",
            "bias": True,
        },
        175.0e9,
        175.0e9,
        "Brown et al. 2020, arXiv:2005.14165, table 2.1",
    ),
    "BERT-large": (
        {
            "kind": "encoder",
            "layers": 24,
            "hidden": 1024,
            "heads": 16,
            "ffn": 4096,
            "vocab": 30522,
            "context": 512,
            "positions": "learned",
            "bias": True,
            "type_vocab": 2,
            "embedding_norm": True,
            "pooler": True,
        },
        335e6,
        335e6,
        "github.com/google-research/bert README (BERT-Large: 24 layers, 1024 hidden, 16 heads, 340M); "
        "335M in the Hugging Face card of bert-large-uncased",
    ),
    "Whisper large-v3": (
        {
            "kind": "encoder-decoder",
            "encoder_layers": 32,
            "decoder_layers": 32,
            "hidden": 1280,
            "heads": 20,
            "ffn": 5120,
            "vocab": 51866,
            "context": 448,
            "encoder_context": 1500,
            "positions": "learned",
            "bias": True,
            "extra_parameters": 128 * 1280 * 3 + 1280 + 1280 * 1280 * 3 + 1280,
        },
        1550e6,
        1550e6,
        "Radford et al. 2022, arXiv:2212.04356, table 1 (large: 1550M); "
        "huggingface.co/openai/whisper-large-v3",
    ),
    "T5-small": (
        {
            "kind": "encoder-decoder",
            "encoder_layers": 6,
            "decoder_layers": 6,
            "hidden": 512,
            "heads": 8,
            "ffn": 2048,
            "vocab": 32128,
            "context": 512,
            "positions": "relative",
            "norm": "rmsnorm",
        },
        60.5e6,
        60.5e6,
        "Raffel et al. 2020, arXiv:1910.10683; 60.5M in huggingface.co/google-t5/t5-small",
    ),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameters_within_2_percent_of_published(name: str) -> None:
    arch, total, active, _source = PUBLISHED[name]
    spec = tf.from_architecture(arch)
    assert spec.parameters() == pytest.approx(total, rel=0.02)
    assert spec.active_parameters() == pytest.approx(active, rel=0.02)


def test_llama2_7b_exact_count_matches_the_checkpoint() -> None:
    # 6,738,415,616 is the parameter count of the released checkpoint (sum of the tensor sizes
    # in huggingface.co/meta-llama/Llama-2-7b-hf, model.safetensors.index.json total_size / 2).
    spec = tf.from_architecture(PUBLISHED["Llama-2-7B"][0])
    assert spec.parameters() == 6_738_415_616


def test_mixtral_moe_counts_every_expert_but_activates_two() -> None:
    spec = tf.from_architecture(PUBLISHED["Mixtral-8x7B"][0])
    expert = 3 * 4096 * 14336
    assert spec.parameters() - spec.active_parameters() == 32 * 6 * expert
    # Training FLOPs use the active parameters: 6 x 12.9e9 per token.
    assert spec.training_flops(1.0) == pytest.approx(6 * spec.active_parameters())


def test_kv_cache_per_token_llama2_and_gqa_llama3() -> None:
    llama2 = tf.from_architecture(PUBLISHED["Llama-2-7B"][0])
    llama3 = tf.from_architecture(PUBLISHED["Llama-3-8B"][0])
    # 2 (K and V) x 32 layers x 32 heads x 128 dims x 2 bytes = 512 KiB per token in fp16
    assert llama2.kv_cache_bytes_per_token("fp16") == 2 * 32 * 32 * 128 * 2 == 524_288
    # grouped-query attention with 8 KV heads: a quarter of that
    assert llama3.kv_cache_bytes_per_token("fp16") == 131_072
    assert llama3.kv_cache_bytes_per_token("int8") == 65_536


SMALL = {"layers": 2, "hidden": 8, "heads": 2, "ffn": 32, "vocab": 100, "context": 16}


def test_small_shape_parameters_by_hand() -> None:
    spec = tf.from_architecture(SMALL)  # gelu, layernorm, rotary, tied, no bias
    attention = 4 * 8 * 8
    ffn = 2 * 8 * 32
    norms = 2 * (2 * 8)
    per_layer = attention + ffn + norms
    assert spec.parameters() == 2 * per_layer + 2 * 8 + 100 * 8
    untied = tf.from_architecture({**SMALL, "tied_embeddings": False})
    assert untied.parameters() == spec.parameters() + 800


def test_prefill_and_decode_flops_by_hand() -> None:
    spec = tf.from_architecture(SMALL)
    stack = spec.parameters() - 100 * 8  # everything but the token table
    n = 4
    # 2 FLOPs per weight per token, LM head for the last token, causal attention n(n+1)/2 pairs
    attention = 4 * 2 * 2 * 4 * (4 * 5 / 2)  # 4 x layers x heads x head_dim x pairs
    assert spec.prefill_flops(n) == 2 * stack * n + 2 * 800 + attention
    assert spec.prefill_flops(n, all_logits=True) == 2 * stack * n + 2 * 800 * n + attention
    # one token with 10 cached: attention over 11 keys
    assert spec.decode_flops(10) == 2 * stack + 2 * 800 + 4 * 2 * 2 * 4 * 11
    # generate = prefill + the sum of the decode steps at growing context
    steps = sum(spec.decode_flops(n + i) for i in range(3))
    assert spec.generate_flops(n, 3) == pytest.approx(spec.prefill_flops(n) + steps)


def test_encoder_has_bidirectional_attention_and_no_decode() -> None:
    spec = tf.from_architecture({**SMALL, "kind": "encoder"})
    stack = spec.parameters() - 100 * 8
    assert spec.prefill_flops(4) == 2 * stack * 4 + 4 * 2 * 2 * 4 * 16
    with pytest.raises(tf.ArchitectureError, match="kind"):
        spec.decode_flops(1)
    assert spec.kv_cache_bytes_per_token() == 0


def test_decode_step_is_memory_bound_and_amortises_weights_over_the_batch() -> None:
    spec = tf.from_architecture(PUBLISHED["Llama-2-7B"][0])
    one = spec.decode_step(1000, batch=1, precision="fp16")
    many = spec.decode_step(1000, batch=32, precision="fp16")
    # weights read once per step whatever the batch; the lookup table is not read as a matrix
    assert one.weight_bytes == many.weight_bytes == pytest.approx((spec.parameters() - 32000 * 4096) * 2)
    assert one.kv_bytes == 524_288 * 1001
    assert many.kv_bytes == 32 * one.kv_bytes
    assert many.bytes_per_token < one.bytes_per_token
    assert one.arithmetic_intensity < 2  # ~1 FLOP per byte: far below any GPU's ridge point


def test_moe_decode_reads_more_experts_as_the_batch_grows() -> None:
    spec = tf.from_architecture(PUBLISHED["Mixtral-8x7B"][0])
    one = spec.decode_step(100, batch=1).weight_bytes / 2
    big = spec.decode_step(100, batch=256).weight_bytes / 2
    embed = 32000 * 4096
    assert one == pytest.approx(spec.active_parameters() - embed)
    assert big == pytest.approx(spec.parameters() - embed, rel=1e-6)  # every expert is touched


def test_training_memory_mixed_precision_adam() -> None:
    spec = tf.from_architecture(PUBLISHED["Llama-2-7B"][0])
    mem = spec.training_memory(batch=1, sequence=4096)
    assert mem.weights + mem.gradients + mem.optimizer == 16 * spec.parameters()
    assert mem.activations == 34 * 4096 * 1 * 4096 * 32
    recompute = spec.training_memory(batch=1, sequence=4096, recompute=True)
    assert recompute.activations == 2 * 4096 * 4096 * 32
    no_flash = spec.training_memory(batch=1, sequence=4096, flash_attention=False)
    assert no_flash.activations - mem.activations == 5 * 32 * 4096 * 4096 * 32
    assert "16 bytes" in mem.assumptions


def test_training_flops_6nd_and_weights_memory() -> None:
    spec = tf.from_architecture(PUBLISHED["Llama-2-7B"][0])
    # Llama 2 was trained on 2.0 T tokens (arXiv:2307.09288, table 1)
    assert spec.training_flops(2.0e12) == pytest.approx(6 * 6.738e9 * 2e12, rel=1e-3)
    assert spec.weights_bytes("bf16") == 2 * spec.parameters()
    assert spec.weights_bytes("int4") == spec.parameters() / 2
    with_attn = spec.training_flops(1.0, include_attention=True)
    assert with_attn - spec.training_flops(1.0) == 6 * 32 * 4096 * 4096


def test_encoder_decoder_prefill_runs_the_encoder_and_caches_cross_attention() -> None:
    spec = tf.from_architecture(PUBLISHED["T5-small"][0])
    assert spec.n_decoder_layers == 6 and spec.n_encoder_layers == 6
    cross = spec.decode_step(0, encoder_tokens=512).kv_bytes - spec.decode_step(0).kv_bytes
    assert cross == 2 * 6 * 8 * 64 * 2 * 512
    assert spec.generate_flops(512, 100) > spec.prefill_flops(512)


def test_from_hf_config_llama_mixtral_gpt2_bert_t5() -> None:
    # Values as in each repository's config.json on huggingface.co
    llama2 = tf.from_hf_config(
        {
            "model_type": "llama",
            "num_hidden_layers": 32,
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "intermediate_size": 11008,
            "vocab_size": 32000,
            "max_position_embeddings": 4096,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
        }
    )
    assert llama2.parameters() == 6_738_415_616
    mixtral = tf.from_hf_config(
        {
            "model_type": "mixtral",
            "num_hidden_layers": 32,
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "intermediate_size": 14336,
            "vocab_size": 32000,
            "max_position_embeddings": 32768,
            "hidden_act": "silu",
            "num_local_experts": 8,
            "num_experts_per_tok": 2,
            "tie_word_embeddings": False,
        }
    )
    assert mixtral.active_parameters() == pytest.approx(12.9e9, rel=0.02)
    gpt2 = tf.from_hf_config(
        {
            "model_type": "gpt2",
            "n_layer": 12,
            "n_embd": 768,
            "n_head": 12,
            "n_positions": 1024,
            "vocab_size": 50257,
            "activation_function": "gelu_new",
        }
    )
    assert gpt2.parameters() == 124_439_808  # GPT2LMHeadModel.num_parameters()
    bert = tf.from_hf_config(
        {
            "model_type": "bert",
            "num_hidden_layers": 24,
            "hidden_size": 1024,
            "num_attention_heads": 16,
            "intermediate_size": 4096,
            "vocab_size": 30522,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
            "hidden_act": "gelu",
        }
    )
    assert bert.parameters() == pytest.approx(335e6, rel=0.02)
    t5 = tf.from_hf_config(
        {
            "model_type": "t5",
            "num_layers": 6,
            "num_decoder_layers": 6,
            "d_model": 512,
            "d_ff": 2048,
            "num_heads": 8,
            "d_kv": 64,
            "vocab_size": 32128,
            "n_positions": 512,
            "feed_forward_proj": "relu",
            "is_encoder_decoder": True,
        }
    )
    assert t5.kind == "encoder-decoder"
    assert t5.parameters() == pytest.approx(60.5e6, rel=0.02)


@pytest.mark.parametrize(
    ("arch", "field"),
    [
        ({**SMALL, "layers": 0}, "layers"),
        ({**SMALL, "hidden": "big"}, "hidden"),
        ({**SMALL, "heads": 3}, "heads"),
        ({**SMALL, "kv_heads": 3, "heads": 2}, "kv_heads"),
        ({**SMALL, "experts": 2, "experts_active": 3}, "experts_active"),
        ({**SMALL, "ffn_kind": "relu2"}, "ffn_kind"),
        ({**SMALL, "layerz": 4}, "layerz"),
        ({**SMALL, "tied_embeddings": "yes"}, "tied_embeddings"),
        ({"kind": "encoder-decoder", **SMALL}, "encoder_layers"),
        ({k: v for k, v in SMALL.items() if k != "vocab"}, "vocab"),
    ],
)
def test_bad_architecture_names_the_field(arch: dict[str, Any], field: str) -> None:
    with pytest.raises(tf.ArchitectureError, match=field):
        tf.from_architecture(arch)


def test_bad_precision_and_lengths_are_refused() -> None:
    spec = tf.from_architecture(SMALL)
    with pytest.raises(tf.ArchitectureError, match="precision"):
        spec.weights_bytes("fp7")
    with pytest.raises(tf.ArchitectureError, match="n_tokens"):
        spec.prefill_flops(0)
    with pytest.raises(tf.ArchitectureError, match="batch"):
        spec.decode_step(1, batch=0)


def test_describe_and_human() -> None:
    spec = tf.from_architecture(PUBLISHED["Mixtral-8x7B"][0])
    text = spec.describe()
    assert "8 experts, 2 active" in text and "8 KV heads" in text
    assert tf.human(12_900_000_000) == "12.9 B"
    assert tf.human(335_000_000) == "335 M"


def test_from_hf_config_qwen2_gemma2_whisper_bart() -> None:
    # Values as in each repository's config.json on huggingface.co
    qwen = tf.from_hf_config(
        {
            "model_type": "qwen2",
            "num_hidden_layers": 28,
            "hidden_size": 3584,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "intermediate_size": 18944,
            "vocab_size": 152064,
            "max_position_embeddings": 131072,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
        }
    )
    assert qwen.qkv_bias and qwen.parameters() == pytest.approx(7.61e9, rel=0.02)  # Qwen2.5-7B card
    gemma = tf.from_hf_config(
        {
            "model_type": "gemma2",
            "num_hidden_layers": 42,
            "hidden_size": 3584,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 256,
            "intermediate_size": 14336,
            "vocab_size": 256000,
            "max_position_embeddings": 8192,
            "hidden_activation": "gelu_pytorch_tanh",
        }
    )
    assert gemma.dim_head == 256 and gemma.parameters() == pytest.approx(9.24e9, rel=0.02)  # gemma-2-9b card
    whisper = tf.from_hf_config(
        {
            "model_type": "whisper",
            "encoder_layers": 4,
            "decoder_layers": 4,
            "d_model": 384,
            "encoder_attention_heads": 6,
            "encoder_ffn_dim": 1536,
            "vocab_size": 51865,
            "max_target_positions": 448,
            "is_encoder_decoder": True,
            "activation_function": "gelu",
        }
    )
    assert whisper.kind == "encoder-decoder" and whisper.n_decoder_layers == 4
    bart = tf.from_hf_config(
        {
            "model_type": "bart",
            "encoder_layers": 12,
            "decoder_layers": 12,
            "d_model": 1024,
            "encoder_attention_heads": 16,
            "encoder_ffn_dim": 4096,
            "vocab_size": 50265,
            "max_position_embeddings": 1024,
            "is_encoder_decoder": True,
            "activation_function": "gelu",
        }
    )
    assert bart.parameters() == pytest.approx(406e6, rel=0.02)  # facebook/bart-large (406 M)


def test_a_config_that_is_not_a_transformer_is_refused_naming_the_field() -> None:
    with pytest.raises(tf.ArchitectureError, match=r"config.json.layers: required"):
        tf.from_hf_config({"model_type": "resnet", "depths": [3, 4, 6, 3]})
    with pytest.raises(tf.ArchitectureError, match="expected a JSON object"):
        tf.from_hf_config([1, 2])  # type: ignore[arg-type]
