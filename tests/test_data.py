from __future__ import annotations

from pathlib import Path

import pytest

from aigc_apps.data import content_hash, read_records
from aigc_apps.errors import DataError
from aigc_apps.settings import get_settings


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_and_counted_skips(tmp_path: Path) -> None:
    path = write(tmp_path / "q.csv", "text,category\nhello,a\n,b\nbye,\nok,c,extra\nfine,d\n")
    result = read_records(path, required=["text", "category"])
    assert [r["text"] for r in result.records] == ["hello", "fine"]
    assert [(s.row, s.reason) for s in result.skipped] == [
        (3, "empty 'text'"),
        (4, "empty 'category'"),
        (5, "more cells than header columns"),
    ]
    assert "3 skipped" in result.summary()


def test_jsonl_bad_lines_are_skipped_not_fatal(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "a"}\n{oops\n\n[1, 2]\n{"text": "b"}\n')
    result = read_records(path, required=["text"])
    assert [r["text"] for r in result.records] == ["a", "b"]
    assert [s.row for s in result.skipped] == [2, 4]


def test_json_list(tmp_path: Path) -> None:
    path = write(tmp_path / "d.json", '[{"text": "a"}, {"text": "b"}]')
    assert len(read_records(path, required=["text"]).records) == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "file not found"),
        ("empty.csv", "  \n", "file is empty"),
        ("data.xlsx", "a,b\n", "unknown format '.xlsx'"),
        ("latin.csv", b"text\ncaf\xe9\n", "row 2: 'text' is not valid UTF-8"),
        ("image.txt.csv", b"text\n\x89PNG\x00\x00\x01", "looks like a binary file"),
        ("header.csv", "text,label\n", "no usable rows"),
        ("cols.csv", "body,label\nx,y\n", "missing column 'text' (found: body, label)"),
        ("allbad.csv", "text\n\n\n", "no usable rows"),
    ],
)
def test_unreadable_files_raise_one_line(
    tmp_path: Path, name: str, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        write(path, content)
    with pytest.raises(DataError) as err:
        read_records(path, required=["text"])
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_one_bad_row_never_takes_others_with_it(tmp_path: Path) -> None:
    """Stray quotes, bad bytes, NULs, surrogates, CR-only endings and huge fields: each
    costs at most its own row (issue 10 items 1, 7 and 9)."""
    rows = [f"q{i},Analyst says row {i} beats estimates".encode() for i in range(100)]
    rows[4] = b'q4,Analyst says 5" display chipmaker beats estimates'
    rows[10] = b"q10,caf\xe9 latin-1 bytes"
    rows[20] = b"q20,a NUL \x00 inside"
    rows[30] = b'q30,"a quoted field' + b"\r\n" + b'over two lines"'
    rows[40] = b"q40," + b"x" * 300_000  # over the csv module's default 128 KB limit
    path = tmp_path / "feed.csv"
    path.write_bytes(b"id,text\r" + b"\r".join(rows) + b"\r")  # classic Mac line endings
    result = read_records(path, required=["id", "text"])
    ids = [r["id"] for r in result.records]
    assert len(ids) == 99 and "q99" in ids and "q4" in ids and "q40" in ids
    assert [str(s) for s in result.skipped] == ["row 12: 'text' is not valid UTF-8"]
    by_id = {r["id"]: r["text"] for r in result.records}
    assert by_id["q4"] == 'Analyst says 5" display chipmaker beats estimates'
    assert by_id["q30"] == "a quoted field\nover two lines"
    assert len(by_id["q40"]) == 300_000
    assert by_id["q20"] == "a NUL  inside"  # PostgreSQL cannot store NUL: removed, row kept

    jsonl = tmp_path / "feed.jsonl"
    jsonl.write_bytes(b'{"text": "ok"}\r{"text": "\\ud800 lone"}\r{"text": "fine"}\r')
    result = read_records(jsonl, required=["text"])
    assert [r["text"] for r in result.records] == ["ok", "fine"]
    assert [str(s) for s in result.skipped] == ["row 2: 'text' is not valid UTF-8"]


def test_missing_column_in_jsonl_is_an_error_not_a_skip_per_row(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"body": "a"}\n{"body": "b"}\n')
    with pytest.raises(DataError, match="missing column 'text'"):
        read_records(path, required=["text"])


def test_content_hash_is_stable_and_separates_parts() -> None:
    assert content_hash(["a", "b"]) == content_hash(["a", "b"])
    assert content_hash(["ab", ""]) != content_hash(["a", "b"])


def test_settings_follow_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIGC_HOME", str(tmp_path / "ws"))
    settings = get_settings()
    assert settings.adapters_dir == tmp_path / "ws" / "adapters"
    assert settings.db_url("support").endswith("ws/support.db")
    monkeypatch.setenv("AIGC_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert get_settings().db_url("support") == "postgresql+psycopg://u@h/db"
    monkeypatch.setenv("AIGC_SUPPORT_DB_URL", "sqlite:///x.db")
    assert get_settings().db_url("support") == "sqlite:///x.db"


def test_parse_timestamp_accepts_epoch_seconds_millis_and_iso() -> None:
    from datetime import timedelta

    from aigc_apps.data import parse_timestamp

    want = "2024-05-06T10:00:00+00:00"
    assert parse_timestamp(1714989600).isoformat() == want
    assert parse_timestamp("1714989600000").isoformat() == want  # milliseconds
    assert parse_timestamp("2024-05-06T10:00:00Z").isoformat() == want
    assert parse_timestamp("2024-05-06 10:00").isoformat() == want  # naive is UTC
    assert parse_timestamp("2024-05-06 12:00+02:00").utcoffset() == timedelta(hours=2)
    for bad in ("soon", "", "nan", -5, True):
        with pytest.raises(ValueError):
            parse_timestamp(bad)
