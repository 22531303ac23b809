"""Key phrases of a description, most important first.

1. The text is cut into segments at punctuation; inside a segment, stopwords, numbers and
   one-letter tokens are cut points too. What remains are runs of content words; runs longer than
   ``MAX_PHRASE_WORDS`` are cut into pieces of at most that length, left to right.
2. Each distinct phrase scores ``sqrt(occurrences) x sum of its words' IDF``, with the IDF taken
   against the shipped corpus (``ln((1 + N) / (1 + df)) + 1``; words the corpus never uses get the
   maximum). Words every problem statement shares ("data", "predict") thus weigh little and the
   user's domain words ("welded seams") weigh most; the sum favours multi-word phrases.
3. Phrases are ranked by score, ties by first appearance; a phrase all of whose words already
   appear in a better phrase is skipped. At most ``MAX_KEYWORDS`` are returned, lower-cased.

Deterministic: no randomness, no dictionary-order dependence.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping
from typing import Final

MAX_KEYWORDS: Final = 10
MAX_PHRASE_WORDS: Final = 3

#: Request filler and words any problem statement may use that say nothing about the problem.
_FILLER: Final = frozenset(
    {
        "want",
        "wants",
        "wanted",
        "need",
        "needs",
        "needed",
        "like",
        "would",
        "please",
        "use",
        "used",
        "using",
        "make",
        "makes",
        "help",
        "helps",
        "able",
        "given",
        "based",
        "automatically",
        "automatic",
        "just",
        "really",
        "also",
        "way",
        "ways",
        "thing",
        "things",
        "something",
        "lot",
        "lots",
        "let",
        "lets",
        "get",
        "gets",
        "possible",
        "possibly",
        "us",
        "i'd",
        "we'd",
        "we're",
        "it's",
        "don't",
        "doesn't",
        "e.g",
        "i.e",
        "etc",
        "model",
        "models",
        "problem",
        "problems",
        "task",
        "tasks",
        "system",
    }
)
_stopwords: frozenset[str] | None = None
_stopwords_lock = threading.Lock()


def stopwords() -> frozenset[str]:
    """English stop words (scikit-learn's list, carried by the built-in model's export so that
    inference never imports scikit-learn) plus the filler words above."""
    global _stopwords
    if _stopwords is None:
        from sustainml.workers.logic.encoder.model import get_model  # model.py imports this module

        with _stopwords_lock:
            _stopwords = get_model().stop_words | _FILLER
    return _stopwords


# Phrase boundaries: punctuation (also typographic quotes \u2018 \u2019 \u201c \u201d), a dash
# between spaces (hyphen, en dash \u2013, em dash \u2014) and arrows.
_SEGMENT_RE: Final = re.compile(
    '[.,;:!?()\\[\\]{}"\u201c\u201d\u2018\u2019\u00ab\u00bb/\\\\|<>=+*&#~^\n\r\t]+|\\s[-\u2013\u2014]+\\s|->|\u2192'
)
WORD_RE: Final = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")


def _is_content(word: str, stop: frozenset[str]) -> bool:
    if word in stop or len(word) < 2:
        return False
    return not word.replace("-", "").replace("'", "").isdigit()


def candidate_phrases(text: str) -> list[tuple[str, ...]]:
    """Content-word runs of ``text`` (lower-case), in order of appearance, with repeats."""
    stop = stopwords()
    phrases: list[tuple[str, ...]] = []
    for segment in _SEGMENT_RE.split(text.casefold()):
        run: list[str] = []
        for word in [*WORD_RE.findall(segment), ""]:  # "" flushes the last run
            if word and _is_content(word, stop):
                run.append(word)
                continue
            for i in range(0, len(run), MAX_PHRASE_WORDS):
                phrases.append(tuple(run[i : i + MAX_PHRASE_WORDS]))
            run = []
    return phrases


def extract_keywords(
    text: str, idf: Mapping[str, float], default_idf: float, limit: int = MAX_KEYWORDS
) -> list[str]:
    """Up to ``limit`` key phrases of ``text``, most important first (see the module docstring)."""
    phrases = candidate_phrases(text)
    counts: dict[tuple[str, ...], int] = {}
    first: dict[tuple[str, ...], int] = {}
    for i, phrase in enumerate(phrases):
        counts[phrase] = counts.get(phrase, 0) + 1
        first.setdefault(phrase, i)
    scored = sorted(
        counts,
        key=lambda p: (-math.sqrt(counts[p]) * sum(idf.get(w, default_idf) for w in p), first[p]),
    )
    chosen: list[str] = []
    covered: set[str] = set()
    for phrase in scored:
        if set(phrase) <= covered:
            continue
        chosen.append(" ".join(phrase))
        covered.update(phrase)
        if len(chosen) == limit:
            break
    return chosen
