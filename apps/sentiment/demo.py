"""``aigc demo`` for the sentiment monitor: train, ingest a stream with a surge, chart, alert.

Uses only the project's sample data (``data/sentiment``) and the bundled MiniLM. The model
is trained once per workspace (re-runs reuse it) and the demo keeps its records in its own
database file, so it never mixes with a real monitoring store.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aigc_apps.errors import NotFoundError
from aigc_apps.settings import get_settings

from .classifier import FitOptions
from .render import trend_table
from .service import IngestOptions, SentimentService
from .store import as_utc

DATA = Path(__file__).resolve().parents[2] / "data" / "sentiment"
MODEL = "sentiment-demo"


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
        console.print(f"3. Ingesting {stream.name} (3 days of headlines, a few broken lines) ...")
        start = time.perf_counter()
        report = service.ingest_file(stream, IngestOptions(source="demo", model=MODEL))
        console.print(f"   {report.summary()} [{time.perf_counter() - start:.0f}s]")
        for skip in report.skipped:
            console.print(f"   skipped line {skip.row}: {skip.reason}")

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
