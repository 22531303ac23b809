"""``eval published`` part ``parameters``: every catalogue model's parameter count, counted
independently, against the figure its authors publish.

The published figures (and their sources: model cards, papers) are in
``data/parameters.csv``, one row per catalogue entry. The count is made three ways:

- **architecture**: ``sustainml.estimate.transformer`` from the entry's transformer shape
  (layers, hidden size, heads, KV heads, FFN, vocabulary, experts, ...); for a mixture of experts
  the active parameters per token are scored too;
- **graph**: the entry's ONNX graph rebuilt by ``sustainml.onnxgraphs`` (zero weights, cached) and
  its initialisers counted by ``onnxgraphs.analyze``;
- **components**: for pipelines (diffusion, CLIP, SAM), the parts that carry a transformer shape are
  counted and compared with their published share; the other parts are published figures only.

Entries with none of these (the tree ensembles) are listed, unscored, with the reason. Criterion:
within 2 % of the published figure on every scored row.
"""

from __future__ import annotations

import csv
from importlib import resources
from typing import Any

from sustainml.catalogue import ModelEntry, models
from sustainml.estimate.model_files import costing_method
from sustainml.estimate.transformer import from_architecture
from sustainml.validation.table import Criterion, Table

TOLERANCE = 0.02


def published() -> dict[str, dict[str, str]]:
    """model -> the published row (published_parameters, published_active, source)."""
    text = (
        resources.files("sustainml.validation").joinpath("data", "parameters.csv").read_text(encoding="utf-8")
    )
    return {row["model"]: row for row in csv.DictReader(text.splitlines())}


def _graph_count(entry: ModelEntry) -> int:
    import onnx

    from sustainml.onnxgraphs import analyze, build

    result = build(entry, weights="zeros")
    return analyze(onnx.load(str(result.path), load_external_data=False)).parameters


def count(entry: ModelEntry, published_total: float) -> tuple[str, float | None, float | None, str]:
    """(method, counted, published figure it is compared with, note)."""
    spec = entry.transformer
    if spec is not None and entry.components and spec.extra_parameters:
        # Vision-language: the language model is counted; the vision tower is a published figure.
        stack = float(spec.parameters() - spec.extra_parameters)
        return (
            "architecture",
            stack,
            published_total - spec.extra_parameters,
            ("language model counted; vision tower and projector: published figures"),
        )
    if spec is not None:
        return "architecture", float(spec.parameters()), published_total, spec.describe()
    if not entry.analytic:
        return "graph", float(_graph_count(entry)), published_total, f"ONNX graph ({entry.builder})"
    shaped = [c for c in entry.components if c.architecture is not None]
    if shaped:
        counted = sum(from_architecture(c.architecture or {}).parameters() for c in shaped)
        share = sum(c.parameters for c in shaped)
        others = [c.name for c in entry.components if c.architecture is None]
        note = f"counted: {', '.join(c.name for c in shaped)}; published only: {', '.join(others) or '-'}"
        return "components", float(counted), float(share), note
    if costing_method(entry) == "trees":
        return "published only", None, None, "a tree ensemble: its size is its configuration, not counted"
    return "published only", None, None, "no transformer shape or graph in the catalogue: not counted"


def run() -> Table:
    rows: list[dict[str, Any]] = []
    figures = published()
    missing = [m.name for m in models() if m.name not in figures]
    for entry in models():
        row = figures.get(entry.name)
        if row is None:
            continue
        total = float(row["published_parameters"])
        method, counted, compared, note = count(entry, total)
        ratio = counted / compared if counted is not None and compared else None
        active_ratio = None
        if row.get("published_active") and entry.transformer is not None:
            active_ratio = entry.transformer.active_parameters() / float(row["published_active"])
        rows.append(
            {
                "model": entry.name,
                "method": method,
                "published": compared if compared is not None else total,
                "counted": counted,
                "ratio": ratio,
                "active ratio": active_ratio,
                "note": note if method != "architecture" or entry.components else "",
                "source": row["source"][:90],
            }
        )
    notes = [
        "published = the figure of the model card or paper cited in data/parameters.csv "
        "(components: the published share of the counted parts)",
        "ratio = counted / published; active ratio: mixture-of-experts parameters per token",
    ]
    if missing:
        notes.append(f"catalogue entries without a published row: {', '.join(missing)}")
    unscored = sum(1 for r in rows if r["ratio"] is None)
    notes.append(f"{len(rows)} catalogue entries, {len(rows) - unscored} counted, {unscored} published only")
    return Table(
        part="parameters",
        title="Parameter counts: catalogue architectures and graphs against published figures",
        columns=["model", "method", "published", "counted", "ratio", "active ratio", "note", "source"],
        rows=rows,
        criteria=[
            Criterion(
                "ratio", "relative", TOLERANCE, 1.0, "parameters within 2 % of published on every counted row"
            ),
            Criterion(
                "active ratio", "relative", TOLERANCE, 1.0, "MoE active parameters within 2 % of published"
            ),
        ],
        notes=notes,
    )
