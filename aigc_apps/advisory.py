"""PostgreSQL session advisory locks: the one primitive under :class:`~aigc_apps.keylock.KeyLocks`
(one holder per conversation) and the migrations' schema lock.

A module of its own, below both: the schema lock runs while a :class:`~aigc_apps.store.Database`
opens, and :mod:`aigc_apps.keylock` works on an opened one, so neither may be where the
other's lock comes from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@contextmanager
def advisory_lock(engine: Engine, *key: int) -> Iterator[None]:
    """A PostgreSQL session advisory lock on ``key`` (one ``bigint`` or two ``int4``) for
    the block, on a connection of ``engine`` kept idle, not idle in a transaction; the
    server drops the lock with a dead connection, so a killed process leaves nothing held."""
    names = [f"k{i}" for i in range(len(key))]
    args = dict(zip(names, key, strict=True))
    held = ", ".join(f":{n}" for n in names)
    conn = engine.connect()
    try:
        conn.execute(text(f"SELECT pg_advisory_lock({held})"), args)
        conn.commit()  # the lock belongs to the session: no transaction stays open
        yield
    finally:
        try:
            conn.rollback()
            conn.execute(text(f"SELECT pg_advisory_unlock({held})"), args)
            conn.commit()
        except Exception:  # the server drops a closed session's locks with it
            conn.invalidate()
        finally:
            conn.close()
