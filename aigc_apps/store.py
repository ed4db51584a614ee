"""SQL storage shared by the apps: one :class:`Database` per store, SQLite or any URL.

Each app declares its tables on its own ``DeclarativeBase`` (table names prefixed with the
app's name so several apps can share one PostgreSQL database) and its Alembic history as a
:class:`~aigc_apps.migrations.StoreSchema`; :meth:`Database.open` brings the schema up to
date (or says which command will) before anything reads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from aigc_apps.errors import AigcError

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


class Database:
    """An engine plus a session factory; ``with db.session() as s:`` is one transaction.

    >>> db = Database("sqlite:///:memory:")
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine: Engine = create_engine(url, echo=echo, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError) as exc:
            raise AigcError(f"cannot open database {parsed!r}: {exc}") from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
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
        except SQLAlchemyError as exc:
            db.dispose()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AigcError(
                f"cannot open the {schema.app} database {make_url(url)!r}: {first}"
            ) from None
        except BaseException:
            db.dispose()
            raise
        return db

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
