"""One holder at a time per key (e.g. a conversation's id), across threads and processes.

What a store's own locks cannot give: work that reads, thinks for a while (an answer is
generated) and then writes must not interleave with the same work for the same key, yet
must not stop the work of other keys. :class:`KeyLocks` holds, for the block:

- in this process, a lock per key that lets its waiters in in the order they came (so a
  worker's messages of one conversation are answered in arrival order, and at most one
  thread per key and process waits on the cross-process lock below);
- PostgreSQL: a session advisory lock on (a number for the namespace, a hash of the key),
  on a connection of a pool of its own. Not a ``SELECT ... FOR UPDATE`` of the key's row:
  the holder writes that row on its ordinary connections, which would wait for the lock
  their own thread holds. Not a transaction-scoped lock either: the connection stays
  idle, not idle in a transaction, for the seconds an answer may take. Its own pool, so
  holders never take the connections their work needs; the server drops the lock with a
  dead connection, so a killed worker leaves nothing held;
- a SQLite file: an exclusive ``flock`` on a file per key in ``<database>.locks/``
  beside the database, removed by the holder on release (a waiter that then finds
  itself holding a removed file tries again), so no file is left per key. Not SQLite's
  write lock (``BEGIN IMMEDIATE``): held while an answer is generated it would stop
  every other key's writes, and they would fail after the 5 s busy timeout;
- in-memory and read-only stores, Windows (no ``flock``): the in-process lock only
  (nothing another process could write to, or one process per workspace).

Hash collisions only make two keys wait for each other, never let two holders in.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from aigc_apps.advisory import advisory_lock

try:
    import fcntl
except ImportError:  # Windows: no flock; one process per workspace there
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from aigc_apps.store import Database


class _Queue:
    """Who holds one key in this process and who waits, first come first served."""

    __slots__ = ("held", "waiting")

    def __init__(self) -> None:
        self.held = False
        self.waiting: deque[threading.Event] = deque()


class KeyLocks:
    """``with locks.hold(key):`` one holder per key of ``namespace`` in ``db`` (see the
    module's text); not re-entrant. :meth:`close` releases the pool the locks use."""

    def __init__(self, db: Database, namespace: str) -> None:
        self.db, self.namespace = db, namespace
        self._mutex = threading.Lock()
        self._queues: dict[str, _Queue] = {}
        self._engine: Engine | None = None
        self._class_id = _int32(zlib.crc32(namespace.encode()))
        self._folder: Path | None = None
        if db.is_sqlite and db.path is not None and not db.read_only and fcntl is not None:
            self._folder = db.path.with_name(f"{db.path.name}.locks")

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """The block runs while no other thread or process holds ``key``."""
        self._enter(key)
        try:
            with self._across_processes(key):
                yield
        finally:
            self._leave(key)

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    # -- in this process -------------------------------------------------------------------
    def _enter(self, key: str) -> None:
        with self._mutex:
            queue = self._queues.setdefault(key, _Queue())
            if not queue.held:
                queue.held = True
                return
            turn = threading.Event()
            queue.waiting.append(turn)
        try:
            turn.wait()  # _leave hands the key over: ``held`` stays True
        except BaseException:  # interrupted: leave the line, or pass on a key just given
            with self._mutex:
                given = turn not in queue.waiting
                if not given:
                    queue.waiting.remove(turn)
            if given:
                self._leave(key)
            raise

    def _leave(self, key: str) -> None:
        with self._mutex:
            queue = self._queues[key]
            if queue.waiting:
                queue.waiting.popleft().set()
            else:
                del self._queues[key]

    # -- across processes ------------------------------------------------------------------
    @contextmanager
    def _across_processes(self, key: str) -> Iterator[None]:
        if self.db.engine.dialect.name == "postgresql":
            with self._advisory_lock(key):
                yield
        elif self._folder is not None:
            with self._file_lock(key):
                yield
        else:
            yield

    @contextmanager
    def _advisory_lock(self, key: str) -> Iterator[None]:
        with advisory_lock(self._pool(), self._class_id, _int32(zlib.crc32(key.encode()))):
            yield

    def _pool(self) -> Engine:
        with self._mutex:
            if self._engine is None:
                from sqlalchemy import create_engine

                # no overflow limit: every holder and waiter holds one connection (at most
                # one per key and process), and a full pool must not make them time out
                self._engine = create_engine(
                    self.db.engine.url, pool_pre_ping=True, pool_size=2, max_overflow=-1
                )
            return self._engine

    @contextmanager
    def _file_lock(self, key: str) -> Iterator[None]:
        assert self._folder is not None
        self._folder.mkdir(exist_ok=True)
        name = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
        path = self._folder / f"{self.namespace}-{name}.lock"
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    current = os.stat(path).st_ino
                except FileNotFoundError:
                    current = None
                if current == os.fstat(fd).st_ino:
                    break  # the file is still the key's: held
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # its holder removed it meanwhile: lock the key's file now
        try:
            yield
        finally:
            try:
                path.unlink()  # while held, so nobody locks a file no one else sees
            finally:
                os.close(fd)


def _int32(value: int) -> int:
    """An unsigned 32-bit hash as PostgreSQL's signed ``int4``."""
    return value - 2**32 if value >= 2**31 else value
