"""Core metrics against hand-computed values and scikit-learn's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from aigc_apps.errors import DataError
from aigc_apps.metrics import classification_report, coverage, hit_rate, mrr, ndcg, rank_of


def test_classification_report_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    labels = ["negative", "neutral", "positive"]
    y_true = list(rng.choice(labels, 200))
    y_pred = [t if rng.random() < 0.7 else str(rng.choice(labels)) for t in y_true]
    report = classification_report(y_true, y_pred, labels)
    assert report.labels == labels and report.n == 200
    assert report.accuracy == pytest.approx(accuracy_score(y_true, y_pred))
    assert report.macro_f1 == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert sum(map(sum, report.confusion)) == 200


def test_never_predicted_class_scores_zero_and_absent_classes_do_not_count() -> None:
    report = classification_report(["a", "a", "b"], ["a", "a", "a"], ["a", "b", "c"])
    assert report.per_class["b"]["f1"] == 0.0
    assert report.macro_f1 == pytest.approx((0.8 + 0.0) / 2)  # "c" neither occurs nor is said
    with pytest.raises(DataError):
        classification_report([], [])


def test_ranking_metrics_by_hand() -> None:
    rankings = [["x", "y", "z"], ["y", "x", "z"], ["z", "y", "w"]]
    targets = ["x", "x", "x"]  # ranks 1, 2 and absent
    assert [rank_of(r, t) for r, t in zip(rankings, targets, strict=True)] == [1, 2, 0]
    assert hit_rate(rankings, targets, k=1) == pytest.approx(1 / 3)
    assert hit_rate(rankings, targets, k=2) == pytest.approx(2 / 3)
    assert ndcg(rankings, targets, k=2) == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert mrr(rankings, targets) == pytest.approx((1 + 0.5) / 3)
    assert coverage(rankings, n_items=8, k=1) == pytest.approx(3 / 8)
    assert hit_rate([], []) == 0.0
    with pytest.raises(DataError):
        hit_rate([["x"]], ["x", "y"])
