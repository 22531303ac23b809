"""The held-out evaluation set of the encoder: separate from the corpus, valid, covering every goal
and modality, reported by ``evaluate_held_out`` (figures are printed by ``sustainml eval encoder``,
not asserted here)."""

from __future__ import annotations

from collections import Counter

from sustainml.workers.logic.encoder.evaluate import evaluate_held_out, load_evaluation_set
from sustainml.workers.logic.encoder.model import load_corpus
from sustainml.workers.logic.encoder.vocabulary import GOALS, MODALITIES


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def test_no_description_of_the_evaluation_set_is_in_the_training_corpus() -> None:
    corpus = {_norm(e.text) for e in load_corpus()}
    held_out = load_evaluation_set()
    assert not [ex.text for ex in held_out if _norm(ex.text) in corpus]


def test_evaluation_set_is_large_covers_goals_modalities_styles_and_names_sources() -> None:
    held_out = load_evaluation_set()
    assert len(held_out) >= 200
    # the set was written before zero-shot-classification and image-text-to-text joined the goals
    later = {"zero-shot-classification", "image-text-to-text"}
    assert set(Counter(ex.goal for ex in held_out)) == set(GOALS) - later
    assert set(Counter(ex.modality for ex in held_out)) == set(MODALITIES)
    assert {ex.style for ex in held_out} >= {
        "competition",
        "dataset-card",
        "paper",
        "ticket",
        "product",
        "chat",
    }
    assert all(ex.source.strip() for ex in held_out)
    assert len({_norm(ex.text) for ex in held_out}) == len(held_out)


def test_held_out_report_counts_every_description_and_lists_its_errors() -> None:
    report = evaluate_held_out()
    assert report.examples == len(load_evaluation_set())
    wrong_goal = round((1 - report.goal_accuracy) * report.examples)
    assert len(report.errors) >= wrong_goal
    assert all(
        e["goal"] != e["predicted_goal"] or e["modality"] != e["predicted_modality"] for e in report.errors
    )
    assert sum(n for n, _, _ in report.per_style.values()) == report.examples
    assert report.median_ms_with_extraction >= report.median_ms_encoder > 0
    assert "held-out evaluation set" in report.render()
