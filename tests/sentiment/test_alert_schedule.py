"""Alert checks spaced out for live feeds: held back, never lost, retried after a failure."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from aigc_apps.store import Database
from apps.sentiment.alert_schedule import AlertSchedule

T0 = datetime(2024, 5, 6, tzinfo=timezone.utc)


class RecordingEngine:
    """Notes each check; fails while ``broken``."""

    def __init__(self) -> None:
        self.checks: list[dict[str, datetime]] = []
        self.deliveries = 0
        self.broken = False

    def evaluate_since(self, db: Database, touched: dict[str, datetime]) -> list[dict[str, Any]]:
        if self.broken:
            raise RuntimeError("database went away")
        self.checks.append(dict(touched))
        return [{"topic": t} for t in sorted(touched)]

    def deliver(self, db: Database) -> None:
        self.deliveries += 1


def test_checks_are_spaced_out_and_cover_every_touched_topic() -> None:
    now = [100.0]
    engine = RecordingEngine()
    schedule = AlertSchedule(engine, interval=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    db: Any = None
    assert schedule.evaluate_since(db, {"banking": T0}) == [{"topic": "banking"}]  # first: now
    now[0] += 0.3
    assert schedule.evaluate_since(db, {"energy": T0 + timedelta(hours=2)}) == []
    now[0] += 0.3
    assert schedule.evaluate_since(db, {"energy": T0 + timedelta(hours=1)}) == []
    assert engine.deliveries == 2  # held back: due webhooks are still retried
    now[0] += 0.5
    assert schedule.evaluate_since(db, {"banking": T0}) == [{"topic": "banking"},
                                                            {"topic": "energy"}]
    # each topic from its earliest record since the last check
    assert engine.checks[-1] == {"banking": T0, "energy": T0 + timedelta(hours=1)}
    now[0] += 0.1
    assert schedule.evaluate_since(db, {"rates": T0}) == []
    assert schedule.flush(db) == [{"topic": "rates"}]  # a stop or a quiet feed: at once
    assert schedule.flush(db) == [] and len(engine.checks) == 3


def test_a_failed_check_is_kept_for_the_next_one() -> None:
    now = [0.0]
    engine = RecordingEngine()
    schedule = AlertSchedule(engine, interval=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    engine.broken = True
    assert schedule.evaluate_since(None, {"banking": T0}) == []  # type: ignore[arg-type]
    assert schedule.pending == {"banking": T0}
    engine.broken = False
    now[0] += 1.0
    assert schedule.evaluate_since(None, {"banking": T0 + timedelta(hours=1)}) == [  # type: ignore[arg-type]
        {"topic": "banking"}]
    assert engine.checks == [{"banking": T0}] and schedule.pending == {}


def test_slow_checks_are_spaced_out_further() -> None:
    """A check that takes 0.2 s (a window full of records) is followed by 4 s without one
    (5% of the time), then the spacing returns to the interval when checks are quick."""
    now = [0.0]

    class SlowEngine(RecordingEngine):
        took = 0.2

        def evaluate_since(self, db: Database, touched: dict[str, datetime]
                           ) -> list[dict[str, Any]]:
            now[0] += self.took
            return super().evaluate_since(db, touched)

    engine = SlowEngine()
    schedule = AlertSchedule(engine, interval=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    db: Any = None
    assert schedule.evaluate_since(db, {"banking": T0}) != []  # at 0.0, ends at 0.2
    now[0] = 3.0
    assert schedule.evaluate_since(db, {"banking": T0}) == []  # 3 s after it began: held back
    now[0] = 4.3
    engine.took = 0.0
    assert schedule.evaluate_since(db, {"banking": T0}) != []  # 4.3 s after: checked
    now[0] = 5.4
    assert schedule.evaluate_since(db, {"banking": T0}) != []  # quick again: 1 s spacing
    assert len(engine.checks) == 3
