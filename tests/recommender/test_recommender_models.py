"""Metrics against hand-computed values, the collaborative models, features and the ranker
(the tree export and the scikit-learn conventions: test_recommender_pipeline.py)."""

from __future__ import annotations

import numpy as np
import pytest

from apps.recommender.collaborative import EASE, Popularity, Transitions
from apps.recommender.content import ContentModel, HashingEncoder
from apps.recommender.dataset import Catalog, Interactions
from apps.recommender.evaluation import cold_split, coverage, hit_rate, metrics, ndcg
from apps.recommender.features import FEATURES, FeatureBuilder, UserContext
from apps.recommender.ranker import Ranker


def log_of(events: list[tuple[str, int, float]], n_items: int) -> Interactions:
    users, items, times = zip(*events, strict=True)
    return Interactions.from_events(list(users), list(items), list(times), n_items)


def test_hit_rate_ndcg_coverage_by_hand() -> None:
    ranked = [[3, 1, 2], [5, 4, 0], [7, 8, 9]]
    targets = [1, 0, 6]
    assert hit_rate(ranked, targets, k=3) == pytest.approx(2 / 3)
    # ranks 2 and 3 -> 1/log2(3) + 1/log2(4), averaged over three users
    assert ndcg(ranked, targets, k=3) == pytest.approx((1 / np.log2(3) + 0.5) / 3)
    assert hit_rate(ranked, targets, k=1) == 0.0
    assert coverage(ranked, n_items=20, k=2) == pytest.approx(6 / 20)
    m = metrics(ranked, targets, 20, k=3)
    assert m["hr@3"] == round(2 / 3, 4) and m["users"] == 3


def test_leave_last_out_uses_time_then_row_order() -> None:
    log = log_of([("a", 0, 5.0), ("a", 1, 9.0), ("a", 2, 9.0), ("a", 3, 1.0), ("b", 4, 2.0)], 5)
    train, users, targets = log.leave_last_out()
    assert list(targets) == [2]  # a's tie at t=9 goes to the later row; b has one event
    assert [log.users[u] for u in users] == ["a"]
    assert list(train.histories()[0]) == [3, 0, 1]


def test_cold_split_hides_every_event_of_cold_items() -> None:
    rng = np.random.default_rng(0)
    events = [(f"u{u}", int(rng.integers(0, 20)), float(t)) for u in range(30) for t in range(6)]
    split, cold = cold_split(log_of(events, 20), fraction=0.3)
    assert len(cold) > 0 and not np.isin(split.train.item, cold).any()
    assert np.isin(split.targets, cold).all() and len(split.users) > 0


def test_ease_matches_the_closed_form() -> None:
    log = log_of(
        [("a", 0, 1), ("a", 1, 2), ("b", 1, 1), ("b", 2, 2), ("c", 0, 1), ("c", 2, 2), ("c", 3, 3)],
        5,
    )
    model = EASE(l2=1.0).fit(log)
    x = log.matrix().toarray()[:, :4]  # item 4 has no events: no row
    p = np.linalg.inv(x.T @ x + np.eye(4))
    b = np.eye(4) - p / np.diag(p)
    assert np.allclose(model.B, b, atol=1e-5)
    s = model.scores(np.array([0, 1]))
    assert np.allclose(s[:4], b[0] + b[1], atol=1e-5) and s[4] == 0
    many = model.scores_many(np.array([0, 1]), np.array([[1.0, 1.0], [0.0, 2.0]]))
    assert np.allclose(many[1, :4], 2 * b[1], atol=1e-5)


def test_transitions_and_popularity_windows() -> None:
    log = log_of([("a", 0, 1), ("a", 1, 2), ("a", 2, 3), ("b", 2, 86400 * 10)], 4)
    t = Transitions(window=2).fit(log)
    dense = t.T.toarray()
    assert dense[0, 1] > dense[0, 2] > 0  # one step apart beats two steps apart
    assert dense[0, 3] == 0 and np.allclose(dense, dense.T)
    pop = Popularity().fit(log)
    assert list(pop.counts) == [1, 1, 2, 0]
    assert list(pop.window(86400 * 10, days=1)) == [0, 0, 1, 0]
    assert pop.top(1)[0] == 2 and np.isinf(pop.first_seen[3])


def test_ranker_learns_the_known_order() -> None:
    """The positive is always the row with the largest 'trans_last3'; the ranker must find it."""
    rng = np.random.default_rng(0)
    col = FEATURES.index("trans_last3")
    xs, ys = [], []
    for _ in range(120):
        x = rng.normal(size=(20, len(FEATURES))).astype(np.float32)
        y = np.zeros(20, int)
        y[int(np.argmax(x[:, col]))] = 1
        xs.append(x)
        ys.append(y)
    for kind in ("hgb", "logistic"):
        ranker = Ranker(kind).fit(np.concatenate(xs), np.concatenate(ys))
        test = rng.normal(size=(30, len(FEATURES))).astype(np.float32)
        assert int(np.argmax(ranker.score(test))) == int(np.argmax(test[:, col])), kind


def test_candidates_include_a_cold_item_found_by_text() -> None:
    catalog = Catalog(
        ["s1", "s2", "c1", "c2", "new"],
        [
            "space rockets",
            "space planets",
            "cooking pasta",
            "cooking bread",
            "space rockets planets",
        ],
    )
    log = log_of([("a", 0, 1), ("a", 1, 2), ("b", 2, 1), ("b", 3, 2), ("c", 2, 1)], 5)
    builder = FeatureBuilder(
        EASE(1.0).fit(log),
        Transitions().fit(log),
        Popularity().fit(log),
        ContentModel(HashingEncoder()).fit(catalog),
    )
    sig = builder.signals(UserContext(np.array([0, 1]), np.array([1.0, 2.0])))
    assert sig["is_cold"][4] == 1 and sig["content_profile"][4] > sig["content_profile"][2:4].max()
    cand = builder.candidates(sig, n=2, exclude=np.array([0, 1]))
    assert 4 in cand and 0 not in cand and 1 not in cand
    only = builder.candidates(sig, n=2, only=np.array([4]))
    assert list(only) == [4]


def test_matrix_keeps_each_pairs_strongest_event() -> None:
    log = Interactions.from_events(
        ["u", "u", "u", "v"], [0, 0, 1, 1], [1.0, 2.0, 3.0, 1.0], 3, weights=[1.0, 5.0, 2.0, 1.0]
    )
    assert log.matrix().toarray().tolist() == [[5.0, 2.0, 0.0], [0.0, 1.0, 0.0]]
    plain = log_of([("u", 0, 1.0), ("u", 0, 2.0), ("v", 2, 1.0)], 3)  # no weights: binary
    assert plain.matrix().toarray().tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    assert log.subset(log.item == 1).weight.tolist() == [2.0, 1.0]


def test_event_weight_by_type_and_own_weight() -> None:
    from apps.recommender.dataset import event_weight

    assert event_weight("purchase", None) == 5.0 and event_weight(" View ", 2.0) == 2.0
    assert event_weight("rating", None) == 1.0  # unknown types count like a view
    assert event_weight("purchase", 0.0) == 5.0  # a zero/negative own weight is ignored
    assert event_weight("click", None, {"click": 4.0}) == 4.0
