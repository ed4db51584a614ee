"""``aigc sentiment ...``: train/eval/score the classifier, ingest feeds, trends, alerts, topics.

State lives in the app's database (``--db URL`` or the workspace default); models in the
adapter registry. Every report takes ``--json`` for scripts and dashboards.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from aigc_apps.console import DbOpt, JsonOpt, console, print_json
from aigc_apps.errors import DataError

# Only light modules at import time, so that `aigc ... --help` starts at once: everything
# else is imported inside the command that needs it. (`.trends` loads SQLAlchemy, only for
# ALL in a help text; ALL would best live in a light module.)
from .reader import MAX_TEXT_CHARS
from .trends import ALL

if TYPE_CHECKING:
    from aigc_apps.store import Database

    from .topics import TopicMatcher
    from .trends import Bucket

app = typer.Typer(help="Financial sentiment monitor: classify news, watch topics, alert on surges.",
                  no_args_is_help=True)
topics_app = typer.Typer(help="Manage watch-list topics (name + keywords).", no_args_is_help=True)
app.add_typer(topics_app, name="topics")

ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="Registered sentiment model (default: the newest one).")]
TextCol = Annotated[str, typer.Option("--text-col", help="Column holding the text.")]
LabelCol = Annotated[str, typer.Option("--label-col", help="Column holding the sentiment label.")]


def _matcher(db: Database, model: Any, embeddings: bool, threshold: float) -> TopicMatcher:
    from .topics import TopicMatcher, list_topics

    encoder = None
    topics = list_topics(db)
    if embeddings and topics:
        from aigc_apps.embeddings import Encoder

        encoder = Encoder.cached()
    return TopicMatcher(topics, encoder=encoder, threshold=threshold,
                        topic_model=getattr(model, "topic_classifier", None))


EmbedOpt = Annotated[bool, typer.Option(
    "--embeddings/--no-embeddings", help="Also match topics by embedding similarity.")]
ThresholdOpt = Annotated[float, typer.Option(
    "--similarity", help="Embedding similarity needed for a topic match.")]


@app.command()
def train(
    data: Annotated[Path, typer.Option("--data", help="Labelled CSV/JSONL file.")],
    name: Annotated[str, typer.Option("--name", help="Name to register the model under.")],
    text_col: TextCol = "text",
    label_col: LabelCol = "label",
    topic_col: Annotated[str | None, typer.Option(
        "--topic-col", help="Column with topic labels: also train a topic classifier.")] = None,
    split_col: Annotated[str | None, typer.Option(
        "--split-col", help="Column with train/validation/test (default: 'split' when the file "
        "has it, else a seeded stratified split).")] = None,
    base: Annotated[str, typer.Option(
        "--base", help="Base model: minilm-l6, smollm2-135m-instruct or a HF id/folder.")
    ] = "minilm-l6",
    epochs: Annotated[float, typer.Option("--epochs", help="Training epochs.")] = 4.0,
    max_steps: Annotated[int, typer.Option("--max-steps", help="Stop after N steps (>0).")] = -1,
    lr: Annotated[float | None, typer.Option(
        "--lr", help="Learning rate (default 1e-3 encoder, 1e-4 LLM).")] = None,
    r: Annotated[int, typer.Option("--r", help="LoRA rank.")] = 16,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per text.")] = 96,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size.")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (split and training).")] = 42,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune (LoRA) a sentiment classifier, and a topic classifier with --topic-col."""
    from .classifier import FitOptions, train_sentiment
    from .evaluation import load_labelled

    labelled = load_labelled(data, text_col=text_col, label_col=label_col, topic_col=topic_col,
                             split_col=split_col or "split", require_split=bool(split_col),
                             seed=seed)
    if labelled.skipped and not as_json:
        console.print(f"[yellow]{len(labelled.skipped)} rows skipped[/] "
                      f"(first: {labelled.skipped[0]})")
    opts = FitOptions(base=base, epochs=epochs, max_steps=max_steps, learning_rate=lr, r=r,
                      max_length=max_length, batch_size=batch_size, seed=seed,
                      progress=not as_json)
    report = train_sentiment(labelled, name, opts, topics=bool(topic_col))
    if as_json:
        print_json(report.to_dict())
        return
    console.print(f"registered [bold]{report.name}[/] ({report.base}) in {report.adapter_dir} "
                  f"after {report.train_seconds:.0f}s; rows per split: "
                  + ", ".join(f"{k} {sum(v.values())}" for k, v in report.counts.items()))
    for split, ev in (("validation", report.validation), ("test", report.test)):
        if ev is not None:
            console.print(f"{split}: accuracy {ev.accuracy:.3f}, macro-F1 {ev.macro_f1:.3f}")
    if report.topic_model:
        extra = f", test accuracy {report.topic_test.accuracy:.3f}" if report.topic_test else ""
        console.print(f"topic classifier [bold]{report.topic_model}[/]{extra}")


@app.command("eval")
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Labelled CSV/JSONL file.")],
    model: ModelOpt = None,
    text_col: TextCol = "text",
    label_col: LabelCol = "label",
    split: Annotated[str | None, typer.Option(
        "--split", help="Only rows of this split (e.g. test); omit for all rows.")] = None,
    split_col: Annotated[str, typer.Option("--split-col", help="Column naming the split.")
                         ] = "split",
    as_json: JsonOpt = False,
) -> None:
    """Accuracy, macro-F1, per-class precision/recall/F1 and confusion matrix on a file."""
    from .classifier import SentimentModel, evaluate_model
    from .evaluation import load_labelled

    labelled = load_labelled(data, text_col=text_col, label_col=label_col,
                             split_col=split_col if split else None)
    if split:
        key = {"val": "validation", "valid": "validation", "dev": "validation"}.get(split, split)
        if key not in labelled.splits:
            raise DataError(f"unknown --split {split!r} (use train, validation or test)")
        rows = labelled.splits[key]
        if not rows or not labelled.split_from_column:
            raise DataError(f"{data}: no rows with {split_col}={split!r}")
    else:
        rows = [r for part in labelled.splits.values() for r in part]
    scorer = SentimentModel.load(model, with_topics=False)
    report = evaluate_model(scorer, rows)
    if as_json:
        print_json({"model": scorer.name, "skipped": len(labelled.skipped), **report.to_dict()})
        return
    console.print(f"model {scorer.name} on {report.n} rows"
                  + (f" ({len(labelled.skipped)} skipped)" if labelled.skipped else ""))
    console.print(f"accuracy {report.accuracy:.3f}   macro-F1 {report.macro_f1:.3f}")
    table = Table("label", "precision", "recall", "F1", "support")
    for label, m in report.per_class.items():
        table.add_row(label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
                      str(int(m["support"])))
    console.print(table)
    cm = Table("true \\ predicted", *report.labels, title="confusion matrix")
    for label, row in zip(report.labels, report.confusion, strict=True):
        cm.add_row(label, *map(str, row))
    console.print(cm)


@app.command()
def score(
    texts: Annotated[list[str], typer.Argument(help="Texts to score.")],
    model: ModelOpt = None,
    db: DbOpt = None,
    embeddings: EmbedOpt = True,
    similarity: ThresholdOpt = 0.4,
    as_json: JsonOpt = False,
) -> None:
    """Label, probabilities and topics of each text (nothing is stored)."""
    from .classifier import SentimentModel
    from .scoring import LABELS
    from .store import open_db

    texts = [t.strip() for t in texts]
    empty = [i for i, t in enumerate(texts, start=1) if not t]
    if empty:  # a label for nothing would look like a real prediction
        raise DataError(f"text {empty[0]} is empty: nothing to score")
    long = [i for i, t in enumerate(texts, start=1) if len(t) > MAX_TEXT_CHARS]
    if long and not as_json:
        console.print(f"[yellow]text {', '.join(map(str, long))} truncated[/] to the first "
                      f"{MAX_TEXT_CHARS:,} characters")
    texts = [t[:MAX_TEXT_CHARS] for t in texts]
    scorer = SentimentModel.load(model)
    probs = scorer.predict_proba(texts)
    hits = _matcher(open_db(db), scorer, embeddings, similarity).match(texts)
    rows: list[dict[str, Any]] = [
        {"text": t, "truncated": i in long, "label": LABELS[int(p.argmax())],
         "probabilities": {lab: round(float(v), 4) for lab, v in zip(LABELS, p, strict=True)},
         "score": round(float(p[2] - p[0]), 4),
         "topics": [{"topic": h.topic, "method": h.method, "similarity": round(h.similarity, 3)}
                    for h in found]}
        for i, (t, p, found) in enumerate(zip(texts, probs, hits, strict=True), start=1)
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("text", "label", *LABELS, "topics")
    for row in rows:
        table.add_row(row["text"][:80], row["label"],
                      *(f"{row['probabilities'][lab]:.2f}" for lab in LABELS),
                      ", ".join(f"{h['topic']} ({h['method']})" for h in row["topics"]) or "-")
    console.print(table)


@app.command()
def ingest(
    source_file: Annotated[str, typer.Argument(help="CSV/JSONL file, or - for stdin.")],
    source: Annotated[str | None, typer.Option(
        "--source", help="Source name for records without one.")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep reading as the file grows (Ctrl-C to stop).")] = False,
    fmt: Annotated[str | None, typer.Option("--format", help="csv, tsv or jsonl.")] = None,
    text_col: Annotated[str | None, typer.Option(
        "--text-col", help="Text column (default: text, headline, title, ...).")] = None,
    model: ModelOpt = None,
    db: DbOpt = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Texts per scoring batch (live feeds flush early when quiet).")
    ] = 256,
    webhook: Annotated[str | None, typer.Option(
        "--webhook", envvar="AIGC_SENTIMENT_WEBHOOK", help="POST new alerts here as JSON.")
    ] = None,
    alerts: Annotated[bool, typer.Option("--alerts/--no-alerts", help="Run alert rules.")
                      ] = True,
    idle_timeout: Annotated[float | None, typer.Option(
        "--idle-timeout", help="With --follow: stop after N quiet seconds.")] = None,
    embeddings: EmbedOpt = True,
    similarity: ThresholdOpt = 0.4,
    as_json: JsonOpt = False,
) -> None:
    """Score and store records (deduplicated), match topics, fire alerts."""
    from .alerts import AlertEngine
    from .classifier import SentimentModel
    from .ingest import Ingester
    from .store import open_db

    database = open_db(db)
    scorer = SentimentModel.load(model)
    engine = AlertEngine(webhook=webhook) if alerts else None

    def shout(alert: dict[str, Any]) -> None:
        if not as_json:
            console.print(f"[bold red]ALERT[/] {alert['message']}")

    default_source = source or ("stdin" if source_file == "-" else Path(source_file).name)
    ingester = Ingester(database, scorer, _matcher(database, scorer, embeddings, similarity),
                        source=default_source, text_col=text_col, batch_size=batch_size,
                        alerts=engine, on_alert=shout)
    if follow:
        stop = threading.Event()
        previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
        try:
            report = ingester.follow(None if source_file == "-" else source_file, fmt=fmt,
                                     stop=stop, idle_timeout=idle_timeout)
        finally:
            signal.signal(signal.SIGINT, previous)
    elif source_file == "-":
        report = ingester.ingest_stream(sys.stdin.buffer, fmt=fmt)
    else:
        report = ingester.ingest_file(source_file, fmt=fmt)
    if as_json:
        print_json(report.to_dict())
        return
    console.print(report.summary())
    if report.truncated:
        console.print(f"[yellow]{len(report.truncated)} texts truncated[/] to the first "
                      f"{MAX_TEXT_CHARS:,} characters "
                      f"(lines {', '.join(map(str, report.truncated[:5]))})")
    for skip in report.skipped[:10]:
        console.print(f"  skipped line {skip.row}: {skip.reason}")
    if len(report.skipped) > 10:
        console.print(f"  ... and {len(report.skipped) - 10} more")


def trend_table(series: dict[str, list[Bucket]], limit: int | None = None) -> Table:
    table = Table("topic", "bucket (UTC)", "n", "neg", "neu", "pos", "neg share", "mean score")
    for topic, buckets in series.items():
        shown = [b for b in buckets if b.count]
        for b in shown[-limit:] if limit else shown:
            table.add_row(topic, b.start.strftime("%Y-%m-%d %H:%M"), str(b.count),
                          str(b.negative), str(b.neutral), str(b.positive),
                          f"{b.share_negative:.0%}", f"{b.mean_score:+.2f}")
    return table


@app.command("trends")
def trends_cmd(
    topic: Annotated[str | None, typer.Option(
        "--topic", "-t", help=f"One topic ('{ALL}' = every record); default: each topic.")
    ] = None,
    bucket: Annotated[str, typer.Option("--bucket", help="Bucket size: 15m, 1h, 1d ...")] = "1h",
    since: Annotated[str | None, typer.Option(
        "--since", help="ISO time or a duration back from now (24h, 7d).")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a chart (PNG) here.")
                    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Counts, negative share and mean score per topic and time bucket."""
    from .alerts import list_alerts
    from .store import as_utc, open_db
    from .trends import trends

    database = open_db(db)
    series = trends(database, topic=topic, bucket=bucket, since=since)
    if plot is not None:
        from .plot import plot_trends

        fired: dict[str, list[Any]] = {}
        for alert in list_alerts(database, limit=10_000):
            fired.setdefault(alert.topic, []).append(as_utc(alert.bucket_start))
        written = plot_trends(series, plot, alerts=fired)
        if not as_json:
            console.print(f"chart written to {written}")
    if as_json:
        print_json([b.to_dict() for buckets in series.values() for b in buckets if b.count])
        return
    if not series:
        console.print("no records yet (ingest some with `aigc sentiment ingest`)")
        return
    console.print(trend_table(series))


@app.command("alerts")
def alerts_cmd(
    topic: Annotated[str | None, typer.Option("--topic", "-t", help="Only this topic.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time or duration (24h).")
                     ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Most recent N alerts.")] = 50,
    check: Annotated[bool, typer.Option(
        "--check", help="Run the alert rules over stored records first.")] = False,
    webhook: Annotated[str | None, typer.Option(
        "--webhook", envvar="AIGC_SENTIMENT_WEBHOOK", help="With --check: POST new alerts.")
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stored alerts, newest first."""
    from .alerts import AlertEngine, list_alerts
    from .store import open_db
    from .trends import check_topic, parse_since

    database = open_db(db)
    if topic:
        check_topic(database, topic)
    if check:
        AlertEngine(webhook=webhook).evaluate(database, [topic] if topic else None)
    found = list_alerts(database, topic, parse_since(since) if since else None, limit)
    if as_json:
        print_json([a.to_dict() for a in found])
        return
    if not found:
        console.print("no alerts")
        return
    table = Table("bucket (UTC)", "topic", "signals", "n", "neg share", "baseline", "webhook")
    for a in found:
        d = a.to_dict()
        table.add_row(d["bucket_start"][:16].replace("T", " "), a.topic, a.signals,
                      str(a.count), f"{a.negative_share:.0%}", f"{a.baseline_share:.0%}",
                      a.webhook_status or "-")
    console.print(table)


@app.command()
def models(as_json: JsonOpt = False) -> None:
    """Registered sentiment models with their labels and metrics."""
    from .classifier import sentiment_models

    found = sentiment_models()
    if as_json:
        print_json([{"name": m.name, "base": m.base_model, "path": str(m.path), **m.metrics}
               for m in found])
        return
    table = Table("name", "base", "labels", "val acc", "test acc", "test macro-F1", "topics")
    for m in found:
        x = m.metrics
        table.add_row(m.name, m.base_model, ",".join(x.get("labels", [])),
                      str(x.get("validation_accuracy", "-")), str(x.get("test_accuracy", "-")),
                      str(x.get("test_macro_f1", "-")), x.get("topic_model") or "-")
    console.print(table if found else "no sentiment models yet")


@topics_app.command("add")
def topics_add(
    name: Annotated[str, typer.Argument(help="Topic name, e.g. rates.")],
    keywords: Annotated[str, typer.Option(
        "--keywords", "-k", help="Comma-separated keywords/entities.")],
    rule: Annotated[list[str] | None, typer.Option(
        "--rule", help="Alert rule override key=value (e.g. min_volume=20), repeatable.")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Add or replace a watch-list topic."""
    from .alerts import AlertRule
    from .store import open_db
    from .topics import WatchTopic, save_topics

    overrides: dict[str, Any] = {}
    for item in rule or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise DataError(f"--rule {item!r}: expected key=value")
        overrides[key.strip()] = value.strip() if key.strip() == "bucket" else float(value)
    checked = AlertRule.from_dict(overrides)
    clean = {k: getattr(checked, k) for k in overrides}
    save_topics(open_db(db), [WatchTopic(name, keywords.split(","), clean)])
    console.print(f"topic {name!r} saved")


@topics_app.command("load")
def topics_load(
    path: Annotated[Path, typer.Argument(help="Topics file: 'name: kw, kw' lines or JSON.")],
    db: DbOpt = None,
) -> None:
    """Add or replace topics from a file."""
    from .store import open_db
    from .topics import load_topics_file, save_topics

    loaded = load_topics_file(path)
    save_topics(open_db(db), loaded)
    console.print(f"{len(loaded)} topics saved: {', '.join(t.name for t in loaded)}")


@topics_app.command("list")
def topics_list(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Watch-list topics and their keywords."""
    from .store import open_db
    from .topics import list_topics

    found = list_topics(open_db(db))
    if as_json:
        print_json([{"name": t.name, "keywords": t.keywords, "rule": t.rule} for t in found])
        return
    table = Table("topic", "keywords", "rule overrides")
    for t in found:
        table.add_row(t.name, ", ".join(t.keywords), json.dumps(t.rule) if t.rule else "-")
    console.print(table if found else "no topics yet (add with `aigc sentiment topics add`)")


@topics_app.command("remove")
def topics_remove(name: Annotated[str, typer.Argument(help="Topic to remove.")],
                  db: DbOpt = None) -> None:
    """Remove a topic (records keep their stored topic tags)."""
    from .store import open_db
    from .topics import remove_topic

    remove_topic(open_db(db), name)
    console.print(f"topic {name!r} removed")
