"""Surge alerts: a topic's latest bucket against its own recent baseline.

For every bucket the rule compares

* the negative share with the pooled share of the previous ``window`` buckets, as a
  binomial z-score (so 6 negatives out of 8 is weaker evidence than 60 out of 80), plus a
  minimum absolute increase so a huge volume cannot make a trivial shift "significant";
* the number of negative records with the baseline's negatives per bucket (Poisson), which
  catches a surge that is both louder and more negative while still small;
* the volume with the baseline's mean count per bucket (Poisson).

Tail probabilities are exact (small counts are the norm per topic and hour) and reported
as z-scores. A bucket needs ``min_volume`` records (``min_negatives`` negatives for the
count signal) to alert at all. Buckets that looked anomalous are
left out of later baselines, so a long surge does not become its own baseline, and after an
alert the topic stays quiet for ``cooldown`` buckets: one surge, one alert. Alerts are stored
once per topic and bucket (re-runs are idempotent) and optionally POSTed as JSON: the alerts
table is a webhook outbox (:mod:`aigc_apps.webhooks`), so a POST that fails is retried with
back-off (5 s doubling to 1 h, 12 tries) by whichever worker evaluates next, and an alert is
posted once even when several workers deliver.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from aigc_apps.errors import DataError
from aigc_apps.store import Database, utcnow
from aigc_apps.webhook_targets import WebhookTargetError, check_target, opener
from aigc_apps.webhooks import DeliveryReport, Outbox, Post, deliver_due, post_json

from .store import Alert, Topic, as_utc
from .trends import Bucket, aggregate_tallies, bucket_start, load_tallies, parse_duration

SIGNALS = ("negative_share", "negative_volume", "volume")
log = logging.getLogger(__name__)


@dataclass
class AlertRule:
    """Thresholds of the surge detector; a topic's ``rule`` JSON overrides any of them."""

    bucket: str = "1h"
    window: int = 24  # buckets in the baseline
    min_volume: int = 8  # records the bucket needs for a share or volume alert
    min_negatives: int = 4  # negative records the bucket needs for a negative-count alert
    min_baseline: int = 30  # records the baseline needs (warm-up)
    z_threshold: float = 3.0  # for the negative share and negative count
    volume_z_threshold: float = 4.0  # volume alone: news volume is burstier than sentiment
    span: int = 2  # also test the last N buckets together (slow, moderate surges)
    min_share_increase: float = 0.20  # absolute, e.g. 0.20 -> 0.40
    volume_ratio: float = 2.0  # bucket volume at least this times the baseline mean
    cooldown: int = 6  # buckets without a new alert after one fired

    @property
    def seconds(self) -> int:
        return int(parse_duration(self.bucket).total_seconds())

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: AlertRule | None = None) -> AlertRule:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise DataError(f"unknown alert rule setting {unknown[0]!r} (known: {sorted(names)})")
        merged = {**asdict(base or cls()), **data}
        rule = cls(**merged)
        rule.seconds  # noqa: B018 - validates the bucket
        return rule

    @classmethod
    def overrides(cls, raw: Mapping[str, object]) -> dict[str, Any]:
        """Checked rule overrides from user input: strings (``--rule min_volume=20``) or JSON
        numbers become the setting's type; an unknown key or a non-number is one error."""
        kinds = {f.name: f.type for f in fields(cls)}
        clean: dict[str, Any] = {}
        for key, value in raw.items():
            name = str(key).strip()
            kind = kinds.get(name)
            if kind is None or kind == "str":  # from_dict names an unknown key
                clean[name] = str(value).strip()
                continue
            try:
                number = float(str(value))
            except ValueError:
                raise DataError(f"alert rule {name}={value!r}: not a number") from None
            clean[name] = int(number) if kind == "int" and number.is_integer() else number
        checked = cls.from_dict(clean)
        return {name: getattr(checked, name) for name in clean}


@dataclass
class AlertEvent:
    topic: str
    bucket_start: datetime
    bucket_seconds: int
    signals: list[str]
    count: int
    negative_share: float
    baseline_share: float
    baseline_count: float
    z_share: float
    z_volume: float
    window_buckets: int = 1  # the surge pooled this many buckets, ending with bucket_start

    @property
    def message(self) -> str:
        when = self.bucket_start.strftime("%Y-%m-%d %H:%M UTC")
        where = (f"in bucket {when}" if self.window_buckets == 1
                 else f"in the {self.window_buckets} buckets to {when}")
        parts = []
        if "negative_share" in self.signals:
            parts.append(
                f"negative share {self.negative_share:.0%} vs baseline {self.baseline_share:.0%} "
                f"(z={self.z_share:.1f})"
            )
        if "negative_volume" in self.signals and "negative_share" not in self.signals:
            parts.append(f"{round(self.negative_share * self.count)} negative records vs "
                         f"{self.baseline_share * self.baseline_count:.1f} usual")
        if "volume" in self.signals:
            parts.append(
                f"volume {self.count} vs baseline {self.baseline_count:.1f} (z={self.z_volume:.1f})"
            )
        return f"{self.topic}: " + "; ".join(parts) + f" {where}, n={self.count}"


def _z(p_value: float) -> float:
    """The one-sided normal z-score with this tail probability (capped at 10)."""
    from scipy.stats import norm

    return float(min(10.0, norm.isf(max(p_value, 1e-23))))


def _evaluate_bucket(
    current: Bucket, baseline: Sequence[Bucket], rule: AlertRule, width: int = 1
) -> tuple[list[str], float, float, float, float]:
    """Signals that fire for ``current`` given the baseline buckets, plus the statistics.

    Small counts are tested exactly (binomial for the share, Poisson for counts) and the
    tail probability is reported as a z-score, so "z >= 3" means the same at 5 records
    an hour as at 500.
    """
    from scipy.stats import binom, poisson

    n_base = sum(b.count for b in baseline)
    k_base = sum(b.negative for b in baseline)
    p0 = (k_base + 1) / (n_base + 2)
    # Expected volume: the mean of the busier half of the baseline buckets, so the daily
    # rhythm (quiet nights) does not make every busy morning look like a surge.
    counts = sorted(b.count for b in baseline)
    busy = counts[len(counts) // 2 :]
    mean = width * sum(busy) / len(busy) if busy else 0.0  # expected in ``width`` buckets
    mean_neg = p0 * mean
    n, k = current.count, current.negative
    z_share = _z(binom.sf(k - 1, n, p0)) if n else 0.0
    z_volume = _z(poisson.sf(n - 1, max(mean, 0.5))) if n else 0.0
    z_negatives = _z(poisson.sf(k - 1, max(mean_neg, 0.25))) if k else 0.0
    fired: list[str] = []
    if n_base < rule.min_baseline or len(baseline) < rule.window // 2:
        return fired, p0, mean, z_share, z_volume
    shift = current.share_negative - p0 >= rule.min_share_increase
    if n >= rule.min_volume and shift and z_share >= rule.z_threshold:
        fired.append("negative_share")
    if k >= rule.min_negatives and shift and z_negatives >= rule.z_threshold:
        fired.append("negative_volume")
    if (n >= rule.min_volume and n >= rule.volume_ratio * mean
            and z_volume >= rule.volume_z_threshold):
        fired.append("volume")
    return fired, p0, mean, z_share, z_volume


def detect(
    series: Sequence[Bucket],
    rule: AlertRule,
    previous: Sequence[datetime] = (),
    from_index: int = 0,
) -> list[AlertEvent]:
    """Alerts for the buckets of one topic's gap-free series, from ``from_index`` on.

    Each bucket is tested alone and, up to ``rule.span``, together with the buckets just
    before it; an alert is dated by the bucket in which the evidence became sufficient.

    ``previous`` are bucket starts of alerts already stored for the topic (cool-down).
    """
    cooldown = timedelta(seconds=rule.cooldown * rule.seconds)
    fired_at = sorted(previous)
    anomalous: set[int] = set()
    events: list[AlertEvent] = []
    for i, current in enumerate(series):
        for width in range(1, max(1, rule.span) + 1):
            first = i - width + 1
            if first < 0 or any(j in anomalous for j in range(first, i)):
                break
            window = series[first : i + 1]
            merged = Bucket(current.topic, current.start, current.seconds,
                            count=sum(b.count for b in window),
                            negative=sum(b.negative for b in window))
            baseline = [series[j] for j in range(max(0, first - rule.window), first)
                        if j not in anomalous]
            signals, p0, mean, z_s, z_v = _evaluate_bucket(merged, baseline, rule, width)
            if signals:
                anomalous.update(range(first, i + 1))
                break
        if not signals:
            continue
        current = merged
        if i < from_index or current.start in fired_at:
            continue
        if any(current.start - cooldown < t < current.start for t in fired_at):
            continue
        fired_at.append(current.start)
        events.append(
            AlertEvent(current.topic, current.start, current.seconds, signals, current.count,
                       current.share_negative, p0, mean, z_s, z_v, window_buckets=width)
        )
    return events


def post_webhook(url: str, payload: dict[str, Any], timeout: float = 5.0) -> str:
    """POST ``payload`` once as JSON; returns ``"200"`` or a short error (never raises).
    Stored alerts go through :func:`deliver_alerts`, which retries. Public addresses only,
    like every webhook (:mod:`aigc_apps.webhook_targets`); redirects are not followed."""
    if not url.startswith(("http://", "https://")):
        return "error: webhook URL must start with http:// or https://"
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "aigc-sentiment"},
        method="POST",
    )
    try:
        check_target(url)
        with opener().open(request, timeout=timeout) as response:
            return str(response.status)
    except WebhookTargetError as exc:
        return f"error: {exc}"[:200]
    except urllib.error.HTTPError as exc:
        return f"error: HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"error: {reason}"[:200]


def _alert_event(alert: Alert) -> dict[str, Any]:
    body = {"type": "sentiment_alert", **alert.to_dict()}
    body.pop("webhook_status", None)  # delivery bookkeeping, not part of the event
    return body


def _record_status(alert: Alert, status: str) -> None:
    alert.webhook_status = status[:200]


OUTBOX = Outbox(Alert, _alert_event, _record_status)


def deliver_alerts(db: Database, url: str, post: Post | None = None, timeout: float = 5.0,
                   limit: int = 100) -> DeliveryReport:
    """POST every stored alert that is due (new, or its back-off has passed) to ``url``;
    each alert is claimed before its POST, so concurrent workers post it once."""
    return deliver_due(db, OUTBOX, url, post or partial(post_json, timeout=timeout), limit)


def _from_first_record(series: list[Bucket], start: datetime | None) -> list[Bucket]:
    """A topic's buckets from ``start`` on, beginning at its first record: buckets from
    before a topic existed are not a quiet baseline."""
    first = next((i for i, b in enumerate(series)
                  if b.count and (start is None or b.start >= start)), len(series))
    return series[first:]


class AlertEngine:
    """Runs each topic's rule over stored records, stores new alerts, delivers them to the
    webhook (with retries of earlier failures that are due)."""

    def __init__(
        self, rule: AlertRule | None = None, webhook: str | None = None, timeout: float = 5.0,
        post: Post | None = None,
    ) -> None:
        if webhook and not webhook.startswith(("http://", "https://")):
            raise DataError(f"webhook URL {webhook!r} must start with http:// or https://")
        if webhook:
            check_target(webhook)  # an inner address is refused now; each post checks again
        self.rule = rule or AlertRule()
        self.webhook = webhook
        self.timeout = timeout
        self.post = post
        self.last_delivery: DeliveryReport | None = None

    def deliver(self, db: Database) -> DeliveryReport | None:
        """Deliver what is due to the webhook (None without one); never raises, so a
        webhook or database hiccup costs a retry, not the batch."""
        if not self.webhook:
            return None
        try:
            self.last_delivery = deliver_alerts(db, self.webhook, self.post, self.timeout)
        except Exception as exc:  # the alerts are stored; the next round retries
            log.warning("alert delivery round failed: %s", exc)
            return None
        return self.last_delivery

    def rule_for(self, db: Database, topic: str) -> AlertRule:
        with db.session() as s:
            row = s.get(Topic, topic)
            overrides = row.rule if row is not None else {}
        return AlertRule.from_dict(overrides, self.rule) if overrides else self.rule

    def evaluate(
        self, db: Database, topics: Sequence[str] | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Check ``topics`` (default: all with records) for buckets from ``since`` on
        (default: all history); returns the alerts that are new, as dicts."""
        if topics is None:
            with db.session() as s:
                topics = sorted(set(s.scalars(select(Topic.name))))
        return self.evaluate_since(db, dict.fromkeys(topics, since))

    def evaluate_since(
        self, db: Database, touched: Mapping[str, datetime | None]
    ) -> list[dict[str, Any]]:
        """Check each topic for buckets from its own time on (None: all history); one
        counting query per bucket width covers all the topics. With nothing touched, only
        deliver what is due to the webhook."""
        if not touched:
            self.deliver(db)
            return []
        rules = {topic: self.rule_for(db, topic) for topic in touched}
        with db.session() as s:
            previous: dict[str, list[datetime]] = defaultdict(list)
            for topic, started in s.execute(select(Alert.topic, Alert.bucket_start).where(
                    Alert.topic.in_(list(touched)))):
                previous[topic].append(as_utc(started))
        new: list[int] = []
        for seconds in sorted({rule.seconds for rule in rules.values()}):
            group = {t: touched[t] for t, rule in rules.items() if rule.seconds == seconds}
            starts = [self._window_start(rules[t], at) for t, at in group.items()]
            start = None if None in starts else min(s for s in starts if s is not None)
            series = aggregate_tallies(load_tallies(db, list(group), seconds, since=start),
                                       seconds)
            for topic, at in sorted(group.items()):
                buckets = _from_first_record(series.get(topic, []),
                                             self._window_start(rules[topic], at))
                first = bucket_start(at, seconds) if at is not None else None
                from_index = 0 if first is None else next(
                    (i for i, b in enumerate(buckets) if b.start >= first), len(buckets))
                for event in detect(buckets, rules[topic], previous[topic], from_index):
                    stored = self._store(db, event)
                    if stored is not None:
                        new.append(stored)
        self.deliver(db)  # the new alerts, and earlier ones whose retry is due
        if not new:
            return []
        with db.session() as s:
            rows = s.scalars(select(Alert).where(Alert.id.in_(new)).order_by(Alert.id))
            return [row.to_dict() for row in rows]

    def flush(self, db: Database) -> list[dict[str, Any]]:
        """Nothing: every check runs at once (an :class:`AlertSchedule` holds some back)."""
        return []

    @staticmethod
    def _window_start(rule: AlertRule, since: datetime | None) -> datetime | None:
        """The oldest record a check from ``since`` needs: its baseline and cool-down."""
        if since is None:
            return None
        span = timedelta(seconds=(rule.window + rule.cooldown) * rule.seconds)
        return bucket_start(since, rule.seconds) - span

    def _store(self, db: Database, event: AlertEvent) -> int | None:
        """Store the alert (its delivery due now when there is a webhook); None when another
        process stored it first."""
        try:
            with db.session() as s:
                row = Alert(
                    topic=event.topic, signals=",".join(event.signals),
                    bucket_start=event.bucket_start, bucket_seconds=event.bucket_seconds,
                    count=event.count, negative_share=event.negative_share,
                    baseline_share=event.baseline_share, baseline_count=event.baseline_count,
                    z_share=event.z_share, z_volume=event.z_volume, message=event.message,
                    window_buckets=event.window_buckets,
                    attempts=0, next_attempt_at=utcnow() if self.webhook else None,
                    webhook_status="pending" if self.webhook else None,
                )
                s.add(row)
                s.flush()
                row_id = row.id
        except IntegrityError:  # stored meanwhile by another process
            return None
        return row_id


def list_alerts(
    db: Database, topic: str | None = None, since: datetime | None = None, limit: int = 100
) -> list[Alert]:
    """Stored alerts, newest bucket first."""
    stmt = select(Alert).order_by(Alert.bucket_start.desc(), Alert.topic).limit(limit)
    if topic:
        stmt = stmt.where(Alert.topic == topic)
    if since is not None:
        stmt = stmt.where(Alert.bucket_start >= since)
    with db.session() as s:
        return list(s.scalars(stmt))
