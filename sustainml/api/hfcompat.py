"""The original backend's ``/hf_models_info`` and ``/hf_models_compare``, answered offline from the
model catalogue: the Hub metadata becomes the catalogue's facts (with their sources), and the
LLM-written comparison becomes a deterministic summary computed from those facts, so the same
models always give the same text and every claim can be checked against the catalogue."""

from __future__ import annotations

from typing import Any

from sustainml.catalogue import ModelEntry, models

MAX_COMPARED = 5  # upstream compares the first five models
PLACEHOLDER = "—"
NO_METADATA = "Not enough catalogue metadata to describe this model."


def _info(m: ModelEntry) -> dict[str, Any]:
    q = m.quality
    return {
        "id": m.name,
        "modelId": m.name,
        "pipeline_tag": m.goals[0],
        "library_name": "onnx",
        "tags": sorted({*m.goals, m.modality, m.family, *m.aliases}),
        "lastModified": str(m.year),
        "cardData": {
            "license": m.licence,
            "datasets": [q.dataset],
            "quality": {"metric": q.metric, "value": q.value, "dataset": q.dataset, "source": q.source},
        },
        "config": {
            "architectures": [m.family],
            "model_type": m.builder,
            "parameters": m.parameters,
            "macs": m.macs,
            "input_shape": list(m.input_shape),
            "input_dtype": m.input_dtype,
        },
        "modality": m.modality,
        "goals": list(m.goals),
        "source": m.source,
        "estimated": list(m.estimated),
    }


def models_info(model_ids: list[str]) -> dict[str, Any]:
    """``{"models": [{model_id, status, info, [error]}], "errors": [{model_id, error}]}``; an unknown
    id gets status 404 and an error naming the closest catalogue models."""
    out: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    catalogue = models()
    for model_id in model_ids:
        entry = catalogue.find(model_id)
        if entry is None:
            try:
                catalogue.get(model_id)
                message = f"unknown catalogue model {model_id!r}"
            except KeyError as exc:
                message = str(exc)
            out.append({"model_id": model_id, "status": 404, "info": {}, "error": message})
            errors.append({"model_id": model_id, "error": message})
        else:
            out.append({"model_id": model_id, "status": 200, "info": _info(entry)})
    return {"models": out, "errors": errors}


def _entry_of(item: dict[str, Any]) -> tuple[str, ModelEntry | None]:
    model_id = str(item.get("model_id") or item.get("id") or (item.get("info") or {}).get("id") or "")
    return model_id, (models().find(model_id) if model_id else None)


def _row(model_id: str, m: ModelEntry | None) -> dict[str, str]:
    if m is None:
        return {
            "model_id": model_id or PLACEHOLDER,
            "license": PLACEHOLDER,
            "model_family": PLACEHOLDER,
            "architectures": PLACEHOLDER,
            "languages": PLACEHOLDER,
        }
    return {
        "model_id": m.name,
        "license": m.licence or PLACEHOLDER,
        "model_family": m.family,
        "architectures": m.builder,
        "languages": PLACEHOLDER,  # the catalogue does not record languages; nothing is guessed
    }


def _gmacs(m: ModelEntry) -> str:
    return f"{m.macs / 1e9:.2f} GMACs"


def _mparams(m: ModelEntry) -> str:
    return f"{m.parameters / 1e6:.1f} M parameters"


def _card(m: ModelEntry | None, model_id: str, known: list[ModelEntry]) -> dict[str, Any]:
    if m is None:
        return {
            "model_id": model_id or PLACEHOLDER,
            "purpose": NO_METADATA,
            "best_for": [PLACEHOLDER],
            "watch_out_for": [PLACEHOLDER],
        }
    q = m.quality
    purpose = f"{', '.join(m.goals)} on {m.modality} input ({m.family}, {m.year}; {_mparams(m)})"
    best: list[str] = []
    watch: list[str] = []
    if len(known) > 1:
        if m is min(known, key=lambda e: (e.parameters, e.name)):
            best.append(f"smallest model compared ({_mparams(m)})")
        if m is min(known, key=lambda e: (e.macs, e.name)):
            best.append(f"least compute per inference ({_gmacs(m)})")
        if m is max(known, key=lambda e: (e.macs, e.name)):
            watch.append(f"most compute per inference ({_gmacs(m)})")
        peers = [e for e in known if e.quality.metric == q.metric]
        if len(peers) > 1:
            sign = 1 if q.higher_is_better else -1
            top = max(peers, key=lambda e: (sign * e.quality.value, e.name))
            if top is m:
                best.append(f"best {q.metric} among the compared ({q.value:g} on {q.dataset})")
    best.append(f"{q.metric} {q.value:g} on {q.dataset}")
    if "quality" in m.estimated:
        watch.append("quality figure quoted but not re-checked against its source")
    lic = m.licence.lower()
    if "nc" in lic.replace("-", " ").split() or "non-commercial" in lic or "noncommercial" in lic:
        watch.append(f"licence {m.licence} does not allow commercial use")
    if m.weights_mb_fp32 > 1000:
        watch.append(f"{m.weights_mb_fp32 / 1000:.1f} GB of fp32 weights")
    return {"model_id": m.name, "purpose": purpose, "best_for": best, "watch_out_for": watch or [PLACEHOLDER]}


def compare(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The first five models: summary, one card each, and a facts table rebuilt from the catalogue
    (never from the caller's text)."""
    chosen = [_entry_of(item) for item in items[:MAX_COMPARED]]
    known = [m for _, m in chosen if m is not None]
    table = [_row(model_id, m) for model_id, m in chosen]
    cards = [_card(m, model_id, known) for model_id, m in chosen]
    names = [m.name if m is not None else (model_id or PLACEHOLDER) for model_id, m in chosen]
    parts = [f"Compared {len(chosen)} model(s): {', '.join(names)}."]
    if known:
        small = min(known, key=lambda e: (e.parameters, e.name))
        light = min(known, key=lambda e: (e.macs, e.name))
        parts.append(f"Smallest: {small.name} ({_mparams(small)}).")
        parts.append(f"Least compute per inference: {light.name} ({_gmacs(light)}).")
        goals = sorted({g for m in known for g in m.goals})
        parts.append(f"Goals covered: {', '.join(goals)}.")
        metrics = sorted({m.quality.metric for m in known})
        for metric in metrics:
            peers = [m for m in known if m.quality.metric == metric]
            if len(peers) > 1:
                sign = 1 if peers[0].quality.higher_is_better else -1
                top = max(peers, key=lambda e: (sign * e.quality.value, e.name))
                parts.append(f"Best {metric}: {top.name} ({top.quality.value:g} on {top.quality.dataset}).")
    unknown = [model_id or PLACEHOLDER for model_id, m in chosen if m is None]
    if unknown:
        parts.append(f"Not in the catalogue (no facts): {', '.join(unknown)}.")
    return {"comparison_summary": " ".join(parts), "model_cards": cards, "comparison_table": table}
