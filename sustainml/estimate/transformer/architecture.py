"""Reading a ``TransformerSpec`` from an ``architecture`` object (catalogue, user) or a Hugging Face
``config.json``; every error names the field (``ArchitectureError``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from sustainml.estimate.transformer.spec import ArchitectureError, TransformerSpec, check_positive

_KINDS: Final = ("decoder", "encoder", "encoder-decoder")
_FFN_KINDS: Final = ("gelu", "swiglu")
_NORMS: Final = ("layernorm", "rmsnorm")
_POSITIONS: Final = ("learned", "rotary", "alibi", "relative", "sinusoidal", "none")

_INT_FIELDS: Final = (
    "layers",
    "hidden",
    "heads",
    "kv_heads",
    "head_dim",
    "ffn",
    "vocab",
    "context",
    "experts",
    "experts_active",
    "encoder_layers",
    "decoder_layers",
    "type_vocab",
    "extra_parameters",
    "encoder_context",
)
_BOOL_FIELDS: Final = ("tied_embeddings", "bias", "qkv_bias", "embedding_norm", "pooler")
_KNOWN: Final = frozenset((*_INT_FIELDS, *_BOOL_FIELDS, "ffn_kind", "kind", "norm", "positions", "note"))


def from_architecture(arch: Mapping[str, Any], *, where: str = "architecture") -> TransformerSpec:
    """A spec from a catalogue entry's (or a user's) ``architecture`` object.

    Raises ``ArchitectureError`` naming the field on a missing, unknown or impossible value.
    """
    if not isinstance(arch, Mapping):
        raise ArchitectureError(f"{where}: expected an object, got {type(arch).__name__}")
    unknown = sorted(set(arch) - _KNOWN)
    if unknown:
        raise ArchitectureError(
            f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN))}"
        )
    values: dict[str, Any] = {}
    for name in _INT_FIELDS:
        if name in arch:
            value = arch[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or value != int(value)
                or value < 0
            ):
                raise ArchitectureError(f"{where}.{name}: expected a whole number >= 0, got {value!r}")
            values[name] = int(value)
    for name in _BOOL_FIELDS:
        if name in arch:
            if not isinstance(arch[name], bool):
                raise ArchitectureError(f"{where}.{name}: expected true or false, got {arch[name]!r}")
            values[name] = arch[name]
    for name, allowed in (
        ("ffn_kind", _FFN_KINDS),
        ("kind", _KINDS),
        ("norm", _NORMS),
        ("positions", _POSITIONS),
    ):
        if name in arch:
            if arch[name] not in allowed:
                raise ArchitectureError(f"{where}.{name}: {arch[name]!r} is not one of {', '.join(allowed)}")
            values[name] = arch[name]
    kind = values.get("kind", "decoder")
    if kind == "encoder-decoder":
        for name in ("encoder_layers", "decoder_layers"):
            if not values.get(name):
                raise ArchitectureError(f"{where}.{name}: required (> 0) for an encoder-decoder")
        values.setdefault("layers", values["encoder_layers"] + values["decoder_layers"])
    for name in ("layers", "hidden", "heads", "ffn", "vocab", "context"):
        if not values.get(name):
            raise ArchitectureError(f"{where}.{name}: required (> 0)")
    spec = TransformerSpec(**values)
    _check(spec, where)
    return spec


def _check(spec: TransformerSpec, where: str) -> None:
    if spec.head_dim == 0 and spec.hidden % spec.heads:
        raise ArchitectureError(
            f"{where}.heads: hidden {spec.hidden} is not a multiple of {spec.heads} heads; give head_dim"
        )
    if spec.kv_heads and spec.heads % spec.kv_heads:
        raise ArchitectureError(
            f"{where}.kv_heads: {spec.heads} heads are not a multiple of {spec.kv_heads} KV heads"
        )
    if spec.experts < 1 or not 1 <= spec.experts_active <= spec.experts:
        raise ArchitectureError(
            f"{where}.experts_active: need 1 <= experts_active ({spec.experts_active})"
            f" <= experts ({spec.experts})"
        )


#: config.json keys of the common Hugging Face model families, per spec field (first found wins).
_HF_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "hidden": ("hidden_size", "n_embd", "d_model"),
    "heads": ("num_attention_heads", "n_head", "num_heads", "encoder_attention_heads"),
    "kv_heads": ("num_key_value_heads", "multi_query_group_num"),
    "head_dim": ("head_dim", "d_kv"),
    "ffn": ("intermediate_size", "n_inner", "d_ff", "ffn_dim", "encoder_ffn_dim"),
    "vocab": ("vocab_size",),
    "context": ("max_position_embeddings", "n_positions", "max_target_positions", "seq_length"),
    "experts": ("num_local_experts", "num_experts", "n_routed_experts"),
    "experts_active": ("num_experts_per_tok", "moe_top_k"),
    "encoder_layers": ("encoder_layers",),
    "decoder_layers": ("decoder_layers", "num_decoder_layers"),
    "type_vocab": ("type_vocab_size",),
}


def from_hf_config(config: Mapping[str, Any], *, where: str = "config.json") -> TransformerSpec:
    """A spec from a Hugging Face ``config.json`` (Llama, Mistral, Mixtral, Qwen2, Gemma, GPT-2,
    OPT, BLOOM, Falcon, BERT, RoBERTa, T5, BART, M2M100/NLLB, Whisper families).

    What a config does not say is inferred from its ``model_type`` and activation, e.g. a SiLU
    activation with an ``intermediate_size`` means a gated (SwiGLU) feed-forward block.
    """
    if not isinstance(config, Mapping):
        raise ArchitectureError(f"{where}: expected a JSON object")
    arch: dict[str, Any] = {}
    for name, keys in _HF_KEYS.items():
        for key in keys:
            value = config.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                arch[name] = value
                break
    model_type = str(config.get("model_type", "")).lower()
    act = str(
        config.get("hidden_act")
        or config.get("activation_function")
        or config.get("hidden_activation")
        or config.get("feed_forward_proj")
        or ""
    ).lower()
    if (
        model_type in {"gpt2", "bloom", "falcon", "gpt_neox", "gptj"}
        and "ffn" not in arch
        and "hidden" in arch
    ):
        arch["ffn"] = 4 * arch["hidden"]
    if model_type == "opt":
        arch["ffn"] = int(config.get("ffn_dim", arch.get("ffn", 0)))
    gated = (
        "silu" in act
        or "swish" in act
        or "gated" in act
        or model_type in {"llama", "mistral", "mixtral", "qwen2", "gemma", "gemma2", "phi3", "qwen2_moe"}
    )
    arch["ffn_kind"] = "swiglu" if gated else "gelu"
    arch["tied_embeddings"] = bool(
        config.get("tie_word_embeddings", model_type not in {"llama", "mistral", "mixtral"})
    )
    if model_type in {"bert", "roberta", "xlm-roberta", "deberta-v2", "distilbert", "electra", "mpnet"}:
        arch["kind"] = "encoder"
        arch["positions"] = "learned" if model_type != "deberta-v2" else "relative"
        arch.update(bias=True, embedding_norm=True)
        arch["pooler"] = model_type in {"bert", "roberta", "xlm-roberta"}
    elif "encoder_layers" in arch or config.get("is_encoder_decoder"):
        arch["kind"] = "encoder-decoder"
        arch.setdefault("encoder_layers", arch.get("layers", 0))
        arch.setdefault("decoder_layers", arch.get("layers", 0))
        arch.pop("layers", None)
        if model_type in {"t5", "mt5", "umt5"}:
            arch.update(positions="relative", norm="rmsnorm")
        else:
            arch.update(
                positions="learned" if model_type != "m2m_100" and model_type != "nllb" else "sinusoidal",
                bias=True,
            )
    else:
        arch["kind"] = "decoder"
        if model_type in {"gpt2", "opt"}:
            arch.update(positions="learned", bias=True)
        elif model_type == "bloom":
            arch.update(positions="alibi", bias=True, embedding_norm=True)
        elif model_type == "qwen2":
            arch.update(norm="rmsnorm", qkv_bias=True)
        else:
            arch["norm"] = "rmsnorm" if gated else "layernorm"
    if (
        "heads" in arch
        and "head_dim" in arch
        and "hidden" in arch
        and arch["head_dim"] * arch["heads"] == arch["hidden"]
    ):
        arch.pop("head_dim")
    return from_architecture(arch, where=where)


def with_context(spec: TransformerSpec, context: int) -> TransformerSpec:
    """The same model at another context length (learned position tables grow with it)."""
    check_positive("context", context)
    return replace(spec, context=context)
