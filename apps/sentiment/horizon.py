"""How far ahead of the clock a document may be dated: the tolerance for clock skew.

One record dated 9999 stretched every trend series to that year, and since a series keeps
its newest buckets, the present fell off the chart and out of the alert checks. So every
way in (HTTP, files, the stream) refuses a time beyond the horizon, and the tallies that
trends and alerts are built from stop there, which also hides such records stored before.
A day covers feeds stamped in a time zone they do not state and hosts whose clocks are off
by hours; a document dated further ahead is an error at its source.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

FUTURE_TOLERANCE_HOURS = 24
FUTURE_TOLERANCE = timedelta(hours=FUTURE_TOLERANCE_HOURS)


def horizon(now: datetime | None = None) -> datetime:
    """The latest time a stored document may carry."""
    return (now or datetime.now(timezone.utc)) + FUTURE_TOLERANCE


def too_far_ahead(ts: datetime, now: datetime | None = None) -> str | None:
    """Why ``ts`` (timezone-aware) is refused, or None when it is not past the horizon."""
    if ts <= horizon(now):
        return None
    return (f"{ts.isoformat()} is more than {FUTURE_TOLERANCE_HOURS}h in the future "
            "(the tolerance for clock skew)")
