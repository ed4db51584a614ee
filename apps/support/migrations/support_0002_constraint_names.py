"""Name the constraints that 0.1.0 left unnamed on SQLite (no change on PostgreSQL).

Revision ID: support_0002
Revises: support_0001
"""

from __future__ import annotations

from aigc_apps.migrations.ops import name_sqlite_constraints

revision = "support_0002"
down_revision = "support_0001"
branch_labels = None
depends_on = None

TABLES = (
    "support_sources",
    "support_intents",
    "support_entries",
    "support_sessions",
    "support_turns",
    "support_feedback",
    "support_settings",
)


def upgrade() -> None:
    name_sqlite_constraints(TABLES)


def downgrade() -> None:
    pass  # the names are harmless to the older release
