"""Alembic environment shared by every store; :mod:`aigc_apps.migrations.runner` drives it.

The runner passes the open connection and the :class:`StoreSchema` through
``config.attributes``, so there is no ``alembic.ini`` and no URL in here. The runner holds
the store's :func:`~aigc_apps.migrations.lock.schema_lock` around every run, so two workers
starting at once do not migrate the same store twice.
"""

from __future__ import annotations

from alembic import context

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
    context.run_migrations()
