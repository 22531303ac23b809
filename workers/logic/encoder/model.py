"""The built-in classifier: training on the shipped corpus, the exported weights, disk cache.

Features (all TF-IDF, sublinear term frequency, accents stripped), concatenated:

- word unigrams and bigrams of the description;
- character n-grams (2 to 5, inside word boundaries, seen in at least two corpus examples), so that
  inflections and spelling variants ("transcribing", "summarise") share evidence;
- unigrams to trigrams of its *concept view* (``lexicon.py``), weighted ``CONCEPT_WEIGHT``.

Two multinomial logistic regressions (L2, ``C``) are trained on them with scikit-learn: one for the
goal, one for the input modality. Logistic regression is fitted by maximising the likelihood, so
its probabilities are calibrated in the log-loss sense (``evaluate.py`` reports how often answers
above the clarification threshold are right); they are the encoder's confidence.

Prediction needs no scikit-learn: the fitted vocabularies, IDF weights and coefficients are exported
to a ``ScoringModel`` (``scoring.py``, numpy only) and ``EncoderModel`` is one, so a freshly trained
model and a loaded export answer with the same code. ``sparse_features`` and
``reference_probabilities`` keep scikit-learn's own pipeline as the reference the tests compare
against.

Disk cache (``cache_dir()``), both written to a temporary file in the same directory, then
``os.replace`` (concurrent processes may both train; each sees no file or a complete one):

- ``encoder-<key>.npz``: the export, what ``get_model()`` loads (``key`` = hash of the corpus, the
  lexicon, the feature and classifier settings, ``CODE_VERSION`` and the export format). A worker
  that finds it never imports scikit-learn or scipy (~150 MB less resident memory).
- ``encoder-<key>.pkl``: the pickled scikit-learn pipeline (training takes one to two seconds), keyed
  by the library versions too (a pickle is only valid for the versions that wrote it); read only
  when the export is missing or unusable, to re-export without training.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sustainml.config import EncoderSettings
from sustainml.workers.logic.encoder.export import (
    CACHE_ENV,
    CHAR_SETTINGS,
    CLASSIFIER_SETTINGS,
    CODE_VERSION,
    CONCEPT_SETTINGS,
    CONCEPT_WEIGHT,
    CORPUS_PATH,
    WORD_SETTINGS,
    C,
    cache_dir,
    export_key,
    feature_spec,
    keyed_hash,
)
from sustainml.workers.logic.encoder.keywords import WORD_RE
from sustainml.workers.logic.encoder.lexicon import concept_text
from sustainml.workers.logic.encoder.scoring import FeatureRow, ScoringModel
from sustainml.workers.logic.encoder.vocabulary import GOALS, MODALITIES

log = logging.getLogger(__name__)

Vector = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Example:
    """One labelled corpus line."""

    text: str
    goal: str
    modality: str


def load_corpus(path: Path | None = None) -> list[Example]:
    """The labelled examples of a JSON-lines corpus (default: the shipped one), validated: every
    goal and modality must belong to the vocabulary."""
    source = path or CORPUS_PATH
    examples: list[Example] = []
    with source.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                example = Example(str(row["text"]).strip(), str(row["goal"]), str(row["modality"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{source}:{lineno}: not a corpus record: {exc}") from exc
            if example.goal not in GOALS:
                raise ValueError(f"{source}:{lineno}: unknown goal {example.goal!r}")
            if example.modality not in MODALITIES:
                raise ValueError(f"{source}:{lineno}: unknown modality {example.modality!r}")
            if not example.text:
                raise ValueError(f"{source}:{lineno}: empty text")
            examples.append(example)
    return examples


class EncoderModel(ScoringModel):
    """Trained with scikit-learn on ``examples``; predicts as the ``ScoringModel`` it exports, and
    keeps the fitted scikit-learn objects as the reference (``sparse_features``,
    ``reference_probabilities``)."""

    def __init__(self, examples: Sequence[Example], key: str = "") -> None:
        # scikit-learn and scipy only here: a process that merely predicts never loads them.
        from scipy import sparse  # type: ignore[import-untyped]
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        if not examples:
            raise ValueError("cannot train the encoder on an empty corpus")
        started = time.perf_counter()
        texts = [e.text for e in examples]
        self._word = TfidfVectorizer(**WORD_SETTINGS)
        self._char = TfidfVectorizer(**CHAR_SETTINGS)
        self._concept = TfidfVectorizer(**CONCEPT_SETTINGS)
        x = sparse.hstack(
            [
                self._word.fit_transform(texts),
                self._char.fit_transform(texts),
                CONCEPT_WEIGHT * self._concept.fit_transform([concept_text(t) for t in texts]),
            ]
        ).tocsr()
        self._goal_clf = LogisticRegression(**CLASSIFIER_SETTINGS).fit(x, [e.goal for e in examples])
        self._modality_clf = LogisticRegression(**CLASSIFIER_SETTINGS).fit(x, [e.modality for e in examples])
        # Reorder the classifiers' (alphabetical) classes to the vocabulary order, so argmax ties
        # follow GOALS and callers can index by position.
        goal_pos = {g: i for i, g in enumerate(self._goal_clf.classes_)}
        goals = tuple(g for g in GOALS if g in goal_pos)
        self._goal_order = np.array([goal_pos[g] for g in goals])
        mod_pos = {m: i for i, m in enumerate(self._modality_clf.classes_)}
        modalities = tuple(m for m in MODALITIES if m in mod_pos)
        self._modality_order = np.array([mod_pos[m] for m in modalities])
        coef = np.asarray(self._goal_clf.coef_, dtype=np.float64)[self._goal_order]
        # Document frequencies of plain word tokens, for keyword weights (TF-IDF against the corpus).
        df: Counter[str] = Counter()
        for t in texts:
            df.update(set(WORD_RE.findall(t.casefold())))
        n = len(texts)
        # Pruned-feature sets are only kept for inspection; dropping them shrinks the pickle.
        for vec in (self._word, self._char, self._concept):
            vec.stop_words_ = None
        super().__init__(
            key=key,
            goals=goals,
            modalities=modalities,
            vocabularies=[
                vec.get_feature_names_out().tolist() for vec in (self._word, self._char, self._concept)
            ],
            idf_vectors=[
                np.asarray(vec.idf_, dtype=np.float64) for vec in (self._word, self._char, self._concept)
            ],
            goal_coef=coef - coef.mean(axis=0, keepdims=True),
            goal_intercept=np.asarray(self._goal_clf.intercept_, dtype=np.float64)[self._goal_order],
            modality_coef=np.asarray(self._modality_clf.coef_, dtype=np.float64)[self._modality_order],
            modality_intercept=np.asarray(self._modality_clf.intercept_, dtype=np.float64)[
                self._modality_order
            ],
            keyword_idf={w: math.log((1 + n) / (1 + c)) + 1.0 for w, c in df.items()},
            default_idf=math.log(1 + n) + 1.0,
            n_examples=n,
            stop_words=frozenset(ENGLISH_STOP_WORDS),
            train_seconds=time.perf_counter() - started,
        )
        # get_feature_names_out lists each vocabulary in column order: check, as the export relies on it.
        for vec, terms in zip((self._word, self._char, self._concept), self._terms, strict=True):
            if any(vec.vocabulary_[t] != i for i, t in enumerate(terms)):
                raise RuntimeError("scikit-learn's feature names are not in column order")

    # -- scikit-learn's own pipeline, the reference ----------------------------------------------
    def sparse_features(self, text: str) -> Any:
        """The feature row of ``text`` as scikit-learn computes it (1 x n sparse matrix): the
        reference for :meth:`features`, used by the tests."""
        from scipy import sparse

        return sparse.hstack(
            [
                self._word.transform([text]),
                self._char.transform([text]),
                CONCEPT_WEIGHT * self._concept.transform([concept_text(text)]),
            ]
        ).tocsr()

    def reference_probabilities(self, text: str) -> tuple[Vector, Vector]:
        """(P(goal), P(modality)) of ``text`` from scikit-learn's ``predict_proba``, in ``goals`` and
        ``modalities`` order: the reference for :meth:`goal_probabilities` and
        :meth:`modality_probabilities`."""
        x = self.sparse_features(text)
        goal = np.asarray(self._goal_clf.predict_proba(x), dtype=np.float64)[0][self._goal_order]
        modality = np.asarray(self._modality_clf.predict_proba(x), dtype=np.float64)[0][self._modality_order]
        return goal, modality

    def exported(self) -> ScoringModel:
        """The numpy-only model with the same weights (what the ``.npz`` export holds)."""
        return ScoringModel(
            key=self.key,
            goals=self.goals,
            modalities=self.modalities,
            vocabularies=self._terms,
            idf_vectors=self._idf,
            goal_coef=self._goal_coef,
            goal_intercept=self._goal_intercept,
            modality_coef=self._modality_coef,
            modality_intercept=self._modality_intercept,
            keyword_idf=self.idf,
            default_idf=self.default_idf,
            n_examples=self.n_examples,
            stop_words=self.stop_words,
            train_seconds=self.train_seconds,
        )


# ------------------------------------------------------------------------------------------------
# the shared, cached instance
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """Where the loaded model came from, for logs and the performance report."""

    key: str
    path: Path | None
    source: str  # "cache" (the export), "pickle" (re-exported from the pickle) or "trained"
    seconds: float  # load time, or training (+ save) time


_lock = threading.Lock()
_model: ScoringModel | None = None
_info: ModelInfo | None = None


def corpus_key(corpus_bytes: bytes) -> str:
    """Key of the pickled scikit-learn pipeline of a corpus under this code, these settings and
    these library versions (imports scikit-learn)."""
    import sklearn

    return keyed_hash(
        (
            CODE_VERSION,
            feature_spec(),
            sklearn.__version__,
            np.__version__,
            f"{sys.version_info.major}.{sys.version_info.minor}",
        ),
        corpus_bytes,
    )


def _untrusted_cache(path: Path) -> str | None:
    """Why ``path`` must not be loaded, or None: a pickle runs code on load and an export decides
    every answer, so only a file this user owns, in a directory this user owns, that nobody else may
    write, is loaded."""
    try:
        for p in (path, path.parent):
            st = p.stat()
            if st.st_uid != os.getuid():
                return f"{p} is owned by uid {st.st_uid}, not {os.getuid()}"
            if st.st_mode & 0o022:
                return f"{p} is writable by group or others (mode {st.st_mode & 0o777:o})"
    except FileNotFoundError:
        return None  # nothing to load: _read_cache reports the miss
    except OSError as exc:
        return f"cannot inspect {path}: {exc}"
    return None


def _read_cache(path: Path, key: str) -> EncoderModel | None:
    untrusted = _untrusted_cache(path)
    if untrusted:
        log.warning("encoder cache not loaded: %s; retraining", untrusted)
        return None
    try:
        with path.open("rb") as fh:
            # The file is one this code wrote into the user's own data directory (same trust as the
            # installed code); anything unexpected is discarded and retrained.
            model = pickle.load(fh)
    except FileNotFoundError:
        return None
    except Exception as exc:  # corrupt, truncated or written by incompatible versions
        log.warning("encoder cache %s unusable (%s: %s); retraining", path, type(exc).__name__, exc)
        return None
    if not isinstance(model, EncoderModel) or model.key != key:
        log.warning("encoder cache %s does not hold the expected model; retraining", path)
        return None
    return model


def _write_cache(path: Path, model: EncoderModel) -> bool:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # see _untrusted_cache
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)  # atomic: readers see the old state or the whole new file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.warning("cannot write the encoder cache %s (%s); the model lives in memory only", path, exc)
        return False
    _remove_stale(path, "encoder-*.pkl")
    return True


def _read_export(path: Path, key: str) -> ScoringModel | None:
    untrusted = _untrusted_cache(path)
    if untrusted:
        log.warning("encoder export not loaded: %s; retraining", untrusted)
        return None
    try:
        return ScoringModel.load(path, key)
    except FileNotFoundError:
        return None
    except Exception as exc:  # corrupt, truncated, another format or key
        log.warning("encoder export %s unusable (%s: %s); re-exporting", path, type(exc).__name__, exc)
        return None


def _write_export(path: Path, model: ScoringModel) -> bool:
    try:
        model.save(path)
    except OSError as exc:
        log.warning("cannot write the encoder export %s (%s); the model lives in memory only", path, exc)
        return False
    _remove_stale(path, "encoder-*.npz")
    return True


def _remove_stale(path: Path, pattern: str) -> None:
    """Files of other corpus/code versions are never read again by this version: remove them so the
    directory does not grow with every upgrade (a process that loaded one keeps it in memory)."""
    for stale in path.parent.glob(pattern):
        if stale != path:
            try:
                stale.unlink(missing_ok=True)
                log.info("removed stale encoder cache %s", stale)
            except OSError as exc:
                log.warning("cannot remove stale encoder cache %s: %s", stale, exc)


def trained_model(
    corpus_bytes: bytes | None = None, settings: EncoderSettings | None = None
) -> tuple[EncoderModel, str]:
    """(the scikit-learn pipeline of the shipped corpus, "pickle" or "trained"): from the pickle
    cache, else trained and pickled. Imports scikit-learn."""
    data = CORPUS_PATH.read_bytes() if corpus_bytes is None else corpus_bytes
    key = export_key(data)
    path = cache_dir(settings) / f"encoder-{corpus_key(data)}.pkl"
    model = _read_cache(path, key)
    if model is not None:
        return model, "pickle"
    model = EncoderModel(load_corpus(), key=key)
    log.info("encoder trained on %d examples in %.2f s", model.n_examples, model.train_seconds)
    _write_cache(path, model)
    return model, "trained"


def get_model(settings: EncoderSettings | None = None) -> ScoringModel:
    """The model for the shipped corpus: in memory, else the exported weights on disk (numpy only),
    else the pickled scikit-learn pipeline or a new training, exported for the next process.
    Thread-safe; the first call in a process may take a few seconds."""
    global _model, _info
    with _lock:
        if _model is not None:
            return _model
        started = time.perf_counter()
        corpus_bytes = CORPUS_PATH.read_bytes()
        key = export_key(corpus_bytes)
        path = cache_dir(settings) / f"encoder-{key}.npz"
        model = _read_export(path, key)
        if model is not None:
            _info = ModelInfo(key, path, "cache", time.perf_counter() - started)
        else:
            model, source = trained_model(corpus_bytes, settings)
            stored = _write_export(path, model)
            _info = ModelInfo(key, path if stored else None, source, time.perf_counter() - started)
        _model = model
        return model


def model_info() -> ModelInfo | None:
    """How the current model was obtained (``None`` before the first ``get_model()``)."""
    return _info


def reset_model() -> None:
    """Forget the in-memory model (tests: the next ``get_model()`` goes to the cache again)."""
    global _model, _info
    with _lock:
        _model = None
        _info = None


__all__ = [
    "CACHE_ENV",
    "CODE_VERSION",
    "CORPUS_PATH",
    "C",
    "EncoderModel",
    "Example",
    "FeatureRow",
    "ModelInfo",
    "ScoringModel",
    "cache_dir",
    "corpus_key",
    "export_key",
    "get_model",
    "load_corpus",
    "model_info",
    "reset_model",
    "trained_model",
]
