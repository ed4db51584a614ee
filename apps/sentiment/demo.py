"""``aigc demo`` for the sentiment monitor: train, ingest a stream with a surge, chart, alert.

Uses only the project's sample data (``data/sentiment``) and the bundled MiniLM. The model
is trained once per workspace (re-runs reuse it) and the demo keeps its records in its own
database file, so it never mixes with a real monitoring store.

When Redis answers (``AIGC_REDIS_URL``, default ``redis://127.0.0.1:6379/0``) the headlines
go the way a deployment runs them: published to a fresh stream (deleted afterwards) and
scored by one in-process stream worker until the stream is drained; broken lines become
dead letters. Otherwise the demo says so in one line and ingests the file directly.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from aigc_apps.errors import NotFoundError
from aigc_apps.settings import get_settings

from .classifier import FitOptions
from .render import trend_table
from .service import IngestOptions, SentimentService
from .store import as_utc

if TYPE_CHECKING:
    from .broker import RedisStreamsBroker

DATA = Path(__file__).resolve().parents[2] / "data" / "sentiment"
MODEL = "sentiment-demo"
PING_TIMEOUT_S = 1.0
DRAIN_LIMIT_S = 600.0  # a worker that cannot drain the demo stream in this long is stuck


def demo(console: Console) -> None:
    """Train a small classifier, replay three days of headlines, show trends and the alert."""
    home = get_settings().home
    console.rule("[bold]Financial sentiment monitor")
    with SentimentService(f"sqlite:///{(home / 'sentiment_demo.db').resolve()}") as service:
        _model(service, console)
        topics = service.load_topics(DATA / "topics.txt")
        console.print("2. Watch list: " + "; ".join(
            f"{t.name} ({', '.join(t.keywords[:3])}...)" for t in topics))
        stream = DATA / "stream.jsonl"
        broker = _broker(console)
        if broker is None:
            _ingest_file(service, stream, console)
        else:
            try:
                _ingest_stream(service, broker, stream, console)
            finally:
                broker.close()

        console.print(trend_table(service.trends(bucket="1d")))
        banking = service.trends("banking", bucket="1h", since="2024-05-08T06:00")
        console.print("   banking, hour by hour on 8 May:")
        console.print(trend_table({"banking": [b for b in banking["banking"]
                                               if b.start.hour < 16]}))

        chart = service.plot(service.trends(bucket="2h"), home / "sentiment_demo_trends.png",
                             title="Sample stream: sentiment share per topic (2h)")
        console.print(f"4. Chart written to [bold]{chart.resolve()}[/]")
        alerts = service.alerts(limit=100)
    table = Table("bucket (UTC)", "topic", "signals", "message", title="5. Alerts")
    for a in alerts:
        table.add_row(as_utc(a.bucket_start).strftime("%m-%d %H:%M"), a.topic, a.signals,
                      a.message)
    console.print(table if alerts else "5. No alerts fired.")
    console.print("Try: aigc sentiment score \"Regulators fine Northgate Bank over failures\"")


def _broker(console: Console) -> RedisStreamsBroker | None:
    """The Redis broker when it answers a quick ping, else ``None`` (and one line why)."""
    from .broker import BrokerError, RedisStreamsBroker, redis_url

    url = redis_url()
    try:
        broker = RedisStreamsBroker(url, retries=1, timeout=PING_TIMEOUT_S)
        broker.ping()
    except BrokerError:
        console.print(f"   Redis does not answer at {url}: using the file path.")
        return None
    return broker


def _ingest_file(service: SentimentService, stream: Path, console: Console) -> None:
    console.print(f"3. Ingesting {stream.name} (3 days of headlines, a few broken lines) ...")
    start = time.perf_counter()
    report = service.ingest_file(stream, IngestOptions(source="demo", model=MODEL))
    console.print(f"   {report.summary()} [{time.perf_counter() - start:.0f}s]")
    for skip in report.skipped:
        console.print(f"   skipped line {skip.row}: {skip.reason}")


def _ingest_stream(service: SentimentService, broker: RedisStreamsBroker, stream: Path,
                   console: Console) -> None:
    """Publish every line of ``stream`` to a fresh stream, drain it with one worker, report
    what was stored, dead-lettered and alerted, then delete the stream."""
    from .broker import alert_stream
    from .worker import StreamWorker

    name = f"aigc-demo-sentiment-{uuid.uuid4().hex[:8]}"
    group = "demo"
    console.print(f"3. broker: Redis Streams at {broker.url}")
    try:
        lines = [line for line in stream.read_bytes().splitlines() if line.strip()]
        published = len(broker.publish(name, lines))
        console.print(f"   published {published} lines of {stream.name} (3 days of headlines, "
                      f"a few broken lines) to stream {name}")
        worker = StreamWorker(service, broker, name, group=group, consumer="demo-worker",
                              batch_size=64, model=MODEL, source="demo", block_ms=200)
        start = time.perf_counter()
        deadline = time.monotonic() + DRAIN_LIMIT_S
        while time.monotonic() < deadline:
            if worker.step():
                continue
            info = broker.info(name, group)
            if info.pending == 0 and not info.lag:
                break
        worker.check_alerts()
        report = worker.report
        report.seconds = time.perf_counter() - start  # step() by step(), not run()
        console.print(f"   worker demo-worker: {report.summary()}")
        for dead in broker.dead_letters(name):
            text = (dead.payload or b"").decode("utf-8", "replace")
            console.print(f"   dead letter {dead.original_id}: {dead.error} "
                          f"({text[:50]!r})")
        alerts = broker.info(alert_stream(name)).length
        console.print(f"   {len(report.alerts)} alerts fired, {alerts} published on "
                      f"{alert_stream(name)}")
        info = broker.info(name, group)
        console.print(f"   status: stream length {info.length}, pending {info.pending}, "
                      f"lag {info.lag}, dead_letters {info.dead_letters}, "
                      f"documents stored {service.store_activity().stored}")
    finally:
        broker.delete(name)
        console.print(f"   stream {name} deleted")


def _model(service: SentimentService, console: Console) -> None:
    """The demo's classifier: trained once per workspace, reused afterwards."""
    try:
        service.registry.get(MODEL)
    except NotFoundError:
        pass
    else:
        console.print(f"1. Reusing the trained model [bold]{MODEL}[/] from this workspace.")
        return
    data = service.read_labelled(DATA / "headlines.csv")
    sizes = ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
    console.print(f"1. Training MiniLM + LoRA on {DATA / 'headlines.csv'} ({sizes}) ...")
    trained = service.train(data, MODEL, FitOptions(base="minilm-l6", epochs=8, max_length=48,
                                                    batch_size=16, progress=False))
    if trained.test is not None:
        console.print(f"   trained in {trained.train_seconds:.0f}s; test accuracy "
                      f"{trained.test.accuracy:.2f}, macro-F1 {trained.test.macro_f1:.2f}")
