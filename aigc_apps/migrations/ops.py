"""Operations shared by several stores' revisions."""

from __future__ import annotations

from collections.abc import Iterable

from alembic import op
from sqlalchemy import inspect

from aigc_apps.store import NAMING_CONVENTION


def name_sqlite_constraints(tables: Iterable[str]) -> None:
    """Give SQLite's unnamed constraints their conventional names (PostgreSQL's defaults).

    0.1.0 created tables without a naming convention, so SQLite left unique constraints
    unnamed and later revisions could not drop them by name. SQLite cannot rename a
    constraint, so each table that has one is copied once with names given; other
    backends already use these names and are left alone.
    """
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    inspector = inspect(bind)
    for table in tables:
        unnamed = [u for u in inspector.get_unique_constraints(table) if not u.get("name")]
        if not unnamed:
            continue
        with op.batch_alter_table(
            table, recreate="always", naming_convention=NAMING_CONVENTION
        ):
            pass
