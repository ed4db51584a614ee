"""Calibrated confidence and the handoff threshold, learned from the knowledge base alone.

Each held-out example question is matched against the index with itself left out
(leave-one-out). A logistic model on the top score predicts whether the top intent is
right; that probability is the bot's confidence. (The margin to the runner-up predicts
correctness too, but it is large for any isolated match, out-of-scope ones included, so
it stays out of the handoff decision; ``w_margin`` remains for a custom fit.) The handoff
threshold is the confidence below which only ``target_false_handoff`` of those in-scope
questions fall, so no out-of-scope data is needed to choose it. Examples used to tune the
encoder are not held out (their scores would be inflated); ``finetune`` keeps a
calibration split aside.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..knowledge.retrieval import KnowledgeIndex, Ranking

DEFAULT = {"w_score": 12.0, "w_margin": 0.0, "bias": -7.0}
# Whether confidence weighs the lead over the runner-up: chosen on the validation half of
# data/support/customer_questions.csv (benchmarks/support_faq.py: with the default scoring,
# 96 of 168 questions right at <= 3% wrong, against 73 on the top score alone).
CALIBRATE_ON_MARGIN = True


@dataclass
class Calibration:
    """confidence = sigmoid(w_score * top_score + w_margin * margin + bias)."""

    w_score: float = DEFAULT["w_score"]
    w_margin: float = DEFAULT["w_margin"]
    bias: float = DEFAULT["bias"]
    threshold: float = 0.5
    samples: int = 0
    loo_accuracy: float | None = None
    method: str = "default"

    def confidence(self, ranking: Ranking) -> float:
        if not ranking.scores:
            return 0.0
        z = self.w_score * ranking.scores[0] + self.w_margin * ranking.margin + self.bias
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object] | None) -> Calibration:
        if not data:
            return cls()
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]


def heldout_ids(kb: KnowledgeIndex, max_samples: int = 2000, seed: int = 0) -> list[int]:
    """Example questions whose intent has at least one other example (LOO can be right)."""
    counts = Counter(m.key for m in kb.meta.values() if m.kind == "example")
    ids = sorted(i for i, m in kb.meta.items() if m.kind == "example" and counts[m.key] > 1)
    if len(ids) > max_samples:
        ids = sorted(random.Random(seed).sample(ids, max_samples))
    return ids


def calibrate(
    kb: KnowledgeIndex,
    ids: Sequence[int] | None = None,
    target_false_handoff: float = 0.05,
    margin: bool = False,
) -> Calibration:
    """Fit confidence on leave-one-out matches of ``ids`` and set the handoff threshold;
    ``margin`` lets the lead over the runner-up count too (see ``calibrate_margin``)."""
    indexed = set(kb.questions.ids().tolist())  # one read, not one per id (pgvector)
    ids = [i for i in (ids if ids is not None else heldout_ids(kb)) if i in indexed]
    if len(ids) < 5:
        return Calibration(method="default (too few examples to calibrate)", samples=len(ids))
    vecs = kb.questions.vectors(ids)
    feats, correct = [], []
    for i, vec in zip(ids, vecs, strict=True):
        ranking = kb.rank(vec, exclude=i, text=kb.meta[i].text)
        if not ranking.keys:
            continue
        feats.append([ranking.scores[0], ranking.margin])
        correct.append(int(ranking.keys[0] == kb.meta[i].key))
    x, y = np.asarray(feats), np.asarray(correct)
    cal = Calibration(samples=len(y), loo_accuracy=float(y.mean()) if len(y) else None)
    if len(set(y.tolist())) == 2 and min(y.sum(), len(y) - y.sum()) >= 2:
        if margin:
            w = fit_logistic(x, y)
            cal.w_score, cal.w_margin, cal.bias = float(w[0]), float(w[1]), float(w[2])
            cal.method = "logistic on score and margin (leave-one-out)"
        else:
            w = fit_logistic(x[:, :1], y)
            cal.w_score, cal.w_margin, cal.bias = float(w[0]), 0.0, float(w[1])
            cal.method = "logistic (leave-one-out)"
    else:  # every LOO match right (or wrong): keep the default slope, centre it on the data
        cal.bias = -cal.w_score * float(np.quantile(x[:, 0], 0.5)) if len(x) else cal.bias
        cal.method = "default slope, centred (one class only)"
    conf = np.array([cal.confidence(_fake(s, m)) for s, m in x])
    # Hand off below the confidence that only target_false_handoff of in-scope questions get.
    # (the k-th smallest value, so at most k = target * n questions fall strictly below it).
    ranked = np.sort(conf)
    cal.threshold = float(ranked[int(target_false_handoff * len(ranked))]) if len(conf) else 0.5
    return cal


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 0.1, steps: int = 50) -> np.ndarray:
    """Weights (one per column of ``x``, then the bias) of an L2-regularised logistic model.

    Newton's method on three parameters: exact, and no scikit-learn import (seconds on CLI).
    """
    a = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(a.shape[1])
    reg = np.eye(a.shape[1]) * l2
    reg[-1, -1] = 0.0  # the bias is not shrunk
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -50, 50)))
        grad = a.T @ (p - y) + reg @ w
        hess = (a * (p * (1 - p))[:, None]).T @ a + reg + np.eye(a.shape[1]) * 1e-9
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _fake(score: float, margin: float) -> Ranking:
    return Ranking(["a", "b"], [score, score - margin])
