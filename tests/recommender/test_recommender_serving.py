"""Serving: for-user, cold start (new item by text, new user by events or free text), similar,
explanations and save/load, on a small clustered catalogue with the hashing encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aigc_apps.errors import ModelNotFoundError, NotFoundError
from apps.recommender.content import HashingEncoder
from apps.recommender.dataset import Catalog, Interactions
from apps.recommender.evaluation import run_evaluation
from apps.recommender.recommender import Recommender, RecommenderConfig


def cluster_of(item_id: str) -> str:
    return item_id.split("-")[-1] if item_id.startswith("new-") else item_id.split("-")[0]


def test_known_user_gets_their_cluster_without_seen_items(fitted: Recommender) -> None:
    user = "user0"  # cluster 0: space
    seen = {fitted.catalog.ids[i] for i in fitted.user_events(user)[0]}
    result = fitted.recommend(user, k=5)
    ids = [r.item_id for r in result.items]
    assert len(ids) == 5 and not set(ids) & seen
    assert all(cluster_of(i) == "space" for i in ids[:3])
    included = fitted.recommend(user, k=40, exclude_seen=False)
    assert seen & {r.item_id for r in included.items}
    scores = [r.score for r in result.items if not r.item_id.startswith("new-")]
    assert scores == sorted(scores, reverse=True)


def test_new_user_by_a_few_events(fitted: Recommender) -> None:
    result = fitted.recommend(
        None, events=[("cooking-1", 10.0), ("cooking-2", 20.0), ("ghost", 30.0)], k=4
    )
    assert [cluster_of(r.item_id) for r in result.items[:3]] == ["cooking"] * 3
    assert result.note is not None and "1 events name items the model does not know" in result.note


def test_new_user_by_free_text_and_cold_item(fitted: Recommender) -> None:
    # close enough to the new arrival's text to clear the cold bar (hashing: 0.55)
    text = "jazz music, saxophone and piano albums"
    result = fitted.recommend("stranger", text=text, k=5, explain=True)
    ids = [r.item_id for r in result.items]
    assert all(cluster_of(i) == "jazz" for i in ids[:3])
    assert "new-jazz" in ids  # the cold item is reachable by its text alone
    cold = next(r for r in result.items if r.item_id == "new-jazz")
    assert any("new item" in why for why in cold.reasons)
    assert any("stated interest" in why for why in cold.reasons)


def test_unknown_user_falls_back_to_popular_and_says_so(fitted: Recommender) -> None:
    result = fitted.recommend("nobody", k=3)
    assert result.note == "unknown user 'nobody': showing popular items"
    counts = fitted.builder.popularity.counts
    top = [fitted.catalog.index[r.item_id] for r in result.items]
    assert counts[top[0]] == counts.max()


def test_explanations_name_past_items_and_tags(fitted: Recommender) -> None:
    result = fitted.recommend("user1", k=2, explain=True)
    reasons = " ".join(result.items[0].reasons)
    assert "people who engaged with" in reasons and "cooking" in reasons


def test_similar_items_and_unknown_item(fitted: Recommender) -> None:
    sims = fitted.similar("jazz-3", k=4)
    assert [cluster_of(r.item_id) for r in sims] == ["jazz"] * 4
    assert "jazz-3" not in {r.item_id for r in sims}
    everything = fitted.similar("jazz-3", k=500)  # more than the catalogue holds
    assert len(everything) == len(fitted.catalog) - 1
    assert "jazz-3" not in {r.item_id for r in everything}
    assert all(np.isfinite(r.score) for r in everything)
    with pytest.raises(ValueError, match="k must be at least 1"):
        fitted.similar("jazz-3", k=0)
    cold = fitted.similar("new-space", k=3)
    assert all(cluster_of(r.item_id) == "space" for r in cold)
    with pytest.raises(NotFoundError, match="unknown item 'nope'"):
        fitted.similar("nope")


def test_save_and_load_give_the_same_lists(fitted: Recommender, tmp_path: Path) -> None:
    fitted.save_pretrained(tmp_path / "m")
    loaded = Recommender.from_pretrained(tmp_path / "m", encoder=HashingEncoder())
    for user in ("user0", "user4"):
        assert fitted.recommend(user).to_dict() == loaded.recommend(user).to_dict()
    with pytest.raises(ModelNotFoundError):
        Recommender.from_pretrained(tmp_path / "empty")


def test_rank_history_restricted_to_cold_items(fitted: Recommender) -> None:
    only = np.array([fitted.catalog.index[f"new-{c}"] for c in ("space", "cooking", "jazz")])
    hist = np.array([fitted.catalog.index["cooking-1"], fitted.catalog.index["cooking-2"]])
    top = fitted.rank_history(hist, np.array([1.0, 2.0]), k=3, exclude=hist, only=only)
    assert fitted.catalog.ids[top[0]] == "new-cooking" and set(top) == set(only)


def test_evaluation_beats_popularity_on_clustered_data(
    clustered_data: tuple[Catalog, Interactions],
) -> None:
    catalog, log = clustered_data
    config = RecommenderConfig(encoder="hashing", interest=None)
    report = run_evaluation(
        lambda c, t: Recommender(config).fit(c, t, encoder=HashingEncoder()),
        catalog,
        log,
        k=2,
        cold_fraction=0.5,
    )
    assert report["model"]["hr@2"] > report["baselines"]["popularity"]["hr@2"]
    assert report["model"]["hr@2"] >= 0.5
    cold = report["cold"]
    assert cold["users"] > 0 and cold["hr@2_among_cold"] > cold["random_hr@2_among_cold"]
    assert cold["hr@2"] > cold["popularity_hr@2"]
