"""The numpy-only encoder (``encoder/scoring.py``) against scikit-learn's pipeline: same features,
same probabilities (to 1e-9), same answers on the whole shipped corpus; the export round-trips
exactly; a worker that finds the export never imports scikit-learn, scipy or pyarrow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sustainml.workers.logic.encoder import model as model_mod
from sustainml.workers.logic.encoder.backends import MODALITY_WEIGHT, best_input, joint_scores
from sustainml.workers.logic.encoder.inference import encode
from sustainml.workers.logic.encoder.lexicon import concept_tokens
from sustainml.workers.logic.encoder.model import EncoderModel, load_corpus, trained_model
from sustainml.workers.logic.encoder.scoring import ScoringModel, char_terms, strip_accents, word_terms

TOLERANCE = 1e-9

# Texts the corpus does not cover: accents, case, odd white space, punctuation, nothing at all.
EXTRA_TEXTS = [
    "Crème brûlée photos → captions!!",
    "",
    "x",
    "TL;DR of reports -> audio",
    "  SPOT   potholes\tin\n\ndashcam   PICTURES  ",
    "Übersetze Verträge ins Französische, naïve café façade",
    "\ufb01ne-tune \uff12 models",  # compatibility characters (ligature, full-width digit) NFKD rewrites
    "a b c",
]


@pytest.fixture(scope="module")
def reference() -> EncoderModel:
    model, _source = trained_model()
    return model


@pytest.fixture(scope="module")
def exported(reference: EncoderModel, tmp_path_factory: pytest.TempPathFactory) -> ScoringModel:
    path = tmp_path_factory.mktemp("export") / "encoder-test.npz"
    reference.exported().save(path)
    return ScoringModel.load(path, reference.key)


def _texts() -> list[str]:
    corpus = [e.text for e in load_corpus()]
    return [*corpus, *(t.upper() for t in corpus[::10]), *EXTRA_TEXTS]


def test_features_equal_scikit_learns_on_the_corpus(reference: EncoderModel, exported: ScoringModel) -> None:
    for text in _texts():
        ref = reference.sparse_features(text)
        for model in (reference, exported):
            row = model.features(text)
            assert row.indices.tolist() == ref.indices.tolist(), text
            assert np.allclose(row.data, ref.data, rtol=0, atol=1e-12), text


def test_probabilities_equal_scikit_learns_on_the_corpus(
    reference: EncoderModel, exported: ScoringModel
) -> None:
    worst = 0.0
    for text in _texts():
        goal_ref, modality_ref = reference.reference_probabilities(text)
        x = exported.features(text)
        goal, modality = exported.goal_probabilities(x), exported.modality_probabilities(x)
        worst = max(worst, float(np.abs(goal - goal_ref).max()), float(np.abs(modality - modality_ref).max()))
        assert exported.goals[int(np.argmax(goal))] == reference.goals[int(np.argmax(goal_ref))], text
    assert worst <= TOLERANCE


def test_the_export_round_trips_exactly(reference: EncoderModel, exported: ScoringModel) -> None:
    assert exported.goals == reference.goals and exported.modalities == reference.modalities
    assert exported.idf == reference.idf and exported.default_idf == reference.default_idf
    assert exported.stop_words == reference.stop_words and "the" in exported.stop_words
    for text in load_corpus()[::25]:
        assert encode(text.text, model=exported).extra() == encode(text.text, model=reference).extra()


def test_analyzers_match_the_vectorizers(reference: EncoderModel) -> None:
    # The building blocks on their own, against the fitted analyzers they reproduce.
    word = reference._word.build_analyzer()
    char = reference._char.build_analyzer()
    for text in EXTRA_TEXTS:
        assert word_terms(text) == word(text)
        assert char_terms(text) == char(text)
    assert strip_accents("naïve façade") == "naive facade" and strip_accents("plain") == "plain"


def test_a_malformed_export_is_refused(tmp_path: Path, exported: ScoringModel) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, meta=np.frombuffer(json.dumps({"format": 0}).encode(), dtype=np.uint8))
    with pytest.raises(ValueError, match="format"):
        ScoringModel.load(path, exported.key)
    np.savez(path, meta=np.frombuffer(b"{not json", dtype=np.uint8))
    with pytest.raises(ValueError, match="malformed"):
        ScoringModel.load(path, exported.key)


def test_a_worker_with_the_export_never_imports_scikit_learn(reference: EncoderModel, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    key = model_mod.export_key(model_mod.CORPUS_PATH.read_bytes())
    reference.exported().save(cache / f"encoder-{key}.npz")
    script = (
        "import sys\n"
        "from sustainml.messages.types import MLModelMetadata, NodeStatus, UserInput\n"
        "from sustainml.workers.logic import ml_model_metadata as node\n"
        "from sustainml.workers.logic.encoder import model\n"
        "node.warm_up()\n"
        "out = MLModelMetadata()\n"
        "node.task_callback(UserInput(problem_short_description='Spot potholes in dashcam pictures'),"
        " NodeStatus(), out)\n"
        "heavy = sorted(m for m in ('sklearn', 'scipy', 'pyarrow') if m in sys.modules)\n"
        "print(model.model_info().source, out.ml_model_metadata[0], heavy)\n"
    )
    env = {**os.environ, model_mod.CACHE_ENV: str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cache", "object-detection", "[]"]


def test_instrument_words_make_the_next_data_noun_a_series() -> None:
    tokens = {word: concept for concept, word in concept_tokens("EEG recordings and sensor readings")}
    assert tokens["eeg"] == tokens["recordings"] == "SERIES"
    assert tokens["readings"] == "SERIES"
    assert [c for c, w in concept_tokens("hours of audio recordings") if w == "recordings"] == ["AUDIO"]


def test_joint_scores_weigh_each_goal_by_its_best_input() -> None:
    goals = {"audio-classification": 0.6, "video-classification": 0.4}
    modalities = {"audio": 0.1, "video": 0.9}
    joint = joint_scores(goals, modalities)
    assert joint["video-classification"] > joint["audio-classification"]
    assert sum(joint.values()) == pytest.approx(1.0)
    expected = 0.6 * 0.1**MODALITY_WEIGHT / (0.6 * 0.1**MODALITY_WEIGHT + 0.4 * 0.9**MODALITY_WEIGHT)
    assert joint["audio-classification"] == pytest.approx(expected)
    assert joint_scores(goals, {}) == goals
    assert best_input("anomaly-detection", {"audio": 0.2, "time-series": 0.7}) == "time-series"


def test_explain_equals_word_contributions_and_names_the_data_noun(exported: ScoringModel) -> None:
    text = "Classify sleep stages from overnight EEG recordings"
    x = exported.features(text)
    by_goal, by_modality = exported.explain(text, x, "tabular-classification", "time-series")
    assert by_goal == exported.word_contributions(text, x, "tabular-classification")
    assert "eeg" in [w for w, _ in by_modality[:3]]
    reason = encode(text, "", model=exported).reason
    assert "point to time-series input" in reason
