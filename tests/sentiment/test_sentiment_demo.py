"""``aigc demo`` (sentiment part): the broker path when Redis answers, else the file path.

The demo's classifier is replaced by the lexicon scorer and its encoder by the hashing one
(training MiniLM is the classifier tests' job); everything else is the demo as users run it:
the sample stream, the demo database, a real Redis stream and an in-process worker. The
Redis test is skipped when Redis does not answer, unless ``AIGC_REQUIRE_REDIS=1``.
"""

from __future__ import annotations

import functools
import os
import re
import socket
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select

from aigc_apps.registry import ModelRegistry
from apps.sentiment import demo as demo_mod
from apps.sentiment.broker import BrokerError, RedisStreamsBroker, alert_stream, redis_url
from apps.sentiment.classifier import SentimentModel
from apps.sentiment.scoring import LexiconScorer
from apps.sentiment.service import IngestOptions, SentimentService
from apps.sentiment.store import Alert, Record, open_db
from apps.sentiment.topics import TextEncoder


@pytest.fixture
def fast_demo(monkeypatch: pytest.MonkeyPatch, workspace: Path, hash_encoder: TextEncoder) -> Path:
    """The demo with a registered ``sentiment-demo`` (scored by the lexicon) and the hash
    encoder; returns the demo's database file."""
    monkeypatch.setattr(SentimentModel, "load", classmethod(lambda cls, *a, **k: LexiconScorer()))
    monkeypatch.setattr(demo_mod, "SentimentService",
                        functools.partial(SentimentService, encoder=hash_encoder))
    registry = ModelRegistry()
    registry.register(demo_mod.MODEL, workspace / "adapters" / "demo", app="sentiment",
                      role="sentiment", base="minilm-l6")
    registry.close()
    return workspace / "sentiment_demo.db"


def _run_demo() -> str:
    console = Console(record=True, width=200, color_system=None)
    demo_mod.demo(console)
    return console.export_text()


def _stored(path: Path) -> tuple[int, list[tuple[str, str]]]:
    db = open_db(f"sqlite:///{path}")
    try:
        with db.session() as s:
            records = len(s.scalars(select(Record.id)).all())
            alerts = [(a.topic, a.bucket_start.isoformat())
                      for a in s.scalars(select(Alert).order_by(Alert.topic))]
        return records, alerts
    finally:
        db.dispose()


def _file_path_figures(tmp_path: Path, encoder: TextEncoder
                       ) -> tuple[int, list[tuple[str, str]], int, int]:
    """What today's file path stores from the sample stream: records, alerts, skipped
    lines, duplicates."""
    path = tmp_path / "file-path.db"
    with SentimentService(f"sqlite:///{path}", encoder=encoder) as service:
        service.load_topics(demo_mod.DATA / "topics.txt")
        report = service.ingest_file(demo_mod.DATA / "stream.jsonl",
                                     IngestOptions(source="demo", model=demo_mod.MODEL))
    records, alerts = _stored(path)
    assert report.stored == records
    return records, alerts, len(report.skipped), report.duplicates


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_without_redis_says_so_and_uses_the_file_path(
    fast_demo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hash_encoder: TextEncoder
) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    monkeypatch.setenv("AIGC_REDIS_URL", url)
    out = _run_demo()
    assert f"Redis does not answer at {url}: using the file path." in out
    assert "broker:" not in out and "Ingesting stream.jsonl" in out
    records, alerts, skipped, _ = _file_path_figures(tmp_path, hash_encoder)
    assert _stored(fast_demo) == (records, alerts)
    assert records > 1000 and skipped >= 1
    assert len(re.findall(r"skipped line \d+:", out)) == skipped
    assert any(topic == "banking" for topic, _ in alerts)
    assert "banking" in out.split("5. Alerts")[1]


def _redis_answers() -> bool:
    try:
        broker = RedisStreamsBroker(retries=1, timeout=1.0)
        broker.ping()
        broker.close()
        return True
    except BrokerError:
        return False


def test_demo_with_redis_runs_the_broker_path(
    fast_demo: Path, tmp_path: Path, hash_encoder: TextEncoder
) -> None:
    if not _redis_answers():
        if os.environ.get("AIGC_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis required (AIGC_REQUIRE_REDIS=1) but {redis_url()} does not answer")
        pytest.skip(f"Redis not reachable at {redis_url()}")
    out = _run_demo()
    assert f"broker: Redis Streams at {redis_url()}" in out
    assert "does not answer" not in out
    records, alerts, skipped, duplicates = _file_path_figures(tmp_path, hash_encoder)
    # the stream stores exactly what the file path stores; broken lines are dead letters
    assert _stored(fast_demo) == (records, alerts)
    total = records + duplicates + skipped
    assert f"published {total} lines of stream.jsonl" in out
    assert (f"{records} stored, {duplicates} duplicates, {skipped} dead-lettered of {total} "
            "messages") in out
    assert len(re.findall(r"dead letter \d+-\d+: ", out)) == skipped
    assert f"{len(alerts)} alerts fired, {len(alerts)} published on" in out
    assert f"pending 0, lag 0, dead_letters {skipped}, documents stored {records}" in out
    name = re.search(r"stream (aigc-demo-sentiment-[0-9a-f]+) deleted", out)
    assert name is not None
    broker = RedisStreamsBroker()
    try:
        for key in (name[1], alert_stream(name[1]), f"{name[1]}:dead"):
            assert broker.info(key).length == 0  # nothing left on the broker
    finally:
        broker.close()
    assert "banking" in out.split("5. Alerts")[1]
    # a second run stores nothing new: every message is a duplicate of the demo database
    again = _run_demo()
    assert f"0 stored, {records + duplicates} duplicates, {skipped} dead-lettered" in again
    assert _stored(fast_demo) == (records, alerts)
