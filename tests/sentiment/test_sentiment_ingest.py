"""Ingest: batch files, dedup, bad input, follow mode on a growing file."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from aigc_apps.errors import DataError
from aigc_apps.store import Database
from apps.sentiment.ingest import Ingester, IngestReport, parse_timestamp
from apps.sentiment.reader import MAX_TEXT_CHARS
from apps.sentiment.scoring import LexiconScorer
from apps.sentiment.store import Record, RecordTopic
from apps.sentiment.topics import TopicMatcher, WatchTopic

T0 = datetime(2024, 5, 6, 10, tzinfo=timezone.utc)
TOPICS = [WatchTopic("banking", ["bank", "lender"]), WatchTopic("rates", ["Fed", "interest rate"])]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Record)) or 0)


def _ingester(db: Database, scorer: LexiconScorer, **kw) -> Ingester:
    return Ingester(db, scorer, TopicMatcher(TOPICS), **kw)


def test_batch_ingest_scores_and_assigns_topics(db: Database, scorer, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "feed.jsonl", [
        {"id": "a", "timestamp": "2024-05-06T10:00:00Z", "text": "Bank shares plunge on losses"},
        {"id": "b", "timestamp": "2024-05-06T10:05:00+02:00", "text": "Fed holds interest rates"},
        {"id": "c", "timestamp": 1714990000, "text": "Chip profits jump"},
    ])
    report = _ingester(db, scorer, source="wire").ingest_file(path)
    assert (report.stored, report.duplicates, len(report.skipped)) == (3, 0, 0)
    with db.session() as s:
        rows = {r.ext_id: r for r in s.scalars(select(Record))}
        topics = {(t.record_id, t.topic, t.method) for t in s.scalars(select(RecordTopic))}
    assert rows["a"].label == "negative" and rows["c"].label == "positive"
    assert rows["b"].label == "neutral" and rows["a"].source == "wire"
    assert rows["a"].score == pytest.approx(rows["a"].p_positive - rows["a"].p_negative)
    assert (rows["a"].id, "banking", "keyword") in topics
    assert (rows["b"].id, "rates", "keyword") in topics
    assert not any(rid == rows["c"].id for rid, _, _ in topics)


def test_dedup_by_source_and_id_by_text_and_by_resent_copy(
    db: Database, scorer, tmp_path: Path
) -> None:
    rows = [
        {"id": "1", "text": "Bank profits rise", "source": "wire"},
        {"id": "1", "text": "Different text, same id", "source": "wire"},  # same (source, id)
        {"id": "2", "text": "  bank PROFITS   rise ", "source": "wire"},  # same source + text
        {"id": "3", "text": "Bank profits rise", "source": "social"},  # other source: kept
        {"text": "No id here but new", "source": "wire"},
        {"id": "1", "text": "Same id from another feed", "source": "social"},  # its own id 1
        {"id": "1", "text": "Bank profits rise", "source": "mirror"},  # a re-sent copy
    ]
    path = _jsonl(tmp_path / "a.jsonl", rows)
    first = _ingester(db, scorer).ingest_file(path)
    assert (first.stored, first.duplicates) == (4, 3)
    again = _ingester(db, scorer).ingest_file(path)  # re-run is a no-op
    assert (again.stored, again.duplicates) == (0, 7)
    with db.session() as s:
        stored = set(s.execute(select(Record.source, Record.ext_id)))
    assert stored == {("wire", "1"), ("social", "3"), ("wire", None), ("social", "1")}
    # the stored records re-delivered under another file name (the default source) and
    # without a source field: the same id with the same text is a copy, whoever sends it
    copy = _jsonl(tmp_path / "copy.jsonl", [{"id": "1", "text": "Bank profits rise"},
                                             {"id": "3", "text": "bank profits rise"}])
    third = Ingester(db, scorer, source="copy.jsonl").ingest_file(copy)
    assert (third.stored, third.duplicates) == (0, 2)
    assert _count(db) == 4


def test_a_second_feed_keeps_its_records_when_ids_collide(db: Database, scorer, tmp_path: Path
                                                         ) -> None:
    """Issue 10 item 2: reuters ids 1-3 after headlines ids 1-3 stored 0 ("3 duplicates")."""
    headlines = tmp_path / "headlines.csv"
    headlines.write_text("id,text\n1,Bank profits rise\n2,Fed holds rates\n3,Oil slips\n")
    reuters = tmp_path / "reuters.csv"
    reuters.write_text("id,text\n1,Lender fined\n2,Chipmaker beats estimates\n3,Oil slips again\n")
    assert Ingester(db, scorer, source="headlines.csv").ingest_file(headlines).stored == 3
    report = Ingester(db, scorer, source="reuters").ingest_file(reuters)
    assert (report.stored, report.duplicates) == (3, 0)
    again = Ingester(db, scorer, source="reuters").ingest_file(reuters)
    assert (again.stored, again.duplicates) == (0, 3)
    with db.session() as s:
        by_source = sorted(s.execute(select(Record.source, Record.ext_id)))
    assert by_source == [(src, i) for src in ("headlines.csv", "reuters") for i in "123"]


def _bypass_check(ingester: Ingester, monkeypatch: pytest.MonkeyPatch) -> Ingester:
    """Its duplicate check ran before another ingester committed: only the database can tell."""
    monkeypatch.setattr(ingester, "_new_only", lambda batch, report: batch)
    return ingester


def test_the_database_enforces_the_identity_rule_in_a_race(
    db: Database, scorer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ingester(db, scorer, source="wire").ingest_file(
        _jsonl(tmp_path / "a.jsonl", [{"id": "7", "text": "Bank profits rise"}]))
    same_feed = _bypass_check(_ingester(db, scorer, source="wire"), monkeypatch)
    report = same_feed.ingest_file(_jsonl(tmp_path / "b.jsonl", [
        {"id": "7", "text": "Same story, other wording"}, {"id": "8", "text": "Fresh news"}]))
    assert (report.stored, report.duplicates) == (1, 1)  # (source, id) is taken
    other_feed = _bypass_check(_ingester(db, scorer, source="social"), monkeypatch)
    report = other_feed.ingest_file(_jsonl(tmp_path / "c.jsonl", [
        {"id": "7", "text": "Its own story seven"},  # another source's id 7: a new record
        {"id": "8", "text": "Fresh  NEWS"}]))  # wire's id 8, same text: a re-sent copy
    assert (report.stored, report.duplicates) == (1, 1)
    with db.session() as s:
        stored = sorted(s.execute(select(Record.source, Record.ext_id)))
    assert stored == [("social", "7"), ("wire", "7"), ("wire", "8")]


def test_racing_ingesters_store_each_document_once(db: Database, scorer, tmp_path: Path) -> None:
    """Three ingesters check for duplicates at the same moment, then write: a feed re-sent
    under another source is stored once, a feed with colliding ids is stored whole."""
    wire = _jsonl(tmp_path / "wire.jsonl", [{"id": str(i), "text": f"Bank story {i} rises"}
                                            for i in range(20)])
    other = _jsonl(tmp_path / "other.jsonl", [{"id": str(i), "text": f"Oil report {i} falls"}
                                              for i in range(20)])
    barrier = threading.Barrier(3, timeout=30)
    reports: dict[str, IngestReport] = {}

    def run(source: str, path: Path) -> None:
        ingester = _ingester(db, scorer, source=source, batch_size=8)
        check = ingester._new_only

        def checked_together(batch, report):
            fresh = check(batch, report)
            barrier.wait()  # every ingester has checked; none has written yet
            return fresh

        ingester._new_only = checked_together  # type: ignore[method-assign]
        reports[source] = ingester.ingest_file(path)

    threads = [threading.Thread(target=run, args=args)
               for args in (("wire", wire), ("mirror", wire), ("reuters", other))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    wire_r, mirror_r, reuters_r = (reports[k] for k in ("wire", "mirror", "reuters"))
    assert wire_r.stored + mirror_r.stored == 20 and wire_r.duplicates + mirror_r.duplicates == 20
    assert (reuters_r.stored, reuters_r.duplicates) == (20, 0)
    assert _count(db) == 40


def test_a_store_from_before_the_rule_upgrades_and_keeps_its_records(db_url: str, scorer
                                                                     ) -> None:
    from aigc_apps.migrations import schema_diff, upgrade
    from apps.sentiment.store import SCHEMA

    old = Database(db_url)
    upgrade(old, SCHEMA, "sentiment_0002")  # ids unique across every source
    with old.session() as s:
        s.execute(insert(Record), [{
            "source": "headlines", "ext_id": "1", "text": "Bank profits rise",
            "text_hash": "h1", "truncated": False, "ts": T0, "ingested_at": T0,
            "label": "positive", "p_negative": 0.1, "p_neutral": 0.2, "p_positive": 0.7,
            "score": 0.6, "model": "lexicon"}])
    upgrade(old, SCHEMA)
    assert schema_diff(old, SCHEMA) == []
    report = Ingester(old, scorer, source="reuters").ingest_records(
        [{"id": "1", "text": "Lender fined"}])
    assert (report.stored, report.duplicates) == (1, 0)
    assert _count(old) == 2
    old.dispose()


def test_bad_lines_are_counted_and_skipped(db: Database, scorer, tmp_path: Path) -> None:
    big = "Bank loss " * ((1 << 20) // 10)  # a 1 MB text: truncated, flagged, reported
    lines = [
        json.dumps({"id": "ok1", "text": "Bank profits rise", "timestamp": "2024-05-06T10:00Z"}),
        json.dumps({"id": "e", "text": "   "}),
        json.dumps({"id": "t", "text": "Fed cuts", "timestamp": "not a time"}),
        '{"id": "broken", "text": "no closing brace"',
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "nt", "body2": "no text field"}),
        json.dumps({"id": "big", "text": big}),
        json.dumps({"id": "ok2", "text": "Lender fined \u0000 heavily"}),
    ]
    raw = ("\n".join(lines[:3]) + "\n").encode() + b'{"id": "x", "text": "caf\xe9"}\n'
    raw += ("\n".join(lines[3:]) + "\n").encode()
    path = tmp_path / "bad.jsonl"
    path.write_bytes(raw)
    report = _ingester(db, scorer).ingest_file(path)
    reasons = {s.row: s.reason for s in report.skipped}
    assert report.stored == 3 and report.lines == 9 and "of 9 records" in report.summary()
    assert set(reasons) == {2, 3, 4, 5, 6, 7}
    assert "empty" in reasons[2] and "timestamp" in reasons[3] and "UTF-8" in reasons[4]
    assert "invalid JSON" in reasons[5] and "not a JSON object" in reasons[6]
    assert "no text field" in reasons[7]
    assert report.truncated == [8]
    with db.session() as s:
        big_row = s.scalars(select(Record).where(Record.ext_id == "big")).one()
        nul_row = s.scalars(select(Record).where(Record.ext_id == "ok2")).one()
    assert big_row.truncated and len(big_row.text) == MAX_TEXT_CHARS
    assert "\x00" not in nul_row.text
    assert report.to_dict()["truncated_lines"] == [8]



def test_long_ids_are_skipped_whole_and_long_urls_are_not_ids(
    db: Database, scorer, tmp_path: Path
) -> None:
    """Issue 24: ids were cut to 500 characters (the column), so two documents whose ids
    (or, without one, URLs) share their first 500 characters became one."""
    page = "https://news.example/" + "p" * 500
    path = _jsonl(tmp_path / "ids.jsonl", [
        {"id": "i" * 500 + "a", "text": "Bank profits rise"},
        {"id": "i" * 500 + "b", "text": "Bank shares plunge"},
        {"url": page + "/one", "text": "Lender opens a branch"},
        {"url": page + "/two", "text": "Lender closes a branch"},
        {"id": "k", "source": "s" * 201, "text": "Fed holds rates"},
        {"id": "i" * 500, "source": "s" * 200, "text": "Fed cuts rates"},
    ])
    report = _ingester(db, scorer).ingest_file(path)
    reasons = {s.row: s.reason for s in report.skipped}
    assert set(reasons) == {1, 2, 5} and (report.stored, report.duplicates) == (3, 0)
    assert "'id' is longer than 500 characters" in reasons[1] == reasons[2]
    assert "'source' is longer than 200 characters" in reasons[5]
    with db.session() as s:
        stored = {r.text: r for r in s.scalars(select(Record))}
    assert stored["Fed cuts rates"].ext_id == "i" * 500
    for text in ("Lender opens a branch", "Lender closes a branch"):  # known by their text
        assert stored[text].ext_id is None and stored[text].url.startswith(page)


def test_future_dated_lines_are_counted_skips(db: Database, scorer, tmp_path: Path) -> None:
    """Issue 24: a line dated 9999 was stored and stretched every trend to that year."""
    later = int((T0 + timedelta(days=400)).timestamp() * 1000)  # epoch milliseconds
    path = _jsonl(tmp_path / "future.jsonl", [
        {"id": "now", "timestamp": T0.isoformat(), "text": "Bank profits rise"},
        {"id": "skew", "timestamp": (T0 + timedelta(hours=23)).isoformat(), "text": "Fed"},
        {"id": "far", "timestamp": "9999-12-31T00:00:00Z", "text": "Bank shares plunge"},
        {"id": "day", "timestamp": (T0 + timedelta(hours=25)).isoformat(), "text": "Oil"},
        {"id": "ms", "timestamp": later, "text": "Lender fined"},
    ])
    report = _ingester(db, scorer, now=lambda: T0).ingest_file(path)
    reasons = {s.row: s.reason for s in report.skipped}
    assert set(reasons) == {3, 4, 5} and report.stored == 2
    assert "3 skipped" in report.summary()
    for reason in reasons.values():
        assert reason.startswith("'timestamp' ") and "more than 24h in the future" in reason
    assert "9999-12-31T00:00:00+00:00" in reasons[3]


def test_unstorable_characters_skip_or_clean_one_line(db: Database, scorer, tmp_path: Path
                                                      ) -> None:
    """JSON escapes for lone surrogates and NUL must not stop ingest (PostgreSQL: no NUL)."""
    path = tmp_path / "esc.jsonl"
    path.write_text("\n".join([
        r'{"id": "s1", "text": "Bank surrogate \ud800 text"}',
        r'{"id": "s2", "source": "\udc00", "text": "Bank surrogate source"}',
        r'{"id": "n1", "source": "wi\u0000re", "text": "Bank NUL in source"}',
        r'{"id": "n2\u0000", "url": "http://x/\u0000y", "text": "Bank NUL in id and url"}',
        r'{"id": "ok", "text": "Bank profits rise \ud83d\ude00"}',
    ]) + "\n", encoding="utf-8")
    report = _ingester(db, scorer).ingest_file(path)
    assert report.stored == 3
    reasons = {s.row: s.reason for s in report.skipped}
    assert set(reasons) == {1, 2}
    assert "'text' is not valid UTF-8" in reasons[1] and "'source'" in reasons[2]
    with db.session() as s:
        rows = {r.ext_id: r for r in s.scalars(select(Record))}
    assert rows["n1"].source == "wire"
    assert rows["n2"].url == "http://x/y"
    assert rows["ok"].text.endswith("\U0001f600")


def test_csv_with_quoted_newlines_and_errors(db: Database, scorer, tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    path.write_text(
        'id,timestamp,text\n'
        '1,2024-05-06T10:00:00Z,"Bank shares fall,\nthen recover"\n'
        '2,2024-05-06T10:01:00Z,Fed holds,extra cell\n'
        '3,2024-05-06 10:02,Lender profits rise\n',
        encoding="utf-8",
    )
    report = _ingester(db, scorer).ingest_file(path)
    assert report.stored == 2
    assert [(s.row, "more cells" in s.reason) for s in report.skipped] == [(4, True)]


def test_missing_and_empty_file(db: Database, scorer, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        _ingester(db, scorer).ingest_file(tmp_path / "nope.jsonl")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        _ingester(db, scorer).ingest_file(tmp_path / "empty.csv")


def test_scorer_failure_stores_nothing_of_the_batch(db: Database, tmp_path: Path) -> None:
    class Broken:
        name = "broken"

        def predict_proba(self, texts):
            raise RuntimeError("model crashed")

    path = _jsonl(tmp_path / "f.jsonl", [{"text": "Bank profits rise"}, {"text": "Fed"}])
    with pytest.raises(RuntimeError):
        Ingester(db, Broken()).ingest_file(path)
    assert _count(db) == 0


def test_parse_timestamp_forms() -> None:
    assert parse_timestamp("2024-05-06T10:00:00Z").isoformat() == "2024-05-06T10:00:00+00:00"
    assert parse_timestamp("2024-05-06 12:00+02:00").hour == 12
    assert parse_timestamp(1714989600).isoformat() == "2024-05-06T10:00:00+00:00"
    assert parse_timestamp("1714989600000").isoformat() == "2024-05-06T10:00:00+00:00"
    with pytest.raises(ValueError):
        parse_timestamp("06/05/2024 ten o'clock")


def test_follow_ingests_lines_appended_while_running(db: Database, scorer, tmp_path: Path) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text(json.dumps({"id": "0", "text": "Bank profits rise"}) + "\n")
    stop = threading.Event()

    def writer() -> None:
        with open(path, "ab") as handle:
            for i in range(1, 8):
                line = json.dumps({"id": str(i), "text": f"Lender update number {i} falls"})
                if i == 3:
                    handle.write(b'{"id": "bad", "text": \xff\xfe broken\n')
                if i == 5:  # a line written in two parts must be read whole
                    handle.write(line[:10].encode())
                    handle.flush()
                    time.sleep(0.1)
                    handle.write(line[10:].encode() + b"\n")
                else:
                    handle.write(line.encode() + b"\n")
                handle.flush()
                time.sleep(0.05)
        stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    report = _ingester(db, scorer, batch_size=4).follow(path, stop=stop, poll=0.02)
    thread.join()
    assert report.stored == 8
    assert [s.row for s in report.skipped] == [4]
    assert _count(db) == 8


def test_follow_stops_after_idle_timeout(db: Database, scorer, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "quiet.jsonl", [{"text": "Bank profits rise"}])
    report = _ingester(db, scorer).follow(path, idle_timeout=0.2, poll=0.02)
    assert report.stored == 1


def test_a_stray_quote_costs_nothing(db: Database, scorer, tmp_path: Path) -> None:
    """Issue 10 item 1: one `5"` used to swallow the rest of the file as one skip."""
    rows = [f"q{i},Bank {i} beats estimates" for i in range(100)]
    rows[4] = 'q4,Analyst says 5" display chipmaker beats estimates'
    path = tmp_path / "quotes.csv"
    path.write_text("id,text\n" + "\n".join(rows) + "\n", encoding="utf-8")
    report = _ingester(db, scorer).ingest_file(path)
    assert (report.stored, report.skipped) == (100, [])
    with db.session() as s:
        text = s.scalars(select(Record.text).where(Record.ext_id == "q4")).one()
    assert text == 'Analyst says 5" display chipmaker beats estimates'


def test_all_or_none_refuses_the_batch_naming_the_bad_record(db: Database, scorer) -> None:
    from apps.sentiment.documents import store_activity
    from apps.sentiment.ingest import RefusedRecord

    good = {"id": "a", "text": "Bank shares plunge on losses"}
    with pytest.raises(RefusedRecord) as refused:
        _ingester(db, scorer).ingest_all_or_none([good, {"id": "b", "text": "  "}])
    assert refused.value.index == 1 and "no record was stored" in str(refused.value)
    assert isinstance(refused.value, DataError) and _count(db) == 0
    report = _ingester(db, scorer, source="api").ingest_all_or_none([good])
    assert (report.stored, report.duplicates) == (1, 0)
    activity = store_activity(db, timedelta(minutes=1))
    assert (activity.stored, activity.recent) == (1, 1)
    assert activity.per_second == pytest.approx(1 / 60)
