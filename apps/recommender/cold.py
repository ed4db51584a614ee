"""The bar an item with no interactions must clear to enter a user's top-k.

A cold item (nobody has interacted with it yet, e.g. one added through the API after
training) has no collaborative signal, so the ranker cannot tell a relevant new arrival from
junk: both look "new". Cold start is kept, but only through the item's text: a cold item
may be shown to a user only when its text is similar enough to something that user engaged
with (cosine similarity of the content vectors, best over the user's recent history) or to
the free-text interest they stated. The bar is ``RecommenderConfig.cold_threshold``.

How the default was chosen (rule written before the run, ``python
benchmarks/select_cold_threshold.py --data ../shared/data/movielens-small``): MovieLens-small
(the recommender benchmark's data), validation protocol of ``benchmarks/select_defaults.py``
(each user's latest interaction, the test item, dropped; the second-to-last is the
validation target; trained on earlier ones), 20% of the distinct validation targets made
cold (all their training events removed, as the benchmark's cold evaluation does), every
validation user ranked over the full catalogue; thresholds 0.00 to 0.95 in steps of 0.05;
the threshold with the highest NDCG@10 wins, ties broken toward the higher threshold. The
result, 0.65, is :data:`DEFAULT_COLD_THRESHOLD` (figures beside it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .content import ContentModel
    from .features import UserContext

# Chosen on MovieLens-small validation data with the default content encoder (minilm-l6; see
# the module docstring and benchmarks/select_cold_threshold.py, run 2026-12-07): NDCG@10
# 0.0753 for every threshold from 0.00 to 0.65 (the tie goes to 0.65), 0.0748 at 0.70, 0.0725
# from 0.85 on (no cold item shown at all); at 0.65, 56% of lists hold a cold item (58% with
# no bar). The figure is the encoder's: another encoder's similarities need their own run.
DEFAULT_COLD_THRESHOLD = 0.65
# The same rule with ``--encoder hashing`` (2026-12-07): NDCG@10 0.0611 for every threshold
# from 0.00 to 0.55, 0.0606 at 0.60, 0.0587 from 0.80 on.
ENCODER_THRESHOLDS = {"hashing": 0.55}


def default_threshold(encoder: str | None) -> float:
    """The bar chosen on validation data for ``encoder`` (the default encoder's for one not
    measured)."""
    return ENCODER_THRESHOLDS.get(encoder or "", DEFAULT_COLD_THRESHOLD)


RECENT = 50  # history items a cold item is compared with (the latest ones)
STATED = -1  # ``nearest`` of a match made by the free-text interest


def cold_matches(
    content: ContentModel | None, ctx: UserContext, items: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``items``: its best text similarity to the user (their latest
    :data:`RECENT` history items and their stated interest) and what it matched: the
    catalogue index of the history item, or :data:`STATED`. No text model: no similarity."""
    items = np.asarray(items, np.int64)
    sim = np.full(len(items), -np.inf, dtype=np.float32)
    nearest = np.full(len(items), STATED, dtype=np.int64)
    if content is None or len(items) == 0:
        return sim, nearest
    V = content.V
    history = np.asarray(ctx.history, np.int64)[-RECENT:]
    if len(history):
        pairs = V[items] @ V[history].T
        best = np.argmax(pairs, axis=1)
        sim = pairs[np.arange(len(items)), best].astype(np.float32)
        nearest = history[best]
    if ctx.text_vec is not None:
        stated = V[items] @ ctx.text_vec
        better = stated > sim
        sim = np.where(better, stated, sim).astype(np.float32)
        nearest = np.where(better, STATED, nearest)
    return sim, nearest


def cold_reason(title: str | None, similarity: float) -> str:
    """Why a cold item is shown: what its text is similar to (``title`` None: the stated
    interest)."""
    if title is None:
        return f"new item matching your stated interest (text similarity {similarity:.2f})"
    return f"new item similar to {title!r} you engaged with (text similarity {similarity:.2f})"
