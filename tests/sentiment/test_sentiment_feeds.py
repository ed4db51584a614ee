"""Feeds that are not what they seem (issue 10 item 7): each gets its rows read or one line.

Every case runs through the service (on SQLite and PostgreSQL) and through ``aigc`` (exit
codes: 1 and one line for an input the user must fix, 0 with counted skips otherwise).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from aigc_apps.cli import main
from aigc_apps.errors import DataError
from apps.sentiment.classifier import SentimentModel
from apps.sentiment.reader import MAX_TEXT_CHARS, LineSplitter
from apps.sentiment.scoring import LexiconScorer
from apps.sentiment.service import IngestOptions, SentimentService
from apps.sentiment.store import Record

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8


@pytest.fixture(autouse=True)
def lexicon_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SentimentModel, "load", classmethod(lambda cls, *a, **k: LexiconScorer()))


@pytest.fixture
def service(db_url: str) -> Iterator[SentimentService]:
    with SentimentService(db_url, embeddings=False) as svc:
        yield svc


def _texts(service: SentimentService) -> list[str]:
    with service.db.session() as s:
        return sorted(s.scalars(select(Record.text)))


def _aigc(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``aigc sentiment ...``; returns the exit code, stdout and stderr."""
    try:
        main(["sentiment", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


# -- line endings -----------------------------------------------------------------------
def test_line_splitter_cuts_every_line_ending_even_across_pieces() -> None:
    splitter = LineSplitter()
    pieces = [b"a\r", b"\nb\r", b"\r", b"c\r\nd", b"e\n", b"f"]
    lines = [line for piece in pieces for line in splitter.feed(piece)] + splitter.finish()
    assert lines == [b"a", b"b", b"", b"c", b"de", b"f"]
    splitter = LineSplitter()
    pieces = [b"a\r", b"", b"\n", b"\n", b"b"]  # \r\n, then an empty line
    lines = [line for piece in pieces for line in splitter.feed(piece)] + splitter.finish()
    assert lines == [b"a", b"", b"b"]


def test_a_cr_only_file_is_read_row_by_row(
    service: SentimentService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(b'id,text\r1,Bank profits rise\r2,"Fed holds,\rrates"\r3,Oil slips\r')
    report = service.ingest_file(path)
    assert (report.lines, report.stored, report.skipped) == (3, 3, [])
    assert _texts(service) == ["Bank profits rise", "Fed holds,\nrates", "Oil slips"]
    stdin = service.ingest_stream(io.BytesIO(b"id,text\r4,Lender fined\r5,Chips jump"),
                                  IngestOptions(source="pipe"))
    assert stdin.stored == 2
    other = tmp_path / "mac2.csv"
    other.write_bytes(b"id,text\r7,Crude rallies\r8,Stocks slide\r")
    code, out, _ = _aigc(["ingest", str(other), "--no-embeddings", "--json",
                          "--db", service.db.url], capsys)
    assert code == 0 and json.loads(out)["stored"] == 2


def test_follow_reads_a_live_cr_only_feed(service: SentimentService, tmp_path: Path) -> None:
    path = tmp_path / "live.csv"
    path.write_bytes(b"id,text\r1,Bank profits rise\r")
    stop = threading.Event()

    def writer() -> None:
        with open(path, "ab") as handle:
            for i in range(2, 5):
                handle.write(f"{i},Lender update {i} falls\r".encode())
                handle.flush()
                time.sleep(0.05)
        stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    report = service.ingester().follow(path, stop=stop, poll=0.02)
    thread.join()
    assert (report.stored, report.skipped) == (4, [])


# -- files that hold nothing usable ----------------------------------------------------
def test_a_header_only_file_is_an_error(
    service: SentimentService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "header.csv"
    path.write_text("id,timestamp,text\n")
    with pytest.raises(DataError, match=r"header\.csv: no records \(only a header\)"):
        service.ingest_file(path)
    with pytest.raises(DataError, match="<stdin>: no records"):
        service.ingest_stream(io.BytesIO(b"id,text\r\n"))
    code, _, err = _aigc(["ingest", str(path), "--db", service.db.url], capsys)
    _one_line_error(code, err, "no records (only a header)")
    assert _texts(service) == []


def test_a_missing_text_column_names_it_and_the_columns_found(
    service: SentimentService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = tmp_path / "wrong.csv"
    csv_file.write_text("id,story\n1,Bank profits rise\n2,Fed holds\n")
    with pytest.raises(DataError, match=r"missing text column \(one of text, headline.*"
                                        r"found: id, story\)"):
        service.ingest_file(csv_file)
    jsonl = tmp_path / "wrong.jsonl"
    jsonl.write_text('{"id": 1, "story": "Bank up"}\n{"id": 2, "summary": "Fed holds"}\n')
    with pytest.raises(DataError, match=r"missing text column .*found: id, story, summary"):
        service.ingest_file(jsonl)
    with pytest.raises(DataError, match=r"missing column 'body' \(found: id, story\)"):
        service.ingest_file(csv_file, IngestOptions(text_col="body"))
    code, _, err = _aigc(["ingest", str(csv_file), "--db", service.db.url], capsys)
    _one_line_error(code, err, "missing text column", "found: id, story")
    code, _, err = _aigc(["ingest", str(csv_file), "--text-col", "body",
                          "--db", service.db.url], capsys)
    _one_line_error(code, err, "missing column 'body'")
    # with the column named, the same file is fine
    assert service.ingest_file(csv_file, IngestOptions(text_col="story")).stored == 2


def test_a_file_of_only_bad_rows_is_an_error_naming_the_first(
    service: SentimentService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty_texts.csv"
    path.write_text("id,text\n1,\n2,   \n")
    with pytest.raises(DataError, match=r"no usable records \(2 skipped; first: line 2: "
                                        r"empty 'text'\)"):
        service.ingest_file(path)
    code, _, err = _aigc(["ingest", str(path), "--db", service.db.url], capsys)
    _one_line_error(code, err, "no usable records")
    # rows that are all duplicates are usable: a re-run is not an error
    good = tmp_path / "good.csv"
    good.write_text("id,text\n1,Bank profits rise\n")
    service.ingest_file(good)
    assert service.ingest_file(good).duplicates == 1


def test_a_binary_file_is_refused_in_one_line(
    service: SentimentService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "logo.csv"
    path.write_bytes(PNG)
    with pytest.raises(DataError, match=r"logo\.csv: looks like a binary file"):
        service.ingest_file(path)
    code, _, err = _aigc(["ingest", str(path), "--db", service.db.url], capsys)
    _one_line_error(code, err, "binary")
    assert _texts(service) == []


# -- long texts -----------------------------------------------------------------------
def test_a_text_over_the_csv_field_limit_is_truncated_and_flagged(
    service: SentimentService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Python's csv module stops at 128 KB a field; such a text is cut like any long one."""
    huge = "Bank shares plunge " * 10_000  # 190 KB
    path = tmp_path / "long.csv"
    path.write_text(f'id,text\n1,"{huge}"\n2,Fed holds\n')
    report = service.ingest_file(path)
    assert (report.stored, report.skipped, report.truncated) == (2, [], [2])
    with service.db.session() as s:
        row = s.scalars(select(Record).where(Record.ext_id == "1")).one()
    assert row.truncated and len(row.text) == MAX_TEXT_CHARS and row.label == "negative"
    other = tmp_path / "long2.csv"
    other.write_text(f"id,text\n9,{huge}\n")
    code, out, _ = _aigc(["ingest", str(other), "--no-embeddings", "--json",
                          "--db", service.db.url], capsys)
    report_json = json.loads(out)
    assert code == 0 and report_json["stored"] == 1 and report_json["truncated_lines"] == [2]
