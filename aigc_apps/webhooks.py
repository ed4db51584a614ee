"""Webhooks from an outbox table: every event posted at least once, retried with back-off.

An app stores its events (support transitions, sentiment alerts) in a table with four
delivery columns, in the transaction that makes them, so a webhook that is down loses
nothing; delivery only marks rows. Any process may deliver: a row is claimed by a
compare-and-set on its ``next_attempt_at`` (a lease), so two workers do not post the same
event at once, on SQLite or PostgreSQL. The receiver can drop repeats by the
``X-Aigc-Event-Id`` header (a lease that ran out can mean a second post). A row whose
``next_attempt_at`` is NULL is not for delivery. Posts reach public addresses only, checked
again at each post (:mod:`aigc_apps.webhook_targets`, ``AIGC_WEBHOOK_ALLOW``).

A slow receiver must not stall the others: each POST has a total deadline
(:mod:`aigc_apps.webhook_post`), up to :data:`MAX_IN_FLIGHT` are posted at once (so events
may arrive out of order: order them by ``id`` or ``at``), and the URL is read for each
attempt, so a URL changed mid-round serves the next event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from aigc_apps.errors import DataError
from aigc_apps.store import Database, utcnow
from aigc_apps.webhook_post import DEADLINE_S, TIMEOUT_S, post_json
from aigc_apps.webhook_targets import check_target

__all__ = ["DEADLINE_S", "LEASE_S", "MAX_ATTEMPTS", "MAX_IN_FLIGHT", "TIMEOUT_S",
           "DeliveryReport", "Outbox", "Post", "backoff_s", "check_url", "deliver_due",
           "post_json", "waiting"]

MAX_ATTEMPTS = 12  # 11 waits of the back-off below: 8,715 s, about 2.4 hours
LEASE_S = 60.0  # longer than a POST's deadline, so a lease never runs out mid-post
MAX_IN_FLIGHT = 4  # POSTs at once in a round: a hanging receiver holds this many, no more
log = logging.getLogger(__name__)

Post = Callable[[str, dict[str, Any]], object]  # raises on failure; may return a status
Url = str | Callable[[], str | None]  # a callable is asked before each attempt


def backoff_s(attempts: int) -> float:
    """Wait before the next try after ``attempts`` failures: 5 s, 10 s, 20 s ... 1 h."""
    return float(min(5 * 2 ** max(attempts - 1, 0), 3600))


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


def waiting(db: Database, outbox: Outbox) -> int:
    """Events of ``outbox`` still to deliver (due, backing off, or leased to a post)."""
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(outbox.model)
                            .where(outbox.due_filter())) or 0)


def deliver_due(db: Database, outbox: Outbox, url: Url, post: Post = post_json,
                limit: int = 100, *, max_in_flight: int = MAX_IN_FLIGHT,
                stop: Callable[[], bool] | None = None) -> DeliveryReport:
    """Post every event of ``outbox`` that is due, oldest first, once each, up to
    ``max_in_flight`` at once; record the outcome on its row (a failure waits
    :func:`backoff_s`, none is lost).

    ``url`` is the receiver, or a callable asked before each attempt (None: stop posting).
    When ``stop()`` turns true no attempt starts and the call returns without waiting for
    those in flight: their rows stay leased for :attr:`Outbox.lease_s`, then are due again.
    """
    m = outbox.model
    now = utcnow()
    with db.session() as s:
        due = s.execute(
            select(m.id, m.next_attempt_at)
            .where(outbox.due_filter(), m.next_attempt_at <= now)
            .order_by(m.id).limit(limit)
        ).all()
    target: Callable[[], str | None] = url if callable(url) else (lambda: url)
    report = DeliveryReport()
    lock = threading.Lock()
    todo = iter(due)
    halted = stop or (lambda: False)

    def work() -> None:
        while not halted():
            with lock:
                item = next(todo, None)
            if item is None:
                return
            address = target()
            if not address:  # the URL was removed meanwhile
                return
            _attempt(db, outbox, address, post, item, report, lock)

    posters = [threading.Thread(target=work, name="aigc-webhook-post", daemon=True)
               for _ in range(max(1, min(max_in_flight, len(due))))]
    for poster in posters:
        poster.start()
    for poster in posters:  # daemons: a process that stops waiting may exit meanwhile
        while poster.is_alive() and not halted():
            poster.join(None if stop is None else 0.05)
    with lock:
        result = replace(report)
    result.waiting = waiting(db, outbox)
    return result


def _attempt(db: Database, outbox: Outbox, url: str, post: Post, item: tuple[int, datetime],
             report: DeliveryReport, lock: threading.Lock) -> None:
    """Claim one row, post its event, record the outcome on it."""
    m = outbox.model
    row_id, at = item
    if not _claim(db, outbox, row_id, at):
        return  # another worker has it
    with db.session() as s:  # no transaction stays open during the POST
        row = s.get(m, row_id)
        if row is None:  # deleted meanwhile
            return
        body = outbox.body(row)
    failure: Exception | None = None
    try:
        answer = post(url, body)
    except Exception as exc:  # any failure is retried, none is lost
        failure = exc
    with db.session() as s:
        row = s.get(m, row_id)
        if row is None:
            return
        row.attempts += 1
        if failure is None:
            row.delivered_at = utcnow()
            row.last_error = None
            status = "delivered" if answer is None else str(answer)
            with lock:
                report.delivered += 1
        else:
            row.last_error = f"{type(failure).__name__}: {failure}"[:500]
            wait = backoff_s(row.attempts)
            row.next_attempt_at = utcnow() + timedelta(seconds=wait)
            gave_up = row.attempts >= outbox.max_attempts
            with lock:
                report.failed += 1
                report.gave_up += gave_up
            log.warning("webhook for %s %s failed (%s)", m.__tablename__, row_id,
                        row.last_error)
            status = (f"error: {failure} (gave up after {row.attempts} tries)" if gave_up
                      else f"error: {failure} (try {row.attempts}, retried in {wait:.0f}s)")
        if outbox.on_result is not None:
            outbox.on_result(row, status)
