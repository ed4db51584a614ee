"""SQL storage shared by the apps: one :class:`Database` per app, SQLite or any URL.

Each app declares its tables on its own ``DeclarativeBase`` (table names prefixed with the
app's name so several apps can share one PostgreSQL database) and lists its schema
migrations as ``(version, callable)`` pairs; :meth:`Database.migrate` applies the missing
ones inside a transaction and records them in ``aigc_schema_versions``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Connection, DateTime, Integer, String, create_engine, event, insert, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from aigc_apps.errors import AigcError

Migration = Callable[[Connection], None]


def utcnow() -> datetime:
    """Timezone-aware now in UTC; every stored timestamp uses it."""
    return datetime.now(timezone.utc)


class _VersionBase(DeclarativeBase):
    pass


class SchemaVersion(_VersionBase):
    __tablename__ = "aigc_schema_versions"

    app: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


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

    def create_all(self, base: type[DeclarativeBase]) -> None:
        """Create the tables of ``base`` that do not exist yet."""
        try:
            base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise AigcError(f"cannot create tables in {make_url(self.url)!r}: {exc}") from None

    def migrate(
        self,
        app: str,
        base: type[DeclarativeBase],
        migrations: Sequence[tuple[int, Migration]] = (),
    ) -> int:
        """Create ``base``'s tables, then apply ``migrations`` newer than the stored version.

        Fresh databases get the current schema from ``create_all`` and have every migration
        marked as applied; existing ones run only what they lack. Returns the version.
        """
        _VersionBase.metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            query = select(SchemaVersion.version).where(SchemaVersion.app == app)
            done = set(conn.execute(query).scalars())
            fresh = not done
            base.metadata.create_all(conn)
            for version, step in sorted(migrations, key=lambda m: m[0]):
                if version in done:
                    continue
                if not fresh:
                    step(conn)
                conn.execute(insert(SchemaVersion).values(app=app, version=version))
                done.add(version)
            if fresh and not migrations:
                conn.execute(insert(SchemaVersion).values(app=app, version=0))
                done.add(0)
        return max(done) if done else 0

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
