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
import re
import time
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest

from sustainml.catalogue import ModelEntry, models
from sustainml.catalogue.schema import model_fold as fold
from sustainml.onnxgraphs import BUILDERS, analyze, build
from sustainml.onnxgraphs.cache import BuildResult
from sustainml.workers.logic.encoder.vocabulary import GOALS as VOCABULARY_GOALS

GOALS = VOCABULARY_GOALS  # the task encoder's vocabulary: every goal needs a model
# Hugging Face task names the catalogue also serves (embeddings, NLI zero-shot, vision-language chat).
EXTRA_GOALS = {"feature-extraction", "zero-shot-classification", "image-text-to-text"}
MODALITIES = {"image", "video", "text", "audio", "time-series", "tabular"}
ESTIMABLE = {"parameters", "macs", "quality"}
ENTRIES = list(models())
GRAPHED = [e for e in ENTRIES if not e.analytic]


def test_catalogue_has_at_least_150_entries_covering_every_goal() -> None:
    assert len(ENTRIES) >= 150
    covered = {g for e in ENTRIES for g in e.goals}
    assert set(GOALS) | EXTRA_GOALS <= covered, f"goals without a model: {sorted(set(GOALS) - covered)}"
    extra = covered - set(GOALS) - EXTRA_GOALS
    assert not extra, f"goals outside the vocabulary: {sorted(extra)}"


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
    if not entry.analytic:  # analytic entries (no graph) are costed from their figures or shape
        assert entry.builder in BUILDERS, entry.name
    assert set(entry.estimated) <= ESTIMABLE, entry.name
    assert entry.goals and len(set(entry.goals)) == len(entry.goals), entry.name
    assert all(re.fullmatch(r"[a-z]{2,3}", code) for code in entry.languages), entry.name
    if (
        entry.modality == "text" and entry.family != "Diffusion"
    ) or "automatic-speech-recognition" in entry.goals:
        assert entry.languages, f"{entry.name}: a text or speech model states its languages"
    if entry.transformer is not None:
        assert entry.context > 0, entry.name
    assert entry.default_precision in ("fp32", "fp16", "bf16"), entry.name


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
    results = {e.name: build(e, weights="zeros", cache_dir=directory) for e in GRAPHED}
    elapsed = time.perf_counter() - start
    fresh = sum(r.built for r in results.values())
    print(
        f"\nbuilt {fresh} / loaded {len(results) - fresh} catalogue graphs in {elapsed:.1f} s ({directory})"
    )
    yield results


@pytest.mark.slow
@pytest.mark.parametrize("entry", GRAPHED, ids=[e.name for e in GRAPHED])
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


TWIN = [e for e in GRAPHED if e.transformer is not None]


@pytest.mark.slow
@pytest.mark.parametrize("entry", TWIN, ids=[e.name for e in TWIN])
def test_analytic_parameters_match_the_graph(entry: ModelEntry, built: dict[str, BuildResult]) -> None:
    """Where an entry has both a graph and an architecture, the two parameter counts agree."""
    assert entry.transformer is not None
    graph = analyze(onnx.load(str(built[entry.name].path), load_external_data=False)).parameters
    assert entry.transformer.parameters() == pytest.approx(graph, rel=0.02)


def test_aliases_people_write() -> None:
    cat = models()
    for alias, name in {
        "bert-large-uncased": "bert-large-uncased",
        "Llama-2-7b-chat": "llama-2-7b-chat",
        "meta-llama/Llama-2-7b-chat-hf": "llama-2-7b-chat",
        "GPT-3 175B": "gpt-3-175b",
        "whisper-large-v3": "whisper-large-v3",
        "Llama-3.1-70B-Instruct": "llama-3.1-70b-instruct",
        "FLUX.1-dev": "flux.1-dev",
        "stabilityai/stable-diffusion-xl-base-1.0": "stable-diffusion-xl-base-1.0",
        "opt-1.3b": "opt-1.3b",
        "OPT-13B": "opt-13b",
    }.items():
        assert cat.get(alias).name == name, alias
    assert cat.closest("llama-2-7b-chatt")[0] == "llama-2-7b-chat"


def test_components_and_moe_figures() -> None:
    cat = models()
    sdxl = cat.get("sdxl")
    assert sum(c.parameters for c in sdxl.components) == sdxl.parameters
    assert {c.runs for c in sdxl.components} == {"per-step", "once"}
    mixtral = cat.get("mixtral-8x7b")
    assert mixtral.parameters_active == pytest.approx(12.9e9)
    assert mixtral.transformer is not None
    assert mixtral.transformer.active_parameters() == pytest.approx(12.9e9, rel=0.02)


def test_languages_cover_what_people_ask_for() -> None:
    cat = models()
    assert cat.get("whisper-large-v3").covers(["es"])
    assert not cat.get("wav2vec2-base-960h").covers(["es"])
    assert cat.get("llama-3.1-8b-instruct").covers(["fr"])
    assert not cat.get("llama-2-7b-chat").covers(["fr"])
    assert cat.get("resnet-50").covers(["fr"])  # not a language model: any language
