"""The core webhook outbox (aigc_apps.webhooks) on a table of its own: back-off, claims,
give-up, and the HTTP post with its event-id header. Apps' own tests cover their events."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import DateTime, Integer, String, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aigc_apps.errors import DataError
from aigc_apps.store import Database, utcnow
from aigc_apps.webhooks import Outbox, backoff_s, check_url, deliver_due, post_json
from tests.hooks import SlowReceiver, WebhookReceiver


class Base(DeclarativeBase):
    pass


class Event(Base):
    __tablename__ = "test_outbox_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    status: Mapped[str | None] = mapped_column(String(200), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                             nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


def _set_status(row: Event, status: str) -> None:
    row.status = status


OUTBOX = Outbox(Event, lambda e: {"id": e.id, "name": e.name}, _set_status, max_attempts=3)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def _add(db: Database, names: list[str], due: bool = True) -> None:
    with db.session() as s:
        s.add_all([Event(name=n, next_attempt_at=utcnow() if due else None) for n in names])


def _pass_backoff(db: Database) -> None:
    with db.session() as s:
        s.execute(update(Event).where(Event.delivered_at.is_(None),
                                      Event.next_attempt_at.is_not(None))
                  .values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def test_backoff_doubles_from_5s_to_an_hour() -> None:
    assert [backoff_s(n) for n in (0, 1, 2, 3, 4)] == [5, 5, 10, 20, 40]
    assert backoff_s(10) == 2560 and backoff_s(11) == backoff_s(40) == 3600
    assert check_url(" https://x.example/h ") == "https://x.example/h"
    with pytest.raises(DataError, match="http"):
        check_url("ftp://x.example")


def test_failures_back_off_then_give_up_and_success_is_final(db: Database) -> None:
    _add(db, ["a", "b"])
    _add(db, ["not-for-delivery"], due=False)
    posted: list[dict[str, Any]] = []

    def flaky(url: str, event: dict[str, Any]) -> None:
        posted.append(event)
        if event["name"] == "b" or len(posted) <= 2:
            raise OSError("down")

    first = deliver_due(db, OUTBOX, "http://hook", flaky)
    assert (first.delivered, first.failed, first.gave_up, first.waiting) == (0, 2, 0, 2)
    assert deliver_due(db, OUTBOX, "http://hook", flaky).failed == 0  # not due yet
    with db.session() as s:
        a = s.get(Event, 1)
        assert a is not None and a.attempts == 1 and a.last_error == "OSError: down"
        assert a.status == "error: down (try 1, retried in 5s)"
        assert a.next_attempt_at is not None
    _pass_backoff(db)
    second = deliver_due(db, OUTBOX, "http://hook", flaky)  # a succeeds, b fails again
    assert (second.delivered, second.failed, second.waiting) == (1, 1, 1)
    _pass_backoff(db)
    third = deliver_due(db, OUTBOX, "http://hook", flaky)
    assert (third.delivered, third.failed, third.gave_up, third.waiting) == (0, 1, 1, 0)
    _pass_backoff(db)
    assert deliver_due(db, OUTBOX, "http://hook", flaky).failed == 0  # given up: not retried
    assert sorted(e["name"] for e in posted) == ["a", "a", "b", "b", "b"]  # posted at once
    with db.session() as s:
        rows = {e.name: e for e in s.query(Event)}
    assert rows["a"].delivered_at is not None and rows["a"].status == "delivered"
    assert rows["a"].attempts == 2 and rows["a"].last_error is None
    assert rows["b"].delivered_at is None and rows["b"].attempts == 3
    assert rows["b"].status == "error: down (gave up after 3 tries)"
    assert rows["not-for-delivery"].attempts == 0 and rows["not-for-delivery"].status is None


def test_concurrent_deliverers_post_each_event_once(db: Database) -> None:
    _add(db, [f"e{i}" for i in range(12)])
    posted: list[int] = []
    lock = threading.Lock()

    def slow(url: str, event: dict[str, Any]) -> None:
        threading.Event().wait(0.02)
        with lock:
            posted.append(event["id"])

    reports = []
    threads = [threading.Thread(target=lambda: reports.append(
        deliver_due(db, OUTBOX, "http://hook", slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(posted) == list(range(1, 13))  # every event once, none twice
    assert sum(r.delivered for r in reports) == 12 and sum(r.failed for r in reports) == 0


def test_post_json_sends_the_event_id_and_fails_on_non_2xx(local_webhooks: None) -> None:
    with WebhookReceiver(lambda path: 202 if path == "/ok" else 503) as hook:
        assert post_json(hook.url("/ok"), {"id": 7, "x": "y"}) == 202
        with pytest.raises(OSError, match="HTTP 503"):
            post_json(hook.url("/down"), {"id": 8})
        assert hook.seen == [("7", {"id": 7, "x": "y"}), ("8", {"id": 8})]


def test_a_receiver_that_trickles_its_answer_is_cut_at_the_deadline(local_webhooks: None) -> None:
    """A header every second never trips a per-read timeout; the total deadline (10 s by
    default) ends the call, and a cut answer is a failure, never a delivery."""
    with SlowReceiver(trickle_s=1.0, give_up_s=40) as slow:
        start = time.monotonic()
        with pytest.raises(OSError, match="no complete answer"):
            post_json(slow.url(), {"id": 1})
        assert time.monotonic() - start < 25  # 10 s and scheduling slack; not 40
        assert slow.connections == 1


def test_a_slow_receiver_holds_a_bounded_few_deliveries_and_a_new_url_is_used_at_once(
    db: Database, local_webhooks: None
) -> None:
    """Four posts in flight at most; the others wait for a slot (at most one deadline), and
    each attempt reads the URL, so a URL changed mid-round serves the very next one."""
    _add(db, [f"e{i}" for i in range(8)])
    with SlowReceiver(trickle_s=0.2) as slow, WebhookReceiver(204) as good:
        urls = [slow.url()]
        reads: list[str] = []

        def current() -> str:
            reads.append(urls[-1])
            return urls[-1]

        def switch_when_all_slots_hang() -> None:
            deadline = time.monotonic() + 30
            while slow.connections < 4 and time.monotonic() < deadline:
                time.sleep(0.005)
            urls.append(good.url())

        switcher = threading.Thread(target=switch_when_all_slots_hang)
        switcher.start()
        report = deliver_due(db, OUTBOX, current, partial(post_json, deadline=4.0),
                             max_in_flight=4)
        switcher.join()
        assert slow.connections == slow.most_at_once == 4  # four at once, never more
        assert (report.delivered, report.failed, report.waiting) == (4, 4, 4)
        assert sorted(e["name"] for e in good.delivered) == [f"e{i}" for i in range(4, 8)]
        assert len(reads) == 8  # one read per attempt
    with db.session() as s:
        cut = [e for e in s.query(Event) if e.delivered_at is None]
    assert len(cut) == 4 and all("no complete answer" in (e.last_error or "") for e in cut)
