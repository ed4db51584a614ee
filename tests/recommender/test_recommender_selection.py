"""The validation selection rule with cost counted, on synthetic per-user scores."""

from __future__ import annotations

import numpy as np
import pytest

from apps.recommender.evaluation import metrics, per_user
from apps.recommender.selection import (
    Alternative,
    decide,
    paired_bootstrap_interval,
    rule_text,
)


def _users(n: int = 600, seed: int = 0) -> np.ndarray:
    """NDCG@10-like per-user scores: mostly 0, some hits at various ranks."""
    rng = np.random.default_rng(seed)
    ranks = rng.integers(1, 11, n)
    hit = rng.random(n) < 0.15
    return np.where(hit, 1.0 / np.log2(ranks + 1), 0.0)


def test_per_user_scores_average_to_the_reported_metrics() -> None:
    rng = np.random.default_rng(3)
    ranked = [rng.permutation(50)[:10] for _ in range(40)]
    targets = rng.integers(0, 50, 40)
    users = per_user(ranked, targets, 10)
    report = metrics(ranked, targets, 50, 10)
    assert users["hit@10"].shape == users["ndcg@10"].shape == (40,)
    assert users["hit@10"].mean() == pytest.approx(report["hr@10"], abs=1e-4)
    assert users["ndcg@10"].mean() == pytest.approx(report["ndcg@10"], abs=1e-4)
    first = list(ranked[0])
    one = per_user([first], [first[2]], 10)  # third place: 1 / log2(4)
    assert one["ndcg@10"][0] == pytest.approx(0.5) and one["hit@10"][0] == 1.0
    with pytest.raises(ValueError, match="one ranking per target"):
        per_user(ranked, targets[:3], 10)


def test_a_clear_winner_wins_even_when_it_costs_more() -> None:
    base = _users()
    better = base.copy()
    better[base == 0] = np.where(np.arange((base == 0).sum()) % 4 == 0, 0.5, 0.0)  # more hits
    expensive = Alternative("expensive", better, cost=1700.0)
    cheap = Alternative("cheap", base, cost=300.0)
    for first, second in ((expensive, cheap), (cheap, expensive)):
        d = decide(first, second)
        assert d.winner == "expensive" and d.reason == "better" and not d.tied
        assert d.interval[0] > 0 if first is expensive else d.interval[1] < 0


def test_a_tie_goes_to_the_cheaper_one_in_either_order() -> None:
    a = _users(seed=1)
    b = a.copy()
    # swap a few users' outcomes both ways: a small, noisy difference in a's favour
    rng = np.random.default_rng(2)
    b[rng.choice(np.flatnonzero(a > 0), 12, replace=False)] = 0.0
    b[rng.choice(np.flatnonzero(a == 0), 8, replace=False)] = 0.6
    assert a.mean() > b.mean()
    full = Alternative("full", a, cost=1738.0)
    lora = Alternative("lora", b, cost=326.0)
    for first, second in ((full, lora), (lora, full)):
        d = decide(first, second)
        assert d.tied and d.interval[0] <= 0 <= d.interval[1]
        assert (d.winner, d.reason) == ("lora", "tie, cheaper")


def test_a_tie_at_about_the_same_cost_goes_to_the_higher_mean_then_the_incumbent() -> None:
    a = _users(seed=4)
    b = a.copy()
    b[np.flatnonzero(a > 0)[:3]] = 0.0  # b slightly worse, well inside the noise
    # 95 s is within 10% of 100 s: not cheaper by the rule's margin
    d = decide(Alternative("cheaper-b", b, 95.0), Alternative("a", a, 100.0))
    assert d.tied and (d.winner, d.reason) == ("a", "tie, same cost")
    # identical scores, equal cost: the first one given (the incumbent) stays
    for first, second in (("x", "y"), ("y", "x")):
        d = decide(Alternative(first, a, 50.0), Alternative(second, a.copy(), 50.0))
        assert (d.winner, d.reason, d.interval) == (first, "tie, same cost", (0.0, 0.0))
    # a margin of 0 makes any saving count
    d = decide(Alternative("a", a, 100.0), Alternative("b", b, 95.0), cost_margin=0.0)
    assert (d.winner, d.reason) == ("b", "tie, cheaper")


def test_the_bootstrap_is_seeded_and_covers_the_difference() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(0.3, 0.2, 800)
    b = a - 0.05 + rng.normal(0, 0.1, 800)
    first = paired_bootstrap_interval(a, b, resamples=500, seed=7)
    assert first == paired_bootstrap_interval(a, b, resamples=500, seed=7)
    lo, hi = first
    assert lo < float(np.mean(a - b)) < hi and lo > 0 and hi < 0.1
    narrow = paired_bootstrap_interval(a, b, resamples=500, level=0.5, seed=7)
    assert lo < narrow[0] < narrow[1] < hi
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap_interval(a, b[:-1])
    with pytest.raises(ValueError, match="cost_margin"):
        decide(Alternative("a", a, 1.0), Alternative("b", b, 1.0), cost_margin=1.0)


def test_the_rule_says_its_settings() -> None:
    text = rule_text("NDCG@10", resamples=2000, level=0.95, seed=0, cost_margin=0.1)
    assert "2000 resamples" in text and "95%" in text and "90%" in text and "cheaper" in text
