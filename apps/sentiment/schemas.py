"""What scoring answers, one pydantic model shared by ``POST /v1/sentiment/score`` and
``aigc sentiment score --json``: the same fields, names and rounding on both edges (the
CLI prints the list of :class:`ScoredText`, the API wraps it with the model's name)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from .service import ScoredText as Scored


class Probabilities(BaseModel):
    negative: float
    neutral: float
    positive: float


class TopicHitOut(BaseModel):
    topic: str
    method: str = Field(description="keyword, embedding or model")
    similarity: float


class ScoredText(BaseModel):
    text: str = Field(description="The text scored (cut when over the model's limit).")
    truncated: bool
    label: str = Field(description="negative, neutral or positive")
    probabilities: Probabilities
    score: float = Field(description="p(positive) - p(negative), in [-1, 1].")
    topics: list[TopicHitOut]


class ScoreOut(BaseModel):
    model: str
    results: list[ScoredText] = Field(description="One per text, in order.")


def scored_out(rows: Sequence[Scored]) -> list[ScoredText]:
    """The service's scored texts in the shared shape (rounded as stored records are)."""
    return [ScoredText(**row.to_dict()) for row in rows]
