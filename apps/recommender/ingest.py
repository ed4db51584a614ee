"""Load a catalogue and an event log into the store: upserts, deduplication, counted skips.

Both files are read and validated first and written in one transaction, so a file that
cannot be used leaves the store as it was. Bad rows are skipped and reported with their
row number; a row is never silently guessed at.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from aigc_apps.data import content_hash, read_records
from aigc_apps.data import parse_timestamp as core_parse_timestamp
from aigc_apps.errors import DataError
from aigc_apps.stamps import bump
from aigc_apps.store import Database, utcnow

from .store import CATALOG_STAMP, STAMPS, RecEvent, RecItem

CHUNK = 500


@dataclass
class ItemColumns:
    """Which file columns hold the item fields; every other column is kept as ``extra``."""

    id: str = "id"
    title: str = "title"
    description: str = "description"
    tags: str = "tags"


@dataclass
class EventColumns:
    """Which file columns hold the event fields (only ``user`` and ``item`` are required)."""

    user: str = "user"
    item: str = "item"
    type: str = "type"
    weight: str = "weight"
    rating: str = "rating"
    timestamp: str = "timestamp"


@dataclass
class IngestReport:
    items_added: int = 0
    items_updated: int = 0
    items_unchanged: int = 0
    events_added: int = 0
    events_duplicate: int = 0
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "skipped_count": len(self.skipped)}

    def summary(self) -> str:
        text = (
            f"items: {self.items_added} added, {self.items_updated} updated, "
            f"{self.items_unchanged} unchanged; events: {self.events_added} added, "
            f"{self.events_duplicate} already stored"
        )
        if self.skipped:
            text += f"; {len(self.skipped)} rows skipped"
        return text


def split_tags(value: Any) -> list[str]:
    """Tags from a list or a string separated by '|', ',' or ';' (lower-cased, de-duplicated)."""
    if value is None:
        return []
    parts = value if isinstance(value, list) else re.split(r"[|,;]", str(value))
    tags = [str(p).strip().lower() for p in parts]
    return list(dict.fromkeys(t for t in tags if t and t != "(no genres listed)"))


def parse_timestamp(value: Any) -> float:
    """Epoch seconds of an epoch (seconds or milliseconds) or ISO 8601 time; naive is UTC."""
    return core_parse_timestamp(value).timestamp()


def _number(value: Any, name: str) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is not a number") from None
    if number != number:
        raise ValueError(f"{name} {value!r} is not a number")
    return number


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def item_row(
    item_id: str, title: str, description: str, tags: list[str], extra: dict[str, Any]
) -> dict[str, Any]:
    """A ``rec_items`` row; ``content_hash`` tells an unchanged re-insert from an update."""
    row = {
        "id": item_id,
        "title": title,
        "description": description,
        "tags": "|".join(tags),
        "extra": json.dumps(extra, ensure_ascii=False, sort_keys=True, default=str),
    }
    row["content_hash"] = content_hash(
        [row["title"], row["description"], row["tags"], row["extra"]]
    )
    return row


def event_key(user: str, item: str, kind: str, ts: float) -> str:
    """An event's identity: the same user, item, type and time (to the millisecond)."""
    return content_hash([user, item, kind, repr(round(ts, 3))])


def _read_items(path: Path, cols: ItemColumns, report: IngestReport) -> dict[str, dict[str, Any]]:
    result = read_records(path, required=[cols.id])
    report.skipped += [f"{path.name}: {s}" for s in result.skipped]
    rows: dict[str, dict[str, Any]] = {}
    first_row: dict[str, int] = {}
    for n, rec in enumerate(result.records, start=1):
        item_id = str(rec[cols.id]).strip()
        title = str(rec.get(cols.title) or "").strip()
        description = str(rec.get(cols.description) or "").strip()
        if not title and not description:
            report.skipped.append(
                f"{path.name}: record {n}: item {item_id!r} has no title or description"
            )
            continue
        known = {cols.id, cols.title, cols.description, cols.tags}
        extra = {k: v for k, v in rec.items() if k not in known and v not in (None, "")}
        row = item_row(item_id, title, description, split_tags(rec.get(cols.tags)), extra)
        if item_id in rows:
            same = rows[item_id]["content_hash"] == row["content_hash"]
            why = "repeats" if same else "has different text than"
            report.skipped.append(
                f"{path.name}: record {n}: id {item_id!r} {why} record {first_row[item_id]}; "
                "kept the last"
            )
        first_row.setdefault(item_id, n)
        rows[item_id] = row
    return rows


def _read_events(
    path: Path, cols: EventColumns, known_items: set[str], report: IngestReport
) -> dict[str, dict[str, Any]]:
    result = read_records(path, required=[cols.user, cols.item])
    report.skipped += [f"{path.name}: {s}" for s in result.skipped]
    has_time = any(cols.timestamp in r for r in result.records)
    base = utcnow().timestamp()
    # Without a time column an event is identified by its (user, item, type) and how many
    # times that triple came before it in the file, so re-ingesting the export adds nothing.
    untimed: Counter[tuple[str, str, str]] = Counter()
    rows: dict[str, dict[str, Any]] = {}
    for n, rec in enumerate(result.records, start=1):
        user, item = str(rec[cols.user]).strip(), str(rec[cols.item]).strip()
        where = f"{path.name}: record {n}"
        if item not in known_items:
            report.skipped.append(f"{where}: unknown item {item!r} (not in the catalogue)")
            continue
        try:
            rating = _number(rec.get(cols.rating), "rating")
            weight = _number(rec.get(cols.weight), "weight")
            raw_ts = rec.get(cols.timestamp)
            if has_time and (raw_ts is None or str(raw_ts).strip() == ""):
                raise ValueError("empty timestamp")
            ts = parse_timestamp(raw_ts) if has_time else base + n * 1e-3
        except ValueError as exc:
            report.skipped.append(f"{where}: {exc}")
            continue
        kind = str(
            rec.get(cols.type) or ("rating" if rating is not None else "interaction")
        ).strip()
        if has_time:
            key = event_key(user, item, kind, ts)
        else:
            untimed[(user, item, kind)] += 1
            key = content_hash([user, item, kind, f"untimed#{untimed[(user, item, kind)]}"])
        if key in rows:
            report.events_duplicate += 1
            continue
        rows[key] = {
            "user_id": user,
            "item_id": item,
            "type": kind[:40],
            "weight": weight if weight is not None else 1.0,
            "rating": rating,
            "ts": ts,
            "dedup_key": key,
        }
    return rows


def ingest(
    db: Database,
    items: str | Path | None = None,
    events: str | Path | None = None,
    *,
    item_columns: ItemColumns | None = None,
    event_columns: EventColumns | None = None,
) -> IngestReport:
    """Upsert ``items`` and add new ``events`` in one transaction; re-runs change nothing."""
    if items is None and events is None:
        raise DataError("nothing to ingest: give an items file, an events file or both")
    report = IngestReport()
    item_rows = _read_items(Path(items), item_columns or ItemColumns(), report) if items else {}
    with db.session() as s:
        upsert_items(s, item_rows, report)
        if events is None:
            return report
        s.flush()
        known = set(s.scalars(select(RecItem.id)))
        if not known:
            raise DataError(
                f"{events}: there are no items in the store yet; "
                "ingest the catalogue first (--items FILE)"
            )
        event_rows = _read_events(Path(events), event_columns or EventColumns(), known, report)
        insert_events(s, event_rows, report)
    return report


def upsert_items(s: Session, item_rows: dict[str, dict[str, Any]], report: IngestReport) -> None:
    """Add new items, update changed ones (``updated_at`` moves), count the unchanged."""
    existing: dict[str, RecItem] = {}
    for chunk in _chunks(list(item_rows)):
        existing.update({i.id: i for i in s.scalars(select(RecItem).where(RecItem.id.in_(chunk)))})
    now = utcnow()
    new_rows = []
    changed = False
    for item_id, row in item_rows.items():
        old = existing.get(item_id)
        if old is None:
            new_rows.append({**row, "created_at": now, "updated_at": now})
            report.items_added += 1
        elif old.content_hash == row["content_hash"]:
            report.items_unchanged += 1
        else:
            for key, value in row.items():
                setattr(old, key, value)
            old.updated_at = now
            report.items_updated += 1
            changed = True
    if new_rows:
        s.execute(insert(RecItem), new_rows)
    if new_rows or changed:  # committed with the rows: every worker reloads the catalogue
        bump(s, CATALOG_STAMP, table=STAMPS)


def insert_events(s: Session, event_rows: dict[str, dict[str, Any]], report: IngestReport) -> None:
    """Insert the events (by ``dedup_key``) not stored yet; the rest count as duplicates."""
    keys = list(event_rows)
    stored: set[str] = set()
    for chunk in _chunks(keys):
        stored.update(s.scalars(select(RecEvent.dedup_key).where(RecEvent.dedup_key.in_(chunk))))
    fresh = [event_rows[k] for k in keys if k not in stored]
    report.events_duplicate += len(keys) - len(fresh)
    for start in range(0, len(fresh), 5000):
        s.execute(insert(RecEvent), fresh[start : start + 5000])
    report.events_added += len(fresh)
