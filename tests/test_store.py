from __future__ import annotations

import multiprocessing
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aigc_apps.errors import AigcError
from aigc_apps.migrations import StoreSchema, current_revision, head_revision
from aigc_apps.migrations.catalog import known_schemas
from aigc_apps.store import Database


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "demo_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(200), unique=True)


REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "demo_{n}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
{body}


def downgrade():
    pass
"""


def _history(folder: Path, steps: int) -> StoreSchema:
    """A company app's own store: revision 1 creates the table, 2 adds a column."""
    folder.mkdir(exist_ok=True)
    bodies = [
        "    op.create_table('demo_notes', sa.Column('id', sa.Integer(), primary_key=True),"
        " sa.Column('body', sa.String(200), nullable=False, unique=True))",
        "    op.add_column('demo_notes', sa.Column('extra', sa.String(10), nullable=True))",
    ]
    for n in range(1, steps + 1):
        down = f"demo_{n - 1}" if n > 1 else None
        text_ = REVISION.format(n=n, down=down, body=bodies[n - 1])
        (folder / f"demo_{n}.py").write_text(text_)
    return StoreSchema(app="demo", metadata=Base.metadata, versions=folder)


def test_session_commits_and_rolls_back(db_url: str, tmp_path: Path) -> None:
    db = Database.open(_history(tmp_path / "versions", 1), db_url)
    with db.session() as s:
        s.add(Note(body="kept"))
    with pytest.raises(RuntimeError), db.session() as s:
        s.add(Note(body="lost"))
        s.flush()
        raise RuntimeError("boom")
    with db.session() as s:
        assert s.scalars(select(Note.body)).all() == ["kept"]
    db.dispose()


def test_a_new_revision_runs_once_on_an_older_database(db_url: str, tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    db = Database.open(_history(versions, 1), db_url)
    with db.session() as s:
        s.add(Note(body="before"))
    db.dispose()

    schema = _history(versions, 2)
    db = Database.open(schema, db_url, auto_upgrade=True)
    assert current_revision(db, schema) == "demo_2"
    with db.session() as s:
        s.execute(text("INSERT INTO demo_notes (body, extra) VALUES ('x', 'y')"))
        assert s.scalars(select(Note.body).order_by(Note.id)).all() == ["before", "x"]
    db.dispose()
    Database.open(schema, db_url).dispose()  # at head: nothing runs again


def _open_at_once(url: str, barrier: Any, failures: Any) -> None:
    """One process of the race below: wait for the others, then open the store."""
    barrier.wait()
    try:
        Database.open(known_schemas()["registry"], url).dispose()
    except BaseException as exc:
        failures.put(f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from None


def test_processes_creating_one_new_store_at_once_all_succeed(db_url: str) -> None:
    """Issue 24 item 10: of 6 first `aigc tokens create` on a new workspace at once, 2
    failed with "table alembic_version_registry already exists"."""
    context = multiprocessing.get_context("fork")
    barrier, failures = context.Barrier(8), context.Queue()
    workers = [context.Process(target=_open_at_once, args=(db_url, barrier, failures))
               for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    errors = [failures.get(timeout=5) for w in workers if w.exitcode != 0]
    assert errors == []
    schema = known_schemas()["registry"]
    db = Database(db_url)
    with db.engine.connect() as conn:
        versions = conn.execute(text(f"SELECT version_num FROM {schema.version_table}")).all()
    db.dispose()
    assert [tuple(v) for v in versions] == [(head_revision(schema),)]  # made once, at head


def _tokens_store(workspace: Path) -> Path:
    """A workspace registry with a few tokens, closed (WAL folded back into the file)."""
    from aigc_apps.serve.tokens import TokenStore

    store = TokenStore()
    for n in range(3):
        store.create(f"t{n}", ["admin"])
    store.close()
    path = workspace / "registry.db"
    assert path.exists() and not Path(f"{path}-wal").exists()
    return path


def _garble_tokens_table(path: Path) -> None:
    """8 KB of garbage over the tokens table's pages; the header and schema stay valid."""
    with sqlite3.connect(path) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'aigc_tokens'"
        ).fetchone()[0]
    conn.close()
    with path.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(random.Random(0).randbytes(8192))


@pytest.mark.parametrize(("damage", "command"), [
    ("garbled", "tokens list"),
    ("truncated", "tokens list"),
    ("truncated", "db current --app registry"),
    ("truncated", "db upgrade --app registry"),
])
def test_a_damaged_sqlite_file_is_one_line_naming_it(
    workspace: Path, damage: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 24 item 12: garbage mid-file printed 77 lines ending "database disk image is
    malformed"; a truncated file was one line but did not say what to do."""
    from aigc_apps.cli import main

    path = _tokens_store(workspace)
    if damage == "garbled":
        _garble_tokens_table(path)
    else:
        path.write_bytes(path.read_bytes()[:3000])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(command.split())
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and "damaged" in err and "backup" in err


def test_opening_a_damaged_sqlite_file_names_it(workspace: Path) -> None:
    path = _tokens_store(workspace)
    _garble_tokens_table(path)
    from aigc_apps.serve.tokens import TokenStore

    with pytest.raises(AigcError, match="damaged"):
        TokenStore().list()
