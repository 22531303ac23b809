"""The held-out evaluation set of the encoder: separate from the corpus, valid, covering every goal
and modality, reported by ``evaluate_held_out`` (figures are printed by ``sustainml eval encoder``,
not asserted here)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from sustainml.workers.logic.encoder.evaluate import (
    check_descriptions,
    evaluate_held_out,
    load_evaluation_set,
    render_checks,
)
from sustainml.workers.logic.encoder.model import CORPUS_PATH, load_corpus
from sustainml.workers.logic.encoder.vocabulary import GOALS, MODALITIES


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def test_no_description_of_the_evaluation_set_is_in_the_training_corpus() -> None:
    corpus = {_norm(e.text) for e in load_corpus()}
    held_out = load_evaluation_set()
    assert not [ex.text for ex in held_out if _norm(ex.text) in corpus]


def _source_name(source: str) -> str:
    """A source's name without its platform prefix ("Kaggle: X" and "X" are the same source)."""
    name = source.casefold().split(":", 1)[-1] if ":" in source else source.casefold()
    return " ".join(re.findall(r"[a-z0-9]+", name))


def test_no_source_of_the_evaluation_set_is_a_source_of_the_training_corpus() -> None:
    rows = [json.loads(line) for line in CORPUS_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    corpus_sources = {_source_name(r["source"]) for r in rows if r.get("source")}
    assert len(corpus_sources) > 100  # the styled part of the corpus names its sources
    held_out_sources = {_source_name(ex.source) for ex in load_evaluation_set()}
    assert not sorted(corpus_sources & held_out_sources)


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


def test_check_descriptions_answers_each_line_and_judges_only_what_the_file_expects(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    rows = [
        {"text": "Write down what callers say on our hotline recordings", "goal": "translation"},
        {"text": "Estimate the price of a flat from its size and district, answer in 50 ms"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    checks = check_descriptions(path)
    assert [c.text for c in checks] == [r["text"] for r in rows]
    assert checks[0].expected_goal == "translation" and checks[0].right is (checks[0].goal == "translation")
    assert checks[1].right is None and checks[1].expected_goal == ""
    assert all(c.goal and c.modality and c.reason for c in checks)
    assert "max_latency_ms=50" in checks[1].requirements
    text = render_checks(checks)
    assert checks[1].text in text and "requirements:" in text
    path.write_text('{"text": "x", "goal": "flying"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"mine\.jsonl:1"):
        check_descriptions(path)
