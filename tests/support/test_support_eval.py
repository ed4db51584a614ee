from __future__ import annotations

import pytest

from apps.support import SupportService, evaluate
from apps.support.quality.evaluation import ranking_metrics


def test_ranking_metrics_match_hand_computed_values() -> None:
    rankings = [["a", "b", "c"], ["b", "a", "c"], ["c", "b", "x", "y", "z", "a"], ["q"]]
    gold = ["a", "a", "a", "a"]
    m = ranking_metrics(rankings, gold, k=5)
    assert m["top1"] == pytest.approx(1 / 4)
    assert m["recall"] == pytest.approx(2 / 4)  # rank 6 and "not found" miss the top 5
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 6 + 0) / 4)


def test_evaluate_on_a_small_labelled_set(bot: SupportService) -> None:
    texts = [
        "Where is my order?",  # exact example: rank 1
        "How do I reset my password?",  # exact example: rank 1
        "Do you sell gift cards?",  # exact example, labelled wrongly on purpose: not rank 1
        "What is the capital of Australia?",  # out of scope
        "Write me a poem about the sea",  # out of scope
    ]
    labels = ["order_status", "reset_password", "invoice", "OOS", "OOS"]
    report = evaluate(bot, texts, labels, oos_label="OOS")
    assert (report.n, report.n_in_scope, report.n_oos) == (5, 3, 2)
    assert report.top1_accuracy == pytest.approx(2 / 3, abs=1e-4)
    assert report.oos_handoff_recall == 1.0
    assert report.false_handoff_rate == 0.0  # all three in-scope rows are confident matches
    assert report.latency_p95_ms >= report.latency_p50_ms > 0
    ranks = bot.decide("Do you sell gift cards?").ranking.keys
    expected_rr = 1 / (ranks.index("invoice") + 1) if "invoice" in ranks else 0.0
    assert report.mrr == pytest.approx((1 + 1 + expected_rr) / 3, abs=1e-4)
