"""Aggregation per topic and bucket, surge alerts with cool-down, webhook delivery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aigc_apps.errors import DataError, NotFoundError
from aigc_apps.store import Database
from apps.sentiment.alerts import AlertEngine, AlertRule, detect, list_alerts, post_webhook
from apps.sentiment.ingest import Ingester
from apps.sentiment.plot import plot_trends
from apps.sentiment.store import Record, RecordTopic
from apps.sentiment.topics import TopicMatcher, WatchTopic, save_topics
from apps.sentiment.trends import (
    ALL,
    Bucket,
    aggregate,
    aggregate_tallies,
    load_tallies,
    parse_duration,
    parse_since,
    trends,
)
from tests.hooks import WebhookReceiver

T0 = datetime(2024, 5, 6, tzinfo=timezone.utc)
POS, NEG, NEU = "Lender profits rise", "Lender shares plunge", "Lender holds meeting"


def _feed(path: Path, hours: int, per_hour: int, surge: dict[int, tuple[int, int]]) -> Path:
    """``per_hour`` records an hour (1 in 5 negative) except surge hours: (count, negatives)."""
    lines, n = [], 0
    for h in range(hours):
        count, neg = surge.get(h, (per_hour, per_hour // 5))
        for i in range(count):
            n += 1
            text = NEG if i < neg else (POS if i % 2 else NEU)
            ts = T0 + timedelta(hours=h, minutes=i * 50 // count)
            lines.append(json.dumps({"id": str(n), "timestamp": ts.isoformat(),
                                     "text": f"{text} #{n}"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_aggregate_fills_gaps_and_counts() -> None:
    points = [
        (T0 + timedelta(minutes=5), "rates", "negative", -0.8),
        (T0 + timedelta(minutes=50), "rates", "positive", 0.6),
        (T0 + timedelta(minutes=55), "banking", "neutral", 0.0),
        (T0 + timedelta(hours=2, minutes=1), "rates", "negative", -0.4),
    ]
    series = aggregate(points, 3600)
    rates = series["rates"]
    assert [b.start.hour for b in rates] == [0, 1, 2]
    assert [b.count for b in rates] == [2, 0, 1]
    assert rates[0].share_negative == pytest.approx(0.5)
    assert rates[0].mean_score == pytest.approx(-0.1)
    assert rates[2].share_negative == 1.0 and rates[1].share_negative == 0.0
    assert [b.count for b in series["banking"]] == [1, 0, 0]  # same span for every topic
    assert [b.count for b in aggregate(points, 900)["rates"]][:4] == [1, 0, 0, 1]


def test_database_tallies_equal_counting_each_record(db: Database) -> None:
    """The bucket arithmetic in SQL (SQLite strftime, PostgreSQL EXTRACT) agrees with
    Python's, fractional seconds, bucket edges and times before 1970 included."""
    import random

    rng = random.Random(7)
    times = [T0 + timedelta(seconds=rng.uniform(-3 * 86400, 3 * 86400)) for _ in range(300)]
    times += [T0, T0 - timedelta(microseconds=1), T0 + timedelta(minutes=15),
              datetime(1969, 12, 31, 23, 59, 30, 500, tzinfo=timezone.utc)]
    labels = ["negative", "neutral", "positive"]
    points = []
    with db.session() as s:
        for i, ts in enumerate(times):
            label, score = rng.choice(labels), round(rng.uniform(-1, 1), 3)
            topics = rng.sample(["rates", "banking", "oil"], rng.randint(0, 2))
            s.add(Record(source="t", ext_id=str(i), text=f"t{i}", text_hash=f"h{i}", ts=ts,
                         label=label, p_negative=0.3, p_neutral=0.3, p_positive=0.4,
                         score=score, topics=[RecordTopic(topic=t, method="keyword")
                                              for t in topics]))
            points += [(ts, t, label, score) for t in [ALL, *topics]]
    for seconds in (60, 900, 3600, 86400):
        expected = aggregate([p for p in points if p[0] >= T0 - timedelta(days=2)], seconds,
                             max_buckets=10**6)
        got = aggregate_tallies(load_tallies(db, None, seconds, since=T0 - timedelta(days=2)),
                                seconds, max_buckets=10**6)
        assert got.keys() == expected.keys() == {ALL, "rates", "banking", "oil"}
        for topic, series in expected.items():
            assert [(b.start, b.count, b.negative, b.neutral, b.positive) for b in series] == [
                (b.start, b.count, b.negative, b.neutral, b.positive) for b in got[topic]]
            assert [b.score_sum for b in got[topic]] == pytest.approx(
                [b.score_sum for b in series])
    everything = aggregate(points, 3600, max_buckets=10**6)
    assert aggregate_tallies(load_tallies(db, ["oil", ALL], 3600), 3600,
                             max_buckets=10**6).keys() == {"oil", ALL}
    one = aggregate_tallies(load_tallies(db, ["oil"], 3600), 3600, max_buckets=10**6)["oil"]
    assert sum(b.count for b in one) == sum(b.count for b in everything["oil"])


def test_a_stray_ancient_record_cannot_blow_up_the_series() -> None:
    points = [
        (datetime(1970, 1, 1, tzinfo=timezone.utc), "rates", "negative", -0.8),
        (T0, "rates", "positive", 0.6),
        (T0 + timedelta(hours=3), "rates", "negative", -0.4),
    ]
    rates = aggregate(points, 3600, max_buckets=10)["rates"]
    assert len(rates) == 10 and rates[-1].start == T0 + timedelta(hours=3)
    assert [b.count for b in rates] == [0] * 6 + [1, 0, 0, 1]  # the 1970 record is cut off


def test_durations_and_since() -> None:
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("1d") == timedelta(days=1)
    assert parse_since("2h", now=T0) == T0 - timedelta(hours=2)
    assert parse_since("2024-05-06T01:00") == T0 + timedelta(hours=1)
    for bad in ("0h", "soon", "-1h"):
        with pytest.raises(DataError):
            parse_duration(bad)
    with pytest.raises(DataError):
        parse_since("last tuesday")


def _series(counts: list[int], negatives: list[int]) -> list[Bucket]:
    return [
        Bucket("t", T0 + timedelta(hours=i), 3600, count=c, negative=k, neutral=c - k)
        for i, (c, k) in enumerate(zip(counts, negatives, strict=True))
    ]


def test_detect_fires_once_per_surge_then_cools_down() -> None:
    counts = [10] * 24 + [30, 30, 30] + [10] * 10 + [30]
    negs = [2] * 24 + [24, 25, 24] + [2] * 10 + [24]
    events = detect(_series(counts, negs), AlertRule(cooldown=6))
    assert [e.bucket_start for e in events] == [T0 + timedelta(hours=24), T0 + timedelta(hours=37)]
    first = events[0]
    assert first.signals == ["negative_share", "negative_volume", "volume"]
    assert first.baseline_share == pytest.approx((48 + 1) / (240 + 2))
    assert first.baseline_count == pytest.approx(10.0)
    assert first.z_share > 3 and first.count == 30
    # the surge buckets were kept out of the baseline, so the second surge is still seen
    assert events[1].baseline_share < 0.25


def test_detect_needs_volume_and_warm_up() -> None:
    small = detect(_series([10] * 24 + [3], [2] * 24 + [3]), AlertRule())
    assert small == []  # 3/3 negative: below min_volume and min_negatives
    cold = detect(_series([10, 10, 30], [2, 2, 25]), AlertRule())
    assert cold == []  # 20 baseline records < min_baseline
    steady = detect(_series([10] * 48, [2] * 48), AlertRule())
    assert steady == []
    volume_only = detect(_series([10] * 24 + [40], [2] * 24 + [8]), AlertRule())
    assert [e.signals for e in volume_only] == [["volume"]]
    busy_morning = detect(_series([2, 10] * 12 + [14], [0, 2] * 12 + [3]), AlertRule())
    assert busy_morning == []  # expected volume follows the busy half, not the daily mean


def test_two_moderate_buckets_together_fire_once() -> None:
    # 5/8 then 5/8 negative against a 20% baseline: weak alone, clear together
    events = detect(_series([8] * 24 + [8, 8], [1, 2] * 12 + [5, 5]), AlertRule())
    assert len(events) == 1 and events[0].bucket_start == T0 + timedelta(hours=25)
    assert events[0].count == 16
    assert detect(_series([8] * 24 + [8, 8], [1, 2] * 12 + [5, 5]), AlertRule(span=1)) == []


def test_rule_overrides_are_checked() -> None:
    rule = AlertRule.from_dict({"min_volume": 3, "bucket": "15m"})
    assert rule.min_volume == 3 and rule.seconds == 900 and rule.window == 24
    with pytest.raises(DataError, match="unknown alert rule setting"):
        AlertRule.from_dict({"min_volum": 3})


def test_ingest_runs_alerts_stores_them_once(db: Database, scorer, tmp_path: Path) -> None:
    save_topics(db, [WatchTopic("banking", ["lender"])])
    feed = _feed(tmp_path / "feed.jsonl", 36, 10, {30: (30, 25), 31: (30, 25)})
    engine = AlertEngine()
    ingester = Ingester(db, scorer, TopicMatcher([WatchTopic("banking", ["lender"])]),
                        alerts=engine)
    report = ingester.ingest_file(feed)
    assert report.stored == 36 * 10 + 40
    assert [a["bucket_start"] for a in report.alerts] == [(T0 + timedelta(hours=30)).isoformat()]
    assert engine.evaluate(db) == []  # idempotent: nothing new the second time
    stored = list_alerts(db)
    assert len(stored) == 1 and stored[0].topic == "banking"
    assert "negative share" in stored[0].message

    series = trends(db, topic="banking", bucket="1h")["banking"]
    assert len(series) == 36 and series[30].count == 30 and series[30].negative == 25
    everything = trends(db, topic=ALL, bucket="1d")[ALL]
    assert [b.count for b in everything] == [240, 160]
    with pytest.raises(NotFoundError, match="unknown topic 'crypto'"):
        trends(db, topic="crypto")

    png = plot_trends(trends(db), tmp_path / "chart.png",
                      alerts={"banking": [a.bucket_start for a in stored]})
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_ancient_record_is_ingested_but_trends_ask_for_since(
    db: Database, scorer, tmp_path: Path
) -> None:
    feed = _feed(tmp_path / "feed.jsonl", 3, 5, {})
    with feed.open("a") as f:
        f.write(json.dumps({"id": "old", "timestamp": 0, "text": "Lender opens branch"}) + "\n")
    ingester = Ingester(db, scorer, TopicMatcher([WatchTopic("banking", ["lender"])]),
                        alerts=AlertEngine())
    assert ingester.ingest_file(feed).stored == 16  # alert checks stay bounded
    with pytest.raises(DataError, match="pass --since or a larger --bucket"):
        trends(db, topic="banking", bucket="1h")
    recent = trends(db, topic="banking", bucket="1h", since=T0.isoformat())["banking"]
    assert [b.count for b in recent] == [5, 5, 5]



def test_a_record_from_the_future_cannot_hide_the_present(
    db: Database, scorer, tmp_path: Path
) -> None:
    """Issue 24: one record dated 9999 (stored before ingest refused it, here by an ingester
    whose clock is wrong) stretched trends to that year, and of the newest 20,000 buckets
    kept none held the last hour's records."""
    now = datetime.now(timezone.utc)
    matcher = TopicMatcher([WatchTopic("banking", ["lender"])])
    recent = tmp_path / "recent.jsonl"
    recent.write_text("".join(json.dumps({"id": f"r{i}", "text": f"{NEG} {i}", "timestamp": (
        now - timedelta(minutes=10 * i)).isoformat()}) + "\n" for i in range(3)))
    assert Ingester(db, scorer, matcher).ingest_file(recent).stored == 3
    far = tmp_path / "far.jsonl"
    far.write_text(json.dumps({"id": "far", "text": POS, "timestamp": "9999-12-31"}) + "\n")
    wrong_clock = Ingester(db, scorer, matcher, now=lambda: datetime(9999, 12, 30,
                                                                    tzinfo=timezone.utc))
    assert wrong_clock.ingest_file(far).stored == 1
    for topic in ("banking", ALL):
        series = trends(db, topic=topic, bucket="1h", since="48h")[topic]
        assert sum(b.count for b in series) == 3 and 48 <= len(series) <= 50
        assert series[-1].start <= now
        every = trends(db, topic=topic, bucket="1h")[topic]  # no since: the same horizon
        assert sum(b.count for b in every) == 3 and every[-1].start <= now


def test_topic_rule_override_used(db: Database, scorer, tmp_path: Path) -> None:
    strict = {"min_volume": 100, "min_negatives": 100}
    save_topics(db, [WatchTopic("banking", ["lender"], rule=strict)])
    feed = _feed(tmp_path / "feed.jsonl", 30, 10, {26: (30, 25)})
    Ingester(db, scorer, TopicMatcher([WatchTopic("banking", ["lender"])])).ingest_file(feed)
    assert AlertEngine().evaluate(db) == []  # 30 records, 25 negative: below both minimums
    save_topics(db, [WatchTopic("banking", ["lender"])])
    assert len(AlertEngine().evaluate(db)) == 1


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(lambda path: 200 if "fail" not in path else 500) as hook:
        yield hook


@pytest.fixture
def hook_url(receiver: WebhookReceiver, local_webhooks: None) -> str:
    return receiver.url("")


def test_webhook_receives_alert(
    db: Database, scorer, tmp_path: Path, receiver: WebhookReceiver, hook_url: str
) -> None:
    save_topics(db, [WatchTopic("banking", ["lender"])])
    feed = _feed(tmp_path / "feed.jsonl", 30, 10, {26: (30, 25)})
    matcher = TopicMatcher([WatchTopic("banking", ["lender"])])
    Ingester(db, scorer, matcher, alerts=AlertEngine(webhook=hook_url + "/hook")).ingest_file(feed)
    assert len(receiver.bodies) == 1
    payload = receiver.bodies[0]
    assert payload["type"] == "sentiment_alert" and payload["topic"] == "banking"
    assert payload["count"] == 30 and "negative_share" in payload["signals"]
    assert list_alerts(db)[0].webhook_status == "200"


def test_webhook_errors_are_reported_not_raised(hook_url: str) -> None:
    assert post_webhook(hook_url + "/fail", {"a": 1}) == "error: HTTP 500"
    assert post_webhook("http://127.0.0.1:9/", {"a": 1}, timeout=1).startswith("error:")
    assert post_webhook("file:///etc/passwd", {}).startswith("error:")
    with pytest.raises(DataError, match="http"):
        AlertEngine(webhook="ftp://example.com")


def test_a_pooled_surge_shows_the_documents_of_every_pooled_bucket(
    db: Database, scorer, tmp_path: Path
) -> None:
    from apps.sentiment.documents import alert_documents

    save_topics(db, [WatchTopic("banking", ["lender"])])
    feed = _feed(tmp_path / "feed.jsonl", 26, 8, {24: (8, 5), 25: (8, 5)})
    report = Ingester(db, scorer, TopicMatcher([WatchTopic("banking", ["lender"])]),
                      alerts=AlertEngine()).ingest_file(feed)
    [alert] = report.alerts
    assert alert["window_buckets"] == 2 and alert["count"] == 16
    assert alert["window_start"] == (T0 + timedelta(hours=24)).isoformat()
    assert alert["bucket_start"] == (T0 + timedelta(hours=25)).isoformat()
    assert "in the 2 buckets to" in alert["message"]
    docs = alert_documents(db, alert["id"], limit=100)
    assert len(docs) == 16 and sum(d.label == "negative" for d in docs) == 10
    assert {d.published_at.hour for d in docs} == {0, 1}  # hours 24 and 25 after T0
