"""Conversation transitions posted to a webhook, at least once, retried with back-off.

Transitions are the outbox: each is stored in the transaction that makes it, so a webhook
that is down loses nothing; delivery only marks rows. Any process may deliver: a row is
claimed by a compare-and-set on its ``next_attempt_at`` (a lease), so two workers do not
post the same event at once, on SQLite or PostgreSQL. The receiver can drop repeats by the
``X-Aigc-Event-Id`` header (a lease that ran out can mean a second post).
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from aigc_apps.errors import DataError
from aigc_apps.store import Database, utcnow

from .handoff import transition_dict
from .store import Transition, get_setting, set_setting

SETTING = "webhook_url"
MAX_ATTEMPTS = 12  # about 6 hours of retries with the back-off below
LEASE_S = 60.0
TIMEOUT_S = 5.0
log = logging.getLogger(__name__)

Post = Callable[[str, dict[str, Any]], None]


def backoff_s(attempts: int) -> float:
    """Wait before the next try after ``attempts`` failures: 5 s, 10 s, 20 s ... 1 h."""
    return float(min(5 * 2 ** max(attempts - 1, 0), 3600))


def post_json(url: str, event: dict[str, Any]) -> None:
    """POST the event; any answer but 2xx (or no answer in TIMEOUT_S) is an error."""
    request = urllib.request.Request(
        url, data=json.dumps(event).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-Aigc-Event-Id": str(event["id"]),
                 "User-Agent": "aigc-apps-webhook"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        if not 200 <= response.status < 300:
            raise OSError(f"webhook answered {response.status}")


def check_url(url: str) -> str:
    url = url.strip()
    if not url.startswith(("http://", "https://")) or len(url) > 1000:
        raise DataError(f"webhook URL must start with http:// or https://, not {url[:60]!r}")
    return url


def webhook_url(db: Database) -> str | None:
    with db.session() as s:
        return get_setting(s, SETTING)


def set_webhook_url(db: Database, url: str | None) -> None:
    """Set (or with None, remove) the URL; events stored meanwhile wait for it."""
    with db.session() as s:
        set_setting(s, SETTING, check_url(url) if url else None)


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0  # tries that failed this round (retried later)
    gave_up: int = 0  # events past MAX_ATTEMPTS: listed, never retried
    waiting: int = 0  # still to deliver after this round


def _claim(db: Database, row_id: int, due: datetime, now: datetime) -> bool:
    with db.session() as s:
        done = s.execute(
            update(Transition)
            .where(Transition.id == row_id, Transition.next_attempt_at == due,
                   Transition.delivered_at.is_(None))
            .values(next_attempt_at=now + timedelta(seconds=LEASE_S))
            .execution_options(synchronize_session=False)
        )
        return done.rowcount == 1  # type: ignore[attr-defined]


def deliver_due(db: Database, url: str | None = None, post: Post = post_json,
                limit: int = 100) -> DeliveryReport:
    """Post every event that is due, oldest first, once each; record what happened."""
    url = url or webhook_url(db)
    report = DeliveryReport()
    if not url:
        return report
    now = utcnow()
    with db.session() as s:
        due = s.execute(
            select(Transition.id, Transition.next_attempt_at)
            .where(Transition.delivered_at.is_(None), Transition.attempts < MAX_ATTEMPTS,
                   Transition.next_attempt_at <= now)
            .order_by(Transition.id).limit(limit)
        ).tuples().all()
    for row_id, at in due:
        if at is None or not _claim(db, row_id, at, now):
            continue  # another worker has it
        with db.session() as s:
            event = s.get(Transition, row_id)
            assert event is not None
            facts = transition_dict(event)
            body = {"event": "support.conversation.transition",
                    **{k: v for k, v in facts.items() if k not in ("delivered", "attempts")}}
            try:
                post(url, body)
            except Exception as exc:  # any failure is retried, none is lost
                event.attempts += 1
                event.last_error = f"{type(exc).__name__}: {exc}"[:500]
                event.next_attempt_at = utcnow() + timedelta(seconds=backoff_s(event.attempts))
                report.failed += 1
                report.gave_up += event.attempts >= MAX_ATTEMPTS
                log.warning("webhook for event %s failed (%s)", row_id, event.last_error)
            else:
                event.attempts += 1
                event.delivered_at = utcnow()
                event.last_error = None
                report.delivered += 1
    with db.session() as s:
        report.waiting = len(s.scalars(
            select(Transition.id).where(Transition.delivered_at.is_(None),
                                        Transition.attempts < MAX_ATTEMPTS)
        ).all())
    return report


class WebhookDeliverer:
    """A daemon thread that delivers events after each transition and retries on time.

    ``kick`` wakes it; it sleeps until the next retry is due otherwise (at most ``poll_s``),
    so events written by other processes go out too.
    """

    def __init__(self, db: Database, post: Post = post_json, poll_s: float = 5.0) -> None:
        self.db, self.post, self.poll_s = db, post, poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._kicked = False

    def kick(self) -> None:
        self._kicked = True
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="aigc-webhooks",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                deliver_due(self.db, post=self.post)
            except Exception:  # the database may be briefly away; try again
                log.exception("webhook delivery round failed")
            self._wake.wait(self.poll_s)

    def close(self) -> None:
        """Stop the thread, then one last round: a short-lived process (a CLI command)
        posts its events before it exits; what fails stays for the next deliverer."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT_S + 1)
        if self._kicked:
            self._kicked = False
            try:
                deliver_due(self.db, post=self.post)
            except Exception:
                log.exception("webhook delivery round failed")
