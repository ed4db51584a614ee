"""What the bot does with labelled customer questions, and the handoff threshold that keeps
wrong answers rare.

A wrong answer costs more than a handoff: a customer who is told the warranty terms when
they asked how to return a jacket acts on them, while one who is handed off waits a little.
So the threshold is chosen on labelled questions in customers' own words (a validation
set, never the test set) as the one that answers the most of them rightly while at most
``max_wrong`` of the in-scope ones get a wrong answer.

Each question ends in one of four outcomes: ``right`` (the template of its intent),
``wrong`` (another template, or a past dialogue's answer), ``generated`` (below the
threshold a document matched, and the answer is written from it and fact-checked: it
cannot be scored against a template, so it is reported apart, and ``wrong_or_generated``
gives the conservative reading that counts it as wrong), and ``handoff``. Out-of-scope
questions (label ``oos``) are right only when handed off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ..answers.answerer import Answerer, HasAnswerer, answerer_of
from ..answers.calibration import Calibration, fit_logistic
from ..answers.pii import strip_placeholders
from ..answers.reply import clean_question
from ..knowledge.retrieval import Ranking

OOS = "oos"
OUTCOMES = ("right", "wrong", "generated", "handoff")


@dataclass(frozen=True)
class Scored:
    """One question before the threshold: the bot's confidence, whether it would answer
    from a template at a low enough threshold (and whether rightly), and its fallback."""

    label: str
    confidence: float
    template: bool  # a template (or dialogue pair) would be sent above the threshold
    correct: bool  # ... and it is the one for ``label``
    fallback: str  # below the threshold: "generated" (a document matches) or "handoff"
    top_key: str | None
    score: float = 0.0  # the top intent's score and its lead over the runner-up, which
    margin: float = 0.0  # the confidence is a function of

    def outcome(self, threshold: float) -> str:
        if self.template and self.confidence >= threshold:
            if self.label == OOS:
                return "wrong"
            return "right" if self.correct else "wrong"
        if self.label == OOS:
            return "right" if self.fallback == "handoff" else "generated"
        return self.fallback


def embed_questions(bot: Answerer | HasAnswerer, texts: Sequence[str]) -> np.ndarray:
    """The questions' embeddings as ``ask`` computes them (masked, in one batch)."""
    return answerer_of(bot).encoder.encode([strip_placeholders(clean_question(t)) for t in texts])


def score_questions(
    bot: Answerer | HasAnswerer,
    texts: Sequence[str],
    labels: Sequence[str],
    vecs: np.ndarray | None = None,
) -> list[Scored]:
    """Each question decided as ``ask`` would, with the threshold set aside (nothing is
    stored); ``vecs`` from :func:`embed_questions` when the caller scores them again. ``bot``
    is an answerer or the service's (one knowledge generation scores every question)."""
    answerer = answerer_of(bot)
    clean = [clean_question(t) for t in texts]
    if vecs is None:
        vecs = embed_questions(answerer, texts)
    cal = answerer.calibration
    saved, cal.threshold = cal.threshold, float("-inf")
    try:
        scored = []
        for text, vec, label in zip(clean, vecs, labels, strict=True):
            d = answerer.decide(text, vec=vec)
            chunks = answerer.kb.search_chunks(vec, 1)
            has_doc = bool(chunks) and chunks[0][1] >= answerer.doc_threshold
            key = d.ranking.keys[0] if d.ranking.keys else None
            entry = d.entry if d.path == "template" else None
            intent = entry.intent if entry is not None else None
            scored.append(
                Scored(
                    label=label,
                    confidence=float(cal.confidence(d.ranking)),
                    template=d.path == "template",
                    correct=intent is not None and intent == label,
                    fallback="generated" if has_doc else "handoff",
                    top_key=key,
                    score=d.ranking.scores[0] if d.ranking.scores else 0.0,
                    margin=d.ranking.margin,
                )
            )
    finally:
        cal.threshold = saved
    return scored


@dataclass
class Shares:
    """Outcome shares at one threshold: in scope (of in-scope questions) and out of scope."""

    threshold: float
    n_in_scope: int
    n_oos: int
    right: float
    wrong: float
    wrong_or_generated: float
    generated: float
    handoff: float
    top1: float  # before the threshold: the top intent is the question's
    oos_handoff: float | None
    oos_answered: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def shares(scored: Sequence[Scored], threshold: float) -> Shares:
    inside = [s for s in scored if s.label != OOS]
    oos = [s for s in scored if s.label == OOS]
    counts = {o: 0 for o in OUTCOMES}
    for s in inside:
        counts[s.outcome(threshold)] += 1
    n = max(1, len(inside))
    handed = [s.outcome(threshold) == "right" for s in oos]
    return Shares(
        threshold=threshold,
        n_in_scope=len(inside),
        n_oos=len(oos),
        right=counts["right"] / n,
        wrong=counts["wrong"] / n,
        wrong_or_generated=(counts["wrong"] + counts["generated"]) / n,
        generated=counts["generated"] / n,
        handoff=counts["handoff"] / n,
        top1=sum(s.top_key == s.label for s in inside) / n,
        oos_handoff=float(np.mean(handed)) if oos else None,
        oos_answered=1.0 - float(np.mean(handed)) if oos else None,
    )


def refit_confidence(scored: Sequence[Scored], cal: Calibration) -> list[Scored]:
    """Fit the confidence on labelled questions (the top score and the margin, logistic:
    is the template sent right? out-of-scope ones never are), returning the questions
    rescored; ``cal`` keeps its own weights when the questions hold one outcome only."""
    candidates = [s for s in scored if s.template]
    y = np.array([s.correct and s.label != OOS for s in candidates], dtype=float)
    if len(candidates) < 5 or min(y.sum(), len(y) - y.sum()) < 2:
        return list(scored)
    x = np.array([[s.score, s.margin] for s in candidates])
    w = fit_logistic(x, y)
    cal.w_score, cal.w_margin, cal.bias = float(w[0]), float(w[1]), float(w[2])
    return with_confidence(scored, cal)


def with_confidence(scored: Sequence[Scored], cal: Calibration) -> list[Scored]:
    """``scored`` with confidences from ``cal`` (the decisions do not depend on it)."""
    ranking = Ranking(["a", "b"], [0.0, 0.0])
    out = []
    for s in scored:
        ranking.scores = [s.score, s.score - s.margin]
        out.append(replace(s, confidence=float(cal.confidence(ranking))))
    return out


def choose_threshold(scored: Sequence[Scored], max_wrong: float = 0.03) -> Shares:
    """The threshold with the most right answers among those whose wrong answers stay
    within ``max_wrong`` of the in-scope questions; of equally good ones the highest (more
    handoffs of out-of-scope questions, same right answers)."""
    candidates = sorted({s.confidence for s in scored} | {float("inf")})
    best: Shares | None = None
    for t in candidates:
        got = shares(scored, t)
        if got.wrong > max_wrong + 1e-12:
            continue
        if best is None or got.right >= best.right:
            best = got
    assert best is not None  # the infinite threshold answers nothing
    return best
