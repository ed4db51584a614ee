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
        ("latin.csv", b"text\ncaf\xe9\n", "line 2: text is not valid UTF-8"),
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
