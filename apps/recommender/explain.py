"""Human-readable reasons for a recommendation: which past items and tags it matches.

Each past item's pull on the candidate is its EASE weight plus its sequence (transition)
weight plus its text similarity, each scaled to the strongest in the user's recent history,
so the named items are the ones that actually moved the score.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .ranker import UserContext
    from .recommender import Recommender


def _scaled(x: np.ndarray) -> np.ndarray:
    top = float(np.abs(x).max()) if len(x) else 0.0
    return x / top if top > 0 else x


def reasons_for(
    rec: Recommender, ctx: UserContext, items: Sequence[int], sig: dict[str, np.ndarray],
    recent: int = 20,
) -> list[list[str]]:
    """Reasons for each of ``items``; what depends only on the user is computed once."""
    b = rec.builder
    h = np.asarray(ctx.history, np.int64)[-recent:]
    js = np.asarray(items, np.int64)
    # transitions are symmetric: row j, columns h is each past item's pull on j
    trans = np.asarray(b.transitions.T[js][:, h].todense()) if len(h) and len(js) else None
    seen = Counter(t for i in h for t in rec.catalog.tags[i])
    recent_pop = sig["pop_30d"]
    hot = float(np.quantile(recent_pop, 0.99)) if len(recent_pop) else float("inf")
    return [
        _reasons(rec, ctx, int(j), sig, h, None if trans is None else trans[n], seen, hot)
        for n, j in enumerate(js)
    ]


def _reasons(
    rec: Recommender, ctx: UserContext, j: int, sig: dict[str, np.ndarray], h: np.ndarray,
    trans: np.ndarray | None, seen: Counter[str], hot: float,
) -> list[str]:
    catalog, b = rec.catalog, rec.builder
    out: list[str] = []
    if ctx.text_vec is not None and sig["text_query"][j] > 0:
        out.append(f"matches your stated interest (text similarity {sig['text_query'][j]:.2f})")
    if len(h) and trans is not None:
        pull = _scaled(b.ease.pair(h, j)) + _scaled(trans)
        if b.content is not None:
            pull = pull + 0.5 * _scaled(b.content.V[h] @ b.content.V[j])
        best = [int(h[i]) for i in np.argsort(-pull, kind="stable")[:2] if pull[i] > 0]
        best = list(dict.fromkeys(best))
        if best:
            out.append(
                "because you engaged with " + " and ".join(repr(catalog.titles[i]) for i in best)
            )
        shared = sorted((t for t in catalog.tags[j] if t in seen), key=lambda t: -seen[t])[:3]
        if shared:
            out.append("shares tags you like: " + ", ".join(shared))
    if b.popularity.counts[j] == 0:
        out.append("new item (no interactions yet), matched by its text")
    elif sig["pop_30d"][j] > 0 and sig["pop_30d"][j] >= hot:
        out.append("popular in the last 30 days")
    return out or ["popular with people who share your history"]
