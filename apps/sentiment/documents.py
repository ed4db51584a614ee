"""Stored documents as analysts read them: the latest ones (of a label, a topic, a period)
and the ones behind an alert.

An alert is stored per topic and bucket, so the documents that drove it are the topic's
records published in that bucket; negatives come first because they are what an analyst
opens the alert for. Lists are ordered by published time then record id, so two documents
stamped in the same second always come back in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import selectinload

from aigc_apps.errors import DataError, NotFoundError
from aigc_apps.store import Database, utcnow

from .constants import ALL
from .store import Alert, Record, RecordTopic, as_utc
from .trends import check_topic

LABELS = ("negative", "neutral", "positive")


@dataclass
class StoredDocument:
    """One stored record with its scores and topics."""

    source: str
    id: str | None
    text: str
    url: str | None
    published_at: datetime
    label: str
    score: float
    probabilities: dict[str, float]
    topics: list[str]
    truncated: bool
    model: str

    @classmethod
    def of(cls, row: Record) -> StoredDocument:
        return cls(
            source=row.source,
            id=row.ext_id,
            text=row.text,
            url=row.url,
            published_at=as_utc(row.ts),
            label=row.label,
            score=round(row.score, 4),
            probabilities={
                "negative": round(row.p_negative, 4),
                "neutral": round(row.p_neutral, 4),
                "positive": round(row.p_positive, 4),
            },
            topics=sorted(t.topic for t in row.topics),
            truncated=row.truncated,
            model=row.model,
        )

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "published_at": self.published_at.isoformat()}


def _fetch(db: Database, stmt: Select[Any]) -> list[StoredDocument]:
    with db.session() as s:
        rows = s.scalars(stmt.options(selectinload(Record.topics))).all()
        return [StoredDocument.of(r) for r in rows]


def _of_topic(stmt: Select[Any], topic: str | None) -> Select[Any]:
    if not topic or topic == ALL:
        return stmt
    return stmt.where(
        Record.id.in_(select(RecordTopic.record_id).where(RecordTopic.topic == topic))
    )


def list_documents(
    db: Database,
    *,
    topic: str | None = None,
    label: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 20,
) -> list[StoredDocument]:
    """Stored documents, newest first; ``topic`` None or ``all``: every record."""
    if label is not None and label not in LABELS:
        raise DataError(f"unknown label {label!r} (use {', '.join(LABELS)})")
    if topic:
        check_topic(db, topic)
    if since is not None and until is not None and until <= since:
        raise DataError(f"until ({until.isoformat()}) is not after since ({since.isoformat()})")
    stmt = _of_topic(select(Record), topic)
    if label is not None:
        stmt = stmt.where(Record.label == label)
    if since is not None:
        stmt = stmt.where(Record.ts >= since)
    if until is not None:
        stmt = stmt.where(Record.ts < until)
    return _fetch(db, stmt.order_by(Record.ts.desc(), Record.id.desc()).limit(limit))


def get_alert(db: Database, alert_id: int) -> Alert:
    with db.session() as s:
        alert = s.get(Alert, alert_id)
    if alert is None:
        raise NotFoundError(f"unknown alert {alert_id} (see GET /v1/sentiment/alerts)")
    return alert


def alert_documents(db: Database, alert_id: int, limit: int = 20) -> list[StoredDocument]:
    """The alert topic's documents in the alert's buckets (all those its surge pooled):
    negatives first, then newest."""
    alert = get_alert(db, alert_id)
    start = alert.window_start
    end = as_utc(alert.bucket_start) + timedelta(seconds=alert.bucket_seconds)
    negative_first = case((Record.label == "negative", 0), else_=1)
    stmt = (
        _of_topic(select(Record), alert.topic)
        .where(Record.ts >= start, Record.ts < end)
        .order_by(negative_first, Record.ts.desc(), Record.id.desc())
        .limit(limit)
    )
    return _fetch(db, stmt)


@dataclass
class StoreActivity:
    """How many documents the store holds, and how many it took in during the last
    ``window``: whether a live pipeline is storing, and how fast, read from the store
    itself (so it counts every worker's writes, whichever broker fed them)."""

    stored: int
    recent: int
    window: timedelta

    @property
    def per_second(self) -> float:
        return self.recent / self.window.total_seconds()


def store_activity(db: Database, window: timedelta) -> StoreActivity:
    """Documents stored in all, and ingested since ``window`` ago (two COUNT queries)."""
    with db.session() as s:
        stored = int(s.scalar(select(func.count()).select_from(Record)) or 0)
        since = utcnow() - window
        recent = int(s.scalar(select(func.count()).select_from(Record)
                              .where(Record.ingested_at >= since)) or 0)
    return StoreActivity(stored, recent, window)
