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

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    cast,
    extract,
    func,
    literal_column,
    select,
)
from sqlalchemy.orm import Session

from aigc_apps.errors import DataError, NotFoundError
from aigc_apps.store import Database, utcnow

from .constants import ALL
from .horizon import horizon
from .store import Record, RecordTopic, Topic

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


class SeriesTooLong(DataError):
    """Records without ``since`` would span more than :data:`MAX_BUCKETS` buckets. The
    message names the CLI's options; :meth:`naming` words it for another caller (the HTTP
    API names its query parameters)."""

    def __init__(self, span: float, oldest: datetime, bucket: str) -> None:
        self.span, self.oldest, self.bucket = span, oldest, bucket
        super().__init__(self.naming("--since", "--bucket"))

    def naming(self, since: str, bucket: str) -> str:
        return (f"records span {self.span:,.0f} buckets of {self.bucket} (oldest "
                f"{self.oldest.isoformat()}); pass {since} or a larger {bucket}")


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
# (time, topic, label, records, score sum): many records of one bucket in one row
Tally = tuple[datetime, str, str, int, float]


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


def _bucket_of(db: Database, seconds: int) -> ColumnElement[int]:
    """SQL for the epoch second at which a record's bucket starts (floored, as
    :func:`bucket_start`); the width is inlined so PostgreSQL sees one GROUP BY expression."""
    if db.engine.dialect.name == "sqlite":
        # whole seconds only: SQLite rounds ".999999" up to the next second
        epoch: ColumnElement[Any] = cast(func.strftime("%s", func.substr(Record.ts, 1, 19)),
                                         Integer)
    else:  # PostgreSQL (and others with EXTRACT(EPOCH ...))
        epoch = cast(func.floor(extract("epoch", Record.ts)), BigInteger)
    width: ColumnElement[int] = literal_column(str(int(seconds)))
    return epoch - ((epoch % width) + width) % width


def load_tallies(
    db: Database,
    topics: Sequence[str] | None,
    seconds: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Tally]:
    """Records counted per topic, bucket and label by the database, so an alert check or a
    chart reads one row per bucket instead of every record (a burst of 20,000 records in
    one hour used to be re-read after each batch). Nothing past :func:`.horizon.horizon`
    is read, so no series reaches beyond it."""
    wanted = list(topics) if topics else None
    bucket = _bucket_of(db, seconds).label("bucket")
    stop = horizon()  # a record dated past it (stored before ingest refused one) is not read
    until = stop if until is None else min(until, stop)
    tallies: list[Tally] = []

    def run(s: Session, stmt: Any, topic: str | None) -> None:  # a grouped Select
        if since is not None:
            stmt = stmt.where(Record.ts >= since)
        if until is not None:
            stmt = stmt.where(Record.ts < until)
        for row in s.execute(stmt):
            epoch, name, label, n, total = (row[0], topic or row[1], *row[-3:])
            tallies.append((datetime.fromtimestamp(int(epoch), tz=timezone.utc), str(name),
                            str(label), int(n), float(total or 0.0)))

    with db.session() as s:
        if wanted is None or ALL in wanted:
            run(s, select(bucket, Record.label, func.count(), func.sum(Record.score))
                .group_by(bucket, Record.label), ALL)
        named = None if wanted is None else [t for t in wanted if t != ALL]
        if named is None or named:
            stmt = (select(bucket, RecordTopic.topic, Record.label, func.count(),
                           func.sum(Record.score))
                    .join(RecordTopic, RecordTopic.record_id == Record.id)
                    .group_by(bucket, RecordTopic.topic, Record.label))
            run(s, stmt.where(RecordTopic.topic.in_(named)) if named else stmt, None)
    return tallies


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
    """Per topic, a gap-free list of buckets of ``points`` (one per record); see
    :func:`aggregate_tallies`."""
    return aggregate_tallies([(ts, t, label, 1, score) for ts, t, label, score in points],
                             seconds, start=start, end=end, max_buckets=max_buckets)


def aggregate_tallies(
    tallies: Sequence[Tally],
    seconds: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    max_buckets: int = MAX_BUCKETS,
) -> dict[str, list[Bucket]]:
    """Per topic, a gap-free list of buckets from ``start`` (or the first tally) to ``end``
    (or the last tally over all topics, so every series ends at the same bucket); at most
    the newest ``max_buckets`` of them."""
    if not tallies:
        return {}
    first = bucket_start(start or min(t[0] for t in tallies), seconds)
    last = bucket_start(end or max(t[0] for t in tallies), seconds)
    n = int((last - first).total_seconds()) // seconds + 1
    if n > max_buckets:
        first, n = last - timedelta(seconds=(max_buckets - 1) * seconds), max_buckets
    series: dict[str, list[Bucket]] = defaultdict(list)
    for topic in sorted({t[1] for t in tallies}):
        series[topic] = [
            Bucket(topic, first + timedelta(seconds=i * seconds), seconds) for i in range(n)
        ]
    for ts, topic, label, count, score_sum in tallies:
        i = int((ts - first).total_seconds()) // seconds
        if not 0 <= i < n:
            continue
        b = series[topic][i]
        b.count += count
        b.score_sum += score_sum
        if label == "negative":
            b.negative += count
        elif label == "positive":
            b.positive += count
        else:
            b.neutral += count
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
    tallies = load_tallies(db, [topic] if topic else None, seconds, since=start, until=end)
    if tallies and start is None:
        oldest = min(t[0] for t in tallies)
        span = (max(t[0] for t in tallies) - oldest).total_seconds() / seconds
        if span >= MAX_BUCKETS:
            raise SeriesTooLong(span, oldest, bucket)
    return aggregate_tallies(tallies, seconds, start=start)
