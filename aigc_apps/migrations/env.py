"""Alembic environment shared by every store; :mod:`aigc_apps.migrations.runner` drives it.

The runner passes the open connection and the :class:`StoreSchema` through
``config.attributes``, so there is no ``alembic.ini`` and no URL in here. On PostgreSQL a
transaction-scoped advisory lock keyed by the version table serialises concurrent upgrades
of the same store (two workers starting at once).
"""

from __future__ import annotations

import zlib

from alembic import context
from sqlalchemy import text

config = context.config
connection = config.attributes["connection"]
schema = config.attributes["schema"]

context.configure(
    connection=connection,
    target_metadata=schema.metadata,
    version_table=schema.version_table,
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=True,
    include_object=schema.include_object,
)

with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        key = zlib.crc32(schema.version_table.encode())
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    context.run_migrations()
