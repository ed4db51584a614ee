"""Scoring feeds into the store: batch files, growing files and stdin.

Records are normalised (text, timestamp, source, id), deduplicated against the store and
within the batch, scored in batches, matched to topics, and written together with their
topics in one transaction per batch, so a record is stored whole or not at all. A bad line
(a time past the clock-skew horizon of :mod:`.horizon` is one, as is an over-long id)
is a counted skip; ingest never stops on one, but a feed that cannot be what the user
meant (binary, no records, no text column, not one usable row) is a one-line error. In
follow mode each batch is flushed as soon as the feed goes quiet, and alert rules run after
every stored batch.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from aigc_apps.data import Skip, content_hash, parse_timestamp
from aigc_apps.errors import DataError
from aigc_apps.store import Database, utcnow

from .constants import MAX_ID_CHARS, MAX_SOURCE_CHARS
from .horizon import too_far_ahead
from .reader import (
    EXTENSIONS,
    MAX_TEXT_CHARS,
    LineParser,
    RawRow,
    stream_lines,
    tail_file,
    tail_stream,
)
from .scoring import Prediction, Scorer, predictions
from .store import Record, RecordTopic
from .topics import TopicHit, TopicMatcher

TEXT_COLUMNS = ("text", "headline", "title", "sentence", "body", "content", "message")
TIME_COLUMNS = ("timestamp", "ts", "time", "published_at", "published", "date", "created_at")
ID_COLUMNS = ("id", "guid", "uuid", "message_id")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class IngestReport:
    """What one ingest run did; ``skipped`` lists each bad line with its reason."""

    lines: int = 0  # records read, good or bad
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    truncated: list[int] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    scoring_seconds: float = 0.0

    def summary(self) -> str:
        text = (
            f"{self.stored} stored, {self.duplicates} duplicates, {len(self.skipped)} skipped "
            f"of {self.lines} records in {self.seconds:.1f}s"
        )
        if self.stored and self.scoring_seconds:
            text += f" ({self.stored / self.scoring_seconds:.0f} texts/s scoring)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "rows": self.rows,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "truncated_lines": self.truncated,
            "skipped": [{"line": s.row, "reason": s.reason} for s in self.skipped],
            "alerts": self.alerts,
            "seconds": round(self.seconds, 3),
            "scoring_seconds": round(self.scoring_seconds, 3),  # the part of seconds spent scoring
        }


class RefusedRecord(DataError):
    """A batch stored all or none was refused because of one record: ``index`` (from 0, as
    in the batch) and ``reason`` say which and why, so a client can fix that one and send
    the batch again knowing nothing of it was stored."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"records[{index}]: {reason}; no record was stored")
        self.index = index
        self.reason = reason


@dataclass
class Incoming:
    line: int
    text: str
    text_hash: str
    ts: datetime
    source: str
    ext_id: str | None
    url: str | None
    truncated: bool


def _clean(value: object) -> str:
    """A metadata field without control characters (PostgreSQL rejects NUL in text)."""
    return _CONTROL.sub("", str(value)).strip()


def _unencodable(fields: dict[str, str | None]) -> str | None:
    """The first field that cannot be written as UTF-8 (a JSON ``"\\ud800"`` escape)."""
    for name, value in fields.items():
        try:
            (value or "").encode("utf-8")
        except UnicodeEncodeError:
            return name
    return None


def _not_a_name(value: object) -> str | None:
    """What ``value`` is when it cannot name a document: only strings and integers can (an
    object's id used to be stored as its Python repr, which nothing else sends)."""
    if isinstance(value, bool):
        return "a boolean"
    if value is None or isinstance(value, str | int):
        return None
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, Mapping):
        return "an object"
    return "an array" if isinstance(value, list) else type(value).__name__


def _too_long(name: str, value: str, limit: int) -> str:
    return (f"{name!r} is longer than {limit} characters ({len(value):,}); it is part of the "
            "record's identity, so it is never cut")


IdentityKey = tuple[str, str | None, str | None]


def _identity_keys(r: Incoming) -> set[IdentityKey]:
    """The keys under which a record counts as already stored (see :mod:`.store`)."""
    keys: set[IdentityKey] = {("text", r.source, r.text_hash)}
    if r.ext_id is not None:
        keys |= {("id", r.source, r.ext_id), ("copy", r.ext_id, r.text_hash)}
    return keys


def _first(row: dict[str, Any], names: Iterable[str]) -> tuple[str | None, Any]:
    for name in names:
        if name in row and row[name] is not None and str(row[name]).strip() != "":
            return name, row[name]
    return None, None


class Ingester:
    """Scores and stores records; call :meth:`ingest_file` or :meth:`follow`.

    ``alerts`` is an :class:`~apps.sentiment.alerts.AlertEngine` or, for a live feed, an
    :class:`~apps.sentiment.alert_schedule.AlertSchedule` (anything with
    ``evaluate_since(db, {topic: since}) -> list[dict]`` and ``flush(db)``), run after
    each stored batch of a live feed, when it goes quiet, and at the end of a file;
    ``on_alert`` sees each new alert as it fires. ``refresh``, on a live feed that runs for
    days, gives the scorer and matcher before each batch is scored, so a model trained or
    activated, or a topic added, while it runs is used from the next batch.
    """

    def __init__(
        self,
        db: Database,
        scorer: Scorer,
        matcher: TopicMatcher | None = None,
        *,
        source: str = "",
        text_col: str | None = None,
        batch_size: int = 256,
        alerts: Any = None,
        on_alert: Callable[[dict[str, Any]], None] | None = None,
        now: Callable[[], datetime] = utcnow,
        refresh: Callable[[], tuple[Scorer, TopicMatcher | None]] | None = None,
    ) -> None:
        self.db = db
        self.scorer = scorer
        self.matcher = matcher
        self.source = source
        self.text_cols = (text_col,) if text_col else TEXT_COLUMNS
        self.batch_size = batch_size
        self.alerts = alerts
        self.on_alert = on_alert
        self.now = now
        self.refresh = refresh

    # -- one record ---------------------------------------------------------------------
    def normalize(self, row: RawRow) -> Incoming | Skip:
        col, value = _first(row.data, self.text_cols)
        if col is None:
            present = [c for c in self.text_cols if c in row.data]
            if not present:
                expected = ", ".join(self.text_cols)
                return Skip(row.line, f"no text field (expected one of {expected})")
            return Skip(row.line, f"empty {present[0]!r}")
        if isinstance(value, Mapping | list | bool):  # str() would store its Python repr
            return Skip(row.line, f"{col!r} must be text, not {_not_a_name(value)}")
        text = _CONTROL.sub(" ", str(value)).strip()
        if not text:
            return Skip(row.line, f"empty {col!r}")
        truncated = len(text) > MAX_TEXT_CHARS
        if truncated:
            text = text[:MAX_TEXT_CHARS]
        tcol, tvalue = _first(row.data, TIME_COLUMNS)
        if tcol is None:
            ts = self.now()
        else:
            try:
                ts = parse_timestamp(tvalue).astimezone(timezone.utc)  # year 1 +01:00 overflows
            except (ValueError, OverflowError, OSError):
                return Skip(row.line, f"cannot parse {tcol!r} {str(tvalue)[:40]!r} as a timestamp")
            ahead = too_far_ahead(ts, self.now())
            if ahead is not None:
                return Skip(row.line, f"{tcol!r} {ahead}")
        for name in ("source", "url"):
            kind = _not_a_name(row.data.get(name))
            if kind is not None:
                return Skip(row.line, f"{name!r} must be a string or an integer, not {kind}")
        source = _clean(row.data.get("source") or self.source or "")
        if len(source) > MAX_SOURCE_CHARS:
            return Skip(row.line, _too_long("source", source, MAX_SOURCE_CHARS))
        id_col, id_value = _first(row.data, ID_COLUMNS)
        kind = _not_a_name(id_value)
        if kind is not None:
            return Skip(row.line, f"{id_col!r} must be a string or an integer, not {kind}")
        ext_id = _clean(id_value) if id_value is not None else None
        if ext_id is not None and len(ext_id) > MAX_ID_CHARS:
            return Skip(row.line, _too_long(str(id_col), ext_id, MAX_ID_CHARS))
        url = (_clean(row.data["url"]) or None) if row.data.get("url") else None
        if ext_id is None and url and len(url) <= MAX_ID_CHARS:  # a longer one: known by text
            ext_id = url
        ext_id = ext_id or None
        bad = _unencodable({col: text, "source": source, "id": ext_id, "url": url})
        if bad is not None:  # no database stores it; one such line must not stop ingest
            return Skip(row.line, f"{bad!r} is not valid UTF-8 (lone surrogate escape)")
        return Incoming(
            line=row.line,
            text=text,
            text_hash=content_hash([" ".join(text.split()).casefold()]),
            ts=ts,
            source=source,
            ext_id=ext_id,
            url=url,
            truncated=truncated,
        )

    # -- batches ------------------------------------------------------------------------
    def _new_only(self, batch: list[Incoming], report: IngestReport) -> list[Incoming]:
        """Drop records already stored or repeated inside the batch, by the identity rule of
        :mod:`apps.sentiment.store` (the same keys its unique constraints enforce)."""
        hashes = {r.text_hash for r in batch}
        sources = {r.source for r in batch}
        ids = {r.ext_id for r in batch if r.ext_id is not None}
        seen: set[IdentityKey] = set()
        with self.db.session() as s:
            # by (source, text_hash), the unique index's columns in its order: text_hash
            # alone scanned the whole index, a cost per batch that grew with the store
            seen.update(
                ("text", source, text_hash)
                for source, text_hash in s.execute(
                    select(Record.source, Record.text_hash).where(
                        Record.source.in_(sources), Record.text_hash.in_(hashes))
                )
            )
            if ids:
                for source, ext_id, text_hash in s.execute(
                    select(Record.source, Record.ext_id, Record.text_hash).where(
                        Record.ext_id.in_(ids)
                    )
                ):
                    seen.add(("id", source, ext_id))
                    seen.add(("copy", ext_id, text_hash))
        fresh = []
        for r in batch:
            keys = _identity_keys(r)
            if not seen.isdisjoint(keys):
                report.duplicates += 1
                continue
            seen.update(keys)
            fresh.append(r)
        return fresh

    def _build(self, r: Incoming, p: Prediction, found: list[TopicHit]) -> Record:
        record = Record(
            source=r.source, ext_id=r.ext_id, url=r.url, text=r.text, text_hash=r.text_hash,
            truncated=r.truncated, ts=r.ts, ingested_at=utcnow(), label=p.label,
            p_negative=p.p_negative, p_neutral=p.p_neutral, p_positive=p.p_positive,
            score=p.score, model=self.scorer.name,
        )
        record.topics = [
            RecordTopic(topic=h.topic, method=h.method, similarity=h.similarity) for h in found
        ]
        return record

    def flush(self, batch: list[Incoming], report: IngestReport) -> dict[str, datetime]:
        """Score and store ``batch`` (one transaction); returns topic -> earliest new record."""
        fresh = self._new_only(batch, report)
        if not fresh:
            return {}
        if self.refresh is not None:
            self.scorer, self.matcher = self.refresh()
        start = time.perf_counter()
        texts = [r.text for r in fresh]
        probs = predictions(np.asarray(self.scorer.predict_proba(texts), dtype=np.float64))
        hits = self.matcher.match(texts) if self.matcher else [[] for _ in fresh]
        report.scoring_seconds += time.perf_counter() - start
        try:
            with self.db.session() as s:
                s.add_all(self._build(r, p, h) for r, p, h in zip(fresh, probs, hits, strict=True))
            report.stored += len(fresh)
        except IntegrityError:  # a concurrent ingester stored some first: go one by one
            for r, p, h in zip(fresh, probs, hits, strict=True):
                try:
                    with self.db.session() as s:
                        s.add(self._build(r, p, h))
                    report.stored += 1
                except IntegrityError:
                    report.duplicates += 1
        report.truncated.extend(r.line for r in fresh if r.truncated)
        touched: dict[str, datetime] = {}
        for r, found in zip(fresh, hits, strict=True):
            for hit in found:
                touched[hit.topic] = min(r.ts, touched.get(hit.topic, r.ts))
        return touched

    def _run_alerts(self, touched: dict[str, datetime], report: IngestReport) -> None:
        """Evaluate alert rules for the topics that got records, from their earliest one;
        with none, retry the webhook for alerts whose back-off has passed, so a quiet feed
        does not hold them."""
        if self.alerts is not None:
            self._fired(self.alerts.evaluate_since(self.db, touched), report)

    def _fired(self, alerts: list[dict[str, Any]], report: IngestReport) -> None:
        for alert in alerts:
            report.alerts.append(alert)
            if self.on_alert is not None:
                self.on_alert(alert)

    def consume(
        self, items: Iterable[RawRow | Incoming | Skip | None], report: IngestReport,
        live: bool = False,
    ) -> IngestReport:
        """Process parsed rows (or rows :meth:`normalize` already checked); ``None`` marks a
        quiet feed (flush now when ``live``)."""
        start = time.perf_counter()
        batch: list[Incoming] = []
        touched: dict[str, datetime] = {}

        def merge(new: dict[str, datetime]) -> None:
            for topic, ts in new.items():
                touched[topic] = min(ts, touched.get(topic, ts))

        for item in items:
            if item is None:
                if batch:
                    merge(self.flush(batch, report))
                    batch = []
                if live:
                    self._run_alerts(touched, report)
                    touched = {}
                continue
            report.lines += 1
            if isinstance(item, Skip):
                report.skipped.append(item)
                continue
            report.rows += 1
            normal = item if isinstance(item, Incoming) else self.normalize(item)
            if isinstance(normal, Skip):
                report.skipped.append(normal)
                continue
            batch.append(normal)
            if len(batch) >= self.batch_size:
                merge(self.flush(batch, report))
                batch = []
                if live:  # a busy feed is checked too (an AlertSchedule spaces checks out)
                    self._run_alerts(touched, report)
                    touched = {}
        if batch:
            merge(self.flush(batch, report))
        self._run_alerts(touched, report)
        report.seconds += time.perf_counter() - start
        return report

    # -- inputs -------------------------------------------------------------------------
    def ingest_file(self, path: str | Path, fmt: str | None = None) -> IngestReport:
        """Ingest a whole CSV/TSV/JSONL file; see :meth:`ingest_stream` for what is an error."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: file is empty")
        parser = LineParser(fmt or EXTENSIONS.get(path.suffix.lower()), str(path))
        with open(path, "rb") as handle:
            return self._ingest_whole(parser, stream_lines(handle, str(path)))

    def ingest_records(self, records: Iterable[object]) -> IngestReport:
        """Ingest records that are already parsed (a JSON request body): item N is line N,
        and an item that is not an object is a counted skip like a bad line."""
        rows = (
            RawRow(i, dict(r)) if isinstance(r, Mapping) else Skip(i, "not a JSON object")
            for i, r in enumerate(records, start=1)
        )
        return self.consume(rows, IngestReport())

    def ingest_all_or_none(self, records: Iterable[Mapping[str, Any]]) -> IngestReport:
        """Ingest records that are already parsed, all or none: each is checked before any
        is stored, and one that cannot be used raises :class:`RefusedRecord` (where
        :meth:`ingest_records` would count it as a skip), so a request is never half
        stored. Record N is line N of the report."""
        checked = [self.normalize(RawRow(n, dict(r))) for n, r in enumerate(records, start=1)]
        for index, row in enumerate(checked):
            if isinstance(row, Skip):
                raise RefusedRecord(index, row.reason)
        return self.consume(checked, IngestReport())  # checked once, stored whole

    def ingest_stream(self, stream: IO[bytes], fmt: str | None = None) -> IngestReport:
        """Ingest a binary stream (stdin) until it ends.

        A feed that cannot be what the user meant is a :class:`DataError`, not a report of
        nothing stored: binary content, no record at all (a header only), no text column,
        or not one usable record (the first reason is named).
        """
        return self._ingest_whole(LineParser(fmt, "<stdin>"), stream_lines(stream, "<stdin>"))

    def follow(
        self,
        path: str | Path | None = None,
        *,
        fmt: str | None = None,
        stop: threading.Event | None = None,
        idle_timeout: float | None = None,
        poll: float = 0.25,
        from_start: bool = True,
    ) -> IngestReport:
        """Tail ``path`` (or stdin when ``None``) until ``stop`` is set, the stream ends
        (stdin), or nothing new arrives for ``idle_timeout`` seconds. Whatever was written
        before the stop is still read. A CSV header without a text column is an error."""
        stop = stop or threading.Event()
        if path is None:
            lines: Iterator[bytes | None] = tail_stream(sys.stdin.buffer, stop, poll, idle_timeout)
            parser = LineParser(fmt, "<stdin>")
        else:
            path = Path(path)
            parser = LineParser(fmt or EXTENSIONS.get(path.suffix.lower()), str(path))
            lines = tail_file(path, stop, poll, idle_timeout, from_start)
        report = self.consume(self._rows(parser, lines, whole=False), IngestReport(), live=True)
        if self.alerts is not None:  # what an AlertSchedule still holds
            self._fired(self.alerts.flush(self.db), report)
        return report

    def _ingest_whole(self, parser: LineParser, lines: Iterable[bytes]) -> IngestReport:
        report = self.consume(self._rows(parser, lines, whole=True), IngestReport())
        if not report.stored and not report.duplicates and report.skipped:
            first = report.skipped[0]
            raise DataError(f"{parser.source}: no usable records ({len(report.skipped)} "
                            f"skipped; first: line {first.row}: {first.reason})")
        return report

    def _rows(
        self, parser: LineParser, lines: Iterable[bytes | None], *, whole: bool
    ) -> Iterator[RawRow | Skip | None]:
        """Parsed rows of ``lines``; a CSV header without a text column stops at once, and
        a ``whole`` input (not a live feed) must have records, one of them with a text."""
        header_checked = texts_seen = False
        columns: set[str] = set()
        records = 0
        for raw in lines:
            if raw is None:
                yield None
                continue
            for item in parser.feed(raw):
                records += 1
                if isinstance(item, RawRow) and not texts_seen:
                    texts_seen = any(c in item.data for c in self.text_cols)
                    columns.update(map(str, item.data))
                yield item
            if not header_checked and parser.header is not None:
                header_checked = True
                if not any(c in parser.header for c in self.text_cols):
                    raise DataError(self._missing_text(parser.source, parser.header))
        yield from parser.finish()
        if whole and not records:
            header = " (only a header)" if parser.header is not None else ""
            raise DataError(f"{parser.source}: no records{header}")
        if whole and columns and not texts_seen:
            raise DataError(self._missing_text(parser.source, sorted(columns)))

    def _missing_text(self, source: str, found: Iterable[str]) -> str:
        names = [c for c in found if c][:20]
        wanted = (f"column {self.text_cols[0]!r}" if len(self.text_cols) == 1 else
                  f"text column (one of {', '.join(self.text_cols)}; --text-col names another)")
        return f"{source}: missing {wanted} (found: {', '.join(names) or 'none'})"
