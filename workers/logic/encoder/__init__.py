"""The task encoder behind ML_MODEL_METADATA: a problem description -> goal, input modality,
confidence, reasons and key phrases; offline, deterministic, a few milliseconds per task.

Modules:

- ``vocabulary``: the 22 goals (Hugging Face task names), the 6 input modalities and their aliases,
  what each goal takes and produces, the metrics suggested per goal;
- ``corpus.jsonl``: the labelled training corpus (below);
- ``lexicon``: word classes giving the classifier a concept view of a description;
- ``model``: the built-in classifier (TF-IDF word + character + concept n-grams, multinomial logistic
  regression for goal and modality), trained with scikit-learn at first use and cached on disk;
- ``scoring``: its inference with numpy alone, from the weights ``model`` exports after training
  (``.npz``, no pickle): a worker that finds the export never imports scikit-learn or scipy;
- ``backends``: the pluggable backend interface (built-in, OpenAI-compatible / Ollama LLM endpoint,
  sentence embeddings) and its environment configuration;
- ``inference``: ``encode()``: combines backend, modality hint, goal override and clarification;
- ``keywords``: key-phrase extraction (TF-IDF against the corpus);
- ``dataset_profile``: offline profiles of local CSV/JSON/Parquet files;
- ``evaluate``: k-fold cross-validation over the corpus, the held-out set, and the answers to any
  file of descriptions (``sustainml eval encoder [--descriptions FILE]``).

How the modality hint is combined: the user's ``modality`` (aliases such as cv, nlp, speech, sensor
accepted) multiplies the probability of every goal that takes that modality as input by
``backends.HINT_BOOST`` (4), of every goal that produces it by ``OUTPUT_HINT_BOOST`` (2), before
renormalising; the inferred input modality is the hint when the
chosen goal accepts it, else the goal's only input, else the modality classifier's choice among the
goal's inputs (``inference.py``).

Corpus: ``corpus.jsonl`` holds problem descriptions written for this project, one JSON object per
line: ``{"text", "goal", "modality"}`` (modality = the input's). At least 35 per goal, across
industry, health, retail, agriculture, finance, mobility, media, energy, the public sector and more,
in different lengths and styles, many without the goal's own words. The lines written in other
people's styles also carry ``"style"`` (competition, dataset-card, paper, ticket, product, chat) and
``"source"``: the public competition, dataset or paper whose facts the description states in our own
words, or a short name of the scenario when it is our own; training reads only the three fields
above. No source is one of the held-out set's (``evaluate.py``; a test checks the names). Licence:
like the rest of the project, Apache License 2.0; copyright the sustainml authors.

``trial_descriptions.jsonl``: twenty descriptions as a new user would write them, with the expected
goal and modality, kept out of training and of every choice of settings; ``sustainml eval encoder
--descriptions`` prints the answer to each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sustainml.lazy import lazy_attributes

# The vocabulary, keywords and dataset profiles need no numpy; the model, its backends and
# inference do. Those names load their module (and numpy, ~14 MB) on first use, so a worker
# that only reads the vocabulary, or has not answered a task yet, does not carry them. The
# evaluation is ``encoder.evaluate.evaluate`` (the submodule's name, so not re-exported here).
from sustainml.workers.logic.encoder.vocabulary import GOALS, MODALITIES, resolve_goal, resolve_modality

if TYPE_CHECKING:
    from sustainml.workers.logic.encoder.backends import (
        Backend,
        BackendError,
        BuiltinBackend,
        Embedder,
        EmbeddingBackend,
        LLMBackend,
        Prediction,
        SentenceTransformerEmbedder,
        configured_backend,
        set_backend,
    )
    from sustainml.workers.logic.encoder.evaluate import EncoderReport
    from sustainml.workers.logic.encoder.inference import CLARIFY_THRESHOLD, Encoding, encode
    from sustainml.workers.logic.encoder.model import EncoderModel, get_model, load_corpus

_LAZY = {
    **dict.fromkeys(
        (
            "Backend",
            "BackendError",
            "BuiltinBackend",
            "Embedder",
            "EmbeddingBackend",
            "LLMBackend",
            "Prediction",
            "SentenceTransformerEmbedder",
            "configured_backend",
            "set_backend",
        ),
        "backends",
    ),
    "EncoderReport": "evaluate",
    **dict.fromkeys(("CLARIFY_THRESHOLD", "Encoding", "encode"), "inference"),
    **dict.fromkeys(("EncoderModel", "get_model", "load_corpus"), "model"),
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "CLARIFY_THRESHOLD",
    "GOALS",
    "MODALITIES",
    "Backend",
    "BackendError",
    "BuiltinBackend",
    "Embedder",
    "EmbeddingBackend",
    "EncoderModel",
    "EncoderReport",
    "Encoding",
    "LLMBackend",
    "Prediction",
    "SentenceTransformerEmbedder",
    "configured_backend",
    "encode",
    "get_model",
    "load_corpus",
    "resolve_goal",
    "resolve_modality",
    "set_backend",
]
