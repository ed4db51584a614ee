"""The knowledge generation: one counter in the support database, so that every worker
answers from the same knowledge.

A support worker keeps what it answers from in memory (entry metadata and answers, the
vector stores, the intent heads, the stored settings). Without a shared signal, a change
made by another process (``aigc support ingest`` beside a running server, a suggestion
approved on another ``aigc serve --workers`` worker) is not seen until restart. So every
writer of that knowledge adds one to the ``knowledge_generation`` row of
``support_settings`` (:func:`bump`), and each worker compares the database's value with the
one its state was loaded at before it answers (:meth:`Freshness.check`), reloading when
they differ.

- Writers bump in the transaction that makes the change (the rows and the counter commit
  together, so a worker that sees the new value sees the rows) and once more after changing
  files beside the index (FAISS stores and intent heads are written only after the commit
  they describe), so a worker that reloaded between the two reloads again.
- A bump is one ``UPDATE ... SET value = value + 1`` (a row lock on PostgreSQL, the write
  lock on SQLite): two writers at once both count. Counting and reading are the core's
  generation stamps (:mod:`aigc_apps.stamps`) on the settings table.
- The check is one primary-key SELECT: about 0.1 ms on SQLite and 0.5 ms on a local
  PostgreSQL (pool pre-ping included), so every request checks; there is no interval.
- A process notes the values its own writes produced (:meth:`Freshness.writing`), so it
  does not reload what it already holds; a write by someone else in between still reloads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from aigc_apps import stamps

from ..store import Setting

if TYPE_CHECKING:
    from aigc_apps.store import Database

KEY = "knowledge_generation"
# Stored settings a worker holds in memory: writing one changes how it answers.
KNOWLEDGE_SETTINGS = frozenset({"calibration", "retrieval", "doc_threshold", "company"})

STALE = -1  # no generation: the next check reloads
_TABLE: Table = Setting.__table__  # type: ignore[assignment]
_written: ContextVar[list[int] | None] = ContextVar("knowledge_generation_written", default=None)


def bump(s: Session) -> int:
    """Add one to the generation in ``s``'s transaction; returns the new value."""
    value = stamps.bump(s, KEY, table=_TABLE)
    written = _written.get()
    if written is not None:
        written.append(value)
    return value


def set_setting(s: Session, key: str, value: Any) -> None:
    """Store ``value`` under ``key`` in ``support_settings``; a setting workers hold in
    memory (:data:`KNOWLEDGE_SETTINGS`: calibration, retrieval weights, thresholds) bumps
    the generation in the same transaction, so every worker reloads it. Here, beside the
    counter, because the settings table (:mod:`.store`) holds both and must not need this
    module to be read."""
    if key in KNOWLEDGE_SETTINGS:
        bump(s)
    row = s.get(Setting, key)
    if row is None:
        s.add(Setting(key=key, value=json.dumps(value)))
    else:
        row.value = json.dumps(value)


def bump_now(db: Database) -> int:
    """:func:`bump` in a transaction of its own (after files beside the index changed)."""
    with db.session() as s:
        return bump(s)


def current(db: Database) -> int:
    """The database's generation (0 before the first write)."""
    return stamps.current(db, KEY, table=_TABLE)


class Freshness:
    """Which generation one service's in-memory knowledge was loaded at, and the reload.

    ``reload(generation)`` replaces the service's knowledge with what the database holds
    (at least ``generation``: it reads after the value was read). ``loaded`` is None until
    the service opens its database, and :data:`STALE` after a failed write.
    """

    def __init__(self, db: Callable[[], Database], reload: Callable[[int], None]) -> None:
        self._db = db
        self._reload = reload
        self.loaded: int | None = None
        self.lock = threading.RLock()  # held by a reload or a write, never by a request
        self._writer: int | None = None  # the thread inside :meth:`writing`

    def opened(self, db: Database) -> None:
        """The database was opened: what loads from now on is at least this generation."""
        if self.loaded is None:
            self.loaded = current(db)

    def check(self, *, wait: bool = False) -> None:
        """Reload if another process changed the knowledge since it was loaded.

        A request does not wait (``wait=False``): while another thread of this process
        reloads or writes, it answers from what is loaded, and a later request sees the
        change. Inside this thread's own write it does nothing.
        """
        if self._writer == threading.get_ident():
            return
        db = self._db()
        if current(db) == self.loaded:
            return
        if not self.lock.acquire(blocking=wait):
            return
        try:
            generation = current(db)
            if generation != self.loaded:
                self._reload(generation)
                self.loaded = generation
        finally:
            self.lock.release()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around a change of knowledge made by this process: first catch up with the
        database, then note the generations this change produced as loaded (unless
        another writer's fell in between). After an error, the next check reloads."""
        with self.lock:
            if self._writer == threading.get_ident():  # nested: the outer one notes
                yield
                return
            self.check(wait=True)
            before = self.loaded
            self._writer = threading.get_ident()
            written: list[int] = []
            token = _written.set(written)
            try:
                yield
            except BaseException:
                self.loaded = STALE  # memory may be half-changed: the next check reloads
                raise
            finally:
                _written.reset(token)
                self._writer = None
            now = current(self._db())
            if before is not None and written == list(range(before + 1, now + 1)):
                self.loaded = now
