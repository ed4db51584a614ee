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

from aigc_apps.settings import get_settings

from .alerts import AlertEngine, list_alerts
from .classifier import FitOptions, SentimentModel, sentiment_models, train_sentiment
from .cli import trend_table
from .evaluation import load_labelled
from .ingest import Ingester
from .plot import plot_trends
from .store import as_utc, open_db
from .topics import TopicMatcher, list_topics, load_topics_file, save_topics
from .trends import trends

DATA = Path(__file__).resolve().parents[2] / "data" / "sentiment"
MODEL = "sentiment-demo"


def demo(console: Console) -> None:
    """Train a small classifier, replay three days of headlines, show trends and the alert."""
    home = get_settings().home
    console.rule("[bold]Financial sentiment monitor")
    if any(m.name == MODEL for m in sentiment_models()):
        console.print(f"1. Reusing the trained model [bold]{MODEL}[/] from this workspace.")
    else:
        data = load_labelled(DATA / "headlines.csv", text_col="text", label_col="label")
        sizes = ", ".join(f"{k} {len(v)}" for k, v in data.splits.items())
        console.print(f"1. Training MiniLM + LoRA on {DATA / 'headlines.csv'} ({sizes}) ...")
        trained = train_sentiment(
            data, MODEL,
            FitOptions(epochs=8, max_length=48, batch_size=16,
                       progress=False),
        )
        if trained.test is not None:
            console.print(f"   trained in {trained.train_seconds:.0f}s; test accuracy "
                          f"{trained.test.accuracy:.2f}, macro-F1 {trained.test.macro_f1:.2f}")
    model = SentimentModel.load(MODEL)

    db = open_db(f"sqlite:///{(home / 'sentiment_demo.db').resolve()}")
    save_topics(db, load_topics_file(DATA / "topics.txt"))
    topics = list_topics(db)
    console.print("2. Watch list: " + "; ".join(f"{t.name} ({', '.join(t.keywords[:3])}...)"
                                               for t in topics))
    from aigc_apps.embeddings import Encoder

    matcher = TopicMatcher(topics, encoder=Encoder.cached())
    stream = DATA / "stream.jsonl"
    console.print(f"3. Ingesting {stream.name} (3 days of headlines, a few broken lines) ...")
    start = time.perf_counter()
    report = Ingester(db, model, matcher, source="demo", alerts=AlertEngine()).ingest_file(stream)
    console.print(f"   {report.summary()} [{time.perf_counter() - start:.0f}s]")
    for skip in report.skipped:
        console.print(f"   skipped line {skip.row}: {skip.reason}")

    daily = trends(db, bucket="1d")
    console.print(trend_table(daily))
    banking = trends(db, topic="banking", bucket="1h", since="2024-05-08T06:00")
    hours = {"banking": [b for b in banking["banking"] if b.start.hour < 16]}
    console.print("   banking, hour by hour on 8 May:")
    console.print(trend_table(hours))

    alerts = list_alerts(db)
    fired: dict[str, list] = {}
    for a in alerts:
        fired.setdefault(a.topic, []).append(as_utc(a.bucket_start))
    chart = plot_trends(trends(db, bucket="2h"), home / "sentiment_demo_trends.png",
                        alerts=fired, title="Sample stream: sentiment share per topic (2h)")
    console.print(f"4. Chart written to [bold]{chart.resolve()}[/]")
    table = Table("bucket (UTC)", "topic", "signals", "message", title="5. Alerts")
    for a in alerts:
        table.add_row(as_utc(a.bucket_start).strftime("%m-%d %H:%M"), a.topic, a.signals,
                      a.message)
    console.print(table if alerts else "5. No alerts fired.")
    console.print("Try: aigc sentiment score \"Regulators fine Northgate Bank over failures\"")
