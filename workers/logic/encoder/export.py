"""Where the encoder's exported weights live and what names them: the key of the corpus under this
code and these settings, and the settings themselves. Kept apart from the model (numpy) so that a
worker can check at start that an export exists without loading numpy or the weights."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from sustainml.config import EncoderSettings
from sustainml.workers.logic.encoder.lexicon import lexicon_spec

#: Bump when the file layout changes: files of another format are ignored and rewritten.
EXPORT_FORMAT: Final = 1

#: Weight of the concept block relative to the word and character blocks (see ``model.py``). Chosen
#: by 5-fold cross-validation on the corpus: with 2,600 examples the words themselves carry more of
#: the evidence than the lexicon's classes (0.2 / 0.3 / 0.4 / 0.6 / 0.8 / 1.2: goal 91.0 / 91.5 /
#: 91.0 / 90.3 / 89.9 / 88.0 %).
CONCEPT_WEIGHT: Final = 0.3

#: Bump when features, training or the pickled class change: old cache files are then ignored.
CODE_VERSION: Final = "encoder-4"

CORPUS_PATH: Final = Path(__file__).with_name("corpus.jsonl")

#: Environment variable naming the cache directory (default: ``<SUSTAINML_DATA_DIR>/cache/encoder``).
CACHE_ENV: Final = "SUSTAINML_ENCODER_CACHE_DIR"

#: Inverse regularisation strength of both logistic regressions (and ``CONCEPT_WEIGHT``, the weight
#: of the concept block relative to the word and character blocks); chosen by 5-fold
#: cross-validation on the corpus (with class weighting: 10 < 20 < 40 = 80).
C: Final = 40.0

#: ``TfidfVectorizer`` settings of the three blocks; ``scoring.py`` reproduces their analyzers.
WORD_SETTINGS: Final[dict[str, Any]] = {
    "ngram_range": (1, 2),
    "sublinear_tf": True,
    "strip_accents": "unicode",
}
CHAR_SETTINGS: Final[dict[str, Any]] = {
    "analyzer": "char_wb",
    "ngram_range": (2, 5),
    "sublinear_tf": True,
    "min_df": 2,
    "strip_accents": "unicode",
}
# Concept tokens are upper-case tags separated by spaces; keep them as they are.
CONCEPT_SETTINGS: Final[dict[str, Any]] = {
    "ngram_range": (1, 3),
    "sublinear_tf": True,
    "lowercase": False,
    "token_pattern": r"\S+",
}
# sag (tolerance 1e-3) lands within 0.01 of the tight optimum in probability, several times faster
# than lbfgs here; a fixed random_state keeps its sample order, hence the model, deterministic.
# Classes weighted inversely to their corpus frequency: the corpus has 80 to 160 examples per goal
# (and many more text than video examples), and a description should not lean towards a goal
# because more of its examples were written (5-fold cross-validation: goal +0.5, modality +0.1
# points with C = 40).
CLASSIFIER_SETTINGS: Final[dict[str, Any]] = {
    "C": C,
    "class_weight": "balanced",
    "solver": "sag",
    "tol": 1e-3,
    "max_iter": 5000,
    "random_state": 0,
}


def feature_spec() -> str:
    """Everything besides the corpus that changes the trained model: the lexicon, the vectorizer
    and classifier settings (so editing them invalidates the cache without a version bump)."""
    spec = {
        "lexicon": lexicon_spec(),
        "vectorizers": [WORD_SETTINGS, CHAR_SETTINGS, CONCEPT_SETTINGS],
        "classifier": CLASSIFIER_SETTINGS,
        "concept_weight": CONCEPT_WEIGHT,
    }
    return json.dumps(spec, sort_keys=True)


def keyed_hash(parts: Sequence[str], corpus_bytes: bytes) -> str:
    """20 hex digits of SHA-256 over ``parts`` and the corpus."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    h.update(corpus_bytes)
    return h.hexdigest()[:20]


def export_key(corpus_bytes: bytes) -> str:
    """Key of the exported weights of a corpus under this code and these settings. No library
    version: the export is plain numbers and text, read the same by any numpy (and computing the
    key must not import scikit-learn)."""
    return keyed_hash((CODE_VERSION, f"export-{EXPORT_FORMAT}", feature_spec()), corpus_bytes)


def cache_dir(settings: EncoderSettings | None = None) -> Path:
    """``settings.cache_dir`` (``$SUSTAINML_ENCODER_CACHE_DIR``, else ``<data dir>/cache/encoder``);
    without settings the process environment's, read when the model is first needed."""
    from sustainml.config import environment_settings

    return (settings or environment_settings().encoder).cache_dir


def export_path(settings: EncoderSettings | None = None) -> Path:
    """The export of the shipped corpus under this code (present or not)."""
    return cache_dir(settings) / f"encoder-{export_key(CORPUS_PATH.read_bytes())}.npz"


__all__ = [
    "CACHE_ENV",
    "CHAR_SETTINGS",
    "CLASSIFIER_SETTINGS",
    "CODE_VERSION",
    "CONCEPT_SETTINGS",
    "CONCEPT_WEIGHT",
    "CORPUS_PATH",
    "EXPORT_FORMAT",
    "WORD_SETTINGS",
    "C",
    "cache_dir",
    "export_key",
    "export_path",
    "feature_spec",
    "keyed_hash",
]
