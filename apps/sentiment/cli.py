"""``aigc sentiment ...``: train/eval/score the classifier, ingest feeds, trends, alerts, topics.

Each command parses its options, calls :class:`~apps.sentiment.service.SentimentService` and
prints the result; state lives in the app's database (``--db URL`` or the workspace
default) and the models in the core model registry. Every report takes ``--json``.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aigc_apps.console import (
    DbOpt,
    JsonOpt,
    LoraAlphaOpt,
    LoraDropoutOpt,
    LoraROpt,
    TargetModulesOpt,
    console,
    err_console,
    print_json,
)
from aigc_apps.errors import DataError

# Only light modules at import time, so that `aigc ... --help` starts at once: the service
# (SQLAlchemy, numpy) and the models are imported inside the commands that need them.
from .constants import ALL
from .reader import MAX_TEXT_CHARS
from .render import (
    alerts_table,
    confusion_table,
    models_table,
    per_class_table,
    scores_table,
    topics_table,
    trend_table,
)
from .stream_cli import stream_app

if TYPE_CHECKING:
    from .service import SentimentService

__all__ = ["app", "topics_app", "trend_table"]  # trend_table: imported from here in 0.1.0

app = typer.Typer(help="Financial sentiment monitor: classify news, watch topics, alert on surges.",
                  no_args_is_help=True)
topics_app = typer.Typer(help="Manage watch-list topics (name + keywords).", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(stream_app)  # publish, work, dead-letters, status

ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="Registered sentiment model (default: the active one).")]
TextCol = Annotated[str, typer.Option("--text-col", help="Column holding the text.")]
LabelCol = Annotated[str, typer.Option("--label-col", help="Column holding the sentiment label.")]
EmbedOpt = Annotated[bool, typer.Option(
    "--embeddings/--no-embeddings", help="Also match topics by embedding similarity.")]
ThresholdOpt = Annotated[float, typer.Option(
    "--similarity", help="Embedding similarity needed for a topic match.")]
WebhookOpt = Annotated[str | None, typer.Option(
    "--webhook", envvar="AIGC_SENTIMENT_WEBHOOK", help="POST new alerts here as JSON.")]


def _service(db: str | None = None, **options: Any) -> SentimentService:
    from aigc_apps.cli.context import settings_from

    from .service import SentimentService

    return SentimentService(db, settings=settings_from(), **options)


def _renamed(old: str, new: str, old_value: Any, value: Any) -> Any:
    """The value of a deprecated option spelling (the new spelling wins when both are given)."""
    if old_value is None:
        return value
    err_console.print(f"{old} is deprecated and will be removed in the next release; use {new}")
    return value if value is not None else old_value


@app.command()
def train(
    data: Annotated[list[str], typer.Option(
        "--data", help="Labelled CSV/JSONL file; repeat for several sources. Per source: "
        "PATH:key=value,... with text=, label=, split=, topic= (its columns), name= and "
        "map=SPELLING>LABEL (repeatable), e.g. 'tweets.csv:text=tweet,label=sentiment,"
        "map=bearish>negative'.")],
    name: Annotated[str, typer.Option("--name", help="Name to register the model under.")],
    text_col: Annotated[str, typer.Option(
        "--text-col", help="Column holding the text (for sources that do not say).")] = "text",
    label_col: Annotated[str, typer.Option(
        "--label-col", help="Column holding the sentiment label (for sources that do not "
        "say).")] = "label",
    topic_col: Annotated[str | None, typer.Option(
        "--topic-col", help="Column with topic labels: also train a topic classifier.")] = None,
    split_col: Annotated[str | None, typer.Option(
        "--split-col", help="Column with train/validation/test (default: 'split' when the file "
        "has it, else a seeded stratified split).")] = None,
    base: Annotated[str | None, typer.Option(
        "--base", help="Base model: an alias, a HF id or a folder (default: AIGC_ENCODER, "
        "minilm-l6).")] = None,
    epochs: Annotated[float, typer.Option("--epochs", help="Training epochs (> 0).")] = 4.0,
    max_steps: Annotated[int, typer.Option(
        "--max-steps", help="Stop after N steps (> 0; -1: train for --epochs).")] = -1,
    lr: Annotated[float | None, typer.Option(
        "--lr", help="Learning rate (default 1e-3 encoder, 1e-4 LLM).")] = None,
    lora_r: LoraROpt = None,
    lora_alpha: LoraAlphaOpt = None,
    lora_dropout: LoraDropoutOpt = None,
    target_modules: TargetModulesOpt = None,
    max_length: Annotated[int, typer.Option("--max-length", help="Tokens per text.")] = 96,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size.")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (split and training).")] = 42,
    balance: Annotated[float, typer.Option(
        "--balance", help="Per-source sampling weights, n**balance: 1 natural proportions, "
        "0 equal shares, 0.5 square-root (several sources only).")] = 0.5,
    normalize: Annotated[str, typer.Option(
        "--normalize", help="Text normalisation saved with the model: 'default' (URLs and "
        "@handles masked, the rest kept), 'none', or "
        "key=value,... over the default (cashtags=keep|mask|strip, urls=/users=keep|mask|drop, "
        "emoji=keep|name|drop, max_repeat=N, unescape_html=true|false).")] = "default",
    old_r: Annotated[int | None, typer.Option(
        "--r", hidden=True, min=1, help="Deprecated: use --lora-r.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune (LoRA) a sentiment classifier, and a topic classifier with --topic-col.

    Several --data sources train one model: mixed by --balance, the best epoch chosen on
    validation macro-F1 averaged per source, test figures reported per source. Label
    spellings: negative/neutral/positive, neg/neu/pos, bearish/bullish, -1/0/1 are known;
    0/1/2 codes need map=; a label that only some sources use is refused.
    The model is registered and becomes the active one, which ingest and score use.
    """
    from .classifier import FitOptions
    from .normalize import NormalizeConfig

    opts = FitOptions(  # checked before the data is read: nothing untrained is registered
        base=base, epochs=epochs, max_steps=max_steps, learning_rate=lr,
        lora_r=_renamed("--r", "--lora-r", old_r, lora_r), lora_alpha=lora_alpha,
        lora_dropout=lora_dropout, target_modules=target_modules, max_length=max_length,
        batch_size=batch_size, seed=seed, progress=not as_json, balance=balance,
        normalize=NormalizeConfig.parse(normalize),
    )
    with _service() as service:
        sources = service.read_sources(data, seed=seed, text_col=text_col, label_col=label_col,
                                       topic_col=topic_col, split_col=split_col)
        for labelled in sources:
            if labelled.skipped and not as_json:
                console.print(f"[yellow]{labelled.name}: {len(labelled.skipped)} rows skipped[/] "
                              f"(first: {labelled.skipped[0]})")
        report = service.train(sources, name, opts, topics=bool(topic_col))
    if as_json:
        print_json(report.to_dict())
        return
    console.print(f"registered [bold]{report.name}[/] ({report.base}) in {report.adapter_dir} "
                  f"after {report.train_seconds:.0f}s, now the active model; rows per split: "
                  + ", ".join(f"{k} {sum(v.values())}" for k, v in report.counts.items()))
    for split, ev in (("validation", report.validation), ("test", report.test)):
        if ev is not None:
            console.print(f"{split}: accuracy {ev.accuracy:.3f}, macro-F1 {ev.macro_f1:.3f}")
    for src in report.sources:
        carved = ", validation carved from train" if src.validation_carved else ""
        console.print(f"source [bold]{src.name}[/]: {src.mix.rows} training rows, weight "
                      f"{src.mix.share:.3f} ({src.mix.epoch_rows} rows per epoch, "
                      f"x{src.mix.repeats:.2f}){carved}")
        for split, ev in (("validation", src.validation), ("test", src.test)):
            if ev is not None:
                console.print(f"  {split}: accuracy {ev.accuracy:.3f}, "
                              f"macro-F1 {ev.macro_f1:.3f}")
    if report.sources:
        console.print(f"best epoch chosen on validation macro-F1 averaged over sources: "
                      f"{report.selection_macro_f1:.3f}")
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
    with _service() as service:
        result = service.evaluate(data, model, text_col=text_col, label_col=label_col,
                                  split=split, split_col=split_col)
    if as_json:
        print_json(result.to_dict())
        return
    report = result.report
    console.print(f"model {result.model} on {report.n} rows"
                  + (f" ({result.skipped} skipped)" if result.skipped else ""))
    console.print(f"accuracy {report.accuracy:.3f}   macro-F1 {report.macro_f1:.3f}")
    console.print(per_class_table(report))
    console.print(confusion_table(report))


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
    with _service(db, embeddings=embeddings, similarity=similarity) as service:
        rows = service.score(texts, model)
    if as_json:
        from .schemas import scored_out

        print_json([row.model_dump(mode="json") for row in scored_out(rows)])  # as the API
        return
    cut = [str(i) for i, row in enumerate(rows, start=1) if row.truncated]
    if cut:
        console.print(f"[yellow]text {', '.join(cut)} truncated[/] to the first "
                      f"{MAX_TEXT_CHARS:,} characters")
    console.print(scores_table(rows))


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
        "--batch-size", min=1, help="Texts per scoring batch (live feeds flush early when quiet).")
    ] = 256,
    webhook: WebhookOpt = None,
    alerts: Annotated[bool, typer.Option("--alerts/--no-alerts", help="Run alert rules.")
                      ] = True,
    idle_timeout: Annotated[float | None, typer.Option(
        "--idle-timeout", help="With --follow: stop after N quiet seconds.")] = None,
    embeddings: EmbedOpt = True,
    similarity: ThresholdOpt = 0.4,
    as_json: JsonOpt = False,
) -> None:
    """Score and store records (deduplicated), match topics, fire alerts.

    Duplicates: same source and id, same source and text, or same id and text.

    A feed without records, without a text column or without a usable row is an error.
    """
    from .service import IngestOptions

    options = IngestOptions(source=source, text_col=text_col, model=model,
                            batch_size=batch_size, alerts=alerts, webhook=webhook)

    def shout(alert: dict[str, Any]) -> None:
        if not as_json:
            console.print(f"[bold red]ALERT[/] {alert['message']}")

    path = None if source_file == "-" else source_file
    with _service(db, embeddings=embeddings, similarity=similarity) as service:
        if follow:
            stop = threading.Event()
            previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
            try:
                report = service.follow(path, options, fmt=fmt, stop=stop,
                                        idle_timeout=idle_timeout, on_alert=shout)
            finally:
                signal.signal(signal.SIGINT, previous)
        elif path is None:
            report = service.ingest_stream(sys.stdin.buffer, options, fmt=fmt, on_alert=shout)
        else:
            report = service.ingest_file(path, options, fmt=fmt, on_alert=shout)
    if as_json:
        from .schemas import fired_json

        print_json({**report.to_dict(), "alerts": fired_json(report.alerts)})
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
    with _service(db) as service:
        series = service.trends(topic, bucket=bucket, since=since)
        if plot is not None:
            written = service.plot(series, plot)
            if not as_json:
                console.print(f"chart written to {written}")
    if as_json:
        from .schemas import series_out

        print_json([b.model_dump(mode="json")  # the API's buckets, of every topic, non-empty
                    for buckets in series_out(series).values() for b in buckets if b.count])
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
    webhook: WebhookOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stored alerts, newest first."""
    with _service(db) as service:
        if check:
            service.check_alerts(topic, webhook=webhook)
        found = service.alerts(topic, since=since, limit=limit)
        if as_json:
            from .schemas import alerts_out

            print_json([a.model_dump(mode="json") for a in alerts_out(found)])  # as the API
            return
        console.print(alerts_table(found) if found else "no alerts")


@app.command()
def models(as_json: JsonOpt = False) -> None:
    """Registered sentiment models with their labels, metrics and which one is active."""
    from .registry import model_summary

    with _service() as service:
        found = service.models()
    if as_json:
        print_json([model_summary(m) for m in found])
        return
    console.print(models_table(found) if found else "no sentiment models yet")


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
    overrides: dict[str, str] = {}
    for item in rule or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise DataError(f"--rule {item!r}: expected key=value")
        overrides[key.strip()] = value.strip()
    with _service(db) as service:
        service.add_topic(name, keywords, overrides)
    console.print(f"topic {name!r} saved")


@topics_app.command("load")
def topics_load(
    path: Annotated[Path, typer.Argument(help="Topics file: 'name: kw, kw' lines or JSON.")],
    db: DbOpt = None,
) -> None:
    """Add or replace topics from a file."""
    with _service(db) as service:
        loaded = service.load_topics(path)
    console.print(f"{len(loaded)} topics saved: {', '.join(t.name for t in loaded)}")


@topics_app.command("list")
def topics_list(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Watch-list topics and their keywords."""
    with _service(db) as service:
        found = service.topics()
    if as_json:
        print_json([{"name": t.name, "keywords": t.keywords, "rule": t.rule} for t in found])
        return
    console.print(topics_table(found) if found else
                  "no topics yet (add with `aigc sentiment topics add`)")


@topics_app.command("remove")
def topics_remove(name: Annotated[str, typer.Argument(help="Topic to remove.")],
                  db: DbOpt = None) -> None:
    """Remove a topic (records keep their stored topic tags)."""
    with _service(db) as service:
        service.remove_topic(name)
    console.print(f"topic {name!r} removed")
