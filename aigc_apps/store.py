"""SQL storage shared by the apps: one :class:`Database` per store, SQLite or any URL.

Each app declares its tables on its own ``DeclarativeBase`` (table names prefixed with the
app's name so several apps can share one PostgreSQL database) and its Alembic history as a
:class:`~aigc_apps.migrations.StoreSchema`; :meth:`Database.open` brings the schema up to
date (or says which command will) before anything reads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine, ExceptionContext, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from aigc_apps.errors import AigcError, CorruptDatabaseError

if TYPE_CHECKING:
    from aigc_apps.migrations import StoreSchema


# PostgreSQL's own default names, spelled out so that every backend and every migration
# agrees on what a constraint is called (SQLite would otherwise leave them unnamed).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


def app_metadata() -> MetaData:
    """Metadata for an app's ``DeclarativeBase`` (``metadata = app_metadata()``)."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Timezone-aware now in UTC; every stored timestamp uses it."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """A stored time as aware UTC: SQLite hands stored UTC times back naive."""
    return (
        value.replace(tzinfo=timezone.utc)
        if value.tzinfo is None
        else value.astimezone(timezone.utc)
    )


SQLITE_POOL = 40  # connections kept per SQLite file: anyio's default thread-pool size


class Database:
    """An engine plus a session factory; ``with db.session() as s:`` is one transaction.

    >>> db = Database("sqlite:///:memory:")
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        engine_url, options = url, dict[str, Any]()
        self.read_only = False
        self.path: Path | None = None  # the SQLite file, if any
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            path = self.path = Path(parsed.database)
            if _writable(path.parent):
                path.parent.mkdir(parents=True, exist_ok=True)
            else:  # a read-only workspace: read what is there, refuse writes in one line
                self.read_only = True
                engine_url, options = _read_only_sqlite(path)
        if self.path is not None and not self.read_only:
            # a local file: no connection can drop, so no ping per checkout; and a pool as
            # wide as a server's thread pool, so that concurrent requests do not open, set
            # up (WAL, timeouts) and close an overflow connection each
            options |= {"pool_pre_ping": False, "pool_size": SQLITE_POOL, "max_overflow": 0,
                        "pool_timeout": 60}
        try:
            self.engine: Engine = create_engine(
                engine_url, echo=echo, **({"pool_pre_ping": True} | options)
            )
        except (SQLAlchemyError, ImportError) as exc:
            raise AigcError(f"cannot open database {parsed!r}: {exc}") from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas(wal=not self.read_only))
        if self.path is not None:
            event.listen(self.engine, "handle_error", _damaged_file(self.path))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends and rolls back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            if self.read_only or "readonly" in str(exc):
                raise AigcError(
                    f"{make_url(self.url)!r} is read-only: this command needs to write to the "
                    "workspace (point AIGC_HOME at a writable folder)"
                ) from None
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @classmethod
    def open(
        cls, schema: StoreSchema, url: str | None = None, *, auto_upgrade: bool | None = None
    ) -> Database:
        """Connect to ``url`` (default: the workspace's URL for ``schema.app``) and bring the
        store to its head revision.

        See :func:`~aigc_apps.migrations.ensure_schema` for when an older schema is upgraded
        here and when the user is told to run ``aigc db upgrade``.
        """
        from aigc_apps.migrations import ensure_schema
        from aigc_apps.settings import get_settings

        url = url or get_settings().db_url(schema.app)
        db = cls(url)
        try:
            ensure_schema(db, schema, auto_upgrade=auto_upgrade)
            if db.read_only:  # an empty in-memory stand-in must not accept writes either
                with db.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA query_only=1")
        except SQLAlchemyError as exc:
            db.dispose()
            raise cannot_open(schema.app, url, exc) from None
        except BaseException:
            db.dispose()
            raise
        return db

    def ping(self) -> None:
        """Raise unless the database answers (what ``/readyz`` checks)."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()


def cannot_open(store: str, url: str, exc: BaseException) -> AigcError:
    """One line for a database that cannot be reached or read (a server down, a wrong
    URL): the store, the URL without its password, and the driver's first line."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return AigcError(f"cannot open the {store} database {make_url(url)!r}: {first}")


def _writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (or in its nearest existing ancestor)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK)


def _read_only_sqlite(path: Path) -> tuple[str, dict[str, Any]]:
    """An engine URL that only reads ``path``, or an empty in-memory store if it is absent
    (nothing was ever written there, so there is nothing to read)."""
    if path.exists():
        return f"sqlite:///file:{path.resolve()}?mode=ro&immutable=1&uri=true", {}
    return "sqlite://", {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}


def _sqlite_pragmas(*, wal: bool) -> Callable[[object, object], None]:
    """Per-connection settings; the busy timeout comes first because switching a new file
    to WAL needs a moment's exclusive lock, which processes opening it at once contend for."""

    def on_connect(dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    return on_connect


# SQLite's primary result codes for a file that is not, or no longer, a database.
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26


def _damaged_file(path: Path) -> Callable[[ExceptionContext], None]:
    """Turn SQLite's "malformed" / "not a database" into one line naming the file, wherever
    the damage is met: opening it (a truncated file) or any later query (garbage in the
    pages of one table is only found by reading that table)."""

    def on_error(context: ExceptionContext) -> None:
        exc = context.original_exception
        code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
        if code is not None:
            damaged = code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
        else:
            damaged = any(m in str(exc) for m in ("malformed", "not a database"))
        if damaged:
            raise CorruptDatabaseError(
                f"the SQLite database {path} is damaged ({exc}): restore it from a backup, "
                "or move it away to start an empty store"
            ) from None

    return on_error
