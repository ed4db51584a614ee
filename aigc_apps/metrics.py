"""Classification and ranking metrics shared by the apps and the benchmarks.

One implementation each, so a "macro-F1" or an "HR@10" means the same thing in every
report. Ranking metrics assume one relevant item per query (leave-one-out evaluation, the
gold intent of a question), which is what every app measures.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from aigc_apps.errors import DataError


@dataclass
class ClassificationReport:
    """Accuracy, macro-F1 (over classes that occur), per-class figures and the confusion
    matrix (rows: true label, columns: predicted, in ``labels`` order)."""

    labels: list[str]
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classification_report(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] = ()
) -> ClassificationReport:
    """Metrics from the confusion matrix; ``labels`` fixes the order (others are appended).

    The F1 of a class that is never predicted is 0; a class that neither occurs nor is
    predicted does not count in the macro average.
    """
    if len(y_true) != len(y_pred) or not y_true:
        raise DataError(f"need equal, non-empty label lists (got {len(y_true)}, {len(y_pred)})")
    names = list(labels)
    names += sorted({*y_true, *y_pred} - set(names))
    index = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        matrix[index[t], index[p]] += 1
    per_class: dict[str, dict[str, float]] = {}
    for i, name in enumerate(names):
        tp, predicted, actual = matrix[i, i], matrix[:, i].sum(), matrix[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual),
        }
    present = [n for n in names if matrix[index[n], :].sum() or matrix[:, index[n]].sum()]
    return ClassificationReport(
        labels=names,
        accuracy=float(np.trace(matrix) / matrix.sum()),
        macro_f1=float(np.mean([per_class[n]["f1"] for n in present])),
        per_class=per_class,
        confusion=matrix.tolist(),
        n=len(y_true),
    )


def rank_of(ranked: Sequence[Hashable] | np.ndarray, target: Hashable) -> int:
    """1-based position of ``target`` in ``ranked``, 0 when it is absent."""
    items = list(ranked)
    return items.index(target) + 1 if target in items else 0


def _ranks(
    rankings: Sequence[Any], targets: Sequence[Any] | np.ndarray, k: int | None
) -> np.ndarray:
    if len(rankings) != len(targets):
        raise DataError(f"need one ranking per target (got {len(rankings)}, {len(targets)})")
    ranks = [rank_of(list(r)[:k] if k else r, t) for r, t in zip(rankings, targets, strict=True)]
    return np.asarray(ranks, dtype=np.int64)


def hit_rate(rankings: Sequence[Any], targets: Sequence[Any] | np.ndarray, k: int = 10) -> float:
    """Share of queries whose target is in the top ``k`` (recall@k with one target)."""
    if not len(targets):
        return 0.0
    return float(np.mean(_ranks(rankings, targets, k) > 0))


def ndcg(rankings: Sequence[Any], targets: Sequence[Any] | np.ndarray, k: int = 10) -> float:
    """NDCG@k with one relevant item per query (the ideal DCG is 1)."""
    if not len(targets):
        return 0.0
    ranks = _ranks(rankings, targets, k)
    gains = np.where(ranks > 0, 1.0 / np.log2(np.maximum(ranks, 1) + 1), 0.0)
    return float(gains.mean())


def mrr(
    rankings: Sequence[Any], targets: Sequence[Any] | np.ndarray, k: int | None = None
) -> float:
    """Mean reciprocal rank of the target (0 where it is absent, or below ``k``)."""
    if not len(targets):
        return 0.0
    ranks = _ranks(rankings, targets, k)
    return float(np.where(ranks > 0, 1.0 / np.maximum(ranks, 1), 0.0).mean())


def coverage(rankings: Sequence[Any], n_items: int, k: int = 10) -> float:
    """Share of an ``n_items`` catalogue that appears in at least one top-``k`` list."""
    if n_items <= 0:
        return 0.0
    shown = {item for ranked in rankings for item in list(ranked)[:k]}
    return len(shown) / n_items
