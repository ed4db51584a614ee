"""Name the constraints that 0.1.0 left unnamed on SQLite (no change on PostgreSQL).

Revision ID: sentiment_0002
Revises: sentiment_0001
"""

from __future__ import annotations

from aigc_apps.migrations.ops import name_sqlite_constraints

revision = "sentiment_0002"
down_revision = "sentiment_0001"
branch_labels = None
depends_on = None

TABLES = ("sentiment_records", "sentiment_record_topics", "sentiment_topics", "sentiment_alerts")


def upgrade() -> None:
    name_sqlite_constraints(TABLES)


def downgrade() -> None:
    pass  # the names are harmless to the older release
