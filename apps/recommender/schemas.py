"""What the recommender answers, one pydantic model per output, shared by the HTTP API
(``/v1/recommend/...``) and ``aigc recommend for-user|similar --json``.

Renamed on the CLI in this release (the API's names won): ``user`` is ``user_id``; a similar
list is ``{"item_id", "items"}`` where it was ``{"item", "similar"}``. The CLI prints the
0.1.0 keys beside the new ones for one release.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from .recommender import Recommendation


class RecommendedItem(BaseModel):
    item_id: str
    title: str
    score: float = Field(description="Higher is better; compare within one list only.")
    reasons: list[str] = Field(description="Why the item is there (empty if explain=false).")


class Recommendations(BaseModel):
    user_id: str
    items: list[RecommendedItem]
    note: str | None = Field(
        None,
        description="Set when the list is not personalised (a user with no events: "
        "popular items) or some of the user's events were ignored.",
    )


class SimilarItems(BaseModel):
    item_id: str
    items: list[RecommendedItem]


class WithdrawnItem(BaseModel):
    item_id: str
    withdrawn: bool = Field(
        description="True: withdrawn now; false: it already was. Either way it is never "
        "recommended again, until it is posted again."
    )


def items_out(recs: Sequence[Recommendation]) -> list[RecommendedItem]:
    return [
        RecommendedItem(item_id=r.item_id, title=r.title, score=r.score, reasons=r.reasons)
        for r in recs
    ]
