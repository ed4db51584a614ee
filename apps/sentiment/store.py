"""Tables of the sentiment monitor: scored records, their topics, watch-list topics, alerts.

A record's identity (unique constraints on exactly these keys, so a re-run of the same
file is a no-op even when two ingesters race):

- ``(source, ext_id)``: an id names one document within its feed; another feed may use the
  same ids for its own documents (reuters ``1`` is not headlines ``1``);
- ``(source, text_hash)``: a feed that repeats a text (normalised: case and spacing) repeats
  the record;
- ``(ext_id, text_hash)``: the same id with the same text from another source is a re-sent
  copy, not a new document. Without an id, the same text from two sources is two records
  (two outlets reporting one story both count).

Timestamps are stored in UTC; SQLite hands them back naive, so readers go through
:func:`as_utc`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from aigc_apps.migrations import StoreSchema
from aigc_apps.store import Database, app_metadata, as_utc, utcnow

from .constants import APP


class Base(DeclarativeBase):
    metadata = app_metadata()


class Record(Base):
    """One scored text from a feed."""

    __tablename__ = "sentiment_records"
    __table_args__ = (
        UniqueConstraint("source", "text_hash", name="uq_sentiment_records_text"),
        UniqueConstraint("source", "ext_id"),  # sentiment_records_source_ext_id_key
        UniqueConstraint("ext_id", "text_hash"),  # sentiment_records_ext_id_text_hash_key
        Index("ix_sentiment_records_ts", "ts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(200), default="")
    ext_id: Mapped[str | None] = mapped_column(String(500), nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64))
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    label: Mapped[str] = mapped_column(String(32))
    p_negative: Mapped[float] = mapped_column(Float)
    p_neutral: Mapped[float] = mapped_column(Float)
    p_positive: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)  # p_positive - p_negative, in [-1, 1]
    model: Mapped[str] = mapped_column(String(200), default="")

    topics: Mapped[list[RecordTopic]] = relationship(
        back_populates="record", cascade="all, delete-orphan"
    )


class RecordTopic(Base):
    """A topic a record was assigned to, and how (keyword, embedding or model)."""

    __tablename__ = "sentiment_record_topics"
    __table_args__ = (Index("ix_sentiment_record_topics_topic", "topic"),)

    record_id: Mapped[int] = mapped_column(
        ForeignKey("sentiment_records.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(String(200), primary_key=True)
    method: Mapped[str] = mapped_column(String(32))
    similarity: Mapped[float] = mapped_column(Float, default=1.0)

    record: Mapped[Record] = relationship(back_populates="topics")


class Topic(Base):
    """A watch-list topic: keywords/entities plus optional alert-rule overrides (JSON)."""

    __tablename__ = "sentiment_topics"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    keywords_json: Mapped[str] = mapped_column(Text, default="[]")
    rule_json: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def keywords(self) -> list[str]:
        return list(json.loads(self.keywords_json))

    @property
    def rule(self) -> dict[str, Any]:
        return dict(json.loads(self.rule_json or "{}"))


class Alert(Base):
    """A fired alert: one per topic and bucket, whatever signals fired in it."""

    __tablename__ = "sentiment_alerts"
    __table_args__ = (
        UniqueConstraint("topic", "bucket_start", name="uq_sentiment_alerts_bucket"),
        Index("ix_sentiment_alerts_next_attempt_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(200))
    signals: Mapped[str] = mapped_column(String(100))  # "negative_share", "volume" or both
    bucket_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    bucket_seconds: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    negative_share: Mapped[float] = mapped_column(Float)
    baseline_share: Mapped[float] = mapped_column(Float)
    baseline_count: Mapped[float] = mapped_column(Float)
    z_share: Mapped[float] = mapped_column(Float)
    z_volume: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    # a surge pooled over this many buckets ends with bucket_start (count covers them all)
    window_buckets: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    webhook_status: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # the webhook outbox (aigc_apps.webhooks): next_attempt_at NULL = nothing to deliver
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                             nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)

    @property
    def window_start(self) -> datetime:
        """Where the pooled buckets begin: the records behind the alert are from here to
        the end of ``bucket_start``'s bucket."""
        pooled = max(1, self.window_buckets or 1) - 1
        return as_utc(self.bucket_start) - timedelta(seconds=pooled * self.bucket_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "signals": self.signals.split(","),
            "bucket_start": as_utc(self.bucket_start).isoformat(),
            "bucket_seconds": self.bucket_seconds,
            "window_start": self.window_start.isoformat(),
            "window_buckets": self.window_buckets,
            "count": self.count,
            "negative_share": round(self.negative_share, 4),
            "baseline_share": round(self.baseline_share, 4),
            "baseline_count": round(self.baseline_count, 2),
            "z_share": round(self.z_share, 2),
            "z_volume": round(self.z_volume, 2),
            "message": self.message,
            "created_at": as_utc(self.created_at).isoformat(),
            "webhook_status": self.webhook_status,
        }




SCHEMA = StoreSchema.beside(__file__, APP, Base.metadata, ("sentiment_records", "sentiment_topics"))


def open_db(url: str | None = None) -> Database:
    """The app's database (``--db URL`` or the workspace default), schema up to date."""
    return Database.open(SCHEMA, url)
