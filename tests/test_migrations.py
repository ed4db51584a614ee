"""Alembic histories: fresh databases match the ORM; 0.1.0 databases upgrade with every row.

``tests/data/schema_e30be2b.*.sql`` is the schema that release's ``create_all`` made (one
file per backend), so the upgrade path is tested against what users really have on disk.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from aigc_apps.errors import AigcError
from aigc_apps.migrations import (
    SchemaBehindError,
    current_revision,
    ensure_schema,
    head_revision,
    schema_diff,
)
from aigc_apps.migrations.catalog import known_schemas
from aigc_apps.registry import ModelRegistry
from aigc_apps.store import Database

DATA = Path(__file__).parent / "data"
T0 = datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)


def test_every_history_builds_exactly_the_orm_schema(db_url: str) -> None:
    schemas = known_schemas()
    assert {"registry", "support", "sentiment", "recommend"} <= set(schemas)
    for schema in schemas.values():
        db = Database.open(schema, db_url)
        try:
            assert current_revision(db, schema) == head_revision(schema)
            assert schema_diff(db, schema) == [], schema.app
        finally:
            db.dispose()


def _load_release_schema(db: Database) -> None:
    backend = "sqlite" if db.is_sqlite else "postgresql"
    script = (DATA / f"schema_e30be2b.{backend}.sql").read_text()
    statements = [s.strip() for s in script.split(";\n") if s.strip().strip("-\n ")]
    with db.engine.begin() as conn:
        for statement in statements:
            body = "\n".join(x for x in statement.splitlines() if not x.startswith("--"))
            if body.strip():
                conn.exec_driver_sql(body)


ROWS: dict[str, list[dict[str, object]]] = {
    "aigc_adapters": [
        {"name": "faq", "path": "/w/adapters/faq", "base_model": "smollm2-135m-instruct",
         "task": "sft", "data_hash": "d1", "metrics": json.dumps({"eval_loss": 1.2}),
         "created_at": T0},
        {"name": "fin-old", "path": "/w/adapters/sentiment/fin-old", "base_model": "minilm-l6",
         "task": "classify", "data_hash": "",
         "metrics": json.dumps({"app": "sentiment", "labels": ["negative", "positive"]}),
         "created_at": T0},
        {"name": "fin", "path": "/w/adapters/sentiment/fin", "base_model": "minilm-l6",
         "task": "classify", "data_hash": "",
         "metrics": json.dumps({"app": "sentiment", "labels": ["negative", "neutral",
                                "positive"], "topic_model": "fin-topic",
                                "test_accuracy": 0.8}),
         "created_at": T0.replace(hour=11)},
        {"name": "fin-topic", "path": "/w/adapters/sentiment/fin-topic",
         "base_model": "minilm-l6", "task": "classify", "data_hash": "",
         "metrics": json.dumps({"app": "sentiment", "role": "topic"}),
         "created_at": T0.replace(hour=11)},
    ],
    "support_sources": [{"id": 1, "kind": "templates", "uri": "/kb/faq.csv", "title": None,
                         "content_hash": "h1", "ingested_at": T0}],
    "support_intents": [{"id": 1, "name": "returns", "answer": "30 days.", "updated_at": T0}],
    "support_entries": [{"id": 1, "source_id": 1, "kind": "example", "intent_id": 1,
                         "text": "can I return it", "answer": None, "title": None,
                         "position": 0, "content_hash": "e1"}],
    "support_sessions": [{"id": "s1", "created_at": T0, "updated_at": T0, "handoff": False}],
    "support_turns": [{"id": 1, "session_id": "s1", "number": 1, "question": "return?",
                       "answer": "30 days.", "path": "template", "intent": "returns",
                       "confidence": 0.9, "retrieved_ids": "[1]", "latency_ms": 3.0,
                       "created_at": T0}],
    "support_feedback": [{"id": 1, "turn_id": 1, "good": True, "correct_answer": None,
                          "created_at": T0}],
    "support_settings": [{"key": "active_encoder", "value": json.dumps("/w/enc")}],
    "sentiment_records": [{"id": 1, "source": "feed", "ext_id": "1", "url": None,
                           "text": "Shares fall", "text_hash": "t1", "truncated": False,
                           "ts": T0, "ingested_at": T0, "label": "negative",
                           "p_negative": 0.8, "p_neutral": 0.1, "p_positive": 0.1,
                           "score": -0.7, "model": "fin"}],
    "sentiment_topics": [{"name": "banks", "keywords_json": '["bank"]', "rule_json": "{}",
                          "created_at": T0}],
    "sentiment_record_topics": [{"record_id": 1, "topic": "banks", "method": "keyword",
                                 "similarity": 1.0}],
    "sentiment_alerts": [{"id": 1, "topic": "banks", "signals": "negative_share",
                          "bucket_start": T0, "bucket_seconds": 3600, "count": 5,
                          "negative_share": 0.8, "baseline_share": 0.2, "baseline_count": 4.0,
                          "z_share": 3.1, "z_volume": 0.5, "message": "surge",
                          "created_at": T0, "webhook_status": None}],
    "rec_items": [{"id": "i1", "title": "Tent", "description": "", "tags": "camp",
                   "extra": "{}", "content_hash": "c1", "created_at": T0, "updated_at": T0}],
    "rec_events": [{"id": 1, "user_id": "u1", "item_id": "i1", "type": "view", "weight": 1.0,
                    "rating": None, "ts": 1.7e9, "dedup_key": "k1"}],
    "rec_models": [{"id": 1, "created_at": T0, "path": "/w/rec/model-1", "n_items": 1,
                    "n_users": 1, "n_events": 1, "train_seconds": 2.0, "info": "{}"}],
}


def _fill(db: Database) -> None:
    meta = sa.MetaData()
    meta.reflect(db.engine)
    with db.engine.begin() as conn:
        for table in meta.sorted_tables:
            if table.name in ROWS:
                conn.execute(table.insert(), ROWS[table.name])


def test_release_0_1_0_database_upgrades_and_keeps_every_row(db_url: str) -> None:
    legacy = Database(db_url)
    _load_release_schema(legacy)
    _fill(legacy)
    legacy.dispose()

    schemas = known_schemas()
    for schema in schemas.values():
        db = Database.open(schema, db_url, auto_upgrade=True)
        assert current_revision(db, schema) == head_revision(schema)
        assert schema_diff(db, schema) == [], schema.app
        db.dispose()

    db = Database(db_url)
    with db.engine.connect() as conn:
        for table in ROWS:
            if table == "aigc_adapters":
                continue
            count = conn.execute(select(func.count()).select_from(sa.table(table))).scalar()
            assert count == len(ROWS[table]), table
    db.dispose()

    registry = ModelRegistry(db_url)
    entries = {e.name: e for e in registry.list()}
    assert set(entries) == {"faq", "fin-old", "fin", "fin-topic"}
    fin = entries["fin"]
    assert (fin.app, fin.role, fin.base) == ("sentiment", "sentiment", "minilm-l6")
    assert fin.labels == ["negative", "neutral", "positive"]
    assert fin.info == {"topic_model": "fin-topic"} and fin.metrics == {"test_accuracy": 0.8}
    assert fin.active and not entries["fin-old"].active  # the newest was the one in use
    assert registry.active("sentiment", "topic").name == "fin-topic"
    assert registry.active("core", "sft").name == "faq"
    registry.close()


def test_a_server_behind_the_release_names_the_command(db_url: str) -> None:
    legacy = Database(db_url)
    _load_release_schema(legacy)
    legacy.dispose()
    schema = known_schemas()["registry"]
    db = Database(db_url)
    try:
        with pytest.raises(SchemaBehindError, match="aigc db upgrade --app registry"):
            ensure_schema(db, schema, auto_upgrade=False)
        assert current_revision(db, schema) == "registry_0001"  # stamped, not changed
    finally:
        db.dispose()
    # the default: SQLite workspaces upgrade by themselves, servers wait for the operator
    if db_url.startswith("sqlite"):
        Database.open(schema, db_url).dispose()
    else:
        with pytest.raises(AigcError, match="aigc db upgrade"):
            Database.open(schema, db_url)


def test_db_commands_report_and_upgrade(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from aigc_apps.cli import main

    legacy = Database(db_url)
    _load_release_schema(legacy)
    legacy.dispose()
    main(["db", "current", "--app", "registry", "--db", db_url, "--json"])
    before = json.loads(capsys.readouterr().out)
    assert before[0]["current"] == "registry_0001" or before[0]["current"] is None
    assert before[0]["up_to_date"] is False
    main(["db", "upgrade", "--app", "registry", "--db", db_url])
    main(["db", "current", "--app", "registry", "--db", db_url, "--json"])
    after = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert after[0]["current"] == head_revision(known_schemas()["registry"])
    assert after[0]["up_to_date"] is True
    with pytest.raises(SystemExit) as exc:
        main(["db", "upgrade", "--db", db_url])
    assert exc.value.code == 1
    assert "--app" in capsys.readouterr().err


def test_a_store_newer_than_the_release_says_so_in_one_line(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 24 item 11: `aigc db upgrade` printed a 34-frame Alembic traceback and
    `aigc db current` called the store "behind"."""
    from aigc_apps.cli import main

    schema = known_schemas()["registry"]
    Database.open(schema, db_url).dispose()
    db = Database(db_url)
    with db.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {schema.version_table} SET version_num = 'registry_9999'"))
    db.dispose()
    shown = sa.engine.make_url(db_url).render_as_string(hide_password=True)

    with pytest.raises(AigcError, match="newer than this release") as opened:
        Database.open(schema, db_url)
    assert "registry_9999" in str(opened.value)
    for command in ("upgrade", "current"):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main(["db", command, "--app", "registry", "--db", db_url])
        assert exc.value.code == 1, command
        out = capsys.readouterr()
        line = (out.err if command == "upgrade" else out.out).strip()
        assert len(line.splitlines()) == 1, line
        assert "newer than this release" in line and "registry_9999" in line, line
        assert shown in line or repr(sa.engine.make_url(db_url)) in line, line
    with pytest.raises(SystemExit):
        main(["db", "current", "--app", "registry", "--db", db_url, "--json"])
    row = json.loads(capsys.readouterr().out)[0]
    assert row["current"] == "registry_9999" and row["newer_than_release"] is True


@pytest.mark.parametrize("command", ["current", "upgrade"])
def test_an_unreachable_server_is_one_line(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 24: `aigc db current` with a server that is down printed a traceback."""
    from aigc_apps.cli import main

    monkeypatch.setenv("AIGC_DATABASE_URL", "postgresql://aigc:secret@127.0.0.1:1/x")
    with pytest.raises(SystemExit) as exc:
        main(["db", command])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: cannot open the ") and "127.0.0.1:1" in lines[0]
    assert "secret" not in err  # the password is never shown


def test_aigc_auto_upgrade_0_never_1_always(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """README: ``AIGC_AUTO_UPGRADE`` ``1``: upgrade a server's schema on open too; ``0``:
    never, even SQLite (on both backends a store behind the release is refused with ``0``
    and upgraded with ``1``)."""
    legacy = Database(db_url)
    _load_release_schema(legacy)
    legacy.dispose()
    schema = known_schemas()["registry"]
    monkeypatch.setenv("AIGC_AUTO_UPGRADE", "0")
    with pytest.raises(AigcError, match="aigc db upgrade --app registry"):
        Database.open(schema, db_url)
    db = Database(db_url)
    assert current_revision(db, schema) == "registry_0001"  # stamped, not upgraded
    db.dispose()
    monkeypatch.setenv("AIGC_AUTO_UPGRADE", "1")
    db = Database.open(schema, db_url)
    try:
        assert current_revision(db, schema) == head_revision(schema)
        assert schema_diff(db, schema) == []
    finally:
        db.dispose()
