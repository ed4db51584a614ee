"""``aigc sentiment publish | work | dead-letters | status``: the live pipeline on a broker.

``publish`` puts a file's records on a stream (one message each), ``work`` scores and
stores them as one member of a consumer group (run several for scale-out), ``dead-letters``
lists or replays what could not be stored, ``status`` says where the pipeline stands.
The broker is ``--broker`` / ``AIGC_BROKER_URL`` / ``AIGC_REDIS_URL``: Redis Streams for a
``redis://`` URL (default ``redis://127.0.0.1:6379/0``), NATS JetStream for ``nats://``.
"""

from __future__ import annotations

import json
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from aigc_apps.cli.context import settings_from
from aigc_apps.console import DbOpt, JsonOpt, console, err_console, print_json
from aigc_apps.errors import DataError

if TYPE_CHECKING:
    from .broker import Broker

stream_app = typer.Typer()

StreamOpt = Annotated[str, typer.Option("--stream", help="Stream name on the broker.")]
GroupOpt = Annotated[str, typer.Option(
    "--group", help="Consumer group (a new group reads the stream from its start).")]
BrokerOpt = Annotated[str | None, typer.Option(
    "--broker", envvar=["AIGC_BROKER_URL", "AIGC_REDIS_URL"],
    help="Broker URL: redis://HOST:PORT/DB (Redis Streams, the default "
         "redis://127.0.0.1:6379/0) or nats://HOST:PORT (NATS JetStream).")]
RetriesOpt = Annotated[int, typer.Option(
    "--retries", min=1, help="Attempts per broker command (doubling back-off) before giving up.")]
PUBLISH_CHUNK = 500


def _broker(url: str | None, retries: int = 5, claim_idle_ms: int = 60_000) -> Broker:
    from .broker import open_broker

    return open_broker(url, retries=retries, claim_idle_ms=claim_idle_ms)


@stream_app.command()
def publish(
    file: Annotated[Path, typer.Argument(help="CSV/TSV/JSONL file of records.")],
    stream: StreamOpt,
    fmt: Annotated[str | None, typer.Option("--format", help="csv, tsv or jsonl.")] = None,
    source: Annotated[str | None, typer.Option(
        "--source", help="Source for records without one (default: the file's name).")] = None,
    broker_url: BrokerOpt = None,
    retries: RetriesOpt = 5,
    as_json: JsonOpt = False,
) -> None:
    """Put each record of FILE on the stream as one JSON message (bad lines are skipped)."""
    from .reader import EXTENSIONS, LineParser, RawRow, stream_lines

    if not file.is_file():
        raise DataError(f"{file}: file not found")
    parser = LineParser(fmt or EXTENSIONS.get(file.suffix.lower()), str(file))
    name = source or file.name
    broker = _broker(broker_url, retries)
    published, skipped = 0, []
    chunk: list[bytes] = []
    try:
        with open(file, "rb") as handle:
            for raw in stream_lines(handle, str(file)):
                for item in parser.feed(raw):
                    if not isinstance(item, RawRow):
                        skipped.append({"line": item.row, "reason": item.reason})
                        continue
                    data = dict(item.data)
                    if not data.get("source"):
                        data["source"] = name  # as `ingest FILE` names them
                    chunk.append(json.dumps(data, default=str).encode())
                    if len(chunk) >= PUBLISH_CHUNK:
                        published += len(broker.publish(stream, chunk))
                        chunk = []
        skipped += [{"line": s.row, "reason": s.reason} for s in parser.finish()]
        published += len(broker.publish(stream, chunk))
    finally:
        broker.close()
    if as_json:
        print_json({"stream": stream, "published": published, "skipped": skipped})
        return
    console.print(f"{published} messages published to {stream}, {len(skipped)} lines skipped")
    for skip in skipped[:10]:
        console.print(f"  skipped line {skip['line']}: {skip['reason']}")


@stream_app.command()
def work(
    stream: StreamOpt,
    group: GroupOpt = "sentiment",
    consumer: Annotated[str | None, typer.Option(
        "--consumer", help="This worker's name in the group (default: host-pid).")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Messages per batch.")] = 32,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Registered sentiment model (default: the active one).")] = None,
    db: DbOpt = None,
    claim_idle: Annotated[float, typer.Option(
        "--claim-idle", min=0.0,
        help="Claim messages a dead consumer has held for this many seconds.")] = 60.0,
    max_deliveries: Annotated[int, typer.Option(
        "--max-deliveries", min=1, help="Dead-letter a message after this many deliveries.")] = 5,
    idle_timeout: Annotated[float | None, typer.Option(
        "--idle-timeout", help="Stop after N seconds without messages (default: never).")
    ] = None,
    source: Annotated[str | None, typer.Option(
        "--source", help="Source for records without one (default: the stream's name).")
    ] = None,
    text_col: Annotated[str | None, typer.Option(
        "--text-col", help="Text field (default: text, headline, title, ...).")] = None,
    alerts: Annotated[bool, typer.Option("--alerts/--no-alerts", help="Run alert rules.")
                      ] = True,
    webhook: Annotated[str | None, typer.Option(
        "--webhook", envvar="AIGC_SENTIMENT_WEBHOOK", help="POST new alerts here as JSON.")
    ] = None,
    embeddings: Annotated[bool, typer.Option(
        "--embeddings/--no-embeddings", help="Also match topics by embedding similarity.")
    ] = True,
    threads: Annotated[int | None, typer.Option(
        "--threads", min=1,
        help="Torch threads for scoring (default: all cores; with N workers on one machine "
             "give each cores/N, or they fight over the same cores).")] = None,
    broker_url: BrokerOpt = None,
    retries: RetriesOpt = 5,
    as_json: JsonOpt = False,
) -> None:
    """Score and store the stream's messages as one consumer of GROUP, until stopped.

    SIGTERM or Ctrl-C finishes the batch in hand, acknowledges it, and exits. A broker that
    stops answering is waited for (back-off up to 30 s, a line on stderr now and then); one
    that never answered is an error at once.
    """
    from .reconnect import Reconnect
    from .service import SentimentService
    from .worker import StreamWorker

    def warn(line: str) -> None:
        err_console.print(f"warning: {line}", markup=False, soft_wrap=True)

    def shout(alert: dict[str, Any]) -> None:
        if not as_json:
            console.print(f"[bold red]ALERT[/] {alert['message']}")

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    stop = threading.Event()
    broker = _broker(broker_url, retries, claim_idle_ms=int(claim_idle * 1000))
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with SentimentService(db, embeddings=embeddings, settings=settings_from()) as service:
            worker = StreamWorker(
                service, broker, stream, group=group, consumer=consumer, batch_size=batch,
                model=model, text_col=text_col, source=source,
                claim_idle_ms=int(claim_idle * 1000), max_deliveries=max_deliveries,
                alerts=alerts, webhook=webhook, on_alert=shout, reconnect=Reconnect(say=warn))
            report = worker.run(stop, idle_timeout=idle_timeout)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        broker.close()
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(report.summary())


@stream_app.command("dead-letters")
def dead_letters(
    stream: StreamOpt,
    replay: Annotated[bool, typer.Option(
        "--replay", help="Put them back on the stream (and off the dead-letter list).")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 1000,
    broker_url: BrokerOpt = None,
    retries: RetriesOpt = 5,
    as_json: JsonOpt = False,
) -> None:
    """List the messages that could not be stored, with their error; --replay resends them."""
    broker = _broker(broker_url, retries)
    try:
        letters = broker.dead_letters(stream, limit)
        replayed = 0
        if replay:
            resend = [d for d in letters if d.payload is not None]
            for start in range(0, len(resend), PUBLISH_CHUNK):
                part = resend[start:start + PUBLISH_CHUNK]
                broker.publish(stream, [d.payload for d in part if d.payload is not None])
                replayed += broker.remove_dead(stream, [d.id for d in part])
    finally:
        broker.close()
    if as_json:
        print_json({"stream": stream, "dead_letters": [d.to_dict() for d in letters],
                    "replayed": replayed})
        return
    table = Table("id", "original", "deliveries", "error", "payload")
    for d in letters:
        payload = d.to_dict()["payload"] or ""
        table.add_row(d.id, d.original_id, str(d.deliveries), d.error, payload[:60])
    console.print(table)
    if replay:
        console.print(f"{replayed} replayed to {stream}")


@stream_app.command("status")
def status(
    stream: Annotated[str | None, typer.Option(
        "--stream", help="Also report this stream: length, pending, lag, dead letters.")
    ] = None,
    group: GroupOpt = "sentiment",
    db: DbOpt = None,
    broker_url: BrokerOpt = None,
    retries: RetriesOpt = 5,
    as_json: JsonOpt = False,
) -> None:
    """Documents stored, throughput of the last minute, and the stream's backlog."""
    from .service import SentimentService

    with SentimentService(db, settings=settings_from()) as service:
        activity = service.store_activity(timedelta(minutes=1))
    out: dict[str, Any] = {"stored": activity.stored, "stored_last_minute": activity.recent,
                           "per_second_last_minute": round(activity.per_second, 2)}
    if stream:
        broker = _broker(broker_url, retries)
        try:
            out |= broker.info(stream, group).to_dict()
        finally:
            broker.close()
    if as_json:
        print_json(out)
        return
    for key, value in out.items():
        console.print(f"{key}: {value}")
