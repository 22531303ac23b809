"""Inference of the built-in classifier with numpy alone: the trained weights, exported to a file.

Training (``model.EncoderModel``) needs scikit-learn, scipy and their ~150 MB of resident memory.
Prediction does not: a feature row is TF-IDF over three fitted vocabularies and a goal is a softmax
of a dot product. After training, the vocabularies, IDF vectors and logistic-regression weights are
written once to ``encoder-<key>.npz`` in the encoder cache directory (numpy arrays and one JSON
document, read with ``allow_pickle=False``: a safe format, unlike the pickled scikit-learn objects),
and a worker that finds the file never imports scikit-learn.

The tokenisation below reproduces the three ``TfidfVectorizer`` analyzers of ``model.py``:

- words: lower-case, accents stripped (NFKD, combining marks dropped, non-ASCII text only), tokens
  ``(?u)\\b\\w\\w+\\b``, unigrams and bigrams;
- characters (``char_wb``): the same preprocessing, runs of two or more white-space characters made
  one space, per white-space-separated word padded with one space each side, 2- to 5-grams (a word
  shorter than n yields its padded self once and no longer n-grams);
- concepts: the concept view as is, tokens ``\\S+``, unigrams to trigrams.

``tests/unit/test_encoder_scoring.py`` checks features and probabilities against scikit-learn's
pipeline on the whole shipped corpus.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt

from sustainml.workers.logic.encoder.export import CONCEPT_WEIGHT, EXPORT_FORMAT
from sustainml.workers.logic.encoder.lexicon import TOKEN_RE, concept_text, concept_tokens

log = logging.getLogger(__name__)


Vector = npt.NDArray[np.float64]

_WORD_TOKEN: Final = re.compile(r"(?u)\b\w\w+\b")
_CONCEPT_TOKEN: Final = re.compile(r"\S+")
_WHITE_SPACES: Final = re.compile(r"\s\s+")
_BLOCKS: Final = ("word", "char", "concept")


class FeatureRow(NamedTuple):
    """One text's non-zero features: sorted column indices and their values."""

    indices: npt.NDArray[np.int64]
    data: Vector


def strip_accents(text: str) -> str:
    """Accents removed: NFKD, then combining marks dropped (ASCII text is returned unchanged)."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def ngrams(tokens: Sequence[str], low: int, high: int) -> list[str]:
    """Token n-grams for n in [low, high], all n-grams of one n before the next n."""
    out: list[str] = []
    for n in range(low, min(high, len(tokens)) + 1):
        out.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return out


def word_terms(text: str) -> list[str]:
    """Terms of the word block: unigrams and bigrams of the lower-cased, accent-free text."""
    return ngrams(_WORD_TOKEN.findall(strip_accents(text.lower())), 1, 2)


def char_terms(text: str) -> list[str]:
    """Terms of the character block: 2- to 5-grams inside space-padded words."""
    doc = _WHITE_SPACES.sub(" ", strip_accents(text.lower()))
    out: list[str] = []
    for word in doc.split():
        padded = f" {word} "
        for n in range(2, 6):
            if len(padded) <= n:  # a short word counts once, as a whole, then no longer n-grams
                out.append(padded)
                break
            out.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return out


def concept_terms(text: str) -> list[str]:
    """Terms of the concept block: unigrams to trigrams of the concept view of ``text``."""
    return ngrams(_CONCEPT_TOKEN.findall(concept_text(text)), 1, 3)


def _softmax(z: Vector) -> Vector:
    e = np.exp(z - z.max())
    out: Vector = e / e.sum()
    return out


class ScoringModel:
    """The fitted vocabularies, IDF weights and classifier weights; predicts without scikit-learn.

    ``goal_coef`` rows follow ``goals`` and are centred over the goals (softmax is shift-invariant,
    so the centred weight of a feature is its effect on one goal relative to the average goal)."""

    def __init__(
        self,
        *,
        key: str,
        goals: Sequence[str],
        modalities: Sequence[str],
        vocabularies: Sequence[Sequence[str]],
        idf_vectors: Sequence[Vector],
        goal_coef: npt.NDArray[np.float64],
        goal_intercept: Vector,
        modality_coef: npt.NDArray[np.float64],
        modality_intercept: Vector,
        keyword_idf: Mapping[str, float],
        default_idf: float,
        n_examples: int,
        stop_words: frozenset[str],
        train_seconds: float = 0.0,
    ) -> None:
        if len(vocabularies) != len(_BLOCKS) or len(idf_vectors) != len(_BLOCKS):
            raise ValueError(f"expected {len(_BLOCKS)} vocabularies and IDF vectors")
        width = sum(len(v) for v in vocabularies)
        for terms, idf in zip(vocabularies, idf_vectors, strict=True):
            if len(terms) != len(idf):
                raise ValueError("a vocabulary and its IDF vector differ in length")
        if goal_coef.shape != (len(goals), width) or modality_coef.shape != (len(modalities), width):
            raise ValueError("classifier weights do not match the vocabularies")
        if goal_intercept.shape != (len(goals),) or modality_intercept.shape != (len(modalities),):
            raise ValueError("classifier intercepts do not match the classes")
        self.key = key
        self.goals: tuple[str, ...] = tuple(goals)
        self.modalities: tuple[str, ...] = tuple(modalities)
        self._terms: tuple[tuple[str, ...], ...] = tuple(tuple(v) for v in vocabularies)
        self._vocab: tuple[dict[str, int], ...] = tuple({t: i for i, t in enumerate(v)} for v in self._terms)
        self._idf: tuple[Vector, ...] = tuple(np.asarray(v, dtype=np.float64) for v in idf_vectors)
        self._goal_coef = np.asarray(goal_coef, dtype=np.float64)
        self._goal_intercept = np.asarray(goal_intercept, dtype=np.float64)
        self._modality_coef = np.asarray(modality_coef, dtype=np.float64)
        self._modality_intercept = np.asarray(modality_intercept, dtype=np.float64)
        # Subtracted to centre a modality's weights when explaining it (computed once: wide rows).
        self._modality_coef_mean = self._modality_coef.mean(axis=0)
        n_word, n_char = len(self._terms[0]), len(self._terms[1])
        self._blocks = (n_word, n_word + n_char)
        #: Document frequencies of plain word tokens, for keyword weights (TF-IDF against the corpus).
        self.idf: dict[str, float] = dict(keyword_idf)
        self.default_idf = float(default_idf)
        self.n_examples = int(n_examples)
        #: The English stop words the keyword extractor cuts phrases at (scikit-learn's list, taken
        #: at training time so that inference needs no scikit-learn).
        self.stop_words = frozenset(stop_words)
        self.train_seconds = float(train_seconds)

    # -- prediction --------------------------------------------------------------------------
    def features(self, text: str) -> FeatureRow:
        """The feature row of ``text``: per block, sublinear term frequency x IDF, l2-normalised,
        times the block weight; columns of the three blocks concatenated."""
        parts_idx: list[npt.NDArray[np.int64]] = []
        parts_val: list[Vector] = []
        offset = 0
        blocks = ((word_terms(text), 1.0), (char_terms(text), 1.0), (concept_terms(text), CONCEPT_WEIGHT))
        for (terms, scale), vocab, idf in zip(blocks, self._vocab, self._idf, strict=True):
            counts = Counter(j for j in (vocab.get(t) for t in terms) if j is not None)
            if counts:
                idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
                tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
                val = (np.log(tf) + 1.0) * idf[idx]
                val *= scale / np.linalg.norm(val)
                parts_idx.append(idx + offset)
                parts_val.append(val)
            offset += len(vocab)
        if not parts_idx:
            return FeatureRow(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
        indices = np.concatenate(parts_idx)
        order = np.argsort(indices)
        return FeatureRow(indices[order], np.concatenate(parts_val)[order])

    def goal_probabilities(self, x: FeatureRow) -> Vector:
        """P(goal | text), in ``self.goals`` order."""
        return _softmax(self._goal_coef[:, x.indices] @ x.data + self._goal_intercept)

    def modality_probabilities(self, x: FeatureRow) -> Vector:
        """P(input modality | text), in ``self.modalities`` order."""
        return _softmax(self._modality_coef[:, x.indices] @ x.data + self._modality_intercept)

    def feature_name(self, j: int) -> str:
        word_end, char_end = self._blocks
        if j < word_end:
            return self._terms[0][j]
        if j < char_end:
            return self._terms[1][j - word_end]
        return self._terms[2][j - char_end]

    def word_contributions(self, text: str, x: FeatureRow, goal: str) -> list[tuple[str, float]]:
        """How much each word of ``text`` pushed the score of ``goal`` (largest first).

        A feature's contribution is its value times its centred weight for the goal. Word n-gram
        features are spread evenly over their words, character n-grams over the words that contain
        them, concept n-grams over the words that produced those concepts.
        """
        return self._contributions(text, x, [self._goal_coef[self.goals.index(goal)]])[0]

    def explain(
        self, text: str, x: FeatureRow, goal: str, modality: str
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """``word_contributions`` for ``goal``, and the same for the input ``modality`` under the
        modality classifier (its weights centred over the modalities); one pass over the features."""
        modality_row = self._modality_coef[self.modalities.index(modality)] - self._modality_coef_mean
        by_goal, by_modality = self._contributions(
            text, x, [self._goal_coef[self.goals.index(goal)], modality_row]
        )
        return by_goal, by_modality

    def _contributions(
        self, text: str, x: FeatureRow, weight_rows: Sequence[Vector]
    ) -> list[list[tuple[str, float]]]:
        words = TOKEN_RE.findall(text.casefold())
        padded = {w: f" {w} " for w in words}
        concept_words: dict[str, list[str]] = {}
        for concept, word in concept_tokens(text):
            concept_words.setdefault(concept, []).append(word)
        scores: list[dict[str, float]] = [{} for _ in weight_rows]
        amounts = [(x.data * row[x.indices]).tolist() for row in weight_rows]
        word_end, char_end = self._blocks
        for k, j in enumerate(x.indices.tolist()):
            name = self.feature_name(j)
            if j < word_end:
                targets = [w for w in name.split() if w in padded]
            elif j < char_end:
                targets = [w for w, p in padded.items() if name in p]
            else:
                targets = sorted({w for c in name.split() for w in concept_words.get(c, ())})
            if not targets:
                continue
            for score, amount in zip(scores, amounts, strict=True):
                share = amount[k] / len(targets)
                if share != 0.0:
                    for t in targets:
                        score[t] = score.get(t, 0.0) + share
        return [sorted(score.items(), key=lambda kv: (-kv[1], kv[0])) for score in scores]

    # -- the exported file ---------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the weights to ``path`` (``.npz``: arrays plus one JSON document), atomically."""
        meta = {
            "format": EXPORT_FORMAT,
            "key": self.key,
            "goals": list(self.goals),
            "modalities": list(self.modalities),
            "vocabularies": [list(v) for v in self._terms],
            "keyword_idf": self.idf,
            "default_idf": self.default_idf,
            "n_examples": self.n_examples,
            "stop_words": sorted(self.stop_words),
            "train_seconds": self.train_seconds,
        }
        arrays: dict[str, Any] = {  # Any: np.savez types its keywords like allow_pickle
            "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8),
            "goal_coef": self._goal_coef,
            "goal_intercept": self._goal_intercept,
            "modality_coef": self._modality_coef,
            "modality_intercept": self._modality_intercept,
        }
        for name, idf in zip(_BLOCKS, self._idf, strict=True):
            arrays[f"idf_{name}"] = idf
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, allow_pickle=False, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)  # atomic: readers see no file or the whole new one
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, key: str) -> ScoringModel:
        """The model in ``path``; ``ValueError`` when it is not an export of this format and key
        (``FileNotFoundError`` when there is no file)."""
        with np.load(path, allow_pickle=False) as data:
            try:
                meta = json.loads(bytes(data["meta"]).decode("utf-8"))
                if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
                    raise ValueError(f"not an encoder export of format {EXPORT_FORMAT}")
                if meta.get("key") != key:
                    raise ValueError(f"exported for key {meta.get('key')!r}, not {key!r}")
                return cls(
                    key=key,
                    goals=[str(g) for g in meta["goals"]],
                    modalities=[str(m) for m in meta["modalities"]],
                    vocabularies=[[str(t) for t in v] for v in meta["vocabularies"]],
                    idf_vectors=[np.asarray(data[f"idf_{name}"], dtype=np.float64) for name in _BLOCKS],
                    goal_coef=np.asarray(data["goal_coef"], dtype=np.float64),
                    goal_intercept=np.asarray(data["goal_intercept"], dtype=np.float64),
                    modality_coef=np.asarray(data["modality_coef"], dtype=np.float64),
                    modality_intercept=np.asarray(data["modality_intercept"], dtype=np.float64),
                    keyword_idf={str(w): float(v) for w, v in meta["keyword_idf"].items()},
                    default_idf=float(meta["default_idf"]),
                    n_examples=int(meta["n_examples"]),
                    stop_words=frozenset(str(w) for w in meta["stop_words"]),
                    train_seconds=float(meta.get("train_seconds", 0.0)),
                )
            except (KeyError, TypeError, AttributeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValueError(f"malformed encoder export: {type(exc).__name__}: {exc}") from exc


__all__ = [
    "CONCEPT_WEIGHT",
    "EXPORT_FORMAT",
    "FeatureRow",
    "ScoringModel",
    "char_terms",
    "concept_terms",
    "strip_accents",
    "word_terms",
]
