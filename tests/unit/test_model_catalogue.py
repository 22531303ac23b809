"""The model catalogue: coverage, completeness, and every entry's ONNX graph against its figures.

Every entry is built (``weights="zeros"``: the same graph as the default seeded-random build, with
sparse all-zero external data, so building the 50 graphs takes about 5 s here) into a cache directory
that persists across runs (``SUSTAINML_CACHE_DIR`` if set, else pytest's cache; a temporary
directory when the cache plugin is off, as in CI), then checked with
``onnx.checker``, strict shape inference and the analyser: parameters within 2 % and MACs within
5 % of the catalogue.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest

from sustainml.catalogue import ModelEntry, models
from sustainml.catalogue.schema import fold
from sustainml.onnxgraphs import BUILDERS, analyze, build
from sustainml.onnxgraphs.cache import BuildResult
from sustainml.workers.logic.encoder.vocabulary import GOALS as VOCABULARY_GOALS

GOALS = VOCABULARY_GOALS  # the task encoder's vocabulary: every goal needs a model
MODALITIES = {"image", "video", "text", "audio", "time-series", "tabular"}
ESTIMABLE = {"parameters", "macs", "quality"}
ENTRIES = list(models())


def test_catalogue_has_at_least_40_entries_covering_every_goal() -> None:
    assert len(ENTRIES) >= 40
    covered = {g for e in ENTRIES for g in e.goals}
    assert set(GOALS) <= covered, f"goals without a model: {sorted(set(GOALS) - covered)}"
    assert covered <= set(GOALS), f"goals outside the vocabulary: {sorted(covered - set(GOALS))}"


def test_names_and_aliases_are_unique_after_folding() -> None:
    owner: dict[str, str] = {}
    for e in ENTRIES:
        assert e.name == e.name.lower() and " " not in e.name, e.name
        for label in (e.name, *e.aliases):
            key = fold(label)
            assert owner.setdefault(key, e.name) == e.name, f"{label!r} names {owner[key]} and {e.name}"
    # Every alias resolves to its own entry through the catalogue's look-up.
    cat = models()
    for e in ENTRIES:
        for label in e.aliases:
            assert cat.get(label) is e


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_entry_is_complete(entry: ModelEntry) -> None:
    q = entry.quality
    assert q.metric and q.dataset and q.source, entry.name
    assert math.isfinite(q.value) and q.value > 0, entry.name
    assert entry.source and entry.licence and entry.family, entry.name
    assert 2012 <= entry.year <= 2025, entry.name
    assert entry.parameters > 0 and entry.macs > 0, entry.name
    assert entry.modality in MODALITIES, entry.name
    assert entry.input_dtype in ("float32", "int64"), entry.name
    assert entry.input_shape[0] == 1 and all(d > 0 for d in entry.input_shape), entry.name
    assert entry.builder in BUILDERS, entry.name
    assert set(entry.estimated) <= ESTIMABLE, entry.name
    assert entry.goals and len(set(entry.goals)) == len(entry.goals), entry.name


def test_lookup_by_hub_ids_users_type() -> None:
    cat = models()
    assert cat.get("microsoft/resnet-50").name == "resnet-50"
    assert cat.get("openai/whisper-tiny").name == "whisper-tiny"
    assert cat.get("Helsinki-NLP/opus-mt-en-de").name == "opus-mt-en-de"
    assert cat.get("sentence-transformers/all-MiniLM-L6-v2").name == "all-minilm-l6-v2"
    assert [m.name for m in cat.for_goal("text-to-speech")] == ["fastspeech2-hifigan"]


# ------------------------------------------------------------------------------------------ graphs
@pytest.fixture(scope="module")
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, BuildResult]]:
    env = os.environ.get("SUSTAINML_CACHE_DIR")
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider (CI)
    if env:
        directory = Path(env)
    elif cache is not None:
        directory = Path(cache.mkdir("sustainml-onnxgraphs"))
    else:
        directory = tmp_path_factory.mktemp("onnxgraphs")
    start = time.perf_counter()
    results = {e.name: build(e, weights="zeros", cache_dir=directory) for e in ENTRIES}
    elapsed = time.perf_counter() - start
    fresh = sum(r.built for r in results.values())
    print(
        f"\nbuilt {fresh} / loaded {len(results) - fresh} catalogue graphs in {elapsed:.1f} s ({directory})"
    )
    yield results


@pytest.mark.slow
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_graph_matches_catalogue(entry: ModelEntry, built: dict[str, BuildResult]) -> None:
    result = built[entry.name]
    onnx.checker.check_model(str(result.path))
    proto = onnx.load(str(result.path), load_external_data=False)
    onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["sustainml.synthetic"] == "true"
    assert meta["sustainml.model"] == entry.name
    assert meta["sustainml.catalogue_source"] == entry.source
    report = analyze(proto)
    assert not report.unsupported_ops, report.unsupported_ops
    assert report.parameters == pytest.approx(entry.parameters, rel=0.02), "parameters"
    assert report.macs == pytest.approx(entry.macs, rel=0.05), "MACs"
    assert report.flops >= 2 * report.macs
    first = proto.graph.input[0].type.tensor_type
    expected_dtype = onnx.TensorProto.INT64 if entry.input_dtype == "int64" else onnx.TensorProto.FLOAT
    assert first.elem_type == expected_dtype
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in first.shape.dim]
    assert dims == ["batch", *entry.input_shape[1:]]
