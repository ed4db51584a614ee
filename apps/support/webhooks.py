"""Conversation transitions posted to a webhook, at least once, retried with back-off.

Transitions are the outbox (:mod:`aigc_apps.webhooks`): each is stored in the transaction
that makes it, so a webhook that is down loses nothing; delivery only marks rows, claimed by
a compare-and-set so two workers do not post the same event at once. This module adds the
support side: the URL setting, the event body, and a thread that delivers in the background.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from aigc_apps.store import Database
from aigc_apps.webhooks import (
    MAX_ATTEMPTS,
    TIMEOUT_S,
    DeliveryReport,
    Outbox,
    Post,
    backoff_s,
    check_url,
    check_webhook_url,
    post_json,
)
from aigc_apps.webhooks import deliver_due as deliver_outbox

from .handoff import transition_dict
from .store import Transition, get_setting, set_setting

__all__ = ["MAX_ATTEMPTS", "DeliveryReport", "WebhookDeliverer", "backoff_s", "check_url",
           "deliver_due", "post_json", "set_webhook_url", "webhook_url"]

SETTING = "webhook_url"
log = logging.getLogger(__name__)


def _body(event: Transition) -> dict[str, Any]:
    facts = transition_dict(event)
    return {"event": "support.conversation.transition",
            **{k: v for k, v in facts.items() if k not in ("delivered", "attempts")}}


OUTBOX = Outbox(Transition, _body)


def webhook_url(db: Database) -> str | None:
    with db.session() as s:
        return get_setting(s, SETTING)


def set_webhook_url(db: Database, url: str | None) -> None:
    """Set (or with None, remove) the URL; events stored meanwhile wait for it. A URL whose
    host resolves to an inner address (loopback, private, link-local...) is refused
    unless ``AIGC_WEBHOOK_ALLOW`` lets it through; each post checks it again."""
    checked = check_webhook_url(url) if url else None  # DNS answered before the transaction
    with db.session() as s:
        set_setting(s, SETTING, checked)


def deliver_due(db: Database, url: str | None = None, post: Post = post_json,
                limit: int = 100) -> DeliveryReport:
    """Post every transition that is due to ``url`` (default: the stored setting)."""
    url = url or webhook_url(db)
    if not url:
        return DeliveryReport()
    return deliver_outbox(db, OUTBOX, url, post, limit)


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
