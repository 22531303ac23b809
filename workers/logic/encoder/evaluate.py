"""Cross-validated figures of the built-in encoder on the shipped corpus (``sustainml eval encoder``).

Stratified k-fold over the goals: each fold's examples are encoded by a model trained on the other
folds only, through the same ``encode()`` the node uses (built-in backend, environment ignored), so
no example is ever scored by a model that saw it. Every example is encoded three times:

- **no hint** (the description alone): goal accuracy, macro F1, per-goal figures, confusions,
  modality accuracy, and the split at the clarification threshold;
- **correct hint**: the example's labelled modality given as the user's modality;
- **wrong hint**: a modality that fits neither the example's goal nor its modality (picked with
  ``seed``), to show how far a mistaken hint misleads.

Held-out set (``evaluate_held_out``): ``evaluation_set.jsonl`` holds descriptions written in the
styles other people use (competition titles with subtitles, dataset-card summaries, first sentences
of paper abstracts, tickets, product requirements, one-line chat requests), in our own words, each
with the source of its facts named (``source``) and its ``style``. It is never trained on (a test
checks that none of its texts is in the corpus); the shipped model, trained on the whole corpus,
encodes each one, and the median time of the encoder alone and with the requirements extraction
is reported.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sustainml.workers.logic.encoder.backends import BuiltinBackend
from sustainml.workers.logic.encoder.inference import CLARIFY_THRESHOLD, encode
from sustainml.workers.logic.encoder.model import EncoderModel, Example, load_corpus
from sustainml.workers.logic.encoder.vocabulary import GOALS, MODALITIES, hint_fits


@dataclass(frozen=True)
class GoalFigures:
    support: int
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class EncoderReport:
    folds: int
    seed: int
    examples: int
    goal_accuracy: float
    modality_accuracy: float
    macro_f1: float
    goal_accuracy_with_hint: float
    goal_accuracy_with_wrong_hint: float
    mean_confidence: float
    clarify_threshold: float
    confident_share: float  # share of predictions at or above the threshold
    confident_accuracy: float
    unsure_accuracy: float
    train_seconds_per_fold: float
    per_goal: dict[str, GoalFigures]
    confusions: list[tuple[str, str, int]]  # (true goal, predicted goal, count), most frequent first
    misclassified: list[tuple[str, str, str]] = field(default_factory=list)  # (true, predicted, text)

    def worst_goals(self, n: int = 3) -> list[tuple[str, float]]:
        ranked = sorted(self.per_goal.items(), key=lambda kv: (kv[1].recall, kv[0]))
        return [(g, f.recall) for g, f in ranked[:n]]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["confusions"] = [{"true": t, "predicted": p, "count": c} for t, p, c in self.confusions]
        out["misclassified"] = [{"true": t, "predicted": p, "text": x} for t, p, x in self.misclassified]
        out["worst_goals"] = [{"goal": g, "recall": r} for g, r in self.worst_goals()]
        return out

    def render(self) -> str:
        pct = "{:.1%}".format
        lines = [
            f"task encoder, {self.folds}-fold stratified cross-validation (seed {self.seed}) "
            f"over {self.examples} corpus examples",
            "",
            f"goal accuracy (description only)     {pct(self.goal_accuracy)}",
            f"goal macro F1                        {self.macro_f1:.3f}",
            f"modality accuracy                    {pct(self.modality_accuracy)}",
            f"goal accuracy, correct modality hint {pct(self.goal_accuracy_with_hint)}",
            f"goal accuracy, wrong modality hint   {pct(self.goal_accuracy_with_wrong_hint)}",
            f"mean confidence                      {self.mean_confidence:.3f}",
            f"confidence >= {self.clarify_threshold:.2f}: {pct(self.confident_share)} of answers, "
            f"{pct(self.confident_accuracy)} right; below: {pct(self.unsure_accuracy)} right "
            "(needs_clarification)",
            f"training time per fold               {self.train_seconds_per_fold:.2f} s",
            "",
            f"{'goal':<30} {'n':>4} {'precision':>9} {'recall':>7} {'f1':>6}",
        ]
        for goal in GOALS:
            f = self.per_goal.get(goal)
            if f is not None:
                lines.append(f"{goal:<30} {f.support:>4} {f.precision:>9.2f} {f.recall:>7.2f} {f.f1:>6.2f}")
        lines += ["", "most frequent confusions (true -> predicted):"]
        lines += [f"  {c:>3} x {t} -> {p}" for t, p, c in self.confusions] or ["  none"]
        return "\n".join(lines)


def _wrong_hint(example: Example, rng: random.Random) -> str:
    options = [m for m in MODALITIES if m != example.modality and not hint_fits(example.goal, m)]
    return rng.choice(options) if options else ""


def evaluate(folds: int = 5, seed: int = 0, examples: list[Example] | None = None) -> EncoderReport:
    """Cross-validate the built-in encoder (see the module docstring)."""
    data = examples if examples is not None else load_corpus()
    smallest = min(Counter(e.goal for e in data).values())
    if not 2 <= folds <= smallest:
        raise ValueError(f"folds must be between 2 and {smallest} (the smallest goal's example count)")
    rng = random.Random(seed)
    wrong_hints = [_wrong_hint(e, rng) for e in data]
    predicted: list[str] = [""] * len(data)
    modality_ok = [False] * len(data)
    confidence = [0.0] * len(data)
    hint_ok = [False] * len(data)
    wrong_ok = [False] * len(data)
    train_time = 0.0
    from sklearn.model_selection import StratifiedKFold  # training-side only: not at import

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split([e.text for e in data], [e.goal for e in data]):
        started = time.perf_counter()
        model = EncoderModel([data[i] for i in train_idx])
        train_time += time.perf_counter() - started
        builtin = BuiltinBackend(model)
        for i in test_idx:
            ex = data[i]
            plain = encode(ex.text, "", backend=builtin, model=model)
            predicted[i] = plain.goal
            confidence[i] = plain.confidence
            modality_ok[i] = plain.modality == ex.modality
            hint_ok[i] = encode(ex.text, ex.modality, backend=builtin, model=model).goal == ex.goal
            wrong_ok[i] = encode(ex.text, wrong_hints[i], backend=builtin, model=model).goal == ex.goal

    n = len(data)
    truth = [e.goal for e in data]
    correct = [p == t for p, t in zip(predicted, truth, strict=True)]
    per_goal: dict[str, GoalFigures] = {}
    for goal in GOALS:
        support = truth.count(goal)
        if not support:
            continue
        tp = sum(1 for p, t in zip(predicted, truth, strict=True) if p == t == goal)
        n_pred = predicted.count(goal)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / support
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_goal[goal] = GoalFigures(support, round(precision, 4), round(recall, 4), round(f1, 4))
    confident = [c >= CLARIFY_THRESHOLD for c in confidence]
    n_conf = sum(confident)
    confusions = Counter((t, p) for t, p in zip(truth, predicted, strict=True) if t != p)
    return EncoderReport(
        folds=folds,
        seed=seed,
        examples=n,
        goal_accuracy=round(sum(correct) / n, 4),
        modality_accuracy=round(sum(modality_ok) / n, 4),
        macro_f1=round(sum(f.f1 for f in per_goal.values()) / len(per_goal), 4),
        goal_accuracy_with_hint=round(sum(hint_ok) / n, 4),
        goal_accuracy_with_wrong_hint=round(sum(wrong_ok) / n, 4),
        mean_confidence=round(sum(confidence) / n, 4),
        clarify_threshold=CLARIFY_THRESHOLD,
        confident_share=round(n_conf / n, 4),
        confident_accuracy=round(
            sum(c for c, k in zip(correct, confident, strict=True) if k) / max(n_conf, 1), 4
        ),
        unsure_accuracy=round(
            sum(c for c, k in zip(correct, confident, strict=True) if not k) / max(n - n_conf, 1), 4
        ),
        train_seconds_per_fold=round(train_time / folds, 3),
        per_goal=per_goal,
        confusions=[(t, p, c) for (t, p), c in confusions.most_common(10)],
        misclassified=[(t, p, e.text) for e, t, p in zip(data, truth, predicted, strict=True) if t != p],
    )


# ------------------------------------------------------------------------------------------------
# held-out evaluation set: descriptions in other people's styles, never trained on
# ------------------------------------------------------------------------------------------------

EVALUATION_SET_PATH = Path(__file__).with_name("evaluation_set.jsonl")


@dataclass(frozen=True)
class HeldOutExample:
    text: str
    goal: str
    modality: str
    style: str
    source: str


@dataclass(frozen=True)
class HeldOutReport:
    examples: int
    goal_accuracy: float
    modality_accuracy: float
    per_style: dict[str, tuple[int, float, float]]  # style -> (n, goal accuracy, modality accuracy)
    per_modality: dict[str, tuple[int, float, float]]
    median_ms_encoder: float
    median_ms_with_extraction: float
    errors: list[dict[str, Any]]  # wrong goal or modality, least confident-in-truth first

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def render(self, worst: int = 10) -> str:
        pct = "{:.1%}".format
        lines = [
            f"held-out evaluation set: {self.examples} descriptions written in other people's styles "
            "(evaluation_set.jsonl, never trained on), model trained on the whole corpus",
            "",
            f"goal accuracy                        {pct(self.goal_accuracy)}",
            f"modality accuracy                    {pct(self.modality_accuracy)}",
            f"median time per description: encoder {self.median_ms_encoder:.2f} ms, "
            f"encoder + requirements extraction {self.median_ms_with_extraction:.2f} ms",
            "",
            f"{'style':<16} {'n':>4} {'goal':>7} {'modality':>9}",
        ]
        for style, (n, g, m) in sorted(self.per_style.items()):
            lines.append(f"{style:<16} {n:>4} {pct(g):>7} {pct(m):>9}")
        lines += ["", f"{'modality':<16} {'n':>4} {'goal':>7} {'modality':>9}"]
        for modality, (n, g, m) in sorted(self.per_modality.items()):
            lines.append(f"{modality:<16} {n:>4} {pct(g):>7} {pct(m):>9}")
        lines += ["", f"worst errors ({len(self.errors)} in all, {min(worst, len(self.errors))} shown):"]
        for e in self.errors[:worst]:
            lines.append(
                f"  [{e['goal']} / {e['modality']}] -> {e['predicted_goal']} / {e['predicted_modality']} "
                f"(p(true goal) {e['p_true_goal']:.2f}; {e['reason']}): {e['text']}"
            )
        return "\n".join(lines)


def _json_lines(path: Path) -> list[tuple[int, Any]]:
    """(line number, parsed JSON value) of each non-blank line; ``ValueError`` naming the line."""
    out: list[tuple[int, Any]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append((lineno, json.loads(line)))
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON: {exc}") from exc
    return out


def load_evaluation_set(path: Path | None = None) -> list[HeldOutExample]:
    """The held-out descriptions, validated like the corpus (goal and modality in the vocabulary)."""
    source = path or EVALUATION_SET_PATH
    out: list[HeldOutExample] = []
    for lineno, row in _json_lines(source):
        try:
            ex = HeldOutExample(
                str(row["text"]),
                str(row["goal"]),
                str(row["modality"]),
                str(row["style"]),
                str(row["source"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{source}:{lineno}: not an evaluation record: {exc}") from exc
        if ex.goal not in GOALS or ex.modality not in MODALITIES or not ex.text.strip() or not ex.source:
            raise ValueError(f"{source}:{lineno}: unknown goal/modality or empty text/source")
        out.append(ex)
    return out


def evaluate_held_out(path: Path | None = None) -> HeldOutReport:
    """Encode every held-out description with the shipped model (the one the node uses) and score
    goal and modality; time the encoder alone and with the requirements extraction."""
    from sustainml.workers.logic.encoder.model import get_model
    from sustainml.workers.logic.requirements import extract_text

    model = get_model()
    builtin = BuiltinBackend(model)
    data = load_evaluation_set(path)
    goal_ok: list[bool] = []
    modality_ok: list[bool] = []
    t_enc: list[float] = []
    t_all: list[float] = []
    errors: list[dict[str, Any]] = []
    for ex in data:
        started = time.perf_counter()
        enc = encode(ex.text, "", backend=builtin, model=model)
        middle = time.perf_counter()
        extract_text(ex.text)
        ended = time.perf_counter()
        t_enc.append((middle - started) * 1000.0)
        t_all.append((ended - started) * 1000.0)
        goal_ok.append(enc.goal == ex.goal)
        modality_ok.append(enc.modality == ex.modality)
        if not (goal_ok[-1] and modality_ok[-1]):
            p_true = builtin.predict(ex.text, "").scores.get(ex.goal, 0.0)
            errors.append(
                {
                    "text": ex.text,
                    "goal": ex.goal,
                    "modality": ex.modality,
                    "predicted_goal": enc.goal,
                    "predicted_modality": enc.modality,
                    "p_true_goal": round(p_true, 4),
                    "reason": enc.reason,
                    "style": ex.style,
                    "source": ex.source,
                }
            )
    errors.sort(key=lambda e: (e["p_true_goal"], e["text"]))

    def group(key: str) -> dict[str, tuple[int, float, float]]:
        out: dict[str, tuple[int, float, float]] = {}
        for value in sorted({getattr(ex, key) for ex in data}):
            idx = [i for i, ex in enumerate(data) if getattr(ex, key) == value]
            out[value] = (
                len(idx),
                round(sum(goal_ok[i] for i in idx) / len(idx), 4),
                round(sum(modality_ok[i] for i in idx) / len(idx), 4),
            )
        return out

    n = len(data)
    return HeldOutReport(
        examples=n,
        goal_accuracy=round(sum(goal_ok) / n, 4),
        modality_accuracy=round(sum(modality_ok) / n, 4),
        per_style=group("style"),
        per_modality=group("modality"),
        median_ms_encoder=round(statistics.median(t_enc), 3),
        median_ms_with_extraction=round(statistics.median(t_all), 3),
        errors=errors,
    )


# ------------------------------------------------------------------------------------------------
# any file of descriptions: each answer printed (``sustainml eval encoder --descriptions FILE``)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DescriptionCheck:
    """The shipped model's answer for one description of a user's file, with the expected goal and
    modality when the file gives them (``""`` otherwise)."""

    text: str
    expected_goal: str
    expected_modality: str
    goal: str
    modality: str
    confidence: float
    reason: str
    requirements: list[str]

    @property
    def right(self) -> bool | None:
        """Goal and modality both as expected; ``None`` when the file expects nothing."""
        if not self.expected_goal and not self.expected_modality:
            return None
        return self.goal == (self.expected_goal or self.goal) and self.modality == (
            self.expected_modality or self.modality
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_descriptions(path: Path) -> list[DescriptionCheck]:
    """Encode every description of a JSON-lines file (``{"text"}``, optionally ``"goal"`` and
    ``"modality"`` expected) with the shipped model, and extract its application requirements."""
    from sustainml.workers.logic.encoder.model import get_model
    from sustainml.workers.logic.requirements import extract_text

    model = get_model()
    builtin = BuiltinBackend(model)
    out: list[DescriptionCheck] = []
    for lineno, row in _json_lines(path):
        try:
            text = str(row["text"])
            goal, modality = str(row.get("goal", "")), str(row.get("modality", ""))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{lineno}: not a description record: {exc}") from exc
        if (goal and goal not in GOALS) or (modality and modality not in MODALITIES) or not text.strip():
            raise ValueError(f"{path}:{lineno}: unknown goal/modality or empty text")
        enc = encode(text, "", backend=builtin, model=model)
        out.append(
            DescriptionCheck(
                text=text,
                expected_goal=goal,
                expected_modality=modality,
                goal=enc.goal,
                modality=enc.modality,
                confidence=round(enc.confidence, 4),
                reason=enc.reason,
                requirements=extract_text(text).strings(),
            )
        )
    return out


def render_checks(checks: list[DescriptionCheck]) -> str:
    """One block per description: verdict, answer, confidence, deciding words, requirements."""
    lines: list[str] = []
    for c in checks:
        verdict = {True: "right", False: "WRONG", None: "-"}[c.right]
        expected = ""
        if c.right is False:
            expected = f" (expected {c.expected_goal or '?'} / {c.expected_modality or '?'})"
        lines += [
            f"[{verdict}] {c.goal} / {c.modality}, confidence {c.confidence:.2f}{expected}: {c.text}",
            f"    why: {c.reason}",
            f"    requirements: {', '.join(c.requirements) or 'none found'}",
        ]
    judged = [c.right for c in checks if c.right is not None]
    if judged:
        lines.append(f"\n{sum(judged)} of {len(judged)} right (goal and modality)")
    return "\n".join(lines)
