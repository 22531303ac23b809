"""Serving a language model, prefill and decode (decoder or encoder-decoder;
``sustainml.estimate.transformer`` gives the FLOPs and bytes from the architecture):

- prefill of ``batch`` prompts: compute-bound, ``max(FLOPs / (n x peak x eta_c),
  weights / (n x bandwidth x eta_m))``;
- decode of ``output_tokens`` steps: each step reads the weights once for the whole batch plus
  every sequence's KV cache (growing with the context) and is memory-bound at serving batches
  (Pope et al. 2022, arXiv:2211.05102): ``max(FLOPs / (n x peak x eta_c), bytes / (n x bandwidth x
  eta_m)) + step overhead``, evaluated at the mean context (exact for the bytes, which are linear
  in the context);
- tensor parallelism over ``n`` devices splits FLOPs and bytes evenly and adds two all-reduces of
  the activations per layer and step (Megatron-LM, Shoeybi et al. 2019, arXiv:1909.08053):
  ``2 x layers x (ALLREDUCE_LATENCY_S + 2 (n-1)/n x batch x hidden x 2 B / LINK_BANDWIDTH)``; the
  latency term (~10 us per NCCL all-reduce of a small message on NVLink) and 300 GB/s per GPU are
  stated assumptions.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

from sustainml.catalogue.schema import HardwareEntry
from sustainml.estimate import transformer as tf
from sustainml.estimate.serving.phases import (
    Phase,
    ServingEstimate,
    allreduce_s,
    peak_rates,
    power_and_utilisation,
    roofline_phase,
)
from sustainml.estimate.serving.scenario import Scenario, resolve_engine


def estimate_llm(spec: tf.TransformerSpec, hw: HardwareEntry, sc: Scenario) -> ServingEstimate:
    """Prefill + decode of a language model (``spec``) for ``sc`` on ``sc.num_devices`` x ``hw``."""
    sc = sc.validated()
    eng = resolve_engine(sc.engine)
    peak, bw = peak_rates(hw, sc.precision)
    n, b = sc.num_devices, sc.batch_size
    w_bytes = spec.weights_bytes(sc.precision)
    prefill = roofline_phase("prefill", spec.prefill_flops(sc.input_tokens) * b, w_bytes, n, peak, bw, eng)
    layers = spec.n_decoder_layers or spec.layers
    comm = allreduce_s(layers, b * sc.input_tokens, spec.hidden, n)
    prefill = Phase(prefill.name, prefill.seconds + comm, prefill.flops, prefill.bytes, prefill.bound, comm)
    phases = [prefill]
    kv_gb = 0.0
    if sc.output_tokens:
        encoder_tokens = sc.input_tokens if spec.kind == "encoder-decoder" else 0
        start = 1 if spec.kind == "encoder-decoder" else sc.input_tokens
        mean_context = start + (sc.output_tokens - 1) // 2
        step = spec.decode_step(mean_context, batch=b, precision=sc.precision, encoder_tokens=encoder_tokens)
        one = roofline_phase("decode step", step.flops, step.bytes, n, peak, bw, eng)
        fixed = (
            layers * eng.step_overhead_per_layer_s
            + b * eng.step_overhead_per_sequence_s
            + (n - 1) * eng.step_overhead_per_extra_device_s
            + allreduce_s(layers, b, spec.hidden, n)
        )
        phases.append(
            Phase(
                f"decode ({sc.output_tokens} steps)",
                (one.seconds + fixed) * sc.output_tokens,
                step.flops * sc.output_tokens,
                step.bytes * sc.output_tokens,
                one.bound,
                fixed * sc.output_tokens,
            )
        )
        kv_gb = spec.kv_cache_bytes_per_token(sc.precision) * b * (start + sc.output_tokens) / 1e9
    total = sum(p.seconds for p in phases)
    power, u = power_and_utilisation(hw, sc, phases)
    return ServingEstimate(sc, hw.name, n, eng, tuple(phases), total, power, u, w_bytes / 1e9, kv_gb)


_llm_memo: dict[tuple[tf.TransformerSpec, str, Scenario], ServingEstimate] = {}
_MEMO_SIZE: Final = 256


def cached_llm(spec: tf.TransformerSpec, hw: HardwareEntry, sc: Scenario) -> ServingEstimate:
    """``estimate_llm`` memoised on (model, device name, scenario)."""
    key = (spec, hw.name, sc)
    hit = _llm_memo.get(key)
    if hit is None:
        hit = estimate_llm(spec, hw, sc)
        if len(_llm_memo) >= _MEMO_SIZE:
            _llm_memo.pop(next(iter(_llm_memo)))
        _llm_memo[key] = hit
    return hit


def spec_of(architecture: Mapping[str, Any], where: str = "architecture") -> tf.TransformerSpec:
    return _spec_cached(tuple(sorted((k, _freeze(v)) for k, v in architecture.items())), where)


def _freeze(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


@lru_cache(maxsize=128)
def _spec_cached(items: tuple[tuple[str, Any], ...], where: str) -> tf.TransformerSpec:
    return tf.from_architecture(dict(items), where=where)


def architecture_from_builder(builder: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
    """The transformer shape of a catalogue graph builder's arguments (GPT-2, Whisper, BART), so
    a graph model that generates is costed per answer too; ``None`` for other builders. Defaults
    are the builders' own (GPT-2 small, Whisper tiny)."""
    if builder == "gpt2":
        dim = int(args.get("dim", 768))
        return {
            "layers": int(args.get("layers", 12)),
            "hidden": dim,
            "heads": int(args.get("heads", 12)),
            "ffn": 4 * dim,
            "vocab": int(args.get("vocab", 50257)),
            "context": int(args.get("max_pos", 1024)),
            "ffn_kind": "gelu",
            "bias": True,
            "positions": "learned",
        }
    if builder == "whisper":
        dim, layers = int(args.get("dim", 384)), int(args.get("layers", 4))
        return {
            "kind": "encoder-decoder",
            "layers": 2 * layers,
            "encoder_layers": layers,
            "decoder_layers": layers,
            "hidden": dim,
            "heads": int(args.get("heads", 6)),
            "ffn": 4 * dim,
            "vocab": int(args.get("vocab", 51865)),
            "context": int(args.get("max_target", 448)),
            "encoder_context": 1500,
            "ffn_kind": "gelu",
            "bias": True,
            "positions": "learned",
        }
    if builder == "bart" and "enc_layers" in args:
        enc, dec = int(args["enc_layers"]), int(args["dec_layers"])
        return {
            "kind": "encoder-decoder",
            "layers": enc + dec,
            "encoder_layers": enc,
            "decoder_layers": dec,
            "hidden": int(args["dim"]),
            "heads": int(args["heads"]),
            "ffn": int(args["ff"]),
            "vocab": int(args["vocab"]),
            "context": int(args.get("max_pos", 1024)),
            "ffn_kind": "gelu",
            "bias": True,
            "positions": "learned",
        }
    return None
