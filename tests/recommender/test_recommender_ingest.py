"""Ingest: upserts, deduplication, counted skips and all-or-nothing writes, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from aigc_apps.errors import DataError
from apps.recommender.ingest import EventColumns, ingest, parse_timestamp
from apps.recommender.store import RecEvent, RecItem, counts, open_db

ITEMS = "id,title,description,tags,price\na,Alpha,First item,x|y,1\nb,Beta,Second item,y,2\n"
EVENTS = (
    "user,item,type,rating,timestamp\n"
    "u1,a,view,,2024-01-01T10:00:00Z\n"
    "u1,b,rating,4,1704110400\n"
    "u2,a,view,,2024-01-02T10:00:00\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_ingest_is_idempotent_and_upserts(db_url: str, tmp_path: Path) -> None:
    db = open_db(db_url)
    items, events = write(tmp_path, "items.csv", ITEMS), write(tmp_path, "events.csv", EVENTS)
    first = ingest(db, items, events)
    assert (first.items_added, first.events_added, first.skipped) == (2, 3, [])
    again = ingest(db, items, events)
    assert (again.items_added, again.items_unchanged, again.events_added) == (0, 2, 0)
    assert again.events_duplicate == 3
    assert counts(db) == {"items": 2, "events": 3, "users": 2}

    changed = write(tmp_path, "items2.csv", ITEMS.replace("First item", "Better text"))
    report = ingest(db, changed)
    assert (report.items_updated, report.items_unchanged) == (1, 1)
    with db.session() as s:
        item = s.get(RecItem, "a")
        assert item is not None and item.description == "Better text"
        assert item.tag_list == ["x", "y"] and '"price": "1"' in item.extra


def test_duplicate_events_in_one_file_are_stored_once(db_url: str, tmp_path: Path) -> None:
    db = open_db(db_url)
    events = write(tmp_path, "e.csv", EVENTS + "u1,a,view,,2024-01-01T10:00:00Z\n")
    report = ingest(db, write(tmp_path, "i.csv", ITEMS), events)
    assert report.events_added == 3 and report.events_duplicate == 1


def test_duplicate_ids_with_different_texts_keep_the_last(db_url: str, tmp_path: Path) -> None:
    db = open_db(db_url)
    items = write(tmp_path, "i.csv", ITEMS + "a,Alpha 2,Other text,z,3\n")
    report = ingest(db, items)
    assert report.items_added == 2
    assert any("'a' has different text than record 1; kept the last" in s for s in report.skipped)
    with db.session() as s:
        assert s.get(RecItem, "a").title == "Alpha 2"  # type: ignore[union-attr]


def test_bad_event_rows_are_skipped_and_counted(db_url: str, tmp_path: Path) -> None:
    db = open_db(db_url)
    events = write(
        tmp_path,
        "e.csv",
        "user,item,type,rating,timestamp\n"
        "u1,a,view,,1704100000\n"
        "u1,zzz,view,,1704100001\n"
        "u1,b,rating,great,1704100002\n"
        "u2,b,view,,yesterday\n"
        ",b,view,,1704100003\n",
    )
    report = ingest(db, write(tmp_path, "i.csv", ITEMS), events)
    assert report.events_added == 1
    text = "\n".join(report.skipped)
    assert "unknown item 'zzz'" in text
    assert "rating 'great' is not a number" in text
    assert "timestamp 'yesterday'" in text
    assert "empty 'user'" in text
    assert len(report.skipped) == 4


def test_events_before_any_items_fail_cleanly(db_url: str, tmp_path: Path) -> None:
    db = open_db(db_url)
    with pytest.raises(DataError, match="no items in the store"):
        ingest(db, events=write(tmp_path, "e.csv", EVENTS))
    assert counts(db)["events"] == 0


def test_empty_file_and_missing_column_write_nothing(db_url: str, tmp_path: Path) -> None:
    db = open_db(db_url)
    with pytest.raises(DataError, match="empty"):
        ingest(db, write(tmp_path, "i.csv", ""))
    bad_events = write(tmp_path, "e.csv", "who,what\nu1,a\n")
    with pytest.raises(DataError, match="missing column 'user'"):
        ingest(db, write(tmp_path, "i.csv", ITEMS), bad_events)
    assert counts(db) == {"items": 0, "events": 0, "users": 0}  # the items were rolled back


def test_custom_column_names_and_jsonl(db_url: str, tmp_path: Path) -> None:
    db = open_db(db_url)
    ingest(db, write(tmp_path, "i.csv", ITEMS))
    events = write(tmp_path, "e.jsonl", '{"customer": "c9", "sku": "b", "when": "2024-02-01"}\n')
    report = ingest(
        db, events=events, event_columns=EventColumns(user="customer", item="sku", timestamp="when")
    )
    assert report.events_added == 1
    with db.session() as s:
        ev = s.scalars(select(RecEvent)).one()
        assert (ev.user_id, ev.item_id, ev.type) == ("c9", "b", "interaction")


def test_parse_timestamp_units() -> None:
    assert parse_timestamp("1704100000") == 1704100000.0
    assert parse_timestamp(1704100000000) == 1704100000.0  # milliseconds
    assert parse_timestamp("2024-01-01T00:00:00Z") == 1704067200.0
    with pytest.raises(ValueError):
        parse_timestamp("soon")


def test_item_without_text_is_skipped(db_url: str, tmp_path: Path) -> None:
    db = open_db(db_url)
    report = ingest(db, write(tmp_path, "i.csv", ITEMS + "c,,,x,\n"))
    assert report.items_added == 2
    assert any("no title or description" in s for s in report.skipped)


def test_events_without_timestamps_are_not_stored_twice(db_url: str, tmp_path: Path) -> None:
    db = open_db(db_url)
    ingest(db, write(tmp_path, "i.csv", ITEMS))
    untimed = write(tmp_path, "e.csv", "user,item\nu1,a\nu1,b\nu1,a\n")
    first = ingest(db, events=untimed)
    assert (first.events_added, first.events_duplicate) == (3, 0)  # a repeat view is an event
    again = ingest(db, events=untimed)
    assert (again.events_added, again.events_duplicate) == (0, 3)
    grown = write(tmp_path, "e2.csv", "user,item\nu1,a\nu1,b\nu1,a\nu1,b\n")
    assert ingest(db, events=grown).events_added == 1  # only the appended row is new
    with db.session() as s:
        times = [e.ts for e in s.scalars(select(RecEvent).order_by(RecEvent.id))]
    assert counts(db)["events"] == 4 and times[:3] == sorted(times[:3])


def test_store_events_are_weighted_by_type(db_url: str, tmp_path: Path) -> None:
    from apps.recommender.dataset import load_from_store

    db = open_db(db_url)
    events = EVENTS + "u2,b,purchase,,2024-01-03T10:00:00Z\n"
    ingest(db, write(tmp_path, "i.csv", ITEMS), write(tmp_path, "e.csv", events))
    catalog, log = load_from_store(db)
    m = log.matrix().toarray()
    u2, b = log.users.index("u2"), catalog.index["b"]
    assert m[u2, b] == 5.0 and m[u2, catalog.index["a"]] == 1.0
    _, flat = load_from_store(db, {})  # no type weights: a plain binary log
    assert flat.matrix().toarray().max() == 1.0


def test_untidy_bytes_cost_one_row_at_most(db_url: str, tmp_path: Path) -> None:
    """Issue 10 item 9: a field over 128 KB, CR-only endings, a lone surrogate and a NUL
    (which PostgreSQL cannot store) gave tracebacks; now each costs at most its row."""
    long_text = "y" * 200_000
    items = tmp_path / "items.csv"
    items.write_bytes(
        b"id,title,description,tags\r"
        b"a,Alpha,First item,x\r"
        b"b,Beta,has a NUL \x00 here,y\r"
        b"c,Gamma," + long_text.encode() + b",z\r"
        b"d,Delta,caf\xe9 in latin-1,z\r"
    )
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text('{"id": "e", "title": "Eps \\ud800", "description": "d", "tags": "z"}\n'
                     '{"id": "f", "title": "Phi", "description": "fine", "tags": "z"}\n')
    db = open_db(db_url)
    first = ingest(db, items)
    second = ingest(db, jsonl)
    assert first.items_added == 3 and len(first.skipped) == 1
    assert "row 5" in first.skipped[0] and "not valid UTF-8" in first.skipped[0]
    assert second.items_added == 1 and len(second.skipped) == 1
    assert "row 1" in second.skipped[0]
    with db.session() as s:
        assert s.get(RecItem, "b").description == "has a NUL  here"  # type: ignore[union-attr]
        assert len(s.get(RecItem, "c").description) == 200_000  # type: ignore[union-attr]
