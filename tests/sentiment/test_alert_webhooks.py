"""Alerts are a webhook outbox: a POST that fails is retried with back-off until the
receiver takes it, each alert is delivered exactly once, and none is lost (SQLite and
PostgreSQL, through the ingest path that workers use)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from aigc_apps.store import Database, utcnow
from apps.sentiment.alerts import AlertEngine, deliver_alerts
from apps.sentiment.broker import BrokerError, RedisStreamsBroker, redis_url
from apps.sentiment.ingest import Ingester
from apps.sentiment.scoring import LexiconScorer
from apps.sentiment.service import SentimentService
from apps.sentiment.store import Alert, as_utc
from apps.sentiment.topics import TopicMatcher, WatchTopic, save_topics
from apps.sentiment.worker import StreamWorker
from tests.hooks import WebhookReceiver
from tests.services import unavailable

T0 = datetime(2024, 5, 6, tzinfo=timezone.utc)
TOPICS = [WatchTopic("banking", ["lender"]), WatchTopic("energy", ["pipeline"])]


def _feed(path: Path) -> Path:
    """30 hours of two topics (1 in 5 negative), each with one negative surge."""
    lines, n = [], 0
    for h in range(30):
        for subject, surge_hour in (("Lender", 24), ("Pipeline", 27)):
            count, neg = (30, 25) if h == surge_hour else (10, 2)
            for i in range(count):
                n += 1
                text = (f"{subject} shares plunge" if i < neg else
                        f"{subject} profits rise" if i % 2 else f"{subject} holds meeting")
                ts = T0 + timedelta(hours=h, minutes=i * 50 // count)
                lines.append(json.dumps({"id": str(n), "timestamp": ts.isoformat(),
                                         "text": f"{text} #{n}"}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """Answers 503 (the receiver is down) until a test sets ``status = 200``; keeps every POST."""
    with WebhookReceiver(503) as hook:
        yield hook


@pytest.fixture
def hook(receiver: WebhookReceiver, local_webhooks: None) -> str:
    return receiver.url("/alerts")


def _alerts(db: Database) -> list[Alert]:
    with db.session() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


def _pass_backoff(db: Database) -> None:
    with db.session() as s:
        s.execute(update(Alert).where(Alert.delivered_at.is_(None))
                  .values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def _ingest(db: Database, feed: Path, url: str) -> list[dict[str, Any]]:
    fired: list[dict[str, Any]] = []
    ingester = Ingester(db, LexiconScorer(), TopicMatcher(TOPICS), batch_size=64,
                        alerts=AlertEngine(webhook=url), on_alert=fired.append)
    ingester.ingest_file(feed)
    return fired


def test_an_alert_is_delivered_once_after_retries_and_none_is_lost(
    db: Database, receiver: WebhookReceiver, hook: str, tmp_path: Path
) -> None:
    save_topics(db, TOPICS)
    feed = _feed(tmp_path / "feed.jsonl")
    fired = _ingest(db, feed, hook)  # the receiver is down while the alerts fire
    stored = _alerts(db)
    assert sorted(a.topic for a in stored) == ["banking", "energy"] == sorted(
        a["topic"] for a in fired)
    assert len(receiver.seen) == 2 and not receiver.delivered
    for alert in stored:
        assert alert.delivered_at is None and alert.attempts == 1
        assert alert.webhook_status == ("error: webhook answered HTTP 503 (try 1, retried in "
                                        "5s)")
        assert alert.next_attempt_at is not None
        wait = (as_utc(alert.next_attempt_at) - utcnow()).total_seconds()
        assert 0 < wait <= 5
    assert deliver_alerts(db, hook).failed == 0 and len(receiver.seen) == 2  # not due yet

    _pass_backoff(db)
    again = deliver_alerts(db, hook)  # still down: the wait doubles
    assert (again.failed, again.delivered, again.waiting) == (2, 0, 2)
    assert {a.attempts for a in _alerts(db)} == {2}
    assert all("retried in 10s" in (a.webhook_status or "") for a in _alerts(db))

    receiver.status = 200
    _pass_backoff(db)
    # the next stored batch retries what is due: an ordinary hour fires nothing new, but
    # delivers both stored alerts
    later = tmp_path / "later.jsonl"
    later.write_text("".join(json.dumps({
        "id": f"later-{i}", "timestamp": (T0 + timedelta(hours=30, minutes=i)).isoformat(),
        "text": f"Lender holds meeting #{i}"}) + "\n" for i in range(10)))
    assert _ingest(db, later, hook) == []
    assert sorted(a["topic"] for a in receiver.delivered) == ["banking", "energy"]
    for alert in _alerts(db):
        assert alert.delivered_at is not None and alert.attempts == 3
        assert alert.webhook_status == "200" and alert.last_error is None
    _pass_backoff(db)  # delivered alerts are never due again
    assert deliver_alerts(db, hook).delivered == 0 and len(receiver.delivered) == 2
    assert len(receiver.seen) == 6  # 2 alerts x (2 failures + 1 delivery)

    ids = {a.id for a in _alerts(db)}
    assert {event_id for event_id, _ in receiver.seen} == {str(i) for i in ids}
    body = receiver.delivered[0]
    assert body["type"] == "sentiment_alert" and body["id"] in ids
    assert "webhook_status" not in body and "negative_share" in body["signals"]


def test_alerts_without_a_webhook_are_never_posted_later(
    db: Database, receiver: WebhookReceiver, hook: str, tmp_path: Path
) -> None:
    save_topics(db, TOPICS)
    feed = _feed(tmp_path / "feed.jsonl")
    Ingester(db, LexiconScorer(), TopicMatcher(TOPICS), alerts=AlertEngine()).ingest_file(feed)
    assert len(_alerts(db)) == 2
    assert all(a.next_attempt_at is None and a.webhook_status is None for a in _alerts(db))
    receiver.status = 200
    assert deliver_alerts(db, hook).delivered == 0 and receiver.seen == []


def _redis() -> RedisStreamsBroker:
    try:
        broker = RedisStreamsBroker(retries=1, timeout=1.0)
        broker.ping()
        return broker
    except BrokerError:
        unavailable("redis", f"Redis not reachable at {redis_url()}")


def test_an_idle_stream_worker_retries_due_webhooks(
    db: Database, receiver: WebhookReceiver, hook: str, tmp_path: Path
) -> None:
    """No new message, no new batch: the worker's next step still delivers what is due."""
    broker = _redis()
    stream = f"test-alert-hooks-{uuid.uuid4().hex[:10]}"
    save_topics(db, TOPICS)
    _ingest(db, _feed(tmp_path / "feed.jsonl"), hook)  # fired while the receiver is down
    assert len(receiver.seen) == 2 and not receiver.delivered
    try:
        with SentimentService(db.url, embeddings=False) as service:
            worker = StreamWorker(service, broker, stream, group="g", consumer="c",
                                  webhook=hook, block_ms=50)
            receiver.status = 200
            assert worker.step() == 0 and not receiver.delivered  # back-off not passed yet
            _pass_backoff(db)
            assert worker.step() == 0
            assert worker.step() == 0  # delivered alerts are not posted again
    finally:
        broker.delete(stream)
        broker.close()
    assert sorted(a["topic"] for a in receiver.delivered) == ["banking", "energy"]
    assert all(a.delivered_at is not None and a.attempts == 2 for a in _alerts(db))


def test_a_quiet_followed_feed_retries_due_webhooks(
    db: Database, receiver: WebhookReceiver, hook: str, tmp_path: Path
) -> None:
    """``ingest --follow`` with nothing new to read still delivers alerts that are due."""
    save_topics(db, TOPICS)
    _ingest(db, _feed(tmp_path / "feed.jsonl"), hook)  # fired while the receiver is down
    assert len(receiver.seen) == 2 and not receiver.delivered
    receiver.status = 200
    _pass_backoff(db)
    quiet = tmp_path / "quiet.jsonl"
    quiet.write_text("")
    ingester = Ingester(db, LexiconScorer(), TopicMatcher(TOPICS),
                        alerts=AlertEngine(webhook=hook))
    report = ingester.follow(quiet, idle_timeout=0.3, poll=0.05)
    assert report.stored == 0 and report.alerts == []
    assert sorted(a["topic"] for a in receiver.delivered) == ["banking", "energy"]
    assert len(receiver.seen) == 4  # each alert: one failure, one delivery, never again
    assert all(a.delivered_at is not None and a.attempts == 2 for a in _alerts(db))
