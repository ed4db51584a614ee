"""Human-readable reasons for a recommendation: which past items and tags it matches.

Each past item's pull on the candidate is its (positive) EASE weight plus its sequence
(transition) weight, each scaled to the strongest in the user's recent history, so the named
items are the ones that actually moved the collaborative score. That tie was learnt from
other people's histories, so the reason says so ("people who engaged with X also engaged
with this"): a cookbook reader offered a jazz book sees why, instead of a claim that the
cookbook and the jazz book are alike. A reason is given only when
it holds: an item with no collaborative tie to the history is named "similar to" a past item
only when their texts are similar above the cold bar, and an item with no interactions is
explained by what its text matched (:mod:`.cold`). Nothing true to say: no reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .cold import STATED, cold_matches, cold_reason

if TYPE_CHECKING:
    from .content import ContentModel
    from .dataset import Catalog
    from .features import FeatureBuilder
    from .ranker import UserContext


@dataclass(frozen=True)
class Evidence:
    """What reasons are read from: the catalogue, the serving models (``builder``: EASE,
    transitions, popularity), the text model and the cold bar. The recommender hands them
    over, so this module needs nothing else of it."""

    catalog: Catalog
    builder: FeatureBuilder
    content: ContentModel | None
    cold_threshold: float


def _scaled(x: np.ndarray) -> np.ndarray:
    top = float(np.abs(x).max()) if len(x) else 0.0
    return x / top if top > 0 else x


def reasons_for(
    ev: Evidence, ctx: UserContext, items: Sequence[int], sig: dict[str, np.ndarray],
    recent: int = 20,
) -> list[list[str]]:
    """Reasons for each of ``items``; what depends only on the user is computed once."""
    b = ev.builder
    h = np.asarray(ctx.history, np.int64)[-recent:]
    js = np.asarray(items, np.int64)
    # transitions are symmetric: row j, columns h is each past item's pull on j
    trans = np.asarray(b.transitions.T[js][:, h].todense()) if len(h) and len(js) else None
    seen = Counter(t for i in h for t in ev.catalog.tags[i])
    recent_pop = sig["pop_30d"]
    hot = float(np.quantile(recent_pop, 0.99)) if len(recent_pop) else float("inf")
    return [
        _reasons(ev, ctx, int(j), sig, h, None if trans is None else trans[n], seen, hot)
        for n, j in enumerate(js)
    ]


def _reasons(
    ev: Evidence, ctx: UserContext, j: int, sig: dict[str, np.ndarray], h: np.ndarray,
    trans: np.ndarray | None, seen: Counter[str], hot: float,
) -> list[str]:
    """Only reasons that hold for ``j``: a past item is named as the cause only when the
    collaborative models tie it to ``j`` (a positive EASE or transition weight), or, by
    text, when the two are similar above the cold bar; a cold item is named by what its
    text matched."""
    catalog, b = ev.catalog, ev.builder
    out: list[str] = []
    if b.popularity.counts[j] == 0:  # no interactions: only its text can be the reason
        sim, nearest = cold_matches(ev.content, ctx, np.array([j]))
        if np.isfinite(sim[0]):
            title = None if nearest[0] == STATED else catalog.titles[int(nearest[0])]
            out.append(cold_reason(title, float(sim[0])))
        return out
    if ctx.text_vec is not None and sig["text_query"][j] > 0:
        out.append(f"matches your stated interest (text similarity {sig['text_query'][j]:.2f})")
    if len(h) and trans is not None:
        ease = b.ease.pair(h, j)
        pull = _scaled(np.maximum(ease, 0)) + _scaled(np.maximum(trans, 0))
        best = list(dict.fromkeys(int(h[i]) for i in np.argsort(-pull, kind="stable")[:2]
                                  if pull[i] > 0))  # fmt: skip
        if best:  # a tie learnt from other people's histories, and said as one
            named = " and ".join(repr(catalog.titles[i]) for i in best)
            out.append(f"people who engaged with {named} also engaged with this")
        elif b.content is not None:
            sims = b.content.V[h] @ b.content.V[j]
            near = int(np.argmax(sims))
            if sims[near] >= ev.cold_threshold:
                out.append(
                    f"similar to {catalog.titles[int(h[near])]!r} you engaged with "
                    f"(text similarity {sims[near]:.2f})"
                )
        shared = sorted((t for t in catalog.tags[j] if t in seen), key=lambda t: -seen[t])[:3]
        if shared:
            out.append("shares tags you like: " + ", ".join(shared))
    if sig["pop_30d"][j] > 0 and sig["pop_30d"][j] >= hot:
        out.append("popular in the last 30 days")
    return out
