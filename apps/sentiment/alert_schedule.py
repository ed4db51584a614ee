"""Alert checks spaced out for live feeds.

A stream worker stores a batch of 32 every few hundred milliseconds; checking the rules
after each one would count the same busy hour again and again. An :class:`AlertSchedule`
gathers the topics that got records and checks them at most every ``interval`` seconds
(and whenever the feed goes quiet or the worker stops), from each topic's earliest new
record, so no record escapes a check; alerts fire at most ``interval`` late.

A check counts the records of each touched topic's window (its baseline buckets), so under
a burst it costs more as the window fills: 20,000 records in one hour are counted again on
every check. Checks are therefore also spaced by :data:`CHECK_SHARE`: the next one waits at
least ``1 / CHECK_SHARE`` times as long as the last one took, which keeps alert checks to
about 5% of a busy worker's time, whatever the store holds (an alert is then a little later,
never missed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from aigc_apps.store import Database
from aigc_apps.webhooks import DeliveryReport

from .alerts import AlertEngine

log = logging.getLogger(__name__)
CHECK_SHARE = 0.05  # of a busy worker's time that alert checks may take


class AlertSchedule:
    """An :class:`AlertEngine` for live feeds: same interface, checks spaced out."""

    def __init__(self, engine: AlertEngine, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.interval = interval
        self.clock = clock
        self.pending: dict[str, datetime] = {}
        self._last_check = float("-inf")
        self._spacing = interval  # grows when a check takes longer than CHECK_SHARE of it

    def evaluate_since(self, db: Database, touched: Mapping[str, datetime]
                       ) -> list[dict[str, Any]]:
        """Note ``touched``; check everything noted when the interval has passed."""
        for topic, since in touched.items():
            self.pending[topic] = min(since, self.pending.get(topic, since))
        if not self.pending or self.clock() - self._last_check < self._spacing:
            self.engine.deliver(db)  # retries whose back-off has passed
            return []
        return self.flush(db)

    def flush(self, db: Database) -> list[dict[str, Any]]:
        """Check what is noted now; a failed check keeps it noted for the next one (the
        records are committed, so the check can wait) and never fails the batch."""
        self._last_check = self.clock()
        if not self.pending:
            return []
        pending, self.pending = self.pending, {}
        try:
            found = self.engine.evaluate_since(db, pending)
            took = self.clock() - self._last_check
            self._spacing = max(self.interval, took / CHECK_SHARE)
            return found
        except Exception as exc:
            log.warning("alert check failed, retried in %.0fs: %s", self.interval, exc)
            for topic, since in pending.items():
                self.pending[topic] = min(since, self.pending.get(topic, since))
            return []

    def deliver(self, db: Database) -> DeliveryReport | None:
        return self.engine.deliver(db)
