"""The built-in classifier: training on the shipped corpus, prediction, explanations, disk cache.

Features (all TF-IDF, sublinear term frequency, accents stripped), concatenated:

- word unigrams and bigrams of the description;
- character n-grams (2 to 5, inside word boundaries, seen in at least two corpus examples), so that
  inflections and spelling variants ("transcribing", "summarise") share evidence;
- unigrams to trigrams of its *concept view* (``lexicon.py``), weighted ``CONCEPT_WEIGHT``.

Two multinomial logistic regressions (L2, ``C``) are trained on them: one for the goal, one for the
input modality. Logistic regression is fitted by maximising the likelihood, so its probabilities are
calibrated in the log-loss sense (``evaluate.py`` reports how often answers above the clarification
threshold are right); they are the encoder's confidence. At prediction time the feature row is
computed directly from the fitted vocabularies and IDF weights (``features``; equal to
scikit-learn's ``transform``, see ``sparse_features``), which keeps a task at about a millisecond.

Training takes one to two seconds, so the fitted model is pickled under the cache directory, keyed
by a hash of the corpus, the lexicon and feature settings, ``CODE_VERSION`` and the scikit-learn and
numpy versions (a pickle is only valid for the versions that wrote it). Writes go to a temporary
file in the same directory, then ``os.replace``: concurrent processes may both train, and each sees
either no file or a complete one.
"""

from __future__ import annotations

import hashlib
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
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
import sklearn
from scipy import sparse  # type: ignore[import-untyped]
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from sustainml.workers.logic.encoder.keywords import WORD_RE
from sustainml.workers.logic.encoder.lexicon import TOKEN_RE, concept_text, concept_tokens, lexicon_spec
from sustainml.workers.logic.encoder.vocabulary import GOALS, MODALITIES

log = logging.getLogger(__name__)

#: Bump when features, training or the pickled class change: old cache files are then ignored.
CODE_VERSION: Final = "encoder-3"

CORPUS_PATH: Final = Path(__file__).with_name("corpus.jsonl")

#: Environment variable naming the cache directory (default: ``<SUSTAINML_DATA_DIR>/cache/encoder``).
CACHE_ENV: Final = "SUSTAINML_ENCODER_CACHE_DIR"

#: Inverse regularisation strength of both logistic regressions, and the weight of the concept
#: block relative to the word and character blocks; chosen by 5-fold cross-validation on the corpus.
C: Final = 20.0
CONCEPT_WEIGHT: Final = 0.8

Vector = npt.NDArray[np.float64]


class FeatureRow(NamedTuple):
    """One text's non-zero features: sorted column indices and their values."""

    indices: npt.NDArray[np.int64]
    data: Vector


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


def _word_vectorizer() -> Any:
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode")


def _char_vectorizer() -> Any:
    return TfidfVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, strip_accents="unicode"
    )


def _concept_vectorizer() -> Any:
    # Concept tokens are upper-case tags separated by spaces; keep them as they are.
    return TfidfVectorizer(ngram_range=(1, 3), sublinear_tf=True, lowercase=False, token_pattern=r"\S+")


def _classifier() -> Any:
    # sag (tolerance 1e-3) lands within 0.01 of the tight optimum in probability, several times
    # faster than lbfgs here; a fixed random_state keeps its sample order, hence the model, deterministic.
    return LogisticRegression(C=C, solver="sag", tol=1e-3, max_iter=5000, random_state=0)


def _softmax(z: Vector) -> Vector:
    e = np.exp(z - z.max())
    out: Vector = e / e.sum()
    return out


class EncoderModel:
    """The fitted vectorizers and classifiers, plus corpus statistics for the keyword extractor."""

    def __init__(self, examples: Sequence[Example], key: str = "") -> None:
        if not examples:
            raise ValueError("cannot train the encoder on an empty corpus")
        started = time.perf_counter()
        self.key = key
        texts = [e.text for e in examples]
        self._word = _word_vectorizer()
        self._char = _char_vectorizer()
        self._concept = _concept_vectorizer()
        x = sparse.hstack(
            [
                self._word.fit_transform(texts),
                self._char.fit_transform(texts),
                CONCEPT_WEIGHT * self._concept.fit_transform([concept_text(t) for t in texts]),
            ]
        ).tocsr()
        goal_clf = _classifier().fit(x, [e.goal for e in examples])
        modality_clf = _classifier().fit(x, [e.modality for e in examples])
        # Reorder the classifiers' (alphabetical) classes to the vocabulary order, so argmax ties
        # follow GOALS and callers can index by position.
        goal_pos = {g: i for i, g in enumerate(goal_clf.classes_)}
        self.goals: tuple[str, ...] = tuple(g for g in GOALS if g in goal_pos)
        self._goal_order = np.array([goal_pos[g] for g in self.goals])
        mod_pos = {m: i for i, m in enumerate(modality_clf.classes_)}
        self.modalities: tuple[str, ...] = tuple(m for m in MODALITIES if m in mod_pos)
        self._modality_order = np.array([mod_pos[m] for m in self.modalities])
        # Coefficients in vocabulary order, centred over classes: softmax is shift-invariant, so
        # the centred weight of a feature is its effect on one goal relative to the average goal.
        coef = np.asarray(goal_clf.coef_)[self._goal_order]
        self._goal_coef: npt.NDArray[np.float64] = coef - coef.mean(axis=0, keepdims=True)
        self._goal_intercept = np.asarray(goal_clf.intercept_)[self._goal_order]
        self._modality_coef = np.asarray(modality_clf.coef_)[self._modality_order]
        self._modality_intercept = np.asarray(modality_clf.intercept_)[self._modality_order]
        n_word = len(self._word.vocabulary_)
        n_char = len(self._char.vocabulary_)
        self._blocks = (n_word, n_word + n_char)
        self._feature_names: list[str] = [
            *self._word.get_feature_names_out().tolist(),
            *self._char.get_feature_names_out().tolist(),
            *self._concept.get_feature_names_out().tolist(),
        ]
        # Document frequencies of plain word tokens, for keyword weights (TF-IDF against the corpus).
        df: Counter[str] = Counter()
        for t in texts:
            df.update(set(WORD_RE.findall(t.casefold())))
        n = len(texts)
        self.idf: dict[str, float] = {w: math.log((1 + n) / (1 + c)) + 1.0 for w, c in df.items()}
        self.default_idf = math.log(1 + n) + 1.0
        self.n_examples = n
        self.train_seconds = time.perf_counter() - started
        # Pruned-feature sets are only kept for inspection; dropping them shrinks the cache file.
        for vec in (self._word, self._char, self._concept):
            vec.stop_words_ = None
        self._analyzers: tuple[Any, Any, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_analyzers"] = None  # closures over the vectorizers: rebuilt on first use
        return state

    # -- prediction --------------------------------------------------------------------------
    def sparse_features(self, text: str) -> Any:
        """The feature row of ``text`` as scikit-learn computes it (1 x n sparse matrix): the
        reference for :meth:`features`, used by the tests."""
        return sparse.hstack(
            [
                self._word.transform([text]),
                self._char.transform([text]),
                CONCEPT_WEIGHT * self._concept.transform([concept_text(text)]),
            ]
        ).tocsr()

    def features(self, text: str) -> FeatureRow:
        """The feature row of ``text``: the same values as :meth:`sparse_features`, computed
        directly from the fitted vocabularies and IDF weights. scikit-learn's per-call input
        validation costs several times more than the arithmetic for one short text."""
        if self._analyzers is None:
            self._analyzers = (
                self._word.build_analyzer(),
                self._char.build_analyzer(),
                self._concept.build_analyzer(),
            )
        parts_idx: list[npt.NDArray[np.int64]] = []
        parts_val: list[Vector] = []
        offset = 0
        inputs = (text, text, concept_text(text))
        scales = (1.0, 1.0, CONCEPT_WEIGHT)
        vectorizers = (self._word, self._char, self._concept)
        for analyzer, vec, doc, scale in zip(self._analyzers, vectorizers, inputs, scales, strict=True):
            vocab: dict[str, int] = vec.vocabulary_
            counts = Counter(j for j in (vocab.get(t) for t in analyzer(doc)) if j is not None)
            if counts:
                idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
                tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
                val = (np.log(tf) + 1.0) * vec.idf_[idx]  # sublinear tf x idf, as fitted
                val *= scale / np.linalg.norm(val)  # l2 per block, then the block weight
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

    def word_contributions(self, text: str, x: FeatureRow, goal: str) -> list[tuple[str, float]]:
        """How much each word of ``text`` pushed the score of ``goal`` (largest first).

        A feature's contribution is its value times its centred weight for the goal. Word n-gram
        features are spread evenly over their words, character n-grams over the words that contain
        them, concept n-grams over the words that produced those concepts.
        """
        row = self.goals.index(goal)
        words = TOKEN_RE.findall(text.casefold())
        padded = {w: f" {w} " for w in words}
        concept_words: dict[str, list[str]] = {}
        for concept, word in concept_tokens(text):
            concept_words.setdefault(concept, []).append(word)
        score: dict[str, float] = {}

        def spread(targets: Sequence[str], amount: float) -> None:
            if targets:
                share = amount / len(targets)
                for t in targets:
                    score[t] = score.get(t, 0.0) + share

        weights = self._goal_coef[row]
        word_end, char_end = self._blocks
        for j, value in zip(x.indices, x.data, strict=True):
            amount = float(value * weights[j])
            if amount == 0.0:
                continue
            name = self._feature_names[j]
            if j < word_end:
                spread([w for w in name.split() if w in padded], amount)
            elif j < char_end:
                spread([w for w, p in padded.items() if name in p], amount)
            else:
                spread(sorted({w for c in name.split() for w in concept_words.get(c, ())}), amount)
        return sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))


# ------------------------------------------------------------------------------------------------
# the shared, cached instance
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """Where the loaded model came from, for logs and the performance report."""

    key: str
    path: Path | None
    source: str  # "cache" or "trained"
    seconds: float  # load time, or training (+ save) time


_lock = threading.Lock()
_model: EncoderModel | None = None
_info: ModelInfo | None = None


def _feature_spec() -> str:
    """Everything besides the corpus that changes the trained model: the lexicon, the vectorizer
    and classifier settings (so editing them invalidates the cache without a version bump)."""
    spec = {
        "lexicon": lexicon_spec(),
        "vectorizers": [repr(v()) for v in (_word_vectorizer, _char_vectorizer, _concept_vectorizer)],
        "classifier": repr(_classifier()),
        "concept_weight": CONCEPT_WEIGHT,
    }
    return json.dumps(spec, sort_keys=True)


def corpus_key(corpus_bytes: bytes) -> str:
    """Cache key of a corpus under this code, these settings and these library versions."""
    h = hashlib.sha256()
    for part in (
        CODE_VERSION,
        _feature_spec(),
        sklearn.__version__,
        np.__version__,
        f"{sys.version_info.major}.{sys.version_info.minor}",
    ):
        h.update(part.encode())
        h.update(b"\0")
    h.update(corpus_bytes)
    return h.hexdigest()[:20]


def cache_dir() -> Path:
    """``$SUSTAINML_ENCODER_CACHE_DIR``, else ``<settings data dir>/cache/encoder``."""
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    from sustainml.config import Settings  # here: settings are read when the model is first needed

    return Settings.from_env().data_dir / "cache" / "encoder"


def _untrusted_cache(path: Path) -> str | None:
    """Why ``path`` must not be unpickled, or None: a pickle runs code on load, so only a file
    this user owns, in a directory this user owns, that nobody else may write, is loaded."""
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
    # Models of other corpus/code versions are never read again by this version: remove them so the
    # directory does not grow with every upgrade (a process that loaded one keeps it in memory).
    for stale in path.parent.glob("encoder-*.pkl"):
        if stale != path:
            try:
                stale.unlink(missing_ok=True)
                log.info("removed stale encoder cache %s", stale)
            except OSError as exc:
                log.warning("cannot remove stale encoder cache %s: %s", stale, exc)
    return True


def get_model() -> EncoderModel:
    """The model for the shipped corpus: in memory, else from the disk cache, else trained (and
    cached). Thread-safe; the first call in a process may take a few seconds."""
    global _model, _info
    with _lock:
        if _model is not None:
            return _model
        started = time.perf_counter()
        corpus_bytes = CORPUS_PATH.read_bytes()
        key = corpus_key(corpus_bytes)
        path = cache_dir() / f"encoder-{key}.pkl"
        model = _read_cache(path, key)
        if model is not None:
            _info = ModelInfo(key, path, "cache", time.perf_counter() - started)
        else:
            model = EncoderModel(load_corpus(), key=key)
            stored = _write_cache(path, model)
            _info = ModelInfo(key, path if stored else None, "trained", time.perf_counter() - started)
            log.info("encoder trained on %d examples in %.2f s", model.n_examples, model.train_seconds)
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
