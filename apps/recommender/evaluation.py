"""Leave-last-out evaluation with full ranking, plus a cold-item evaluation.

Protocol (shared/data/README.md): each user's latest event by timestamp (ties: the later
row) is the test item, everything earlier is training data, and every item the user has
not interacted with in training is ranked. HR@k counts users whose test item is in the top
k; NDCG@k gives it ``1/log2(rank + 2)``; coverage is the share of the catalogue that shows
up in anybody's top k.

Cold items: a random share of the test items loses *all* its events from training, the
model is fitted again, and only users whose test item is one of them are scored, once in
the full ranking and once ranked among the cold items alone (random: k / #cold).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aigc_apps.metrics import coverage, hit_rate, ndcg, rank_of

from .collaborative import EASE, Popularity
from .dataset import Catalog, Interactions

RankFn = Callable[[int, np.ndarray, np.ndarray, int, np.ndarray | None], np.ndarray]


def metrics(
    ranked: Sequence[Any], targets: Sequence[int] | np.ndarray, n_items: int, k: int = 10
) -> dict[str, Any]:
    return {
        f"hr@{k}": round(hit_rate(ranked, targets, k), 4),
        f"ndcg@{k}": round(ndcg(ranked, targets, k), 4),
        "coverage": round(coverage(ranked, n_items, k), 4),
        "users": len(targets),
    }


def per_user(
    ranked: Sequence[Any], targets: Sequence[int] | np.ndarray, k: int = 10
) -> dict[str, np.ndarray]:
    """Each user's hit@k (0/1) and NDCG@k, in ``targets`` order.

    Their means are :func:`metrics`' HR@k and NDCG@k; kept per user so that two models
    scored on the same users can be compared pairwise (see ``apps.recommender.selection``)."""
    if len(ranked) != len(targets):
        raise ValueError(f"need one ranking per target (got {len(ranked)}, {len(targets)})")
    ranks = np.array(
        [rank_of(list(r)[:k], t) for r, t in zip(ranked, targets, strict=True)], dtype=np.int64
    )
    gains = np.where(ranks > 0, 1.0 / np.log2(np.maximum(ranks, 1) + 1), 0.0)
    return {f"hit@{k}": (ranks > 0).astype(np.float64), f"ndcg@{k}": gains}


def _top(scores: np.ndarray, k: int, exclude: np.ndarray) -> np.ndarray:
    """Top-k indices; ties go to the lower index (deterministic baselines)."""
    s = scores.astype(np.float64, copy=True)
    s[exclude] = -np.inf
    return np.argsort(-s, kind="stable")[:k]


def baseline_lists(
    train: Interactions, users: np.ndarray, k: int = 10, l2: float = 100.0, ease: bool = True
) -> dict[str, list[np.ndarray]]:
    """Top-k lists of the popularity and EASE baselines for ``users`` (seen items excluded)."""
    hist = train.histories()
    pop = Popularity().fit(train).counts
    lists = {"popularity": [_top(pop, k, hist[u]) for u in users]}
    if ease:
        model = EASE(l2).fit(train)
        lists["ease"] = [_top(model.scores(hist[u]), k, hist[u]) for u in users]
    return lists


@dataclass
class Split:
    train: Interactions
    users: np.ndarray
    targets: np.ndarray


def leave_last_out(log: Interactions) -> Split:
    train, users, targets = log.leave_last_out(min_history=1)
    return Split(train, users, targets)


def cold_split(log: Interactions, fraction: float = 0.2, seed: int = 0) -> tuple[Split, np.ndarray]:
    """Leave-last-out where a random ``fraction`` of the test items loses all its events."""
    split = leave_last_out(log)
    rng = np.random.default_rng(seed)
    distinct = np.unique(split.targets)
    n = max(1, round(fraction * len(distinct)))
    cold = np.sort(rng.choice(distinct, size=min(n, len(distinct)), replace=False))
    train = split.train.subset(~np.isin(split.train.item, cold))
    keep = np.isin(split.targets, cold)
    return Split(train, split.users[keep], split.targets[keep]), cold


def run_evaluation(
    fit: Callable[[Catalog, Interactions], Any],
    catalog: Catalog,
    log: Interactions,
    *,
    k: int = 10,
    cold_fraction: float = 0.2,
    seed: int = 0,
    baselines: bool = True,
) -> dict[str, Any]:
    """Fit with ``fit(catalog, train)`` (returns a recommender) and report the protocol's figures.

    The recommender must offer ``rank_history(history, times, k, exclude) -> item indices``.
    ``_model`` and ``_split`` come back too (pop them before printing): ranking the split's
    users again with ``_rank_users`` gives :func:`per_user` scores for paired comparisons.
    """
    split = leave_last_out(log)
    report: dict[str, Any] = {
        "k": k,
        "items": len(catalog),
        "users": log.n_users,
        "events": len(log),
    }
    if baselines:
        lists = baseline_lists(split.train, split.users, k)
        report["baselines"] = {
            name: metrics(r, split.targets, len(catalog), k) for name, r in lists.items()
        }
    start = time.perf_counter()
    model = fit(catalog, split.train)
    report["train_seconds"] = round(time.perf_counter() - start, 1)
    ranked = _rank_users(model, split, k)
    report["model"] = metrics(ranked, split.targets, len(catalog), k)
    if cold_fraction > 0:
        report["cold"] = cold_evaluation(fit, catalog, log, k=k, fraction=cold_fraction, seed=seed)
    report["_model"] = model
    report["_split"] = split
    return report


def _rank_users(
    model: Any, split: Split, k: int, only: np.ndarray | None = None
) -> list[np.ndarray]:
    hist = split.train.histories()
    b = split.train.bounds()
    ranked = []
    for u in split.users:
        items, times = hist[u], split.train.ts[b[u] : b[u + 1]]
        ranked.append(model.rank_history(items, times, k=k, exclude=items, only=only))
    return ranked


def cold_evaluation(
    fit: Callable[[Catalog, Interactions], Any],
    catalog: Catalog,
    log: Interactions,
    *,
    k: int = 10,
    fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    split, cold = cold_split(log, fraction, seed)
    if len(split.users) == 0:
        return {"users": 0, "note": "no test item could be made cold"}
    model = fit(catalog, split.train)
    full = metrics(_rank_users(model, split, k), split.targets, len(catalog), k)
    among = _rank_users(model, split, k, only=cold)
    pop = baseline_lists(split.train, split.users, k, ease=False)["popularity"]
    n = len(cold)
    return {
        "cold_items": int(n),
        "users": len(split.users),
        f"hr@{k}": full[f"hr@{k}"],
        f"ndcg@{k}": full[f"ndcg@{k}"],
        f"hr@{k}_among_cold": round(hit_rate(among, split.targets, k), 4),
        f"ndcg@{k}_among_cold": round(ndcg(among, split.targets, k), 4),
        f"random_hr@{k}_among_cold": round(min(1.0, k / n), 4),
        f"popularity_hr@{k}": metrics(pop, split.targets, len(catalog), k)[f"hr@{k}"],
    }
