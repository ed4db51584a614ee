"""Name the constraints that 0.1.0 left unnamed on SQLite (no change on PostgreSQL).

Revision ID: recommend_0002
Revises: recommend_0001
"""

from __future__ import annotations

from aigc_apps.migrations.ops import name_sqlite_constraints

revision = "recommend_0002"
down_revision = "recommend_0001"
branch_labels = None
depends_on = None

TABLES = ("rec_items", "rec_events", "rec_models")


def upgrade() -> None:
    name_sqlite_constraints(TABLES)


def downgrade() -> None:
    pass  # the names are harmless to the older release
