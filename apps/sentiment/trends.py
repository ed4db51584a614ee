"""Aggregation of scored records per topic and time bucket.

Buckets are aligned to the Unix epoch (a 1h bucket starts on the hour, UTC) and series are
filled with empty buckets, so a quiet hour reads as zero volume rather than disappearing,
which matters to the volume alert. The pseudo-topic ``all`` covers every record.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from aigc_apps.errors import DataError, NotFoundError
from aigc_apps.store import Database, utcnow

from .constants import ALL
from .store import Record, RecordTopic, Topic, as_utc

# A series longer than this (about 2.3 years of hourly buckets) is cut to its newest part:
# one stray record stamped 1970 must not make every alert check build half a million buckets.
MAX_BUCKETS = 20_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``1h``, ``2d``, ``1w``."""
    found = _DURATION.match(str(text))
    if not found or float(found.group(1)) <= 0:
        raise DataError(f"cannot read duration {text!r} (use e.g. 15m, 1h, 1d)")
    try:
        return timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2).lower()])
    except OverflowError:
        raise DataError(f"duration {text!r} is too long") from None


def parse_since(text: str, now: datetime | None = None, what: str = "--since") -> datetime:
    """An ISO date/time (UTC if no zone) or a duration back from now (``24h``, ``7d``);
    ``what`` names the option or field in the error."""
    if _DURATION.match(text):
        try:
            return (now or utcnow()) - parse_duration(text)
        except OverflowError:
            raise DataError(f"{what} {text!r} reaches back before year 1") from None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"cannot read {what} {text!r} (use 2024-05-01T09:00 or 24h)") from None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


@dataclass
class Bucket:
    """Counts for one topic in one time bucket."""

    topic: str
    start: datetime
    seconds: int
    count: int = 0
    negative: int = 0
    neutral: int = 0
    positive: int = 0
    score_sum: float = 0.0

    @property
    def share_negative(self) -> float:
        return self.negative / self.count if self.count else 0.0

    @property
    def share_positive(self) -> float:
        return self.positive / self.count if self.count else 0.0

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "bucket_start": self.start.isoformat(),
            "count": self.count,
            "negative": self.negative,
            "neutral": self.neutral,
            "positive": self.positive,
            "share_negative": round(self.share_negative, 4),
            "mean_score": round(self.mean_score, 4),
        }


Point = tuple[datetime, str, str, float]  # (timestamp, topic, label, score)


def known_topics(db: Database) -> list[str]:
    """Watch-list topics plus any topic that records carry (e.g. from a topic model)."""
    with db.session() as s:
        names = set(s.scalars(select(Topic.name)))
        names |= set(s.scalars(select(RecordTopic.topic).distinct()))
    return sorted(names)


def check_topic(db: Database, topic: str) -> None:
    if topic != ALL and topic not in known_topics(db):
        known = ", ".join(known_topics(db)) or "none yet"
        raise NotFoundError(f"unknown topic {topic!r} (known: {known}, or 'all')")


def load_points(
    db: Database,
    topics: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Point]:
    """Scored records as ``(ts, topic, label, score)``; one point per record and topic."""
    wanted = list(topics) if topics else None
    points: list[Point] = []
    with db.session() as s:
        if wanted is None or ALL in wanted:
            stmt = select(Record.ts, Record.label, Record.score)
            if since is not None:
                stmt = stmt.where(Record.ts >= since)
            if until is not None:
                stmt = stmt.where(Record.ts < until)
            points += [(as_utc(ts), ALL, lab, sc) for ts, lab, sc in s.execute(stmt).tuples()]
        named = None if wanted is None else [t for t in wanted if t != ALL]
        if named is None or named:
            jstmt = select(Record.ts, RecordTopic.topic, Record.label, Record.score).join(
                RecordTopic, RecordTopic.record_id == Record.id
            )
            if named:
                jstmt = jstmt.where(RecordTopic.topic.in_(named))
            if since is not None:
                jstmt = jstmt.where(Record.ts >= since)
            if until is not None:
                jstmt = jstmt.where(Record.ts < until)
            points += [(as_utc(ts), t, lab, sc) for ts, t, lab, sc in s.execute(jstmt).tuples()]
    return points


def bucket_start(ts: datetime, seconds: int) -> datetime:
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=timezone.utc)


def aggregate(
    points: Sequence[Point],
    seconds: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    max_buckets: int = MAX_BUCKETS,
) -> dict[str, list[Bucket]]:
    """Per topic, a gap-free list of buckets from ``start`` (or the first point) to ``end``
    (or the last point over all topics, so every series ends at the same bucket); at most
    the newest ``max_buckets`` of them."""
    if not points:
        return {}
    first = bucket_start(start or min(p[0] for p in points), seconds)
    last = bucket_start(end or max(p[0] for p in points), seconds)
    n = int((last - first).total_seconds()) // seconds + 1
    if n > max_buckets:
        first, n = last - timedelta(seconds=(max_buckets - 1) * seconds), max_buckets
    series: dict[str, list[Bucket]] = defaultdict(list)
    for topic in sorted({p[1] for p in points}):
        series[topic] = [
            Bucket(topic, first + timedelta(seconds=i * seconds), seconds) for i in range(n)
        ]
    for ts, topic, label, score in points:
        i = int((ts - first).total_seconds()) // seconds
        if not 0 <= i < n:
            continue
        b = series[topic][i]
        b.count += 1
        b.score_sum += score
        if label == "negative":
            b.negative += 1
        elif label == "positive":
            b.positive += 1
        else:
            b.neutral += 1
    return dict(series)


def trends(
    db: Database,
    topic: str | None = None,
    bucket: str = "1h",
    since: str | datetime | None = None,
    until: str | datetime | None = None,
) -> dict[str, list[Bucket]]:
    """Series per topic (or for one topic; ``all`` for every record) from ``since`` to
    before ``until`` (each an ISO time or a duration back from now)."""
    if topic is not None:
        check_topic(db, topic)
    seconds = int(parse_duration(bucket).total_seconds())
    if seconds < 1:
        raise DataError(f"bucket {bucket!r} is shorter than a second")
    start = parse_since(since) if isinstance(since, str) else since
    end = parse_since(until, what="until") if isinstance(until, str) else until
    if start is not None and end is not None and end <= start:
        raise DataError(f"until ({end.isoformat()}) is not after since ({start.isoformat()})")
    points = load_points(db, [topic] if topic else None, since=start, until=end)
    if points and start is None:
        oldest = min(p[0] for p in points)
        span = (max(p[0] for p in points) - oldest).total_seconds() / seconds
        if span >= MAX_BUCKETS:
            raise DataError(
                f"records span {span:,.0f} buckets of {bucket} (oldest {oldest.isoformat()}); "
                "pass --since or a larger --bucket"
            )
    return aggregate(points, seconds, start=start)
