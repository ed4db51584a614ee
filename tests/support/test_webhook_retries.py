"""README: a transition is posted to the webhook "retried with back-off (5 s doubling to an
hour, 12 tries) without ever losing it". A receiver that never answers gets exactly 12
tries, each no earlier than its back-off; then the event is no longer tried and stays stored,
marked undelivered. The delivery clock is injected (``aigc_apps.webhooks.utcnow``), so the
2.4 hours of back-off pass at once. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

import aigc_apps.webhooks as outbox
from aigc_apps.store import utcnow
from apps.support import SupportService
from apps.support.people.webhooks import deliver_due

URL = "https://hooks.example.com/support"  # never reached: the post is injected
# hand-computed: 5 s doubling, capped at an hour; 11 waits between 12 tries
WAITS_S = [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]


def test_a_failing_receiver_gets_exactly_12_tries_on_the_backoff_then_the_event_stays(
    bot: SupportService, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock: list[datetime] = [utcnow() + timedelta(seconds=1)]
    monkeypatch.setattr(outbox, "utcnow", lambda: clock[0])
    tries: list[datetime] = []

    def down(url: str, event: dict[str, Any]) -> None:
        assert url == URL
        tries.append(clock[0])
        raise OSError("receiver down")

    sid = bot.ask("agent please").session_id  # one transition: bot -> pending_human
    for n in range(1, 13):
        report = deliver_due(bot.db, url=URL, post=down)
        assert (len(tries), report.failed) == (n, 1), n
        if n < 12:
            assert (report.gave_up, report.waiting) == (0, 1)
            wait = WAITS_S[n - 1]
            clock[0] += timedelta(seconds=wait - 1)
            assert deliver_due(bot.db, url=URL, post=down).failed == 0  # not due yet
            assert len(tries) == n
            clock[0] += timedelta(seconds=1)
    assert (report.gave_up, report.waiting) == (1, 0)  # the 12th try was the last
    gaps = [(b - a).total_seconds() for a, b in pairwise(tries)]
    assert gaps == WAITS_S

    clock[0] += timedelta(days=30)
    assert deliver_due(bot.db, url=URL, post=down).failed == 0  # never tried again
    assert len(tries) == 12
    (event,) = bot.conversations.transitions(sid)  # still stored: not lost
    assert event["to_state"] == "pending_human"
    assert event["attempts"] == 12 and event["delivered"] is False
