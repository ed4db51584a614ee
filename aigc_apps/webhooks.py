"""Webhooks from an outbox table: every event posted at least once, retried with back-off.

An app stores its events (support transitions, sentiment alerts) in a table with four
delivery columns, in the transaction that makes them, so a webhook that is down loses
nothing; delivery only marks rows. Any process may deliver: a row is claimed by a
compare-and-set on its ``next_attempt_at`` (a lease), so two workers do not post the same
event at once, on SQLite or PostgreSQL. The receiver can drop repeats by the
``X-Aigc-Event-Id`` header (a lease that ran out can mean a second post). A row whose
``next_attempt_at`` is NULL is not for delivery. Posts reach public addresses only, checked
again at each post (:mod:`aigc_apps.webhook_targets`, ``AIGC_WEBHOOK_ALLOW``).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from aigc_apps.errors import DataError
from aigc_apps.store import Database, utcnow
from aigc_apps.webhook_targets import WebhookTargetError, check_target, opener

MAX_ATTEMPTS = 12  # about 6 hours of retries with the back-off below
LEASE_S = 60.0
TIMEOUT_S = 5.0
log = logging.getLogger(__name__)

Post = Callable[[str, dict[str, Any]], object]  # raises on failure; may return a status


def backoff_s(attempts: int) -> float:
    """Wait before the next try after ``attempts`` failures: 5 s, 10 s, 20 s ... 1 h."""
    return float(min(5 * 2 ** max(attempts - 1, 0), 3600))


def post_json(url: str, event: dict[str, Any], timeout: float = TIMEOUT_S) -> int:
    """POST the event and return the HTTP status; any answer but 2xx (a redirect too), no
    answer in ``timeout`` seconds, or a host that now resolves to an address webhooks may
    not reach (checked again here: DNS answers change) raises OSError."""
    request = urllib.request.Request(
        url, data=json.dumps(event, default=str).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-Aigc-Event-Id": str(event["id"]),
                 "User-Agent": "aigc-apps-webhook"},
    )
    try:
        check_target(url)  # the URL's own host, even through a proxy
        with opener().open(request, timeout=timeout) as response:
            if not 200 <= response.status < 300:
                raise OSError(f"webhook answered {response.status}")
            return int(response.status)
    except urllib.error.HTTPError as exc:  # a clearer line than the exception's repr
        raise OSError(f"webhook answered HTTP {exc.code}") from None
    except WebhookTargetError as exc:
        raise OSError(str(exc)) from None


def check_url(url: str) -> str:
    """``url`` trimmed, if it is http(s); the syntax only (see :func:`check_webhook_url`)."""
    url = url.strip()
    if not url.startswith(("http://", "https://")) or len(url) > 1000:
        raise DataError(f"webhook URL must start with http:// or https://, not {url[:60]!r}")
    return url


def check_webhook_url(url: str) -> str:
    """``url`` trimmed, if it is http(s) and its host resolves to public addresses only
    (or ones ``AIGC_WEBHOOK_ALLOW`` lets through): what a setter stores."""
    return check_target(check_url(url))


@dataclass(frozen=True)
class Outbox:
    """An outbox table and how one of its rows becomes the posted event.

    ``model`` is a SQLAlchemy model with the columns ``id``, ``delivered_at``, ``attempts``,
    ``next_attempt_at`` and ``last_error``; ``body`` builds the JSON event of a row (it must
    carry the row's ``id``); ``on_result`` (optional) records an app's own status line on the
    row after each try, in the same transaction: the HTTP status (``"200"``) or
    ``"delivered"`` on success, ``"error: ..."`` with when it is retried (or that it was
    given up) on failure.
    """

    model: type[Any]
    body: Callable[[Any], dict[str, Any]]
    on_result: Callable[[Any, str], None] | None = None
    max_attempts: int = MAX_ATTEMPTS
    lease_s: float = LEASE_S

    def due_filter(self) -> Any:
        m = self.model
        return (m.delivered_at.is_(None)) & (m.attempts < self.max_attempts) & (
            m.next_attempt_at.is_not(None))


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0  # tries that failed this round (retried later)
    gave_up: int = 0  # events past max_attempts: listed, never retried
    waiting: int = 0  # still to deliver after this round


def _claim(db: Database, outbox: Outbox, row_id: int, due: datetime) -> bool:
    """Lease the row iff nobody changed it since we read it (compare-and-set)."""
    m = outbox.model
    with db.session() as s:
        done = s.execute(
            update(m)
            .where(m.id == row_id, m.next_attempt_at == due, m.delivered_at.is_(None))
            .values(next_attempt_at=utcnow() + timedelta(seconds=outbox.lease_s))
            .execution_options(synchronize_session=False)
        )
        return done.rowcount == 1  # type: ignore[attr-defined]


def deliver_due(db: Database, outbox: Outbox, url: str, post: Post = post_json,
                limit: int = 100) -> DeliveryReport:
    """Post every event of ``outbox`` that is due, oldest first, once each; record the
    outcome on its row (a failure waits :func:`backoff_s`, none is lost)."""
    m = outbox.model
    report = DeliveryReport()
    now = utcnow()
    with db.session() as s:
        due = s.execute(
            select(m.id, m.next_attempt_at)
            .where(outbox.due_filter(), m.next_attempt_at <= now)
            .order_by(m.id).limit(limit)
        ).tuples().all()
    for row_id, at in due:
        if not _claim(db, outbox, row_id, at):
            continue  # another worker has it
        with db.session() as s:  # no transaction stays open during the POST
            row = s.get(m, row_id)
            if row is None:  # deleted meanwhile
                continue
            body = outbox.body(row)
        failure: Exception | None = None
        try:
            answer = post(url, body)
        except Exception as exc:  # any failure is retried, none is lost
            failure = exc
        with db.session() as s:
            row = s.get(m, row_id)
            if row is None:
                continue
            row.attempts += 1
            if failure is None:
                row.delivered_at = utcnow()
                row.last_error = None
                report.delivered += 1
                status = "delivered" if answer is None else str(answer)
            else:
                row.last_error = f"{type(failure).__name__}: {failure}"[:500]
                wait = backoff_s(row.attempts)
                row.next_attempt_at = utcnow() + timedelta(seconds=wait)
                report.failed += 1
                gave_up = row.attempts >= outbox.max_attempts
                report.gave_up += gave_up
                log.warning("webhook for %s %s failed (%s)", m.__tablename__, row_id,
                            row.last_error)
                status = (f"error: {failure} (gave up after {row.attempts} tries)" if gave_up
                          else f"error: {failure} (try {row.attempts}, retried in {wait:.0f}s)")
            if outbox.on_result is not None:
                outbox.on_result(row, status)
    with db.session() as s:
        report.waiting = int(s.scalar(select(func.count()).select_from(m)
                                      .where(outbox.due_filter())) or 0)
    return report
