from __future__ import annotations

import pytest
from sqlalchemy import String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aigc_apps.store import Database


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "demo_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(200), unique=True)


def test_session_commits_and_rolls_back(db_url: str) -> None:
    db = Database(db_url)
    db.migrate("demo", Base)
    with db.session() as s:
        s.add(Note(body="kept"))
    with pytest.raises(RuntimeError), db.session() as s:
        s.add(Note(body="lost"))
        s.flush()
        raise RuntimeError("boom")
    with db.session() as s:
        assert s.scalars(select(Note.body)).all() == ["kept"]
    db.dispose()


def test_migrations_run_once_and_only_on_old_schemas(db_url: str) -> None:
    calls: list[int] = []

    def add_column(conn) -> None:  # type: ignore[no-untyped-def]
        calls.append(2)
        conn.execute(text("ALTER TABLE demo_notes ADD COLUMN extra VARCHAR(10)"))

    db = Database(db_url)
    assert db.migrate("demo", Base) == 0  # fresh: current schema, version 0
    assert db.migrate("demo", Base, [(2, add_column)]) == 2  # old schema: step runs
    assert db.migrate("demo", Base, [(2, add_column)]) == 2  # idempotent
    assert calls == [2]
    with db.session() as s:
        s.execute(text("INSERT INTO demo_notes (body, extra) VALUES ('x', 'y')"))
    db.dispose()
