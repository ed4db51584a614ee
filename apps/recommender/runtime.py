"""Items and events written while serving (the HTTP API's inserts, in the style of Gorse).

A batch is checked whole before anything is written, then written in one transaction: an
event that names an item the catalogue lacks rejects the batch, so a client never has to
find out which half was stored. Events are identified as file ingest identifies them (user,
item, type and time), so re-posting a batch that carries timestamps stores nothing twice;
an event without a timestamp happened now and is always new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, update

from aigc_apps.errors import DataError, NotFoundError
from aigc_apps.rowparser import clean_text
from aigc_apps.stamps import bump
from aigc_apps.store import Database, utcnow

from .ingest import (
    IngestReport,
    _chunks,
    event_key,
    insert_events,
    item_row,
    split_tags,
    upsert_items,
)
from .store import CATALOG_STAMP, STAMPS, RecItem

MAX_ID_CHARS = 200  # the width of the id columns
MAX_TYPE_CHARS = 40


@dataclass
class NewItem:
    """A catalogue item: an id and some text (title and/or description) to be found by."""

    item_id: str
    title: str = ""
    description: str = ""
    tags: list[str] | str = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class NewEvent:
    """``user_id`` did ``type`` (``view``, ``click``, ``purchase``...) to ``item_id``;
    ``timestamp`` None is now; ``weight`` multiplies the type's weight."""

    user_id: str
    item_id: str
    type: str = "view"
    timestamp: datetime | float | None = None
    weight: float | None = None
    rating: float | None = None


def add_items(db: Database, items: Sequence[NewItem]) -> IngestReport:
    """Insert new items and update changed ones (one transaction); items repeated in the
    batch keep the last."""
    if not items:
        raise DataError("no items given")
    rows: dict[str, dict[str, Any]] = {}
    for n, item in enumerate(items, start=1):
        item_id = _id(item.item_id, f"item {n}: item_id")
        title = clean_text(item.title or "").strip()
        description = clean_text(item.description or "").strip()
        if not title and not description:
            raise DataError(f"item {n} ({item_id!r}) has no title or description to be found by")
        tags = split_tags([_text(t) for t in item.tags] if isinstance(item.tags, list)
                          else _text(item.tags))  # fmt: skip
        extra = {_text(k): _text(v) for k, v in item.extra.items()}
        rows[item_id] = item_row(item_id, title, description, tags, extra)
    report = IngestReport()
    with db.session() as s:
        upsert_items(s, rows, report)
        # posting a withdrawn item again lists it again (file ingest leaves it withdrawn)
        restored = s.execute(  # type: ignore[attr-defined]  # an UPDATE's CursorResult
            update(RecItem)
            .where(RecItem.id.in_(list(rows)), RecItem.withdrawn_at.is_not(None))
            .values(withdrawn_at=None)
        ).rowcount
        if restored and not (report.items_added or report.items_updated):
            bump(s, CATALOG_STAMP, table=STAMPS)  # upsert_items bumped when rows changed
    return report


def withdraw_items(db: Database, item_ids: Sequence[str]) -> list[str]:
    """Withdraw items (one transaction): never recommended again, until posted again with
    :func:`add_items`. Their rows and events stay: a shop's history is not rewritten, and
    the next training still learns from them. Returns the ids newly withdrawn (an item
    already withdrawn is left as it is); NotFoundError, and nothing changed, for an id the
    catalogue lacks."""
    wanted = sorted({_id(i, "item_id") for i in item_ids})
    if not wanted:
        raise DataError("no items given")
    with db.session() as s:
        found = dict(
            s.execute(select(RecItem.id, RecItem.withdrawn_at).where(RecItem.id.in_(wanted))).all()
        )
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFoundError(f"unknown item {missing[0]!r}; nothing was withdrawn")
        newly = [i for i in wanted if found[i] is None]
        if newly:
            s.execute(update(RecItem).where(RecItem.id.in_(newly)).values(withdrawn_at=utcnow()))
            bump(s, CATALOG_STAMP, table=STAMPS)  # every worker's served model drops them
    return newly


def withdrawn_ids(db: Database) -> set[str]:
    """Ids of the withdrawn items."""
    with db.session() as s:
        return set(s.scalars(select(RecItem.id).where(RecItem.withdrawn_at.is_not(None))))


def add_events(db: Database, events: Sequence[NewEvent]) -> IngestReport:
    """Store the events not stored yet (one transaction); NotFoundError, and nothing stored,
    when any names an item the catalogue lacks."""
    if not events:
        raise DataError("no events given")
    now = utcnow().timestamp()
    rows: dict[str, dict[str, Any]] = {}
    report = IngestReport()
    for n, e in enumerate(events, start=1):
        user, item = _id(e.user_id, f"event {n}: user_id"), _id(e.item_id, f"event {n}: item_id")
        kind = (e.type or "").strip().lower()
        if not kind or len(kind) > MAX_TYPE_CHARS:
            raise DataError(f"event {n}: type must be 1 to {MAX_TYPE_CHARS} characters")
        ts = now + n * 1e-3 if e.timestamp is None else _epoch(e.timestamp, n)
        if e.weight is not None and not e.weight > 0:
            raise DataError(f"event {n}: weight must be positive, got {e.weight}")
        key = event_key(user, item, kind, ts)
        if key in rows:
            report.events_duplicate += 1
            continue
        row = {"user_id": user, "item_id": item, "type": kind, "ts": ts, "dedup_key": key}
        rows[key] = row | {"weight": e.weight or 1.0, "rating": e.rating}
    with db.session() as s:
        wanted = sorted({r["item_id"] for r in rows.values()})
        known: set[str] = set()
        for chunk in _chunks(wanted):
            known.update(s.scalars(select(RecItem.id).where(RecItem.id.in_(chunk))))
        missing = [i for i in wanted if i not in known]
        if missing:
            shown = ", ".join(repr(i) for i in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise NotFoundError(
                f"unknown item{'s' if len(missing) > 1 else ''} {shown}{more}: add "
                "them to the catalogue first; no event of this batch was stored"
            )
        insert_events(s, rows, report)
    return report


def _id(value: str, what: str) -> str:
    text = str(value).strip()
    if not text or len(text) > MAX_ID_CHARS:
        raise DataError(f"{what} must be 1 to {MAX_ID_CHARS} characters")
    if "\x00" in text:  # no database stores it, and an id must not be silently changed
        raise DataError(f"{what} contains a NUL character")
    return text


def _text(value: Any) -> Any:
    """Free text without NUL characters (as file ingest reads it); other values as given."""
    return clean_text(value) if isinstance(value, str) else value


def _epoch(value: datetime | float, n: int) -> float:
    """Epoch seconds of a time from 1970 on (naive: UTC)."""
    shown = value.isoformat() if isinstance(value, datetime) else repr(value)
    try:
        if isinstance(value, datetime):
            stamp = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
            seconds = stamp.timestamp()
        else:
            seconds = float(value)
    except (OverflowError, ValueError, OSError):
        seconds = float("nan")
    if not 0 <= seconds < 1e11:  # NaN fails too
        raise DataError(f"event {n}: timestamp {shown} is outside 1970 to 5138")
    return seconds
