"""One schema change at a time per store, across processes.

Creating or upgrading a schema reads the version table, decides, then writes, in several
statements: two processes opening a new store at once both saw no version table and both
created one ("table alembic_version_registry already exists"). Whoever holds this lock
reads the revision again, so the others find the schema made and have nothing to do.

- SQLite file: an exclusive ``flock`` on ``<file>.lock`` beside the database (SQLite's own
  locks last one transaction; the lock file is left in place, it holds no data).
- PostgreSQL: a session advisory lock keyed by the version table (the key earlier releases
  took per transaction, so they and this one still wait for each other).
- In-memory and read-only stores change nothing another process could see: no lock.

Within a process, one thread at a time whatever the store: Alembic keeps the migration
context in module globals, so two threads opening two stores at once (a server's first
requests; a background refresh beside a request) would run each other's migrations.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aigc_apps.advisory import advisory_lock

try:
    import fcntl
except ImportError:  # Windows: no flock; one process per workspace there
    fcntl = None  # type: ignore[assignment]


_ALEMBIC = threading.Lock()  # its context is process-global


@contextmanager
def schema_lock(db: Any, schema: Any) -> Iterator[None]:
    """Hold the lock of ``schema``'s store in ``db`` for the block (not re-entrant)."""
    with _ALEMBIC, _store_lock(db, schema):
        yield


@contextmanager
def _store_lock(db: Any, schema: Any) -> Iterator[None]:
    if db.engine.dialect.name == "postgresql":
        with advisory_lock(db.engine, zlib.crc32(schema.version_table.encode())):
            yield
    elif db.is_sqlite and db.path is not None and not db.read_only and fcntl is not None:
        with _file_lock(db.path.with_name(f"{db.path.name}.lock")):
            yield
    else:
        yield


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # made by another user: locking needs no write access
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
