"""Schema migrations: one Alembic history per store, each with its own version table.

Every store (the model registry and each app) declares a :class:`StoreSchema`: its ORM
metadata, the folder of its Alembic revisions and the tables that mark a database created
before Alembic (those are stamped at the baseline revision, then upgraded). Apps register
their schema under the ``aigc.schemas`` entry-point group, so ``aigc db upgrade`` finds
the stores of every installed app, the company's own included
(:func:`aigc_apps.migrations.catalog.known_schemas` lists them).

Revisions are written by hand (or drafted with :func:`draft_revision`) in
``<package>/migrations/versions/``; ``tests/test_migrations.py`` checks that each history
upgraded from nothing gives exactly the ORM's tables, on SQLite and PostgreSQL.
"""

from aigc_apps.migrations.runner import (
    SchemaBehindError,
    SchemaNewerError,
    StoreSchema,
    current_revision,
    ensure_schema,
    head_revision,
    newer_than_release,
    schema_diff,
    stamp,
    upgrade,
)

__all__ = [
    "SchemaBehindError",
    "SchemaNewerError",
    "StoreSchema",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "newer_than_release",
    "schema_diff",
    "stamp",
    "upgrade",
]
