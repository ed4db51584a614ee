"""Run a store's Alembic history against a :class:`~aigc_apps.store.Database`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, MetaData, inspect
from sqlalchemy.engine import make_url

from aigc_apps.errors import AigcError
from aigc_apps.migrations.lock import schema_lock

ENV_DIR = Path(__file__).resolve().parent


class SchemaBehindError(AigcError):
    """The database's schema is older than this release and was not upgraded automatically."""


class SchemaNewerError(AigcError):
    """A newer release upgraded the database: this one does not know its revision, so it can
    neither tell what changed nor upgrade it, and must not use it."""


@dataclass(frozen=True)
class StoreSchema:
    """What the migration runner needs to know about one store.

    ``app`` names the store (``registry``, ``support``...) and its version table
    ``alembic_version_<app>``; ``versions`` is the folder of its revision files;
    ``legacy_tables`` are tables whose presence without a version table marks a database
    made before Alembic, which is stamped at ``baseline`` and then upgraded.
    """

    app: str
    metadata: MetaData
    versions: Path
    legacy_tables: tuple[str, ...] = ()
    baseline: str | None = None

    @classmethod
    def beside(
        cls, module_file: str, app: str, metadata: MetaData, legacy_tables: tuple[str, ...] = ()
    ) -> StoreSchema:
        """An app's schema whose revisions live in ``migrations/`` beside ``module_file``,
        with ``<app>_0001`` as the baseline of databases made before Alembic."""
        versions = Path(module_file).resolve().parent / "migrations"
        return cls(app, metadata, versions, tuple(legacy_tables), f"{app}_0001")

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.app}"

    def include_object(
        self, obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        """Compare only this store's tables: several stores may share one database."""
        if type_ == "table":
            return name in self.metadata.tables
        table = getattr(obj, "table", None)
        return table is None or table.name in self.metadata.tables


def _config(schema: StoreSchema, connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ENV_DIR))
    cfg.set_main_option("version_locations", str(schema.versions))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["schema"] = schema
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def _connected(db: Any, schema: StoreSchema) -> Iterator[Any]:
    """An Alembic config bound to one transaction on ``db``.

    SQLite alters a table by copying and dropping it, and dropping a parent table with
    foreign keys enforced would cascade-delete its children's rows: enforcement is off
    during the transaction (SQLite only allows that outside one) and the keys are checked
    before it commits.
    """
    with db.engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                yield _config(schema, conn)
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise AigcError(f"migrating the {schema.app} database broke a foreign key")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def head_revision(schema: StoreSchema) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(schema)).get_current_head()


def newer_than_release(schema: StoreSchema, revision: str | None) -> bool:
    """Whether ``revision`` is missing from this release's history (a later one wrote it)."""
    from alembic.script import ScriptDirectory

    if revision is None:
        return False
    script = ScriptDirectory.from_config(_config(schema))
    return revision not in {r.revision for r in script.walk_revisions()}


def _refuse_newer(db: Any, schema: StoreSchema, current: str | None) -> None:
    if newer_than_release(schema, current):
        raise SchemaNewerError(
            f"the {schema.app} database {make_url(db.url)!r} is newer than this release: it "
            f"is at revision {current}, which a later aigc-apps wrote (this one knows up to "
            f"{head_revision(schema)}); upgrade aigc-apps to use it"
        )


def current_revision(db: Any, schema: StoreSchema) -> str | None:
    """The revision recorded in the database, None when it has no version table yet."""
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": schema.version_table})
        return context.get_current_revision()


def upgrade(db: Any, schema: StoreSchema, target: str = "head") -> str | None:
    """Apply the missing revisions up to ``target`` in one transaction; returns the revision."""
    with schema_lock(db, schema):
        return _upgrade(db, schema, target)


def _upgrade(db: Any, schema: StoreSchema, target: str = "head") -> str | None:
    from alembic import command

    _stamp_legacy(db, schema)
    _refuse_newer(db, schema, current_revision(db, schema))
    with _connected(db, schema) as cfg:
        command.upgrade(cfg, target)
    return current_revision(db, schema)


def stamp(db: Any, schema: StoreSchema, revision: str) -> None:
    """Record ``revision`` as applied without running anything."""
    with schema_lock(db, schema):
        _stamp(db, schema, revision)


def _stamp(db: Any, schema: StoreSchema, revision: str) -> None:
    from alembic import command

    with _connected(db, schema) as cfg:
        command.stamp(cfg, revision)


def _stamp_legacy(db: Any, schema: StoreSchema) -> bool:
    """Stamp a pre-Alembic database (legacy tables, no version table) at the baseline."""
    names = set(inspect(db.engine).get_table_names())
    if schema.version_table in names or not schema.baseline:
        return False
    if not any(table in names for table in schema.legacy_tables):
        return False
    _stamp(db, schema, schema.baseline)
    return True


def _auto_upgrade_default(db: Any) -> bool:
    """SQLite files belong to one workspace: upgrade them. Shared servers wait for the
    operator's ``aigc db upgrade`` unless ``AIGC_AUTO_UPGRADE=1``."""
    preset = os.environ.get("AIGC_AUTO_UPGRADE", "").strip().lower()
    if preset in ("1", "true", "yes"):
        return True
    if preset in ("0", "false", "no"):
        return False
    return bool(db.is_sqlite)


def ensure_schema(db: Any, schema: StoreSchema, *, auto_upgrade: bool | None = None) -> str | None:
    """Bring ``db`` to the head revision of ``schema``, or say which command will.

    A database with none of the store's tables is created from the history whatever the
    backend; one that is behind is upgraded when ``auto_upgrade`` (default: SQLite only, or
    ``AIGC_AUTO_UPGRADE``) and otherwise raises :class:`SchemaBehindError`. Anything but
    the usual case (already at head) is decided again under :func:`schema_lock`, so that
    processes opening one store at once create or upgrade it once.
    """
    head = head_revision(schema)
    if current_revision(db, schema) == head:
        return head
    with schema_lock(db, schema):
        return _ensure_schema(db, schema, head, auto_upgrade)


def _ensure_schema(
    db: Any, schema: StoreSchema, head: str | None, auto_upgrade: bool | None
) -> str | None:
    current = current_revision(db, schema)
    if current is None and _stamp_legacy(db, schema):
        current = current_revision(db, schema)
    if current == head:
        return current
    _refuse_newer(db, schema, current)
    fresh = current is None and not (
        set(inspect(db.engine).get_table_names()) & set(schema.metadata.tables)
    )
    if fresh or (auto_upgrade if auto_upgrade is not None else _auto_upgrade_default(db)):
        return _upgrade(db, schema)
    raise SchemaBehindError(
        f"the {schema.app} database {make_url(db.url)!r} is at revision {current}, "
        f"this release needs {head}: run `aigc db upgrade --app {schema.app}`"
    )


def schema_diff(db: Any, schema: StoreSchema) -> list[Any]:
    """Differences between the ORM's tables and the database (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": schema.include_object,
                "version_table": schema.version_table,
            },
        )
        return list(compare_metadata(context, schema.metadata))
