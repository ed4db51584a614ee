"""Generation stamps: one counter row per kind of shared state, so that every worker of
``aigc serve --workers N`` (and every other process on the same database) answers from
the same state.

A worker keeps what is costly to load in memory (an active model, a fitted index). Without
a shared signal, a change made by another process (``aigc sentiment train`` beside a
running server, ``aigc models activate``, another worker) is not seen until restart. So a
writer of that state adds one to the stamp of its ``key`` in the transaction that makes the
change (:func:`bump`: the rows and the counter commit together, so a reader that sees the
new value sees the rows), and each worker compares the stamp with the value its state was
loaded at before it answers (:meth:`Freshness.check`), reloading when they differ.

- A bump is one ``UPDATE ... SET value = value + 1`` after an insert-if-missing (a row lock
  on PostgreSQL, the write lock on SQLite): two writers at once both count.
- A check is one primary-key SELECT, cheap enough for every request; there is no interval.
- The counters live in a stamp table of the store whose rows they describe, so the bump
  commits with them: ``aigc_stamps`` in the core store, an app's own (``rec_stamps``) in an
  app's store, since several stores may share one PostgreSQL database and each creates its
  tables in its own migrations. A store declares it with :func:`stamp_table` on its
  metadata; :func:`bump`, :func:`current` and :class:`Freshness` need only its name.

This is the generic form of :mod:`apps.support.knowledge.generation`, which counts with :func:`bump`
and :func:`current` in its settings table and also tells its own writes apart from others'
(a worker here reloads after its own change too, which is what it would do anyway when the
change is "another model is active").
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    cast,
    column,
    select,
    table,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import TableClause

from aigc_apps.store import Database

TABLE = "aigc_stamps"


def _stamps(name: str) -> TableClause:
    return table(name, column("key", String), column("value", Integer))


def stamp_table(metadata: MetaData, name: str = TABLE) -> Table:
    """Declare the stamp table ``name`` on a store's ``metadata`` (its migrations create it)."""
    return Table(
        name,
        metadata,
        Column("key", String(200), primary_key=True),
        Column("value", Integer, nullable=False, default=0),
    )


def bump(s: Session, key: str, *, table: str | Table = TABLE) -> int:
    """Add one to stamp ``key`` in ``s``'s transaction; returns the new value.

    ``table`` is a stamp table's name, or any (key, value) table: one whose ``value`` is
    text (a settings table) counts in text, as support's knowledge generation does."""
    t = _stamps(table) if isinstance(table, str) else table
    value = t.c.value
    textual = isinstance(value.type, String)  # Text too
    zero: str | int = "0" if textual else 0
    dialect = s.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        make = sqlite.insert if dialect == "sqlite" else postgresql.insert
        s.execute(make(t).values(key=key, value=zero).on_conflict_do_nothing())
    elif s.scalar(select(t.c.key).where(t.c.key == key)) is None:
        s.execute(t.insert().values(key=key, value=zero))  # first bump only: racy elsewhere
    plus_one = cast(cast(value, Integer) + 1, value.type) if textual else value + 1
    s.execute(update(t).where(t.c.key == key).values(value=plus_one))
    return int(s.scalar(select(value).where(t.c.key == key)) or 0)


def current(db: Database, key: str, *, table: str | Table = TABLE) -> int:
    """Stamp ``key`` in ``db`` (0 before its first bump)."""
    t = _stamps(table) if isinstance(table, str) else table
    with db.engine.connect() as conn:
        value = conn.execute(select(t.c.value).where(t.c.key == key)).scalar()
    return int(value) if value is not None else 0


class Freshness:
    """Which value of stamp ``key`` one worker's in-memory state was loaded at.

    ``db`` is the store's :class:`Database`, or a function returning it (a store opened
    lazily). :meth:`check` says whether to reload; call it before each answer, under the
    lock that guards the state it describes.

    >>> fresh = Freshness(Database("sqlite:///:memory:"), "models:demo")
    """

    def __init__(
        self, db: Database | Callable[[], Database], key: str, *, table: str = TABLE
    ) -> None:
        self._db = db
        self.key = key
        self.table = table
        self.loaded: int | None = None  # None: nothing loaded yet
        self._lock = threading.Lock()
        # built once: per request, building and keying a select costs more than running it
        self._query = text(f"SELECT value FROM {table} WHERE key = :key").bindparams(key=key)

    def check(self) -> bool:
        """True when the state must be (re)loaded: the first time, and whenever the stamp
        moved since. The value is read before the caller reloads, so what it loads is at
        least that new; a change during the reload moves the stamp again and the next
        check says so."""
        db = self._db if isinstance(self._db, Database) else self._db()
        value = current(db, self.key, table=self.table)
        with self._lock:
            if value == self.loaded:
                return False
            self.loaded = value
            return True

    def peek(self) -> int:
        """The stamp's value now, nothing marked: for a caller that records what it loaded
        only once loaded (so that other threads wait for that load instead of answering
        from the old state), rather than :meth:`check`'s mark-then-reload."""
        db = self._db if isinstance(self._db, Database) else self._db()
        with db.engine.connect() as conn:
            value = conn.execute(self._query).scalar()
        return int(value) if value is not None else 0

    def forget(self) -> None:
        """The reload that :meth:`check` asked for failed: the next check asks again."""
        with self._lock:
            self.loaded = None
