"""A stream worker: one member of a consumer group that scores and stores what it reads.

Each message is a JSON record, read by the same rules as a JSONL line of ``aigc sentiment
ingest`` (:class:`~apps.sentiment.reader.LineParser` then :meth:`Ingester.normalize`), so
the stream and the file path agree on what a bad record is. A batch is stored in one
transaction by the ingester (idempotent by the store's identity keys), alert rules run on
what was committed, and only then are its messages acknowledged: a worker killed at any
point loses nothing, and redelivery never duplicates. Poison messages (not JSON, no text,
bad timestamp...) and messages delivered more than ``max_deliveries`` times go to the
dead-letter stream with their error; messages idle in a dead consumer's pending list for
over ``claim_idle_ms`` are claimed (XAUTOCLAIM).

A worker that has reached its broker waits out an outage (:mod:`.reconnect`: back-off up
to 30 s, a log line at most every 30 s) and stops only when told to; one that never
reached it (a wrong URL, a broker not started) fails at once with one line.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aigc_apps.data import Skip

from .alert_schedule import AlertSchedule
from .alerts import AlertEngine
from .broker import Broker, BrokerUnavailable, Message, alert_stream
from .ingest import Incoming, IngestReport
from .reader import LineParser, RawRow
from .reconnect import Reconnect

if TYPE_CHECKING:
    from .ingest import Ingester
    from .service import SentimentService


def default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class WorkReport:
    """What a worker did since it started."""

    received: int = 0
    claimed: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    truncated: int = 0
    acked: int = 0
    batches: int = 0
    failed_batches: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{self.stored} stored, {self.duplicates} duplicates, {self.dead_lettered} "
                f"dead-lettered of {self.received} messages ({self.claimed} claimed) in "
                f"{self.seconds:.1f}s")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "received", "claimed", "stored", "duplicates", "dead_lettered", "truncated",
            "acked", "batches", "failed_batches", "alerts")} | {
            "seconds": round(self.seconds, 3)}


class StreamWorker:
    """Consume ``stream`` as ``consumer`` of ``group`` until stopped; see :meth:`run`.

    ``model`` None scores with the active sentiment model (looked up per batch, so an
    activation elsewhere is picked up); ``source`` names records that carry none (default:
    the stream's name). New alerts are stored and POSTed by the alert engine, then published
    on ``alerts_stream`` (default ``<stream>:alerts``). Rules are checked at most every
    ``alert_interval`` seconds (:class:`AlertSchedule`), when the stream goes quiet, and
    when the worker stops; every step retries the webhook for alerts whose back-off has
    passed, so a quiet stream does not hold them.
    """

    def __init__(
        self,
        service: SentimentService,
        broker: Broker,
        stream: str,
        *,
        group: str = "sentiment",
        consumer: str | None = None,
        batch_size: int = 32,
        model: str | None = None,
        text_col: str | None = None,
        source: str | None = None,
        claim_idle_ms: int = 60_000,
        max_deliveries: int = 5,
        block_ms: int = 1000,
        alerts: bool = True,
        alert_interval: float = 1.0,
        webhook: str | None = None,
        alerts_stream: str | None = None,
        on_alert: Callable[[dict[str, Any]], None] | None = None,
        reconnect: Reconnect | None = None,
    ) -> None:
        self.service = service
        self.broker = broker
        self.stream = stream
        self.group = group
        self.consumer = consumer or default_consumer()
        self.batch_size = batch_size
        self.model = model
        self.text_col = text_col
        self.source = source
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.block_ms = block_ms
        self.alerts = alerts
        self.webhook = webhook
        self._schedule = (AlertSchedule(AlertEngine(webhook=webhook), alert_interval)
                          if alerts else None)
        self.alerts_stream = alerts_stream or alert_stream(stream)
        self.on_alert = on_alert
        self.report = WorkReport()
        self._parser = LineParser("jsonl", f"stream {stream}")
        self._errors: dict[str, str] = {}  # message id -> last processing error
        self._group_ready = False
        self.reconnect = reconnect or Reconnect()
        self._reached = False  # the broker answered once: an outage is waited out

    def _ingester(self) -> Ingester:
        from .service import IngestOptions

        options = IngestOptions(source=self.source or self.stream, text_col=self.text_col,
                                model=self.model, batch_size=max(self.batch_size, 1),
                                alerts=self.alerts, webhook=self.webhook)
        return self.service.ingester(options, on_alert=self.on_alert, alerts=self._schedule)

    def run(self, stop: threading.Event | None = None,
            idle_timeout: float | None = None) -> WorkReport:
        """Work until ``stop`` is set (the batch in hand is finished and acknowledged first)
        or nothing arrives for ``idle_timeout`` seconds (an outage is not idle time). A
        broker that stops answering is tried again with back-off, for as long as it takes;
        one that never answered raises :class:`~.broker.BrokerUnavailable`."""
        stop = stop or threading.Event()
        start = time.perf_counter()
        quiet_since = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    got = self.step()
                except BrokerUnavailable as exc:
                    if not self._reached:
                        raise
                    self._group_ready = False  # a restarted broker may have lost the group
                    stop.wait(self.reconnect.failed(exc))
                    quiet_since = time.monotonic()
                    continue
                self._reached = True
                self.reconnect.succeeded()
                if got:
                    quiet_since = time.monotonic()
                elif idle_timeout is not None and time.monotonic() - quiet_since >= idle_timeout:
                    break
        finally:
            try:
                self.check_alerts()
            except BrokerUnavailable as exc:  # stored and POSTed; only the stream copy is lost
                self.reconnect.say(f"alerts not published on {self.alerts_stream}: {exc}")
            self.report.seconds += time.perf_counter() - start
        return self.report

    def step(self) -> int:
        """Handle one batch: stale messages of dead consumers first, then new ones."""
        if not self._group_ready:
            self.broker.ensure_group(self.stream, self.group)
            self._group_ready = True
        messages = self.broker.claim(self.stream, self.group, self.consumer,
                                     self.claim_idle_ms, self.batch_size)
        self.report.claimed += len(messages)
        if not messages:
            messages = self.broker.read(self.stream, self.group, self.consumer,
                                        self.batch_size, self.block_ms)
        if messages:
            self.handle(messages)
        elif self._schedule is not None:  # a quiet stream: held-back checks, due webhooks
            self._announce(self._schedule.evaluate_since(self.service.db, {}))
        return len(messages)

    def check_alerts(self) -> None:
        """Run the alert checks held back by the schedule now (a caller driving
        :meth:`step` itself calls this when it stops)."""
        if self._schedule is not None:
            self._announce(self._schedule.flush(self.service.db))

    def _announce(self, alerts: list[dict[str, Any]]) -> None:
        """Report and publish alerts that fired outside a batch."""
        self.report.alerts += alerts
        for alert in alerts:
            if self.on_alert is not None:
                self.on_alert(alert)
        self._publish(alerts)

    def _publish(self, alerts: list[dict[str, Any]]) -> None:
        if alerts:
            self.broker.publish(self.alerts_stream,
                                [json.dumps(a, default=str).encode() for a in alerts])

    def parse(self, ingester: Ingester, message: Message, line: int) -> Incoming | Skip:
        """The message's record as ingest reads a JSONL line, or why it is unusable."""
        if message.payload is None:
            return Skip(line, "message has no 'data' field")
        parsed = list(self._parser.feed(message.payload.replace(b"\n", b" ")))
        if not parsed:
            return Skip(line, "empty message")
        item = parsed[0]
        if isinstance(item, Skip):
            return item
        return ingester.normalize(RawRow(line, item.data))

    def handle(self, messages: list[Message]) -> None:
        """Store the usable records of ``messages`` (one transaction), dead-letter the rest,
        then acknowledge; a batch that fails is retried message by message."""
        self.report.received += len(messages)
        self.report.batches += 1
        ingester = self._ingester()
        failed: list[tuple[Message, str]] = []
        good: list[tuple[Message, Incoming]] = []
        for line, message in enumerate(messages, start=1):
            if message.deliveries > self.max_deliveries:
                error = self._errors.pop(message.id, "processing kept failing")
                failed.append((message, f"failed {message.deliveries - 1} deliveries: {error}"))
                continue
            item = self.parse(ingester, message, line)
            if isinstance(item, Skip):
                failed.append((message, item.reason))
            else:
                good.append((message, item))
        fired = len(self.report.alerts)
        done = self._store(ingester, good)
        self._publish(self.report.alerts[fired:])  # stored (and POSTed) by the alert engine
        self.broker.dead_letter(self.stream, self.group, self.consumer, failed)
        self.report.dead_lettered += len(failed)
        self.report.acked += self.broker.ack(self.stream, self.group, [m.id for m in done])
        self.report.acked += len(failed)

    def _store(self, ingester: Ingester, good: list[tuple[Message, Incoming]]) -> list[Message]:
        """Messages whose records are committed (stored now or already there)."""
        if not good:
            return []
        try:
            self._consume(ingester, [r for _, r in good])
            for message, _ in good:
                self._errors.pop(message.id, None)
            return [m for m, _ in good]
        except Exception as exc:  # a bad batch must not stop the worker
            if len(good) == 1:
                self._errors[good[0][0].id] = f"{type(exc).__name__}: {str(exc)[:300]}"
                self.report.failed_batches += 1
                return []
        done = []
        for pair in good:  # find the message at fault; the others are stored
            done += self._store(ingester, [pair])
        return done

    def _consume(self, ingester: Ingester, records: list[Incoming]) -> None:
        report = ingester.consume(records, IngestReport())
        self.report.stored += report.stored
        self.report.duplicates += report.duplicates
        self.report.truncated += len(report.truncated)
        self.report.alerts += report.alerts
