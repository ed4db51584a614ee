"""Conversation transitions posted to a webhook, at least once, retried with back-off.

Transitions are the outbox (:mod:`aigc_apps.webhooks`): each is stored in the transaction
that makes it, so a webhook that is down loses nothing; delivery only marks rows, claimed by
a compare-and-set so two workers do not post the same event at once. This module adds the
support side: the URL setting, the event body, and a thread that delivers in the background.
The URL is read for each attempt, so a changed URL is used at once, even by a running
server. A short-lived process (a CLI command) gives its events :data:`CLOSE_BUDGET_S`
seconds at exit: what is not posted by then stays in the outbox for the next command or a
running server, never lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from aigc_apps.store import Database
from aigc_apps.webhooks import (
    MAX_ATTEMPTS,
    DeliveryReport,
    Outbox,
    Post,
    backoff_s,
    check_url,
    check_webhook_url,
    post_json,
    waiting,
)
from aigc_apps.webhooks import deliver_due as deliver_outbox

from ..knowledge.generation import set_setting
from ..store import Transition, get_setting
from .handoff import transition_dict

__all__ = ["CLOSE_BUDGET_S", "MAX_ATTEMPTS", "DeliveryReport", "WebhookDeliverer", "backoff_s",
           "check_url", "deliver_due", "post_json", "set_webhook_url", "webhook_url"]

SETTING = "webhook_url"
CLOSE_BUDGET_S = 3.0  # what a process's exit waits for webhooks, in all
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
                limit: int = 100, stop: Callable[[], bool] | None = None) -> DeliveryReport:
    """Post every transition that is due to ``url`` (default: the stored setting, read
    before each attempt); ``stop`` as in :func:`aigc_apps.webhooks.deliver_due`."""
    if url is None and not webhook_url(db):
        return DeliveryReport()
    return deliver_outbox(db, OUTBOX, url or (lambda: webhook_url(db)), post, limit,
                          stop=stop)


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
        self._until: float | None = None  # set by close(): no attempt starts after it

    def kick(self) -> None:
        self._kicked = True
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="aigc-webhooks",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def _out_of_time(self) -> bool:
        return self._until is not None and time.monotonic() >= self._until

    def _run(self) -> None:
        while True:
            self._wake.clear()
            last = self._stop.is_set()  # a round begun before close() is followed by one more
            try:
                deliver_due(self.db, post=self.post, stop=self._out_of_time)
            except Exception:  # the database may be briefly away; try again
                log.exception("webhook delivery round failed")
            if last or self._out_of_time():
                return
            self._wake.wait(self.poll_s)

    def close(self, budget_s: float = CLOSE_BUDGET_S) -> int:
        """One last round, so a short-lived process (a CLI command) posts the events it
        made, then stop; all of it within ``budget_s`` seconds, leaving what is not posted
        by then (a slow or hanging receiver) for the next deliverer. Returns how many events
        are still to deliver (0 when this deliverer was never needed)."""
        self._until = time.monotonic() + budget_s
        self._stop.set()
        if not self._kicked:
            return 0
        self.kick()  # the thread runs the last round (started again if it had ended)
        thread = self._thread
        if thread is not None:
            thread.join(timeout=max(self._until - time.monotonic(), 0) + 0.5)
        self._kicked = False
        try:
            return waiting(self.db, OUTBOX) if webhook_url(self.db) else 0
        except Exception:
            log.exception("counting the webhook events still to deliver failed")
            return 0
