"""What the sentiment monitor answers, one pydantic model per output, shared by the HTTP API
(``/v1/sentiment/...``) and the CLI's ``--json``: the same fields, names and rounding on both
edges. Where the API wraps a list in an object, the CLI prints the list of the same items:
``score`` prints :class:`ScoredText` (the API adds the model's name), ``alerts`` prints
:class:`AlertOut` and ``trends`` the non-empty :class:`BucketOut` of every topic (the API
gives each topic's gap-free series).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from .service import ScoredText as Scored
    from .store import Alert
    from .trends import Bucket


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


class AlertOut(BaseModel):
    """A fired alert (``GET /alerts``, ``aigc sentiment alerts --json``)."""

    id: int
    topic: str
    signals: list[str] = Field(description="What fired: negative_share, negative_volume, volume.")
    bucket_start: datetime = Field(description="The bucket in which the surge became clear.")
    bucket_seconds: int
    window_start: datetime = Field(
        description="Start of the first bucket the surge pooled (= bucket_start for one).")
    window_buckets: int = Field(description="How many buckets the surge pooled.")
    count: int = Field(description="Records in the pooled buckets.")
    negative_share: float
    baseline_share: float
    baseline_count: float
    z_share: float
    z_volume: float
    message: str
    created_at: datetime
    webhook_status: str | None


class AlertsOut(BaseModel):
    alerts: list[AlertOut] = Field(description="Newest bucket first.")


class BucketOut(BaseModel):
    """One topic's records in one time bucket (``GET /trends``, ``aigc sentiment trends``)."""

    topic: str = Field(description="The topic (`all`: every record).")
    bucket_start: datetime
    count: int
    negative: int
    neutral: int
    positive: int
    share_negative: float
    mean_score: float


class TrendsOut(BaseModel):
    bucket: str
    bucket_seconds: int
    series: dict[str, list[BucketOut]] = Field(
        description="Per topic (`all`: every record), gap-free buckets, oldest first."
    )


def alerts_out(found: Sequence[Alert]) -> list[AlertOut]:
    return [AlertOut(**a.to_dict()) for a in found]


def fired_json(alerts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts an ingest fired (the engine's dicts) as ``POST /documents``, ``GET /alerts``
    and ``alerts --json`` print them. (``work --json`` reports them as the worker publishes
    them on the alert stream, the alert's own dict.)"""
    return [AlertOut(**a).model_dump(mode="json") for a in alerts]


def series_out(series: Mapping[str, Sequence[Bucket]]) -> dict[str, list[BucketOut]]:
    """Each topic's buckets in the shared shape (rounded as the service rounds them)."""
    return {name: [BucketOut(**b.to_dict()) for b in buckets] for name, buckets in series.items()}
